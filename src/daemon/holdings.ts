// The connections this node still holds as the previous owner of buckets in handover
// (docs/membership.md "Handover"): what lets the membership leader end a handover as soon
// as the previous owner is done instead of at the time limit.
//
// A socket is "held in bucket b of group g" when its local address is a VIP, the TCP rule
// the data path applies to that VIP and local port (rule-table.ts's winningRule, as the
// model and `farmlb explain` use) is in group g, and the rule's criterion hashes the remote
// address (on_addr) or the remote port (on_port) to b with the farm's seed (hash.ts's
// bucketOf) — the same bytes the data path hashes for the client's packets. An on_ipid rule
// has no bucket per connection (every packet hashes its own IP identification), so its
// sockets are not counted: they are reported as `unbucketed`, and a handover of such a group
// ends by its time limit.
//
// States: every state but LISTEN, TIME_WAIT and CLOSE. A TIME_WAIT socket is no connection
// (the application is gone, nothing is lost when its last ACK goes elsewhere), and the data
// path treats a TIME_WAIT socket found by bpf_skc_lookup_tcp as not held either, so both
// sides agree and a TIME_WAIT cannot hold a handover open for its 60 s. That includes the
// orphan a server's close() leaves in FIN_WAIT2 (a timewait socket the kernel lists with its
// substate): src/net/tcp-sockets.ts reports it as TIME_WAIT, as the data path sees it.
//
// Sampling: while the installed table names this node the previous owner of a bucket, the
// socket table is read every HOLDINGS_INTERVAL_MS at most, through sock_diag with the VIPs
// as a filter the kernel applies (src/net/tcp-sockets.ts; the kernel still walks every TCP
// socket of the namespace, but sends only the VIPs'), or /proc/net/tcp{,6} where inet_diag
// is missing. A sample counts with the tables installed when it started
// and carries their epoch: a sample started before a newer table was applied is tagged
// with the older epoch. A bucket's count is the larger of two reads: this sample's and the
// previous sample's when that one counted the bucket the same way, else a second read made
// at once (a bucket that just became this node's to hand over, a new hash seed or rules).
// A previous owner accepts no new connection in the bucket, so its count only falls and the
// larger read is the truer one: a connection the kernel's table walk skipped while sockets
// came and went (src/net/tcp-sockets.ts) cannot make a single read report 0 too early.

import type { Logger } from 'pino';
import { bucketOf } from '../balance/hash.js';
import { ruleLookup, winningRule, type RuleLookup } from '../dataplane/rule-table.js';
import { CriterionId, NBUCKETS, NODE_NONE, type CompiledVip, type DataplaneTables } from '../dataplane/types.js';
import { loadNative } from '../addon/native.js';
import { isFarmlbError } from '../errors.js';
import { diagTcpSockets, scanTcpSockets, TCP_STATES, type LocalAddr, type ScanTcpResult, type TcpSocket, type TcpState } from '../net/tcp-sockets.js';
import type { Holdings } from './table-source.js';

/** States that hold a connection in a bucket. */
export const HELD_STATES: ReadonlySet<TcpState> = new Set(
  Object.values(TCP_STATES).filter((s) => s !== 'LISTEN' && s !== 'TIME_WAIT' && s !== 'CLOSE'),
);
const HELD_STATE_NUMBERS: ReadonlySet<number> = new Set(
  Object.entries(TCP_STATES).filter(([, s]) => HELD_STATES.has(s)).map(([n]) => Number(n)),
);

/** Sampling period while handing over; a read of the socket table costs, so never more often. */
export const HOLDINGS_INTERVAL_MS = 250;

/** Where the data path puts a connection (by its local = VIP side and its remote side). */
export type ConnectionBucket =
  | { kind: 'bucket'; vipId: number; group: number; bucket: number }
  | { kind: 'not_vip' }
  | { kind: 'no_rule'; vipId: number }
  /** An on_ipid rule: no bucket per connection. */
  | { kind: 'ipid'; vipId: number; group: number };

interface TableIndex {
  vips: Map<string, CompiledVip>;
  rules: RuleLookup;
}

const indexes = new WeakMap<DataplaneTables, TableIndex>();

function vipKey(family: 4 | 6, addr: Uint8Array): string {
  return `${family}/${Buffer.from(addr).toString('hex')}`;
}

function indexOf(tables: DataplaneTables): TableIndex {
  let idx = indexes.get(tables);
  if (!idx) {
    const vips = new Map<string, CompiledVip>();
    for (const v of tables.vips) vips.set(vipKey(v.family, v.addrBytes.subarray(0, v.family === 4 ? 4 : 16)), v);
    idx = { vips, rules: ruleLookup(tables.rules) };
    indexes.set(tables, idx);
  }
  return idx;
}

/** The group and bucket of a TCP connection whose local end is `socket`'s, as the data path decides its client's packets. */
export function connectionBucket(tables: DataplaneTables, socket: TcpSocket): ConnectionBucket {
  const idx = indexOf(tables);
  const vip = idx.vips.get(vipKey(socket.family, socket.localAddr));
  if (!vip) return { kind: 'not_vip' };
  const rule = winningRule(idx.rules, 6, vip.id, vip.family, socket.localPort);
  if (!rule) return { kind: 'no_rule', vipId: vip.id };
  let bytes: Uint8Array;
  if (rule.criterion === CriterionId.Addr) bytes = socket.remoteAddr;
  else if (rule.criterion === CriterionId.Port) bytes = Uint8Array.of(socket.remotePort >> 8, socket.remotePort & 0xff);
  else return { kind: 'ipid', vipId: vip.id, group: rule.group };
  return { kind: 'bucket', vipId: vip.id, group: rule.group, bucket: bucketOf(bytes, tables.hashSeed) };
}

/** Buckets (all groups) whose previous owner in `tables` is this node. */
export function prevBucketCount(tables: DataplaneTables | undefined): number {
  const self = tables?.selfNode ?? NODE_NONE;
  if (!tables?.prevOwners || self === NODE_NONE) return 0;
  return tables.prevOwners.reduce((n, row) => n + row.filter((p) => p === self).length, 0);
}

/** Whether two tables put every connection in the same group and bucket (same seed, VIPs and rules). */
export function sameBucketing(a: DataplaneTables, b: DataplaneTables): boolean {
  return a === b || (a.hashSeed === b.hashSeed && bucketingKey(a) === bucketingKey(b));
}

const bucketingKeys = new WeakMap<DataplaneTables, string>();
function bucketingKey(t: DataplaneTables): string {
  let key = bucketingKeys.get(t);
  if (key === undefined) {
    key = JSON.stringify([t.vips.map((v) => [v.id, v.family, v.addr]), t.rules]);
    bucketingKeys.set(t, key);
  }
  return key;
}

export interface HoldingsCount {
  /** counts[group][bucket]: held connections where this node is the previous owner; 0 elsewhere. */
  counts: number[][];
  prevBuckets: number;
  /** Sum of counts. */
  connections: number;
  /** Held connections in groups this node hands over whose rule is on_ipid: no bucket, not in counts. */
  unbucketed: number;
}

/** Counts the sockets of one read against one installed table, socket by socket (the table is never kept). */
export class HoldingsCounter {
  private readonly counts: number[][];
  private readonly prevGroups: Set<number>;
  private unbucketed = 0;
  private readonly self: number;

  constructor(private readonly tables: DataplaneTables) {
    this.self = tables.selfNode;
    this.counts = tables.buckets.map(() => new Array<number>(NBUCKETS).fill(0));
    this.prevGroups = new Set();
    tables.prevOwners?.forEach((row, g) => {
      if (this.self !== NODE_NONE && row.includes(this.self)) this.prevGroups.add(g);
    });
  }

  add(socket: TcpSocket): void {
    if (this.prevGroups.size === 0 || !HELD_STATES.has(socket.state)) return;
    const where = connectionBucket(this.tables, socket);
    if (where.kind === 'ipid') {
      if (this.prevGroups.has(where.group)) this.unbucketed++;
      return;
    }
    if (where.kind !== 'bucket') return;
    if (this.tables.prevOwners?.[where.group]?.[where.bucket] !== this.self) return;
    const row = this.counts[where.group];
    if (row) row[where.bucket]!++;
  }

  result(): HoldingsCount {
    const connections = this.counts.reduce((n, row) => n + row.reduce((a, b) => a + b, 0), 0);
    return { counts: this.counts.map((r) => r.slice()), prevBuckets: prevBucketCount(this.tables), connections, unbucketed: this.unbucketed };
  }
}

export function countHoldings(tables: DataplaneTables, sockets: Iterable<TcpSocket>): HoldingsCount {
  const counter = new HoldingsCounter(tables);
  for (const s of sockets) counter.add(s);
  return counter.result();
}

// ---- sampling ------------------------------------------------------------------------

/** The table in the data plane and the epoch it was installed for. */
export interface InstalledTables {
  epoch: number;
  tables: DataplaneTables;
}

/** This node's handover, for NodeStatus. */
export interface HandoverStatus {
  prevBuckets: number;
  connections: number;
  /** Wall clock (ms since the epoch) of the last sample reported; absent before the first. */
  sampledAtMs?: number;
  /**
   * Since the daemon started: connections this node kept serving after their bucket moved
   * (the first sample of each bucket it handed over), and those still open when a bucket
   * stopped being its to hand over without coming back to it (the limit, or a second move:
   * the new owner resets them). Counted from samples 250 ms apart, so a connection that
   * opened and closed between two samples is in neither.
   */
  carriedTotal: number;
  lostTotal: number;
}

/** Reads the socket table, handing each socket of a held state whose local address may be one of `vips` to `visit`. */
export type SocketScan = (visit: (s: TcpSocket) => void, vips: readonly LocalAddr[]) => Promise<Pick<ScanTcpResult, 'truncated' | 'lines'>>;

/** The local addresses a held connection can have: the VIPs of `tables`. */
export function vipAddrs(tables: DataplaneTables): LocalAddr[] {
  return tables.vips.map((v) => ({ family: v.family, addr: v.addrBytes.subarray(0, v.family === 4 ? 4 : 16) }));
}

/**
 * sock_diag filtered to the VIPs in the kernel; /proc/net/tcp{,6} from the first time the
 * kernel (no inet_diag) or the addon cannot, told once to `onFallback`.
 */
export function defaultSocketScan(onFallback: (err: unknown) => void): SocketScan {
  let useProc = false;
  return async (visit, vips) => {
    if (!useProc) {
      // No VIP: no socket can be held (and an empty filter would mean every socket).
      if (vips.length === 0) return { lines: 0, truncated: false };
      try {
        return await diagTcpSockets({ visit, states: HELD_STATE_NUMBERS, locals: vips, native: loadNative() });
      } catch (err) {
        if (!isFarmlbError(err) || !['FARMLB_E_NET_SOCK_DIAG', 'FARMLB_E_BPF_ADDON_MISSING'].includes((err as { code: string }).code)) throw err;
        useProc = true;
        onFallback(err);
      }
    }
    return scanTcpSockets({ visit, states: HELD_STATE_NUMBERS });
  };
}

/** What the sampler logs once when sock_diag cannot list the sockets (defaultSocketScan's onFallback). */
export function socketScanFallback(log: Logger): (err: unknown) => void {
  return (err) => log.warn({ err, event: 'holdings_sock_diag_unavailable' },
    'sock_diag cannot list the sockets: reading /proc/net/tcp instead (costs more with many sockets on the host)');
}

export interface HoldingsSamplerOptions {
  /** Receives each sample (TableSource.setHoldings). */
  report(h: Holdings): void;
  /** CLOCK_MONOTONIC ns (the Holdings clock). */
  nowNs(): bigint;
  log: Logger;
  intervalMs?: number;
  /** The socket table (default: defaultSocketScan; the daemon passes its host port's). */
  scan?: SocketScan;
  /** For tests: wall clock ms. */
  nowMs?: () => number;
}

/**
 * Samples this node's holdings while it is the previous owner of some bucket. The daemon
 * calls tablesChanged() after every table it applied (and after a reload); the sampler
 * starts when the table names this node prev of a bucket and stops when none does.
 */
export class HoldingsSampler {
  private installed: InstalledTables | undefined;
  private timer: NodeJS.Timeout | undefined;
  private busy: Promise<void> | undefined;
  private stopped = false;
  private lastStartMs = -Infinity;
  /** The last sample: its tables, its latest read's own counts (before the two-read rule), what was reported. */
  private last: { tables: DataplaneTables; raw: number[][]; status: HandoverStatus } | undefined;
  private warned = new Set<string>();
  /** Per bucket this node hands over (`g:b`): connections at its first sample and at its latest. */
  private tracked = new Map<string, { first: number; latest: number }>();
  private carriedTotal = 0;
  private lostTotal = 0;
  private readonly intervalMs: number;
  private readonly scan: SocketScan;
  private readonly nowMs: () => number;

  constructor(private readonly opts: HoldingsSamplerOptions) {
    this.intervalMs = Math.max(HOLDINGS_INTERVAL_MS, opts.intervalMs ?? HOLDINGS_INTERVAL_MS);
    this.scan = opts.scan ?? defaultSocketScan(socketScanFallback(opts.log));
    this.nowMs = opts.nowMs ?? Date.now;
  }

  /** The table of `installed.epoch` is in the data plane (undefined: none). */
  tablesChanged(installed: InstalledTables | undefined): void {
    if (this.stopped) return;
    this.installed = installed;
    this.settle(installed?.tables);
    if (!this.sampling()) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      if (this.last) this.opts.log.info({ event: 'handover_prev_done' }, 'no bucket names this node previous owner any more: connection sampling stopped');
      this.last = undefined;
      return;
    }
    if (!this.timer && !this.busy) this.schedule(Math.max(0, this.lastStartMs + this.intervalMs - this.nowMs()));
  }

  /** This node's handover as last sampled; undefined when no table is installed. */
  status(): HandoverStatus | undefined {
    if (!this.installed) return undefined;
    const totals = { carriedTotal: this.carriedTotal, lostTotal: this.lostTotal };
    const prevBuckets = prevBucketCount(this.installed.tables);
    if (prevBuckets === 0) return { prevBuckets, connections: 0, ...totals };
    return this.last ? { ...this.last.status, prevBuckets, ...totals } : { prevBuckets, connections: 0, ...totals };
  }

  /**
   * A table was applied: each bucket that no longer names this node previous owner ends its
   * handover here. If the bucket came back to this node, its connections simply go on;
   * otherwise those still open at the last sample are cut (the new owner takes every packet).
   */
  private settle(tables: DataplaneTables | undefined): void {
    for (const [key, t] of this.tracked) {
      const [g, b] = key.split(':').map(Number) as [number, number];
      if (tables && tables.prevOwners?.[g]?.[b] === tables.selfNode) continue;
      this.tracked.delete(key);
      const returned = tables !== undefined && tables.buckets[g]?.[b] === tables.selfNode;
      if (returned || t.latest === 0) continue;
      this.lostTotal += t.latest;
      this.opts.log.warn({ event: 'handover_connections_cut', group: g, bucket: b, connections: t.latest },
        `${t.latest} connection(s) still open in bucket ${b} (group ${g}) when its handover ended: the new owner resets them`);
    }
  }

  /** Stops sampling; a read in flight finishes but reports nothing. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.busy;
  }

  private sampling(): boolean {
    return !this.stopped && prevBucketCount(this.installed?.tables) > 0;
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => this.tick(), delayMs);
    this.timer.unref?.();
  }

  private tick(): void {
    this.timer = undefined;
    if (!this.sampling()) return;
    const startMs = this.nowMs();
    this.lastStartMs = startMs;
    this.busy = this.sample().catch((err) => {
      this.opts.log.error({ err, event: 'holdings_sample_failed' }, 'could not sample the connections held');
    }).finally(() => {
      this.busy = undefined;
      if (!this.sampling() || this.timer) return;
      // A slow read (a huge table) keeps its own pace: at most half the time spent reading.
      const elapsed = this.nowMs() - startMs;
      this.schedule(Math.max(this.intervalMs - elapsed, elapsed));
    });
  }

  private async sample(): Promise<void> {
    const installed = this.installed;
    if (!installed) return;
    const { log } = this.opts;
    const { tables } = installed;
    const sampledAtNs = this.opts.nowNs();
    const sampledAtMs = this.nowMs();
    const first = await this.read(tables);
    if (!first || !this.sampling()) return;
    // Each bucket's zero needs two reads: the previous sample's, when it counted the bucket
    // the same way, else a second read now (a bucket that just became ours to hand over).
    const last = this.last && sameBucketing(this.last.tables, tables) ? this.last : undefined;
    const self = tables.selfNode;
    const isPrev = (t: DataplaneTables, g: number, b: number) => t.prevOwners?.[g]?.[b] === self;
    const unconfirmed = first.counts.some((row, g) => row.some((_, b) => isPrev(tables, g, b) && !(last && isPrev(last.tables, g, b))));
    const second = unconfirmed ? await this.read(tables) : undefined;
    // No longer handing anything over (the table changed during the read): nothing to say,
    // and nothing to keep for a later handover's two-read rule.
    if ((unconfirmed && !second) || !this.sampling()) return;
    const other = (g: number, b: number): number => second?.counts[g]?.[b] ?? last?.raw[g]?.[b] ?? 0;
    const counts = first.counts.map((row, g) => row.map((n, b) => (isPrev(tables, g, b) ? Math.max(n, other(g, b)) : 0)));
    const connections = counts.reduce((n, row) => n + row.reduce((a, b) => a + b, 0), 0);
    this.last = { tables, raw: (second ?? first).counts, status: { prevBuckets: first.prevBuckets, connections, sampledAtMs, carriedTotal: 0, lostTotal: 0 } };
    counts.forEach((row, g) => row.forEach((n, b) => {
      if (!isPrev(tables, g, b)) return;
      const key = `${g}:${b}`;
      const t = this.tracked.get(key);
      if (t) t.latest = n;
      else {
        this.tracked.set(key, { first: n, latest: n });
        this.carriedTotal += n;
      }
    }));
    if (first.unbucketed > 0) {
      this.warnOnce('ipid', () => log.warn({ event: 'holdings_unbucketed', connections: first.unbucketed },
        `${first.unbucketed} connection(s) in on_ipid groups have no bucket: their handover ends by its time limit`));
    }
    log.debug({ event: 'holdings', epoch: installed.epoch, prevBuckets: first.prevBuckets, connections }, 'connections held as previous owner');
    try {
      this.opts.report({ epoch: installed.epoch, counts, sampledAtNs });
    } catch (err) {
      log.error({ err, event: 'holdings_report_failed' }, 'could not report the connections held');
    }
  }

  /** One read of the socket table counted against `tables`; undefined when it failed or was cut (warned once). */
  private async read(tables: DataplaneTables): Promise<HoldingsCount | undefined> {
    const { log } = this.opts;
    const counter = new HoldingsCounter(tables);
    let scanned: Awaited<ReturnType<SocketScan>>;
    try {
      scanned = await this.scan((s) => counter.add(s), vipAddrs(tables));
    } catch (err) {
      this.warnOnce('read', () => log.warn({ err, event: 'holdings_unreadable' },
        'cannot read the socket table: handovers from this node end by their time limit'));
      return undefined;
    }
    if (scanned.truncated) {
      // A partial read could miss a connection and report a bucket finished while it is not.
      this.warnOnce('truncated', () => log.warn({ event: 'holdings_truncated', lines: scanned.lines },
        `socket table longer than ${scanned.lines} lines: not reported, handovers from this node end by their time limit`));
      return undefined;
    }
    this.warned.delete('read');
    return counter.result();
  }

  private warnOnce(what: string, warn: () => void): void {
    if (this.warned.has(what)) return;
    this.warned.add(what);
    warn();
  }
}
