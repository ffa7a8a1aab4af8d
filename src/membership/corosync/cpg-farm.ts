// The farm's state under Corosync, as one deterministic state machine per member (docs/
// membership.md, "Corosync backend"). No leader: CPG delivers the same configuration changes
// and the same agreed messages, in the same order, to every member of a configuration
// (virtual synchrony), and every member feeds them to its CpgFarm, which therefore computes
// the same bucket table at the same point of the stream. Pure: no clock, no I/O; what the
// member must multicast comes back in `send`, and what only the local node may decide (its
// lease, how long a departed node may still serve) is left to the caller
// (corosync-membership.ts).
//
// State transfer. A configuration that brings members in (a start, a restart, a healed
// partition) starts a sync round: every member multicasts its state (`sync`), and once the
// sync of every member of the configuration is delivered, each computes the merged state
// from them — the same messages in the same order, so the same result. Other messages
// delivered meanwhile are kept and applied after the merge, in order. A configuration that
// only loses members needs no round: the remaining members went through the same stream.
//
// Moving a bucket. A bucket changes owner between two members only through a fence: first
// nobody owns it (with handover on, its owner becomes the previous owner, which keeps its
// own connections), and only once every member that may serve has applied that table (the
// epoch in its `beat`) is it given to its new owner. A bucket whose owner left the CPG group
// goes to its new owner at once in the table; the new owner holds it back locally until the
// departed node's lease has surely run out (`gone` in the output).

import type { Owners } from '../../balance/assign.js';
import { rebalance } from '../../balance/assign.js';
import { NBUCKETS } from '../../balance/tables.js';
import { overridesProblem } from '../bounds.js';
import { bitmapHas, checkPowerChange, decodeRows, effectivePowers, emptyRows, encodeRows, NO_OVERRIDES, overridesNewer, tableDigest } from '../table.js';
import type { GroupPowers, HandoverEndReason, MembershipEvent, PowerOverrides, ViewTable } from '../types.js';
import type { FarmMessage, HoldingsReport, TableSnapshot } from './messages.js';

/** A CPG process: corosync's node id and the process id. */
export interface Proc {
  nodeid: number;
  pid: number;
}

/** CPG's reasons for a member leaving (cpg_reason_t). */
export const CPG_REASON = { JOIN: 1, LEAVE: 2, NODEDOWN: 3, NODEUP: 4, PROCDOWN: 5 } as const;

export function procKey(p: Proc): string {
  return `${p.nodeid}:${p.pid}`;
}

export interface CpgFarmOptions {
  self: string;
  /** This process in the CPG group. */
  selfProc: Proc;
  /** cluster.xml's nodes, in file order (node ids of the data plane and of table rows). */
  nodes: readonly string[];
  groups: readonly GroupPowers[];
  configDigest: string;
  /** Connection-preserving moves (<farmlb handover_limit> > 0). */
  handover: boolean;
  /** Corosync node id → node name (the running corosync's nodelist, checked against cluster.xml). */
  nodeName: (nodeid: number) => string | undefined;
  powerOverrides?: PowerOverrides;
}

/** What one member is known to be, by every member alike. */
export interface MemberFacts {
  proc: string;
  nodeid: number;
  pid: number;
  /** Its node name; null when corosync's node id maps to no node of ours. */
  node: string | null;
  /** Why it takes no part (another key, an unknown node, a second process of one node), or null. */
  foreign: string | null;
  digest: string | null;
  ok: boolean;
  cause: string;
  /** The highest epoch whose table it has applied. */
  applied: number;
  holdings: HoldingsReport | null;
  /** Its latest beat's seq (0: none yet). */
  lastSeq: number;
  /** Suspected after this beat: hung, its lease run out; cleared by any later beat. */
  suspected: number | null;
  /** Its config digest is not the farm's: it serves nothing once it applied this epoch (it says so in its beats). */
  mismatchEpoch: number | null;
}

interface Replicated {
  epoch: number;
  owners: Owners[];
  prev: Owners[];
  /** Per group and bucket: 0, or the epoch every serving member must have applied before the bucket is given out. */
  fence: number[][];
  /** Per group and bucket: 0, or the epoch whose table made `prev` its previous owner. */
  hoStart: number[][];
  powers: PowerOverrides;
}

interface Round {
  view: string;
  syncs: Map<string, Extract<FarmMessage, { t: 'sync' }> | 'excluded'>;
  /** Messages delivered during the round, applied after the merge. */
  buffered: { proc: string; msg: FarmMessage }[];
}

/** A bucket whose owner or previous owner left the group (the caller holds it back for that node's lease). */
export interface GoneBucket {
  group: number;
  bucket: number;
  node: string;
  role: 'owner' | 'prev';
}

export interface FarmStep {
  /** The table changed: a new epoch to apply. */
  table?: ViewTable;
  events: MembershipEvent[];
  /** To multicast, in order. */
  send: FarmMessage[];
  gone: GoneBucket[];
}

/** The local facts a sync reports (this member's own). */
export interface LocalFacts {
  ok: boolean;
  cause: string;
  applied: number;
  holdings?: HoldingsReport;
}

export function viewKey(members: readonly Proc[]): string {
  return members.map(procKey).sort().join(',');
}

export class CpgFarm {
  private members: Proc[] = [];
  private readonly facts = new Map<string, MemberFacts>();
  /**
   * Latest beat seq per member process delivered since the last configuration change that
   * brought members in (0: none since), followed in and out of rounds: what a suspicion names.
   * Counted from that change, not from this member's start, so that a member that just
   * joined judges a suspicion exactly as the others do.
   */
  private readonly lastSeq = new Map<string, number>();
  private state: Replicated | null = null;
  private round: Round | null = null;
  private referenceDigest: string | null = null;
  /** Epoch of the table published when the last round merged (0: none yet). */
  private mergedAt = 0;
  private mergedView = '';
  private readonly selfKey: string;

  constructor(private readonly opts: CpgFarmOptions) {
    this.selfKey = procKey(opts.selfProc);
    this.localPowers = opts.powerOverrides ?? NO_OVERRIDES;
  }

  /** Powers this member brings to its first sync (powers.json), until it has the farm's. */
  private localPowers: PowerOverrides;

  // ---- inputs ---------------------------------------------------------------------------

  /** A CPG configuration change; `local` is this member's own facts, for its sync. */
  confchg(members: readonly Proc[], left: readonly (Proc & { reason: number })[], joined: readonly Proc[], local: LocalFacts): FarmStep {
    const out: FarmStep = { events: [], send: [], gone: [] };
    this.members = [...members];
    for (const l of left) {
      const f = this.facts.get(procKey(l));
      this.facts.delete(procKey(l));
      this.lastSeq.delete(procKey(l));
      if (f?.node) out.events.push({ type: 'peer_lost', node: f.node, detectionMs: 0 });
      this.round?.syncs.delete(procKey(l));
    }
    for (const j of joined) {
      const name = this.opts.nodeName(j.nodeid);
      if (procKey(j) !== this.selfKey) out.events.push({ type: 'peer_joined', node: name ?? `nodeid ${j.nodeid}`, incarnation: String(j.pid) });
    }
    // Only what every member sees alike decides whether a round starts: the joined list.
    if (joined.length > 0) {
      this.lastSeq.clear();
      const aborted = this.round;
      this.round = { view: viewKey(members), syncs: new Map(), buffered: [] };
      out.send.push(this.syncMessage(local));
      // A power change of ours cut short with its round: every member dropped it, so send it again.
      for (const b of aborted?.buffered ?? []) if (b.proc === this.selfKey && b.msg.t === 'power') out.send.push(b.msg);
    } else if (this.round) {
      this.completeIfDone(out);
    } else if (this.state) {
      const names = left.map((l) => this.opts.nodeName(l.nodeid) ?? `nodeid ${l.nodeid}`);
      this.decide(out, `${names.join(', ')} left`);
    }
    return out;
  }

  /** A delivered message (or why it was refused: every member refuses the same). */
  deliver(from: Proc, decoded: { ok: true; msg: FarmMessage } | { ok: false; reason: string; foreignKey?: boolean }): FarmStep {
    const out: FarmStep = { events: [], send: [], gone: [] };
    const key = procKey(from);
    if (!this.members.some((m) => procKey(m) === key)) return out;
    if (!decoded.ok) {
      out.events.push({ type: 'rejected', from: this.opts.nodeName(from.nodeid) ?? `nodeid ${from.nodeid}`, reason: decoded.reason });
      if (!decoded.foreignKey) return out;
      // Another key: that process is not of this farm. It counts as having answered the round.
      const f = this.facts.get(key);
      if (f && f.foreign === null) {
        f.foreign = decoded.reason;
        if (!this.round) this.decide(out, `${f.node ?? key} uses another key`);
      }
      if (this.round && !this.round.syncs.has(key)) {
        this.round.syncs.set(key, 'excluded');
        this.completeIfDone(out);
      }
      return out;
    }
    const msg = decoded.msg;
    // Liveness is followed at once, in and out of rounds: a suspicion names the last beat seen.
    if (msg.t === 'beat') {
      this.lastSeq.set(key, Math.max(this.lastSeq.get(key) ?? 0, msg.seq));
      const facts = this.facts.get(key);
      if (facts) facts.lastSeq = this.lastSeq.get(key)!;
    }
    if (this.round) {
      const r = this.round;
      if (msg.t === 'sync') {
        if (msg.view === r.view && !r.syncs.has(key)) {
          r.syncs.set(key, msg);
          this.completeIfDone(out);
        }
        return out;
      }
      if (msg.t === 'suspect') {
        // A member silent during the round (hung) would hold it forever: once suspected
        // (its lease is out), it counts as having answered.
        const target = this.members.find((m) => procKey(m) === msg.proc);
        if (target && !r.syncs.has(msg.proc) && (this.lastSeq.get(msg.proc) ?? 0) === msg.seq) {
          r.syncs.set(msg.proc, 'excluded');
          this.completeIfDone(out);
        }
        return out;
      }
      if (msg.t === 'limit') return out; // raised again by the timers once the round is over
      r.buffered.push({ proc: key, msg });
      return out;
    }
    if (msg.t === 'sync') return out; // a late answer to a round already merged
    if (this.applyMessage(key, msg, out)) this.decide(out, this.causeOf(key, msg));
    return out;
  }

  // ---- queries -----------------------------------------------------------------------

  /** Has this member the farm's state (a merged round behind it)? */
  hasState(): boolean {
    return this.state !== null;
  }

  /** Epoch of the table published by the last merge: members that applied it (or later) serve one farm's tables. */
  lastMergeEpoch(): number {
    return this.mergedAt;
  }

  /** The configuration (viewKey) of the last merge. */
  lastMergeView(): string {
    return this.mergedView;
  }

  syncing(): boolean {
    return this.round !== null;
  }

  /** The latest beat seq delivered from a member since the last joining change (0: none): what a suspicion of it must name. */
  lastSeqOf(proc: string): number {
    return this.lastSeq.get(proc) ?? 0;
  }

  factsOf(proc: string): MemberFacts | undefined {
    return this.facts.get(proc);
  }

  allFacts(): MemberFacts[] {
    return [...this.facts.values()];
  }

  memberProcs(): Proc[] {
    return [...this.members];
  }

  reference(): string | null {
    return this.referenceDigest;
  }

  /** Why this member may not serve, or undefined when it may (by the farm's state). */
  selfProblem(): string | undefined {
    if (!this.state) return this.round ? 'joining the farm: waiting for the members\' state' : 'not in the CPG group';
    const f = this.facts.get(this.selfKey);
    if (!f) return 'not in the CPG group';
    if (f.foreign) return f.foreign;
    if (f.mismatchEpoch !== null) return `the configuration differs from the farm's (config digest ${(f.digest ?? '').slice(0, 12)} ≠ ${(this.referenceDigest ?? '').slice(0, 12)})`;
    if (f.suspected !== null) return 'suspected by the farm (silent longer than its lease): rejoining';
    if (!f.ok) return f.cause || 'WAIT';
    return undefined;
  }

  powers(): PowerOverrides {
    return this.state?.powers ?? this.localPowers;
  }

  /** The replicated table (no local holds), or undefined before the first merge. */
  table(): ViewTable | undefined {
    return this.state ? this.viewTable(this.state) : undefined;
  }

  /** Epoch of the handovers to end for handover_limit: [group, bucket, started epoch] of every bucket in handover. */
  handovers(): { group: number; bucket: number; since: number }[] {
    const s = this.state;
    if (!s) return [];
    const out: { group: number; bucket: number; since: number }[] = [];
    s.prev.forEach((row, g) => row.forEach((p, b) => { if (p !== null) out.push({ group: g, bucket: b, since: s.hoStart[g]![b]! }); }));
    return out;
  }

  /** Names of the members that may be given buckets, in cluster.xml order. */
  eligibleNames(): string[] {
    const names = new Set<string>();
    for (const m of this.members) {
      const f = this.facts.get(procKey(m));
      if (f && this.eligible(f)) names.add(f.node!);
    }
    return this.opts.nodes.filter((n) => names.has(n));
  }

  // ---- the round ------------------------------------------------------------------------

  private syncMessage(local: LocalFacts): Extract<FarmMessage, { t: 'sync' }> {
    const s = this.state;
    return {
      t: 'sync',
      view: this.round!.view,
      node: this.opts.self,
      digest: this.opts.configDigest,
      ok: local.ok,
      cause: local.cause,
      applied: local.applied,
      ...(local.holdings ? { holdings: local.holdings } : {}),
      powers: this.powers(),
      state: s ? {
        epoch: s.epoch,
        owners: encodeRows(s.owners, this.opts.nodes),
        prev: encodeRows(s.prev, this.opts.nodes),
        fence: sparse(s.fence),
        handover: sparse(s.hoStart),
      } : null,
    };
  }

  private completeIfDone(out: FarmStep): void {
    const r = this.round;
    if (!r || !this.members.every((m) => r.syncs.has(procKey(m)))) return;
    this.round = null;
    this.merge(r, out);
    for (const b of r.buffered) this.applyMessage(b.proc, b.msg, out);
    this.decide(out, 'members synchronised', true);
    this.mergedAt = this.state!.epoch;
    this.mergedView = r.view;
  }

  /** The merged state of a round: the same on every member (same syncs, same order). */
  private merge(r: Round, out: FarmStep): void {
    const previous = new Map(this.facts);
    this.facts.clear();
    const seenNames = new Set<string>();
    const synced: { proc: string; f: MemberFacts; sync: Extract<FarmMessage, { t: 'sync' }> }[] = [];
    for (const m of this.members) {
      const key = procKey(m);
      const sync = r.syncs.get(key);
      const node = this.opts.nodeName(m.nodeid) ?? null;
      const before = previous.get(key);
      const f: MemberFacts = {
        proc: key, nodeid: m.nodeid, pid: m.pid, node, foreign: null, digest: null, ok: false, cause: 'no state received',
        applied: 0, holdings: null, lastSeq: this.lastSeq.get(key) ?? 0, suspected: null, mismatchEpoch: null,
      };
      if (sync === undefined || sync === 'excluded') {
        f.foreign = before?.foreign ?? null;
        // Silent through the round: suspected (its lease is out) until it beats again.
        if (f.foreign === null) f.suspected = f.lastSeq;
      } else if (node === null) {
        f.foreign = `corosync node id ${m.nodeid} is no node of cluster.xml`;
      } else if (sync.node !== node) {
        f.foreign = `calls itself ${sync.node} but corosync node id ${m.nodeid} is ${node}`;
      } else if (seenNames.has(node)) {
        f.foreign = `a second process of ${node} in the group`;
      } else {
        seenNames.add(node);
        Object.assign(f, { digest: sync.digest, ok: sync.ok, cause: sync.cause, applied: sync.applied, holdings: sync.holdings ?? null });
        synced.push({ proc: key, f, sync });
      }
      this.facts.set(key, f);
    }

    // The reference digest: the one most members hold; a tie goes to the smallest node name's.
    const counts = new Map<string, number>();
    for (const s of synced) counts.set(s.sync.digest, (counts.get(s.sync.digest) ?? 0) + 1);
    let ref: string | null = null;
    let refCount = 0;
    // In name order, a digest replaces the choice only with more holders: a tie keeps the smallest name's.
    for (const s of [...synced].sort((a, b) => (a.f.node! < b.f.node! ? -1 : 1))) {
      const c = counts.get(s.sync.digest)!;
      if (c > refCount) {
        ref = s.sync.digest;
        refCount = c;
      }
    }
    this.referenceDigest = ref;

    // The merged table is published as `epoch` (the decision that follows the merge): above
    // every epoch any member reports, so no member has applied it yet.
    const epochs = synced.flatMap((s) => [s.sync.applied, s.sync.state?.epoch ?? 0]);
    const current = Math.max(0, ...epochs);
    const epoch = current + 1;
    const ours = synced.filter((s) => s.sync.digest === ref);
    for (const s of synced) {
      if (s.sync.digest !== ref) {
        s.f.mismatchEpoch = epoch;
        out.events.push({ type: 'config_mismatch', node: s.f.node!, ours: this.opts.configDigest, theirs: s.sync.digest, reference: ref ?? '' });
      }
    }

    // Powers: the newest valid set any member brings.
    let powers: PowerOverrides = NO_OVERRIDES;
    for (const s of ours) {
      if (overridesProblem(s.sync.powers, this.opts.nodes, this.opts.groups) === undefined && overridesNewer(s.sync.powers, powers)) powers = s.sync.powers;
    }

    // Tables: one per side (members that came from one configuration report the same).
    const sides = new Map<string, { snap: TableSnapshot; names: string[] }>();
    let uninterpretable = false;
    for (const s of synced) {
      if (!s.sync.state) continue;
      if (s.sync.digest !== ref) {
        uninterpretable = true; // another configuration: its rows name other nodes
        continue;
      }
      const k = JSON.stringify(s.sync.state);
      const side = sides.get(k) ?? { snap: s.sync.state, names: [] };
      side.names.push(s.f.node!);
      sides.set(k, side);
    }
    const ordered = [...sides.values()].sort((a, b) => b.names.length - a.names.length || (minName(a.names) < minName(b.names) ? -1 : 1));
    const g = this.opts.groups.length;
    const next: Replicated = {
      epoch: current,
      owners: emptyRows(g),
      prev: emptyRows(g),
      fence: zeros(g),
      hoStart: zeros(g),
      powers,
    };
    const base = ordered[0];
    if (base) {
      next.owners = decodeRows(base.snap.owners, this.opts.nodes) ?? emptyRows(g);
      next.prev = decodeRows(base.snap.prev, this.opts.nodes) ?? emptyRows(g);
      for (const [gi, b, e] of base.snap.fence) if (gi < g) next.fence[gi]![b] = e;
      for (const [gi, b, e] of base.snap.handover) if (gi < g) next.hoStart[gi]![b] = e;
      const healing = ordered.length > 1 || uninterpretable;
      if (healing) {
        // Members of other sides applied tables of another numbering: every fence and
        // handover restarts under this epoch, which every member applies anew.
        for (let gi = 0; gi < g; gi++) for (let b = 0; b < NBUCKETS; b++) {
          if (next.fence[gi]![b]! > 0) next.fence[gi]![b] = epoch;
          if (next.hoStart[gi]![b]! > 0) next.hoStart[gi]![b] = epoch;
        }
      }
      for (const other of ordered.slice(1)) {
        const owners = decodeRows(other.snap.owners, this.opts.nodes) ?? emptyRows(g);
        const prev = decodeRows(other.snap.prev, this.opts.nodes) ?? emptyRows(g);
        for (let gi = 0; gi < g; gi++) for (let b = 0; b < NBUCKETS; b++) {
          const claimed = owners[gi]![b] ?? prev[gi]![b] ?? null;
          const agrees = owners[gi]![b] === next.owners[gi]![b] && (prev[gi]![b] ?? null) === (next.prev[gi]![b] ?? null);
          if (claimed !== null && !agrees) this.contest(next, gi, b, epoch, out, 'moved');
        }
      }
      if (uninterpretable) {
        // A member of another configuration may serve any bucket until it applied this epoch.
        for (let gi = 0; gi < g; gi++) for (let b = 0; b < NBUCKETS; b++) this.contest(next, gi, b, epoch, out, 'moved');
      }
    }
    this.state = next;
  }

  /**
   * Two sides claim bucket b: nobody owns it until every member applied `epoch`. With
   * handover on, the base side's owner becomes its previous owner and keeps its connections
   * (it gets the bucket back when the quotas say so: 'returned').
   */
  private contest(s: Replicated, g: number, b: number, epoch: number, out: FarmStep, reason: HandoverEndReason): void {
    const owner = s.owners[g]![b] ?? null;
    const p = s.prev[g]![b] ?? null;
    const keep = this.opts.handover ? owner ?? p : null;
    if (p !== null && p !== keep) this.ended(out, g, p, [b], reason);
    s.owners[g]![b] = null;
    s.prev[g]![b] = keep;
    s.hoStart[g]![b] = keep !== null ? epoch : 0;
    s.fence[g]![b] = epoch;
  }

  // ---- messages ---------------------------------------------------------------------------

  /** Applies one message to the state; true when a decision may follow. */
  private applyMessage(key: string, msg: FarmMessage, out: FarmStep): boolean {
    const f = this.facts.get(key);
    if (!f || f.foreign) return false;
    const s = this.state;
    switch (msg.t) {
      case 'beat': {
        const before = f.applied;
        f.applied = Math.max(f.applied, msg.applied);
        if (f.suspected !== null && msg.seq > f.suspected) {
          f.suspected = null;
          return true;
        }
        return f.applied !== before;
      }
      case 'health': {
        if (f.ok === msg.ok && f.cause === msg.cause && f.digest === msg.digest) return false;
        f.ok = msg.ok;
        f.cause = msg.cause;
        if (f.digest !== msg.digest) {
          f.digest = msg.digest;
          // A member out of the last round (it was silent) tells its digest this way.
          f.mismatchEpoch = msg.digest === this.referenceDigest ? null : (s?.epoch ?? 0) + 1;
        }
        return true;
      }
      case 'holdings':
        f.holdings = { epoch: msg.epoch, held: msg.held, connections: msg.connections };
        return true;
      case 'suspect': {
        const t = this.facts.get(msg.proc);
        if (!t || t.suspected !== null || (this.lastSeq.get(msg.proc) ?? 0) !== msg.seq) return false;
        t.suspected = msg.seq;
        if (t.node) out.events.push({ type: 'peer_lost', node: t.node, detectionMs: 0 });
        return true;
      }
      case 'limit': {
        if (!s) return false;
        let changed = false;
        s.prev.forEach((row, g) => {
          const ended = new Map<string, number[]>();
          row.forEach((p, b) => {
            const since = s.hoStart[g]![b]!;
            if (p !== null && since > 0 && since <= msg.epoch && s.owners[g]![b] !== null) {
              row[b] = null;
              s.hoStart[g]![b] = 0;
              ended.set(p, [...(ended.get(p) ?? []), b]);
              changed = true;
            }
          });
          for (const [p, buckets] of ended) this.ended(out, g, p, buckets, 'limit');
        });
        return changed;
      }
      case 'power': {
        if (!s || f.digest !== this.referenceDigest || f.mismatchEpoch !== null || !f.node) return false;
        try {
          checkPowerChange(this.opts.groups, this.opts.nodes, msg.node, msg.power ?? undefined, msg.group ?? undefined);
        } catch {
          out.events.push({ type: 'rejected', from: f.node, reason: `power change for ${msg.node} does not fit the configuration` });
          return false;
        }
        // As with the built-in engine: a whole-node change (group null) replaces the node's
        // per-group entries, a cleared whole node drops them all.
        const entries = s.powers.entries.filter((e) => !(e.node === msg.node && (msg.group === null || e.group === msg.group)));
        if (msg.power !== null) entries.push({ node: msg.node, group: msg.group, power: msg.power });
        s.powers = { version: s.powers.version + 1, origin: f.node, entries };
        out.events.push({ type: 'powers', overrides: s.powers, origin: key === this.selfKey ? 'local' : 'peer' });
        return true;
      }
      case 'sync':
        return false;
    }
  }

  private causeOf(key: string, msg: FarmMessage): string {
    const name = this.facts.get(key)?.node ?? key;
    switch (msg.t) {
      case 'health': return msg.ok ? `${name} UP` : `${name} WAIT: ${msg.cause}`;
      case 'power': return `power of ${msg.node} ${msg.power === null ? 'cleared' : `set to ${msg.power}`} by ${name}`;
      case 'suspect': return `${this.facts.get(msg.proc)?.node ?? msg.proc} silent longer than its lease`;
      case 'beat': return `${name} applied epoch ${msg.applied}`;
      case 'holdings': return `${name} reports its connections`;
      case 'limit': return 'handover_limit reached';
      default: return msg.t;
    }
  }

  // ---- the decision ---------------------------------------------------------------------

  private eligible(f: MemberFacts): boolean {
    return f.node !== null && f.foreign === null && f.digest === this.referenceDigest && f.mismatchEpoch === null && f.ok && f.suspected === null;
  }

  /**
   * Has every member that may serve applied `epoch`? Members in WAIT revoked their lease
   * before saying so, suspected ones are silent longer than a lease, and a member of another
   * configuration only has to show it applied the epoch it was found out at (it serves
   * nothing from then on).
   */
  private allApplied(epoch: number): boolean {
    for (const m of this.members) {
      const f = this.facts.get(procKey(m));
      if (!f || f.foreign || f.suspected !== null) continue;
      if (f.mismatchEpoch !== null) {
        if (f.applied < f.mismatchEpoch) return false;
        continue;
      }
      if (!f.ok) continue;
      if (f.applied < epoch) return false;
    }
    return true;
  }

  /** The table every member computes at this point of the stream. */
  private decide(out: FarmStep, cause: string, force = false): void {
    const s = this.state;
    if (!s) return;
    const nextEpoch = s.epoch + 1;
    const before = s.owners.map((r) => [...r]);
    const live = new Map<string, MemberFacts>();
    for (const m of this.members) {
      const f = this.facts.get(procKey(m));
      if (f?.node && !f.foreign) live.set(f.node, f);
    }
    const eligible = new Set([...live.values()].filter((f) => this.eligible(f)).map((f) => f.node!));
    const powers = effectivePowers(this.opts.groups, s.powers);
    let changed = force;
    const started = new Map<string, { g: number; from: string; to: string | null; buckets: number[] }>();

    s.owners.forEach((owners, g) => {
      const prev = s.prev[g]!;
      const fence = s.fence[g]!;
      const hoStart = s.hoStart[g]!;
      const ended = new Map<string, { reason: HandoverEndReason; buckets: number[] }[]>();
      const end = (p: string, b: number, reason: HandoverEndReason) => {
        const list = ended.get(p) ?? [];
        const e = list.find((x) => x.reason === reason);
        if (e) e.buckets.push(b);
        else list.push({ reason, buckets: [b] });
        ended.set(p, list);
        prev[b] = null;
        hoStart[b] = 0;
        changed = true;
      };
      // Who may no longer hold what.
      for (let b = 0; b < NBUCKETS; b++) {
        const o = owners[b] ?? null;
        if (o !== null && !eligible.has(o)) {
          const f = live.get(o);
          owners[b] = null;
          changed = true;
          if (!f) out.gone.push({ group: g, bucket: b, node: o, role: 'owner' });
          // Still in the group with another configuration: it may serve until it applied the change.
          else if (f.mismatchEpoch !== null) fence[b] = Math.max(fence[b]!, nextEpoch);
        }
        const p = prev[b] ?? null;
        if (p !== null) {
          const f = live.get(p);
          if (!f) {
            out.gone.push({ group: g, bucket: b, node: p, role: 'prev' });
            end(p, b, 'prev_lost');
          } else if (!f.ok || f.suspected !== null || (f.mismatchEpoch !== null && f.applied >= f.mismatchEpoch)) {
            end(p, b, 'prev_lost');
          }
        }
      }
      const target = rebalance(owners, powers[g]!, eligible);
      for (let b = 0; b < NBUCKETS; b++) {
        const o = owners[b] ?? null;
        const t = target[b] ?? null;
        const p = prev[b] ?? null;
        if (o === t) {
          // Step 3: the previous owner reported no connection left in it under its handover's table.
          if (o !== null && p !== null) {
            const h = live.get(p)?.holdings;
            const held = h?.held[g];
            if (h && held !== undefined && hoStart[b]! > 0 && h.epoch >= hoStart[b]! && !bitmapHas(held, b)) end(p, b, 'drained');
          }
          continue;
        }
        if (o === null) {
          // Step 2: given out once every member that may serve applied the table that freed it.
          if (fence[b]! > 0 && !this.allApplied(fence[b]!)) continue;
          owners[b] = t;
          fence[b] = 0;
          changed = true;
          if (p !== null && p === t) end(p, b, 'returned');
          else if (p !== null) {
            const k = `${g}\0${p}\0${t}`;
            const st = started.get(k) ?? { g, from: p, to: t, buckets: [] };
            st.buckets.push(b);
            started.set(k, st);
          }
          continue;
        }
        // Step 1: a live owner gives it up; nobody takes it until it has applied that.
        owners[b] = null;
        fence[b] = nextEpoch;
        changed = true;
        if (this.opts.handover) {
          if (p !== null && p !== o) end(p, b, 'moved');
          prev[b] = o;
          hoStart[b] = nextEpoch;
          const k = `${g}\0${o}\0`;
          const st = started.get(k) ?? { g, from: o, to: null, buckets: [] };
          st.buckets.push(b);
          started.set(k, st);
        }
      }
      for (const [p, list] of ended) for (const e of list) this.ended(out, g, p, e.buckets, e.reason);
    });
    for (const st of started.values()) {
      out.events.push({ type: 'handover_started', group: this.opts.groups[st.g]!.name, from: st.from, to: st.to, buckets: st.buckets });
    }
    if (!changed) return;
    s.epoch = nextEpoch;
    out.table = this.viewTable(s);
    const self = this.opts.self;
    let moved = 0;
    let gained = 0;
    let lost = 0;
    s.owners.forEach((row, g) => row.forEach((o, b) => {
      const was = before[g]![b];
      if (o === was) return;
      moved++;
      if (o === self) gained++;
      if (was === self) lost++;
    }));
    out.events.push({ type: 'view', epoch: s.epoch, leader: null, view: out.table.view, cause, moved, gained, lost });
  }

  private ended(out: FarmStep, g: number, from: string, buckets: number[], reason: HandoverEndReason): void {
    out.events.push({ type: 'handover_ended', group: this.opts.groups[g]!.name, from, buckets, reason });
  }

  private viewTable(s: Replicated): ViewTable {
    const groups = s.owners.map((r) => [...r]);
    const prev = s.prev.map((r) => [...r]);
    return { epoch: s.epoch, leader: null, view: this.eligibleNames(), groups, prev, digest: tableDigest(groups, prev) };
  }
}

function zeros(groups: number): number[][] {
  return Array.from({ length: groups }, () => new Array<number>(NBUCKETS).fill(0));
}

function sparse(rows: number[][]): [number, number, number][] {
  const out: [number, number, number][] = [];
  rows.forEach((row, g) => row.forEach((e, b) => { if (e > 0) out.push([g, b, e]); }));
  return out;
}

function minName(names: string[]): string {
  return names.reduce((a, b) => (b < a ? b : a));
}
