// `scripts/bench failover`: how long a farm takes to serve a dead node's clients again, seen
// from a client, for farmlb (default timing and a fast profile) and for keepalived VRRP moving
// one VIP between the same namespaces (advert_int 1, VRRPv2; advert_int 0.1, VRRPv3); then
// convergence time and daemon CPU for farms of 2, 4, 8 and 16 nodes. A benchmark, not a
// test: it asserts no time, and fails only when it could not measure (docs/benchmarks.md).
//
// The lab is the one of the failover lab tests, rebuilt here because dist/ cannot import
// test/: a bridge in flb-bfo<pid>-sw, a client flb-bfo<pid>-c, nodes flb-bfo<pid>-n<i> each
// with interface flbn, a real `farmlb run` (membership mode) and an HTTP server answering its
// node name. The client's prober runs in the client namespace and stamps every event with
// CLOCK_MONOTONIC (process.hrtime), the same clock the kill is stamped with here.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PinnedDataplane, XdpDataplane, removeEmptyPinRoot } from '../dataplane/xdp.js';
import { PIN_ROOT } from '../paths.js';
import { controlRequest } from '../api/control.js';
import type { DaemonStatus } from '../api/status.js';
import { NODE_NONE } from '../dataplane/types.js';
import { addrBytes } from '../balance/addr.js';
import { bucketOf } from '../balance/hash.js';
import { clockTicksPerSecond, inNs, processTicks, run } from './proc.js';
import { median, percentile, round, sleep } from './stats.js';
import { HASH_SEED, HTTP_PORT, VIP } from './lab-farm.js';
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import { COMMON_OPTIONS, emitReport, notRoot, progress } from './cli.js';
import { PollClient, pollTotals } from './poll-client.js';
import { machineFacts } from './machine.js';
import { CorosyncNodes } from './corosync-nodes.js';
import { DEFAULT_TIMING } from '../membership/index.js';

export type MembershipBackend = 'builtin' | 'corosync';
/** corosync's totem port (udpu). */
const COROSYNC_PORT = 5405;
import { renderSurvivorCases, survivorCases, type SurvivorCase } from './survivors.js';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const FARMLB_BIN = path.join(REPO, 'bin/farmlb.js');
const MEMBERSHIP_PORT = 4800;
const node4 = (i: number) => `10.80.0.${11 + i}`;
const nodeMac = (i: number) => `02:80:00:00:00:${(0x11 + i).toString(16).padStart(2, '0')}`;
/** Client source addresses, 250 per /24 from 10.80.1.1 (the handover bench uses up to 4,000). */
const clientExtra = (i: number) => `10.80.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
/** Client probe period and per-attempt timeout (a `curl --max-time 0.15` every 20 ms). */
const PROBE_EVERY_MS = 20;
const PROBE_TIMEOUT_MS = 150;

export interface TimingProfile {
  name: string;
  /** <farm> attributes; empty = farmlb's defaults. */
  farm: { pulse?: string; slost_count?: number; mlost_count?: number };
  description: string;
}

export const PROFILES: Record<string, TimingProfile> = {
  default: { name: 'default', farm: {}, description: 'no <farm> timing attributes: what farmlb ships' },
  fast: { name: 'fast', farm: { pulse: '15ms', slost_count: 4, mlost_count: 5 }, description: 'pulse 15 ms, slost_count 4, mlost_count 5' },
};

export interface FailoverSeries {
  system: string;
  /** Timing as the daemons or keepalived used it. */
  timing: string;
  trials: number[];
  p50: number;
  p99: number;
  max: number;
  failed: number;
  /** Per victim role (farmlb): p50 when the leader / a follower died. */
  byRole?: Record<string, number>;
  /** Corosync backend (no leader): p50 per killed node. */
  byNode?: Record<string, number>;
  /** Corosync backend: totem rings formed while the loss window ran (0 = no false membership change). */
  ringChangesUnderLoss?: number;
  /** Table changes (and, Corosync, totem rings formed) over idleWindowS seconds at rest. */
  idleWindowS?: number;
  tableChangesIdle?: number;
  ringChangesIdle?: number;
  /** farmlb: table changes seen while 20% of heartbeats were dropped for lossWindowS (0 = no false failover). */
  falseFailoversUnderLoss?: number;
  lossWindowS?: number;
}

export interface ScaleRow {
  nodes: number;
  membership?: MembershipBackend;
  /** Corosync backend: corosync's own CPU per node at rest, % of one core. */
  corosyncCpuMeanPct?: number;
  timing: string;
  /** kill -9 of a follower → every survivor has the same table without it, median of the trials (ms). */
  convergenceMs: number;
  convergenceTrialsMs: number[];
  /** Daemon CPU per node over the window, % of one core. */
  cpuMeanPct: number;
  cpuMaxPct: number;
  /** Of that, the heartbeat path (the daemons' own meter: send, receive, tick), % of one core. */
  heartbeatCpuMeanPct: number;
  heartbeatCpuMaxPct: number;
  /** No table changed on any node during the window (else the CPU is not that of a farm at rest). */
  atRest: boolean;
  windowS: number;
  /** Seconds the farm ran after agreeing before the CPU window (past Node's start-up compilation). */
  settleS?: number;
  /**
   * The floor in the same window (built-in protocol only; heartbeat-floor.ts), % of one core:
   * a Node process woken at the pulse doing nothing, and one that signs, sends, drains,
   * verifies and parses a node's datagrams with no protocol.
   */
  floorTimerPct?: number;
  floorDatagramsPct?: number;
}

export interface DirectedRecovery {
  /** kill -9 of the node the client's ARP entry pointed at → a new connection served (ms). */
  trials: number[];
  p50: number;
  /** → the client's neighbour entry for the VIP names a live node's MAC (ms). */
  arpP50: number;
}

/** "Application killed": the web server of a node killed → its clients served by another node. */
export interface AppKilledSeries extends FailoverSeries {
  /** Requests of the sources not served by the killed node (bystanders), and how many failed. */
  bystanderRequests?: number;
  bystanderFailed?: number;
}

export interface FailoverReport {
  series: FailoverSeries[];
  app?: AppKilledSeries[];
  /** Per case, the failed requests of the other nodes' clients (survivors.ts), for the first profile. */
  survivors?: { timing: string; cases: SurvivorCase[] };
  scale: ScaleRow[];
  directed?: DirectedRecovery;
  notes: string[];
}

export { percentile } from './stats.js';
export { inNs } from './proc.js';
export { HASH_SEED, HTTP_PORT, VIP } from './lab-farm.js';

const nowNs = (): bigint => process.hrtime.bigint();

// ---- the lab -------------------------------------------------------------------------

/** Farms not yet cleaned up, for a signal handler. */
export const liveFarms = new Set<BenchFarm>();

interface BenchNode {
  name: string;
  index: number;
  ns: string;
  pinDir: string;
  runDir: string;
  power: number;
  daemon?: ChildProcess;
  log: string;
  server?: ChildProcess;
}

const SERVER_JS = `
const [name] = process.argv.slice(1);
require('http').createServer((req, res) => res.end(name + '\\n')).listen({ port: ${HTTP_PORT}, host: '0.0.0.0', backlog: 4096 });
`;

export class BenchFarm {
  readonly tag: string;
  readonly dir: string;
  readonly switchNs: string;
  readonly clientNs: string;
  readonly nodes: BenchNode[];
  readonly clientAddrs: string[];
  private readonly keyFile: string;
  /** Namespaces of hosts that are not nodes (addHost), removed with the rest. */
  private readonly extraNs: string[] = [];
  private prober?: Prober;
  private readonly readers = new Map<BenchNode, PinnedDataplane>();
  /** Extra <farmlb> attributes (the handover benchmark sets handover_limit). */
  farmlbAttrs: Record<string, string> = {};
  /** Set before build(): the membership backend; corosync runs one corosync per node namespace. */
  membership: MembershipBackend = 'builtin';
  /** corosync's token with the corosync backend (default: farmlb corosync-conf's). */
  corosyncTokenMs: number | undefined;
  corosync: CorosyncNodes | undefined;
  /** Extra sections inside <service> (the "application killed" series sets a <check>). */
  appXml = '';

  constructor(tag: string, powers: number[], private readonly mode: 'vmac_invisible' | 'vmac_directed', clientAddrs: number) {
    this.tag = tag;
    this.dir = mkdtempSync(path.join(os.tmpdir(), `flb-${tag}-`));
    this.switchNs = `flb-${tag}-sw`;
    this.clientNs = `flb-${tag}-c`;
    this.keyFile = path.join(this.dir, 'heartbeat.key');
    this.clientAddrs = Array.from({ length: clientAddrs }, (_, i) => clientExtra(i));
    this.nodes = powers.map((power, index) => ({
      name: `n${index + 1}`, index, power, ns: `flb-${tag}-n${index + 1}`, log: '',
      pinDir: `${PIN_ROOT}/flb-${tag}-n${index + 1}`, runDir: path.join(this.dir, `n${index + 1}`),
    }));
  }

  async build(profile: TimingProfile): Promise<void> {
    const all = [this.switchNs, this.clientNs, ...this.nodes.map((n) => n.ns)];
    for (const ns of all) {
      await run('ip', ['netns', 'add', ns]);
      await inNs(ns, 'ip', ['link', 'set', 'lo', 'up']);
      await inNs(ns, 'sysctl', ['-q', '-w', 'net.ipv6.conf.default.disable_ipv6=1', 'net.ipv6.conf.all.disable_ipv6=1']);
    }
    await inNs(this.switchNs, 'ip', ['link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0']);
    await inNs(this.switchNs, 'ip', ['link', 'set', 'br0', 'up']);
    await this.plug('p-c', this.clientNs, 'flbc', '02:80:00:00:00:01');
    await inNs(this.clientNs, 'ethtool', ['-K', 'flbc', 'tx', 'off']).catch(() => '');
    const lines = ['addr add 10.80.0.1/16 dev flbc', ...this.clientAddrs.map((a) => `addr add ${a}/16 dev flbc`)];
    await run('nsenter', [`--net=/run/netns/${this.clientNs}`, '--', 'sh', '-c', `printf '%s\\n' ${lines.map((l) => `'${l}'`).join(' ')} | ip -batch -`]);
    for (const n of this.nodes) {
      await this.plug(`p-n${n.index + 1}`, n.ns, 'flbn', nodeMac(n.index));
      await inNs(n.ns, 'ip', ['addr', 'add', `${node4(n.index)}/16`, 'dev', 'flbn']);
      mkdirSync(n.runDir, { recursive: true });
      this.startServer(n);
    }
    writeFileSync(this.keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    if (this.membership === 'corosync') this.farmlbAttrs.membership = 'corosync';
    this.writeConfig(profile);
    if (this.membership === 'corosync') {
      this.corosync = new CorosyncNodes({
        dir: this.dir, nodes: this.nodes.map((n) => ({ name: n.name, ns: n.ns })), farmlbBin: FARMLB_BIN,
        configArgs: ['-c', path.join(this.dir, 'userconfig.xml'), '--cluster', path.join(this.dir, 'cluster.xml')],
        ...(this.corosyncTokenMs ? { tokenMs: this.corosyncTokenMs } : {}),
      });
      await this.corosync.writeConf();
      await Promise.all(this.nodes.map((n) => this.corosync!.start(n.name, { timeoutMs: 60_000 })));
    }
  }

  /** A veth from the bridge (port) into `ns` (ifname, up). */
  private async plug(port: string, ns: string, ifname: string, mac: string): Promise<void> {
    await run('ip', ['link', 'add', port, 'netns', this.switchNs, 'type', 'veth', 'peer', 'name', ifname, 'netns', ns, 'address', mac]);
    await inNs(this.switchNs, 'ip', ['link', 'set', port, 'master', 'br0']);
    // vmac_directed forwards with XDP_TX: the bridge-side veth needs an XDP program to accept it (LAB-NOTES).
    if (this.mode === 'vmac_directed') await inNs(this.switchNs, 'ip', ['link', 'set', 'dev', port, 'xdpdrv', 'obj', path.join(REPO, 'bpf/build/nop.bpf.o'), 'sec', 'xdp']);
    await inNs(this.switchNs, 'ip', ['link', 'set', port, 'up']);
    await inNs(ns, 'ip', ['link', 'set', ifname, 'up']);
  }

  /**
   * A host of the lab that is not a node (the heartbeat floor's): its own namespace on the
   * bridge with `addr`/16, removed with the farm.
   */
  async addHost(name: string, index: number, addr: string): Promise<string> {
    const ns = `flb-${this.tag}-${name}`;
    await run('ip', ['netns', 'add', ns]);
    this.extraNs.push(ns);
    await inNs(ns, 'ip', ['link', 'set', 'lo', 'up']);
    await this.plug(`p-${name}`, ns, 'flbh', `02:80:00:00:02:${(index + 1).toString(16).padStart(2, '0')}`);
    await inNs(ns, 'ip', ['addr', 'add', `${addr}/16`, 'dev', 'flbh']);
    return ns;
  }

  /** The node's web server (the application of the "application killed" series). */
  startServer(n: BenchNode): void {
    n.server = spawn('nsenter', [`--net=/run/netns/${n.ns}`, '--', 'node', '-e', SERVER_JS, n.name, this.dir], { stdio: 'ignore' });
  }

  async waitServer(n: BenchNode, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await inNs(n.ns, 'ss', ['-Hltn', `sport = :${HTTP_PORT}`]).catch(() => '')).includes(`:${HTTP_PORT}`)) {
      if (Date.now() > deadline) throw new Error(`the server of ${n.name} does not listen`);
      await sleep(20);
    }
  }

  async killServer(n: BenchNode): Promise<void> {
    const srv = n.server;
    if (!srv || srv.exitCode !== null || srv.signalCode !== null) return;
    srv.kill('SIGKILL');
    while (srv.exitCode === null && srv.signalCode === null) await sleep(2);
  }

  writeConfig(profile: TimingProfile): void {
    const farmAttrs = Object.entries(profile.farm).map(([k, v]) => ` ${k}="${String(v)}"`).join('');
    const hosts = this.nodes.map((n) => `<host name="${n.name}" power="${n.power}"/>`).join('');
    writeFileSync(path.join(this.dir, 'cluster.xml'), `<cluster><lans><lan name="default">${this.nodes.map((n) => `<node name="${n.name}" addr="${node4(n.index)}"/>`).join('')}</lan></lans></cluster>\n`);
    writeFileSync(path.join(this.dir, 'userconfig.xml'), `<safe><service mode="farm">
 <farm${farmAttrs}><lan name="default"/></farm>
 <vip><interface_list><interface check="on" name="flbn"${this.mode === 'vmac_directed' ? ' arpreroute="on"' : ''}>
  <virtual_interface type="${this.mode}"><virtual_addr addr="${VIP}" where="alias"/></virtual_interface>
 </interface></interface_list>
 <loadbalancing_list><group name="web"><cluster>${hosts}</cluster>
  <rule virtual_addr="${VIP}" port="${HTTP_PORT}" proto="tcp" filter="on_addr"/>${this.mode === 'vmac_directed' ? '<rule proto="arp" filter="on_addr"/>' : ''}
 </group></loadbalancing_list></vip>
${this.appXml} <farmlb module="bench-${this.tag}" hash_seed="0x${HASH_SEED.toString(16)}" key_file="${this.keyFile}"${Object.entries(this.farmlbAttrs).map(([k, v]) => ` ${k}="${v}"`).join('')}/>
</service></safe>\n`);
  }

  async startDaemon(n: BenchNode, timeoutMs = 30_000): Promise<void> {
    this.forgetReader(n);
    const args = ['run', '-c', path.join(this.dir, 'userconfig.xml'), '--cluster', path.join(this.dir, 'cluster.xml'), '--node', n.name,
      '--pin-dir', n.pinDir, '--run-dir', n.runDir, '--xdp-mode', this.mode === 'vmac_directed' ? 'native' : 'generic'];
    const from = n.log.length;
    const abArm = abArmOf(this.nodes.indexOf(n));
    const nodeArgs = ((abArm === 'B' ? process.env.FARMLB_BENCH_AB_NODE_ARGS : undefined) ?? process.env.FARMLB_BENCH_DAEMON_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
    const bin = abArm === 'B' && process.env.FARMLB_BENCH_AB_BIN ? process.env.FARMLB_BENCH_AB_BIN : FARMLB_BIN;
    const d = spawn('nsenter', [`--net=/run/netns/${n.ns}`, '--', 'node', ...nodeArgs, bin, ...args],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FARMLB_LOG_LEVEL: 'info', NO_COLOR: '1' } });
    n.daemon = d;
    const add = (b: Buffer) => { if (n.log.length < 4 << 20) n.log += b.toString(); };
    d.stdout!.on('data', add);
    d.stderr!.on('data', add);
    const deadline = Date.now() + timeoutMs;
    while (!/"event":"started"/.test(n.log.slice(from))) {
      if (d.exitCode !== null || d.signalCode !== null) throw new Error(`farmlb run on ${n.name} exited while starting:\n${n.log.slice(from)}`);
      if (Date.now() > deadline) throw new Error(`farmlb run on ${n.name} did not start within ${timeoutMs} ms:\n${n.log.slice(from)}`);
      await sleep(50);
    }
  }

  /** The daemon's heartbeat CPU meter (seconds, all parts) and installed epoch, over its control socket. */
  async meter(n: BenchNode): Promise<{ cpuSeconds: number; sendSeconds: number; receiveSeconds: number; tickSeconds: number; epoch: number }> {
    const s = await controlRequest(n.runDir, { cmd: 'status' }, { module: `bench-${this.tag}`, timeoutMs: 5_000 }) as DaemonStatus;
    const c = s.membershipCpu;
    if (!c) throw new Error(`${n.name}: the status carries no membershipCpu (not in membership mode?)`);
    return { cpuSeconds: c.sendSeconds + c.receiveSeconds + c.tickSeconds, sendSeconds: c.sendSeconds, receiveSeconds: c.receiveSeconds, tickSeconds: c.tickSeconds, epoch: s.epoch };
  }

  async killDaemon(n: BenchNode, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const d = n.daemon;
    if (!d || d.exitCode !== null || d.signalCode !== null) return;
    d.kill(signal);
    const deadline = Date.now() + (signal === 'SIGKILL' ? 5_000 : 10_000);
    while (d.exitCode === null && d.signalCode === null && Date.now() < deadline) await sleep(10);
    if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
  }

  /** The timing the daemons logged (membership_config), for the report. */
  timing(): string {
    const c = /"event":"membership_config","backend":"corosync","pulseMs":(\d+),"slostCount":\d+,"mlostCount":\d+,"leaseMs":(\d+).*?"transport":"(\w+)","tokenMs":(\d+),"consensusMs":(\d+)/.exec(this.nodes[0]!.log);
    if (c) return `corosync ${c[3]} token ${c[4]} ms, consensus ${c[5]} ms; pulse ${c[1]} ms, lease ${c[2]} ms`;
    const m = /"event":"membership_config","pulseMs":(\d+),"slostCount":(\d+),"mlostCount":(\d+),"leaseMs":(\d+)/.exec(this.nodes[0]!.log);
    return m ? `pulse ${m[1]} ms, slost ${m[2]}, mlost ${m[3]}, lease ${m[4]} ms` : 'unknown';
  }

  /** Totem rings formed so far, all nodes together (corosync backend; 0 otherwise). */
  ringsFormed(): number {
    return this.nodes.reduce((sum, n) => sum + (this.corosync?.ringsFormed(n.name) ?? 0), 0);
  }

  /** owners[bucket] (group 0) and lease validity of a node, read from its pins; undefined when absent. */
  /**
   * One node's active owners of group 0 and whether its lease is valid. The pinned maps stay
   * open between polls (reopening and checking ten maps costs ~1 ms a node, and a poller
   * that busy on 2 vCPUs slows the very daemons it times); a (re)started daemon gets a new
   * reader, as it may have replaced its maps.
   */
  read(n: BenchNode): { owners: number[]; handover: boolean; leaseValid: boolean } | undefined {
    try {
      let reader = this.readers.get(n);
      if (!reader) {
        reader = XdpDataplane.readPinned(n.pinDir);
        this.readers.set(n, reader);
      }
      const { owners, handover, lease } = reader.ownersAndLease(0);
      return { owners, handover, leaseValid: lease.valid };
    } catch {
      this.forgetReader(n);
      return undefined;
    }
  }

  private forgetReader(n: BenchNode): void {
    this.readers.get(n)?.close();
    this.readers.delete(n);
  }

  /**
   * Every node of `members` has the same table, owned only by members (all of them), and a
   * valid lease. Stops at the first node that is not there yet: a poll while the farm
   * converges mostly costs one node's read.
   */
  agreed(members: BenchNode[]): number[] | undefined {
    const ids = new Set(members.map((n) => n.index));
    let first: number[] | undefined;
    for (const n of members) {
      const r = this.read(n);
      if (!r || !r.leaseValid) return undefined;
      if (!first) {
        first = r.owners;
        if (first.some((o) => o === NODE_NONE || !ids.has(o))) return undefined;
        if (members.some((m) => !first!.includes(m.index))) return undefined;
      } else if (r.owners.some((o, b) => o !== first![b])) {
        return undefined;
      }
    }
    return first;
  }

  /** Until no node's table names a previous owner (a rejoin's handover ended); `after` says since what, for the error. */
  async waitNoHandover(after: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.nodes.some((n) => this.read(n)?.handover !== false)) {
      if (Date.now() > deadline) throw new Error(`the farm still hands buckets over ${timeoutMs / 1000} s after ${after}`);
      await sleep(50);
    }
  }

  async waitAgreed(members: BenchNode[], timeoutMs: number, intervalMs = 5): Promise<number[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const owners = this.agreed(members);
      if (owners) return owners;
      if (Date.now() > deadline) throw new Error(`${members.map((n) => n.name).join(',')} did not agree on a table within ${timeoutMs} ms`);
      await sleep(intervalMs);
    }
  }

  getProber(): Prober {
    this.prober ??= new Prober(this.clientNs, this.dir);
    return this.prober;
  }

  async cleanup(): Promise<void> {
    liveFarms.delete(this);
    this.prober?.close();
    for (const n of this.nodes) this.forgetReader(n);
    await Promise.all(this.nodes.map((n) => this.killDaemon(n, 'SIGTERM')));
    // The daemons' logs, for a trial to be read afterwards (one file per farm and node).
    const keep = process.env.FARMLB_BENCH_LOG_DIR;
    if (keep) {
      mkdirSync(keep, { recursive: true });
      for (const n of this.nodes) writeFileSync(path.join(keep, `${this.tag}-${n.name}.log`), n.log);
    }
    await this.corosync?.cleanup();
    for (const n of this.nodes) n.server?.kill('SIGKILL');
    await stopKeepalived(this).catch(() => undefined);
    for (const ns of [this.switchNs, this.clientNs, ...this.nodes.map((n) => n.ns), ...this.extraNs]) {
      const pids = await run('ip', ['netns', 'pids', ns]).catch(() => '');
      for (const pid of pids.split(/\s+/).filter(Boolean)) {
        try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
      }
      await run('ip', ['netns', 'del', ns]).catch(() => '');
    }
    for (const n of this.nodes) rmSync(n.pinDir, { recursive: true, force: true });
    removeEmptyPinRoot();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---- the client's prober ----------------------------------------------------------

// stdin: "probe <src> <notBody>" → every 20 ms a new connection from src to the VIP, each
// given 150 ms; the first answer whose body is not <notBody> ("-" for any) prints
// "ok <hrtimeNs> <body>". "once <src>" → "one <body or ERR>".
const PROBER_JS = String.raw`
const net = require('net');
let timer = null;
const attempt = (src, onDone) => {
  let buf = '';
  let done = false;
  const finish = (body) => { if (done) return; done = true; clearTimeout(t); s.destroy(); onDone(body); };
  const s = net.connect({ host: '${VIP}', port: ${HTTP_PORT}, localAddress: src });
  const t = setTimeout(() => finish(null), ${PROBE_TIMEOUT_MS});
  s.on('connect', () => s.write('GET / HTTP/1.0\r\n\r\n'));
  s.on('data', (d) => { buf += d; });
  s.on('end', () => { const i = buf.indexOf('\r\n\r\n'); finish(i >= 0 ? buf.slice(i + 4).trim() : null); });
  s.on('error', () => finish(null));
};
let input = '';
process.stdin.on('data', (d) => {
  input += d;
  let nl;
  while ((nl = input.indexOf('\n')) >= 0) {
    const [cmd, src, not] = input.slice(0, nl).trim().split(' ');
    input = input.slice(nl + 1);
    if (cmd === 'once') attempt(src, (b) => process.stdout.write('one ' + (b || 'ERR') + '\n'));
    if (cmd === 'probe') {
      let found = false;
      const go = () => attempt(src, (b) => {
        if (found || !b || b === not) return;
        found = true;
        clearInterval(timer);
        process.stdout.write('ok ' + process.hrtime.bigint() + ' ' + b + '\n');
      });
      go();
      timer = setInterval(go, ${PROBE_EVERY_MS});
    }
    if (cmd === 'cancel') { clearInterval(timer); process.stdout.write('cancelled\n'); }
  }
});
process.stdin.on('end', () => process.exit(0));
`;

export class Prober {
  private readonly child: ChildProcess;
  private out = '';

  constructor(clientNs: string, tagArg: string) {
    this.child = spawn('nsenter', [`--net=/run/netns/${clientNs}`, '--', 'node', '-e', PROBER_JS, tagArg], { stdio: ['pipe', 'pipe', 'ignore'] });
    this.child.stdout!.on('data', (d: Buffer) => { this.out += d.toString(); });
  }

  private async line(prefix: string, from: number, timeoutMs: number): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const rest = this.out.slice(from);
      const m = new RegExp(`^${prefix} (.*)$`, 'm').exec(rest);
      if (m) return m[1]!;
      await sleep(2);
    }
    return undefined;
  }

  async once(src: string): Promise<string> {
    const from = this.out.length;
    this.child.stdin!.write(`once ${src}\n`);
    return (await this.line('one', from, 2_000)) ?? 'ERR';
  }

  /** Starts probing; the promise gives the hrtime (ns) of the first answer not from `notBody`. */
  probe(src: string, notBody: string, timeoutMs: number): Promise<{ atNs: bigint; body: string } | undefined> {
    const from = this.out.length;
    this.child.stdin!.write(`probe ${src} ${notBody}\n`);
    return this.line('ok', from, timeoutMs).then(async (l) => {
      if (!l) {
        this.child.stdin!.write('cancel\n');
        await this.line('cancelled', from, 1_000);
        return undefined;
      }
      const [ns, body] = l.split(' ');
      return { atNs: BigInt(ns!), body: body! };
    });
  }

  close(): void {
    this.child.stdin!.end();
    setTimeout(() => this.child.kill('SIGKILL'), 500).unref();
  }
}

// ---- farmlb failover trials ---------------------------------------------------------

async function farmlbSeries(farm: BenchFarm, profile: TimingProfile, trials: number, lossWindowS: number, progress: (s: string) => void, idleWindowS = 0, killCorosync = false): Promise<FailoverSeries> {
  const prober = farm.getProber();
  const times: number[] = [];
  const roles: Record<string, number[]> = farm.membership === 'corosync' ? Object.fromEntries(farm.nodes.map((n) => [n.name, []])) : { leader: [], follower: [] };
  let failed = 0;
  for (let t = 0; t < trials; t++) {
    const owners = await farm.waitAgreed(farm.nodes, 30_000);
    const victim = farm.nodes[t % farm.nodes.length]!;
    const src = farm.clientAddrs.find((a) => owners[bucketOf(addrBytes(a)!, HASH_SEED)] === victim.index);
    if (!src) throw new Error(`no client address in a bucket of ${victim.name}`);
    // Leader = smallest name of the view (docs/membership.md): n1 in a full farm. Corosync has
    // none: its series is reported per node.
    const role = farm.membership === 'corosync' ? victim.name : victim.index === 0 ? 'leader' : 'follower';
    // The farm agreed on its table; the client may still need a moment (a probe lost to a
    // handover step): a few tries before calling it a failure.
    let before = await prober.once(src);
    for (let i = 0; i < 20 && before !== victim.name; i++) {
      await sleep(100);
      before = await prober.once(src);
    }
    if (before !== victim.name) {
      for (const n of farm.nodes) progress(`${n.name} log (tail):\n${n.log.split('\n').slice(-15).join('\n')}`);
      throw new Error(`before the kill, ${src} was served by ${before}, not ${victim.name}`);
    }
    const probe = prober.probe(src, victim.name, 15_000);
    await sleep(30);
    const killedAt = nowNs();
    // Corosync backend, a node's death: its corosync dies with its daemon (the ring loses it).
    await Promise.all([farm.killDaemon(victim, 'SIGKILL'), killCorosync ? farm.corosync!.kill(victim.name, 'SIGKILL') : undefined]);
    const r = await probe;
    if (r) {
      const ms = Number(r.atNs - killedAt) / 1e6;
      times.push(ms);
      roles[role]!.push(ms);
    } else {
      failed++;
    }
    progress(`${profile.name} trial ${t + 1}/${trials}: ${victim.name} (${role}) killed → ${r ? `${round(Number(r.atNs - killedAt) / 1e6)} ms, served by ${r.body}` : 'not served again within 15 s'}`);
    if (killCorosync) await farm.corosync!.start(victim.name);
    await farm.startDaemon(victim);
    await farm.waitAgreed(farm.nodes, 30_000);
    await sleep(300);
  }
  let idle: { changes: number; rings: number } | undefined;
  if (idleWindowS > 0) {
    const r0 = farm.ringsFormed();
    const changes = await countTableChangesUnderLoss(farm, idleWindowS, progress, true);
    idle = { changes, rings: farm.ringsFormed() - r0 };
  }
  const ringsBefore = farm.ringsFormed();
  const falseFailovers = lossWindowS > 0 ? await countTableChangesUnderLoss(farm, lossWindowS, progress) : undefined;
  const perVictim = Object.fromEntries(Object.entries(roles).filter(([, v]) => v.length > 0).map(([k, v]) => [k, median(v)]));
  return {
    system: farm.membership === 'corosync' ? `farmlb corosync, ${killCorosync ? 'node (daemon + corosync)' : 'daemon'} killed` : `farmlb ${profile.name}`, timing: farm.timing(), trials: times,
    p50: percentile(times, 50), p99: percentile(times, 99), max: Math.max(...times), failed,
    ...(farm.membership === 'corosync' ? { byNode: perVictim } : { byRole: perVictim }),
    ...(falseFailovers !== undefined ? { falseFailoversUnderLoss: falseFailovers, lossWindowS } : {}),
    ...(falseFailovers !== undefined && farm.membership === 'corosync' ? { ringChangesUnderLoss: farm.ringsFormed() - ringsBefore } : {}),
    ...(idle ? { idleWindowS, tableChangesIdle: idle.changes, ...(farm.membership === 'corosync' ? { ringChangesIdle: idle.rings } : {}) } : {}),
  };
}

/** Table changes on any node while every node drops 20% of incoming heartbeats (nft numgen); `idle`: no loss. */
async function countTableChangesUnderLoss(farm: BenchFarm, windowS: number, progress: (s: string) => void, idle = false): Promise<number> {
  // At rest first: the last trial's rejoin hands buckets back (docs/membership.md, Handover),
  // and the table that ends a handover is not a false failover.
  await farm.waitAgreed(farm.nodes, 30_000);
  await farm.waitNoHandover('the last trial');
  await sleep(1_000);
  for (const n of idle ? [] : farm.nodes) {
    await inNs(n.ns, 'sh', ['-c', `nft -f - <<'EOF'
table inet flb_bench_loss {
  chain in { type filter hook input priority -10; policy accept;
    udp dport ${farm.membership === 'corosync' ? COROSYNC_PORT : MEMBERSHIP_PORT} numgen random mod 100 < 20 drop
  }
}
EOF`]);
  }
  let changes = 0;
  let last = farm.nodes.map((n) => farm.read(n)?.owners.join() ?? '');
  const until = Date.now() + windowS * 1000;
  while (Date.now() < until) {
    await sleep(20);
    const now = farm.nodes.map((n) => farm.read(n)?.owners.join() ?? '');
    changes += now.filter((o, i) => o !== last[i]).length;
    last = now;
  }
  for (const n of idle ? [] : farm.nodes) await inNs(n.ns, 'nft', ['delete', 'table', 'inet', 'flb_bench_loss']).catch(() => '');
  progress(`${idle ? 'idle' : '20% heartbeat loss'} for ${windowS} s: ${changes} table change(s)`);
  return changes;
}

// ---- keepalived --------------------------------------------------------------------

function keepalivedConf(n: BenchNode, advertInt: number, version: 2 | 3): string {
  return `global_defs {
  vrrp_version ${version}
  script_user root
  enable_script_security
}
vrrp_instance VI_BENCH {
  state BACKUP
  interface flbn
  virtual_router_id 51
  priority ${250 - n.index * 50}
  advert_int ${advertInt}
  virtual_ipaddress {
    ${VIP}/16 dev flbn
  }
}
`;
}

async function keepalivedPids(n: BenchNode): Promise<number[]> {
  const pids = (await run('ip', ['netns', 'pids', n.ns]).catch(() => '')).split(/\s+/).filter(Boolean).map(Number);
  return pids.filter((pid) => {
    try {
      return commOf(pid) === 'keepalived';
    } catch {
      return false;
    }
  });
}

function commOf(pid: number): string {
  return existsSync(`/proc/${pid}/comm`) ? readFileSync(`/proc/${pid}/comm`, 'utf8').trim() : '';
}

async function startKeepalived(n: BenchNode, advertInt: number, version: 2 | 3, text?: string): Promise<void> {
  const conf = path.join(n.runDir, 'keepalived.conf');
  writeFileSync(conf, text ?? keepalivedConf(n, advertInt, version));
  const child = spawn('nsenter', [`--net=/run/netns/${n.ns}`, '--', 'keepalived', '--vrrp', '--dont-fork', '--log-console', '-f', conf,
    // Fresh pid files per start: a killed run's files (or its child still exiting) must not stop this one.
    '-p', path.join(n.runDir, `keepalived-${++kaStarts}.pid`), '-r', path.join(n.runDir, `vrrp-${kaStarts}.pid`), '--no-syslog'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const add = (b: Buffer) => { if (n.log.length < 4 << 20) n.log += b.toString(); };
  child.stdout!.on('data', add);
  child.stderr!.on('data', add);
  child.unref();
}

let kaStarts = 0;

async function stopKeepalived(farm: BenchFarm): Promise<void> {
  for (const n of farm.nodes) {
    for (let i = 0; i < 50; i++) {
      const pids = await keepalivedPids(n);
      if (pids.length === 0) break;
      for (const pid of pids) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      await sleep(20);
    }
  }
}

async function vipOn(n: BenchNode): Promise<boolean> {
  return (await inNs(n.ns, 'ip', ['-4', '-o', 'addr', 'show', 'dev', 'flbn'])).includes(` ${VIP}/`);
}

async function keepalivedSeries(farm: BenchFarm, advertInt: number, version: 2 | 3, trials: number, progress: (s: string) => void): Promise<FailoverSeries> {
  const name = `keepalived VRRPv${version} advert_int ${advertInt}`;
  for (const n of farm.nodes) await startKeepalived(n, advertInt, version);
  const master = farm.nodes[0]!;
  const prober = farm.getProber();
  const src = farm.clientAddrs[0]!;
  const times: number[] = [];
  let failed = 0;
  try {
    for (let t = 0; t < trials; t++) {
      const deadline = Date.now() + 30_000;
      while ((await prober.once(src)) !== master.name) {
        if (Date.now() > deadline) throw new Error(`${name}: ${master.name} did not become master`);
        await sleep(100);
      }
      const probe = prober.probe(src, master.name, 20_000);
      await sleep(30);
      const pids = await keepalivedPids(master);
      const killedAt = nowNs();
      // Parent and VRRP child together: a crash, not a shutdown (a dying child would send priority 0).
      for (const pid of pids) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      const r = await probe;
      if (r) times.push(Number(r.atNs - killedAt) / 1e6);
      else {
        failed++;
        for (const n of farm.nodes) progress(`${n.name} keepalived log (tail):\n${n.log.split('\n').filter((x) => /^\w{3} \w{3} /.test(x)).slice(-8).join('\n')}`);
      }
      progress(`${name} trial ${t + 1}/${trials}: ${r ? `${round(Number(r.atNs - killedAt) / 1e6)} ms, served by ${r.body}` : 'not served again within 20 s'}`);
      // A killed keepalived leaves its VIP behind; remove it before the restart preempts back.
      if (await vipOn(master)) await inNs(master.ns, 'ip', ['addr', 'del', `${VIP}/16`, 'dev', 'flbn']).catch(() => '');
      await startKeepalived(master, advertInt, version);
    }
  } finally {
    await stopKeepalived(farm);
    for (const n of farm.nodes) if (await vipOn(n)) await inNs(n.ns, 'ip', ['addr', 'del', `${VIP}/16`, 'dev', 'flbn']).catch(() => '');
  }
  return { system: name, timing: `advert_int ${advertInt} s, VRRPv${version}, priorities 250/200/150, preempt`, trials: times,
    p50: percentile(times, 50), p99: percentile(times, 99), max: Math.max(...times), failed };
}

// ---- application killed ----------------------------------------------------------------

/** Checker timings of the "application killed" series: the target one, and keepalived's smallest. */
export const APP_TIMINGS = [
  { intervalMs: 250, fall: 2 },
  { intervalMs: 1000, fall: 2 },
];

function appCheckXml(t: { intervalMs: number; fall: number }): string {
  return ` <check><tcp ident="web" action="wait" fall="${t.fall}" rise="2"><to addr="127.0.0.1" port="${HTTP_PORT}" interval="${t.intervalMs}ms" timeout="1s"/></tcp></check>\n`;
}

/**
 * farmlb: kill -9 of a node's web server (each node in turn) → the first answer from another
 * node to a source of its buckets; meanwhile a client polls from every source, and the sources
 * the killed node did not serve must see no failed request.
 */
async function farmlbAppSeries(farm: BenchFarm, timing: { intervalMs: number; fall: number }, trials: number, progress: (s: string) => void): Promise<AppKilledSeries> {
  const prober = farm.getProber();
  // The short-connection client of the lab tests over every source: bystander failures during a trial.
  const poller = PollClient.start(farm.clientNs, farm.dir, { sources: farm.clientAddrs, host: VIP, port: HTTP_PORT, intervalMs: 50, timeoutMs: 300 });
  const times: number[] = [];
  const roles: Record<string, number[]> = { leader: [], follower: [] };
  let failed = 0;
  let bystanderRequests = 0;
  let bystanderFailed = 0;
  const label = `interval ${timing.intervalMs} ms, fall ${timing.fall}`;
  try {
    for (let t = 0; t < trials; t++) {
      const owners = await farm.waitAgreed(farm.nodes, 30_000);
      const victim = farm.nodes[t % farm.nodes.length]!;
      const ownerOf = (a: string) => owners[bucketOf(addrBytes(a)!, HASH_SEED)];
      const src = farm.clientAddrs.find((a) => ownerOf(a) === victim.index);
      if (!src) throw new Error(`no client address in a bucket of ${victim.name}`);
      const role = victim.index === 0 ? 'leader' : 'follower';
      // The first connection after the farm formed may still wait for ARP: a few tries.
      let before = await prober.once(src);
      for (let i = 0; i < 20 && before !== victim.name; i++) {
        await sleep(100);
        before = await prober.once(src);
      }
      if (before !== victim.name) throw new Error(`before the kill, ${src} was served by ${before}, not ${victim.name}`);
      await poller.mark();
      const probe = prober.probe(src, victim.name, 15_000);
      await sleep(30);
      const killedAt = nowNs();
      await farm.killServer(victim);
      const r = await probe;
      await sleep(500);
      const report = await poller.report();
      const { answered, failed: bFailed } = pollTotals(report, (src) => ownerOf(src) !== victim.index);
      bystanderRequests += answered + bFailed;
      bystanderFailed += bFailed;
      if (r) {
        const ms = Number(r.atNs - killedAt) / 1e6;
        times.push(ms);
        roles[role]!.push(ms);
      } else {
        failed++;
      }
      progress(`farmlb application killed (${label}) trial ${t + 1}/${trials}: ${victim.name} (${role}) → ${r ? `${round(Number(r.atNs - killedAt) / 1e6)} ms, served by ${r.body}` : 'not served again within 15 s'}; bystander requests failed: ${bFailed}`);
      farm.startServer(victim);
      await farm.waitServer(victim);
      // Back in the farm (after rise), every handover over, before the next trial.
      await farm.waitAgreed(farm.nodes, 30_000);
      await farm.waitNoHandover('the application came back');
      await sleep(300);
    }
  } finally {
    poller.close(500);
  }
  return {
    system: `farmlb application killed, ${label}`, timing: `<tcp> checker ${label}, rise 2; ${farm.timing()}`, trials: times,
    p50: percentile(times, 50), p99: percentile(times, 99), max: Math.max(...times), failed, bystanderRequests, bystanderFailed,
    byRole: Object.fromEntries(Object.entries(roles).filter(([, v]) => v.length > 0).map(([k, v]) => [k, median(v)])),
  };
}

/**
 * keepalived, the same application check as a vrrp_script (curl of the web server) with the
 * interval and fall it accepts (interval is a whole number of seconds in 2.2), VRRPv3
 * advert_int 0.1 so that VRRP itself is not what is measured: the master's web server killed
 * → the first answer from another node.
 */
async function keepalivedAppSeries(farm: BenchFarm, timing: { intervalMs: number; fall: number }, trials: number, progress: (s: string) => void): Promise<AppKilledSeries> {
  const intervalS = Math.max(1, Math.round(timing.intervalMs / 1000));
  const conf = (n: BenchNode) => `${keepalivedConf(n, 0.1, 3).replace('vrrp_instance VI_BENCH {', `vrrp_script chk_web {
  script "/usr/bin/curl -sf -o /dev/null -m 1 http://127.0.0.1:${HTTP_PORT}/"
  interval ${intervalS}
  timeout 1
  fall ${timing.fall}
  rise 2
}
vrrp_instance VI_BENCH {
  track_script {
    chk_web
  }`)}`;
  for (const n of farm.nodes) await startKeepalived(n, 0.1, 3, conf(n));
  const master = farm.nodes[0]!;
  const prober = farm.getProber();
  const src = farm.clientAddrs[0]!;
  const times: number[] = [];
  let failed = 0;
  const name = `keepalived vrrp_script, interval ${intervalS} s, fall ${timing.fall}`;
  try {
    for (let t = 0; t < trials; t++) {
      const deadline = Date.now() + 30_000;
      while ((await prober.once(src)) !== master.name) {
        if (Date.now() > deadline) throw new Error(`${name}: ${master.name} did not become master again`);
        await sleep(100);
      }
      const probe = prober.probe(src, master.name, 20_000);
      await sleep(30);
      const killedAt = nowNs();
      await farm.killServer(master);
      const r = await probe;
      if (r) times.push(Number(r.atNs - killedAt) / 1e6);
      else failed++;
      progress(`${name} trial ${t + 1}/${trials}: ${r ? `${round(Number(r.atNs - killedAt) / 1e6)} ms, served by ${r.body}` : 'not served again within 20 s'}`);
      farm.startServer(master);
      await farm.waitServer(master);
    }
  } finally {
    await stopKeepalived(farm);
    for (const n of farm.nodes) if (await vipOn(n)) await inNs(n.ns, 'ip', ['addr', 'del', `${VIP}/16`, 'dev', 'flbn']).catch(() => '');
  }
  return { system: name, timing: `vrrp_script curl every ${intervalS} s, fall ${timing.fall}, rise 2; VRRPv3 advert_int 0.1, preempt`, trials: times,
    p50: percentile(times, 50), p99: percentile(times, 99), max: Math.max(...times), failed };
}

async function applicationKilled(tag: string, trials: number, progress: (s: string) => void): Promise<AppKilledSeries[]> {
  const farm = new BenchFarm(tag, [1, 1, 2], 'vmac_invisible', 64);
  liveFarms.add(farm);
  const out: AppKilledSeries[] = [];
  try {
    await farm.build(PROFILES.default!);
    for (const timing of APP_TIMINGS) {
      farm.appXml = appCheckXml(timing);
      farm.writeConfig(PROFILES.default!);
      for (const n of farm.nodes) await farm.startDaemon(n);
      out.push(await farmlbAppSeries(farm, timing, trials, progress));
      await Promise.all(farm.nodes.map((n) => farm.killDaemon(n, 'SIGTERM')));
    }
    out.push(await keepalivedAppSeries(farm, APP_TIMINGS[1]!, trials, progress));
  } finally {
    await farm.cleanup();
  }
  return out;
}

// ---- vmac_directed: clients that resolved the VIP through the dead node ------------------

async function directedRecovery(tag: string, trials: number, progress: (s: string) => void): Promise<DirectedRecovery> {
  const farm = new BenchFarm(tag, [1, 1, 2], 'vmac_directed', 64);
  liveFarms.add(farm);
  try {
    await farm.build(PROFILES.default!);
    for (const n of farm.nodes) await farm.startDaemon(n);
    const prober = farm.getProber();
    const times: number[] = [];
    const arpTimes: number[] = [];
    for (let t = 0; t < trials; t++) {
      const owners = await farm.waitAgreed(farm.nodes, 30_000);
      const victim = farm.nodes[1 + (t % 2)]!;
      // A client whose ARP request the victim answers (arp rule: owner of hash(requester)).
      const src = farm.clientAddrs.find((a) => owners[bucketOf(addrBytes(a)!, HASH_SEED)] === victim.index)!;
      await inNs(farm.clientNs, 'ip', ['neigh', 'flush', 'dev', 'flbc']);
      await inNs(farm.clientNs, 'ping', ['-c', '1', '-W', '1', '-I', src, VIP]).catch(() => '');
      const entry = await inNs(farm.clientNs, 'ip', ['neigh', 'show', VIP, 'dev', 'flbc']);
      if (!entry.includes(nodeMac(victim.index))) throw new Error(`the client's entry for ${VIP} is not ${victim.name}'s MAC: ${entry.trim()}`);
      // Linux ignores an ARP reply within locktime (1 s) of the entry's last update: a client
      // that resolved the VIP just now would ignore the first reroute round. Clients normally
      // resolved long before the crash; wait out the locktime like them.
      await sleep(1_500);
      const probe = prober.probe(src, victim.name, 15_000);
      await sleep(30);
      const killedAt = nowNs();
      await farm.killDaemon(victim, 'SIGKILL');
      let arpAt: bigint | undefined;
      const arpWatch = (async () => {
        const until = Date.now() + 15_000;
        while (Date.now() < until) {
          const e = await inNs(farm.clientNs, 'ip', ['neigh', 'show', VIP, 'dev', 'flbc']).catch(() => '');
          if (e && !e.includes(nodeMac(victim.index)) && /lladdr/.test(e)) { arpAt = nowNs(); return; }
          await sleep(10);
        }
      })();
      const r = await probe;
      await arpWatch;
      if (r) times.push(Number(r.atNs - killedAt) / 1e6);
      if (arpAt) arpTimes.push(Number(arpAt - killedAt) / 1e6);
      if (!r || !arpAt) {
        for (const n of farm.nodes.filter((x) => x !== victim)) {
          progress(`${n.name} arpreroute log:\n${n.log.split('\n').filter((x) => /arpreroute|"event":"view"/.test(x)).slice(-4).join('\n')}`);
        }
        progress(`client entry: ${(await inNs(farm.clientNs, 'ip', ['neigh', 'show', VIP, 'dev', 'flbc']).catch(() => '')).trim()}`);
      }
      progress(`vmac_directed trial ${t + 1}/${trials}: ${victim.name} killed → served again ${r ? `${round(Number(r.atNs - killedAt) / 1e6)} ms` : 'never'}, ARP entry moved ${arpAt ? `${round(Number(arpAt - killedAt) / 1e6)} ms` : 'never'}`);
      await farm.startDaemon(victim);
    }
    return { trials: times, p50: percentile(times, 50), arpP50: percentile(arpTimes, 50) };
  } finally {
    await farm.cleanup();
  }
}

// ---- scale ------------------------------------------------------------------------------

/** What one floor child (heartbeat-floor.ts) measured over the window. */
interface FloorSample {
  cpuUs: number;
  sent: number;
  received: number;
  bad: number;
}

/**
 * The heartbeat floor of a scale row (heartbeat-floor.ts, docs/benchmarks.md "The floor"):
 * a bare timer at the pulse, and two children that sign, send, drain, verify and parse the
 * datagrams of a node of this farm — `peers` a pulse each way — across the farm's bridge,
 * without any protocol. Started with the farm (warm by the window), measured over the
 * daemons' window, on the same machine in the same moment.
 */
class HeartbeatFloor {
  /** The timer's child first, then the pair's, each with its stdout read a line at a time. */
  private constructor(private readonly children: { proc: ChildProcess; nextLine: (ms: number) => Promise<string> }[]) {}

  static async start(farm: BenchFarm, peers: number, pulseMs: number, bytes: number): Promise<HeartbeatFloor> {
    const script = path.join(REPO, 'dist/bench/heartbeat-floor.js');
    const addrs = ['10.80.0.201', '10.80.0.202'];
    const ns = [await farm.addHost('f1', 0, addrs[0]!), await farm.addHost('f2', 1, addrs[1]!)];
    const child = (netns: string, args: string[]) => {
      const proc = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', process.execPath, script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
      return { proc, nextLine: lineReader(proc) };
    };
    const floor = new HeartbeatFloor([
      child(ns[0]!, ['timer', String(pulseMs)]),
      ...[0, 1].map((i) => child(ns[i]!, ['datagrams', String(pulseMs), addrs[i]!, addrs[1 - i]!, String(peers), String(bytes)])),
    ]);
    await Promise.all(floor.children.map((c) => c.nextLine(10_000)));
    return floor;
  }

  begin(): void {
    for (const c of this.children) c.proc.stdin!.write('start\n');
  }

  /** The window's samples: the timer's, then the pair's. */
  async end(): Promise<{ timer: FloorSample; pair: FloorSample[] }> {
    const [timer, ...pair] = await Promise.all(this.children.map(async (c) => {
      c.proc.stdin!.write('stop\n');
      return JSON.parse(await c.nextLine(10_000)) as FloorSample;
    }));
    return { timer: timer!, pair };
  }

  kill(): void {
    for (const c of this.children) c.proc.kill('SIGKILL');
  }
}

/**
 * `c`'s stdout a line at a time: one readline interface for the child's life (what it has
 * read ahead stays for the next call); each call waits at most `ms`.
 */
function lineReader(c: ChildProcess): (ms: number) => Promise<string> {
  const lines = createInterface({ input: c.stdout! })[Symbol.asyncIterator]();
  return async (ms) => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`heartbeat floor: no answer within ${ms} ms`)), ms); });
    try {
      const next = await Promise.race([lines.next(), late]);
      if (next.done) throw new Error('heartbeat floor: the child closed its output (exited?)');
      return next.value;
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * An A/B comparison in one farm and one window (FARMLB_BENCH_AB_BIN: another build's
 * bin/farmlb.js; FARMLB_BENCH_AB_NODE_ARGS: other node flags): the nodes of odd index (n2,
 * n4, …) run B, the others A. Both arms share the machine's state of the moment, which
 * separate runs on this VM do not (±10 % from one run to the next). undefined: no A/B run.
 */
function abArmOf(index: number): 'A' | 'B' | undefined {
  if (process.env.FARMLB_BENCH_AB_BIN === undefined && process.env.FARMLB_BENCH_AB_NODE_ARGS === undefined) return undefined;
  return index % 2 === 1 ? 'B' : 'A';
}

/** The last daemon (every thread) on the last CPU, the others on the rest (FARMLB_BENCH_PIN_ONE). */
async function pinDaemons(pids: number[]): Promise<void> {
  const last = os.cpus().length - 1;
  const rest = last === 1 ? '0' : `0-${last - 1}`;
  await Promise.all(pids.map((pid, i) => run('taskset', ['-a', '-p', '-c', i === pids.length - 1 ? String(last) : rest, String(pid)])));
}

/** Every daemon back on every CPU. */
async function unpinDaemons(pids: number[]): Promise<void> {
  const all = `0-${os.cpus().length - 1}`;
  await Promise.all(pids.map((pid) => run('taskset', ['-a', '-p', '-c', all, String(pid)]).catch(() => '')));
}

async function scaleRow(tag: string, size: number, trials: number, windowS: number, progress: (s: string) => void, membership: MembershipBackend = 'builtin', corosyncTokenMs?: number, settleS = 2): Promise<ScaleRow> {
  const farm = new BenchFarm(tag, Array.from({ length: size }, () => 1), 'vmac_invisible', 0);
  farm.membership = membership;
  farm.corosyncTokenMs = corosyncTokenMs;
  liveFarms.add(farm);
  let floor: HeartbeatFloor | undefined;
  try {
    await farm.build(PROFILES.default!);
    // The built-in protocol's floor: a node's datagrams (size − 1 each way a pulse, of a
    // heartbeat's v2 size at rest at this farm size: 1,161–1,165 bytes at 16 nodes, seen with
    // tcpdump) without the protocol.
    if (membership === 'builtin') floor = await HeartbeatFloor.start(farm, size - 1, DEFAULT_TIMING.pulseMs, 540 + 39 * size);
    for (const n of farm.nodes) await farm.startDaemon(n, 60_000);
    await farm.waitAgreed(farm.nodes, 60_000, 50);
    // At rest means past start-up too: for tens of seconds after a start, V8 still compiles
    // the hot paths on its worker threads, CPU the daemon's meter and /proc count (16 nodes:
    // heartbeat path 3.2% of a core 2 s after agreeing, 2.8% after 20 s, 2.6% after 40 s).
    await sleep(settleS * 1000);
    const hz = clockTicksPerSecond();
    const pids = farm.nodes.map((n) => n.daemon!.pid!);
    // FARMLB_BENCH_PIN_ONE: the last node's daemon (a follower) on the last CPU alone, every
    // other daemon on the others, for the window — a node with a core of its own, as on its own host,
    // beside the default figure (16 daemons sharing the VM's CPUs and evicting each other's
    // caches between two pulses: docs/benchmarks.md).
    const pinOne = process.env.FARMLB_BENCH_PIN_ONE === '1' && os.cpus().length > 1;
    if (pinOne) await pinDaemons(pids);
    const cpids = farm.nodes.map((n) => farm.corosync?.pid(n.name));
    const m0 = await Promise.all(farm.nodes.map((n) => farm.meter(n)));
    const t0 = pids.map(processTicks);
    const c0 = cpids.map((p) => (p ? processTicks(p) : 0));
    floor?.begin();
    await sleep(windowS * 1000);
    const floorSample = await floor?.end();
    floor?.kill();
    floor = undefined;
    const cpu = pids.map((pid, i) => ((processTicks(pid) - t0[i]!) / hz / windowS) * 100);
    const corosyncCpu = cpids.map((p, i) => (p ? ((processTicks(p) - c0[i]!) / hz / windowS) * 100 : 0));
    const m1 = await Promise.all(farm.nodes.map((n) => farm.meter(n)));
    const heartbeatCpu = m1.map((m, i) => ((m.cpuSeconds - m0[i]!.cpuSeconds) / windowS) * 100);
    const atRest = m1.every((m, i) => m.epoch === m0[i]!.epoch);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const part = (k: 'sendSeconds' | 'receiveSeconds' | 'tickSeconds') => round(mean(m1.map((m, i) => ((m[k] - m0[i]![k]) / windowS) * 100)), 2);
    if (pinOne) {
      await unpinDaemons(pids);
      const k1 = pids.length - 1;
      const one = (k: 'sendSeconds' | 'receiveSeconds' | 'tickSeconds') => round(((m1[k1]![k] - m0[k1]![k]) / windowS) * 100, 2);
      progress(`${size} nodes at rest, ${farm.nodes[k1]!.name} with CPU ${os.cpus().length - 1} to itself: daemon CPU ${round(cpu[k1]!, 2)}% of a core, heartbeats ${round(heartbeatCpu[k1]!, 2)}% (send ${one('sendSeconds')}%, receive ${one('receiveSeconds')}%, tick ${one('tickSeconds')}%); the other daemons, on the other CPUs: mean ${round(mean(heartbeatCpu.slice(0, k1)), 2)}%${atRest ? '' : ' (tables changed during the window: not at rest)'}`);
    }
    if (abArmOf(0) !== undefined) {
      // n1 leads (its pulse costs more): the A arm is compared without it.
      const arm = (b: boolean) => farm.nodes.map((_, i) => i).filter((i) => (abArmOf(i) === 'B') === b && i !== 0);
      const armPart = (ix: number[], k: 'sendSeconds' | 'receiveSeconds' | 'tickSeconds') => round(mean(ix.map((i) => ((m1[i]![k] - m0[i]![k]) / windowS) * 100)), 2);
      for (const [name, ix] of [['A', arm(false)], ['B', arm(true)]] as const) {
        progress(`A/B arm ${name} (${ix.map((i) => farm.nodes[i]!.name).join(',')}): daemon CPU mean ${round(mean(ix.map((i) => cpu[i]!)), 2)}%, heartbeats mean ${round(mean(ix.map((i) => heartbeatCpu[i]!)), 2)}% (send ${armPart(ix, 'sendSeconds')}%, receive ${armPart(ix, 'receiveSeconds')}%, tick ${armPart(ix, 'tickSeconds')}%)`);
      }
    }
    const floorPct = floorSample && {
      timer: (floorSample.timer.cpuUs / 1e6 / windowS) * 100,
      datagrams: mean(floorSample.pair.map((f) => (f.cpuUs / 1e6 / windowS) * 100)),
      received: mean(floorSample.pair.map((f) => f.received / windowS)),
      bad: floorSample.pair.reduce((a, f) => a + f.bad, 0),
    };
    if (floorPct) {
      progress(`${size} nodes, the floor in the same window: a bare timer at the pulse ${round(floorPct.timer, 2)}% of a core; a node's datagrams without the protocol (signed, sent, drained, verified, parsed: ${round(floorPct.received)} received a second${floorPct.bad ? `, ${floorPct.bad} failed to verify` : ''}) ${round(floorPct.datagrams, 2)}% → heartbeat path ${round(mean(heartbeatCpu) / floorPct.datagrams, 2)}× that floor, daemon ${round(mean(cpu) / floorPct.datagrams, 2)}×`);
    }
    // Said before the trials: a farm too loaded to converge in time still reports its CPU.
    progress(`${size} nodes at rest (${windowS} s, ${settleS} s after agreeing): daemon CPU mean ${round(mean(cpu), 2)}% max ${round(Math.max(...cpu), 2)}% of a core, heartbeats mean ${round(mean(heartbeatCpu), 2)}% max ${round(Math.max(...heartbeatCpu), 2)}% (send ${part('sendSeconds')}%, receive ${part('receiveSeconds')}%, tick ${part('tickSeconds')}%)${atRest ? '' : ' (tables changed during the window: not at rest)'}`);
    const conv: number[] = [];
    for (let t = 0; t < trials; t++) {
      const victim = farm.nodes[farm.nodes.length - 1 - (t % Math.max(1, farm.nodes.length - 1))]!;
      const survivors = farm.nodes.filter((n) => n !== victim);
      const killedAt = nowNs();
      await farm.killDaemon(victim, 'SIGKILL');
      await farm.waitAgreed(survivors, 30_000, 5);
      conv.push(Number(nowNs() - killedAt) / 1e6);
      await farm.startDaemon(victim, 60_000);
      await farm.waitAgreed(farm.nodes, 60_000, 50);
      await sleep(500);
    }
    const row = { nodes: size, membership, timing: farm.timing(), convergenceMs: median(conv),
      ...(membership === 'corosync' ? { corosyncCpuMeanPct: mean(corosyncCpu) } : {}), convergenceTrialsMs: conv.map((c) => round(c)),
      cpuMeanPct: mean(cpu), cpuMaxPct: Math.max(...cpu),
      heartbeatCpuMeanPct: mean(heartbeatCpu), heartbeatCpuMaxPct: Math.max(...heartbeatCpu), atRest, windowS, settleS,
      ...(floorPct ? { floorTimerPct: floorPct.timer, floorDatagramsPct: floorPct.datagrams } : {}) };
    progress(`${membership} ${size} nodes: convergence ${round(row.convergenceMs)} ms (${row.convergenceTrialsMs.join(', ')})${row.corosyncCpuMeanPct !== undefined ? `, corosync ${round(row.corosyncCpuMeanPct, 2)}% of a core at rest` : ''}`);
    return row;
  } finally {
    floor?.kill();
    await farm.cleanup();
  }
}

// ---- entry ------------------------------------------------------------------------------

export interface FailoverBenchOptions {
  trials: number;
  sizes: number[];
  profiles: string[];
  keepalived: boolean;
  directed: boolean;
  /** Trials of each survivors case (0 = skip). */
  survivorTrials: number;
  lossWindowS: number;
  /** Which membership backends to measure (builtin: the timing profiles; corosync: one series). */
  memberships: MembershipBackend[];
  corosyncTokenMs?: number;
  /** Seconds at rest counting table changes and (corosync) ring re-formations; 0 = skip. */
  idleWindowS: number;
  /** Seconds a scale row's farm runs after agreeing before its CPU window (default 2). */
  cpuSettleS?: number;
  /** The "application killed" series (farmlb checker timings and keepalived vrrp_script). */
  app: boolean;
  /** Only the "application killed" series. */
  appOnly?: boolean;
  progress: (line: string) => void;
}

export async function measureFailover(opts: FailoverBenchOptions): Promise<FailoverReport> {
  const base = `bfo${process.pid}`;
  const report: FailoverReport = { series: [], scale: [], notes: [] };
  const farms = liveFarms;
  const onSignal = () => {
    void Promise.all([...farms].map((f) => f.cleanup())).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    if (opts.app) report.app = await applicationKilled(`${base}a`, opts.trials, opts.progress);
    for (const name of !opts.appOnly && opts.memberships.includes('builtin') ? opts.profiles : []) {
      const profile = PROFILES[name];
      if (!profile) throw new Error(`unknown profile ${name} (${Object.keys(PROFILES).join(', ')})`);
      const farm = new BenchFarm(`${base}${name[0]}`, [1, 1, 2], 'vmac_invisible', 64);
      farms.add(farm);
      try {
        await farm.build(profile);
        for (const n of farm.nodes) await farm.startDaemon(n);
        opts.progress(`farmlb ${name}: ${farm.timing()}`);
        report.series.push(await farmlbSeries(farm, profile, opts.trials, opts.lossWindowS, opts.progress));
        if (opts.survivorTrials > 0 && name === opts.profiles[0]) {
          report.survivors = { timing: farm.timing(), cases: await survivorCases(farm, opts.survivorTrials, opts.progress) };
        }
        if (opts.keepalived && name === opts.profiles[0]) {
          await Promise.all(farm.nodes.map((n) => farm.killDaemon(n, 'SIGTERM')));
          report.series.push(await keepalivedSeries(farm, 1, 2, opts.trials, opts.progress));
          report.series.push(await keepalivedSeries(farm, 0.1, 3, opts.trials, opts.progress));
        }
      } finally {
        await farm.cleanup();
      }
    }
    if (!opts.appOnly && opts.memberships.includes('corosync')) {
      const farm = new BenchFarm(`${base}c`, [1, 1, 2], 'vmac_invisible', 64);
      farm.membership = 'corosync';
      farm.corosyncTokenMs = opts.corosyncTokenMs;
      farms.add(farm);
      try {
        await farm.build(PROFILES.default!);
        for (const n of farm.nodes) await farm.startDaemon(n);
        opts.progress(`farmlb corosync: ${farm.timing()}`);
        report.series.push(await farmlbSeries(farm, PROFILES.default!, opts.trials, 0, opts.progress, 0, true));
        report.series.push(await farmlbSeries(farm, PROFILES.default!, opts.trials, opts.lossWindowS, opts.progress, opts.idleWindowS, false));
      } finally {
        await farm.cleanup();
      }
    }
    if (opts.directed && !opts.appOnly) report.directed = await directedRecovery(`${base}d`, Math.max(4, Math.floor(opts.trials / 2)), opts.progress);
    for (const m of opts.appOnly ? [] : opts.memberships) {
      for (const size of opts.sizes) report.scale.push(await scaleRow(`${base}${m === 'corosync' ? 'cs' : 's'}${size}`, size, 3, 10, opts.progress, m, opts.corosyncTokenMs, opts.cpuSettleS));
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  report.notes.push(`client probe: a new TCP connection from one client address every ${PROBE_EVERY_MS} ms, each given ${PROBE_TIMEOUT_MS} ms; time = kill → first answer from another node`);
  return report;
}

export function renderFailover(r: FailoverReport): string {
  const out: string[] = r.series.length > 0 ? ['Failover (kill -9 → the client is served again), 3 nodes, powers 1:1:2', ''] : [];
  const row = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(52) : c.padStart(9))).join(' ');
  if (r.series.length > 0) out.push(row(['system', 'trials', 'p50 ms', 'p99 ms', 'max ms', 'failed']));
  for (const s of r.series) {
    const ms = (v: number) => (Number.isFinite(v) ? String(round(v)) : '-');
    out.push(row([s.system, String(s.trials.length), ms(s.p50), ms(s.p99), ms(s.max), String(s.failed)]));
  }
  out.push('');
  for (const s of r.series) {
    const perNode = s.byNode ? `; p50 per killed node ${Object.entries(s.byNode).map(([n, v]) => `${n} ${round(v)} ms`).join(', ')}` : '';
    const rings = s.ringChangesUnderLoss !== undefined ? `, totem rings re-formed ${s.ringChangesUnderLoss}` : '';
    const idle = s.idleWindowS !== undefined ? `; at rest for ${s.idleWindowS} s: ${s.tableChangesIdle} table change(s)${s.ringChangesIdle !== undefined ? `, totem rings re-formed ${s.ringChangesIdle}` : ''}` : '';
    out.push(`${s.system}: ${s.timing}${s.byRole ? `; p50 leader killed ${round(s.byRole.leader ?? NaN)} ms, follower killed ${round(s.byRole.follower ?? NaN)} ms` : ''}${perNode}${s.falseFailoversUnderLoss !== undefined ? `; table changes under 20% loss of the membership's packets for ${s.lossWindowS} s: ${s.falseFailoversUnderLoss}${rings}` : ''}${idle}`);
  }
  if (r.app && r.app.length > 0) {
    if (out.length > 0) out.push('');
    out.push('Application killed (kill -9 of a node\'s web server → its client served by another node), 3 nodes, powers 1:1:2');
    out.push(row(['system', 'trials', 'p50 ms', 'p99 ms', 'max ms', 'failed']) + '  bystander failed');
    for (const s of r.app) {
      const ms = (v: number) => (Number.isFinite(v) ? String(round(v)) : '-');
      out.push(row([s.system, String(s.trials.length), ms(s.p50), ms(s.p99), ms(s.max), String(s.failed)])
        + (s.bystanderRequests !== undefined ? `  ${s.bystanderFailed} of ${s.bystanderRequests}` : '  - (one master serves every source)'));
    }
    for (const s of r.app) out.push(`${s.system}: ${s.timing}${s.byRole ? `; p50 leader ${round(s.byRole.leader ?? NaN)} ms, follower ${round(s.byRole.follower ?? NaN)} ms` : ''}`);
  }
  if (r.survivors) out.push('', renderSurvivorCases(r.survivors.cases, r.survivors.timing));
  if (r.directed) out.push('', `vmac_directed, client resolved the VIP through the dead node: served again p50 ${round(r.directed.p50)} ms, its ARP entry repointed p50 ${round(r.directed.arpP50)} ms (${r.directed.trials.length} trials)`);
  if (r.scale.length > 0) {
    out.push('', 'Scale (powers 1, kill -9 of a follower → every survivor has the same table; daemon CPU at rest)');
    out.push(row(['nodes', 'conv p50', 'CPU mean%', 'CPU max%', 'hb mean%', 'hb max%', 'corosync%']).replace(/^nodes {29}/, 'nodes'.padEnd(34)));
    for (const s of r.scale) {
      out.push(row([`${s.nodes}${s.membership === 'corosync' ? ' (corosync)' : ''}`, String(round(s.convergenceMs)), String(round(s.cpuMeanPct, 2)), String(round(s.cpuMaxPct, 2)),
        String(round(s.heartbeatCpuMeanPct, 2)), `${round(s.heartbeatCpuMaxPct, 2)}${s.atRest ? '' : ' (not at rest)'}`,
        s.corosyncCpuMeanPct !== undefined ? String(round(s.corosyncCpuMeanPct, 2)) : '-']));
    }
    out.push(`CPU = whole daemon (utime + stime); hb = its heartbeat path (send, receive, tick), metered by the daemon (farmlb_membership_cpu_seconds_total); window of ${r.scale[0]?.windowS ?? 10} s starting ${r.scale[0]?.settleS ?? 2} s after the farm agreed`);
    for (const s of r.scale.filter((x) => x.floorDatagramsPct !== undefined)) {
      out.push(`floor at ${s.nodes} nodes, same window: a bare timer at the pulse ${round(s.floorTimerPct!, 2)}%, a node's datagrams without the protocol ${round(s.floorDatagramsPct!, 2)}% of a core; hb = ${round(s.heartbeatCpuMeanPct / s.floorDatagramsPct!, 2)}× that floor, CPU = ${round(s.cpuMeanPct / s.floorDatagramsPct!, 2)}×`);
    }
    for (const t of new Set(r.scale.map((s) => s.timing))) out.push(`timing: ${t}`);
  }
  out.push('', ...r.notes);
  return `${out.join('\n')}\n`;
}

// ---- command line (node dist/bench/main.js failover …) ---------------------------------

const FAILOVER_USAGE = `Usage: node dist/bench/main.js failover [--quick] [--json] [--trials N] [--sizes 2,4,8,16]
                                         [--profiles default,fast] [--no-keepalived] [--no-directed] [--loss-window S]
                                         [--membership builtin,corosync] [--corosync-token MS] [--idle-window S]
                                         [--no-app | --app-only]
                                         [--survivor-trials N] [--cpu-settle S]

  --trials N        kill -9 trials per system (default 20; --quick 5)
  --sizes LIST      farm sizes for convergence and heartbeat CPU (default 2,4,8,16; --quick 2,4)
  --profiles LIST   farmlb timing profiles (${Object.keys(PROFILES).join(', ')})
  --no-keepalived   skip the keepalived VRRP series
  --no-directed     skip the vmac_directed client recovery
  --loss-window S   seconds of 20% heartbeat loss after each farmlb series (default 20; --quick 5; 0 = skip)
  --membership LIST builtin (default) and/or corosync: the Corosync backend's series (kill -9 per node,
                    loss on corosync's port 5405) and scale rows with corosync's own CPU
  --corosync-token MS   corosync's token (default farmlb corosync-conf's: 300)
  --idle-window S   seconds at rest before the loss window, counting table changes and totem rings (default 0)
  --no-app          skip the "application killed" series (a <tcp> checker at 250 ms and 1 s, fall 2; keepalived vrrp_script)
  --app-only        only the "application killed" series
  --survivor-trials N  trials of each survivors case — leader and follower killed, hung, link down,
                    and each one's return — with the other nodes' clients' failed requests
                    (first profile only; default: --trials; 0 = skip)
  --cpu-settle S    seconds a scale row's farm runs after agreeing before its 10 s CPU window
                    (default 30; --quick 2): at rest, past Node's start-up compilation
  --json            JSON document on stdout (the report then goes to stderr)

Must run as root. Namespaces flb-bfo<pid>* are removed on exit.`;

export async function failoverMain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...COMMON_OPTIONS,
      trials: { type: 'string' },
      sizes: { type: 'string' },
      profiles: { type: 'string' },
      'no-keepalived': { type: 'boolean', default: false },
      'no-directed': { type: 'boolean', default: false },
      'loss-window': { type: 'string' },
      membership: { type: 'string' },
      'corosync-token': { type: 'string' },
      'idle-window': { type: 'string' },
      'no-app': { type: 'boolean', default: false },
      'app-only': { type: 'boolean', default: false },
      'survivor-trials': { type: 'string' },
      'cpu-settle': { type: 'string' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${FAILOVER_USAGE}\n`);
    return 0;
  }
  if (notRoot('bench failover', 'namespaces, XDP, nftables')) return 1;
  const list = (v: string | undefined, d: string) => (v ?? d).split(',').map((x) => x.trim()).filter(Boolean);
  const report = await measureFailover({
    trials: Number(values.trials ?? (values.quick ? 5 : 20)),
    sizes: list(values.sizes, values.quick ? '2,4' : '2,4,8,16').map(Number),
    profiles: list(values.profiles, 'default,fast'),
    keepalived: !values['no-keepalived'],
    directed: !values['no-directed'],
    lossWindowS: Number(values['loss-window'] ?? (values.quick ? 5 : 20)),
    memberships: list(values.membership, 'builtin').map((m) => {
      if (m !== 'builtin' && m !== 'corosync') throw new Error(`--membership ${m}: use builtin and/or corosync`);
      return m;
    }),
    ...(values['corosync-token'] !== undefined ? { corosyncTokenMs: Number(values['corosync-token']) } : {}),
    idleWindowS: Number(values['idle-window'] ?? 0),
    app: !values['no-app'],
    appOnly: values['app-only'],
    survivorTrials: Number(values['survivor-trials'] ?? values.trials ?? (values.quick ? 5 : 20)),
    cpuSettleS: Number(values['cpu-settle'] ?? (values.quick ? 2 : 30)),
    progress,
  });
  emitReport(`${JSON.stringify(machineFacts().date)}\n${renderFailover(report)}`, report, values.json);
  return 0;
}
