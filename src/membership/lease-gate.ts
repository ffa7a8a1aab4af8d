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
// queued revocation would serve on past what the engine decided), and not for a decision
// that carries a table (its renewal follows its install, as before).
// Used by BuiltinMembership (membership.ts) and by the simulator (test/helpers/membership-sim.ts).

import type { EngineOutput } from './types.js';

/** A table as far as lineage goes. */
interface TableId {
  leader: string | null;
  epoch: number;
}

export class LeaseGate {
  /** The data plane's table (the last one applied); undefined until one is, or after a failed apply. */
  private dataplane: TableId | undefined;
  /** Tables of the decisions queued and not yet applied, oldest first. */
  private readonly queuedTables: TableId[] = [];
  /** Queued decisions that must reach the data plane before any later renewal (revocation, WAIT, configuration switch). */
  private blockers = 0;

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
    return deadline;
  }

  /** `out` joins the queue (after early() and anything the caller took out of it). */
  queued(out: EngineOutput): void {
    if (out.table) this.queuedTables.push({ leader: out.table.leader, epoch: out.table.epoch });
    if (blocks(out)) this.blockers++;
  }

  /** A queued decision has been applied: its table, if any, is the data plane's. */
  applied(out: EngineOutput): void {
    this.dequeue(out);
    if (out.table) this.dataplane = { leader: out.table.leader, epoch: out.table.epoch };
  }

  /** A queued decision could not be applied: what the data plane holds is not known any more. */
  failed(out: EngineOutput): void {
    this.dequeue(out);
    this.dataplane = undefined;
  }

  private dequeue(out: EngineOutput): void {
    if (out.table) this.queuedTables.shift();
    if (blocks(out)) this.blockers = Math.max(0, this.blockers - 1);
  }
}

/** A decision no renewal may overtake. */
function blocks(out: EngineOutput): boolean {
  return out.state === 'WAIT' || out.leaseDeadlineNs === 0n || out.events.some((e) => e.type === 'config_switched');
}
