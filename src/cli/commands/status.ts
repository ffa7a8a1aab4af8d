import { controlRequest } from '../../api/control.js';
import type { PeerHeartbeats } from '../../api/metrics.js';
import { stateExitCode, type DaemonStatus, type NodeStatus } from '../../api/status.js';
import { loadFarmConfig } from '../../config/index.js';
import { FarmlbError, isFarmlbError } from '../../errors.js';
import { instancePaths, type InstancePaths } from '../../paths.js';
import { EXIT, INSTANCE_OPTIONS, type CommandContext, type CommandDef } from '../command.js';
import { bold, dim, jsonReplacer, type Output } from '../output.js';

/** The instance a control command talks to: --module/--run-dir, or the module named in -c's <farmlb module=…>. */
export async function controlPaths(opts: Record<string, unknown>): Promise<InstancePaths> {
  let module = opts.module as string | undefined;
  if (module === undefined && typeof opts.config === 'string') module = (await loadFarmConfig(opts.config)).farmlb.module;
  return instancePaths({ module, pinDir: opts.pinDir as string | undefined, runDir: opts.runDir as string | undefined });
}

export const CONTROL_OPTIONS = [
  ...INSTANCE_OPTIONS,
  { flags: '-c, --config <file>', description: 'userconfig.xml, to take the module name from <farmlb module=…>' },
];

export const statusCommand: CommandDef = {
  name: 'status',
  summary: 'show the running daemon\'s module state, view, epoch, nodes and lease (control socket)',
  options: [
    ...CONTROL_OPTIONS,
    { flags: '-q, --quiet', description: 'print nothing; exit with the module state: STOP 0, WAIT 1, UP 2' },
    { flags: '-w, --watch', description: 'redraw every second (on a terminal; else print one status per interval) until Ctrl-C' },
    { flags: '--interval <ms>', description: 'with --watch: time between updates', defaultValue: '1000' },
    { flags: '--count <n>', description: 'with --watch: stop after N updates' },
  ],
  examples: ['farmlb status', 'farmlb status --json', 'farmlb status -q; echo $?', 'farmlb status --watch',
    'farmlb status --watch --json --interval 500 | jq -c "{state, epoch}"', 'farmlb status --module web --run-dir /run/farmlb/web'],
  async run(ctx, _args, opts) {
    const paths = await controlPaths(opts);
    if (opts.watch && !opts.quiet) return watchStatus(ctx.out, paths, opts);
    let status: DaemonStatus;
    try {
      status = await controlRequest(paths.runDir, { cmd: 'status' }, { module: paths.module }) as DaemonStatus;
    } catch (err) {
      // No daemon: the module is stopped, which -q reports as a state, not an error.
      if (opts.quiet && isFarmlbError(err) && err.code === 'FARMLB_E_CLI_NOT_RUNNING') return stateExitCode('STOP');
      throw err;
    }
    if (opts.quiet) return stateExitCode(status.state);
    if (ctx.out.json) ctx.out.printJson(status);
    else ctx.out.print(renderStatus(ctx.out, status));
    return EXIT.OK;
  },
};

function positiveInt(value: unknown, option: string, min: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(String(value)) || n < min) {
    throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option, value: String(value), expected: `an integer of at least ${min}` });
  }
  return n;
}

/**
 * --watch: one status per interval until SIGINT/SIGTERM (or --count updates). On a terminal
 * the screen is redrawn in place; otherwise (a pipe, a log) each status is printed after
 * the previous one, and with --json each is one line (NDJSON). A daemon that is not
 * running is shown as such and watched for: it may be restarting.
 */
export async function watchStatus(out: Output, paths: InstancePaths, opts: Record<string, unknown>,
  stream: NodeJS.WriteStream = process.stdout): Promise<number> {
  const intervalMs = positiveInt(opts.interval ?? 1000, '--interval', 100);
  const count = opts.count === undefined ? Infinity : positiveInt(opts.count, '--count', 1);
  const redraw = stream.isTTY === true && !out.json;
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (let i = 0; i < count && !stop.signal.aborted; i++) {
      let status: DaemonStatus | undefined;
      let text: string;
      try {
        status = await controlRequest(paths.runDir, { cmd: 'status' }, { module: paths.module }) as DaemonStatus;
        text = renderStatus(out, status);
      } catch (err) {
        if (!isFarmlbError(err) || err.code !== 'FARMLB_E_CLI_NOT_RUNNING') throw err;
        text = `module ${paths.module}: STOP (no daemon answers on ${paths.runDir}/control.sock)`;
      }
      if (out.json) stream.write(`${JSON.stringify(status ?? { module: paths.module, state: 'STOP' }, jsonReplacer)}\n`);
      // Home, draw, then clear what the previous (longer) status left below.
      else if (redraw) stream.write(`\x1b[H${text.split('\n').map((l) => `${l}\x1b[K`).join('\n')}\n${dim(out, `every ${intervalMs / 1000} s · Ctrl-C stops`)}\x1b[K\n\x1b[J`);
      else stream.write(`${i > 0 ? '\n' : ''}${dim(out, `--- ${new Date().toISOString()}`)}\n${text}\n`);
      if (i + 1 < count) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, intervalMs);
          stop.signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
        });
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return EXIT.OK;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

function clock(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}

export const SYN_COOKIE_WARNING = 'SYN cookies in use: connections moved during a handover may be reset — raise the listen backlog / net.core.somaxconn';
export const SYN_COOKIE_ALWAYS_WARNING = 'net.ipv4.tcp_syncookies=2 (a cookie for every handshake): connections opened while their bucket moves may be reset — set it to 1 and raise the listen backlog';

/** Owned buckets of a node in one group, and those it hands over when there are any: "0 (handing over 12)". */
function bucketsCell(n: NodeStatus, group: string): string {
  const owned = String(n.buckets[group] ?? 0);
  const handing = n.handingOver?.[group] ?? 0;
  return handing > 0 ? `${owned} (handing over ${handing})` : owned;
}

/** A peer whose heartbeats failed the MAC this recently is shown with a warning. */
const FOREIGN_KEY_RECENT_MS = 60_000;

/** The text form of `farmlb status`. */
export function renderStatus(out: Output, s: DaemonStatus): string {
  const lines: string[] = [];
  lines.push(`${bold(out, `module ${s.module} on ${s.node}: ${s.state}`)} ${dim(out, `since ${clock(s.stateSince)} (${ago(s.stateSince)})`)} — ${s.stateCause}`);
  lines.push(`mode ${s.mode} · epoch ${s.epoch} · leader ${s.leader ?? '-'} · view ${s.view.join(', ') || '-'}${s.admin === 'stopped' ? ' · stopped by farmlb stop' : ''}`);
  lines.push(`lease ${s.leaseRemainingMs > 0 ? `${s.leaseRemainingMs} ms left` : 'expired'} · ${s.ready ? 'ready (ready.txt answers OK)' : 'not ready'}`);
  if (s.corosync) lines.push(corosyncLine(s.corosync));
  if (s.splitBrain) {
    const missing = s.nodes.filter((n) => !n.inView).map((n) => n.name);
    lines.push(bold(out, `WARNING: split brain: the view lacks ${missing.join(', ')} (policy ${s.splitBrainPolicy}: ${s.splitBrainPolicy === 'serve' ? 'each side serves its view\'s buckets' : 'a minority serves nothing'})`));
  }
  const selfNode = s.nodes.find((n) => n.self);
  const cookies = selfNode?.synCookies;
  if (cookies?.sentRecently) lines.push(bold(out, `WARNING: ${SYN_COOKIE_WARNING}`));
  else if (cookies?.mode === 2) lines.push(bold(out, `WARNING: ${SYN_COOKIE_ALWAYS_WARNING}`));
  for (const i of s.interfaces ?? []) {
    lines.push(`interface ${i.ifname}: ${i.vmacMode}, XDP ${i.xdpMode}${i.requested === 'auto' ? '' : ` (--xdp-mode ${i.requested})`} — ${i.reason}`);
    if (i.warning) lines.push(bold(out, `WARNING: ${i.warning}`));
  }
  // Reported, not acted upon (docs/membership.md): a peer whose heartbeats fail the MAC.
  const foreignKey = s.nodes.filter((n) => n.foreignKeyMs !== undefined && n.foreignKeyMs < FOREIGN_KEY_RECENT_MS)
    .map((n) => (n.foreignKeyId ? `${n.name} (key id ${n.foreignKeyId})` : n.name));
  if (foreignKey.length > 0) lines.push(bold(out, `WARNING: heartbeats from ${foreignKey.join(', ')} fail authentication: another key file? (give every node the same key)`));
  const refused = refusedDatagramsLine(s.membershipDatagrams);
  if (refused) lines.push(refused);
  if (!s.checks.ok) lines.push(`checks failing: ${s.checks.failures.map((f) => `${f.kind} ${f.target}: ${f.detail}`).join('; ')}`);
  // Heartbeat counts come from the membership engine; a static daemon has none.
  const heard = (s.nodes as (NodeStatus & PeerHeartbeats)[]).map((n) => (n.self || n.heartbeatsReceived === undefined ? undefined
    : `${n.heartbeatsReceived} (${n.heartbeatsMissed ?? 0} missed)`));
  const withHeartbeats = heard.some((h) => h !== undefined);
  const header = ['NODE', 'STATE', 'VIEW', ...s.groups.flatMap((g) => [`${g} BUCKETS`, 'SHARE', 'POWER']), ...(withHeartbeats ? ['HEARTBEATS'] : [])];
  const rows = s.nodes.map((n, i) => [
    `${n.name}${n.self ? '*' : ''}`,
    n.state,
    n.inView ? 'yes' : 'no',
    ...s.groups.flatMap((g) => [bucketsCell(n, g), pct(n.share[g] ?? 0), `${n.power[g] ?? 0}${n.overridden ? ' (set)' : ''}`]),
    ...(withHeartbeats ? [heard[i] ?? '-'] : []),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  lines.push('', fmt(header), ...rows.map(fmt));
  const handover = selfNode?.handover;
  if (selfNode && handover && handover.prevBuckets > 0) {
    const sampled = handover.sampledAtMs === undefined ? '' : dim(out, ` (counted ${ago(handover.sampledAtMs)} ago)`);
    lines.push('', `handover: ${selfNode.name} hands over ${handover.prevBuckets} bucket${handover.prevBuckets === 1 ? '' : 's'} and still holds ${handover.connections} connection${handover.connections === 1 ? '' : 's'} in them${sampled}`);
  }
  const v = s.lastViewChange;
  if (v) {
    const timing = [v.detectionMs !== undefined && `detection ${Math.round(v.detectionMs)} ms`, v.installMs !== undefined && `install ${v.installMs.toFixed(1)} ms`,
      v.moved !== undefined && `${v.moved} buckets moved`].filter(Boolean).join(', ');
    lines.push('', `last view change: epoch ${v.epoch} at ${clock(v.at)} (${v.cause})${timing ? `: ${timing}` : ''}`);
  }
  return lines.join('\n');
}

/** Runs one control command and prints the state it left the module in. */
export async function runControl(ctx: CommandContext, opts: Record<string, unknown>, req: { cmd: string } & Record<string, unknown>, say: (s: DaemonStatus) => string): Promise<number> {
  const paths = await controlPaths(opts);
  const status = await controlRequest(paths.runDir, req as never, { module: paths.module, timeoutMs: 10_000 }) as DaemonStatus;
  if (ctx.out.json) ctx.out.printJson(status);
  else ctx.out.print(say(status));
  return EXIT.OK;
}

/** The Corosync backend's ring, quorum and CPG group, in one line (docs/cli.md, "status"). */
export function corosyncLine(c: NonNullable<DaemonStatus['corosync']>): string {
  const hung = c.hung ? ` · corosync DOES NOT ANSWER (${c.hung.call} pending for ${c.hung.pendingMs} ms)` : '';
  const hangs = c.hangs > 0 ? ` · corosync hung ${c.hangs} time${c.hangs === 1 ? '' : 's'}${c.droppedMessages > 0 ? `, ${c.droppedMessages} farm messages dropped` : ''}` : '';
  if (!c.connected) return `membership corosync · not connected to corosync on this node${hung}${hangs}`;
  const quorum = c.quorate === null ? 'quorum unknown (waiting for votequorum)' : c.quorate ? 'quorate' : 'NOT quorate';
  const vq = c.votequorum ? ` (votes ${c.votequorum.totalVotes}/${c.votequorum.expectedVotes}, quorum ${c.votequorum.quorum}${c.votequorum.twoNode ? ', two_node' : ''}${c.votequorum.qdevice ? `, qdevice ${c.votequorum.qdeviceAlive ? 'alive' : 'down'}` : ''})` : '';
  const members = c.members.map((m) => `${m.node ?? '?'}=${m.nodeid}:${m.pid}${m.state === 'UP' ? '' : ` (${m.state})`}`).join(', ');
  const timing = c.tokenMs !== undefined ? ` · ${c.transport ?? '?'} token ${c.tokenMs} ms, consensus ${c.consensusMs ?? '?'} ms` : '';
  return `membership corosync${hung} · ring ${c.ringId ?? '-'} · ${quorum}${vq}${c.syncing ? ' · synchronising' : ''} · CPG members ${members || '-'}${timing}${hangs}`;
}

/**
 * "heartbeat port: 47 datagrams refused since start (not_farmlb 40, bad_mac 7); busiest
 * sources 10.0.0.9 (40), 10.0.0.12 (7)" — or nothing when none was. Refused datagrams changed
 * no state (docs/security.md); the line says they come, and from where, for a firewall rule.
 */
export function refusedDatagramsLine(d: DaemonStatus['membershipDatagrams']): string | undefined {
  if (!d) return undefined;
  const reasons = Object.entries(d.dropped).filter(([, n]) => n > 0);
  const total = reasons.reduce((a, [, n]) => a + n, 0);
  if (total === 0) return undefined;
  const sources = d.droppedBySource.slice(0, 3).map((x) => `${x.source} (${x.count})`).join(', ');
  return `heartbeat port: ${total} datagram${total === 1 ? '' : 's'} refused since start (${reasons.map(([r, n]) => `${r} ${n}`).join(', ')})${sources ? `; busiest source${d.droppedBySource.length === 1 ? '' : 's'} ${sources}` : ''}`;
}
