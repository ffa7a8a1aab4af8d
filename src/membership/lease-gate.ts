// When a lease renewal may reach the kernel before the decisions queued ahead of it
// (docs/membership.md, "Lease writes during an install"). The daemon applies decisions one at
// a time (table, then lease), so a renewal decided while a table is being installed waited
// for that install: with installs of up to 150 ms (a loaded host) and a lease of 200 ms
// renewed by acknowledgements of heartbeats sent up to a pulse before, the written deadline
// ran out before the renewal reached the kernel. A renewal holds for every table of its
// lineage — the installed table's leader, from the epoch that leader's tables started at
// (EngineOutput.leaseLineage; the lineage argument of "Kernel lease") — so when the data
// plane's table and every table queued after it are of that lineage, whichever of them the
// data plane serves while the renewal waits, the renewal covers it: it may be written at
// once. Not across a change of leader or a table set aside (another lineage: the
// acknowledgements behind the renewal say nothing of it), not while the data plane's table
// is unknown (before the first install, after a failed one), not while a revocation, a WAIT
// or a configuration switch is queued (they must land first: a renewal written before a
// queued revocation would serve on past what the engine decided), not for a decision
// that carries a table (its renewal follows its install, as before), and not while the data
// plane's table or a queued one lets this node accept a packet the latest table does not (a
// bucket it owns there but not in the latest, or owns there without the previous owner the
// latest names): the renewal vouches for the latest table, and an earlier one may hold
// buckets given away since — a leader's own partition-time table taking a peer's buckets,
// returned at the heal while its data plane was still behind; a node back from a pause,
// released meanwhile, its data plane still on the table it left with (both found by the
// property search with slow installs) — except a previous-owner role in a bucket the node
// holds no connection in, by the holdings sample taken under the data plane's table: that
// role accepts nothing (drained()).
// Used by BuiltinMembership (membership.ts) and by the simulator (test/helpers/membership-sim.ts).

import { NBUCKETS } from '../balance/tables.js';
import type { EngineOutput, HoldingsSample, ViewTable } from './types.js';

/** A table as far as lineage goes, and what it gives this node (index group * 256 + bucket). */
interface TableId {
  leader: string | null;
  epoch: number;
  /** Buckets it owns, with their previous owner. */
  owned: Map<number, string | null>;
  /** Buckets where it is previous owner. */
  prev: Set<number>;
}

export class LeaseGate {
  /** The data plane's table (the last one applied); undefined until one is, or after a failed apply. */
  private dataplane: TableId | undefined;
  /** Tables of the decisions queued and not yet applied, oldest first. */
  private readonly queuedTables: TableId[] = [];
  /** Queued decisions that must reach the data plane before any later renewal (revocation, WAIT, configuration switch). */
  private blockers = 0;
  /**
   * Since the last revocation leaves() asked for: the lineage that decision followed; the
   * renewals of any other are not written (leftLineage). undefined: none to hold back.
   */
  private revokedFor: { leader: string | null } | undefined;
  /** The latest holdings sample (noteHoldings). */
  private holdings: HoldingsSample | undefined;

  constructor(private readonly self: string) {}

  /**
   * The deadline `out` may write at once, ahead of the queued decisions, or undefined: it
   * then goes through the queue as before. The caller writes it only while it serves (UP,
   * with a valid lease) and keeps the older renewals queued before it from being written
   * back afterwards.
   */
  early(out: EngineOutput): bigint | undefined {
    const lineage = out.leaseLineage;
    const deadline = out.leaseDeadlineNs;
    if (lineage === undefined || deadline === undefined || deadline === 0n) return undefined;
    if (out.table || out.state !== 'UP' || blocks(out) || this.blockers > 0) return undefined;
    const inLineage = (t: TableId | undefined) => t !== undefined && t.leader === lineage.leader && t.epoch >= lineage.fromEpoch;
    if (!inLineage(this.dataplane) || !this.queuedTables.every(inLineage)) return undefined;
    // The latest table is the one the renewal is on: the earlier ones accept nothing more.
    const latest = this.queuedTables[this.queuedTables.length - 1] ?? this.dataplane!;
    const drained = this.drained();
    if (!within(this.dataplane!, latest, drained) || !this.queuedTables.every((t) => within(t, latest, drained))) return undefined;
    return deadline;
  }

  /**
   * The daemon's latest count of the connections this node holds as previous owner
   * (MembershipEngine.setHoldings): a bucket it holds none in accepts nothing as previous owner.
   */
  noteHoldings(sample: HoldingsSample): void {
    this.holdings = sample;
  }

  /**
   * Buckets where the data plane's table names this node previous owner and the latest
   * sample, taken under that table, counts no connection: a previous owner accepts no new
   * connection, so it holds none there as long as no later table makes it owner, and its
   * previous-owner role accepts nothing — the same sample and the same test by which the
   * leader ends that role (PeerTable.reportsDrained). A renewal may then overtake a queued
   * table that ends it: the table before accepts no packet more than the latest.
   */
  private drained(): ReadonlySet<number> {
    const h = this.holdings;
    const dp = this.dataplane;
    if (!h || !dp || h.epoch !== dp.epoch) return NONE;
    const out = new Set<number>();
    for (const i of dp.prev) if (h.counts[Math.floor(i / NBUCKETS)]?.[i % NBUCKETS] === 0) out.add(i);
    return out;
  }

  /**
   * Must the lease be revoked at once, ahead of the queue, because `out` leaves the lineage
   * of a table still on its way to the data plane (being installed, or queued) that lets this
   * node accept a packet the table before it does not? That table lands after the engine has
   * moved on, to a leader that decides without knowing it (a follower's queued table of its
   * former leader, a former leader's own queued tables), on the report of the table before.
   * Served under a renewal of its lineage, it takes what the new lineage may already have
   * given away (slow-install search: a follower installing its former leader's table that
   * gave it a bucket, beside the node the new leader gave it to; a leader following a
   * returning one while its own tables still took over a bucket the returning node held as
   * previous owner). Tables that only give buckets away land harmlessly: a returning leader
   * taking the lead back while the survivors install the current leader's handover steps
   * costs them nothing. After a revocation no renewal of another lineage than `out`'s is
   * written (leftLineage): the lease comes back with the first renewal of the new one, in
   * order after its table.
   */
  leaves(out: EngineOutput): boolean {
    // The leader the decision follows: its table's; else the one it takes, when it takes
    // another (its heartbeat still names its installed table's leader: a leader giving way at
    // a heal, its own tables on their way, follows the new leader before it has a table of
    // it — slow-install search seed 6, `serve`, Simulator seed 677357: n2's own epoch 16,
    // taking bucket 93, landed after n2 took n1 for leader and served beside n4, n1's owner).
    const leader = out.table ? out.table.leader : takenLeader(out) ?? (out.send ? out.send.leader : out.leaseLineage?.leader);
    if (leader === undefined) return false;
    if (this.revokedFor !== undefined && this.revokedFor.leader !== leader) this.revokedFor = undefined;
    let before = this.dataplane;
    for (const t of this.queuedTables) {
      if (t.leader !== leader && (before === undefined || !within(t, before))) {
        this.revokedFor = { leader };
        return true;
      }
      before = t;
    }
    return false;
  }

  /** `out`'s renewal is of another lineage than the one followed since a revocation leaves() asked for. */
  leftLineage(out: EngineOutput): boolean {
    const lineage = out.leaseLineage;
    return lineage !== undefined && this.revokedFor !== undefined && lineage.leader !== this.revokedFor.leader;
  }

  /** `out` joins the queue (after early() and anything the caller took out of it). */
  queued(out: EngineOutput): void {
    if (out.table) this.queuedTables.push(this.id(out.table));
    if (blocks(out)) this.blockers++;
  }

  /** A queued decision has been applied: its table, if any, is the data plane's. */
  applied(out: EngineOutput): void {
    const t = this.dequeue(out);
    if (out.table) this.dataplane = t ?? this.id(out.table);
  }

  /** A queued decision could not be applied: what the data plane holds is not known any more. */
  failed(out: EngineOutput): void {
    this.dequeue(out);
    this.dataplane = undefined;
  }

  private dequeue(out: EngineOutput): TableId | undefined {
    if (blocks(out)) this.blockers = Math.max(0, this.blockers - 1);
    return out.table ? this.queuedTables.shift() : undefined;
  }

  private id(table: ViewTable): TableId {
    const owned = new Map<number, string | null>();
    const prev = new Set<number>();
    table.groups?.forEach((row, g) => row.forEach((o, b) => { if (o === this.self) owned.set(g * NBUCKETS + b, table.prev?.[g]?.[b] ?? null); }));
    table.prev?.forEach((row, g) => row.forEach((p, b) => { if (p === this.self) prev.add(g * NBUCKETS + b); }));
    return { leader: table.leader, epoch: table.epoch, owned, prev };
  }
}

/**
 * Every packet `t` lets this node accept, `latest` does too: where it owns a bucket in `t`,
 * it owns it in `latest`, and `latest` names no previous owner or the same one (an owner
 * takes every packet but the previous owner's connections); where it is previous owner in
 * `t` (its own connections only), it is owner or previous owner in `latest`.
 */
function within(t: TableId, latest: TableId, drained: ReadonlySet<number> = NONE): boolean {
  for (const [i, prev] of t.owned) {
    if (!latest.owned.has(i)) return false;
    const latestPrev = latest.owned.get(i) ?? null;
    if (latestPrev !== null && latestPrev !== prev) return false;
  }
  for (const i of t.prev) if (!latest.prev.has(i) && !latest.owned.has(i) && !drained.has(i)) return false;
  return true;
}

const NONE: ReadonlySet<number> = new Set();

/** The leader a decision takes (its `leader` event), if it takes one. */
function takenLeader(out: EngineOutput): string | null | undefined {
  let leader: string | null | undefined;
  for (const e of out.events) if (e.type === 'leader') leader = e.leader;
  return leader;
}

/** A decision no renewal may overtake. */
function blocks(out: EngineOutput): boolean {
  return out.state === 'WAIT' || out.leaseDeadlineNs === 0n || out.events.some((e) => e.type === 'config_switched');
}
