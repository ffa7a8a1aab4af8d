// When a heartbeat may leave while the data plane is still installing a table (docs/membership.md,
// "Slow installs"). The daemon applies decisions one at a time (table, then lease) and a
// heartbeat must never report a table the data plane lacks: peers take a bucket from us as
// soon as our heartbeat says we installed the table that moves it. Waiting for the install
// delays every heartbeat behind it, though, and with them the acknowledgements every peer's
// lease grows from: with installs of tens to 150 ms (a loaded host) survivors' leases lapsed
// around each handover table. So a heartbeat of a decision without a table leaves at once
// while an install is pending, carrying the table the data plane has (the one the last
// heartbeat sent in order reported): it claims no less than what may be served, so every
// rule that reads tables from heartbeats stays on the safe side. So does the heartbeat of a
// decision with a table queued behind another install (a leader publishing a table per pulse
// faster than its data plane installs them): it leaves at once with the installed table too,
// and a fresh one reports its own table once installed. Whenever an early heartbeat has
// overtaken a decision's own (lower seq: peers would drop it as replayed), that fresh one
// replaces it. A table of our own making we have left since is reported with no leader:
// under our name, peers would install it (asReported). A heartbeat reporting a table of
// another lineage than the decision's carries no acknowledgement (reporting).
// Used by BuiltinMembership (membership.ts) and by the simulator (test/helpers/membership-sim.ts).

import type { EngineOutput, Heartbeat } from './types.js';

/** The fields of a heartbeat that describe the sender's installed table. */
export type ReportedTable = Pick<Heartbeat, 'epoch' | 'leader' | 'view' | 'tableDigest' | 'table' | 'prev' | 'holdings'>;

function reportedTable(hb: Heartbeat): ReportedTable {
  const { epoch, leader, view, tableDigest, table, prev, holdings } = hb;
  return { epoch, leader, view, tableDigest, table, prev, holdings };
}

/** `hb` reporting `t` as its table instead of its own (absent optional fields stay absent). */
export function withReportedTable(hb: Heartbeat, t: ReportedTable): Heartbeat {
  const { prev: _p, holdings: _h, ...rest } = hb;
  return {
    ...rest,
    epoch: t.epoch, leader: t.leader, view: t.view, tableDigest: t.tableDigest, table: t.table,
    ...(t.prev !== undefined ? { prev: t.prev } : {}),
    ...(t.holdings !== undefined ? { holdings: t.holdings } : {}),
  };
}

export class HeartbeatGate {
  /** Decisions with a table queued and not yet applied. */
  private pending = 0;
  /** The table the data plane has, as the last heartbeat sent in order reported it. */
  private reported: ReportedTable | undefined;
  /** Highest seq transmitted. */
  private lastSeq = 0;
  /** The seq of the decision whose heartbeat `reported` comes from. */
  private reportedSeq = 0;
  /** The latest decision's seq whose heartbeat did not lead on a table of our own making. */
  private notLeadingSeq = 0;

  /** A table is being installed, or queued to be (a decision carrying it not yet applied). */
  get installing(): boolean {
    return this.pending > 0;
  }

  /**
   * A decision is about to be queued. Returns the heartbeat to transmit now, if it may leave
   * before its decision is applied, and the decision to queue: without that heartbeat when it
   * has no table; with it when it has one, whose table a fresh heartbeat reports once
   * installed (applied()).
   */
  early(out: EngineOutput): { now?: Heartbeat; queued: EngineOutput } {
    const behind = this.pending > 0;
    if (out.table) this.pending++;
    if (out.send && out.send.leader !== out.send.from) this.notLeadingSeq = Math.max(this.notLeadingSeq, out.send.seq);
    if (!out.send || !behind || this.reported === undefined) return { queued: out };
    this.lastSeq = Math.max(this.lastSeq, out.send.seq);
    const now = this.reporting(out.send, this.asReported(this.reported, out.send.from));
    if (out.table) return { now, queued: out };
    const { send: _, ...queued } = out;
    return { now, queued };
  }

  /**
   * `t` (the data plane's table) as a heartbeat that leaves out of order reports it: as it is,
   * unless it is a table of our own making whose leadership we have left since (a later
   * decision followed another leader, or set our table aside as leader again) — then with no
   * leader, as tables.ts setAsideOwnTable reports a table set aside. Reported under our name,
   * peers taking us for their leader would install it: a daemon back from a hang would revive
   * the table it held before it left, after the farm had given its buckets away (found by the
   * simulator's revival check, seed 836648). Its rows and view stay what the data plane has
   * (the rules that read what a peer may serve see it unchanged); only the claim to lead on it
   * goes. (Holding such heartbeats back instead silenced a node for as long as its queue of
   * installs: 2.3 s longer to converge in a slow-install search case, seed 556390.)
   */
  private asReported(t: ReportedTable, self: string): ReportedTable {
    return t.leader === self && this.reportedSeq < this.notLeadingSeq ? { ...t, leader: null } : t;
  }

  /**
   * `hb` reporting `t`, the data plane's table. When the engine has switched lineages since
   * (another leader's table, or our own set aside), the acknowledgements go: on `t` they
   * would renew peers of the lineage the engine left, after the moment from which it
   * withholds its acknowledgements of the new table's gainers (engine/tables.ts
   * holdAcksAtSwitch) — one node counted in two majorities again. Peers of the new lineage
   * could not count them on `t` anyway; they get ours once the table lands.
   */
  private reporting(hb: Heartbeat, t: ReportedTable): Heartbeat {
    const r = withReportedTable(hb, t);
    return t.leader === hb.leader ? r : { ...r, acks: [] };
  }

  /** A queued decision could not be applied: its table is not the data plane's. */
  failed(out: EngineOutput): void {
    if (out.table) this.pending = Math.max(0, this.pending - 1);
  }

  /**
   * A queued decision has been applied (table, lease). Returns the heartbeat to transmit now:
   * its own, or — when an early one overtook it — `fresh()` reporting its table.
   */
  applied(out: EngineOutput, fresh: () => Heartbeat): Heartbeat | undefined {
    if (out.table) this.pending = Math.max(0, this.pending - 1);
    const hb = out.send;
    if (!hb) return undefined;
    const own = reportedTable(hb);
    this.reported = own;
    this.reportedSeq = hb.seq;
    if (hb.seq > this.lastSeq) {
      this.lastSeq = hb.seq;
      return hb;
    }
    const next = fresh();
    this.lastSeq = Math.max(this.lastSeq, next.seq);
    // Another install may be pending behind this one: report the table just applied.
    if (this.pending > 0) return this.reporting(next, this.asReported(own, hb.from));
    this.reported = reportedTable(next);
    this.reportedSeq = next.seq;
    return next;
  }
}
