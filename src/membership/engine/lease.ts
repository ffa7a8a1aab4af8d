// The lease (docs/membership.md, "Kernel lease"): the deadline the kernel serves the installed
// table until, renewed from peers' acknowledgements of our heartbeats.
//
// Invariants guarded here:
// - The lease is extended only on two-way evidence: a peer's heartbeat acknowledging one of
//   ours AND carrying our epoch and table digest (or an earlier table of the same leader's
//   current lineage naming us); the deadline counts from when that acknowledged heartbeat was
//   sent (so a resumed or one-way-cut node cannot extend a stale table). Under `quorum`,
//   acknowledgements from a majority are needed — noteAck, onOurLineage.
// - A lease is renewed only on a table whose view includes the renewing node (the fence
//   relies on it) — noteAck.
// - Revoking clears every acknowledgement: a later renewal needs new ones — revoke.
// - A new incarnation of a peer counts only when it acknowledges our current incarnation
//   (replays never revive anyone) — acknowledgesUs.

import type { AckEntry, EngineOutput, Heartbeat } from '../types.js';
import { type EngineContext, maxBig } from './context.js';
import type { Peer, PeerTable } from './peers.js';
import type { InstalledTables } from './tables.js';

/** Own heartbeats remembered to turn an acknowledgement back into its send time. */
export const SENT_RING = 256;

export class Lease {
  /** Send time of our recent heartbeats, by seq (OwnHeartbeat.heartbeat records them). */
  readonly sent = new Map<number, bigint>();

  /** When we last sent a heartbeat out of turn for a peer that missed ours (answersMissedAck). */
  private answeredNs: bigint | undefined;

  constructor(private readonly ctx: EngineContext, private readonly peers: PeerTable, private readonly tables: InstalledTables) {}

  /**
   * Should a heartbeat go out now, out of turn, for the sender of `hb`? Its `heard` shows it
   * missed our last one (it last heard us more than a pulse and a quarter ago), or we missed
   * its previous one (`missedTheirs`, a gap in its sequence): either way our last heartbeat
   * acknowledged nothing recent of it, and its lease grows only from acknowledgements. Under
   * 20 % loss a few lost in a row let a serving node's lease lapse for tens of ms about once
   * a minute in 3-node farms, every few seconds in 2-node ones (simulator); an answer now
   * acknowledges the heartbeat that just arrived, a second chance per pulse. Only for a
   * serving peer that still counts us as heard (past `slost` pulses it has lost us and
   * rejoins by the pulse), and at most once a pulse: on a clean network nothing is added, and
   * no sender, replayed or not, gets more.
   */
  answersMissedAck(hb: Heartbeat, missedTheirs: boolean, nowNs: bigint): boolean {
    if (hb.state !== 'UP') return false;
    const { pulseMs, slostCount } = this.ctx.opts.timing;
    const us = hb.heard.find((h) => h.node === this.ctx.self);
    if (!us || us.ageMs >= pulseMs * slostCount || (us.ageMs < pulseMs * 1.25 && !missedTheirs)) return false;
    if (this.answeredNs !== undefined && nowNs - this.answeredNs < this.ctx.pulseNs) return false;
    this.answeredNs = nowNs;
    return true;
  }

  /**
   * Does `hb` acknowledge a heartbeat of our current incarnation sent within the last lease?
   * Only a live sender can (our incarnation is new at every start): a new incarnation of a
   * peer counts only with it, so a recording — of a dead peer, replayed after our restart, or
   * of an older incarnation — never revives anyone (docs/membership.md, "Replay protection").
   */
  acknowledgesUs(hb: Heartbeat, nowNs: bigint): boolean {
    for (const a of hb.acks) {
      if (a.node !== this.ctx.self || a.incarnation !== this.ctx.opts.incarnation) continue;
      const sentAt = this.sent.get(a.seq);
      if (sentAt !== undefined && nowNs - sentAt <= this.ctx.leaseNs) return true;
    }
    return false;
  }

  noteAck(peer: Peer, hb: Heartbeat, out: EngineOutput): void {
    if (!this.ctx.eligible) return;
    if (this.ctx.digestOf(hb) !== this.ctx.opts.configDigest) return;
    // Only on a table whose view includes us: a table that leaves us out is a fence (holdings()).
    // Nor on one whose leader has moved on without us (InstalledTables.leftBehind).
    if (!this.ctx.table.view.includes(this.ctx.self) || !this.onOurLineage(hb) || this.tables.leftBehind()) return;
    let ack: AckEntry | undefined;
    for (const a of hb.acks) {
      if (a.node === this.ctx.self && a.incarnation === this.ctx.opts.incarnation) {
        ack = a;
        break;
      }
    }
    if (!ack) return;
    const sentAt = this.sent.get(ack.seq);
    if (sentAt === undefined) return;
    const deadline = sentAt + this.ctx.leaseNs;
    peer.ackDeadlineNs = maxBig(peer.ackDeadlineNs, deadline);
    // Under quorum the peers that acknowledge must, with us, be a majority of cluster.xml.
    const needed = this.ctx.opts.splitBrain === 'quorum' ? Math.floor(this.ctx.opts.nodes.length / 2) : 1;
    const kth = this.kthAckDeadline(needed);
    if (kth !== undefined) this.renew(kth, out);
  }

  /**
   * The `k`-th latest acknowledgement deadline among the peers (k = 1: the latest). Runs on
   * every received heartbeat (300 a second per node at 16 nodes): a loop for k = 1, the
   * sort only under quorum.
   */
  private kthAckDeadline(k: number): bigint | undefined {
    if (k === 1) {
      let max: bigint | undefined;
      for (const p of this.peers.values()) if (p.ackDeadlineNs !== undefined && (max === undefined || p.ackDeadlineNs > max)) max = p.ackDeadlineNs;
      return max;
    }
    const deadlines: bigint[] = [];
    for (const p of this.peers.values()) if (p.ackDeadlineNs !== undefined) deadlines.push(p.ackDeadlineNs);
    deadlines.sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
    return deadlines[k - 1];
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
    if (hb.epoch === this.ctx.table.epoch) return hb.tableDigest === this.ctx.table.digest;
    if (hb.epoch < this.tables.lineageStartEpoch || hb.epoch > this.ctx.table.epoch || this.ctx.table.leader === null) return false;
    return this.tables.recentTables.some((t) => t.epoch === hb.epoch && t.digest === hb.tableDigest && t.leader === this.ctx.table.leader && t.view.includes(this.ctx.self));
  }

  renew(deadline: bigint, out: EngineOutput): void {
    if (deadline > this.ctx.leaseNsValue) {
      this.ctx.leaseNsValue = deadline;
      out.leaseDeadlineNs = deadline;
      if (this.ctx.table.leader !== null) out.leaseLineage = { leader: this.ctx.table.leader, fromEpoch: this.tables.lineageStartEpoch };
      // The acknowledgements since a change of leader were all on its tables (maybeInstall
      // cleared the older ones): the buckets held back are ours now, once past the switch
      // hold (the engine's next InstalledTables.releaseHeldBack, at every input).
      this.tables.awaitingRenewal = false;
    }
  }

  revoke(out: EngineOutput): void {
    for (const p of this.peers.values()) p.ackDeadlineNs = undefined;
    this.ctx.leaseNsValue = 0n;
    out.leaseDeadlineNs = 0n;
  }
}
