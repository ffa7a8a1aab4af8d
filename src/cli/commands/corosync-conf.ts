// `farmlb corosync-conf`: corosync.conf for a farm that runs <farmlb membership="corosync">,
// written from cluster.xml (node ids, names, ring addresses) and the farm's LANs, with the
// timing the Corosync backend is measured with (docs/membership.md, "Corosync backend").
// The same file goes to every node; the daemon refuses to start when the running corosync's
// nodelist differs from cluster.xml.

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { loadConfigs } from '../../config/index.js';
import { FarmlbError } from '../../errors.js';
import { corosyncConf, corosyncConfProblems, DEFAULT_TOKEN_MS, type CorosyncTransport } from '../../membership/corosync/conf.js';
import { CONFIG_OPTIONS, EXIT, type CommandDef } from '../command.js';

/** corosync-keygen's default: 256 random bytes. */
const AUTHKEY_BYTES = 256;

export const corosyncConfCommand: CommandDef = {
  name: 'corosync-conf',
  summary: 'write the corosync.conf of a farm run with <farmlb membership="corosync"> from cluster.xml',
  options: [
    ...CONFIG_OPTIONS,
    { flags: '--transport <name>', description: 'udpu (default: 300 ms token, failure detected in ~650 ms, no encryption) or knet (1000 ms token, encrypted with the authkey)', defaultValue: 'udpu' },
    { flags: '--token <ms>', description: `totem token (default ${DEFAULT_TOKEN_MS.udpu} for udpu, ${DEFAULT_TOKEN_MS.knet} for knet)` },
    { flags: '--cluster-name <name>', description: 'totem cluster_name (default farmlb-<module>)' },
    { flags: '--qnetd <host>', description: 'two-node farm: the address of the corosync-qnetd witness (votequorum device, model net, algorithm ffsplit)' },
    { flags: '--authkey <file>', description: 'knet: where corosync reads its key (written with 256 random bytes, mode 0400, when absent)', defaultValue: '/etc/corosync/authkey' },
    { flags: '-o, --output <file>', description: 'write here instead of stdout (mode 0644)' },
  ],
  examples: [
    'farmlb corosync-conf --cluster /etc/farmlb/cluster.xml -o /etc/corosync/corosync.conf',
    'farmlb corosync-conf --transport knet -o /etc/corosync/corosync.conf   # and copy /etc/corosync/authkey to every node',
    'farmlb corosync-conf --qnetd 192.168.1.30 -o /etc/corosync/corosync.conf   # two nodes and a witness',
  ],
  async run(ctx, _args, opts) {
    if (typeof opts.cluster !== 'string') throw new FarmlbError('FARMLB_E_RUN_NO_CLUSTER', {});
    const transport = String(opts.transport);
    if (transport !== 'udpu' && transport !== 'knet') {
      throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option: '--transport', value: transport, expected: 'udpu or knet' });
    }
    let tokenMs: number | undefined;
    if (opts.token !== undefined) {
      tokenMs = Number(opts.token);
      if (!Number.isInteger(tokenMs)) throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option: '--token', value: String(opts.token), expected: 'milliseconds, 100 to 60000' });
    }
    const { farm, cluster } = await loadConfigs({ config: String(opts.config), cluster: opts.cluster });
    const authkey = String(opts.authkey);
    const confOpts = {
      farm, cluster: cluster!, transport: transport as CorosyncTransport,
      ...(tokenMs !== undefined ? { tokenMs } : {}),
      ...(typeof opts.clusterName === 'string' ? { clusterName: opts.clusterName } : {}),
      ...(typeof opts.qnetd === 'string' ? { qnetdHost: opts.qnetd } : {}),
      authkeyFile: authkey,
    };
    const problems = corosyncConfProblems(confOpts);
    if (problems.length > 0) throw new FarmlbError('FARMLB_E_COROSYNC_CONF', { detail: problems.join('; ') });
    const text = corosyncConf(confOpts);
    if (transport === 'knet' && !existsSync(authkey)) {
      await writeFile(authkey, randomBytes(AUTHKEY_BYTES), { mode: 0o400, flag: 'wx' });
      ctx.out.error(`wrote a new authkey to ${authkey}: copy it to every node`);
    }
    if (typeof opts.output === 'string') {
      await writeFile(opts.output, text, { mode: 0o644 });
      if (ctx.out.json) ctx.out.printJson({ output: opts.output, transport, nodes: cluster!.nodes.length });
      return EXIT.OK;
    }
    if (ctx.out.json) ctx.out.printJson({ transport, text });
    else ctx.out.print(text.trimEnd());
    return EXIT.OK;
  },
};
