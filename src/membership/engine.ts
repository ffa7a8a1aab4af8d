// The membership protocol's decisions (docs/membership.md): pure, deterministic, time passed
// in. Inputs: tick(now) every pulse, checkDeadline(now) when a peer's silence may end between
// two (nextDeadlineNs), receive(hb, now) for every authenticated heartbeat,
// setLocalHealth, setPower/clearPower. Each returns what the caller must do, in order:
// install `table`, write `leaseDeadlineNs`, transmit `send`.
//
// This file is the engine's face: it takes the inputs and runs its parts (engine/*.ts) in
// order. Each part owns its state and opens with the invariants it guards (each argued in
// docs/membership.md):
// - engine/peers.ts — peers and liveness: evidence, relays, mutual contact.
// - engine/eligibility.ts — a node that stops being eligible (health, config digest,
//   quorum) revokes its lease at once; the discovery grace; UP/WAIT.
// - engine/leadership.ts — the leader gives bucket b to node Y only when no other node may
//   still serve b: view members first report a table without it; every other node only
//   after its lease has surely run out AND behind the fence. Handover: a new owner only when
//   no node but the single previous owner named may serve b.
// - engine/tables.ts — nobody goes back to an older leadership's table: a node that is
//   leader again sets its old table aside; followers install only tables not older than
//   their leader's latest report; buckets gained from a new leader are held back until a
//   renewal on its tables.
// - engine/lease.ts — the lease is extended only on two-way evidence (an acknowledgement of
//   ours on our table, counted from when ours was sent; a majority under `quorum`), and only
//   on a table whose view includes us.
// - engine/wire.ts — the heartbeat we send and the table a peer's heartbeat carries.
// - engine/context.ts — what every part reads: configuration, installed table, leader, state.
// Here: replay and bounds checks of what a peer says (receive), configuration staging, power
// overrides, status.

import { heartbeatProblem, overridesProblem } from './bounds.js';
import { ReplayGuard } from './codec.js';
import { byName, EngineContext, maxBig, MS } from './engine/context.js';
import { Eligibility } from './engine/eligibility.js';
import { Leadership } from './engine/leadership.js';
import { Lease } from './engine/lease.js';
import { PeerTable } from './engine/peers.js';
import { InstalledTables } from './engine/tables.js';
import { OwnHeartbeat } from './engine/wire.js';
import { checkPowerChange, overridesNewer } from './table.js';
import { checkTiming } from './timing.js';
import type { EngineOutput, Heartbeat, HoldingsSample, MembershipEngineOptions, MembershipEvent, MembershipStatus, PeerStatus, PowerOverrides, ViewTable } from './types.js';

export class MembershipEngine {
  readonly self: string;
  private readonly ctx: EngineContext;
  private readonly peers: PeerTable;
  private readonly eligibility: Eligibility;
  private readonly leadership: Leadership;
  private readonly tables: InstalledTables;
  private readonly lease: Lease;
  private readonly wire: OwnHeartbeat;
  private readonly guard: ReplayGuard;
  private pendingEvents: MembershipEvent[] = [];
  /** The time of the last pulse or deadline check (nextDeadlineNs). */
  private decidedNs: bigint | undefined;

  constructor(opts: MembershipEngineOptions) {
    checkTiming(opts.timing);
    this.self = opts.self;
    this.ctx = new EngineContext(opts);
    this.guard = new ReplayGuard(this.ctx.leaseNs);
    this.peers = new PeerTable(this.ctx);
    this.tables = new InstalledTables(this.ctx, this.peers);
    this.lease = new Lease(this.ctx, this.peers, this.tables);
    this.wire = new OwnHeartbeat(this.ctx, this.peers, this.lease);
    this.leadership = new Leadership(this.ctx, this.peers, this.tables, this.wire);
    this.eligibility = new Eligibility(this.ctx, this.peers, this.lease);
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
    if (staged && staged.groups.map((g) => g.name).join('\0') !== this.ctx.opts.groups.map((g) => g.name).join('\0')) {
      throw new Error('a staged configuration must keep the groups (names and order)');
    }
    this.ctx.staged = staged && staged.digest !== this.ctx.opts.configDigest ? staged : undefined;
  }

  /** Every peer of cluster.xml is alive and has the staged configuration (staged or active): switch to it. */
  private maybeSwitchConfig(out: EngineOutput): void {
    const staged = this.ctx.staged;
    if (!staged) return;
    for (const p of this.peers.values()) {
      if (!p.alive || !p.hb || (p.hb.configDigest !== staged.digest && p.hb.stagedDigest !== staged.digest)) return;
    }
    out.events.push({ type: 'config_switched', from: this.ctx.opts.configDigest, to: staged.digest });
    this.ctx.opts = { ...this.ctx.opts, configDigest: staged.digest, groups: staged.groups };
    this.ctx.staged = undefined;
  }

  /** The pulse: liveness, leadership, the leader's table, the heartbeat to send. */
  tick(nowNs: bigint): EngineOutput {
    return this.decide(nowNs, true);
  }

  /**
   * The earliest moment, after the last pulse or check, at which a live peer stops being
   * alive or connected if nothing more is heard of it: when a pulse would next find the view
   * changed. The daemon checks then (checkDeadline) if that comes before its next pulse, so a
   * silence is found when it reaches `slost` pulses, not at the first pulse after that — up
   * to a pulse later, at a phase each node drew when its daemon started (docs/membership.md,
   * "Evidence, views and the leader"). undefined: no live peer.
   */
  nextDeadlineNs(): bigint | undefined {
    const since = this.decidedNs;
    if (since === undefined) return undefined;
    const slostNs = BigInt(this.ctx.opts.timing.slostCount) * this.ctx.pulseNs;
    let next: bigint | undefined;
    const consider = (at: bigint) => {
      if (at > since && (next === undefined || at < next)) next = at;
    };
    for (const p of this.peers.values()) {
      if (!p.alive) continue;
      const ev = this.peers.evidence(p);
      // Past already: the peer was our leader at the last assessment (alive for `mlost`
      // pulses) and is no longer (lost from the view after `slost`): its loss is due now, so
      // that peer_lost and the view event tell when it was found, not the next pulse.
      if (ev !== undefined) consider(maxBig(ev + this.peers.timeoutNs(p.name), since + 1n)!);
      if (p.connectedNs !== undefined) consider(p.connectedNs + slostNs);
    }
    return next;
  }

  /**
   * A deadline of nextDeadlineNs passed between two pulses: decide now as a pulse would,
   * heartbeat included (it tells the peers at once); undefined when none has passed (the
   * peer was heard meanwhile). Not a pulse for the new leader's wait: a node that becomes
   * leader here publishes its first table at once only when its predecessor's loss is the
   * one change (takesOverAtOnce), else a pulse later as at a pulse.
   */
  checkDeadline(nowNs: bigint): EngineOutput | undefined {
    const next = this.nextDeadlineNs();
    // A check overdue with the pulse (a daemon resumed from a hang): the pulse decides.
    if (next === undefined || next > nowNs || this.eligibility.tickOverdue(nowNs)) return undefined;
    return this.decide(nowNs, false);
  }

  /** A pulse (`onPulse`) or a deadline check between two (checkDeadline). */
  private decide(nowNs: bigint, onPulse: boolean): EngineOutput {
    this.decidedNs = nowNs;
    const out = this.output();
    this.maybeSwitchConfig(out);
    // Away longer than a leader is lost after (a hang, a stalled host): the farm may have a
    // new leader and have given our buckets away. We lead again, if we do, as a new leader:
    // our table is set aside (no peer installs it: item "a returning node never serves a
    // stale table") and the first table waits a pulse. Found by the slow-install search
    // (Simulator seed 898248): n2, leader, back from a 545 ms hang, reported its table of
    // before the hang under its lead while its new tables queued, and n5 installed it.
    // Whether or not we lead now: a table of our own making from before the hang is reported
    // with no leader (set aside), or a peer that takes us for its leader installs it
    // (Simulator seed 18 of the slow-install search: n2, back from 863 ms and following n1,
    // still reported its pre-hang table under its own name; n5, restarting, installed it).
    if (this.eligibility.noteTick(nowNs)) {
      this.leadership.leaderSinceTick = false;
      if (this.ctx.table.leader === this.self) this.tables.setAsideOwnTable();
    }
    const members = this.eligibility.assess(nowNs, out);
    const candidates = [...members];
    if (this.ctx.eligible) candidates.push(this.self);
    candidates.sort(byName);
    const leader = candidates[0] ?? null;
    const previous = this.ctx.leader;
    if (leader !== this.ctx.leader) {
      this.ctx.leader = leader;
      out.events.push({ type: 'leader', leader });
    }
    // A new leader waits one pulse before its first table: a competing leader's table (the
    // other side of a heal, a leader that has not yet seen us) reaches it meanwhile and is
    // then part of what it must not hand over twice — unless its predecessor's loss is the
    // one change, where no such table can exist (takesOverAtOnce).
    this.leadership.lastCandidates = candidates;
    if (leader === this.self && !this.leadership.leaderSinceTick && this.ctx.table.leader === this.self) this.tables.setAsideOwnTable();
    let settled = false;
    if (leader === this.self) {
      // A smaller-named peer still discovering (a farm starting together) is about to lead:
      // a table of ours now would be a second one, made from the same empty tables.
      settled = this.leadership.leaderSinceTick || this.leadership.takesOverAtOnce(nowNs, candidates, previous);
      if (settled && !this.leadership.smallerPeerDiscovering()) this.leadership.lead(nowNs, candidates, out);
    } else {
      // Handover start times are the leader's; a later leadership starts its own clocks.
      this.leadership.handovers.clear();
      if (leader !== null) this.tables.followBest(nowNs, out);
    }
    // A check between pulses does not count as the pulse a new leader waits for.
    this.leadership.leaderSinceTick = leader === this.self && (onPulse || settled);

    // Alone in its view: renew from its own liveness if the policy lets it serve (quorum
    // is already part of eligibility) — only when no live peer shares our configuration.
    // A live peer that does (WAIT while it discovers, a one-way cut) may lead a view of its
    // own a moment later; with it, the lease comes from acknowledgements or not at all.
    const sameConfigPeer = [...this.peers.values()].some((p) => p.alive && (p.hb === undefined || this.ctx.digestOf(p.hb) === this.ctx.referenceDigest));
    // Only on a table whose view includes us: a fenced node (see holdings()) renews nothing.
    if (this.ctx.eligible && leader === this.self && candidates.length === 1 && !sameConfigPeer && this.ctx.table.view.includes(this.self)) {
      this.lease.renew(nowNs + this.ctx.leaseNs, out);
    }
    // Buckets held back since a change of leader, once renewed and past the switch hold.
    this.tables.releaseHeldBack(nowNs, out);
    this.eligibility.updateState(out);
    this.eligibility.updateSplitBrain(candidates, out);
    out.send = this.wire.heartbeat(nowNs);
    return this.finish(out);
  }

  /**
   * The data plane has `table` now (the daemon applied a decision carrying it): when our
   * heartbeats stopped reporting the table before it (tables.ts holdAcksAtSwitch).
   */
  noteApplied(table: ViewTable, nowNs: bigint): void {
    this.tables.noteApplied(table, nowNs);
  }

  /**
   * A heartbeat now, outside any decision: the daemon's, when an early heartbeat overtook a
   * decision's own while its table was being installed (heartbeat-gate.ts).
   */
  beat(nowNs: bigint): Heartbeat {
    return this.wire.heartbeat(nowNs);
  }

  receive(hb: Heartbeat, nowNs: bigint): EngineOutput {
    const out = this.output();
    const reject = (reason: string, detail?: string): EngineOutput => {
      out.events.push({ type: 'rejected', from: hb.from, reason, ...(detail !== undefined ? { detail } : {}) });
      return this.finish(out);
    };
    if (hb.module !== this.ctx.module) return reject('another module', `module ${JSON.stringify(hb.module.slice(0, 64))}, not ${this.ctx.module}`);
    if (hb.from === this.self) return reject('carries our own node name');
    const peer = this.peers.get(hb.from);
    if (!peer) return reject('not a node of cluster.xml');
    // Bounded before use (docs/security.md, "Values from peers"): the key proves who may
    // speak, not that what is said is sane.
    const problem = heartbeatProblem(hb);
    if (problem) return reject(problem);
    // A node whose configuration differs has no say in powers or tables: it is heard (liveness,
    // config_mismatch) and nothing more.
    const sameConfig = this.ctx.digestOf(hb) === this.ctx.opts.configDigest;
    if (sameConfig && hb.powers.entries.length > 0) {
      const powersProblem = overridesProblem(hb.powers, this.ctx.opts.nodes, this.ctx.opts.groups);
      if (powersProblem) return reject(powersProblem);
    }
    const verdict = this.guard.check(hb, nowNs, this.lease.acknowledgesUs(hb, nowNs));
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
    const missedTheirs = peer.lastSeq !== undefined && hb.seq > peer.lastSeq + 1;
    if (missedTheirs) peer.missed += hb.seq - peer.lastSeq! - 1;
    peer.lastSeq = hb.seq;
    peer.hb = hb;
    if (hb.v === 1 && hb.readsV2 !== true) peer.v1RecvNs = nowNs;
    peer.rows = sameConfig ? this.wire.decodeTable(hb, peer) : undefined;
    if (peer.rows) this.tables.rememberTable(hb.tableDigest, peer.rows);
    peer.lastRecvNs = nowNs;
    peer.everHeard = true;
    this.peers.heardSinceStart.add(hb.from);
    const slostMs = this.ctx.opts.timing.pulseMs * this.ctx.opts.timing.slostCount;
    if (hb.heard.some((h) => h.ageMs < slostMs)) {
      peer.connectedNs = nowNs;
      if (hb.state === 'UP') peer.servingNs = nowNs;
    } else if (hb.state === 'UP' && hb.leader === hb.from && hb.view.length === 1 && hb.view[0] === hb.from) {
      // Alone in a view of its own and UP: under `serve` it renews from its own liveness, no
      // acknowledgement needed, so it may serve as long as it is heard so (Leadership.holdings
      // counts its lease from here). Search seed 9 (`serve` with handover, Simulator seed
      // 411121): n3, alone on its side, was heard so 16 ms after a heal; n1 counted n3's lease
      // from its last time connected, 2 s before, and gave bucket 172, which n3 still served, to
      // n4 — n3's neighbour, resumed from a pause.
      peer.servingNs = nowNs;
    }
    for (const h of hb.heard) this.peers.noteIndirect(h, nowNs);
    if (sameConfig && hb.epoch > this.ctx.maxEpochSeen) this.ctx.maxEpochSeen = hb.epoch;
    if (sameConfig && overridesNewer(hb.powers, this.ctx.overrides)) {
      this.ctx.overrides = hb.powers;
      out.events.push({ type: 'powers', overrides: hb.powers, origin: 'peer' });
    }
    if (this.ctx.leader !== null && this.ctx.leader !== this.self && hb.leader === this.ctx.leader && peer.rows) {
      this.tables.maybeInstall(hb, peer.rows, nowNs, out);
      // A table that drops a node fences it (holdings()): tell the leader at once that we
      // installed it, so that the fence costs a round trip, not a pulse.
      // Any new table: the leader's lease (and ours) grows only from acknowledgements on it, so
      // answering at once keeps them renewed when the leader publishes a table per pulse.
      if (out.table) out.send = this.wire.heartbeat(nowNs);
    }
    this.lease.noteAck(peer, hb, out);
    this.tables.releaseHeldBack(nowNs, out);
    if (out.send === undefined && !this.eligibility.tickOverdue(nowNs) && this.lease.answersMissedAck(hb, missedTheirs, nowNs)) {
      out.send = this.wire.heartbeat(nowNs);
    }
    // The fence the leader waited for may be complete now: decide without waiting for the pulse.
    // Only while no smaller-named peer has become a member since the tick (this very heartbeat
    // may show it UP and in contact): that peer leads from our next tick on, and a table of
    // ours now would race its own — two leaders giving one free bucket to two nodes (found by
    // the property search under `quorum`: n3 gave itself a bucket 0.5 ms before n2, the new
    // leader it had not counted yet, gave it to n5). Nor while our own pulse is overdue (a
    // resumed daemon reading its backlog): the tick first looks at how long we were away.
    if (this.leadership.fencePending && this.ctx.leader === this.self && this.leadership.leaderSinceTick && this.ctx.eligible
      && !this.eligibility.tickOverdue(nowNs) && !this.leadership.smallerMember(nowNs)) {
      this.leadership.lead(nowNs, this.leadership.lastCandidates, out);
      if (out.table) {
        this.eligibility.updateState(out);
        out.send = this.wire.heartbeat(nowNs);
      }
    }
    return this.finish(out);
  }

  /**
   * A well-formed frame from a configured address of `node` that failed the MAC: reported only
   * (PeerTable.noteForeignKey).
   */
  noteForeignKey(node: string, nowNs: bigint, keyId?: string): void {
    this.peers.noteForeignKey(node, nowNs, keyId);
  }

  /** The local checks or an administrative stop. false revokes the lease at once. */
  setLocalHealth(ok: boolean, cause: string): EngineOutput {
    const out = this.output();
    this.eligibility.setLocalHealth(ok, cause, out);
    return this.finish(out);
  }

  /**
   * The daemon's latest count of the connections this node holds as previous owner. Sent
   * in the next heartbeats; the leader ends a bucket's handover when it shows none left.
   */
  setHoldings(sample: HoldingsSample): void {
    if (this.ctx.holdingsSample && sample.epoch < this.ctx.holdingsSample.epoch) return;
    this.ctx.holdingsSample = sample;
  }

  /** A runtime power override (farmlb power/drain), for all of the node's groups or one. */
  setPower(node: string, power: number, group?: string): EngineOutput {
    checkPowerChange(this.ctx.opts.groups, this.ctx.opts.nodes, node, power, group);
    const entries = this.ctx.overrides.entries.filter((e) => !(e.node === node && e.group === (group ?? null)));
    // An all-groups override replaces the node's per-group ones: `power NODE N` means N everywhere.
    const kept = group === undefined ? entries.filter((e) => e.node !== node) : entries;
    return this.publishOverrides([...kept, { node, group: group ?? null, power }]);
  }

  /** Drops the overrides of a node (all of them, or one group's). */
  clearPower(node: string, group?: string): EngineOutput {
    checkPowerChange(this.ctx.opts.groups, this.ctx.opts.nodes, node, undefined, group);
    return this.publishOverrides(this.ctx.overrides.entries.filter((e) => !(e.node === node && (group === undefined || e.group === group))));
  }

  status(nowNs?: bigint): MembershipStatus {
    const ms = (t: bigint | undefined) => (t === undefined || nowNs === undefined ? undefined : Number((nowNs - t) / MS));
    const peers: PeerStatus[] = [...this.peers.values()].map((p) => ({
      node: p.name,
      alive: p.alive,
      member: this.ctx.table.view.includes(p.name),
      lastHeardMs: ms(maxBig(p.lastRecvNs, p.indirectNs)),
      lastDirectMs: ms(p.lastRecvNs),
      state: p.hb?.state,
      cause: p.hb?.cause,
      incarnation: p.hb?.incarnation.toString(),
      configDigest: p.hb?.configDigest,
      epoch: p.hb?.epoch,
      heartbeatsReceived: p.received,
      heartbeatsMissed: p.missed,
      ...(this.peers.foreignKeyNs.has(p.name) ? { foreignKeyMs: ms(this.peers.foreignKeyNs.get(p.name)) } : {}),
      ...(this.peers.foreignKeyIds.has(p.name) ? { foreignKeyId: this.peers.foreignKeyIds.get(p.name) } : {}),
    }));
    return {
      node: this.self,
      state: this.ctx.state,
      cause: this.ctx.cause,
      leader: this.ctx.leader,
      epoch: this.ctx.table.epoch,
      view: this.ctx.table.view,
      tableDigest: this.ctx.table.digest,
      table: this.ctx.table,
      leaseDeadlineNs: this.ctx.leaseNsValue,
      splitBrain: this.eligibility.splitBrain,
      missing: this.eligibility.missing,
      quorum: this.eligibility.quorumOk(),
      configDigest: this.ctx.opts.configDigest,
      ...(this.ctx.staged ? { stagedDigest: this.ctx.staged.digest } : {}),
      referenceDigest: this.ctx.referenceDigest,
      powers: this.ctx.overrides,
      incarnation: this.ctx.opts.incarnation.toString(),
      peers,
      handover: this.leadership.handoverStatus(),
    };
  }

  /** The power overrides in force (for powers.json). */
  powerOverrides(): PowerOverrides {
    return this.ctx.overrides;
  }

  private publishOverrides(entries: PowerOverrides['entries']): EngineOutput {
    const out = this.output();
    const sorted = [...entries].sort((a, b) => byName(a.node, b.node) || byName(a.group ?? '', b.group ?? ''));
    this.ctx.overrides = { version: this.ctx.overrides.version + 1, origin: this.self, entries: sorted };
    out.events.push({ type: 'powers', overrides: this.ctx.overrides, origin: 'local' });
    return this.finish(out);
  }

  private output(): EngineOutput {
    return { state: this.ctx.state, cause: this.ctx.cause, events: this.pendingEvents.splice(0) };
  }

  private finish(out: EngineOutput): EngineOutput {
    out.state = this.ctx.state;
    out.cause = this.ctx.cause;
    return out;
  }
}
