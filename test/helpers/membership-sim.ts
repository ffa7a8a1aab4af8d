// A deterministic in-memory farm for the membership engine: simulated time, per-node clock
// offsets, seeded loss and delay, partitions, one-way cuts, pauses (SIGSTOP: no ticks, no
// receives, datagrams queued), crashes (the data plane keeps its table and lease, as the
// pinned XDP program does) and restarts (new incarnation). Heartbeats go through the real
// codec (HMAC). After every applied decision it checks the safety invariant: no bucket is
// served by two nodes in contact (served = the node's installed table gives it the bucket
// AND its lease is valid under the data plane's rule, deadline + the timing's leaseClockSlackMs).
// With handover on it also models TCP connections in the buckets a node hands over (each
// lives a random drain time), feeds their counts to the engine as the daemon does
// (setHoldings), and checks that no packet can be accepted by two nodes: at most one owner
// (SYNs), a previous owner never also owner, and a node that takes every packet of a bucket
// (owner, no previous owner in its table) never while another serving node still holds
// connections there as previous owner — unless the leader cut them (limit, moved again).
// Like the daemon (src/daemon/farm-daemon.ts), a node whose engine reports WAIT writes lease
// 0 at once. It also checks continuity (docs/membership.md, "Survivors keep serving"): a node
// in clean contact with a majority of its view, whose buckets the next table leaves to it,
// never has its lease lapse — recorded in `lapses`.
// Like the daemon (src/membership/membership.ts, receive-cadence.ts), a node at rest reads
// received heartbeats only at its pulse, each with its arrival time, and on arrival while
// anything happens (SimOptions.batchedReceive).
// Used by test/unit/membership-*.test.ts and to measure failover timings (docs/membership.md).

import { NBUCKETS } from '../../src/balance/tables.js';
import type { SplitBrainPolicy } from '../../src/config/types.js';
import { FarmlbError } from '../../src/errors.js';
import { decodeHeartbeat, encodeHeartbeat } from '../../src/membership/codec.js';
import { MembershipEngine } from '../../src/membership/engine.js';
import { HeartbeatGate } from '../../src/membership/heartbeat-gate.js';
import { LeaseGate } from '../../src/membership/lease-gate.js';
import { withoutRenewal } from '../../src/membership/membership.js';
import { ReceiveCadence } from '../../src/membership/receive-cadence.js';
import { emptyRows } from '../../src/membership/table.js';
import { DEFAULT_TIMING, leaseClockSlackNs } from '../../src/membership/timing.js';
import type { EngineOutput, GroupPowers, Heartbeat, MembershipEvent, MembershipTiming, PowerOverrides } from '../../src/membership/types.js';

/** Connections a previous owner still holds in one bucket (the simulated socket table). */
interface Held {
  count: number;
  untilNs: bigint;
  /** The leader ended the handover while they lived (limit, moved again): lost, not protected. */
  cut: boolean;
}

const MS = 1_000_000n;

export interface SimOptions {
  nodes: string[];
  /** Default: one group "g" where every node has power 1. */
  groups?: GroupPowers[];
  timing?: MembershipTiming;
  splitBrain?: SplitBrainPolicy;
  seed?: number;
  /** One-way network delay range, ms. Default 0.1..2. */
  delayMs?: [number, number];
  /** Per-node config digest (default all equal). */
  digests?: Record<string, string>;
  key?: Buffer;
  /** Per-node key (wrong-key tests). */
  keys?: Record<string, Buffer>;
  /**
   * How long two nodes must have been in contact (both directions up) before the safety
   * invariant applies to them: a healed partition's two sides served the same buckets
   * (policy serve) until they hear each other. Default 0.
   */
  contactGraceMs?: number;
  /**
   * The same for a pair one of which cannot act — crashed or paused: it hears nothing, so its
   * data plane serves on until its lease lapses, up to a lease and the data plane's clock
   * slack after its last renewal, whoever it is in contact with. Default contactGraceMs.
   */
  stoppedGraceMs?: number;
  /** Check the invariant for every pair, in contact or not (quorum: nothing to excuse). */
  strictGlobal?: boolean;
  /** Throw on the first violation (default true). */
  throwOnViolation?: boolean;
  /** Engine option handoverLimitMs (default 0: no handover). */
  handoverLimitMs?: number;
  /**
   * Model connections in buckets a node hands over: `perBucket` connections (default 3) per
   * bucket, each bucket's gone after a random time in `drainMs` (default [50, 400]).
   * Default: modelled when handoverLimitMs > 0.
   */
  connections?: { drainMs?: [number, number]; perBucket?: number } | false;
  /**
   * Time a node's data plane takes to install a table, ms range (default: instant). The
   * daemon applies decisions one at a time and sends each heartbeat after its decision is
   * applied, so a slow install (a loaded host: 20–90 ms measured in a 16-node lab on 2
   * vCPUs) delays the node's table, lease and heartbeats while its engine runs on.
   */
  installMs?: [number, number];
  /**
   * Nodes running a release before heartbeat v2 (a rolling upgrade): they send v1 and refuse
   * v2 bodies as that release's decoder did (FARMLB_E_MEMBERSHIP_BAD_MESSAGE). See upgrade().
   */
  v1Only?: string[];
  /**
   * Heartbeats of decisions without a table leave at once while an install is pending,
   * reporting the data plane's table (heartbeat-gate.ts, as the daemon does). Default true;
   * false: every heartbeat waits for its decision, as before (to compare).
   */
  earlyHeartbeats?: boolean;
  /**
   * A renewal that LeaseGate lets overtake the queued decisions (a table of the data
   * plane's lineage) is written at once while the node serves, as the daemon does
   * (src/membership/lease-gate.ts). Default true; false: every renewal waits for its
   * decision, as before (to compare).
   */
  earlyLeaseWrites?: boolean;
  /** Throw on the first continuity violation (see `lapses`; default false: recorded only). */
  throwOnLapse?: boolean;
  /**
   * Received heartbeats wait for the pulse while the node is at rest (the daemon's
   * ReceiveCadence), handled then with their arrival times. Default true; false: every
   * datagram is handled on arrival, as before (to compare).
   */
  batchedReceive?: boolean;
  /**
   * A check at a peer's deadline between two pulses (the daemon's armCheck,
   * MembershipEngine.checkDeadline). Default true; false: silences are found at pulses only,
   * as before (to compare).
   */
  deadlineChecks?: boolean;
  /**
   * The lease gate knows the node's holdings samples: a renewal may overtake a queued table
   * that only ends a previous-owner role the node holds no connection in (LeaseGate.noteHoldings).
   * Default true; false: as before (to compare).
   */
  drainedEarlyRenewal?: boolean;
}

/**
 * A lapse of a node's kernel lease that the continuity property forbids: from `fromMs` to
 * `toMs` (global time) the node served nothing although it, and a majority of its view, had
 * been running, healthy and in loss-free two-way contact for `settleMs` before, and the table
 * it renewed on still gives it every bucket it served before.
 */
export interface Lapse {
  node: string;
  fromMs: number;
  toMs: number;
  buckets: number;
}

export interface Violation {
  atMs: number;
  group: number;
  bucket: number;
  nodes: string[];
}

interface SimNode {
  name: string;
  engine?: MembershipEngine;
  /** Which heartbeats leave while an install is pending (the daemon's BuiltinMembership). */
  gate: HeartbeatGate;
  running: boolean;
  paused: boolean;
  /** Datagrams waiting to be read (paused, or batched at rest), with their local arrival time. */
  queue: { bytes: Buffer; atNs: bigint }[];
  /** When received heartbeats wait for the pulse (the daemon's). */
  cadence: ReceiveCadence;
  batched: boolean;
  /** Datagrams the codec refused (this incarnation), and their count at the last pulse. */
  refused: number;
  refusedAtTick: number;
  rows: (string | null)[][];
  prev: (string | null)[][];
  epoch: number;
  held: (Held | undefined)[][];
  leaseNs: bigint;
  offsetNs: bigint;
  phaseNs: bigint;
  incarnation: bigint;
  /** Global time the data plane finishes the decisions queued so far (installMs). */
  busyUntilNs: bigint;
  /** Which renewals may be written ahead of the queued decisions (the daemon's BuiltinMembership). */
  leases: LeaseGate;
  /** The deadline last written early (0n once a revocation is written): older renewals are not written back. */
  earlyLeaseNs: bigint;
  digest: string;
  key: Buffer;
  overrides?: PowerOverrides;
  events: { atMs: number; event: MembershipEvent }[];
  state: 'UP' | 'WAIT';
  /** Global time until which the kernel lease lets it serve (continuity monitor). */
  validUntilNs: bigint;
  /** Owned buckets of the table installed while the lease was last valid, and its view. */
  servingRows?: (string | null)[][];
  servingView?: readonly string[];
  /** The local check result the simulation set (setHealth). */
  healthy: boolean;
  /** Global time of its last start, crash, pause, resume or health change. */
  changedNs: bigint;
  /** The check armed last (armCheck): an earlier one that fires does nothing. */
  checkSerial?: number;
}

interface Link {
  up: boolean;
  loss: number;
  /** Global time the link last came up (or a loss cut ended, see lossCut). */
  upSinceNs: bigint;
  /** Global time the link last went up or down or changed its loss. */
  changedNs: bigint;
  /** Global time of the first datagram lost to `loss` since the last one that got through. */
  dropRunFromNs?: bigint;
  /**
   * A run of lost datagrams long enough that the receiver lost the sender: while it lasts the
   * link is cut as far as contact goes — a partition made by loss (docs/membership.md,
   * invariant 1) — and contact starts afresh when a datagram gets through again.
   */
  lossCut: boolean;
}

type SimEvent = { at: bigint; seq: number; run: () => void };

export class Simulator {
  nowNs = 0n;
  readonly nodes = new Map<string, SimNode>();
  readonly violations: Violation[] = [];
  /** Continuity violations (see Lapse). */
  readonly lapses: Lapse[] = [];
  /**
   * Tables revived: a table a node made before a hang longer than the lost timeouts, decided
   * by another node after that node resumed (docs/membership.md, "A returning node rejoins
   * through discovery": a table held before it left is never revived) — except by a node
   * reading the backlog of a long hang of its own.
   */
  readonly revivals: { atMs: number; node: string; leader: string; epoch: number }[] = [];
  /** Per node: the highest epoch of a table of its own making its engine has decided. */
  private readonly ownEpoch = new Map<string, number>();
  /** Per node back from a long hang: its tables up to this epoch are of before it left. */
  private readonly retiredUpTo = new Map<string, number>();
  /** Nodes reading the datagrams queued during their own long hang (resume). */
  private readonly catchingUp = new Set<string>();
  readonly names: string[];
  readonly timing: MembershipTiming;
  /** The data plane's lease clock slack (timing.leaseClockSlackMs) in ns. */
  private readonly slackNs: bigint;
  private readonly groups: GroupPowers[];
  private readonly links = new Map<string, Link>();
  private heap: SimEvent[] = [];
  private seqNo = 0;
  private rnd: number;
  private readonly opts: SimOptions;
  /** Datagrams delivered / dropped by the codec (bad MAC or malformed). */
  delivered = 0;
  rejectedByCodec = 0;
  /** Handover model: connections lost (cut by the leader, or the node lost its role while they lived). */
  lostConnections = 0;
  /** Handover model: connections a previous owner kept until they ended by themselves. */
  carriedConnections = 0;
  private readonly conn: { drainMs: [number, number]; perBucket: number } | undefined;
  private readonly v1Only: Set<string>;

  constructor(opts: SimOptions) {
    this.opts = opts;
    this.names = opts.nodes;
    this.v1Only = new Set(opts.v1Only);
    this.timing = opts.timing ?? DEFAULT_TIMING;
    this.slackNs = leaseClockSlackNs(this.timing);
    this.groups = opts.groups ?? [{ name: 'g', powers: new Map(opts.nodes.map((n) => [n, 1])) }];
    this.rnd = (opts.seed ?? 1) >>> 0 || 1;
    const key = opts.key ?? Buffer.alloc(32, 7);
    const pulseNs = BigInt(this.timing.pulseMs) * MS;
    for (const name of opts.nodes) {
      this.nodes.set(name, {
        name,
        gate: new HeartbeatGate(),
        leases: new LeaseGate(name),
        earlyLeaseNs: 0n,
        running: false,
        paused: false,
        queue: [],
        cadence: new ReceiveCadence({ pulseNs, forgetNs: pulseNs }),
        batched: false,
        refused: 0,
        refusedAtTick: 0,
        rows: emptyRows(this.groups.length),
        prev: emptyRows(this.groups.length),
        epoch: 0,
        held: this.groups.map(() => new Array<Held | undefined>(NBUCKETS).fill(undefined)),
        leaseNs: 0n,
        // Monotonic clocks of different machines share no base.
        offsetNs: BigInt(Math.floor(this.random() * 1e6)) * 1000n + 1_000_000_000n,
        phaseNs: BigInt(Math.floor(this.random() * Number(pulseNs))),
        incarnation: 1000n,
        busyUntilNs: 0n,
        digest: opts.digests?.[name] ?? 'digest-1',
        key: opts.keys?.[name] ?? key,
        events: [],
        state: 'WAIT',
        validUntilNs: 0n,
        healthy: true,
        changedNs: 0n,
      });
    }
    for (const a of opts.nodes) for (const b of opts.nodes) if (a !== b) this.links.set(`${a}>${b}`, { up: true, loss: 0, upSinceNs: 0n, changedNs: 0n, lossCut: false });
    const modelled = opts.connections !== undefined ? opts.connections !== false : (opts.handoverLimitMs ?? 0) > 0;
    const c = opts.connections || {};
    this.conn = modelled ? { drainMs: c.drainMs ?? [50, 400], perBucket: c.perBucket ?? 3 } : undefined;
  }

  // --- randomness and time ------------------------------------------------------------------

  random(): number {
    this.rnd ^= this.rnd << 13; this.rnd >>>= 0;
    this.rnd ^= this.rnd >>> 17;
    this.rnd ^= this.rnd << 5; this.rnd >>>= 0;
    return this.rnd / 0x1_0000_0000;
  }

  get nowMs(): number {
    return Number(this.nowNs) / 1e6;
  }

  localNs(name: string): bigint {
    return this.nowNs + this.node(name).offsetNs;
  }

  private schedule(at: bigint, run: () => void): void {
    const ev = { at, seq: this.seqNo++, run };
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, ev)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = ev;
  }

  private pop(): SimEvent | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        const cur = (k: number) => (k === i ? last : h[k]!);
        if (l < h.length && less(h[l]!, cur(m))) m = l;
        if (r < h.length && less(h[r]!, cur(m))) m = r;
        if (m === i) break;
        h[i] = h[m]!;
        i = m;
      }
      h[i] = last;
    }
    return top;
  }

  /** Runs every event up to `ms` from now; `until` stops early when it returns true (checked after each event). */
  run(ms: number, until?: () => boolean): boolean {
    const end = this.nowNs + BigInt(Math.round(ms * 1e6));
    for (;;) {
      const next = this.heap[0];
      if (!next || next.at > end) break;
      this.pop();
      this.nowNs = next.at;
      next.run();
      if (until?.()) return true;
    }
    this.nowNs = end;
    return until?.() ?? false;
  }

  // --- nodes ----------------------------------------------------------------------------------

  node(name: string): SimNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  engine(name: string): MembershipEngine {
    const e = this.node(name).engine;
    if (!e) throw new Error(`node ${name} is not running`);
    return e;
  }

  /** Starts (or restarts with a new incarnation) a node's daemon. The lease starts revoked. */
  start(name: string): void {
    const n = this.node(name);
    // A new incarnation learns its epochs anew (its tables may reuse numbers it made before).
    this.ownEpoch.delete(name);
    this.retiredUpTo.delete(name);
    n.incarnation += 1n;
    n.running = true;
    n.paused = false;
    n.queue = [];
    n.batched = false;
    n.refused = 0;
    n.refusedAtTick = 0;
    n.cadence = new ReceiveCadence({ pulseNs: BigInt(this.timing.pulseMs) * MS, forgetNs: BigInt(this.timing.mlostCount + 2) * BigInt(this.timing.pulseMs) * MS });
    n.leaseNs = 0n;
    n.validUntilNs = 0n;
    n.servingRows = undefined;
    n.changedNs = this.nowNs;
    // A restart revokes the lease: whatever the node held as previous owner is gone.
    n.held = this.groups.map(() => new Array<Held | undefined>(NBUCKETS).fill(undefined));
    n.epoch = 0;
    n.gate = new HeartbeatGate();
    n.leases = new LeaseGate(name);
    n.earlyLeaseNs = 0n;
    n.engine = new MembershipEngine({
      module: 'farm',
      self: name,
      nodes: this.names,
      groups: this.groups,
      configDigest: n.digest,
      timing: this.timing,
      splitBrain: this.opts.splitBrain ?? 'serve',
      incarnation: n.incarnation,
      startNs: this.localNs(name),
      initialTable: n.rows.map((r) => [...r]),
      ...(n.overrides ? { powerOverrides: n.overrides } : {}),
      ...(this.opts.handoverLimitMs ? { handoverLimitMs: this.opts.handoverLimitMs } : {}),
    });
    const engine = n.engine;
    const pulseNs = BigInt(this.timing.pulseMs) * MS;
    const first = this.nowNs + ((n.phaseNs - (this.nowNs % pulseNs) + pulseNs) % pulseNs);
    const tick = (at: bigint) => {
      this.schedule(at, () => {
        if (n.engine !== engine || !n.running) return;
        if (!n.paused) {
          if (this.conn) {
            const sample = this.sample(n);
            engine.setHoldings(sample);
            if (this.opts.drainedEarlyRenewal !== false) n.leases.noteHoldings(sample);
          }
          // The daemon's pulse: what waited is read first, then the tick, then the cadence.
          this.readQueued(n);
          if (n.engine !== engine || !n.running) return;
          this.decided(n, engine.tick(n.cadence.tickTime(this.localNs(name))));
          if (n.engine === engine && n.running) this.armCheck(n, engine, at + pulseNs);
        }
        tick(at + pulseNs);
      });
    };
    tick(first);
  }

  /** A pulse's or a check's decision: the receive cadence, then apply (the daemon's afterTick and handle). */
  private decided(n: SimNode, out: EngineOutput): void {
    const noDrops = n.refused === n.refusedAtTick;
    n.refusedAtTick = n.refused;
    n.batched = this.opts.batchedReceive !== false && n.cadence.afterTick(out, this.localNs(n.name), noDrops);
    this.apply(n, out);
  }

  /**
   * The daemon's check at a peer's deadline between two pulses (membership.ts armCheck): at
   * the engine's next deadline when it comes before the next pulse (`nextPulseNs`, global).
   */
  private armCheck(n: SimNode, engine: MembershipEngine, nextPulseNs: bigint, afterIdleCheck = false): void {
    // Not while a table is being installed, as the daemon (membership.ts armCheck).
    if (this.opts.deadlineChecks === false || n.gate.installing) return;
    const local = engine.nextDeadlineNs();
    if (local === undefined) return;
    // The timer fires on the next whole millisecond at or after the deadline, as Node's do.
    const inNs = local - this.localNs(n.name);
    const at = this.nowNs + (inNs <= 0n ? 0n : ((inNs + MS - 1n) / MS) * MS);
    if (at >= nextPulseNs || (afterIdleCheck && inNs <= 0n)) return;
    const armed = (n.checkSerial = (n.checkSerial ?? 0) + 1);
    this.schedule(at, () => {
      if (n.engine !== engine || !n.running || n.paused || n.checkSerial !== armed || n.gate.installing) return;
      this.readQueued(n);
      if (n.engine !== engine || !n.running) return;
      const out = engine.checkDeadline(n.cadence.tickTime(this.localNs(n.name)));
      if (out) this.decided(n, out);
      if (n.engine === engine && n.running) this.armCheck(n, engine, nextPulseNs, !out);
    });
  }

  /** A v1-only node (SimOptions.v1Only) restarts with the current release. */
  upgrade(name: string): void {
    this.v1Only.delete(name);
    this.start(name);
  }

  startAll(): void {
    for (const name of this.names) this.start(name);
  }

  /** kill -9: the daemon is gone; the data plane keeps its table and lease. */
  crash(name: string): void {
    const n = this.node(name);
    n.running = false;
    n.engine = undefined;
    n.overrides = undefined;
    n.changedNs = this.nowNs;
  }

  /** SIGSTOP: no ticks, no receives; datagrams wait in the socket buffer. */
  pause(name: string): void {
    this.node(name).paused = true;
    this.node(name).changedNs = this.nowNs;
  }

  /** Paused longer than every peer's lost timeout: its farm has surely moved on without it. */
  private pausedPastLost(n: SimNode): boolean {
    return this.nowNs - n.changedNs > BigInt(this.timing.mlostCount + 1) * BigInt(this.timing.pulseMs) * 1_000_000n;
  }

  /**
   * SIGCONT: queued datagrams are read first (with their kernel arrival times, as the
   * addon's socket gives them), then ticks resume.
   */
  resume(name: string): void {
    const n = this.node(name);
    const long = n.paused && this.pausedPastLost(n);
    if (long && this.ownEpoch.has(name)) this.retiredUpTo.set(name, this.ownEpoch.get(name)!);
    n.paused = false;
    n.changedNs = this.nowNs;
    // A node reading the backlog of its own long hang decides on news as old as that hang,
    // and serves none of it (its lease ran out meanwhile): not a revival by the farm.
    if (long) this.catchingUp.add(name);
    try {
      this.readQueued(n);
    } finally {
      this.catchingUp.delete(name);
    }
  }

  /** Hands every queued datagram to the engine, in arrival order, with its arrival time. */
  private readQueued(n: SimNode): void {
    const engine = n.engine;
    for (const d of n.queue.splice(0)) {
      if (n.engine !== engine || !n.running) return;
      this.receive(n, d.bytes, d.atNs);
    }
  }

  setHealth(name: string, ok: boolean, cause = 'interface check failed'): void {
    const n = this.node(name);
    if (n.engine && !n.paused) {
      if (n.healthy !== ok) n.changedNs = this.nowNs;
      n.healthy = ok;
      this.apply(n, n.engine.setLocalHealth(ok, cause));
    }
  }

  setPower(at: string, node: string, power: number, group?: string): void {
    const n = this.node(at);
    this.apply(n, this.engine(at).setPower(node, power, group));
  }

  clearPower(at: string, node: string, group?: string): void {
    const n = this.node(at);
    this.apply(n, this.engine(at).clearPower(node, group));
  }

  // --- network --------------------------------------------------------------------------------

  link(from: string, to: string): Link {
    return this.links.get(`${from}>${to}`)!;
  }

  setLink(from: string, to: string, up: boolean): void {
    const l = this.link(from, to);
    if (up && !l.up) l.upSinceNs = this.nowNs;
    if (up !== l.up) l.changedNs = this.nowNs;
    l.up = up;
  }

  /** Cuts both directions between the two sides (or restores them). */
  partition(a: string[], b: string[], cut = true): void {
    for (const x of a) for (const y of b) {
      this.setLink(x, y, !cut);
      this.setLink(y, x, !cut);
    }
  }

  healAll(): void {
    for (const a of this.names) for (const b of this.names) if (a !== b) this.setLink(a, b, true);
  }

  setLoss(loss: number, from?: string, to?: string): void {
    for (const [k, l] of this.links) {
      const [f, t] = k.split('>');
      if ((from === undefined || f === from) && (to === undefined || t === to)) {
        if (l.loss !== loss) l.changedNs = this.nowNs;
        l.loss = loss;
      }
    }
  }

  /**
   * Has the current run of lost datagrams on from→to lasted the `slost` pulses after which the
   * receiver may have lost the sender — and has it? (Both: loss short of that is noise a farm
   * rides out, and a receiver that still has the sender from relays is in contact with it.)
   */
  private cutByLoss(from: string, to: string, l: Link): boolean {
    if (l.dropRunFromNs === undefined) return false;
    const spanNs = BigInt(this.timing.slostCount - 1) * BigInt(this.timing.pulseMs) * MS;
    if (this.nowNs - l.dropRunFromNs < spanNs) return false;
    const receiver = this.node(to).engine;
    return receiver !== undefined && receiver.status().peers.some((p) => p.node === from && !p.alive);
  }

  /**
   * Is from→to cut by loss now: marked at a dropped send, or a run of drops the receiver has
   * already lost the sender in (the mark waits for the sender's next dropped datagram, and a
   * receiver acting at its deadline may come before it — property search seed 13, `serve`).
   */
  private lossCutNow(from: string, to: string, l: Link): boolean {
    return l.lossCut || this.cutByLoss(from, to, l);
  }

  /** Delivers raw bytes to a node now (forged or replayed datagrams). */
  inject(to: string, bytes: Buffer): void {
    this.deliver(this.node(to), bytes);
  }

  /** Every datagram sent, newest last (replay tests). */
  readonly wire: { from: string; to: string; bytes: Buffer; atMs: number }[] = [];

  private send(from: SimNode, hb: Heartbeat | undefined): void {
    if (!hb) return;
    const { readsV2: _, ...asV1Only } = hb;
    const bytes = encodeHeartbeat(this.v1Only.has(from.name) ? { ...asV1Only, v: 1 } : hb, from.key);
    const [lo, hi] = this.opts.delayMs ?? [0.1, 2];
    for (const to of this.names) {
      if (to === from.name) continue;
      this.wire.push({ from: from.name, to, bytes, atMs: this.nowMs });
      if (this.wire.length > 4000) this.wire.splice(0, 2000);
      const l = this.link(from.name, to);
      if (!l.up) continue;
      if (this.random() < l.loss) {
        l.dropRunFromNs ??= this.nowNs;
        if (this.cutByLoss(from.name, to, l)) l.lossCut = true;
        continue;
      }
      if (this.lossCutNow(from.name, to, l)) l.upSinceNs = this.nowNs;
      l.lossCut = false;
      l.dropRunFromNs = undefined;
      const delay = BigInt(Math.round((lo + this.random() * (hi - lo)) * 1e6));
      this.schedule(this.nowNs + delay, () => {
        // A datagram in flight when the link is cut is lost too.
        if (!this.link(from.name, to).up) return;
        this.deliver(this.node(to), bytes);
      });
    }
  }

  private deliver(n: SimNode, bytes: Buffer): void {
    if (!n.running || !n.engine) return;
    if (n.paused || n.batched) {
      n.queue.push({ bytes, atNs: this.localNs(n.name) });
      return;
    }
    this.receive(n, bytes, this.localNs(n.name));
  }

  /** One datagram read: refused by the codec (counted), or the engine's at its arrival time. */
  private receive(n: SimNode, bytes: Buffer, atNs: bigint): void {
    if (!n.engine) return;
    let hb;
    try {
      hb = decodeHeartbeat(bytes, n.key);
      if (hb.v !== 1 && this.v1Only.has(n.name)) throw new FarmlbError('FARMLB_E_MEMBERSHIP_BAD_MESSAGE', { detail: `version ${hb.v}` });
    } catch (err) {
      // Dropped and counted, as the transport does: no decision follows from it.
      this.rejectedByCodec++;
      n.refused++;
      return;
    }
    this.delivered++;
    const at = n.cadence.receiveTime(atNs, () => this.localNs(n.name));
    const out = n.engine.receive(hb, at);
    n.cadence.noteReceived(hb.from, at, out);
    this.apply(n, out);
  }

  /** The daemon's order: table, lease, then the heartbeat — one decision at a time. */
  private apply(n: SimNode, out: EngineOutput): void {
    this.noteRevival(n, out);
    const range = this.opts.installMs;
    if (!range) {
      n.leases.queued(out);
      this.applyNow(n, out);
      return;
    }
    const engine = n.engine;
    // Leaving the lineage of a table still on its way: the lease is revoked at once, as the
    // farm daemon's revokeLease() does (lease-gate.ts, leaves(); the whole decision, whose
    // heartbeat names its leader).
    if (n.leases.leaves(out) && n.leaseNs !== 0n) {
      n.leaseNs = 0n;
      n.earlyLeaseNs = 0n;
      this.noteLease(n, false);
    }
    // A heartbeat that may leave before its decision is applied (heartbeat-gate.ts) leaves now.
    if (this.opts.earlyHeartbeats !== false) {
      const early = n.gate.early(out);
      this.send(n, early.now);
      out = early.queued;
    }
    if (this.opts.earlyLeaseWrites !== false) out = this.earlyLease(n, out);
    n.leases.queued(out);
    const start = n.busyUntilNs > this.nowNs ? n.busyUntilNs : this.nowNs;
    const took = out.table ? BigInt(Math.round((range[0] + this.random() * (range[1] - range[0])) * 1e6)) : 0n;
    n.busyUntilNs = start + took;
    if (n.busyUntilNs === this.nowNs) {
      this.applyNow(n, out);
      return;
    }
    // A daemon killed meanwhile never finishes: its data plane keeps what it had.
    this.schedule(n.busyUntilNs, () => { if (n.engine === engine && n.running) this.applyNow(n, out); });
  }

  /**
   * A renewal LeaseGate lets overtake the queued decisions is written at once while the node
   * serves (UP, lease not revoked), as the farm daemon's renewLease() does; the decision is
   * queued without it.
   */
  private earlyLease(n: SimNode, out: EngineOutput): EngineOutput {
    const deadline = n.leases.early(out);
    if (deadline === undefined || deadline <= n.leaseNs) return out;
    if (n.state !== 'UP' || n.leaseNs === 0n) return out;
    n.leaseNs = deadline;
    n.earlyLeaseNs = deadline;
    this.noteLease(n, false);
    this.check();
    return withoutRenewal(out);
  }

  private applyNow(n: SimNode, out: EngineOutput): void {
    if (out.table) {
      if (this.conn) this.moveConnections(n, out.table.groups, out.table.prev);
      n.rows = out.table.groups.map((r) => [...r]);
      n.prev = out.table.prev.map((r) => [...r]);
      n.epoch = out.table.epoch;
    }
    n.leases.applied(out);
    if (out.table) n.engine?.noteApplied(out.table, this.localNs(n.name));
    // An older renewal than one written early is not written back (the farm daemon's apply()).
    // Nor one of a lineage a later decision has left (lease-gate.ts, leftLineage()).
    const stale = out.leaseDeadlineNs !== undefined && out.leaseDeadlineNs !== 0n && (out.leaseDeadlineNs < n.earlyLeaseNs || n.leases.leftLineage(out));
    if (out.leaseDeadlineNs !== undefined && !stale) n.leaseNs = out.leaseDeadlineNs;
    // The daemon: "WAIT serves nothing from the first instant" (lease 0, whatever the engine's).
    if (out.state === 'WAIT') n.leaseNs = 0n;
    if (n.leaseNs === 0n) n.earlyLeaseNs = 0n;
    this.noteLease(n, out.table !== undefined);
    n.state = out.state;
    for (const e of out.events) {
      n.events.push({ atMs: this.nowMs, event: e });
      if (e.type === 'powers') n.overrides = e.overrides;
      if (e.type === 'handover_ended' && (e.reason === 'limit' || e.reason === 'moved')) this.cut(e.from, e.group, e.buckets);
    }
    if (n.events.length > 5000) n.events.splice(0, 2500);
    if (out.table || out.leaseDeadlineNs !== undefined) this.check();
    const engine = n.engine;
    this.send(n, this.opts.earlyHeartbeats === false ? out.send : n.gate.applied(out, () => engine!.beat(this.localNs(n.name))));
  }

  // --- continuity (docs/membership.md, "Survivors keep serving") ---------------------------

  /** How long a node and its contacts must have been undisturbed before a lapse counts. */
  private get settleNs(): bigint {
    return BigInt(this.timing.mlostCount + 2) * BigInt(this.timing.pulseMs) * MS;
  }

  /** After a lease write or table install on n: track when its lease lapses and check each lapse's end. */
  private noteLease(n: SimNode, tableChanged: boolean): void {
    const now = this.nowNs;
    const wasValid = n.validUntilNs > now;
    const until = n.leaseNs + this.slackNs - n.offsetNs;
    const lapseFrom = n.validUntilNs;
    n.validUntilNs = until > now ? until : wasValid ? now : n.validUntilNs;
    const valid = n.validUntilNs > now;
    if (valid && !wasValid && n.servingRows) this.checkLapse(n, lapseFrom);
    if (valid && (tableChanged || !n.servingRows)) {
      n.servingRows = n.rows.map((r) => [...r]);
      n.servingView = n.engine?.status().view ?? [];
    }
  }

  /** A lapse of n from `fromNs` to now ended: a violation when nothing put n's buckets in question. */
  private checkLapse(n: SimNode, fromNs: bigint): void {
    const rows = n.servingRows!;
    let buckets = 0;
    let kept = true;
    rows.forEach((row, g) => row.forEach((o, b) => {
      if (o !== n.name) return;
      buckets++;
      if (n.rows[g]?.[b] !== n.name) kept = false;
    }));
    if (buckets === 0 || !kept) return;
    const since = fromNs - this.settleNs;
    const calm = (x: SimNode) => x.running && !x.paused && x.healthy && x.changedNs <= since;
    if (!calm(n)) return;
    const clean = (l: Link) => l.up && l.loss === 0 && l.changedNs <= since;
    const view = n.servingView ?? [];
    const contacts = view.filter((m) => m !== n.name && this.nodes.has(m) && calm(this.node(m))
      && clean(this.link(n.name, m)) && clean(this.link(m, n.name))).length;
    // A majority of its view (itself included); under quorum also the acknowledgers a lease needs.
    // (At least one: a node alone in its view is one side of a split brain, in contact with nobody.)
    const needed = Math.max(1, Math.floor(view.length / 2), this.opts.splitBrain === 'quorum' ? Math.floor(this.names.length / 2) : 0);
    if (!view.includes(n.name) || contacts < needed) return;
    const lapse = { node: n.name, fromMs: Number(fromNs) / 1e6, toMs: this.nowMs, buckets };
    this.lapses.push(lapse);
    if (this.opts.throwOnLapse) {
      throw new Error(`${n.name} served none of its ${buckets} buckets from ${lapse.fromMs.toFixed(1)} to ${lapse.toMs.toFixed(1)} ms while in contact with ${contacts} of its view`);
    }
  }

  // --- connections (handover model) ---------------------------------------------------------

  /** The connection model's own random stream: modelling connections does not change the network's. */
  private connRnd = 0x9e3779b9;
  private connRandom(): number {
    this.connRnd ^= this.connRnd << 13; this.connRnd >>>= 0;
    this.connRnd ^= this.connRnd >>> 17;
    this.connRnd ^= this.connRnd << 5; this.connRnd >>>= 0;
    return this.connRnd / 0x1_0000_0000;
  }

  private live(h: Held | undefined): h is Held {
    return h !== undefined && this.nowNs < h.untilNs;
  }

  /** A table installed on n: buckets it hands over keep its connections; a role lost drops them. */
  private moveConnections(n: SimNode, groups: (string | null)[][], prev: (string | null)[][]): void {
    const [lo, hi] = this.conn!.drainMs;
    groups.forEach((row, g) => row.forEach((owner, b) => {
      const held = n.held[g]![b];
      if (owner === n.name) {
        n.held[g]![b] = undefined; // owner again: its connections are its own
      } else if (prev[g]?.[b] === n.name) {
        if (held === undefined && n.rows[g]?.[b] === n.name) {
          const drainNs = BigInt(Math.round((lo + this.connRandom() * (hi - lo)) * 1e6));
          n.held[g]![b] = { count: 1 + Math.floor(this.connRandom() * this.conn!.perBucket), untilNs: this.nowNs + drainNs, cut: false };
        }
      } else {
        if (this.live(held) && !held.cut) this.lostConnections += held.count;
        else if (held && !held.cut) this.carriedConnections += held.count;
        n.held[g]![b] = undefined;
      }
    }));
  }

  private cut(node: string, group: string, buckets: number[]): void {
    const g = this.groups.findIndex((x) => x.name === group);
    const n = this.nodes.get(node);
    if (!n || g < 0) return;
    for (const b of buckets) {
      const held = n.held[g]![b];
      if (this.live(held) && !held.cut) {
        held.cut = true;
        this.lostConnections += held.count;
      }
    }
  }

  /** The daemon's connection sample: live connections in the buckets n is previous owner of. */
  private sample(n: SimNode): { epoch: number; counts: number[][]; sampledAtNs: bigint } {
    return {
      epoch: n.epoch,
      counts: n.prev.map((row, g) => row.map((p, b) => {
        const h = n.held[g]![b];
        return p === n.name && this.live(h) ? h.count : 0;
      })),
      sampledAtNs: this.localNs(n.name),
    };
  }

  /** Live connections n still holds as previous owner in bucket b of group g. */
  heldConnections(name: string, g: number, b: number): number {
    const h = this.node(name).held[g]?.[b];
    return this.live(h) && !h.cut ? h.count : 0;
  }

  // --- observation ------------------------------------------------------------------------------

  /** Does `name` serve bucket b of group g right now (table AND lease, with the clock slack)? */
  serves(name: string, g: number, b: number): boolean {
    const n = this.node(name);
    return n.rows[g]?.[b] === name && this.localNs(name) < n.leaseNs + this.slackNs;
  }

  /** Nodes serving each bucket of group g now. */
  servers(g = 0): string[][] {
    const out: string[][] = Array.from({ length: NBUCKETS }, () => []);
    for (const name of this.names) {
      const n = this.node(name);
      const row = n.rows[g];
      if (!row) continue;
      const leaseOk = this.localNs(name) < n.leaseNs + this.slackNs;
      if (!leaseOk) continue;
      row.forEach((o, b) => {
        if (o === name) out[b]!.push(name);
      });
    }
    return out;
  }

  inContact(a: string, b: string): boolean {
    const stopped = [a, b].some((x) => !this.node(x).running || this.node(x).paused);
    const graceMs = (stopped ? this.opts.stoppedGraceMs : undefined) ?? this.opts.contactGraceMs ?? 0;
    const grace = BigInt(Math.round(graceMs * 1e6));
    const ab = this.link(a, b);
    const ba = this.link(b, a);
    // Nodes with different keys cannot hear each other: a partition (docs/security.md).
    if (!this.node(a).key.equals(this.node(b).key)) return false;
    // A loss cut counts from the moment the receiver lost the sender during the run, not only
    // from the next datagram dropped after that (property search seed 13, `serve`: n3 lost n5
    // after 250 ms of 50 % loss and took its buckets 34 ms later, with no heartbeat of n5 sent
    // meanwhile).
    return ab.up && ba.up && !this.lossCutNow(a, b, ab) && !this.lossCutNow(b, a, ba)
      && this.nowNs - ab.upSinceNs >= grace && this.nowNs - ba.upSinceNs >= grace;
  }

  /** Records the node's own tables, and any decision that revives one a resumed node left behind. */
  private noteRevival(n: SimNode, out: EngineOutput): void {
    const mine = out.send?.leader === n.name ? out.send.epoch : out.table?.leader === n.name ? out.table.epoch : undefined;
    if (mine !== undefined && mine > (this.ownEpoch.get(n.name) ?? -1)) this.ownEpoch.set(n.name, mine);
    const t = out.table;
    if (!t || t.leader === null || t.leader === n.name || this.catchingUp.has(n.name)) return;
    const upTo = this.retiredUpTo.get(t.leader);
    if (upTo === undefined || t.epoch > upTo) return;
    this.revivals.push({ atMs: this.nowMs, node: n.name, leader: t.leader, epoch: t.epoch });
    if (this.opts.throwOnViolation !== false) {
      throw new Error(`${n.name} installs ${t.leader}'s table of epoch ${t.epoch}, made before ${t.leader}'s hang, at ${this.nowMs.toFixed(1)} ms`);
    }
  }

  private violation(g: number, b: number, nodes: string[], what: string): void {
    const bad = this.opts.strictGlobal || nodes.length < 2 || nodes.some((x, i) => nodes.slice(i + 1).some((y) => this.inContact(x, y)));
    if (!bad) return;
    this.violations.push({ atMs: this.nowMs, group: g, bucket: b, nodes });
    if (this.opts.throwOnViolation !== false) {
      throw new Error(`bucket ${b} of group ${g}: ${what} (${nodes.join(', ')}) at ${this.nowMs.toFixed(1)} ms`);
    }
  }

  /** Handover: no packet class of a bucket accepted by two serving nodes (see the header). */
  private checkHandover(): void {
    const serving = this.names.filter((name) => this.localNs(name) < this.node(name).leaseNs + this.slackNs);
    for (const name of serving) {
      const n = this.node(name);
      n.prev.forEach((prevRow, g) => {
        if (!prevRow.includes(name)) return;
        prevRow.forEach((p, b) => {
          if (p !== name) return;
          if (n.rows[g]?.[b] === name) this.violation(g, b, [name], 'a table names one node owner and previous owner');
          if (this.heldConnections(name, g, b) === 0) return;
          for (const x of serving) {
            const other = this.node(x);
            if (x !== name && other.rows[g]?.[b] === x && (other.prev[g]?.[b] ?? null) === null) {
              this.violation(g, b, [x, name], `${x} takes every packet while ${name} still holds connections as previous owner`);
            }
          }
        });
      });
    }
  }

  check(): void {
    if (this.conn) this.checkHandover();
    for (let g = 0; g < this.groups.length; g++) {
      this.servers(g).forEach((nodes, b) => {
        if (nodes.length < 2) return;
        const bad = this.opts.strictGlobal || nodes.some((x, i) => nodes.slice(i + 1).some((y) => this.inContact(x, y)));
        if (!bad) return;
        const v = { atMs: this.nowMs, group: g, bucket: b, nodes };
        this.violations.push(v);
        if (this.opts.throwOnViolation !== false) {
          throw new Error(`bucket ${b} of group ${g} served by ${nodes.join(' and ')} at ${this.nowMs.toFixed(1)} ms`);
        }
      });
    }
  }

  /** Buckets of group g served by exactly one node of `among` (default: every node), by node. */
  servedCounts(g = 0, among: string[] = this.names): Map<string, number> {
    const counts = new Map<string, number>();
    for (const all of this.servers(g)) {
      const s = all.filter((n) => among.includes(n));
      if (s.length === 1) counts.set(s[0]!, (counts.get(s[0]!) ?? 0) + 1);
    }
    return counts;
  }

  /**
   * Every node of `names` is UP with the same table, and all 256 buckets of every group are
   * served by exactly one of them (nodes outside `names` are not looked at: the other side
   * of a partition).
   */
  converged(names: string[]): boolean {
    const digests = new Set<string>();
    for (const name of names) {
      const n = this.node(name);
      if (!n.engine || n.paused || n.state !== 'UP') return false;
      digests.add(n.engine.status().tableDigest);
    }
    if (digests.size !== 1) return false;
    // With handover, converged also means every handover has ended.
    if (this.opts.handoverLimitMs && names.some((name) => this.node(name).prev.some((row) => row.some((p) => p !== null)))) return false;
    for (let g = 0; g < this.groups.length; g++) {
      if (!this.servers(g).every((s) => s.filter((n) => names.includes(n)).length === 1)) return false;
    }
    return true;
  }

  eventsOf(name: string, type?: MembershipEvent['type']): { atMs: number; event: MembershipEvent }[] {
    return this.node(name).events.filter((e) => type === undefined || e.event.type === type);
  }
}

function less(a: SimEvent, b: SimEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
