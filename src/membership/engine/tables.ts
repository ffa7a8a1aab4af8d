// The installed tables (docs/membership.md, "The table (leader)": "Leader again";
// "Survivors keep serving": "Switching leaders"): which table a node installs, the recent
// ones a peer may still hold, and the buckets held back after a change of leader.
//
// Invariants guarded here:
// - Nobody goes back to an older leadership's table (the fence's premise): a node that is
//   leader again sets the table it made in an earlier leadership aside (leader none, a new
//   epoch) until it decides anew — setAsideOwnTable; followers install only tables not
//   older than their leader's latest report — maybeInstall, leaderFloor.
// - After a change of leader, the buckets the new table gains us are served only once a
//   peer acknowledges us on it — maybeInstall, holdBackGained, releaseHeldBack (called by
//   the engine at every input, after Lease.renew clears awaitingRenewal).
// - An acknowledgement is a promise: after a switch of lineage, a node that gains (in the new
//   table) a bucket a peer we acknowledged on the old lineage held there gets no
//   acknowledgement of ours, and we serve no such bucket ourselves, until those
//   acknowledgements have surely run out — holdAcksAtSwitch. Two majorities that share us
//   can then never renew two owners of one bucket.
// - A node serving a view's table yields at once to a table that gives one of its buckets
//   away — givesAwayServed.

import { type Rows, tableDigest, type TableRows } from '../table.js';
import { leaseClockSlackNs, leaseWaitNs } from '../timing.js';
import type { EngineOutput, Heartbeat, ViewTable } from '../types.js';
import { type EngineContext, maxBig } from './context.js';
import type { Peer, PeerTable } from './peers.js';

/**
 * Own installed tables remembered (holdings()): far more than a leader publishes between two
 * reports of a live peer, or during a lost peer's lease wait (about one per pulse, a few more
 * when a fence completes).
 */
const RECENT_TABLES = 32;

/** Keeps the `max` newest entries of a map, by insertion order. */
function dropOldest(map: Map<string, unknown>, max: number): void {
  for (const k of map.keys()) {
    if (map.size <= max) break;
    map.delete(k);
  }
}

/** A table's identity across its held-back and complete versions (same epoch, leader and advertised digest). */
function tableKey(t: Pick<ViewTable, 'leader' | 'epoch' | 'digest'>): string {
  return `${t.leader ?? ''}\0${t.epoch}\0${t.digest}`;
}

export class InstalledTables {
  /**
   * Since installing a table of another leader than the previous one, no renewal yet: the
   * lease comes from acknowledgements of the previous leader's tables, so the buckets the new
   * table gains us are held back (servedGroups: the owners the data plane has meanwhile).
   */
  awaitingRenewal = false;
  servedGroups: Rows | undefined;
  /**
   * The buckets held back are not served before then either, renewal or not: a peer we
   * acknowledged on the lineage we left may hold one of them on it (holdAcksAtSwitch).
   */
  private gainedWithheldUntilNs = 0n;
  /**
   * The epoch of the first table of the current lineage: the tables installed since the
   * installed table's leader last changed (or since we set our own aside). An acknowledgement
   * on any of them renews the lease (noteAck).
   */
  lineageStartEpoch = 0;
  /** The highest epoch installed (what the data plane may hold is at most that). */
  private maxInstalledEpoch = 0;
  /**
   * The tables this node installed lately (its own as leader, or followed), oldest first: a
   * peer may have installed any of them newer than the table it last reported to us.
   */
  readonly recentTables: ViewTable[] = [];
  /**
   * When the data plane got each of our recent tables (noteApplied; by tableKey): from then
   * on no heartbeat of ours reports the one before it, early or not (holdAcksAtSwitch).
   */
  private readonly appliedAtNs = new Map<string, bigint>();
  /** Tables seen in direct heartbeats, by digest: what a peer reported only by relay holds. */
  readonly knownTables = new Map<string, TableRows>();

  constructor(private readonly ctx: EngineContext, private readonly peers: PeerTable) {}

  rememberTable(digest: string, rows: TableRows): void {
    if (this.knownTables.has(digest)) return;
    this.knownTables.set(digest, rows);
    // Tables change a few times per failover: a few dozen is plenty.
    dropOldest(this.knownTables, 32);
  }

  viewCause(view: string[], who: string): string {
    const before = new Set(this.ctx.table.view);
    const after = new Set(view);
    const joined = view.filter((n) => !before.has(n));
    const left = this.ctx.table.view.filter((n) => !after.has(n));
    const parts: string[] = [];
    if (left.length) parts.push(`lost ${left.join(',')}`);
    if (joined.length) parts.push(`joined ${joined.join(',')}`);
    if (parts.length === 0) parts.push(this.ctx.table.leader !== this.ctx.leader ? `new leader ${this.ctx.leader}` : `rebalance by ${who}`);
    return parts.join('; ');
  }

  /** Installs the leader's newest table known from any peer's latest heartbeat (relayed or direct). */
  followBest(nowNs: bigint, out: EngineOutput): void {
    let best: Peer | undefined;
    for (const p of this.peers.values()) {
      if (!p.hb || !p.rows || p.hb.leader !== this.ctx.leader) continue;
      if (!best || p.hb.epoch > best.hb!.epoch) best = p;
    }
    if (best) this.maybeInstall(best.hb!, best.rows!, nowNs, out);
  }

  maybeInstall(hb: Heartbeat, rows: TableRows, nowNs: bigint, out: EngineOutput): void {
    // A node whose configuration differs cannot read the leader's table reliably (node
    // ids may differ) and serves nothing anyway.
    if (this.ctx.opts.configDigest !== this.ctx.referenceDigest) return;
    if (rows.groups.length !== this.ctx.opts.groups.length) return;
    // Strictly newer only: two leaders (two sides of a partition) can publish the same epoch;
    // the merged leader then republishes above both (see lead()). Except a table of our
    // (new) leader that gives a bucket we serve to another node, when ours is another
    // leader's: the epochs of two sides are not ordered, and after a heal that leader may be
    // cut off again before it can republish above ours — we yield to its current table rather
    // than serve beside that node until our lease runs out (found by the property search:
    // n3, alone on its side, and n4, on n2's table, served one bucket for a whole lease after
    // the heal, both following n2, cut off again at once).
    const newer = hb.epoch > this.ctx.table.epoch || (hb.leader !== this.ctx.table.leader && this.givesAwayServed(rows));
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
    if (this.ctx.eligible && this.ctx.table.leader !== null && this.ctx.table.view.includes(this.ctx.self) && !hb.view.includes(this.ctx.self)
      && !this.givesAwayServed(rows)) return;
    const served = this.servedGroups ?? this.ctx.table.groups;
    // A table of another leader than the one our lease was renewed with: what it gains us is
    // served only once a peer acknowledges us on it (docs/membership.md, "Switching leaders").
    if (hb.leader !== this.ctx.table.leader) {
      this.holdAcksAtSwitch(rows, hb.leader, nowNs);
      for (const p of this.peers.values()) p.ackDeadlineNs = undefined;
      this.awaitingRenewal = true;
    }
    this.install({ epoch: hb.epoch, leader: hb.leader, view: [...hb.view], groups: rows.groups, prev: rows.prev, digest: hb.tableDigest },
      out, this.viewCause(hb.view, `leader ${hb.leader}`));
    // (A lease that has run out serves nothing to hold back — the next renewal is on this
    // leader's tables — unless a peer may still serve what we gain on the lineage we left.)
    const leaseLive = this.ctx.leaseNsValue + leaseClockSlackNs(this.ctx.opts.timing) > nowNs;
    if ((this.awaitingRenewal && leaseLive) || this.gainedWithheldUntilNs > nowNs) this.holdBackGained(served, out);
    else this.servedGroups = undefined;
  }

  /**
   * We leave a lineage for another leader's table (a heal, a rival's table, a new leader).
   * Our acknowledgements on the tables we leave may still renew, for a lease, a peer that
   * holds a bucket there (owner or previous owner); our acknowledgements on the new table
   * renew its holders there. Under `quorum` two majorities always share a node: if it is
   * us, and the two tables give one bucket to two nodes, both would serve it (property
   * search, Simulator seed 384: n4 went from n3's table, bucket 1 to n5, to n1's, bucket 1
   * to n2; n2 renewed by n1 and n4, n5 by n3 and n4 a few ms before, both served bucket 1).
   * So a node that gains a bucket in the new table — holds it where the table we leave
   * differs — gets no acknowledgement of ours until the acknowledgements we may have given
   * that bucket's holders on the old lineage have surely run out (the last heartbeat we
   * heard of them while our heartbeats reported that table, plus the lease wait), and what
   * we gain ourselves is held back as long. The sender must keep this promise: a receiver
   * cannot tell a switched acknowledger from a lost heartbeat. At an ordinary change of
   * leader nothing moves from a live node (the lost leader was last heard more than `slost`
   * pulses ago, longer than the lease wait), and moves within a lineage are its leader's
   * (the hand-over rule): neither is touched.
   */
  private holdAcksAtSwitch(rows: TableRows, newLeader: string | null, nowNs: bigint): void {
    const waitNs = leaseWaitNs(this.ctx.opts.timing);
    // When we last heard each peer our acknowledgements may still renew on the old lineage.
    const heardNs = new Map<string, bigint>();
    for (const p of this.peers.values()) {
      if (p.lastRecvNs === undefined || p.lastRecvNs + waitNs <= nowNs) continue;
      // A peer on the new leader's lineage already (the leader itself, or one that reports
      // its table: its data plane has it) serves what that lineage gives it, whatever lease
      // our old acknowledgements gave it: a node never goes back to a lineage it left.
      if (newLeader !== null && (p.name === newLeader || p.hb?.leader === newLeader)) continue;
      heardNs.set(p.name, p.lastRecvNs);
    }
    if (heardNs.size === 0) return;
    const current = this.ctx.table;
    // The tables of the lineage we leave whose holders our acknowledgements may renew, each
    // with the moment our acknowledgements on it ended: ours until the data plane got the next
    // one (heartbeats report the data plane's table while an install runs; an acknowledgement
    // on a later table renews no peer on an earlier one: Lease.onOurLineage), the installed one
    // until now, and a later one of that lineage a peer reports (our acknowledgements on an
    // earlier table of its lineage renew it).
    const left: { t: Pick<ViewTable, 'groups' | 'prev'>; epoch: number; ackedUntilNs: bigint }[] = [{ t: current, epoch: current.epoch, ackedUntilNs: nowNs }];
    if (current.leader !== null) {
      const lineage = this.recentTables.filter((t) => t.leader === current.leader && t.epoch >= this.lineageStartEpoch);
      lineage.forEach((t, i) => {
        if (t === current) return;
        const next = lineage[i + 1];
        left.push({ t, epoch: t.epoch, ackedUntilNs: (next && this.appliedAtNs.get(tableKey(next))) ?? nowNs });
      });
      for (const p of this.peers.values()) {
        if (p.rows && p.hb && p.hb.leader === current.leader && p.hb.epoch > current.epoch) left.push({ t: p.rows, epoch: p.hb.epoch, ackedUntilNs: nowNs });
      }
    }
    const withhold = (node: string | null, from: string, until: bigint): void => {
      if (node === null || node === from) return;
      if (node === this.ctx.self) {
        if (until > this.gainedWithheldUntilNs) this.gainedWithheldUntilNs = until;
        return;
      }
      const p = this.peers.get(node);
      if (p) p.ackWithheldUntilNs = maxBig(p.ackWithheldUntilNs, until);
    };
    rows.groups.forEach((row, g) => row.forEach((owner, b) => {
      const prev = rows.prev[g]?.[b] ?? null;
      const curOwner = current.groups[g]?.[b] ?? null;
      const curPrev = current.prev[g]?.[b] ?? null;
      // Who gains a role in b over what our latest acknowledgements stood behind (a previous
      // owner accepts less than the owner it was: no gain). A previous owner accepts only its
      // own connections: one whose data plane has no role in b (its latest report) has none.
      const ownerGains = owner !== null && owner !== curOwner ? owner : null;
      const prevGains = prev !== null && prev !== curPrev && prev !== curOwner && this.mayHoldConnections(prev, g, b) ? prev : null;
      if (ownerGains === null && prevGains === null) return;
      for (const { t, epoch, ackedUntilNs } of left) {
        const oldOwner = t.groups[g]?.[b] ?? null;
        const oldPrev = t.prev[g]?.[b] ?? null;
        // A holder the new table keeps in the same role is part of its arrangement: the new
        // table's holders coexist with it as the table says.
        for (const held of [oldOwner === owner ? null : oldOwner, oldPrev === prev ? null : oldPrev]) {
          if (held === null) continue;
          // A previous owner that reports, on its table, no connection left in b accepts
          // nothing there, and as previous owner never will: the new leader released it as
          // drained, and our acknowledgements renew it to serve nothing of b.
          if (held === oldPrev && held !== oldOwner && this.peers.reportsDrained(held, g, b)) continue;
          // A holder whose data plane is on a later table of that lineage (its latest report)
          // never goes back to t: renewed there, it serves what that table gives it in b —
          // nothing, or its own connections as previous owner, which the new table also names.
          if (current.leader !== null && this.movedOnWithout(held, current.leader, epoch, g, b, prev)) continue;
          const heard = heardNs.get(held);
          if (heard === undefined) continue;
          // The deadline our latest acknowledgement of it on t gave counts from a heartbeat
          // we had heard by then.
          const until = (heard < ackedUntilNs ? heard : ackedUntilNs) + waitNs;
          if (until <= nowNs) continue;
          withhold(ownerGains, held, until);
          withhold(prevGains, held, until);
        }
      }
    }));
  }

  /** May `node`'s data plane hold connections in b: a peer whose latest report (or an unknown one) gives it a role there? */
  private mayHoldConnections(node: string, g: number, b: number): boolean {
    if (node === this.ctx.self) return false;
    const rows = this.peers.get(node)?.rows;
    return rows === undefined || rows.groups[g]?.[b] === node || rows.prev[g]?.[b] === node;
  }

  /**
   * Does `node`'s latest heartbeat report a table of `leader`'s lineage after `epoch` that
   * gives it no role in b, or only the previous owner's — with nothing held there, or as the
   * new table names it too (`newPrev`)?
   */
  private movedOnWithout(node: string, leader: string, epoch: number, g: number, b: number, newPrev: string | null): boolean {
    const p = this.peers.get(node);
    if (!p?.hb || !p.rows || p.hb.leader !== leader || p.hb.epoch <= epoch) return false;
    if ((p.rows.groups[g]?.[b] ?? null) === node) return false;
    return (p.rows.prev[g]?.[b] ?? null) !== node || newPrev === node || this.peers.reportsDrained(node, g, b);
  }

  /**
   * Has the leader of our installed table moved on without us? Its own latest heartbeat shows
   * a later epoch whose view leaves us out: it released us (lease wait and fence), and may
   * have given our buckets away. Acknowledgements on our table then prove nothing: peers
   * still on it were cut off from that leader with us, and its fence did not count them
   * (only live peers): slow-install search, Simulator seed 254836 (`quorum`): n2, n3 and n4,
   * cut off on n1's epoch 4, renewed each other on it at the repair while n1 had given
   * bucket 8 to n5 — n3 served it beside n5. No renewal on such a table (Lease.noteAck).
   */
  leftBehind(): boolean {
    const leader = this.ctx.table.leader;
    if (leader === null || leader === this.ctx.self) return false;
    const p = this.peers.get(leader);
    const hb = p?.hb;
    return p !== undefined && p.alive && hb !== undefined && hb.epoch > this.ctx.table.epoch && !hb.view.includes(this.ctx.self);
  }

  /** Does `rows` name another node owner or previous owner of a bucket the data plane serves for us? */
  private givesAwayServed(rows: TableRows): boolean {
    const served = this.servedGroups ?? this.ctx.table.groups;
    return served.some((row, g) => row.some((o, b) => {
      if (o !== this.ctx.self) return false;
      const owner = rows.groups[g]?.[b] ?? null;
      const prev = rows.prev[g]?.[b] ?? null;
      return (owner !== null && owner !== this.ctx.self) || (prev !== null && prev !== this.ctx.self);
    }));
  }

  /**
   * Gives the data plane the installed table without the buckets it gains us over `served`
   * (what the data plane has), until a renewal on a table of this leader (renew()).
   */
  private holdBackGained(served: Rows, out: EngineOutput): void {
    let held = 0;
    const groups = this.ctx.table.groups.map((row, g) => row.map((o, b) => {
      if (o !== this.ctx.self || served[g]?.[b] === this.ctx.self) return o;
      held++;
      return null;
    }));
    this.servedGroups = held > 0 ? groups : undefined;
    if (held > 0) out.table = { ...this.ctx.table, groups };
  }

  /** The epoch our leader advertised in its latest report (its own heartbeat or a peer's relay). */
  private leaderFloor(): number | undefined {
    const p = this.ctx.leader === null ? undefined : this.peers.get(this.ctx.leader);
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
  setAsideOwnTable(): void {
    const epoch = Math.max(this.ctx.maxEpochSeen, this.ctx.table.epoch) + 1;
    this.ctx.table = { ...this.ctx.table, epoch, leader: null };
    this.ctx.maxEpochSeen = epoch;
    this.lineageStartEpoch = epoch;
  }

  install(table: ViewTable, out: EngineOutput, cause: string): void {
    const prev = this.ctx.table;
    let moved = 0;
    let gained = 0;
    let lost = 0;
    table.groups.forEach((row, g) => row.forEach((o, b) => {
      const was = prev.groups[g]?.[b] ?? null;
      if (was === o) return;
      moved++;
      if (o === this.ctx.self) gained++;
      if (was === this.ctx.self) lost++;
    }));
    if (table.leader === null || table.leader !== prev.leader) {
      this.lineageStartEpoch = table.epoch;
      // The epochs of the lineages before this one, up to the highest, are ambiguous in a
      // holdings sample from now on (context.ts holdingsFloorEpoch).
      if (this.maxInstalledEpoch >= table.epoch) this.ctx.holdingsFloorEpoch = Math.max(this.ctx.holdingsFloorEpoch, this.maxInstalledEpoch);
    }
    this.maxInstalledEpoch = Math.max(this.maxInstalledEpoch, table.epoch);
    this.ctx.table = table;
    this.recentTables.push(table);
    if (this.recentTables.length > RECENT_TABLES) this.recentTables.shift();
    this.rememberTable(table.digest, table);
    if (table.epoch > this.ctx.maxEpochSeen) this.ctx.maxEpochSeen = table.epoch;
    out.table = table;
    const lostNodes = prev.view.filter((n) => !table.view.includes(n));
    const detections = lostNodes.map((n) => this.peers.lostAt.get(n)).filter((x): x is number => x !== undefined);
    for (const n of lostNodes) this.peers.lostAt.delete(n);
    out.events.push({
      type: 'view', epoch: table.epoch, leader: table.leader, view: table.view, cause, moved, gained, lost,
      ...(detections.length ? { detectionMs: Math.max(...detections) } : {}),
    });
  }

  /** The data plane has `table` (the daemon applied a decision carrying it). */
  noteApplied(table: ViewTable, nowNs: bigint): void {
    const key = tableKey(table);
    if (!this.appliedAtNs.has(key)) this.appliedAtNs.set(key, nowNs);
    dropOldest(this.appliedAtNs, 2 * RECENT_TABLES);
  }

  /** Completes the table in the data plane once renewed and past gainedWithheldUntilNs (checked at every input). */
  releaseHeldBack(nowNs: bigint, out: EngineOutput): void {
    if (this.awaitingRenewal || this.servedGroups === undefined || nowNs < this.gainedWithheldUntilNs) return;
    this.servedGroups = undefined;
    out.table = this.ctx.table;
    out.completesTable = true;
  }
}
