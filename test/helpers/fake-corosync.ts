// A fake corosync for CorosyncMembership unit tests: the `corosyncOpen` seam of the native
// addon (src/addon/native.ts) served in-process, so real CorosyncMembership instances — with
// their timers, lease and session handling — run against one another under vitest's fake
// timers. What it models of CPG (extended virtual synchrony, made small): nodes in partitions
// (a ring per partition), one total order of agreed messages per ring delivered to every
// member of the ring, configuration changes at joins, leaves and ring changes (NODEDOWN /
// NODEUP), and a node whose whole host hangs (its daemon's events wait in a backlog, delivered
// in one batch when it resumes, as a dispatch after SIGCONT does). Pending messages are
// delivered before any configuration change (a message is delivered in the configuration it
// was sent in). No quorum device; votequorum says quorate when a ring holds a majority.
// A stopped corosync (SIGSTOP, stopCorosync/contCorosync) answers no call: the session's
// "open", votequorumInfo and close stay pending, its daemon's sends wait, its events wait,
// and the others drop its node from their ring.

import { CPG_REASON } from '../../src/membership/corosync/cpg-farm.js';
import type { CorosyncEvent, CorosyncRunningConfig, CorosyncSession, VotequorumInfo } from '../../src/addon/native.js';

interface Session {
  node: string;
  nodeid: number;
  pid: number;
  onEvents: (events: CorosyncEvent[]) => void;
  closed: boolean;
  /** The members of its current CPG configuration, as keys "nodeid:pid". */
  view: Set<string>;
}

export class FakeCorosync {
  private readonly sessions: Session[] = [];
  /** Per node: the ring it is in (partition index). */
  private readonly ringOf = new Map<string, number>();
  private ringSeq = 1;
  private readonly queue: { ring: number; from: Session; data: Buffer }[] = [];
  private flushScheduled = false;
  private readonly paused = new Set<string>();
  private readonly backlog = new Map<string, CorosyncEvent[]>();
  private nextPid = 100;
  /** Nodes whose corosync is stopped, with what waits for its answer. */
  private readonly stopped = new Map<string, { answers: (() => void)[]; sends: { from: Session; data: Buffer }[] }>();
  /** votequorum_getinfo calls made, per node (a probe every quarter lease). */
  readonly infoCalls = new Map<string, number>();

  constructor(readonly nodes: string[]) {
    for (const n of nodes) this.ringOf.set(n, 0);
  }

  nodeid(node: string): number {
    return this.nodes.indexOf(node) + 1;
  }

  running(self: string): CorosyncRunningConfig {
    return {
      nodes: this.nodes.map((name, i) => ({ nodeid: i + 1, name, ring0Addr: `10.0.0.${i + 1}` })),
      localNodePos: this.nodes.indexOf(self),
      totem: { clusterName: 'farmlb-web', transport: 'udpu', tokenMs: 300, consensusMs: 360, holdMs: 15, joinMs: 50, mergeMs: 200, downcheckMs: 1000 },
      quorum: { provider: 'corosync_votequorum' },
    };
  }

  /** The native addon's Corosync part, for the daemon of `node`. */
  native(node: string): { corosyncOpen: (group: string, onEvents: (events: CorosyncEvent[]) => void) => CorosyncSession; corosyncConfig: () => Promise<CorosyncRunningConfig> } {
    return {
      corosyncOpen: (group, onEvents) => this.open(node, group, onEvents),
      corosyncConfig: async () => this.running(node),
    };
  }

  /** A distinct pid per daemon process (CPG tells processes apart by node id and pid). */
  pid(): number {
    return this.nextPid++;
  }

  private open(node: string, group: string, onEvents: (events: CorosyncEvent[]) => void): CorosyncSession {
    const s: Session = { node, nodeid: this.nodeid(node), pid: 0, onEvents, closed: false, view: new Set() };
    // CPG names a process by node id and pid; CorosyncMembership takes its pid from opts.pid.
    s.pid = this.pidFor.get(node) ?? this.pid();
    // The session's thread connects, then corosync answers the join through a later dispatch.
    setTimeout(() => this.whenAnswering(node, () => {
      if (s.closed) return;
      s.onEvents([{ type: 'open', localNodeId: s.nodeid }]);
      if (s.closed) return;
      this.flushNow();
      this.sessions.push(s);
      this.changeConfigs([s]);
    }), 1);
    const fake = this;
    return {
      localNodeId: s.nodeid,
      group,
      mcast(data: Buffer): number {
        if (s.closed) return 9; // CS_ERR_BAD_HANDLE
        const stopped = fake.stopped.get(s.node);
        // One-way: the request waits in the ring for the stopped corosync to read it.
        if (stopped) stopped.sends.push({ from: s, data: Buffer.from(data) });
        else fake.queue.push({ ring: fake.ringOf.get(s.node)!, from: s, data: Buffer.from(data) });
        fake.scheduleFlush();
        return 1;
      },
      votequorumInfo: (): Promise<VotequorumInfo> => {
        this.infoCalls.set(node, (this.infoCalls.get(node) ?? 0) + 1);
        return new Promise((resolve) => this.whenAnswering(node, () => resolve(this.vq(s))));
      },
      close: () => {
        // Closed for the daemon at once; the leave takes corosync's answer.
        const wasClosed = s.closed;
        s.closed = true;
        return new Promise<void>((resolve) => this.whenAnswering(node, () => {
          if (!wasClosed) {
            s.closed = false;
            this.close(s, CPG_REASON.LEAVE);
          }
          resolve();
        }));
      },
    };
  }

  /** Runs `fn` now, or once the corosync of `node` answers again. */
  private whenAnswering(node: string, fn: () => void): void {
    const stopped = this.stopped.get(node);
    if (stopped) stopped.answers.push(fn);
    else fn();
  }

  /**
   * SIGSTOP of the corosync of `node`: it answers nothing (calls pend, sends wait, its daemon
   * hears nothing) and the others drop its node from their ring token + consensus later.
   */
  stopCorosync(node: string): void {
    if (this.stopped.has(node)) return;
    this.flushNow();
    this.paused.add(node);
    this.stopped.set(node, { answers: [], sends: [] });
    // The others declare its node gone once the token is lost (token) and consensus sought
    // without it (consensus), as real corosync does; until then the ring just carries nothing of it.
    const t = this.running(node).totem;
    setTimeout(() => {
      if (this.stopped.has(node)) this.partition([this.nodes.filter((n) => n !== node)]);
    }, (t.tokenMs ?? 0) + (t.consensusMs ?? 0));
  }

  /** SIGCONT: the pending calls are answered, the daemon gets what waited, its sends go out in its ring (alone until heal()). */
  contCorosync(node: string): void {
    const stopped = this.stopped.get(node);
    if (!stopped) return;
    this.stopped.delete(node);
    for (const m of stopped.sends) if (!m.from.closed) this.queue.push({ ring: this.ringOf.get(node)!, from: m.from, data: m.data });
    for (const fn of stopped.answers) fn();
    this.resume(node);
    this.scheduleFlush();
  }

  /** The pid CorosyncMembership was given (opts.pid) for the node's next session. */
  readonly pidFor = new Map<string, number>();

  private vq(s: Session): VotequorumInfo {
    const votes = this.nodes.filter((n) => this.ringOf.get(n) === this.ringOf.get(s.node)).length;
    const quorum = Math.floor(this.nodes.length / 2) + 1;
    return {
      nodeId: s.nodeid, votes: 1, expectedVotes: this.nodes.length, highestExpected: this.nodes.length, totalVotes: votes, quorum,
      quorate: votes >= quorum, twoNode: false, waitForAll: false, qdeviceRegistered: false, qdeviceAlive: false, qdeviceCastVote: false, qdeviceVotes: 0, qdeviceName: '',
    };
  }

  private close(s: Session, reason: number): void {
    if (s.closed) return;
    this.flushNow();
    s.closed = true;
    this.changeConfigs([], reason);
  }

  /** kill -9 of a daemon: its process leaves the group (PROCDOWN), its node stays in the ring. */
  killDaemon(node: string): void {
    const s = this.live(node);
    if (s) this.close(s, CPG_REASON.PROCDOWN);
  }

  /**
   * corosync killed on `node`: the others drop the node from their ring (NODEDOWN), its daemon's
   * session reports a dead descriptor. Started again (the daemon reconnects by itself), it is in
   * a ring of its own until heal().
   */
  killCorosync(node: string): void {
    const s = this.live(node);
    this.flushNow();
    if (s) s.closed = true;
    this.partition([this.nodes.filter((n) => n !== node)]);
    s?.onEvents([{ type: 'error', call: 'cpg_dispatch', cs: 2, message: 'corosync killed (test)' }]);
  }

  /** The rings: each list is one partition; nodes not named are alone. */
  partition(rings: string[][]): void {
    this.flushNow();
    const next = new Map<string, number>();
    let i = 0;
    for (const r of rings) {
      i++;
      for (const n of r) next.set(n, i);
    }
    for (const n of this.nodes) if (!next.has(n)) next.set(n, ++i);
    for (const [n, r] of next) this.ringOf.set(n, r + this.ringSeq * 100);
    this.ringSeq++;
    this.changeConfigs([], CPG_REASON.NODEDOWN);
  }

  heal(): void {
    this.partition([this.nodes]);
  }

  /** The whole host of `node` hangs (corosync and daemon): the others drop it; it hears nothing. */
  hang(node: string): void {
    this.paused.add(node);
    this.partition([this.nodes.filter((n) => n !== node)]);
  }

  /** Only the daemon of `node` stops (SIGSTOP), its corosync runs on: its events wait. */
  pauseDaemon(node: string): void {
    this.paused.add(node);
  }

  /** It resumes: what corosync has for its daemon comes in one dispatch. */
  resume(node: string): void {
    this.paused.delete(node);
    const events = this.backlog.get(node) ?? [];
    this.backlog.delete(node);
    const s = this.live(node);
    if (s && events.length > 0) s.onEvents(events);
  }

  private live(node: string): Session | undefined {
    return this.sessions.find((s) => s.node === node && !s.closed);
  }

  private key(s: Session): string {
    return `${s.nodeid}:${s.pid}`;
  }

  /**
   * Recomputes every live session's configuration and tells each its change: members that
   * left (with `leftReason`, or NODEDOWN when their node is in another ring), then those that
   * joined (`newcomers` joined the group; others came with their ring, NODEUP).
   */
  private changeConfigs(newcomers: Session[], leftReason: number = CPG_REASON.LEAVE): void {
    const live = this.sessions.filter((s) => !s.closed);
    const byKey = new Map(this.sessions.map((s) => [this.key(s), s]));
    for (const s of live) {
      const ring = this.ringOf.get(s.node);
      const members = live.filter((m) => this.ringOf.get(m.node) === ring).sort((a, b) => a.nodeid - b.nodeid);
      const now = new Set(members.map((m) => this.key(m)));
      const left = [...s.view].filter((k) => !now.has(k)).map((k) => byKey.get(k)!);
      const joined = members.filter((m) => !s.view.has(this.key(m)));
      const proc = (m: Session) => ({ nodeid: m.nodeid, pid: m.pid });
      const events: CorosyncEvent[] = [];
      if (left.length > 0) {
        const kept = members.filter((m) => s.view.has(this.key(m)));
        events.push({
          type: 'confchg', members: kept.map(proc), joined: [],
          left: left.map((m) => ({ ...proc(m), reason: m.closed ? leftReason : CPG_REASON.NODEDOWN })),
        });
      }
      if (joined.length > 0) {
        events.push({
          type: 'confchg', members: members.map(proc), left: [],
          joined: joined.map((m) => ({ ...proc(m), reason: newcomers.includes(m) ? CPG_REASON.JOIN : CPG_REASON.NODEUP })),
        });
      }
      if (events.length === 0) continue;
      s.view = now;
      const ringId = `1.${(ring ?? 0).toString(16)}`;
      const ringNodes = this.nodes.filter((n) => this.ringOf.get(n) === ring).map((n) => this.nodeid(n));
      events.push({ type: 'totem', ringId, members: ringNodes });
      events.push({ type: 'quorum', ringId, members: ringNodes, quorate: ringNodes.length * 2 > this.nodes.length });
      this.dispatch(s, events);
    }
  }

  private dispatch(s: Session, events: CorosyncEvent[]): void {
    if (this.paused.has(s.node)) {
      this.backlog.set(s.node, [...(this.backlog.get(s.node) ?? []), ...events]);
      return;
    }
    s.onEvents(events);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // A ring delivers within a millisecond here: one timer tick.
    setTimeout(() => {
      this.flushScheduled = false;
      this.flushNow();
    }, 1);
  }

  /** Delivers every pending message, in order, to the members of the ring it was sent in. */
  flushNow(): void {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0);
      const per = new Map<Session, CorosyncEvent[]>();
      for (const m of batch) {
        for (const s of this.sessions) {
          if (s.closed || this.ringOf.get(s.node) !== m.ring || !s.view.has(this.key(m.from))) continue;
          per.set(s, [...(per.get(s) ?? []), { type: 'deliver', nodeid: m.from.nodeid, pid: m.from.pid, data: m.data }]);
        }
      }
      for (const [s, events] of per) if (!s.closed) this.dispatch(s, events);
    }
  }
}
