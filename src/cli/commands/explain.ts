import { isIP } from 'node:net';
import { existsSync } from 'node:fs';
import { loadConfigs } from '../../config/index.js';
import { compileTables, staticTable } from '../../balance/compile.js';
import { explainPacket, type PacketQuery } from '../../balance/explain.js';
import { XdpDataplane } from '../../dataplane/xdp.js';
import { NODE_NONE, type DataplaneTables } from '../../dataplane/types.js';
import { FarmlbError } from '../../errors.js';
import { instancePaths } from '../../paths.js';
import { CONFIG_OPTIONS, EXIT, INSTANCE_OPTIONS, type CommandDef } from '../command.js';
import { bold } from '../output.js';

/** "addr", "addr:port", "[v6]:port" or a bare IPv6 address. */
export function parseEndpoint(text: string, what: string): { addr: string; port?: number } {
  let addr = text;
  let port: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    addr = bracketed[1]!;
    port = bracketed[2];
  } else if (isIP(text) === 0 && text.lastIndexOf(':') > 0 && text.indexOf(':') === text.lastIndexOf(':')) {
    addr = text.slice(0, text.lastIndexOf(':'));
    port = text.slice(text.lastIndexOf(':') + 1);
  }
  if (isIP(addr) === 0) throw new FarmlbError('FARMLB_E_CLI_BAD_ENDPOINT', { what, value: text });
  if (port === undefined) return { addr };
  const n = Number(port);
  if (!/^\d+$/.test(port) || n < 1 || n > 65535) throw new FarmlbError('FARMLB_E_CLI_BAD_ENDPOINT', { what, value: text });
  return { addr, port: n };
}

export function parseQuery(src: string, dst: string, ipid?: string): PacketQuery {
  const slash = dst.lastIndexOf('/');
  const proto = slash < 0 ? '' : dst.slice(slash + 1).toLowerCase();
  if (proto !== 'tcp' && proto !== 'udp' && proto !== 'icmp') {
    throw new FarmlbError('FARMLB_E_CLI_BAD_ENDPOINT', { what: 'destination (VIP[:PORT]/tcp|udp|icmp)', value: dst });
  }
  const s = parseEndpoint(src, 'source (SRC[:PORT])');
  const d = parseEndpoint(dst.slice(0, slash), 'destination (VIP[:PORT]/PROTO)');
  const query: PacketQuery = { src: s.addr, vip: d.addr, proto };
  if (s.port !== undefined) query.srcPort = s.port;
  if (d.port !== undefined) query.vipPort = d.port;
  if (ipid !== undefined) {
    const n = Number(ipid);
    if (!/^(0x[0-9a-f]+|\d+)$/i.test(ipid) || n > 0xffff) throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option: '--ipid', value: ipid, expected: '0 to 65535' });
    query.ipid = n;
  }
  return query;
}

export const explainCommand: CommandDef = {
  name: 'explain',
  args: '<src> <dst>',
  summary: 'explain which rule, bucket and node a packet from SRC[:PORT] to VIP[:PORT]/PROTO goes to',
  options: [
    ...CONFIG_OPTIONS,
    ...INSTANCE_OPTIONS,
    { flags: '--node <name>', description: 'decide as this node (default: the node whose maps are pinned)' },
    { flags: '--ipid <n>', description: 'IPv4 identification, for on_ipid rules' },
  ],
  examples: [
    'farmlb explain 192.0.2.7:40000 10.0.0.100:80/tcp -c userconfig.xml --cluster cluster.xml',
    'farmlb explain [2001:db8::7]:5353 [2001:db8::100]:53/udp --json',
    'farmlb explain 192.0.2.7 10.0.0.100/icmp',
  ],
  async run(ctx, args, opts) {
    const query = parseQuery(args[0]!, args[1]!, opts.ipid as string | undefined);
    const { farm, cluster } = await loadConfigs({ config: String(opts.config), cluster: opts.cluster as string | undefined });
    const paths = instancePaths({ module: (opts.module as string | undefined) ?? farm.farmlb.module, pinDir: opts.pinDir as string | undefined, runDir: opts.runDir as string | undefined });

    // The running table when this node's maps are pinned; else the static table.
    let tables: DataplaneTables;
    let source: 'pinned' | 'static';
    if (existsSync(paths.pinDir)) {
      const pinned = await XdpDataplane.readPinned(paths.pinDir);
      try { tables = pinned.activeTables(); } finally { pinned.close(); }
      source = 'pinned';
      if (typeof opts.node === 'string' && cluster) {
        const id = cluster.nodes.indexOf(opts.node);
        tables = { ...tables, selfNode: id < 0 ? NODE_NONE : id };
      }
    } else {
      tables = compileTables(farm, cluster, staticTable(farm, cluster), typeof opts.node === 'string' ? opts.node : '');
      source = 'static';
    }
    if (typeof opts.node === 'string' && cluster && !cluster.nodes.includes(opts.node)) {
      throw new FarmlbError('FARMLB_E_RUN_NODE_UNKNOWN', { node: opts.node, file: cluster.file, nodes: cluster.nodes.join(', ') });
    }
    // A running node's maps say which peer MACs it knows; a static table knows none yet.
    const result = explainPacket(farm, tables, query, { ...(cluster ? { cluster } : {}), nodeMacs: source === 'pinned' ? 'tables' : 'learnt' });
    if (ctx.out.json) {
      ctx.out.printJson({ ...result, table: source });
      return EXIT.OK;
    }
    const lines = [bold(ctx.out, result.summary)];
    if (result.rule) {
      const where = result.rule.src ? ` (${result.rule.src.file}:${result.rule.src.line})` : '';
      lines.push(`  rule:      ${result.rule.proto} virtual_addr=${result.rule.vip} port=${result.rule.port} filter=${result.rule.filter}${where}`);
    }
    if (result.group) lines.push(`  group:     ${result.group.name}`);
    if (result.criterion) lines.push(`  criterion: ${result.criterion} = ${result.criterionBytes}`);
    if (result.bucket !== undefined) lines.push(`  bucket:    ${result.bucket} (0x${result.bucket.toString(16).padStart(2, '0')})`);
    if (result.owner !== undefined) lines.push(`  owner:     ${result.owner ? `${result.owner.name} (#${result.owner.id})` : 'nobody'}`);
    const h = result.handover;
    if (h) lines.push(`  handover:  from ${h.prevOwner.name} (#${h.prevOwner.id}): ${h.rule}`);
    const on = result.self ? result.self.name : 'a node outside the cluster';
    if (h?.onThisNode && h.role !== 'neither') {
      const v = h.onThisNode;
      lines.push(`  verdict:   ${v.syn.verdict} (${v.syn.reason}) on ${on} for a new connection (SYN); ` +
        `${v.held.verdict} (${v.held.reason}) for a connection it holds; ${v.other.verdict} (${v.other.reason}) for any other packet`);
    } else {
      lines.push(`  verdict:   ${result.verdict} (${result.reason}) on ${on}${result.forwardTo ? `, forwarded to ${result.forwardTo.name}` : ''}`);
    }
    if (result.ownerIfOwnerFails !== undefined) {
      lines.push(`  if ${result.owner?.name ?? 'the owner'} fails: ${result.ownerIfOwnerFails ? result.ownerIfOwnerFails.name : 'nobody'} takes bucket ${result.bucket}`);
    }
    lines.push(`  table:     ${source === 'pinned' ? `running (${paths.pinDir})` : 'static (configured powers, every node up)'}`);
    ctx.out.print(lines.join('\n'));
    return EXIT.OK;
  },
};
