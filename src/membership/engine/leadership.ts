// Leadership and the table decision (docs/membership.md, "The table (leader)" with its
// fence, "Handover"): the leader's choice of owners and previous owners for every bucket.
//
// Invariants guarded here:
// - The leader gives bucket b to node Y only when no other node may still serve b: every
//   view member whose reported table (or the leader's own) gives it b must first report a
//   table without it; every other node only after its lease has surely run out AND behind the
//   fence: no live peer (nor we) is still on a table whose view includes it — a lease is
//   renewed only on a table whose view includes the renewing node — lead, holdings, fenced.
// - Handover (handoverLimitMs > 0): a node "may serve" b when a table it may have installed
//   names it owner OR previous owner of b. The leader names a new owner only when no other
//   node may be owner and no node but the (single) previous owner it names may serve b;
//   a handover ends when the previous owner reports none left (sampled under the table that
//   names it), at the limit, or once its lease surely ran out — lead, nextPrev, endReason,
//   drained, noteHandovers. A previous owner cut at the limit or drained stops counting for b
//   from the table that ended its handover on, also while it still reports a table of that
//   handover — releasedPrevs.
// - Two leaders never decide on the same free bucket: a member still acting as leader blocks
//   the buckets its table leaves unowned, even those our own leaderless (adopted, set-aside)
//   table gives us (lead's rivals), and a smaller-named peer about to
//   lead stops our decision — smallerPeerDiscovering, smallerMember.

import { rebalance } from '../../balance/assign.js';
import { bitmapHas, effectivePowers, hasAny, type Rows, sameRows, tableDigest, type TableRows } from '../table.js';
import { leaseWaitNs } from '../timing.js';
import type { EngineOutput, GroupHandover, HandoverEndReason } from '../types.js';
import { byName, DISCOVERING, type EngineContext } from './context.js';
import type { Peer, PeerTable } from './peers.js';
import type { InstalledTables } from './tables.js';
import type { OwnHeartbeat } from './wire.js';

/** Nobody (a bucket no table names anyone for). Never modified. */
const NO_ONE: ReadonlySet<string> = new Set<string>();

/** One bucket's handover as the leader tracks it (for the limit and the drained check). */
interface HandoverRecord {
  prev: string;
  startNs: bigint;
  /** Epoch of the table that made `prev` previous owner: its reports from older tables prove nothing. */
  startEpoch: number;
  /** The bucket's new owner left the view: it goes back to `prev` (see lead()). */
  ownerLeft?: boolean;
}

export class Leadership {
  private readonly takeoverWaitNs: bigint;
  private readonly handoverLimitNs: bigint;
  /** Leader only: handovers in the installed table, by `${group}:${bucket}`. */
  readonly handovers = new Map<string, HandoverRecord>();
  /**
   * Leader only, by `${group}:${bucket}`: the last handover of the bucket that we ended at the
   * limit or as drained — its previous owner, and the epochs of our tables that named it so
   * (from the handover's start to the table that ended it, excluded). See lead().
   */
  private readonly releasedPrevs = new Map<string, { node: string; fromEpoch: number; toEpoch: number }>();
  /**
   * We were leader at the last pulse (or took over at once at a check between pulses: the
   * engine's checkDeadline): a new leader's first table waits for the next pulse.
   */
  leaderSinceTick = false;
  /** The candidates of the last tick (the view lead() works on between ticks). */
  lastCandidates: string[] = [];
  /**
   * Leader: some non-member's buckets wait only for the fence (a live peer may still
   * acknowledge it): re-decide as soon as the peers' heartbeats show the fence installed.
   */
  fencePending = false;

  constructor(private readonly ctx: EngineContext, private readonly peers: PeerTable, private readonly tables: InstalledTables,
    private readonly wire: OwnHeartbeat) {
    this.takeoverWaitNs = leaseWaitNs(ctx.opts.timing);
    this.handoverLimitNs = BigInt(Math.max(0, Math.round((ctx.opts.handoverLimitMs ?? 0) * 1e6)));
  }

  /** Buckets in handover in the installed table, per group, with what each previous owner reported. */
  handoverStatus(): GroupHandover[] {
    const out: GroupHandover[] = [];
    this.ctx.table.prev.forEach((row, g) => {
      const byNode = new Map<string, number[]>();
      row.forEach((p, b) => {
        if (p !== null) byNode.set(p, [...(byNode.get(p) ?? []), b]);
      });
      if (byNode.size === 0) return;
      const prevs: GroupHandover['prevs'] = [...byNode].sort(([a], [b]) => byName(a, b)).map(([node, buckets]) => {
        const report = node === this.ctx.self ? this.wire.ownHoldings() : this.peers.get(node)?.hb?.holdings;
        if (!report) return { node, buckets: buckets.length };
        const held = buckets.filter((b) => bitmapHas(report.held[g], b)).length;
        return { node, buckets: buckets.length, held, ...(report.epoch > 0 ? { connections: report.connections[g] ?? 0 } : {}) };
      });
      out.push({ group: this.ctx.opts.groups[g]?.name ?? String(g), buckets: row.filter((p) => p !== null).length, prevs });
    });
    return out;
  }

  /** A live peer of our configuration, named before us, that reports it is still discovering. */
  smallerPeerDiscovering(): boolean {
    for (const p of this.peers.values()) {
      if (p.alive && p.name < this.ctx.self && p.hb?.state === 'WAIT' && p.hb.cause === DISCOVERING && this.ctx.digestOf(p.hb) === this.ctx.referenceDigest) return true;
    }
    return false;
  }

  /**
   * May a node that has just become leader publish its first table at this very tick, rather
   * than one pulse later? Only when the one change is its predecessor's loss: our installed
   * table is `previous`'s, and every live peer but `previous` is a member whose own heartbeat,
   * at most a pulse and a half old, is on that same table, still names `previous` leader and
   * hears us (no relay shows it on another table). Then no rival leader can have decided
   * anything we have not seen: a member that took another leader, or installed another
   * table, would have said so; a live non-member could be one, so there is none. And the
   * first table takes nothing
   * from a live node: `previous`'s buckets stay unowned through its lease wait and the fence
   * (holdings, fenced), which only the members' heartbeats on this table complete — a member
   * that follows a rival instead reports the rival's table, which then counts (holdings,
   * rivals) before any of those buckets is given. The pulse's wait is for the other cases (a
   * heal, a leader that has not yet seen us), where a competing table may be on its way.
   * Without it, the leader's loss cost a pulse more than a follower's (docs/benchmarks.md).
   */
  takesOverAtOnce(nowNs: bigint, view: readonly string[], previous: string | null): boolean {
    if (previous === null || previous === this.ctx.self || view.includes(previous) || this.ctx.table.leader !== previous) return false;
    const freshNs = (3n * this.ctx.pulseNs) / 2n;
    const digest = this.ctx.table.digest;
    for (const p of this.peers.values()) {
      if (p.name === previous) continue;
      if (!view.includes(p.name)) {
        if (p.alive) return false;
        continue;
      }
      const hb = p.hb;
      if (!hb || p.lastRecvNs === undefined || nowNs - p.lastRecvNs > freshNs) return false;
      if (hb.leader !== previous || hb.tableDigest !== digest) return false;
      // It hears us: it can take us for leader as soon as it finds the predecessor gone. A
      // member that does not may pick another (search seed 3 under `quorum`: n4, cut one way
      // from n2 and n3, took n3, and n5's lease, a majority's, lapsed while n4 lagged).
      if (!hb.heard.some((h) => h.node === this.ctx.self && h.ageMs < Number(freshNs / 1_000_000n))) return false;
      if (p.indirectNs !== undefined && p.indirectNs > p.lastRecvNs && p.indirectDigest !== digest) return false;
    }
    return true;
  }

  /** A peer named before us that is a member by the evidence at hand (assess()'s test). */
  smallerMember(nowNs: bigint): boolean {
    const slostNs = BigInt(this.ctx.opts.timing.slostCount) * this.ctx.pulseNs;
    for (const p of this.peers.values()) {
      if (p.name >= this.ctx.self) continue;
      const ev = this.peers.evidence(p);
      if (ev === undefined || nowNs - ev >= this.peers.timeoutNs(p.name)) continue;
      if (this.peers.peerState(p) === 'UP' && p.hb?.configDigest === this.ctx.referenceDigest && this.peers.connected(p, nowNs, slostNs)) return true;
    }
    return false;
  }

  lead(nowNs: bigint, view: string[], out: EngineOutput): void {
    this.fencePending = false;
    const holdings = this.holdings(view, nowNs);
    // A member known only by relay to have installed a table we never saw may serve
    // anything: decide nothing until its heartbeat (or a peer's with that table) arrives.
    if (holdings === undefined) return;
    const powers = effectivePowers(this.ctx.opts.groups, this.ctx.overrides);
    const base = this.ctx.table;
    const members = new Set(view);
    // Members still acting as leaders (their installed table is their own): they have not yet
    // taken us as leader and may, at this very moment, give a bucket that their table leaves
    // unowned to another node than we would (found by the property search under 50% loss: n1
    // and n2 published tables 0.7 ms apart, giving one free bucket to n3 and to n2). Such a
    // bucket gets no owner from us until they follow us; what they own they alone move.
    const rivals = view.map((n) => this.peers.get(n)).filter((p): p is Peer => p !== undefined && p.hb?.leader === p.name && p.rows !== undefined);
    const epoch = Math.max(this.ctx.maxEpochSeen, this.ctx.table.epoch) + 1;
    // Handovers ended under an earlier leadership are not ours to carry over.
    if (!this.leaderSinceTick) this.releasedPrevs.clear();
    // The epoch of our own table each holding comes from (undefined: another leader's, or a relay).
    const ours = (name: string, t: TableRows): number | undefined => {
      if (t === this.ctx.table) return this.ctx.table.leader === this.ctx.self ? this.ctx.table.epoch : undefined;
      const recent = this.tables.recentTables.find((r) => r === t);
      if (recent) return recent.leader === this.ctx.self ? recent.epoch : undefined;
      const hb = this.peers.get(name)?.hb;
      return t === this.peers.get(name)?.rows && hb?.leader === this.ctx.self ? hb.epoch : undefined;
    };
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
      // A bucket in handover whose new owner left the view goes back to its previous owner,
      // which still serves the connections it holds there; given to a third node, they would be
      // cut at the next move (the failed node's return). The failure then costs only the failed
      // node's own connections. The bucket counts as the previous owner's from the table that
      // finds its owner gone, through the lost owner's lease wait (unowned), until it is back.
      const held = base.prev[g]?.some((p) => p !== null) ? row.map((o, b) => {
        const p = base.prev[g]![b] ?? null;
        if (p === null || !members.has(p) || (o !== null && members.has(o))) return o;
        const rec = this.handovers.get(`${g}:${b}`);
        if (rec?.prev !== p) return o;
        if (o !== null) rec.ownerLeft = true;
        return rec.ownerLeft ? p : o;
      }) : row;
      const desired = rebalance(held, powers[g] ?? new Map(), view);
      // Who may serve each bucket, as owner or as previous owner, in a table they may have installed.
      // (Sets made only for buckets someone holds; NO_ONE stands for the others.)
      const asOwner = new Array<Set<string> | undefined>(row.length);
      const asPrev = new Array<Set<string> | undefined>(row.length);
      // Owners with no previous owner in their table: they take every packet of the bucket.
      // (Not a restarted node's adopted table: it starts with its lease revoked and renews
      // it only from acknowledgements of a view's table, or alone — out of the farm's contact.)
      const takesAll = new Array<Set<string> | undefined>(row.length);
      // The claims of tables that are not a restarted node's adopted one (nor, for a node
      // reporting epoch 0, ours it may have installed in an earlier incarnation): what holds
      // back an owner that keeps its bucket (below).
      const firmOwner = new Array<Set<string> | undefined>(row.length);
      const firmPrev = new Array<Set<string> | undefined>(row.length);
      for (const [name, t, adopted] of holdings) {
        const owners = t.groups[g];
        const prevs = t.prev[g];
        if (owners) {
          for (let b = 0; b < owners.length; b++) {
            if (owners[b] !== name) continue;
            (asOwner[b] ??= new Set()).add(name);
            if (adopted) continue;
            (firmOwner[b] ??= new Set()).add(name);
            if ((prevs?.[b] ?? null) === null) (takesAll[b] ??= new Set()).add(name);
          }
        }
        if (prevs) {
          const epochOfOurs = this.releasedPrevs.size > 0 ? ours(name, t) : undefined;
          for (let b = 0; b < prevs.length; b++) {
            if (prevs[b] !== name) continue;
            // A previous owner whose handover of b we ended — cut at the limit (its connections
            // given up) or drained (it held none, and a previous owner takes no new one) —
            // still on one of our tables of that handover (its installs lag: a slow data
            // plane): the table that ended it let the owner take b beside it. Holding the owner
            // back at the next table, as that claim alone did, protected nothing the end had not
            // settled, and gave b back a table later when the lagging report caught up — two
            // more tables for every node to install, a bucket with no owner meanwhile, and the
            // queues of installs grew (slow-install search seed 1, serve with handover: 87
            // tables and 8.0 s to converge after the repair; 26 and 3.0 s with the cut ones
            // released). With the drained ones, a returning node's buckets no longer leave and
            // come back while its renewals queue behind those tables (membership-continuity:
            // 12 lapses of the returning node in seeds 1–40 → 0; docs/membership.md).
            // Only its role as previous owner of b, on those tables of ours: an owner's claim,
            // or another leader's table, still holds the owner back.
            const r = epochOfOurs === undefined ? undefined : this.releasedPrevs.get(`${g}:${b}`);
            if (r && r.node === name && epochOfOurs! >= r.fromEpoch && epochOfOurs! < r.toEpoch) continue;
            (asPrev[b] ??= new Set()).add(name);
            if (!adopted) (firmPrev[b] ??= new Set()).add(name);
          }
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
        // An owner that keeps b is not held back by a restarted node's adopted claim: that node
        // serves nothing of it (its lease starts revoked and grows only on a view's table), and
        // the pulse before, not yet a member, its claim did not count. Held back in place, the
        // survivors lost new connections of buckets they keep, for a table or two, whenever a
        // returning node's early heartbeats still reported its adopted table while its first
        // install ran (the lab: 2 failed bystander requests at a follower's restart; the
        // simulator with installs of 5–150 ms: 5–7 kept buckets of each survivor, 4 seeds in 8).
        const keeps = want !== null && want === was;
        let owner = want;
        if (owner !== null) {
          for (const n of (keeps ? firmOwner[b] ?? NO_ONE : ownerOf)) if (n !== owner) owner = null;
          for (const n of (keeps ? firmPrev[b] ?? NO_ONE : prevOf)) if (n !== want && n !== prev && n !== released) owner = null;
          // (Also a bucket our table already gives us, when that table has no leader: adopted at
          // a restart, or set aside as leader again. It says nothing of what we may keep: the
          // farm may have freed the bucket meanwhile, and a rival may give it away at any
          // moment — slow-install search seed 3: n1, restarted, kept bucket 1 from the table it
          // adopted while n2, leading, had freed it and was installing a table giving it to n2.)
          if (owner !== was || base.leader === null) for (const r of rivals) if ((r.rows!.groups[g]?.[b] ?? null) === null) owner = null;
        }
        // A live owner that loses b — moved, or held back because another node may still
        // serve it — keeps its connections as previous owner.
        if (on && owner === null && was !== null && members.has(was) && !clashes(was)) prev = was;
        if (prev === owner) prev = null;
        if (wasPrev !== null && wasPrev !== prev) {
          const reason: HandoverEndReason = owner === wasPrev ? 'returned' : prev !== null || clashes(wasPrev) ? 'moved'
            : this.endReason(g, b, wasPrev, members, ownerOf, prevOf, nowNs) ?? 'prev_lost';
          ended.push({ g, b, from: wasPrev, reason });
          const rec = this.handovers.get(`${g}:${b}`);
          if ((reason === 'limit' || reason === 'drained') && wasPrev !== this.ctx.self && rec?.prev === wasPrev) {
            this.releasedPrevs.set(`${g}:${b}`, { node: wasPrev, fromEpoch: rec.startEpoch, toEpoch: epoch });
          }
        }
        // An owner held back in place (want === prev) is not moving: no owner-to-be to name.
        if (prev !== null && prev !== wasPrev) started.push({ g, b, from: prev, to: want === prev ? null : want });
        owners.push(owner);
        prevs.push(prev);
      });
      nextGroups.push(owners);
      nextPrev.push(prevs);
    });
    const memberAhead = view.some((n) => {
      const hb = this.peers.get(n)?.hb;
      return hb !== undefined && (hb.epoch > this.ctx.table.epoch || (hb.epoch === this.ctx.table.epoch && hb.tableDigest !== this.ctx.table.digest));
    });
    // A member on another leader's table of our epoch or above (a rival above, or its
    // followers) installs only a table of ours with a higher epoch: republish even when
    // nothing changes, or a rival
    // whose free buckets we leave unowned, on a table with our very digest, would stay one
    // (found by the property search: every bucket unowned in both, and no table ever again).
    const memberElsewhere = view.some((n) => {
      const hb = n === this.ctx.self ? undefined : this.peers.get(n)?.hb;
      return hb !== undefined && hb.leader !== this.ctx.self && hb.epoch >= this.ctx.table.epoch;
    });
    const sameView = this.ctx.table.view.length === view.length && this.ctx.table.view.every((n, i) => n === view[i]);
    if (sameRows(nextGroups, base.groups) && sameRows(nextPrev, base.prev) && sameView && this.ctx.table.leader === this.ctx.self && !memberAhead && !memberElsewhere) return;
    this.noteHandovers(started, ended, epoch, nowNs, out);
    this.tables.install({ epoch, leader: this.ctx.self, view, groups: nextGroups, prev: nextPrev, digest: tableDigest(nextGroups, nextPrev) }, out, this.tables.viewCause(view, 'leader'));
    this.tables.awaitingRenewal = false;
    this.tables.servedGroups = undefined;
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
    if (node === this.ctx.self) {
      const s = this.ctx.holdingsSample;
      return s !== undefined && s.epoch === this.ctx.table.epoch && this.ctx.table.epoch >= sinceEpoch
        && this.ctx.table.prev[g]?.[b] === node && (s.counts[g]?.[b] ?? 0) === 0;
    }
    return this.peers.reportsDrained(node, g, b, sinceEpoch);
  }

  /** Updates the leader's handover clocks and reports what starts and ends with the table of `epoch`. */
  private noteHandovers(started: { g: number; b: number; from: string; to: string | null }[],
    ended: { g: number; b: number; from: string; reason: HandoverEndReason }[], epoch: number, nowNs: bigint, out: EngineOutput): void {
    const groupName = (g: number) => this.ctx.opts.groups[g]?.name ?? String(g);
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
    if (node === this.ctx.self) {
      const s = this.ctx.holdingsSample;
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
    const staleNs = 3n * this.ctx.pulseNs;
    const reportsFresh = view.every((n) => {
      const p = this.peers.get(n);
      return !p || p.lastRecvNs === undefined || nowNs - p.lastRecvNs <= staleNs;
    });
    const released = new Set<string>();
    for (const p of this.peers.values()) {
      const member = view.includes(p.name);
      // A relay shows it on another table than its own last heartbeat to us did.
      const relayedNewer = p.indirectNs !== undefined && (p.lastRecvNs === undefined || p.indirectNs > p.lastRecvNs)
        && p.indirectDigest !== undefined && p.indirectDigest !== p.hb?.tableDigest;
      if (!member) {
        // The last moment it could have renewed: it renews only while UP (servingNs: the last
        // time it was a member or advertised UP while connected), and only from an
        // acknowledgement of a heartbeat some peer received — which that peer's later reports
        // carry (evidence), once the fence below has every such peer on a table without it.
        // So a silent node counts from its last evidence even while it is still "alive" by the
        // longer timeout of a leader (mlost): counting from its last tick as a member held a
        // dead leader's buckets one pulse longer than a follower's.
        const since = p.alive && p.servingNs === undefined ? undefined : minBig(this.peers.evidence(p), p.servingNs ?? this.peers.evidence(p));
        if (since === undefined) continue;
        // Not released while a relay shows it alive and UP on such a table: the lease wait
        // counts from its last contact and the fence from its acknowledgers, but a node alone
        // on its side of a partition renews from its own liveness (`serve`), so neither bounds
        // its lease; and the relayer, about to get buckets from us, may be in contact with it
        // (search seed 14: n2, resumed beside n3 at a heal, relayed n3 UP on n3's own table,
        // which gave n3 every bucket; n1 gave n2 one of them while n3 still served it).
        const relayedServing = p.alive && relayedNewer && p.indirectState === 'UP';
        if (reportsFresh && nowNs >= since + this.takeoverWaitNs && !relayedServing) {
          if (this.fenced(p)) {
            released.add(p.name);
            continue;
          }
          this.fencePending = true;
        }
      }
      out.push([p.name, this.ctx.table]);
      // Tables we installed after the one it last reported (several in one pulse when a
      // fence completes, or its reports were lost): it may have installed any of them.
      // (A peer that reports epoch 0 restarted and has installed none of them: only its
      // previous incarnation could have, and a restart revokes the lease — like an adopted
      // table, they never take every packet.)
      // Nor does a table only an earlier incarnation reported: a new one is heard (candidate,
      // not accepted yet) — the restarted daemon revoked the lease before its first heartbeat.
      // (Relays of the new incarnation make it a member while its own heartbeats still wait
      // for their proof; the simulator's returning follower: 5–7 kept buckets of each survivor
      // held back in place at the join, with installs of 5–150 ms.)
      // Epochs order only one leadership's tables: a peer that reports another leader's table
      // (or its own set aside, leader none) may have installed any table of our current
      // leadership since, whatever its number (slow-install search, Simulator seed 119562: n2
      // reported its own epoch 34 while it had installed n1's epoch 34, which gave it a
      // bucket; n1, counting only its tables above 34, gave that bucket to itself).
      const reportedEpoch = p.hb?.epoch ?? -1;
      const restarted = reportedEpoch === 0 || p.candidate !== undefined;
      const reportsOurs = p.hb !== undefined && p.hb.leader === this.ctx.self;
      for (const t of this.tables.recentTables) {
        if (t === this.ctx.table) continue;
        const ofOurLeadership = t.leader === this.ctx.self && t.epoch >= this.tables.lineageStartEpoch;
        if (t.epoch > reportedEpoch || (!reportsOurs && !restarted && ofOurLeadership)) out.push([p.name, t, restarted]);
      }
      if (relayedNewer) {
        const rows = this.tables.knownTables.get(p.indirectDigest!);
        if (rows) out.push([p.name, rows]);
        else return undefined;
      }
      if (p.rows) out.push([p.name, p.rows, restarted]);
    }
    // A node may also install, at any moment, the table of another node that acts as
    // leader (views disagree for a pulse after a heal, a restart, a leader's loss): every
    // node of that leader's view may hold what that table gives it. Also when a live peer
    // relays it (its own table, made by another leader): that leader's heartbeats may not
    // reach us (a heal, a one-way cut), and a member we hear only by relay may be on it
    // (docs/membership.md, "the relay freshness gap").
    const leadsNobodyNs = BigInt(this.ctx.opts.timing.mlostCount) * this.ctx.pulseNs;
    for (const q of this.peers.values()) {
      if (!q.alive || !q.hb || !q.rows || q.hb.leader === null || q.hb.leader === this.ctx.self) continue;
      // Not the table of its own leadership that a WAIT node still carries (a leader whose
      // check failed, back after its link came up): nobody follows a WAIT node, and once it
      // has been out of service for `mlost` pulses no follower can still take it for its
      // leader; when it leads again it sets that table aside. Counting it made the leader
      // take back, table after table, the buckets it had given the survivors (seen in the
      // lab: kept buckets of every survivor unowned for a pulse at the old leader's return).
      if (q.hb.leader === q.name && q.hb.state === 'WAIT' && (q.servingNs === undefined || nowNs - q.servingNs > leadsNobodyNs)) continue;
      // What its table gives itself counts only until the rules above release it: a leader
      // silent for `slost` pulses is still alive by the leader's longer timeout (mlost).
      for (const n of q.hb.view) if (n !== this.ctx.self && !(n === q.name && released.has(n))) out.push([n, q.rows]);
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
    if (this.ctx.table.view.includes(x.name)) return false;
    const xDigest = x.hb === undefined ? undefined : this.ctx.digestOf(x.hb);
    for (const m of this.peers.values()) {
      if (m === x || !m.alive) continue;
      // A peer with another configuration cannot acknowledge x (noteAck compares digests).
      if (m.hb !== undefined && xDigest !== undefined && this.ctx.digestOf(m.hb) !== xDigest) continue;
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
        const newer = this.tables.recentTables.find((t) => t.digest === m.indirectDigest);
        if (!newer || newer.view.includes(x.name)) return false;
      }
    }
    return true;
  }
}

function minBig(a: bigint | undefined, b: bigint | undefined): bigint | undefined {
  return a === undefined ? b : b === undefined ? a : a < b ? a : b;
}
