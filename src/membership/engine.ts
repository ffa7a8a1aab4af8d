// The membership protocol's decisions (docs/membership.md): pure, deterministic, time passed
// in. Inputs: tick(now) every pulse, receive(hb, now) for every authenticated heartbeat,
// setLocalHealth, setPower/clearPower. Each returns what the caller must do, in order:
// install `table`, write `leaseDeadlineNs`, transmit `send`.
//
// Invariants this file protects (each argued in docs/membership.md):
// - The lease is extended only on two-way evidence: a peer's heartbeat acknowledging one of
//   ours AND carrying our epoch and table digest; the deadline counts from when that
//   acknowledged heartbeat was sent (so a resumed or one-way-cut node cannot extend a
//   stale table). Under `quorum`, acknowledgements from a majority are needed.
// - The leader gives bucket b to node Y only when no other node may still serve b: every
//   view member whose reported table (or the leader's own) gives it b must first report a
//   table without it; every other node only after its lease has surely run out AND behind the
//   fence: no live peer (nor we) is still on a table whose view includes it — a lease is
//   renewed only on a table whose view includes the renewing node.
// - A node that stops being eligible (health, config digest, quorum) revokes its lease at once.
// - Nobody goes back to an older leadership's table (the fence's premise): a node that is
//   leader again sets the table it made in an earlier leadership aside (leader none, a new
//   epoch) until it decides anew; followers install only tables not older than their
//   leader's latest report.
// - Handover (handoverLimitMs > 0): a node "may serve" b when a table it may have installed
//   names it owner OR previous owner of b. The leader names a new owner only when no other
//   node may be owner and no node but the (single) previous owner it names may serve b.

import { rebalance } from '../balance/assign.js';
import { ReplayGuard } from './codec.js';
import { heartbeatProblem, overridesProblem } from './bounds.js';
import {
  NO_OVERRIDES, bitmapHas, checkPowerChange, decodeRows, effectivePowers, emptyRows, encodeBitmap, encodeRows, hasAny, overridesNewer,
  sameRows, sameWireRows, tableDigest, type Rows, type TableRows,
} from './table.js';
import { leaseClockSlackNs, leaseWaitNs, checkTiming } from './timing.js';
import type {
  AckEntry, EngineOutput, GroupHandover, HandoverEndReason, Heartbeat, HeartbeatHoldings, HeardEntry, HoldingsSample,
  MembershipEngineOptions, MembershipEvent, MembershipStatus, NodeState, PeerStatus, PowerOverrides, ViewTable,
} from './types.js';

const MS = 1_000_000n;
/** Own heartbeats remembered to turn an acknowledgement back into its send time. */
const SENT_RING = 256;
/**
 * Own installed tables remembered (holdings()): far more than a leader publishes between two
 * reports of a live peer, or during a lost peer's lease wait (about one per pulse, a few more
 * when a fence completes).
 */
const RECENT_TABLES = 32;

interface Peer {
  name: string;
  hb?: Heartbeat;
  /** The table of `hb` (owners and previous owners); undefined when it did not decode. */
  rows?: TableRows;
  /**
   * The wire rows `rows` was decoded from: a peer sends the same table every pulse, so an
   * identical `table`/`prev` reuses `rows` instead of decoding it again (decodeTable).
   */
  wireTable?: readonly string[];
  wirePrev?: readonly string[];
  /** Heartbeats accepted (all incarnations) and seq gaps within an incarnation. */
  received: number;
  missed: number;
  lastSeq?: number;
  lastRecvNs?: bigint;
  /** Latest evidence reported by others (our clock, conservative: arrival − reported age). */
  indirectNs?: bigint;
  indirectState?: NodeState;
  /** The table digest and epoch that report says the peer had installed. */
  indirectDigest?: string;
  indirectEpoch?: number;
  /** Latest report (direct or relayed) that this peer hears someone: it can receive acks. */
  connectedNs?: bigint;
  /** Last time this peer could have been renewing a lease from acknowledgements. */
  servingNs?: bigint;
  /** Best lease deadline this peer's acknowledgements give us (our clock). */
  ackDeadlineNs?: bigint;
  alive: boolean;
  everHeard: boolean;
  /** Last time a v1 heartbeat of this peer was accepted (wireVersion()). */
  v1RecvNs?: bigint;
  /**
   * The latest heartbeat of an incarnation not (yet) accepted: acknowledged in ours so that
   * the peer can prove it is live (acceptsIncarnation), never used as evidence.
   */
  candidate?: { incarnation: bigint; seq: number; recvNs: bigint };
}

/** One bucket's handover as the leader tracks it (for the limit and the drained check). */
interface HandoverRecord {
  prev: string;
  startNs: bigint;
  /** Epoch of the table that made `prev` previous owner: its reports from older tables prove nothing. */
  startEpoch: number;
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Nobody (a bucket no table names anyone for). Never modified. */
const NO_ONE: ReadonlySet<string> = new Set<string>();

const maxBig = (a: bigint | undefined, b: bigint | undefined): bigint | undefined =>
  a === undefined ? b : b === undefined ? a : a > b ? a : b;

/** The WAIT cause of a node in its discovery grace; peers read it (smallerPeerDiscovering). */
const DISCOVERING = 'discovering peers';

export class MembershipEngine {
  readonly self: string;
  private opts: MembershipEngineOptions;
  /** A configuration loaded by a reload, switched to once every node has it (stageConfig). */
  private staged: { digest: string; groups: MembershipEngineOptions['groups'] } | undefined;
  private readonly module: string;
  private readonly pulseNs: bigint;
  private readonly leaseNs: bigint;
  private readonly takeoverWaitNs: bigint;
  private readonly peers = new Map<string, Peer>();
  private readonly guard: ReplayGuard;
  private readonly sent = new Map<number, bigint>();
  private seq = 0;
  private table: ViewTable;
  private maxEpochSeen = 0;
  private overrides: PowerOverrides;
  private leaseNsValue = 0n;
  private healthOk = true;
  private healthCause = '';
  private eligible = false;
  private cause = 'starting';
  private state: NodeState = 'WAIT';
  private leader: string | null = null;
  private referenceDigest: string;
  private aliveCount = 0;
  private graceUntilNs: bigint;
  /**
   * Whether the grace waits for every peer (start, a recovered check) or only for one (after
   * a pause: a daemon stalled for a few pulses by a loaded host still hears its view, and
   * waiting for a dead peer's return would stop it serving — docs/membership.md).
   */
  private graceForAll = true;
  private lastTickNs: bigint | undefined;
  /** Per peer, the last well-formed frame of its address that failed the MAC (noteForeignKey). */
  private readonly foreignKeyNs = new Map<string, bigint>();
  /** Per peer, the key id its last foreign frame named (FLB2 frames only). */
  private readonly foreignKeyIds = new Map<string, string>();
  private leaderSinceTick = false;
  /** The candidates of the last tick (the view lead() works on between ticks). */
  private lastCandidates: string[] = [];
  /**
   * Leader: some non-member's buckets wait only for the fence (a live peer may still
   * acknowledge it): re-decide as soon as the peers' heartbeats show the fence installed.
   */
  private fencePending = false;
  /**
   * Since installing a table of another leader than the previous one, no renewal yet: the
   * lease comes from acknowledgements of the previous leader's tables, so the buckets the new
   * table gains us are held back (servedGroups: the owners the data plane has meanwhile).
   */
  private awaitingRenewal = false;
  private servedGroups: Rows | undefined;
  /**
   * The epoch of the first table of the current lineage: the tables installed since the
   * installed table's leader last changed (or since we set our own aside). An acknowledgement
   * on any of them renews the lease (noteAck).
   */
  private lineageStartEpoch = 0;
  /** Set by install(): the table just installed left out a node of the previous view. */
  private droppedFromView = false;
  private splitBrain = false;
  private missing: string[] = [];
  private readonly heardSinceStart = new Set<string>();
  private mismatchReported = new Set<string>();
  private pendingEvents: MembershipEvent[] = [];
  private lostAt = new Map<string, number>();
  /**
   * The tables this node installed lately (its own as leader, or followed), oldest first: a
   * peer may have installed any of them newer than the table it last reported to us.
   */
  private readonly recentTables: ViewTable[] = [];
  /** Tables seen in direct heartbeats, by digest: what a peer reported only by relay holds. */
  private readonly knownTables = new Map<string, TableRows>();
  private readonly handoverLimitNs: bigint;
  /** Leader only: handovers in the installed table, by `${group}:${bucket}`. */
  private readonly handovers = new Map<string, HandoverRecord>();
  private holdingsSample: HoldingsSample | undefined;
  private readonly noPrevRows = new Map<number, Rows>();
  private wireRowsCache: { groups: Rows; prev: Rows; wire: { table: string[]; prev?: string[] } } | undefined;

  constructor(opts: MembershipEngineOptions) {
    checkTiming(opts.timing);
    this.opts = opts;
    this.self = opts.self;
    this.module = opts.module ?? 'farm';
    this.pulseNs = BigInt(Math.round(opts.timing.pulseMs * 1e6));
    this.leaseNs = BigInt(Math.round(opts.timing.leaseMs * 1e6));
    this.takeoverWaitNs = leaseWaitNs(opts.timing);
    this.guard = new ReplayGuard(this.leaseNs);
    this.handoverLimitNs = BigInt(Math.max(0, Math.round((opts.handoverLimitMs ?? 0) * 1e6)));
    for (const n of opts.nodes) if (n !== opts.self) this.peers.set(n, { name: n, alive: false, everHeard: false, received: 0, missed: 0 });
    const rows = opts.initialTable && opts.initialTable.length === opts.groups.length ? opts.initialTable.map((r) => [...r]) : emptyRows(opts.groups.length);
    // An adopted table is what the kernel may still serve; it is reported (so a leader waits
    // for it to be released) but it is no view's table: epoch 0, no leader. (Its previous
    // owners are not adopted: the lease starts revoked, so the kernel serves none of them.)
    const prev = emptyRows(opts.groups.length);
    this.table = { epoch: 0, leader: null, view: [], groups: rows, prev, digest: tableDigest(rows, prev) };
    this.overrides = opts.powerOverrides ?? NO_OVERRIDES;
    this.referenceDigest = opts.configDigest;
    this.graceUntilNs = opts.startNs + BigInt(opts.timing.mlostCount) * this.pulseNs;
  }

  // --- inputs ---------------------------------------------------------------------------

  /**
   * A reload loaded another configuration (`digest`, its group powers; same nodes, groups and
   * timing): advertise it in every heartbeat and switch to it once every node of cluster.xml
   * is alive and has it, staged or active (docs/operations.md, "Changing the configuration").
   * Until then this node keeps its configuration; meanwhile, and during the switch, a node
   * whose active or staged digest is our active or staged one counts as having ours
   * (digestOf). null withdraws a staged configuration.
   */
  stageConfig(staged: { digest: string; groups: MembershipEngineOptions['groups'] } | null): void {
    if (staged && staged.groups.map((g) => g.name).join('\0') !== this.opts.groups.map((g) => g.name).join('\0')) {
      throw new Error('a staged configuration must keep the groups (names and order)');
    }
    this.staged = staged && staged.digest !== this.opts.configDigest ? staged : undefined;
  }

  /** The configuration digest a peer's heartbeat counts with: ours when its active or staged one meets our active or staged one. */
  private digestOf(hb: Heartbeat): string {
    const mine = this.opts.configDigest;
    if (hb.configDigest === mine) return mine;
    const staged = this.staged?.digest;
    if (staged !== undefined && (hb.configDigest === staged || hb.stagedDigest === staged)) return mine;
    if (hb.stagedDigest === mine) return mine;
    return hb.configDigest;
  }

  /** Every peer of cluster.xml is alive and has the staged configuration (staged or active): switch to it. */
  private maybeSwitchConfig(out: EngineOutput): void {
    const staged = this.staged;
    if (!staged) return;
    for (const p of this.peers.values()) {
      if (!p.alive || !p.hb || (p.hb.configDigest !== staged.digest && p.hb.stagedDigest !== staged.digest)) return;
    }
    out.events.push({ type: 'config_switched', from: this.opts.configDigest, to: staged.digest });
    this.opts = { ...this.opts, configDigest: staged.digest, groups: staged.groups };
    this.staged = undefined;
  }

  tick(nowNs: bigint): EngineOutput {
    const out = this.output();
    this.maybeSwitchConfig(out);
    if (this.lastTickNs === undefined) {
      // The discovery grace counts from the first tick, not from construction: the daemon
      // builds the engine before it loads and attaches the program (hundreds of ms), and a
      // grace spent before any heartbeat went out would let a starting node serve every
      // bucket alone, and reset its peers' connections, before it has heard them.
      const graceFromFirstTick = nowNs + BigInt(this.opts.timing.mlostCount) * this.pulseNs;
      if (graceFromFirstTick > this.graceUntilNs) this.graceUntilNs = graceFromFirstTick;
    } else if (nowNs - this.lastTickNs > 3n * this.pulseNs) {
      // Resumed after a pause (SIGSTOP, a stalled event loop): what we knew is stale, so
      // re-discover before ever serving alone.
      if (nowNs >= this.graceUntilNs) this.graceForAll = false;
      this.graceUntilNs = nowNs + BigInt(this.opts.timing.mlostCount) * this.pulseNs;
    }
    this.lastTickNs = nowNs;
    const members = this.assess(nowNs, out);
    const candidates = [...members];
    if (this.eligible) candidates.push(this.self);
    candidates.sort(byName);
    const leader = candidates[0] ?? null;
    if (leader !== this.leader) {
      this.leader = leader;
      out.events.push({ type: 'leader', leader });
    }
    // A new leader waits one pulse before its first table: a competing leader's table (the
    // other side of a heal, a leader that has not yet seen us) reaches it meanwhile and is
    // then part of what it must not hand over twice.
    this.lastCandidates = candidates;
    if (leader === this.self && !this.leaderSinceTick && this.table.leader === this.self) this.setAsideOwnTable();
    if (leader === this.self) {
      // A smaller-named peer still discovering (a farm starting together) is about to lead:
      // a table of ours now would be a second one, made from the same empty tables.
      if (this.leaderSinceTick && !this.smallerPeerDiscovering()) this.lead(nowNs, candidates, out);
    } else {
      // Handover start times are the leader's; a later leadership starts its own clocks.
      this.handovers.clear();
      if (leader !== null) this.followBest(nowNs, out);
    }
    this.leaderSinceTick = leader === this.self;

    // Alone in its view: renew from its own liveness if the policy lets it serve (quorum
    // is already part of eligibility) — only when no live peer shares our configuration.
    // A live peer that does (WAIT while it discovers, a one-way cut) may lead a view of its
    // own a moment later; with it, the lease comes from acknowledgements or not at all.
    const sameConfigPeer = [...this.peers.values()].some((p) => p.alive && (p.hb === undefined || this.digestOf(p.hb) === this.referenceDigest));
    // Only on a table whose view includes us: a fenced node (see holdings()) renews nothing.
    if (this.eligible && leader === this.self && candidates.length === 1 && !sameConfigPeer && this.table.view.includes(this.self)) {
      this.renew(nowNs + this.leaseNs, out);
    }
    this.updateState(out);
    this.updateSplitBrain(candidates, out);
    out.send = this.heartbeat(nowNs);
    return this.finish(out);
  }

  /**
   * A heartbeat now, outside any decision: the daemon's, when an early heartbeat overtook a
   * decision's own while its table was being installed (heartbeat-gate.ts).
   */
  beat(nowNs: bigint): Heartbeat {
    return this.heartbeat(nowNs);
  }

  receive(hb: Heartbeat, nowNs: bigint): EngineOutput {
    const out = this.output();
    const reject = (reason: string, detail?: string): EngineOutput => {
      out.events.push({ type: 'rejected', from: hb.from, reason, ...(detail !== undefined ? { detail } : {}) });
      return this.finish(out);
    };
    if (hb.module !== this.module) return reject('another module', `module ${JSON.stringify(hb.module.slice(0, 64))}, not ${this.module}`);
    if (hb.from === this.self) return reject('carries our own node name');
    const peer = this.peers.get(hb.from);
    if (!peer) return reject('not a node of cluster.xml');
    // Bounded before use (docs/security.md, "Values from peers"): the key proves who may
    // speak, not that what is said is sane.
    const problem = heartbeatProblem(hb);
    if (problem) return reject(problem);
    // A node whose configuration differs has no say in powers or tables: it is heard (liveness,
    // config_mismatch) and nothing more.
    const sameConfig = this.digestOf(hb) === this.opts.configDigest;
    if (sameConfig && hb.powers.entries.length > 0) {
      const powersProblem = overridesProblem(hb.powers, this.opts.nodes, this.opts.groups);
      if (powersProblem) return reject(powersProblem);
    }
    const verdict = this.guard.check(hb, nowNs, this.acknowledgesUs(hb, nowNs));
    if (!verdict.ok && verdict.candidate) {
      // Routine at every (re)start of a peer: acknowledge it and wait for its proof. No event.
      // A candidate that reads only v1 must get our acknowledgement in v1 (wireVersion).
      peer.candidate = { incarnation: hb.incarnation, seq: hb.seq, recvNs: nowNs };
      if (hb.v === 1 && hb.readsV2 !== true) peer.v1RecvNs = nowNs;
      return this.finish(out);
    }
    if (!verdict.ok) return reject(verdict.reason);
    peer.candidate = undefined;
    if (verdict.newIncarnation) {
      peer.ackDeadlineNs = undefined;
      peer.lastSeq = undefined;
      out.events.push({ type: 'peer_joined', node: hb.from, incarnation: hb.incarnation.toString() });
    }
    peer.received++;
    // Gaps within an incarnation only: a restarted peer starts counting afresh.
    if (peer.lastSeq !== undefined && hb.seq > peer.lastSeq + 1) peer.missed += hb.seq - peer.lastSeq - 1;
    peer.lastSeq = hb.seq;
    peer.hb = hb;
    if (hb.v === 1 && hb.readsV2 !== true) peer.v1RecvNs = nowNs;
    peer.rows = sameConfig ? this.decodeTable(hb, peer) : undefined;
    if (peer.rows) this.rememberTable(hb.tableDigest, peer.rows);
    peer.lastRecvNs = nowNs;
    peer.everHeard = true;
    this.heardSinceStart.add(hb.from);
    const slostMs = this.opts.timing.pulseMs * this.opts.timing.slostCount;
    if (hb.heard.some((h) => h.ageMs < slostMs)) {
      peer.connectedNs = nowNs;
      if (hb.state === 'UP') peer.servingNs = nowNs;
    }
    for (const h of hb.heard) this.noteIndirect(h, nowNs);
    if (sameConfig && hb.epoch > this.maxEpochSeen) this.maxEpochSeen = hb.epoch;
    if (sameConfig && overridesNewer(hb.powers, this.overrides)) {
      this.overrides = hb.powers;
      out.events.push({ type: 'powers', overrides: hb.powers, origin: 'peer' });
    }
    if (this.leader !== null && this.leader !== this.self && hb.leader === this.leader && peer.rows) {
      this.maybeInstall(hb, peer.rows, nowNs, out);
      // A table that drops a node fences it (holdings()): tell the leader at once that we
      // installed it, so that the fence costs a round trip, not a pulse.
      // Any new table: the leader's lease (and ours) grows only from acknowledgements on it, so
      // answering at once keeps them renewed when the leader publishes a table per pulse.
      if (out.table) out.send = this.heartbeat(nowNs);
    }
    this.noteAck(peer, hb, out);
    // The fence the leader waited for may be complete now: decide without waiting for the pulse.
    // Only while no smaller-named peer has become a member since the tick (this very heartbeat
    // may show it UP and in contact): that peer leads from our next tick on, and a table of
    // ours now would race its own — two leaders giving one free bucket to two nodes (found by
    // the property search under `quorum`: n3 gave itself a bucket 0.5 ms before n2, the new
    // leader it had not counted yet, gave it to n5).
    if (this.fencePending && this.leader === this.self && this.leaderSinceTick && this.eligible && !this.smallerMember(nowNs)) {
      this.lead(nowNs, this.lastCandidates, out);
      if (out.table) {
        this.updateState(out);
        out.send = this.heartbeat(nowNs);
      }
    }
    return this.finish(out);
  }

  /**
   * Does `hb` acknowledge a heartbeat of our current incarnation sent within the last lease?
   * Only a live sender can (our incarnation is new at every start): a new incarnation of a
   * peer counts only with it, so a recording — of a dead peer, replayed after our restart, or
   * of an older incarnation — never revives anyone (docs/membership.md, "Replay protection").
   */
  private acknowledgesUs(hb: Heartbeat, nowNs: bigint): boolean {
    for (const a of hb.acks) {
      if (a.node !== this.self || a.incarnation !== this.opts.incarnation) continue;
      const sentAt = this.sent.get(a.seq);
      if (sentAt !== undefined && nowNs - sentAt <= this.leaseNs) return true;
    }
    return false;
  }

  /**
   * A well-formed frame from a configured address of `node` that failed the MAC: that node
   * probably uses another key. Reported only (status, docs/security.md): it changes no
   * eligibility, state or lease — a datagram without the key is no evidence anyone can act
   * on, and one that made a node leave the farm would be an outage anyone on the LAN causes.
   */
  noteForeignKey(node: string, nowNs: bigint, keyId?: string): void {
    if (!this.peers.has(node)) return;
    this.foreignKeyNs.set(node, nowNs);
    if (keyId !== undefined) this.foreignKeyIds.set(node, keyId); else this.foreignKeyIds.delete(node);
  }

  /** The local checks or an administrative stop. false revokes the lease at once. */
  setLocalHealth(ok: boolean, cause: string): EngineOutput {
    const out = this.output();
    // Back from a failed check (a link down, `farmlb stop`): what we knew is stale and our
    // buckets were given away meanwhile, so rejoin like a starting node — discover every
    // peer before leading or serving alone (docs/membership.md, "A returning node").
    if (ok && !this.healthOk && this.lastTickNs !== undefined) {
      const grace = this.lastTickNs + BigInt(this.opts.timing.mlostCount + 1) * this.pulseNs;
      if (grace > this.graceUntilNs) this.graceUntilNs = grace;
      this.graceForAll = true;
    }
    this.healthOk = ok;
    this.healthCause = ok ? '' : cause;
    if (!ok && this.eligible) {
      this.eligible = false;
      this.cause = cause;
      this.revoke(out);
      this.updateState(out);
    }
    return this.finish(out);
  }

  /**
   * The daemon's latest count of the connections this node holds as previous owner. Sent
   * in the next heartbeats; the leader ends a bucket's handover when it shows none left.
   */
  setHoldings(sample: HoldingsSample): void {
    if (this.holdingsSample && sample.epoch < this.holdingsSample.epoch) return;
    this.holdingsSample = sample;
  }

  /** A runtime power override (farmlb power/drain), for all of the node's groups or one. */
  setPower(node: string, power: number, group?: string): EngineOutput {
    checkPowerChange(this.opts.groups, this.opts.nodes, node, power, group);
    const entries = this.overrides.entries.filter((e) => !(e.node === node && e.group === (group ?? null)));
    // An all-groups override replaces the node's per-group ones: `power NODE N` means N everywhere.
    const kept = group === undefined ? entries.filter((e) => e.node !== node) : entries;
    return this.publishOverrides([...kept, { node, group: group ?? null, power }]);
  }

  /** Drops the overrides of a node (all of them, or one group's). */
  clearPower(node: string, group?: string): EngineOutput {
    checkPowerChange(this.opts.groups, this.opts.nodes, node, undefined, group);
    return this.publishOverrides(this.overrides.entries.filter((e) => !(e.node === node && (group === undefined || e.group === group))));
  }

  status(nowNs?: bigint): MembershipStatus {
    const ms = (t: bigint | undefined) => (t === undefined || nowNs === undefined ? undefined : Number((nowNs - t) / MS));
    const peers: PeerStatus[] = [...this.peers.values()].map((p) => ({
      node: p.name,
      alive: p.alive,
      member: this.table.view.includes(p.name),
      lastHeardMs: ms(maxBig(p.lastRecvNs, p.indirectNs)),
      lastDirectMs: ms(p.lastRecvNs),
      state: p.hb?.state,
      cause: p.hb?.cause,
      incarnation: p.hb?.incarnation.toString(),
      configDigest: p.hb?.configDigest,
      epoch: p.hb?.epoch,
      heartbeatsReceived: p.received,
      heartbeatsMissed: p.missed,
      ...(this.foreignKeyNs.has(p.name) ? { foreignKeyMs: ms(this.foreignKeyNs.get(p.name)) } : {}),
      ...(this.foreignKeyIds.has(p.name) ? { foreignKeyId: this.foreignKeyIds.get(p.name) } : {}),
    }));
    return {
      node: this.self,
      state: this.state,
      cause: this.cause,
      leader: this.leader,
      epoch: this.table.epoch,
      view: this.table.view,
      tableDigest: this.table.digest,
      table: this.table,
      leaseDeadlineNs: this.leaseNsValue,
      splitBrain: this.splitBrain,
      missing: this.missing,
      quorum: this.quorumOk(),
      configDigest: this.opts.configDigest,
      ...(this.staged ? { stagedDigest: this.staged.digest } : {}),
      referenceDigest: this.referenceDigest,
      powers: this.overrides,
      incarnation: this.opts.incarnation.toString(),
      peers,
      handover: this.handoverStatus(),
    };
  }

  /** Buckets in handover in the installed table, per group, with what each previous owner reported. */
  private handoverStatus(): GroupHandover[] {
    const out: GroupHandover[] = [];
    this.table.prev.forEach((row, g) => {
      const byNode = new Map<string, number[]>();
      row.forEach((p, b) => {
        if (p !== null) byNode.set(p, [...(byNode.get(p) ?? []), b]);
      });
      if (byNode.size === 0) return;
      const prevs: GroupHandover['prevs'] = [...byNode].sort(([a], [b]) => byName(a, b)).map(([node, buckets]) => {
        const report = node === this.self ? this.ownHoldings() : this.peers.get(node)?.hb?.holdings;
        if (!report) return { node, buckets: buckets.length };
        const held = buckets.filter((b) => bitmapHas(report.held[g], b)).length;
        return { node, buckets: buckets.length, held, ...(report.epoch > 0 ? { connections: report.connections[g] ?? 0 } : {}) };
      });
      out.push({ group: this.opts.groups[g]?.name ?? String(g), buckets: row.filter((p) => p !== null).length, prevs });
    });
    return out;
  }

  /** The power overrides in force (for powers.json). */
  powerOverrides(): PowerOverrides {
    return this.overrides;
  }

  // --- assessment -------------------------------------------------------------------------

  private timeoutNs(node: string): bigint {
    const count = node === this.leader ? this.opts.timing.mlostCount : this.opts.timing.slostCount;
    return BigInt(count) * this.pulseNs;
  }

  private evidence(p: Peer): bigint | undefined {
    return maxBig(p.lastRecvNs, p.indirectNs);
  }

  private noteIndirect(h: HeardEntry, nowNs: bigint): void {
    if (h.node === this.self) return;
    const p = this.peers.get(h.node);
    if (!p) return;
    const at = nowNs - BigInt(h.ageMs) * MS;
    if (p.indirectNs === undefined || at > p.indirectNs) {
      p.indirectNs = at;
      p.indirectState = h.state;
      p.indirectDigest = h.tableDigest;
      p.indirectEpoch = h.epoch;
    }
    if (h.mutual) {
      p.connectedNs = maxBig(p.connectedNs, at);
      if (h.state === 'UP') p.servingNs = maxBig(p.servingNs, at);
    }
    p.everHeard = true;
    this.heardSinceStart.add(h.node);
  }

  /** The state a peer advertised most recently, directly or as reported by others. */
  private peerState(p: Peer): NodeState | undefined {
    if (p.lastRecvNs !== undefined && (p.indirectNs === undefined || p.lastRecvNs >= p.indirectNs)) return p.hb?.state;
    return p.indirectState ?? p.hb?.state;
  }

  private quorumOk(): boolean {
    return this.opts.splitBrain !== 'quorum' || (this.aliveCount + 1) * 2 > this.opts.nodes.length;
  }

  /** Liveness, reference digest, own eligibility; returns the other members of the view. */
  private assess(nowNs: bigint, out: EngineOutput): string[] {
    const slostNs = BigInt(this.opts.timing.slostCount) * this.pulseNs;
    const alive: Peer[] = [];
    for (const p of this.peers.values()) {
      const ev = this.evidence(p);
      const isAlive = ev !== undefined && nowNs - ev < this.timeoutNs(p.name);
      if (p.alive && !isAlive) {
        const detectionMs = Number((nowNs - ev!) / MS);
        out.events.push({ type: 'peer_lost', node: p.name, detectionMs });
        this.lostAt.set(p.name, detectionMs);
      }
      p.alive = isAlive;
      if (isAlive) alive.push(p);
    }
    this.aliveCount = alive.length;
    this.referenceDigest = this.chooseDigest(alive);

    const heardByPeer = alive.some((p) =>
      p.lastRecvNs !== undefined && nowNs - p.lastRecvNs < slostNs && p.hb!.heard.some((h) => h.node === this.self && h.ageMs < this.opts.timing.pulseMs * this.opts.timing.slostCount));
    let cause = '';
    if (!this.healthOk) cause = this.healthCause || 'local check failed';
    else if (this.opts.configDigest !== this.referenceDigest) cause = `configuration differs from ${this.digestHolder(alive)}'s`;
    else if (!this.quorumOk()) cause = `no quorum: ${alive.length + 1} of ${this.opts.nodes.length} nodes reachable`;
    else if (alive.length > 0 && !heardByPeer) cause = 'not heard by any peer (one-way cut?)';
    else if (alive.length === 0 && nowNs < this.graceUntilNs) cause = DISCOVERING;
    // Within the grace, wait until every peer is heard and in mutual contact: a node that
    // leads before would make a view of a few beside peers about to form the farm's, and a
    // peer installing that table acknowledges it — two tables serving the same buckets at
    // start. A peer that never shows up only delays the start by the grace.
    else if (nowNs < this.graceUntilNs && this.graceForAll && (alive.length < this.peers.size || alive.some((p) => !this.connected(p, nowNs, slostNs) && p.hb !== undefined && this.digestOf(p.hb) === this.referenceDigest))) {
      cause = DISCOVERING;
    }

    const wasEligible = this.eligible;
    this.eligible = cause === '';
    this.cause = cause;
    if (wasEligible && !this.eligible) this.revoke(out);
    if (!this.quorumOk() && wasEligible) {
      out.events.push({ type: 'quorum_lost', alive: alive.length + 1, needed: Math.floor(this.opts.nodes.length / 2) + 1 });
    }
    this.reportMismatches(alive, out);

    const members: string[] = [];
    for (const p of alive) {
      if (this.peerState(p) === 'UP' && p.hb !== undefined && this.digestOf(p.hb) === this.referenceDigest && this.connected(p, nowNs, slostNs)) {
        members.push(p.name);
        p.servingNs = nowNs;
      }
    }
    return members;
  }

  /** A live peer of our configuration, named before us, that reports it is still discovering. */
  private smallerPeerDiscovering(): boolean {
    for (const p of this.peers.values()) {
      if (p.alive && p.name < this.self && p.hb?.state === 'WAIT' && p.hb.cause === DISCOVERING && this.digestOf(p.hb) === this.referenceDigest) return true;
    }
    return false;
  }

  /** A peer named before us that is a member by the evidence at hand (assess()'s test). */
  private smallerMember(nowNs: bigint): boolean {
    const slostNs = BigInt(this.opts.timing.slostCount) * this.pulseNs;
    for (const p of this.peers.values()) {
      if (p.name >= this.self) continue;
      const ev = this.evidence(p);
      if (ev === undefined || nowNs - ev >= this.timeoutNs(p.name)) continue;
      if (this.peerState(p) === 'UP' && p.hb?.configDigest === this.referenceDigest && this.connected(p, nowNs, slostNs)) return true;
    }
    return false;
  }

  /** Mutual contact: a recent heartbeat (direct or relayed) says the peer hears us. */
  private connected(p: Peer, nowNs: bigint, slostNs: bigint): boolean {
    return p.connectedNs !== undefined && nowNs - p.connectedNs < slostNs;
  }

  /**
   * The digest held by most live nodes (this one included); a tie goes to the digest of the
   * smallest node name among the tied holders. Every node of a view computes the same one.
   */
  private chooseDigest(alive: Peer[]): string {
    const holders = new Map<string, string[]>();
    const add = (digest: string, node: string) => holders.set(digest, [...(holders.get(digest) ?? []), node]);
    add(this.opts.configDigest, this.self);
    for (const p of alive) if (p.hb) add(this.digestOf(p.hb), p.name);
    let best: { digest: string; count: number; first: string } | undefined;
    for (const [digest, nodes] of holders) {
      const first = [...nodes].sort(byName)[0]!;
      if (!best || nodes.length > best.count || (nodes.length === best.count && byName(first, best.first) < 0)) {
        best = { digest, count: nodes.length, first };
      }
    }
    return best!.digest;
  }

  private digestHolder(alive: Peer[]): string {
    return alive.filter((p) => p.hb !== undefined && this.digestOf(p.hb) === this.referenceDigest).map((p) => p.name).sort(byName)[0] ?? '?';
  }

  private reportMismatches(alive: Peer[], out: EngineOutput): void {
    const now = new Set<string>();
    for (const p of alive) {
      if (p.hb && this.digestOf(p.hb) !== this.opts.configDigest) {
        now.add(p.name);
        if (!this.mismatchReported.has(p.name)) {
          out.events.push({ type: 'config_mismatch', node: p.name, ours: this.opts.configDigest, theirs: p.hb.configDigest, reference: this.referenceDigest });
        }
      }
    }
    this.mismatchReported = now;
  }

  // --- leader -------------------------------------------------------------------------------

  private lead(nowNs: bigint, view: string[], out: EngineOutput): void {
    this.fencePending = false;
    const holdings = this.holdings(view, nowNs);
    // A member known only by relay to have installed a table we never saw may serve
    // anything: decide nothing until its heartbeat (or a peer's with that table) arrives.
    if (holdings === undefined) return;
    const powers = effectivePowers(this.opts.groups, this.overrides);
    const base = this.table;
    const members = new Set(view);
    // Members still acting as leaders (their installed table is their own): they have not yet
    // taken us as leader and may, at this very moment, give a bucket that their table leaves
    // unowned to another node than we would (found by the property search under 50% loss: n1
    // and n2 published tables 0.7 ms apart, giving one free bucket to n3 and to n2). Such a
    // bucket gets no owner from us until they follow us; what they own they alone move.
    const rivals = view.map((n) => this.peers.get(n)).filter((p): p is Peer => p !== undefined && p.hb?.leader === p.name && p.rows !== undefined);
    const epoch = Math.max(this.maxEpochSeen, this.table.epoch) + 1;
    // A table inherited from another leader may carry handovers: their clocks start now.
    // (With no handover recorded and none in the table there is nothing to do: the usual tick.)
    if (this.handovers.size > 0 || hasAny(base.prev)) {
      base.prev.forEach((row, g) => row.forEach((p, b) => {
        const key = `${g}:${b}`;
        if (p === null) this.handovers.delete(key);
        else if (this.handovers.get(key)?.prev !== p) this.handovers.set(key, { prev: p, startNs: nowNs, startEpoch: base.epoch });
      }));
    }
    const ended: { g: number; b: number; from: string; reason: HandoverEndReason }[] = [];
    const started: { g: number; b: number; from: string; to: string | null }[] = [];
    const nextGroups: Rows = [];
    const nextPrev: Rows = [];
    base.groups.forEach((row, g) => {
      const desired = rebalance(row, powers[g] ?? new Map(), view);
      // Who may serve each bucket, as owner or as previous owner, in a table they may have installed.
      // (Sets made only for buckets someone holds; NO_ONE stands for the others.)
      const asOwner = new Array<Set<string> | undefined>(row.length);
      const asPrev = new Array<Set<string> | undefined>(row.length);
      // Owners with no previous owner in their table: they take every packet of the bucket.
      // (Not a restarted node's adopted table: it starts with its lease revoked and renews
      // it only from acknowledgements of a view's table, or alone — out of the farm's contact.)
      const takesAll = new Array<Set<string> | undefined>(row.length);
      for (const [name, t, adopted] of holdings) {
        const owners = t.groups[g];
        const prevs = t.prev[g];
        if (owners) {
          for (let b = 0; b < owners.length; b++) {
            if (owners[b] !== name) continue;
            (asOwner[b] ??= new Set()).add(name);
            if (!adopted && (prevs?.[b] ?? null) === null) (takesAll[b] ??= new Set()).add(name);
          }
        }
        if (prevs) {
          for (let b = 0; b < prevs.length; b++) if (prevs[b] === name) (asPrev[b] ??= new Set()).add(name);
        }
      }
      const owners: (string | null)[] = [];
      const prevs: (string | null)[] = [];
      desired.forEach((want, b) => {
        const was = row[b] ?? null;
        const wasPrev = base.prev[g]?.[b] ?? null;
        const on = this.handoverLimitNs > 0n;
        // A previous owner keeps packets of its own connections: never beside a node that may
        // take every packet of b (two sides of a healed partition), or both would take them.
        const ownerOf = asOwner[b] ?? NO_ONE;
        const prevOf = asPrev[b] ?? NO_ONE;
        const all = takesAll[b] ?? NO_ONE;
        const clashes = (q: string | null) => {
          if (q === null) return false;
          for (const n of all) if (n !== q) return true;
          return false;
        };
        let prev = on ? this.nextPrev(g, b, was, wasPrev, want, members, ownerOf, prevOf, nowNs) : null;
        if (clashes(prev)) prev = null;
        // A handover that ends here (drained: it holds nothing and takes nothing new; limit:
        // what it holds is given up) no longer stands in the owner's way.
        const released = on && wasPrev !== null && prev === null ? wasPrev : null;
        // The new owner may take b only when nobody else may be owner, and nobody but the
        // previous owner named here may serve it in any role.
        let owner = want;
        if (owner !== null) {
          for (const n of ownerOf) if (n !== owner) owner = null;
          for (const n of prevOf) if (n !== want && n !== prev && n !== released) owner = null;
          if (owner !== was) for (const r of rivals) if ((r.rows!.groups[g]?.[b] ?? null) === null) owner = null;
        }
        // A live owner that loses b — moved, or held back because another node may still
        // serve it — keeps its connections as previous owner.
        if (on && owner === null && was !== null && members.has(was) && !clashes(was)) prev = was;
        if (prev === owner) prev = null;
        if (wasPrev !== null && wasPrev !== prev) {
          const reason: HandoverEndReason = owner === wasPrev ? 'returned' : prev !== null || clashes(wasPrev) ? 'moved'
            : this.endReason(g, b, wasPrev, members, ownerOf, prevOf, nowNs) ?? 'prev_lost';
          ended.push({ g, b, from: wasPrev, reason });
        }
        if (prev !== null && prev !== wasPrev) started.push({ g, b, from: prev, to: want });
        owners.push(owner);
        prevs.push(prev);
      });
      nextGroups.push(owners);
      nextPrev.push(prevs);
    });
    const memberAhead = view.some((n) => {
      const hb = this.peers.get(n)?.hb;
      return hb !== undefined && (hb.epoch > this.table.epoch || (hb.epoch === this.table.epoch && hb.tableDigest !== this.table.digest));
    });
    // A member on another leader's table of our epoch or above (a rival above, or its
    // followers) installs only a table of ours with a higher epoch: republish even when
    // nothing changes, or a rival
    // whose free buckets we leave unowned, on a table with our very digest, would stay one
    // (found by the property search: every bucket unowned in both, and no table ever again).
    const memberElsewhere = view.some((n) => {
      const hb = n === this.self ? undefined : this.peers.get(n)?.hb;
      return hb !== undefined && hb.leader !== this.self && hb.epoch >= this.table.epoch;
    });
    const sameView = this.table.view.length === view.length && this.table.view.every((n, i) => n === view[i]);
    if (sameRows(nextGroups, base.groups) && sameRows(nextPrev, base.prev) && sameView && this.table.leader === this.self && !memberAhead && !memberElsewhere) return;
    this.noteHandovers(started, ended, epoch, nowNs, out);
    this.install({ epoch, leader: this.self, view, groups: nextGroups, prev: nextPrev, digest: tableDigest(nextGroups, nextPrev) }, out, this.viewCause(view, 'leader'));
    this.awaitingRenewal = false;
    this.servedGroups = undefined;
  }

  /**
   * The previous owner bucket b names next, before the owner is checked (docs/membership.md,
   * "Handover"): a live owner that loses b becomes it (only the latest one is kept); a
   * crashed owner does not (its buckets wait for its lease). A previous owner stays until it
   * reports no connection left, the limit passes, or — gone from the view — its lease has
   * surely run out. May equal `want` (b goes back to it): the caller drops it once it owns b.
   */
  private nextPrev(g: number, b: number, was: string | null, wasPrev: string | null, want: string | null,
    members: Set<string>, asOwner: ReadonlySet<string>, asPrev: ReadonlySet<string>, nowNs: bigint): string | null {
    let prev = was !== null && was !== want && members.has(was) ? was : wasPrev;
    if (prev !== null && prev === wasPrev && this.endReason(g, b, prev, members, asOwner, asPrev, nowNs) !== undefined) prev = null;
    return prev;
  }

  /** Why the handover of b from `prev` ends now, or undefined while it goes on. */
  private endReason(g: number, b: number, prev: string, members: Set<string>, asOwner: ReadonlySet<string>, asPrev: ReadonlySet<string>, nowNs: bigint): HandoverEndReason | undefined {
    const rec = this.handovers.get(`${g}:${b}`);
    if (!members.has(prev)) {
      // Our own table names it, so it stays in the holdings until its lease surely ran out.
      return asOwner.has(prev) || asPrev.has(prev) ? undefined : 'prev_lost';
    }
    if (this.drained(g, b, prev, rec?.startEpoch ?? 0)) return 'drained';
    if (rec && nowNs - rec.startNs >= this.handoverLimitNs) return 'limit';
    return undefined;
  }

  /**
   * Has `node` reported holding no connection in b, under a table that names it previous
   * owner of b (it never accepts a new connection there), sampled under that very table?
   */
  private drained(g: number, b: number, node: string, sinceEpoch: number): boolean {
    if (node === this.self) {
      const s = this.holdingsSample;
      return s !== undefined && s.epoch === this.table.epoch && this.table.epoch >= sinceEpoch
        && this.table.prev[g]?.[b] === node && (s.counts[g]?.[b] ?? 0) === 0;
    }
    const p = this.peers.get(node);
    const hb = p?.hb;
    const h = hb?.holdings;
    if (!hb || !h || !p.rows || h.epoch !== hb.epoch || hb.epoch < sinceEpoch) return false;
    return p.rows.prev[g]?.[b] === node && !bitmapHas(h.held[g], b);
  }

  /** Updates the leader's handover clocks and reports what starts and ends with the table of `epoch`. */
  private noteHandovers(started: { g: number; b: number; from: string; to: string | null }[],
    ended: { g: number; b: number; from: string; reason: HandoverEndReason }[], epoch: number, nowNs: bigint, out: EngineOutput): void {
    const groupName = (g: number) => this.opts.groups[g]?.name ?? String(g);
    const endedBy = new Map<string, { g: number; from: string; reason: HandoverEndReason; buckets: number[] }>();
    for (const e of ended) {
      this.handovers.delete(`${e.g}:${e.b}`);
      const key = `${e.g}\u0000${e.from}\u0000${e.reason}`;
      const entry = endedBy.get(key) ?? { g: e.g, from: e.from, reason: e.reason, buckets: [] };
      entry.buckets.push(e.b);
      endedBy.set(key, entry);
    }
    for (const e of endedBy.values()) {
      const cut = e.reason === 'limit' || e.reason === 'moved';
      const left = cut ? this.reportedConnections(e.g, e.from, e.buckets) : undefined;
      out.events.push({
        type: 'handover_ended', group: groupName(e.g), from: e.from, buckets: e.buckets, reason: e.reason,
        ...(left !== undefined ? { connectionsLeft: left } : {}),
      });
    }
    const startedBy = new Map<string, { g: number; from: string; to: string | null; buckets: number[] }>();
    for (const s of started) {
      this.handovers.set(`${s.g}:${s.b}`, { prev: s.from, startNs: nowNs, startEpoch: epoch });
      const key = `${s.g}\u0000${s.from}\u0000${s.to ?? ''}`;
      const entry = startedBy.get(key) ?? { g: s.g, from: s.from, to: s.to, buckets: [] };
      entry.buckets.push(s.b);
      startedBy.set(key, entry);
    }
    for (const s of startedBy.values()) {
      out.events.push({ type: 'handover_started', group: groupName(s.g), from: s.from, to: s.to, buckets: s.buckets });
    }
  }

  /** Connections `node` last reported holding in `buckets` of group g (0 when it reported none held). */
  private reportedConnections(g: number, node: string, buckets: number[]): number | undefined {
    if (node === this.self) {
      const s = this.holdingsSample;
      return s === undefined ? undefined : buckets.reduce((sum, b) => sum + (s.counts[g]?.[b] ?? 0), 0);
    }
    const h = this.peers.get(node)?.hb?.holdings;
    if (!h || h.epoch === 0) return undefined;
    return buckets.some((b) => bitmapHas(h.held[g], b)) ? (h.connections[g] ?? 0) : 0;
  }

  /**
   * The tables other nodes may still serve from: view members' current tables (and ours,
   * which they may have installed); anyone else's until its lease has surely run out,
   * counted from the last time it could have renewed it. undefined = a member's table is
   * unknown (reported by relay with a digest we have not seen).
   */
  private holdings(view: string[], nowNs: bigint): [string, TableRows, boolean?][] | undefined {
    const out: [string, TableRows, boolean?][] = [];
    // Releasing a silent node's buckets trusts that our members would have told us they
    // still hear it. If their own reports are stale (we were cut off ourselves, or just
    // healed), that silence proves nothing: a node can renew its lease from peers we did
    // not hear from. Wait for fresh reports from every member we hear directly.
    const staleNs = 3n * this.pulseNs;
    const reportsFresh = view.every((n) => {
      const p = this.peers.get(n);
      return !p || p.lastRecvNs === undefined || nowNs - p.lastRecvNs <= staleNs;
    });
    for (const p of this.peers.values()) {
      const member = view.includes(p.name);
      // A relay shows it on another table than its own last heartbeat to us did.
      const relayedNewer = p.indirectNs !== undefined && (p.lastRecvNs === undefined || p.indirectNs > p.lastRecvNs)
        && p.indirectDigest !== undefined && p.indirectDigest !== p.hb?.tableDigest;
      if (!member) {
        const since = p.alive ? p.servingNs : minBig(this.evidence(p), p.servingNs ?? this.evidence(p));
        if (since === undefined) continue;
        // Not released while a relay shows it alive and UP on such a table: the lease wait
        // counts from its last contact and the fence from its acknowledgers, but a node alone
        // on its side of a partition renews from its own liveness (`serve`), so neither bounds
        // its lease; and the relayer, about to get buckets from us, may be in contact with it
        // (search seed 14: n2, resumed beside n3 at a heal, relayed n3 UP on n3's own table,
        // which gave n3 every bucket; n1 gave n2 one of them while n3 still served it).
        const relayedServing = p.alive && relayedNewer && p.indirectState === 'UP';
        if (reportsFresh && nowNs >= since + this.takeoverWaitNs && !relayedServing) {
          if (this.fenced(p)) continue;
          this.fencePending = true;
        }
      }
      out.push([p.name, this.table]);
      // Tables we installed after the one it last reported (several in one pulse when a
      // fence completes, or its reports were lost): it may have installed any of them.
      // (A peer that reports epoch 0 restarted and has installed none of them: only its
      // previous incarnation could have, and a restart revokes the lease — like an adopted
      // table, they never take every packet.)
      const reportedEpoch = p.hb?.epoch ?? -1;
      for (const t of this.recentTables) if (t !== this.table && t.epoch > reportedEpoch) out.push([p.name, t, reportedEpoch === 0]);
      if (relayedNewer) {
        const rows = this.knownTables.get(p.indirectDigest!);
        if (rows) out.push([p.name, rows]);
        else return undefined;
      }
      if (p.rows) out.push([p.name, p.rows, p.hb!.epoch === 0]);
    }
    // A node may also install, at any moment, the table of another node that acts as
    // leader (views disagree for a pulse after a heal, a restart, a leader's loss): every
    // node of that leader's view may hold what that table gives it. Also when a live peer
    // relays it (its own table, made by another leader): that leader's heartbeats may not
    // reach us (a heal, a one-way cut), and a member we hear only by relay may be on it
    // (docs/membership.md, "the relay freshness gap").
    const leadsNobodyNs = BigInt(this.opts.timing.mlostCount) * this.pulseNs;
    for (const q of this.peers.values()) {
      if (!q.alive || !q.hb || !q.rows || q.hb.leader === null || q.hb.leader === this.self) continue;
      // Not the table of its own leadership that a WAIT node still carries (a leader whose
      // check failed, back after its link came up): nobody follows a WAIT node, and once it
      // has been out of service for `mlost` pulses no follower can still take it for its
      // leader; when it leads again it sets that table aside. Counting it made the leader
      // take back, table after table, the buckets it had given the survivors (seen in the
      // lab: kept buckets of every survivor unowned for a pulse at the old leader's return).
      if (q.hb.leader === q.name && q.hb.state === 'WAIT' && (q.servingNs === undefined || nowNs - q.servingNs > leadsNobodyNs)) continue;
      for (const n of q.hb.view) if (n !== this.self) out.push([n, q.rows]);
    }
    return out;
  }

  /**
   * Can no node we know of still extend x's lease? A lease grows only from acknowledgements
   * sent on x's own table, and only on a table whose view includes x (noteAck). So x's
   * silence bounds its lease only once every live peer that could acknowledge it (and we)
   * reports a table that leaves x out: acknowledgements they sent before carry heartbeats
   * of x they had received by then, which their later reports (and so our evidence of x)
   * include. Without this, a peer that heard x after its last report reaching us (loss, a
   * one-way cut to us, a WAIT node still following x's table) renews x unseen.
   * (A peer we have lost ourselves is not covered: a lossy partition, see docs.)
   */
  private fenced(x: Peer): boolean {
    if (this.table.view.includes(x.name)) return false;
    const xDigest = x.hb === undefined ? undefined : this.digestOf(x.hb);
    for (const m of this.peers.values()) {
      if (m === x || !m.alive) continue;
      // A peer with another configuration cannot acknowledge x (noteAck compares digests).
      if (m.hb !== undefined && xDigest !== undefined && this.digestOf(m.hb) !== xDigest) continue;
      // Its own heartbeat, not a relay: only that carries when it last heard x.
      if (!m.hb || m.hb.view.includes(x.name)) return false;
      // Its own last heartbeat was on a table without x: acknowledgements it sent on a table
      // with x came before, and that heartbeat said when it last heard x. A relay shows it on
      // a newer table since: that matters only if the newer table may name x again (unknown,
      // or naming it), as its acknowledgements carry that table. With many peers some relay
      // is nearly always newer than the peer's own report; refusing on every one of them
      // stalled takeovers in 16-node farms for seconds.
      const relayedNewer = m.indirectNs !== undefined && (m.lastRecvNs === undefined || m.indirectNs > m.lastRecvNs)
        && m.indirectDigest !== undefined && m.indirectDigest !== m.hb.tableDigest;
      if (relayedNewer) {
        const newer = this.recentTables.find((t) => t.digest === m.indirectDigest);
        if (!newer || newer.view.includes(x.name)) return false;
      }
    }
    return true;
  }

  private rememberTable(digest: string, rows: TableRows): void {
    if (this.knownTables.has(digest)) return;
    this.knownTables.set(digest, rows);
    // Insertion order: drop the oldest beyond a few dozen (tables change a few times per failover).
    for (const k of this.knownTables.keys()) {
      if (this.knownTables.size <= 32) break;
      this.knownTables.delete(k);
    }
  }

  private viewCause(view: string[], who: string): string {
    const before = new Set(this.table.view);
    const after = new Set(view);
    const joined = view.filter((n) => !before.has(n));
    const left = this.table.view.filter((n) => !after.has(n));
    const parts: string[] = [];
    if (left.length) parts.push(`lost ${left.join(',')}`);
    if (joined.length) parts.push(`joined ${joined.join(',')}`);
    if (parts.length === 0) parts.push(this.table.leader !== this.leader ? `new leader ${this.leader}` : `rebalance by ${who}`);
    return parts.join('; ');
  }

  // --- follower -----------------------------------------------------------------------------

  /** Installs the leader's newest table known from any peer's latest heartbeat (relayed or direct). */
  private followBest(nowNs: bigint, out: EngineOutput): void {
    let best: Peer | undefined;
    for (const p of this.peers.values()) {
      if (!p.hb || !p.rows || p.hb.leader !== this.leader) continue;
      if (!best || p.hb.epoch > best.hb!.epoch) best = p;
    }
    if (best) this.maybeInstall(best.hb!, best.rows!, nowNs, out);
  }

  private maybeInstall(hb: Heartbeat, rows: TableRows, nowNs: bigint, out: EngineOutput): void {
    // A node whose configuration differs cannot read the leader's table reliably (node
    // ids may differ) and serves nothing anyway.
    if (this.opts.configDigest !== this.referenceDigest) return;
    if (rows.groups.length !== this.opts.groups.length) return;
    // Strictly newer only: two leaders (two sides of a partition) can publish the same epoch;
    // the merged leader then republishes above both (see lead()). Except a table of our
    // (new) leader that gives a bucket we serve to another node, when ours is another
    // leader's: the epochs of two sides are not ordered, and after a heal that leader may be
    // cut off again before it can republish above ours — we yield to its current table rather
    // than serve beside that node until our lease runs out (found by the property search:
    // n3, alone on its side, and n4, on n2's table, served one bucket for a whole lease after
    // the heal, both following n2, cut off again at once).
    const newer = hb.epoch > this.table.epoch || (hb.leader !== this.table.leader && this.givesAwayServed(rows));
    if (!newer || tableDigest(rows.groups, rows.prev) !== hb.tableDigest) return;
    // Only a table of the leader's current leadership: one it made in an earlier one (relayed
    // by a node still on it after a heal) may give back what our side's leader has moved on
    // from under a lower epoch. The leader's latest report shows its current epoch (a leader
    // again sets its old table aside under a new epoch, see setAsideOwnTable).
    const floor = this.leaderFloor();
    if (floor === undefined || hb.epoch < floor) return;
    // A leader whose view leaves us out while we serve a view's table has not heard us yet (a
    // heal, a returning node) or lost us while we hear it: keep serving our table rather than
    // stop for a table that does not know us; one naming us follows once it hears us. Safe
    // because our lease grows only from acknowledgements on our table: peers that install the
    // leader's table stop giving them, and the leader's fence counts any peer still on ours
    // (docs/membership.md, "Survivors keep serving").
    // Unless that table gives a bucket we serve to another node: the leader released it once
    // our lease had surely run out as far as it knew (lease wait and fence, a partition under
    // `serve`), so its new owner may be serving it already — we yield at once, as a side of a
    // healed partition does (found by the property search: n1, cut from n2, gave n2's buckets
    // to n3 at the heal; n2, renewed by n4 and n5 on n1's older table, refused n1's table and
    // served beside n3 for a whole lease while n1 was cut off again).
    if (this.eligible && this.table.leader !== null && this.table.view.includes(this.self) && !hb.view.includes(this.self)
      && !this.givesAwayServed(rows)) return;
    const served = this.servedGroups ?? this.table.groups;
    // A table of another leader than the one our lease was renewed with: what it gains us is
    // served only once a peer acknowledges us on it (docs/membership.md, "Switching leaders").
    if (hb.leader !== this.table.leader) {
      for (const p of this.peers.values()) p.ackDeadlineNs = undefined;
      this.awaitingRenewal = true;
    }
    this.install({ epoch: hb.epoch, leader: hb.leader, view: [...hb.view], groups: rows.groups, prev: rows.prev, digest: hb.tableDigest },
      out, this.viewCause(hb.view, `leader ${hb.leader}`));
    // (A lease that has run out serves nothing to hold back: the next renewal is on this leader's tables.)
    if (this.awaitingRenewal && this.leaseNsValue + leaseClockSlackNs(this.opts.timing) > nowNs) this.holdBackGained(served, out);
    else this.servedGroups = undefined;
  }

  /** Does `rows` name another node owner or previous owner of a bucket the data plane serves for us? */
  private givesAwayServed(rows: TableRows): boolean {
    const served = this.servedGroups ?? this.table.groups;
    return served.some((row, g) => row.some((o, b) => {
      if (o !== this.self) return false;
      const owner = rows.groups[g]?.[b] ?? null;
      const prev = rows.prev[g]?.[b] ?? null;
      return (owner !== null && owner !== this.self) || (prev !== null && prev !== this.self);
    }));
  }

  /**
   * Gives the data plane the installed table without the buckets it gains us over `served`
   * (what the data plane has), until a renewal on a table of this leader (renew()).
   */
  private holdBackGained(served: Rows, out: EngineOutput): void {
    let held = 0;
    const groups = this.table.groups.map((row, g) => row.map((o, b) => {
      if (o !== this.self || served[g]?.[b] === this.self) return o;
      held++;
      return null;
    }));
    this.servedGroups = held > 0 ? groups : undefined;
    if (held > 0) out.table = { ...this.table, groups };
  }

  /** The epoch our leader advertised in its latest report (its own heartbeat or a peer's relay). */
  private leaderFloor(): number | undefined {
    const p = this.leader === null ? undefined : this.peers.get(this.leader);
    if (!p) return undefined;
    const direct = p.lastRecvNs !== undefined && (p.indirectNs === undefined || p.lastRecvNs >= p.indirectNs);
    // A leader whose own table is not of its making (restarted: its start table, leader none;
    // or still on its predecessor's) has no table of its current leadership yet: a table
    // naming it that a peer relays is from an earlier one — a restarted leader's start table
    // can even have the digest of its first table before the restart. Found by the property
    // search (seed 9): n2, back from a SIGSTOP, carried n1's first table; n1 had restarted
    // meanwhile, and its start table had that table's content under epoch 0, so n3, n4 and n5
    // installed n2's copy (epoch 1 ≥ 0) and gave n2 back buckets n3 and n5 still served.
    // Relayed news of a higher epoch than its last heartbeat showed: it has moved on since.
    const own = p.hb !== undefined && p.hb.leader === p.name;
    if (!direct && p.indirectEpoch !== undefined && p.indirectEpoch > (p.hb?.epoch ?? -1)) return p.indirectEpoch;
    return own ? p.hb!.epoch : undefined;
  }

  /**
   * Leader again while the installed table is one we made in an earlier leadership: the
   * other side of a healed partition may have moved on from it under lower epochs (epochs of
   * two sides are not ordered by what they know), so nobody must go back to it. We stop
   * standing behind it — same content, leader none, an epoch above all seen — until our
   * first decision, a pulse later: followers do not install it (not made by their leader)
   * and, the floor being that epoch, nor the old one relayed by a node still on it; and no
   * acknowledgement of the old one renews our lease. The kernel keeps the content (not
   * re-applied: nothing changes in what may be served).
   */
  private setAsideOwnTable(): void {
    const epoch = Math.max(this.maxEpochSeen, this.table.epoch) + 1;
    this.table = { ...this.table, epoch, leader: null };
    this.maxEpochSeen = epoch;
    this.lineageStartEpoch = epoch;
  }

  /**
   * The table a heartbeat carries; undefined when a row is malformed (prev absent = no
   * handover). The same wire rows as the peer's previous heartbeat give the same rows object
   * (decoding is a pure function of the strings and cluster.xml's node list): tables, like
   * every row array here, are never modified once made.
   */
  private decodeTable(hb: Heartbeat, peer: Peer): TableRows | undefined {
    if (peer.rows !== undefined && sameWireRows(peer.wireTable, hb.table) && sameWireRows(peer.wirePrev, hb.prev)) return peer.rows;
    peer.wireTable = undefined;
    peer.wirePrev = undefined;
    const groups = decodeRows(hb.table, this.opts.nodes);
    if (!groups || groups.length !== this.opts.groups.length) return undefined;
    const prev = hb.prev === undefined ? this.noPrev(groups.length) : decodeRows(hb.prev, this.opts.nodes);
    if (!prev || prev.length !== groups.length) return undefined;
    peer.wireTable = hb.table;
    peer.wirePrev = hb.prev;
    return { groups, prev };
  }

  /** Empty previous-owner rows for `groups` groups: one shared (never modified) instance per count. */
  private noPrev(groups: number): Rows {
    let rows = this.noPrevRows.get(groups);
    if (!rows) {
      rows = emptyRows(groups);
      this.noPrevRows.set(groups, rows);
    }
    return rows;
  }

  private install(table: ViewTable, out: EngineOutput, cause: string): void {
    const prev = this.table;
    let moved = 0;
    let gained = 0;
    let lost = 0;
    table.groups.forEach((row, g) => row.forEach((o, b) => {
      const was = prev.groups[g]?.[b] ?? null;
      if (was === o) return;
      moved++;
      if (o === this.self) gained++;
      if (was === this.self) lost++;
    }));
    if (table.leader === null || table.leader !== prev.leader) this.lineageStartEpoch = table.epoch;
    this.table = table;
    this.recentTables.push(table);
    if (this.recentTables.length > RECENT_TABLES) this.recentTables.shift();
    this.rememberTable(table.digest, table);
    if (table.epoch > this.maxEpochSeen) this.maxEpochSeen = table.epoch;
    out.table = table;
    const lostNodes = prev.view.filter((n) => !table.view.includes(n));
    this.droppedFromView = lostNodes.length > 0;
    const detections = lostNodes.map((n) => this.lostAt.get(n)).filter((x): x is number => x !== undefined);
    for (const n of lostNodes) this.lostAt.delete(n);
    out.events.push({
      type: 'view', epoch: table.epoch, leader: table.leader, view: table.view, cause, moved, gained, lost,
      ...(detections.length ? { detectionMs: Math.max(...detections) } : {}),
    });
  }

  // --- lease --------------------------------------------------------------------------------

  private noteAck(peer: Peer, hb: Heartbeat, out: EngineOutput): void {
    if (!this.eligible) return;
    if (this.digestOf(hb) !== this.opts.configDigest) return;
    // Only on a table whose view includes us: a table that leaves us out is a fence (holdings()).
    if (!this.table.view.includes(this.self) || !this.onOurLineage(hb)) return;
    const ack = hb.acks.find((a: AckEntry) => a.node === this.self && a.incarnation === this.opts.incarnation);
    if (!ack) return;
    const sentAt = this.sent.get(ack.seq);
    if (sentAt === undefined) return;
    const deadline = sentAt + this.leaseNs;
    peer.ackDeadlineNs = maxBig(peer.ackDeadlineNs, deadline);
    // Under quorum the peers that acknowledge must, with us, be a majority of cluster.xml.
    const needed = this.opts.splitBrain === 'quorum' ? Math.floor(this.opts.nodes.length / 2) : 1;
    const deadlines = [...this.peers.values()].map((p) => p.ackDeadlineNs).filter((d): d is bigint => d !== undefined).sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
    const kth = deadlines[needed - 1];
    if (kth !== undefined) this.renew(kth, out);
  }

  /**
   * Is the peer on our installed table, or on an earlier one of the same leader's current
   * lineage that names us? During a handover the leader publishes a table per pulse; with
   * installs of tens of ms (a loaded host), a follower's answer on table k reached the leader
   * once it was on k+1, and the follower's on k the leader's on k+1, so nobody's lease was
   * renewed while the handover lasted (found in the lab: survivors' leases lapsing at a
   * rejoin; reproduced by the simulator with installs of 5–60 ms). Safe: those tables are one
   * leader's, each made by the hand-over rule against every table a peer may hold, so they
   * agree on who serves what; the lease bounds serving by the table the data plane has, never
   * an older one; and a peer that has moved to a table leaving us out (the fence) sends no
   * acknowledgement on ours any more.
   */
  private onOurLineage(hb: Heartbeat): boolean {
    if (hb.epoch === this.table.epoch) return hb.tableDigest === this.table.digest;
    if (hb.epoch < this.lineageStartEpoch || hb.epoch > this.table.epoch || this.table.leader === null) return false;
    return this.recentTables.some((t) => t.epoch === hb.epoch && t.digest === hb.tableDigest && t.leader === this.table.leader && t.view.includes(this.self));
  }

  private renew(deadline: bigint, out: EngineOutput): void {
    if (deadline > this.leaseNsValue) {
      this.leaseNsValue = deadline;
      out.leaseDeadlineNs = deadline;
      if (this.table.leader !== null) out.leaseLineage = { leader: this.table.leader, fromEpoch: this.lineageStartEpoch };
      // The acknowledgements since a change of leader were all on its tables (maybeInstall
      // cleared the older ones): the buckets held back are ours now.
      if (this.awaitingRenewal) this.releaseHeldBack(out);
    }
  }

  private releaseHeldBack(out: EngineOutput): void {
    this.awaitingRenewal = false;
    if (this.servedGroups === undefined) return;
    this.servedGroups = undefined;
    out.table = this.table;
    out.completesTable = true;
  }

  private revoke(out: EngineOutput): void {
    for (const p of this.peers.values()) p.ackDeadlineNs = undefined;
    this.leaseNsValue = 0n;
    out.leaseDeadlineNs = 0n;
  }

  // --- state and reports ----------------------------------------------------------------

  private updateState(out: EngineOutput): void {
    let state: NodeState = 'WAIT';
    let cause = this.cause;
    if (this.eligible) {
      // UP also while a new leader's table is on its way: the installed table is a view's
      // (made by a leader, naming us) and the lease still grows only from acknowledgements on
      // it, so the buckets it gives us are ours until a table moves them (docs/membership.md,
      // "Survivors keep serving"). WAIT would make the daemon revoke the kernel lease of every
      // survivor at each change of leader.
      if (this.leader !== null && this.table.leader !== null && this.table.view.includes(this.self)) {
        state = 'UP';
        cause = '';
      } else {
        cause = `waiting for the table of leader ${this.leader ?? '(none)'}`;
      }
    }
    this.cause = cause;
    if (state !== this.state) {
      this.state = state;
      out.events.push({ type: 'state', state, cause: cause || `in the view of epoch ${this.table.epoch}` });
    }
  }

  private updateSplitBrain(view: string[], out: EngineOutput): void {
    const inView = new Set(view);
    const missing = [...this.heardSinceStart].filter((n) => !inView.has(n)).sort(byName);
    // A node that serves with peers missing is one side of a split brain; so is a `quorum`
    // minority, which serves nothing but must still say loudly that the farm is partitioned.
    const split = missing.length > 0 && (this.eligible || !this.quorumOk());
    this.missing = missing;
    if (split && !this.splitBrain) out.events.push({ type: 'split_brain', view, missing });
    if (!split && this.splitBrain) out.events.push({ type: 'split_brain_healed', view });
    this.splitBrain = split;
  }

  private publishOverrides(entries: PowerOverrides['entries']): EngineOutput {
    const out = this.output();
    const sorted = [...entries].sort((a, b) => byName(a.node, b.node) || byName(a.group ?? '', b.group ?? ''));
    this.overrides = { version: this.overrides.version + 1, origin: this.self, entries: sorted };
    out.events.push({ type: 'powers', overrides: this.overrides, origin: 'local' });
    return this.finish(out);
  }

  private heartbeat(nowNs: bigint): Heartbeat {
    this.seq++;
    this.sent.set(this.seq, nowNs);
    this.sent.delete(this.seq - SENT_RING);
    const windowNs = BigInt(this.opts.timing.mlostCount) * this.pulseNs;
    const slostMs = this.opts.timing.pulseMs * this.opts.timing.slostCount;
    const acks: AckEntry[] = [];
    const heard: HeardEntry[] = [];
    for (const p of this.peers.values()) {
      if (!p.hb || p.lastRecvNs === undefined || nowNs - p.lastRecvNs >= windowNs) continue;
      acks.push({ node: p.name, incarnation: p.hb.incarnation, seq: p.hb.seq });
      heard.push({
        node: p.name,
        ageMs: Number((nowNs - p.lastRecvNs) / MS),
        state: p.hb.state,
        mutual: p.hb.heard.some((h) => h.node === this.self && h.ageMs < slostMs),
        epoch: p.hb.epoch,
        tableDigest: p.hb.tableDigest,
      });
    }
    // Candidates (a new incarnation not accepted yet) get an acknowledgement and nothing
    // else: with it they prove they are live (acknowledgesUs on their side of the exchange).
    for (const p of this.peers.values()) {
      const c = p.candidate;
      if (c && nowNs - c.recvNs < windowNs) acks.push({ node: p.name, incarnation: c.incarnation, seq: c.seq });
    }
    const holdings = this.ownHoldings();
    const v = this.wireVersion(nowNs, windowNs);
    return {
      v,
      ...(v === 1 ? { readsV2: true as const } : {}),
      module: this.module,
      from: this.self,
      incarnation: this.opts.incarnation,
      seq: this.seq,
      sentAtNs: nowNs,
      state: this.eligible ? 'UP' : 'WAIT',
      cause: this.eligible ? '' : this.cause,
      configDigest: this.opts.configDigest,
      ...(this.staged ? { stagedDigest: this.staged.digest } : {}),
      epoch: this.table.epoch,
      leader: this.table.leader,
      view: this.table.view,
      tableDigest: this.table.digest,
      ...this.wireRows(),
      ...(holdings ? { holdings } : {}),
      powers: this.overrides,
      acks,
      heard,
    };
  }

  /**
   * The heartbeat body version to send: v2, unless a peer that reads only v1 (not upgraded
   * yet) was heard within the last `mlost` pulses. It refuses v2 bodies, so while one is alive
   * the farm speaks v1 and stays one membership; every node reads both. Our v1 bodies say
   * readsV2, so that they do not hold the farm on v1 after the last v1-only node is gone.
   */
  private wireVersion(nowNs: bigint, windowNs: bigint): 1 | 2 {
    for (const p of this.peers.values()) if (p.v1RecvNs !== undefined && nowNs - p.v1RecvNs < windowNs) return 1;
    return 2;
  }

  /** The installed table's rows as heartbeats carry them, encoded once per table (not per pulse). */
  private wireRows(): { table: string[]; prev?: string[] } {
    const { groups, prev } = this.table;
    const c = this.wireRowsCache;
    if (c && c.groups === groups && c.prev === prev) return c.wire;
    const wire = { table: encodeRows(groups, this.opts.nodes), ...(hasAny(prev) ? { prev: encodeRows(prev, this.opts.nodes) } : {}) };
    this.wireRowsCache = { groups, prev, wire };
    return wire;
  }

  /**
   * What this node reports holding as previous owner; undefined when it is previous owner
   * of nothing. Without a sample under the installed table every such bucket counts as
   * held: a sample from an older table says nothing about buckets that moved since.
   */
  private ownHoldings(): HeartbeatHoldings | undefined {
    const prev = this.table.prev;
    if (!prev.some((row) => row.includes(this.self))) return undefined;
    const s = this.holdingsSample;
    const current = s !== undefined && s.epoch === this.table.epoch;
    return {
      epoch: s?.epoch ?? 0,
      held: prev.map((row, g) => encodeBitmap((b) => row[b] === this.self && (!current || (s.counts[g]?.[b] ?? 0) > 0))),
      connections: prev.map((row, g) => (s?.counts[g] ?? []).reduce((sum, c, b) => sum + (row[b] === this.self || !current ? c : 0), 0)),
    };
  }

  private output(): EngineOutput {
    return { state: this.state, cause: this.cause, events: this.pendingEvents.splice(0) };
  }

  private finish(out: EngineOutput): EngineOutput {
    out.state = this.state;
    out.cause = this.cause;
    return out;
  }
}

function minBig(a: bigint | undefined, b: bigint | undefined): bigint | undefined {
  return a === undefined ? b : b === undefined ? a : a < b ? a : b;
}
