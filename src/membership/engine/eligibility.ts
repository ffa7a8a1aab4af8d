// The node's own eligibility and state (docs/membership.md, "Evidence, views and the
// leader"; "Survivors keep serving" for a returning node): local health, configuration
// digest, quorum, being heard, the discovery grace; UP or WAIT; split brain reports.
//
// Invariants guarded here:
// - A node that stops being eligible (health, config digest, quorum) revokes its lease at
//   once — assess and setLocalHealth call Lease.revoke.
// - Within the discovery grace nobody leads or serves alone before every peer is heard and
//   in mutual contact (a farm starting together makes one table, not several); the grace
//   starts at the first pulse, after a pause and when a failed check recovers — assess,
//   noteTick, setLocalHealth.
// - Every node of a view chooses the same reference digest — chooseDigest.
// - UP only on a view's table naming us — updateState.

import type { EngineOutput, NodeState } from '../types.js';
import { byName, DISCOVERING, type EngineContext, MS } from './context.js';
import type { Lease } from './lease.js';
import type { Peer, PeerTable } from './peers.js';

export class Eligibility {
  private healthOk = true;
  private healthCause = '';
  private aliveCount = 0;
  private graceUntilNs: bigint;
  /**
   * Whether the grace waits for every peer (start, a recovered check) or only for one (after
   * a pause: a daemon stalled for a few pulses by a loaded host still hears its view, and
   * waiting for a dead peer's return would stop it serving — docs/membership.md).
   */
  private graceForAll = true;
  private lastTickNs: bigint | undefined;
  splitBrain = false;
  missing: string[] = [];
  private mismatchReported = new Set<string>();

  constructor(private readonly ctx: EngineContext, private readonly peers: PeerTable, private readonly lease: Lease) {
    this.graceUntilNs = ctx.opts.startNs + BigInt(ctx.opts.timing.mlostCount) * ctx.pulseNs;
  }

  /**
   * Our own pulse is late (a stalled or resumed daemon reading its queued datagrams before
   * its tick): what we would say is stale until the tick has looked at the time.
   */
  tickOverdue(nowNs: bigint): boolean {
    return this.lastTickNs === undefined || nowNs - this.lastTickNs > (3n * this.ctx.pulseNs) / 2n;
  }

  /**
   * A pulse at `nowNs`: the discovery grace starts at the first one, and again after a pause
   * of more than 3 pulses. Returns whether this node was away longer than a leader is lost
   * after (`mlost` pulses since its previous pulse): its peers may have replaced it.
   */
  noteTick(nowNs: bigint): boolean {
    const away = this.lastTickNs !== undefined && nowNs - this.lastTickNs > BigInt(this.ctx.opts.timing.mlostCount) * this.ctx.pulseNs;
    if (this.lastTickNs === undefined) {
      // The discovery grace counts from the first tick, not from construction: the daemon
      // builds the engine before it loads and attaches the program (hundreds of ms), and a
      // grace spent before any heartbeat went out would let a starting node serve every
      // bucket alone, and reset its peers' connections, before it has heard them.
      const graceFromFirstTick = nowNs + BigInt(this.ctx.opts.timing.mlostCount) * this.ctx.pulseNs;
      if (graceFromFirstTick > this.graceUntilNs) this.graceUntilNs = graceFromFirstTick;
    } else if (nowNs - this.lastTickNs > 3n * this.ctx.pulseNs) {
      // Resumed after a pause (SIGSTOP, a stalled event loop): what we knew is stale, so
      // re-discover before ever serving alone.
      if (nowNs >= this.graceUntilNs) this.graceForAll = false;
      this.graceUntilNs = nowNs + BigInt(this.ctx.opts.timing.mlostCount) * this.ctx.pulseNs;
    }
    this.lastTickNs = nowNs;
    return away;
  }

  /** The local checks or an administrative stop: false revokes the lease at once. */
  setLocalHealth(ok: boolean, cause: string, out: EngineOutput): void {
    // Back from a failed check (a link down, `farmlb stop`): what we knew is stale and our
    // buckets were given away meanwhile, so rejoin like a starting node — discover every
    // peer before leading or serving alone (docs/membership.md, "A returning node").
    if (ok && !this.healthOk && this.lastTickNs !== undefined) {
      const grace = this.lastTickNs + BigInt(this.ctx.opts.timing.mlostCount + 1) * this.ctx.pulseNs;
      if (grace > this.graceUntilNs) this.graceUntilNs = grace;
      this.graceForAll = true;
    }
    this.healthOk = ok;
    this.healthCause = ok ? '' : cause;
    if (!ok && this.ctx.eligible) {
      this.ctx.eligible = false;
      this.ctx.cause = cause;
      this.lease.revoke(out);
      this.updateState(out);
    }
  }

  quorumOk(): boolean {
    return this.ctx.opts.splitBrain !== 'quorum' || (this.aliveCount + 1) * 2 > this.ctx.opts.nodes.length;
  }

  /** Liveness, reference digest, own eligibility; returns the other members of the view. */
  assess(nowNs: bigint, out: EngineOutput): string[] {
    const slostNs = BigInt(this.ctx.opts.timing.slostCount) * this.ctx.pulseNs;
    const alive: Peer[] = [];
    for (const p of this.peers.values()) {
      const ev = this.peers.evidence(p);
      const isAlive = ev !== undefined && nowNs - ev < this.peers.timeoutNs(p.name);
      if (p.alive && !isAlive) {
        const detectionMs = Number((nowNs - ev!) / MS);
        out.events.push({ type: 'peer_lost', node: p.name, detectionMs });
        this.peers.lostAt.set(p.name, detectionMs);
      }
      p.alive = isAlive;
      if (isAlive) alive.push(p);
    }
    this.aliveCount = alive.length;
    this.ctx.referenceDigest = this.chooseDigest(alive);

    const heardByPeer = alive.some((p) =>
      p.lastRecvNs !== undefined && nowNs - p.lastRecvNs < slostNs && p.hb!.heard.some((h) => h.node === this.ctx.self && h.ageMs < this.ctx.opts.timing.pulseMs * this.ctx.opts.timing.slostCount));
    let cause = '';
    if (!this.healthOk) cause = this.healthCause || 'local check failed';
    else if (this.ctx.opts.configDigest !== this.ctx.referenceDigest) cause = `configuration differs from ${this.digestHolder(alive)}'s`;
    else if (!this.quorumOk()) cause = `no quorum: ${alive.length + 1} of ${this.ctx.opts.nodes.length} nodes reachable`;
    else if (alive.length > 0 && !heardByPeer) cause = 'not heard by any peer (one-way cut?)';
    else if (alive.length === 0 && nowNs < this.graceUntilNs) cause = DISCOVERING;
    // Within the grace, wait until every peer is heard and in mutual contact: a node that
    // leads before would make a view of a few beside peers about to form the farm's, and a
    // peer installing that table acknowledges it — two tables serving the same buckets at
    // start. A peer that never shows up only delays the start by the grace.
    else if (nowNs < this.graceUntilNs && this.graceForAll && (alive.length < this.peers.size || alive.some((p) => !this.peers.connected(p, nowNs, slostNs) && p.hb !== undefined && this.ctx.digestOf(p.hb) === this.ctx.referenceDigest))) {
      cause = DISCOVERING;
    }

    const wasEligible = this.ctx.eligible;
    this.ctx.eligible = cause === '';
    this.ctx.cause = cause;
    if (wasEligible && !this.ctx.eligible) this.lease.revoke(out);
    if (!this.quorumOk() && wasEligible) {
      out.events.push({ type: 'quorum_lost', alive: alive.length + 1, needed: Math.floor(this.ctx.opts.nodes.length / 2) + 1 });
    }
    this.reportMismatches(alive, out);

    const members: string[] = [];
    for (const p of alive) {
      if (this.peers.peerState(p) === 'UP' && p.hb !== undefined && this.ctx.digestOf(p.hb) === this.ctx.referenceDigest && this.peers.connected(p, nowNs, slostNs)) {
        members.push(p.name);
        p.servingNs = nowNs;
      }
    }
    return members;
  }

  /**
   * The digest held by most live nodes (this one included); a tie goes to the digest of the
   * smallest node name among the tied holders. Every node of a view computes the same one.
   */
  private chooseDigest(alive: Peer[]): string {
    const holders = new Map<string, string[]>();
    const add = (digest: string, node: string) => holders.set(digest, [...(holders.get(digest) ?? []), node]);
    add(this.ctx.opts.configDigest, this.ctx.self);
    for (const p of alive) if (p.hb) add(this.ctx.digestOf(p.hb), p.name);
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
    return alive.filter((p) => p.hb !== undefined && this.ctx.digestOf(p.hb) === this.ctx.referenceDigest).map((p) => p.name).sort(byName)[0] ?? '?';
  }

  private reportMismatches(alive: Peer[], out: EngineOutput): void {
    const now = new Set<string>();
    for (const p of alive) {
      if (p.hb && this.ctx.digestOf(p.hb) !== this.ctx.opts.configDigest) {
        now.add(p.name);
        if (!this.mismatchReported.has(p.name)) {
          out.events.push({ type: 'config_mismatch', node: p.name, ours: this.ctx.opts.configDigest, theirs: p.hb.configDigest, reference: this.ctx.referenceDigest });
        }
      }
    }
    this.mismatchReported = now;
  }

  updateState(out: EngineOutput): void {
    let state: NodeState = 'WAIT';
    let cause = this.ctx.cause;
    if (this.ctx.eligible) {
      // UP also while a new leader's table is on its way: the installed table is a view's
      // (made by a leader, naming us) and the lease still grows only from acknowledgements on
      // it, so the buckets it gives us are ours until a table moves them (docs/membership.md,
      // "Survivors keep serving"). WAIT would make the daemon revoke the kernel lease of every
      // survivor at each change of leader.
      if (this.ctx.leader !== null && this.ctx.table.leader !== null && this.ctx.table.view.includes(this.ctx.self)) {
        state = 'UP';
        cause = '';
      } else {
        cause = `waiting for the table of leader ${this.ctx.leader ?? '(none)'}`;
      }
    }
    this.ctx.cause = cause;
    if (state !== this.ctx.state) {
      this.ctx.state = state;
      out.events.push({ type: 'state', state, cause: cause || `in the view of epoch ${this.ctx.table.epoch}` });
    }
  }

  updateSplitBrain(view: string[], out: EngineOutput): void {
    const inView = new Set(view);
    const missing = [...this.peers.heardSinceStart].filter((n) => !inView.has(n)).sort(byName);
    // A node that serves with peers missing is one side of a split brain; so is a `quorum`
    // minority, which serves nothing but must still say loudly that the farm is partitioned.
    const split = missing.length > 0 && (this.ctx.eligible || !this.quorumOk());
    this.missing = missing;
    if (split && !this.splitBrain) out.events.push({ type: 'split_brain', view, missing });
    if (!split && this.splitBrain) out.events.push({ type: 'split_brain_healed', view });
    this.splitBrain = split;
  }
}
