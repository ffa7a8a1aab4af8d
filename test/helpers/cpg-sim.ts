// A model of Corosync CPG for the CpgFarm tests: extended virtual synchrony, made small. Every
// configuration (a "ring") has one total order of events — configuration changes and agreed
// messages — and each member works through the events addressed to it at its own pace, as
// real members do; a member applies the tables it computed later still, and only then
// reports the epoch in a beat. A random scheduler interleaves all of that, and after every
// step the sampler's invariant is checked: among the members of a ring, no bucket is served
// by two (owner twice, or an owner taking every packet while another holds connections as
// previous owner). A member serves what its applied table gives it while its lease holds:
// renewed when it delivers its own beat and the farm lets it serve, revoked at once when it
// goes WAIT or finds itself out (as corosync-membership.ts does).

import { CpgFarm, CPG_REASON, procKey, type Proc } from '../../src/membership/corosync/cpg-farm.js';
import type { FarmMessage } from '../../src/membership/corosync/messages.js';
import type { GroupPowers, ViewTable } from '../../src/membership/types.js';

type ConfEvent = { kind: 'confchg'; members: Proc[]; left: (Proc & { reason: number })[]; joined: Proc[] };
type MsgEvent = { kind: 'msg'; from: Proc; msg: FarmMessage };
type Event = ConfEvent | MsgEvent;

export interface SimMember {
  name: string;
  proc: Proc;
  farm: CpgFarm;
  ring: number;
  ok: boolean;
  applied: number;
  appliedTable: ViewTable | null;
  pending: ViewTable[];
  seq: number;
  lease: boolean;
  paused: boolean;
  alive: boolean;
  /** Index into the log of the next event to look at. */
  cursor: number;
  /** The ring of the last configuration change it processed. */
  viewRing: number;
  /** A correcting health message of its own is on its way. */
  correcting: boolean;
  /** It reported no connection left in the buckets it hands over (holdings): as previous owner it serves nothing. */
  drained: boolean;
  digest: string;
}

export interface CpgSimOptions {
  nodes: string[];
  powers: Record<string, number>;
  handover?: boolean;
  seed?: number;
}

export class CpgSim {
  readonly log: { to: Set<string>; ring: number; ev: Event | Map<string, ConfEvent> }[] = [];
  readonly members = new Map<string, SimMember>();
  private nextPid = 1000;
  private rng: () => number;
  readonly groups: GroupPowers[];
  violations: string[] = [];
  /** Rings made by heal(): their members served two sides' tables until their merge. */
  private readonly healed = new Set<number>();

  constructor(private readonly opts: CpgSimOptions) {
    let s = opts.seed ?? 1;
    this.rng = () => {
      s = (s * 1103515245 + 12345) & 0x7fffffff;
      return s / 0x7fffffff;
    };
    this.groups = [{ name: 'web', powers: new Map(Object.entries(opts.powers)) }];
  }

  private nodeid(name: string): number {
    return this.opts.nodes.indexOf(name) + 1;
  }

  ringMembers(ring: number): SimMember[] {
    return [...this.members.values()].filter((m) => m.alive && m.ring === ring);
  }

  member(name: string): SimMember {
    const m = [...this.members.values()].find((x) => x.name === name && x.alive);
    if (!m) throw new Error(`no live member ${name}`);
    return m;
  }

  /** A daemon starts on `name` and joins the group of ring `ring`. */
  start(name: string, opts: { ring?: number; digest?: string } = {}): SimMember {
    const proc = { nodeid: this.nodeid(name), pid: this.nextPid++ };
    const digest = opts.digest ?? 'digest-A';
    const m: SimMember = {
      name, proc, ring: opts.ring ?? [...this.members.values()].find((x) => x.alive)?.ring ?? 0, ok: true, applied: 0, appliedTable: null, pending: [], seq: 0, lease: false,
      paused: false, alive: true, cursor: this.log.length, digest, correcting: false, drained: false, viewRing: -1,
      farm: new CpgFarm({
        self: name, selfProc: proc, nodes: this.opts.nodes, groups: this.groups, configDigest: digest,
        handover: this.opts.handover ?? true, nodeName: (id) => this.opts.nodes[id - 1],
      }),
    };
    this.members.set(procKey(proc), m);
    const ring = this.ringMembers(m.ring);
    this.append(ring, { kind: 'confchg', members: ring.map((x) => x.proc), left: [], joined: [proc] });
    return m;
  }

  /** The daemon of `name` dies (PROCDOWN) or leaves (LEAVE). */
  kill(name: string, reason: number = CPG_REASON.PROCDOWN): void {
    const m = this.member(name);
    m.alive = false;
    const ring = this.ringMembers(m.ring);
    this.append(ring, { kind: 'confchg', members: ring.map((x) => x.proc), left: [{ ...m.proc, reason }], joined: [] });
  }

  /** The ring splits: each side becomes a ring of its own (the others left with NODEDOWN). */
  partition(sides: string[][]): void {
    sides.forEach((side, i) => {
      const ms = side.map((n) => this.member(n));
      for (const m of ms) m.ring = 100 + i + this.log.length;
    });
    const rings = new Set(sides.map((side) => this.member(side[0]!).ring));
    for (const ring of rings) {
      const ms = this.ringMembers(ring);
      const left = [...this.members.values()].filter((x) => x.alive && x.ring !== ring).map((x) => ({ ...x.proc, reason: CPG_REASON.NODEDOWN }));
      this.append(ms, { kind: 'confchg', members: ms.map((x) => x.proc), left, joined: [] });
    }
  }

  /** Every live member in one ring again: each hears the others join (NODEUP). */
  heal(): void {
    const all = [...this.members.values()].filter((x) => x.alive);
    const before = new Map(all.map((m) => [procKey(m.proc), m.ring]));
    const ring = 1_000_000 + this.log.length;
    for (const m of all) m.ring = ring;
    this.healed.add(ring);
    const perMember = new Map<string, ConfEvent>();
    for (const m of all) {
      const mine = before.get(procKey(m.proc));
      const joined = all.filter((x) => before.get(procKey(x.proc)) !== mine).map((x) => x.proc);
      perMember.set(procKey(m.proc), { kind: 'confchg', members: all.map((x) => x.proc), left: [], joined });
    }
    this.log.push({ to: new Set(all.map((m) => procKey(m.proc))), ring, ev: perMember });
  }

  private append(to: SimMember[], ev: Event): void {
    this.log.push({ to: new Set(to.map((m) => procKey(m.proc))), ring: to[0]?.ring ?? -1, ev });
  }

  mcast(from: SimMember, msg: FarmMessage): void {
    this.append(this.ringMembers(from.ring), { kind: 'msg', from: from.proc, msg });
  }

  setHealth(name: string, ok: boolean): void {
    const m = this.member(name);
    m.ok = ok;
    // WAIT revokes before it is said (corosync-membership.ts).
    if (!ok) m.lease = false;
    this.mcast(m, { t: 'health', ok, cause: ok ? '' : 'check failed', digest: m.digest });
  }

  setPower(name: string, node: string, power: number | null): void {
    this.mcast(this.member(name), { t: 'power', node, group: null, power });
  }

  beat(m: SimMember): void {
    this.mcast(m, { t: 'beat', seq: ++m.seq, at: '0', applied: m.applied });
  }

  // ---- stepping ---------------------------------------------------------------------------

  private nextEvent(m: SimMember): number {
    const key = procKey(m.proc);
    for (let i = m.cursor; i < this.log.length; i++) if (this.log[i]!.to.has(key)) return i;
    return -1;
  }

  /** Processes the next event addressed to m; false when there is none. */
  deliverOne(m: SimMember): boolean {
    const i = this.nextEvent(m);
    if (i < 0) return false;
    m.cursor = i + 1;
    const entry = this.log[i]!;
    const ev = entry.ev instanceof Map ? entry.ev.get(procKey(m.proc))! : entry.ev;
    if (ev.kind === 'confchg') m.viewRing = entry.ring;
    const step = ev.kind === 'confchg'
      ? m.farm.confchg(ev.members, ev.left, ev.joined, { ok: m.ok, cause: m.ok ? '' : 'check failed', applied: m.applied })
      : m.farm.deliver(ev.from, { ok: true, msg: ev.msg });
    if (step.table) m.pending.push(step.table);
    for (const msg of step.send) this.mcast(m, msg);
    const problem = m.farm.selfProblem();
    if (problem !== undefined) m.lease = false;
    // The lease: renewed by a delivered beat of its own while the farm lets it serve.
    if (ev.kind === 'msg' && procKey(ev.from) === procKey(m.proc) && ev.msg.t === 'beat' && problem === undefined && m.ok) m.lease = true;
    // A member out of date in the farm's facts says so (corosync-membership.ts does the same).
    if (ev.kind === 'msg' && procKey(ev.from) === procKey(m.proc) && ev.msg.t === 'health') m.correcting = false;
    const f = m.farm.factsOf(procKey(m.proc));
    if (f && !m.correcting && !m.farm.syncing() && m.farm.hasState() && f.foreign === null && (f.digest !== m.digest || f.ok !== m.ok)) {
      m.correcting = true;
      this.mcast(m, { t: 'health', ok: m.ok, cause: m.ok ? '' : 'check failed', digest: m.digest });
    }
    return true;
  }

  applyOne(m: SimMember): boolean {
    const t = m.pending.shift();
    if (!t) return false;
    m.appliedTable = t;
    m.applied = t.epoch;
    this.beat(m);
    return true;
  }

  /** Random interleaving until nothing is left to do (bounded); checks the invariant after every step. */
  run(maxSteps = 200_000): number {
    let steps = 0;
    for (; steps < maxSteps; steps++) {
      const active = [...this.members.values()].filter((m) => m.alive && !m.paused && (this.nextEvent(m) >= 0 || m.pending.length > 0));
      if (active.length === 0) return steps;
      const m = active[Math.floor(this.rng() * active.length)]!;
      if (m.pending.length > 0 && (this.nextEvent(m) < 0 || this.rng() < 0.4)) this.applyOne(m);
      else this.deliverOne(m);
      this.check();
    }
    throw new Error(`no quiescence after ${maxSteps} steps`);
  }

  /** Beats from every live member, then run: what the pulse does. */
  pulse(rounds = 1): void {
    for (let i = 0; i < rounds; i++) {
      for (const m of this.members.values()) if (m.alive && !m.paused) this.beat(m);
      this.run();
    }
  }

  check(): void {
    const rings = new Set([...this.members.values()].filter((m) => m.alive).map((m) => m.ring));
    for (const ring of rings) {
      // Within a ring, the members past its last merge: before it, two sides of a healed
      // partition still serve their own tables (split brain, `serve`), as on real farms.
      const members = this.ringMembers(ring);
      const merged = (m: SimMember) => !this.healed.has(ring) || (m.viewRing === ring && !m.farm.syncing() && m.applied >= m.farm.lastMergeEpoch());
      const serving = members.filter((m) => m.lease && !m.paused && m.appliedTable && merged(m));
      for (let b = 0; b < 256; b++) {
        const owners = serving.filter((m) => m.appliedTable!.groups[0]![b] === m.name);
        const prevs = serving.filter((m) => m.appliedTable!.prev[0]![b] === m.name && !m.drained);
        if (owners.length > 1) this.violations.push(`bucket ${b} owned by ${owners.map((m) => m.name).join(' and ')}`);
        const whole = owners.filter((m) => m.appliedTable!.prev[0]![b] === null);
        if (whole.length > 0 && prevs.length > 0) this.violations.push(`bucket ${b}: ${whole[0]!.name} takes every packet while ${prevs[0]!.name} holds it as previous owner`);
      }
    }
    if (this.violations.length > 20) throw new Error(this.violations.join('\n'));
  }

  /** Owner counts in each live member's applied table (all equal once converged). */
  counts(name: string): Record<string, number> {
    const t = this.member(name).appliedTable;
    const out: Record<string, number> = {};
    for (const o of t?.groups[0] ?? []) if (o !== null) out[o] = (out[o] ?? 0) + 1;
    return out;
  }

  /** Every live member of ring(name) has applied the same table (same digest and epoch). */
  agreed(names: string[]): boolean {
    const ts = names.map((n) => this.member(n).appliedTable);
    return ts.every((t) => t !== null && t.digest === ts[0]!.digest && t.epoch === ts[0]!.epoch);
  }
}
