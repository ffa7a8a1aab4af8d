// The Corosync backend of the Membership interface (docs/membership.md, "Corosync backend").
// CpgFarm (cpg-farm.ts) decides the table every member computes alike; this file does what
// only the local node can do, with its own clock:
//
// - the session with corosync (native/corosync.cc): CPG events fed to the CpgFarm in the
//   order corosync delivers them, its `send` multicast as agreed messages (in order, sent
//   again after CS_ERR_TRY_AGAIN); a dead session (corosync stopped or killed) revokes the
//   lease at once and a new session is tried every second, as a fresh member;
// - the kernel lease: renewed when this node delivers one of its own beats (proof that the
//   ring carries its messages and that its dispatch runs) while the farm lets it serve and,
//   under split_brain="quorum", votequorum has said "quorate" for the ring it is in — after
//   a configuration change quorum counts as unknown until that answer comes (a qnetd
//   tie-breaker cut off keeps saying quorate for seconds: LAB-NOTES);
// - beats every pulse, and at once after each table is applied (that is the ack fences wait for);
// - suspicion: a member whose beats stopped for longer than its lease can last is named in a
//   `suspect` message (a hung daemon whose corosync still answers stays in the CPG group);
// - holding back buckets taken from a member that left until its lease has surely run out:
//   a whole lease after it left the group with its node up (PROCDOWN), the lease less
//   corosync's consensus timeout after its node left the ring (NODEDOWN: before corosync
//   declares a node gone the token has been lost for `token` and consensus sought for
//   `consensus`, and the lost node renewed only on beats delivered before that), nothing
//   after a LEAVE (a stopping daemon waits out its lease before it leaves the group);
// - handover_limit timers, holdings reports, health changes (WAIT revokes before it is said);
// - corosync's answers (docs/membership.md, "When corosync hangs"): a call that waits for
//   corosync (the connection, votequorum_getinfo asked every quarter lease) runs on the
//   session's thread; one unanswered for half a lease means corosync hangs: WAIT at once
//   (the lease revoked first), the cause says which call, messages wait in a bounded outbox,
//   and once corosync answers the node returns as below;
// - the return of a node that stopped serving through its own failure (a failed check, a
//   pause of its daemon past its lease, a lost session, a hung corosync): it serves again only in a CPG
//   configuration with a member the farm lets serve, or with every member it last served
//   with (docs/membership.md, "A returning node under Corosync").

import { checkPowerChange, encodeBitmap } from '../table.js';
import { leaseWaitNs } from '../timing.js';
import { metered } from '../transport.js';
import type { Membership, MembershipCpu } from '../membership.js';
import type {
  CorosyncStatus, EngineOutput, GroupPowers, HoldingsSample, MembershipEvent, MembershipStatus, MembershipTiming, NodeState, PeerStatus,
  PowerOverrides, ViewTable,
} from '../types.js';
import type { SplitBrainPolicy } from '../../config/types.js';
import { CS_ERR_TRY_AGAIN, CS_OK, type CorosyncEvent, type CorosyncRunningConfig, type CorosyncSession, type Native, type VotequorumInfo } from '../../addon/native.js';
import { tableDigest, emptyRows } from '../table.js';
import { CpgFarm, CPG_REASON, procKey, type FarmStep, type GoneBucket, type LocalFacts, type Proc } from './cpg-farm.js';
import { decodeMessage, encodeMessage, type FarmMessage, type HoldingsReport } from './messages.js';
import { nodeNames } from './conf.js';
import { FarmlbError } from '../../errors.js';

const MS = 1_000_000n;
/** A new session is tried this often while corosync does not answer. */
const RECONNECT_MS = 1000;
/** Sends refused with CS_ERR_TRY_AGAIN (corosync's flow control) are tried again this soon. */
const RETRY_SEND_MS = 5;
/**
 * What the lease gives beyond corosync's own failure detection (token + consensus) and one
 * pulse: the join and commit of the new ring, votequorum's answer for it (~20 ms in the lab),
 * the delivery of a beat, and the daemon's dispatch of it on a loaded host. With 60 ms the
 * survivors' leases had 31–103 ms left at their first renewal in the new ring (3-node lab,
 * link down, 6 rounds on an idle machine) and one ran out under the test suite's load (a
 * survivor's sources failed for a moment): 150 ms left 128–180 ms (4 rounds), for 90 ms more
 * failover when a node leaves the ring (docs/membership.md, "The kernel lease under Corosync").
 */
const LEASE_MARGIN_MS = 150;
/** Added to the token hold time to bound a token rotation (the other members forward it at once). */
const ROTATION_MARGIN_MS = 20;
/**
 * Messages kept while corosync does not answer (docs/membership.md, "When corosync hangs"):
 * beyond that the oldest beat goes (a beat is stale once a newer one exists), counted.
 */
export const OUTBOX_MAX = 32;
/** How long a stopping daemon waits for corosync to take its leave (LEAVE) before it abandons the session. */
const CLOSE_WAIT_MS = 1000;

/**
 * How long a call to corosync may stay unanswered before corosync counts as hung: half the
 * lease. A live corosync answers votequorum_getinfo from its own state in well under a
 * millisecond, ring changes or not; one that has not answered for half a lease has not
 * carried this node's beats either, and its lease runs out at a whole lease anyway. Half
 * leaves the node time to say WAIT, and why, before the survivors take its buckets.
 */
export function corosyncHangAfterMs(leaseMs: number): number {
  return Math.max(1, Math.floor(leaseMs / 2));
}

/** corosync's runtime timing, with corosync's own defaults where cmap has none. */
export function corosyncTiming(running: CorosyncRunningConfig): { tokenMs: number; consensusMs: number; holdMs: number } {
  const tokenMs = running.totem.tokenMs ?? 1000;
  return { tokenMs, consensusMs: running.totem.consensusMs ?? Math.round(1.2 * tokenMs), holdMs: running.totem.holdMs ?? Math.round(0.8 * tokenMs) };
}

/**
 * The kernel lease under Corosync (docs/membership.md, "Corosync backend"): while a ring
 * re-forms after a failure no message is delivered for up to token + consensus, so a
 * survivor renews nothing for that long plus up to a pulse; the lease outlasts that, and the
 * survivors serve on without a gap.
 */
export function corosyncLeaseMs(running: CorosyncRunningConfig, pulseMs: number): number {
  const t = corosyncTiming(running);
  return t.tokenMs + t.consensusMs + pulseMs + LEASE_MARGIN_MS;
}

export interface CorosyncMembershipOptions {
  native: Pick<Native, 'corosyncOpen' | 'corosyncConfig'>;
  module: string;
  self: string;
  nodes: string[];
  groups: GroupPowers[];
  configDigest: string;
  timing: MembershipTiming;
  splitBrain: SplitBrainPolicy;
  handoverLimitMs: number;
  /** <farmlb key_file>: signs every farm message. */
  key: Buffer;
  /** The running corosync's configuration, checked against cluster.xml by the caller. */
  running: CorosyncRunningConfig;
  powerOverrides?: PowerOverrides;
  nowNs: () => bigint;
  pid?: number;
  /** Things an operator should see (a lost session, a refused message). */
  onWarning?: (message: string, fields: Record<string, unknown>) => void;
  onError?: (err: unknown) => void;
  /** Corosync's events as they come (debug level): ring changes, quorum answers, the group's changes. */
  onDebug?: (message: string, fields: Record<string, unknown>) => void;
}

export function cpgGroupName(module: string): string {
  return `farmlb-${module}`;
}

interface Hold extends GoneBucket {
  untilNs: bigint;
}

/** A node back from its own failure, until it is in a configuration with the farm it left. */
interface Away {
  /** What stopped it: the check's cause, a pause, a lost session. */
  why: string;
  /** Since when it could serve again (its check passed, it resumed, a new session); null while it cannot. */
  since: bigint | null;
  /** The members it last served with, less those seen gone for sure since (PROCDOWN, LEAVE). */
  waitFor: Set<string>;
  /** A rejoin condition held: it says ok to the farm and waits for the farm to take it back. */
  contact: boolean;
}

export class CorosyncMembership implements Membership {
  private session: CorosyncSession | undefined;
  private farm: CpgFarm | undefined;
  private selfProc: Proc | undefined;
  private apply: ((out: EngineOutput) => Promise<void> | void) | undefined;
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;
  private pulseTimer: NodeJS.Timeout | undefined;
  private holdTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Farm messages not yet handed to corosync, in order (beats marked: the ones dropped first). */
  private readonly outbox: { beat: boolean; data: Buffer }[] = [];

  // Local truth.
  private localOk = true;
  private localCause = 'starting';
  private holdingsReport: HoldingsReport | undefined;
  private appliedEpoch = 0;
  private seq = 0;
  private correcting = false;
  private lastPulseNs: bigint | undefined;
  /**
   * Rejoin grace: at start and when its checks pass again, a node whose CPG group lacks
   * configured nodes says WAIT until they are back or the ring has had time to merge. A
   * node back from a link down would otherwise serve alone in its own ring for the moment
   * before corosync merges it into the farm's (SafeKit's `serve` split brain, for nothing).
   */
  private graceUntil: bigint | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  /**
   * Back from its own failure (a node that has served; a starting node has the grace above):
   * WAIT, and until a rejoin condition holds it tells the farm it is not ok.
   */
  private away: Away | undefined;
  /** The other members the farm let serve at this node's last renewal: the side it served with. */
  private servedWith: ReadonlySet<string> | undefined;
  /** The latest pulse or dispatch: a longer gap than 3 pulses is a pause of this daemon. */
  private lastTickNs: bigint | undefined;
  /** Send time of the latest own beat delivered in this session: the stream is current from there. */
  private ownBeatSentNs: bigint | undefined;

  // What corosync said.
  private totemRing: string | null = null;
  private quorumRing: string | null = null;
  private quorate: boolean | null = null;
  /** A ring change was seen in CPG before its totem event: quorum is unknown until it comes. */
  private awaitTotem = false;
  /** The node ids of the latest totem ring: whether a CPG ring change is already in it. */
  private totemMembers: ReadonlySet<number> | null = null;
  /**
   * The send time of the latest own beat delivered since the last ring change while quorum
   * was still unknown: it proves this node is in the new ring, so once votequorum calls that
   * ring quorate it renews the lease (at once, not a pulse later).
   */
  private pendingRenewalNs: bigint | undefined;
  private vq: VotequorumInfo | undefined;
  private sessionError: string | undefined;

  // Whether corosync answers (docs/membership.md, "When corosync hangs").
  /** A session is open and its thread is connecting (since then): no farm yet. */
  private connectingSince: bigint | undefined;
  /** The votequorum_getinfo in flight, sent then: it proves corosync answers. One at a time. */
  private probeSentNs: bigint | undefined;
  private lastProbeNs: bigint | undefined;
  /** An event asked for votequorum's figures while a probe was in flight: ask again after it. */
  private probeAgain = false;
  /** Corosync does not answer: which call has been pending since when. */
  private hung: { call: string; sinceNs: bigint } | undefined;
  private hangs = 0;
  private droppedMessages = 0;
  private readonly hangAfterNs: bigint;

  // Derived, local.
  private leaseDeadlineNs = 0n;
  private lastState: NodeState = 'WAIT';
  private lastCause = '';
  private replicated: ViewTable | undefined;
  private readonly holds = new Map<string, Hold>();
  private readonly departures = new Map<string, { atNs: bigint; reason: number }>();
  private readonly lastBeatAt = new Map<string, bigint>();
  private readonly suspectedSent = new Map<string, number>();
  private readonly epochSeenAt = new Map<number, bigint>();
  private readonly limitSent = new Set<number>();
  private readonly seenNames = new Set<string>();
  private splitBrain = false;
  private missing: string[] = [];
  private readonly nodeName: Map<number, string>;
  private readonly leaseNs: bigint;
  private readonly suspectAfterNs: bigint;
  private cpuUs = { send: 0, receive: 0, tick: 0 };

  constructor(private readonly opts: CorosyncMembershipOptions) {
    this.nodeName = nodeNames(opts.running);
    this.leaseNs = BigInt(opts.timing.leaseMs) * MS;
    // Longer than the lease can last (with its clock margins), and never under a lost follower's time.
    const lost = BigInt(opts.timing.pulseMs * opts.timing.slostCount) * MS;
    const wait = leaseWaitNs(opts.timing) + BigInt(opts.timing.pulseMs) * MS;
    this.suspectAfterNs = lost > wait ? lost : wait;
    this.hangAfterNs = BigInt(corosyncHangAfterMs(opts.timing.leaseMs)) * MS;
  }

  // ---- Membership ---------------------------------------------------------------------

  start(apply: (out: EngineOutput) => Promise<void> | void): void {
    this.apply = apply;
    this.startGrace();
    this.connect();
    this.pulseTimer = setInterval(() => this.pulse(), this.opts.timing.pulseMs);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of [this.pulseTimer, this.holdTimer, this.reconnectTimer, this.retryTimer, this.graceTimer]) if (t) clearTimeout(t);
    clearInterval(this.pulseTimer);
    await this.queue;
    // Leaving the group lets the others take our buckets at once (a LEAVE needs no hold):
    // so leave only once the last lease we gave the kernel has run out.
    const waitNs = this.leaseDeadlineNs + BigInt(20_000_000) + MS - this.opts.nowNs();
    if (this.session && waitNs > 0n) await new Promise((r) => setTimeout(r, Number(waitNs / MS) + 1));
    // The leave takes corosync's answer: wait for it a moment, never for a hung corosync
    // (the others then see this process go, PROCDOWN, and hold its buckets a lease: safe).
    const closing = this.closeSession();
    if (closing) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closing, new Promise((r) => { timer = setTimeout(r, CLOSE_WAIT_MS); })]);
      clearTimeout(timer);
    }
  }

  setLocalHealth(ok: boolean, cause: string): void {
    if (ok === this.localOk && cause === this.localCause) return;
    this.localOk = ok;
    this.localCause = cause;
    if (!ok) {
      // WAIT serves nothing from this instant: the lease goes before the farm hears of it.
      this.leaseDeadlineNs = 0n;
      this.goAway(cause);
      this.emit({ leaseDeadlineNs: 0n, events: [] }, () => this.sendHealth());
    } else if (this.away) {
      // Back from a failed check: rejoin through the farm (checkReturn), at a point of the
      // stream after this beat, not on what was known before.
      this.readyToReturn();
      this.emit({ events: [] });
    } else if (this.missingNodes().length > 0) {
      this.startGrace();
      this.emit({ events: [] });
    } else {
      this.sendHealth();
      this.emit({ events: [] });
    }
  }

  /** Configured nodes whose daemon is not in the CPG group. */
  private missingNodes(): string[] {
    const present = new Set((this.farm?.memberProcs() ?? []).map((p) => this.nodeName.get(p.nodeid)));
    return this.opts.nodes.filter((n) => !present.has(n));
  }

  private graceNs(): bigint {
    // A node back from a cut link is alone in its ring until corosync has tried the interface
    // again (runtime.config.totem.downcheck, 1000 ms by default), seen the others' ring (merge,
    // 200 ms) and formed one with them (a join, consensus and a token rotation); then a pulse
    // for its first beat. Serving alone before that answers the others' connections with
    // resets (the corosync failover lab's link-down case: a grace without the downcheck ended
    // 124 ms before the merge). A node whose peers are really gone serves this much later.
    const t = corosyncTiming(this.opts.running);
    const totem = this.opts.running.totem;
    const ms = (totem.downcheckMs ?? 1000) + (totem.mergeMs ?? 200) + (totem.joinMs ?? 50) + t.consensusMs + t.tokenMs + this.opts.timing.pulseMs;
    return BigInt(ms) * MS;
  }

  private startGrace(): void {
    if (this.graceTimer) clearTimeout(this.graceTimer);
    const ns = this.graceNs();
    this.graceUntil = this.opts.nowNs() + ns;
    this.graceTimer = setTimeout(() => this.endGrace(), Number(ns / MS) + 1);
  }

  private endGrace(): void {
    if (this.graceUntil === undefined) return;
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    this.graceUntil = undefined;
    if (this.localOk) this.sendHealth();
    this.emit({ events: [] });
  }

  /** What this node says of itself: its checks, held back during the rejoin grace and a return. */
  private reportedOk(): boolean {
    return this.localOk && this.graceUntil === undefined && (this.away === undefined || this.away.contact);
  }

  private reportedCause(): string {
    if (!this.localOk) return this.localCause;
    if (this.away && !this.away.contact) return this.awayCause();
    if (this.graceUntil !== undefined) return `rejoining: waiting up to ${Number(this.graceNs() / MS)} ms for ${this.missingNodes().join(', ') || 'the ring'} to be in the group`;
    return '';
  }

  // ---- a returning node (docs/membership.md, "A returning node under Corosync") ---------------

  /**
   * This node stops serving through its own failure. Only a node that has served: a starting
   * node (and one whose check failed before it ever served) has the rejoin grace instead.
   */
  private goAway(why: string): void {
    if (this.servedWith === undefined) return;
    if (this.away) {
      this.away.why = why;
      this.away.since = null;
      this.away.contact = false;
      return;
    }
    this.away = { why, since: null, waitFor: new Set(this.servedWith), contact: false };
    this.opts.onDebug?.('stopped serving through its own failure: rejoining through the farm', { event: 'corosync_away', why, waitFor: [...this.servedWith] });
  }

  /** It could serve again from now: a beat, so that a point of the stream after now comes soon. */
  private readyToReturn(): void {
    const a = this.away;
    if (!a) return;
    a.since = this.opts.nowNs();
    a.contact = false;
    this.beat();
  }

  /**
   * A pause of this daemon (SIGSTOP, a frozen host) that outlasted its lease: its buckets may
   * have been taken, and if its corosync paused too it finds itself alone in a ring of its own,
   * holding the table it had. Called first thing in every pulse and dispatch.
   */
  private notePause(now: bigint): void {
    const last = this.lastTickNs;
    this.lastTickNs = now;
    const gap = last === undefined ? 0n : now - last;
    if (gap <= BigInt(3 * this.opts.timing.pulseMs) * MS || this.leaseDeadlineNs > now) return;
    // Still within its lease: nobody took its buckets, it serves on as a member of its side.
    this.goAway(`a pause of ${Number(gap / MS)} ms`);
    if (this.localOk) this.readyToReturn();
    this.emitIfStateChanged();
  }

  /**
   * The return, at each point of the stream: once an own beat sent after the node could serve
   * again is delivered (what it knew before is stale), it rejoins when its configuration holds
   * a member the farm lets serve (an anchor: the farm it left, or one it merged with) or every
   * member it last served with. Then it says ok, and serves once the farm takes it back in
   * such a configuration; when the condition stops holding first, it says not ok again.
   */
  private checkReturn(): void {
    const a = this.away;
    const farm = this.farm;
    if (!a || a.since === null || !farm || !this.localOk) return;
    if (this.ownBeatSentNs === undefined || this.ownBeatSentNs < a.since || !farm.hasState() || farm.syncing()) return;
    if (!this.rejoinCondition(farm, a)) {
      a.contact = false;
      return;
    }
    if (farm.selfProblem() === undefined) {
      this.away = undefined;
      this.opts.onDebug?.('rejoined the farm', { event: 'corosync_rejoined', view: farm.eligibleNames() });
      return;
    }
    a.contact = true;
  }

  private rejoinCondition(farm: CpgFarm, a: Away): boolean {
    const self = this.opts.self;
    if (farm.eligibleNames().some((n) => n !== self)) return true;
    const present = new Set(farm.memberProcs().map((p) => this.nodeName.get(p.nodeid)));
    return [...a.waitFor].every((n) => present.has(n));
  }

  private awayCause(): string {
    const a = this.away!;
    const wait = [...a.waitFor].sort();
    const whom = wait.length > 0 ? `a member the farm lets serve, or ${wait.join(' and ')} (it served with them)` : 'a member the farm lets serve';
    return `rejoining after ${a.why}: waiting for ${whom} in its CPG configuration`;
  }

  setPower(node: string, power: number, group?: string): void {
    checkPowerChange(this.opts.groups, this.opts.nodes, node, power, group);
    this.send({ t: 'power', node, group: group ?? null, power });
  }

  clearPower(node: string, group?: string): void {
    checkPowerChange(this.opts.groups, this.opts.nodes, node, undefined, group);
    this.send({ t: 'power', node, group: group ?? null, power: null });
  }

  setHoldings(sample: HoldingsSample): void {
    const t = this.replicated;
    // A sample speaks for the table it was taken under; only the applied one is reported.
    if (!t || sample.epoch !== this.appliedEpoch) return;
    const self = this.opts.self;
    const held = t.prev.map((row, g) => encodeBitmap((b) => row[b] === self && (sample.counts[g]?.[b] ?? 0) > 0));
    const connections = t.prev.map((row, g) => row.reduce((sum, p, b) => sum + (p === self ? (sample.counts[g]?.[b] ?? 0) : 0), 0));
    const report: HoldingsReport = { epoch: sample.epoch, held, connections };
    const before = this.holdingsReport;
    this.holdingsReport = report;
    const isPrev = t.prev.some((row) => row.includes(self));
    if (isPrev && (!before || before.epoch !== report.epoch || before.held.join() !== report.held.join())) this.send({ t: 'holdings', ...report });
  }

  /**
   * A live reload (docs/operations.md, "Changing the configuration") is not staged on this
   * backend yet: the switch would have to be one point of the agreed stream every member
   * takes together, which the CPG farm state does not model. Refused with the reason, so the
   * operator restarts the nodes one by one; withdrawing (null) has nothing to withdraw.
   */
  stageConfig(staged: { digest: string; groups: GroupPowers[] } | null): void {
    if (staged === null) return;
    throw new FarmlbError('FARMLB_E_RUN_RELOAD_NEEDS_RESTART', {
      detail: 'the Corosync backend (<farmlb membership="corosync">) does not switch configurations live; restart the nodes one by one',
    });
  }

  powerOverrides(): PowerOverrides {
    return this.farm?.powers() ?? this.opts.powerOverrides ?? { version: 0, origin: '', entries: [] };
  }

  cpu(): MembershipCpu {
    return { sendSeconds: this.cpuUs.send / 1e6, receiveSeconds: this.cpuUs.receive / 1e6, tickSeconds: this.cpuUs.tick / 1e6 };
  }

  status(): MembershipStatus {
    const now = this.opts.nowNs();
    // votequorum's figures as of the last probe's answer: status never waits for corosync.
    const farm = this.farm;
    const table = this.localTable() ?? this.emptyTable();
    const facts = farm?.allFacts() ?? [];
    const peers: PeerStatus[] = this.opts.nodes.filter((n) => n !== this.opts.self).map((node) => {
      const f = facts.find((x) => x.node === node && !x.foreign);
      const beat = f ? this.lastBeatAt.get(f.proc) : undefined;
      return {
        node,
        alive: f !== undefined && f.suspected === null,
        member: table.view.includes(node),
        ...(beat !== undefined ? { lastHeardMs: Number((now - beat) / MS), lastDirectMs: Number((now - beat) / MS) } : {}),
        ...(f ? { state: (f.ok && f.mismatchEpoch === null && f.suspected === null ? 'UP' : 'WAIT') as NodeState, cause: f.cause, epoch: f.applied, incarnation: String(f.pid) } : {}),
        ...(f?.digest ? { configDigest: f.digest } : {}),
      };
    });
    const corosync: CorosyncStatus = {
      connected: this.session !== undefined && this.connectingSince === undefined,
      ...(this.hung ? { hung: { call: this.hung.call, pendingMs: Number((now - this.hung.sinceNs) / MS) } } : {}),
      hangs: this.hangs,
      droppedMessages: this.droppedMessages,
      localNodeId: this.selfProc?.nodeid ?? 0,
      ringId: this.totemRing,
      quorate: this.quorumKnown() ? this.quorate : null,
      members: (farm?.memberProcs() ?? []).map((p) => {
        const f = farm!.factsOf(procKey(p));
        const state = !f ? 'joining' : f.foreign ? `foreign: ${f.foreign}` : f.mismatchEpoch !== null ? 'config mismatch'
          : f.suspected !== null ? 'suspected' : f.ok ? 'UP' : `WAIT: ${f.cause}`;
        return { nodeid: p.nodeid, pid: p.pid, node: this.nodeName.get(p.nodeid) ?? null, state };
      }),
      syncing: farm?.syncing() ?? false,
      ...(this.opts.running.totem.transport !== undefined ? { transport: this.opts.running.totem.transport } : {}),
      ...(this.opts.running.totem.tokenMs !== undefined ? { tokenMs: this.opts.running.totem.tokenMs } : {}),
      ...(this.opts.running.totem.consensusMs !== undefined ? { consensusMs: this.opts.running.totem.consensusMs } : {}),
      ...(this.vq ? { votequorum: {
        expectedVotes: this.vq.expectedVotes, totalVotes: this.vq.totalVotes, quorum: this.vq.quorum, twoNode: this.vq.twoNode,
        waitForAll: this.vq.waitForAll, qdevice: this.vq.qdeviceRegistered, qdeviceAlive: this.vq.qdeviceAlive,
      } } : {}),
    };
    const { state, cause } = this.evaluate();
    return {
      backend: 'corosync',
      corosync,
      node: this.opts.self,
      state,
      cause,
      leader: null,
      epoch: table.epoch,
      view: table.view,
      tableDigest: table.digest,
      table,
      leaseDeadlineNs: this.leaseDeadlineNs,
      splitBrain: this.splitBrain,
      missing: this.missing,
      quorum: this.quorumState() !== 'lost',
      configDigest: this.opts.configDigest,
      referenceDigest: farm?.reference() ?? this.opts.configDigest,
      powers: this.powerOverrides(),
      incarnation: String(this.opts.pid ?? process.pid),
      peers,
      handover: this.handoverStatus(table),
    };
  }

  // ---- the session --------------------------------------------------------------------

  /** Opens a session; its thread connects, and says so with an "open" (opened) or an "error" event (connectFailed). */
  private connect(): void {
    if (this.stopped) return;
    try {
      const session = this.opts.native.corosyncOpen(cpgGroupName(this.opts.module), (events) => this.onEvents(session, events));
      this.session = session;
      this.connectingSince = this.opts.nowNs();
    } catch (err) {
      this.connectFailed(err instanceof Error ? err.message : String(err), err);
    }
  }

  private opened(session: CorosyncSession, localNodeId: number): void {
    this.connectingSince = undefined;
    this.selfProc = { nodeid: localNodeId, pid: this.opts.pid ?? process.pid };
    this.farm = new CpgFarm({
      self: this.opts.self, selfProc: this.selfProc, nodes: this.opts.nodes, groups: this.opts.groups,
      configDigest: this.opts.configDigest, handover: this.opts.handoverLimitMs > 0,
      nodeName: (id) => this.nodeName.get(id),
      ...(this.farm ? { powerOverrides: this.farm.powers() } : this.opts.powerOverrides ? { powerOverrides: this.opts.powerOverrides } : {}),
    });
    if (this.sessionError !== undefined) this.opts.onWarning?.('corosync answers again: rejoining the farm', { event: 'corosync_connected' });
    this.sessionError = undefined;
    this.answered();
    this.readyToReturn();
    this.probe();
  }

  /** The connection failed (corosync not running, refused): try again in a moment. */
  private connectFailed(message: string, err?: unknown): void {
    this.closeSession();
    this.connectingSince = undefined;
    // An answer, if a refusal: a hang of the connection is over.
    this.hung = undefined;
    if (this.sessionError !== message) this.opts.onWarning?.(`cannot talk to corosync: ${message}`, { event: 'corosync_unreachable', ...(err !== undefined ? { err } : {}) });
    this.sessionError = message;
    this.emit({ events: [] });
    if (!this.stopped) this.reconnectTimer = setTimeout(() => this.connect(), RECONNECT_MS);
  }

  /** Closed for this daemon at once; the promise settles when corosync has taken the leave (never, while it hangs). */
  private closeSession(): Promise<void> | undefined {
    const s = this.session;
    this.session = undefined;
    this.outbox.length = 0;
    this.probeSentNs = undefined;
    this.probeAgain = false;
    const closing = s?.close();
    closing?.catch(() => undefined);
    return closing;
  }

  /** Corosync is gone: serve nothing, forget the farm's state, and rejoin as a fresh member. */
  private lost(reason: string): void {
    this.closeSession();
    this.connectingSince = undefined;
    this.hung = undefined;
    this.sessionError = reason;
    // What this session measured is not evidence in the next: a suspicion must count from a
    // delivery the new session saw (or from its joining), never from an old timestamp.
    this.lastBeatAt.clear();
    this.suspectedSent.clear();
    this.epochSeenAt.clear();
    this.limitSent.clear();
    this.departures.clear();
    this.pendingRenewalNs = undefined;
    this.awaitTotem = false;
    this.totemMembers = null;
    this.ownBeatSentNs = undefined;
    this.goAway(`lost corosync (${reason})`);
    this.opts.onWarning?.(`lost corosync (${reason}): serving nothing until it answers again`, { event: 'corosync_lost' });
    this.farm = undefined;
    this.replicated = undefined;
    this.holds.clear();
    this.totemRing = this.quorumRing = null;
    this.quorate = null;
    this.leaseDeadlineNs = 0n;
    this.emit({ leaseDeadlineNs: 0n, events: [] });
    if (!this.stopped) this.reconnectTimer = setTimeout(() => this.connect(), RECONNECT_MS);
  }

  private onEvents(session: CorosyncSession, events: CorosyncEvent[]): void {
    if (session !== this.session) return;
    metered((us) => { this.cpuUs.receive += us; }, () => {
      this.notePause(this.opts.nowNs());
      try {
        for (const e of events) {
          if (this.session !== session) return;
          if (this.connectingSince !== undefined) {
            if (e.type === 'open') this.opened(session, e.localNodeId);
            else if (e.type === 'error') this.connectFailed(e.message);
            continue;
          }
          this.onEvent(e);
        }
        this.emitIfStateChanged();
      } catch (err) {
        // A bug must not leave this node serving on a state it could not compute.
        this.opts.onError?.(err);
        this.lost(`internal error: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
  }

  private onEvent(e: CorosyncEvent): void {
    const farm = this.farm!;
    const now = this.opts.nowNs();
    if (e.type !== 'deliver' && this.opts.onDebug) {
      this.opts.onDebug(`corosync ${e.type}`, { event: 'corosync_event', type: e.type, ...(e.type === 'confchg'
        ? { members: e.members.map(procKey), left: e.left.map((l) => `${procKey(l)}/${l.reason}`), joined: e.joined.map((j) => `${procKey(j)}/${j.reason}`) }
        : e.type === 'totem' ? { ringId: e.ringId } : e.type === 'quorum' ? { ringId: e.ringId, quorate: e.quorate } : {}) });
    }
    switch (e.type) {
      case 'deliver': {
        const from = { nodeid: e.nodeid, pid: e.pid };
        const key = procKey(from);
        const decoded = decodeMessage(e.data, this.opts.key, this.opts.module);
        if (decoded.ok && decoded.msg.t === 'beat') this.lastBeatAt.set(key, now);
        const step = farm.deliver(from, decoded);
        const own = key === procKey(this.selfProc!);
        if (own && decoded.ok && decoded.msg.t === 'health') this.correcting = false;
        this.handle(step);
        const ownBeat = own && decoded.ok && decoded.msg.t === 'beat' ? BigInt(decoded.msg.at) : undefined;
        if (ownBeat !== undefined && (this.ownBeatSentNs === undefined || ownBeat > this.ownBeatSentNs)) this.ownBeatSentNs = ownBeat;
        this.checkReturn();
        if (own && decoded.ok && decoded.msg.t === 'beat') {
          const sent = BigInt(decoded.msg.at);
          // A beat that took longer than a third of the lease to come back: the ring is slow
          // (loss, retransmissions); at a whole lease this node stops serving.
          if ((now - sent) * 3n > this.leaseNs) this.opts.onWarning?.(`own beat delivered after ${Number((now - sent) / MS)} ms`, { event: 'corosync_slow_delivery', ms: Number((now - sent) / MS) });
          this.renew(sent);
        }
        this.correctFacts();
        return;
      }
      case 'confchg': {
        const ringChange = [...e.left, ...e.joined].some((m) => m.reason === CPG_REASON.NODEDOWN || m.reason === CPG_REASON.NODEUP);
        if (ringChange) {
          // The totem event of this change may come before or after it: unless the latest ring
          // already lacks the nodes that went down and has the ones that came up, it is still
          // to come, and until then the quorum we know is the old ring's.
          const ring = this.totemMembers;
          const inRing = ring !== null
            && e.left.every((m) => m.reason !== CPG_REASON.NODEDOWN || !ring.has(m.nodeid))
            && e.joined.every((m) => m.reason !== CPG_REASON.NODEUP || ring.has(m.nodeid));
          this.awaitTotem = !inRing;
          this.pendingRenewalNs = undefined;
        }
        for (const l of e.left) {
          const name = this.nodeName.get(l.nodeid);
          if (name) this.departures.set(name, { atNs: now, reason: l.reason });
          // Its daemon is gone for sure (its node is in our ring): it serves nothing past its lease.
          if (name && (l.reason === CPG_REASON.PROCDOWN || l.reason === CPG_REASON.LEAVE)) this.away?.waitFor.delete(name);
          this.lastBeatAt.delete(procKey(l));
          this.suspectedSent.delete(procKey(l));
        }
        for (const j of e.joined) this.lastBeatAt.set(procKey(j), now);
        for (const m of e.members) {
          const name = this.nodeName.get(m.nodeid);
          if (name && name !== this.opts.self) this.seenNames.add(name);
          if (!this.lastBeatAt.has(procKey(m))) this.lastBeatAt.set(procKey(m), now);
        }
        if (this.graceUntil !== undefined && e.members.length > 0 && this.opts.nodes.every((n) => e.members.some((m) => this.nodeName.get(m.nodeid) === n))) {
          this.graceUntil = undefined;
          if (this.graceTimer) clearTimeout(this.graceTimer);
          this.graceTimer = undefined;
        }
        this.handle(farm.confchg(e.members, e.left, e.joined, this.localFacts()));
        this.checkReturn();
        this.correctFacts();
        // A new configuration: renew as soon as the ring carries our messages again.
        this.beat();
        return;
      }
      case 'totem':
        this.totemRing = e.ringId;
        this.totemMembers = new Set(e.members);
        this.awaitTotem = false;
        this.refreshVotequorum();
        this.renewPending();
        return;
      case 'quorum': {
        const was = this.quorumState();
        this.quorumRing = e.ringId;
        this.quorate = e.quorate;
        if (this.opts.splitBrain === 'quorum' && was !== 'lost' && this.quorumState() === 'lost') {
          this.leaseDeadlineNs = 0n;
          this.emit({ leaseDeadlineNs: 0n, events: [{ type: 'quorum_lost', alive: e.members.length, needed: this.vq?.quorum ?? 0 }] });
        }
        this.renewPending();
        this.refreshVotequorum();
        return;
      }
      case 'votequorum':
        this.refreshVotequorum();
        return;
      case 'error':
        this.lost(e.message);
        return;
      case 'open':
        return;
    }
  }

  /** votequorum's figures changed: ask for them (after the call in flight, if any). */
  private refreshVotequorum(): void {
    if (this.probeSentNs !== undefined) this.probeAgain = true;
    else this.probe();
  }

  // ---- whether corosync answers (docs/membership.md, "When corosync hangs") ------------

  /** Asks votequorum_getinfo on the session's thread: votequorum's figures, and proof that corosync answers. */
  private probe(): void {
    const s = this.session;
    if (!s || this.connectingSince !== undefined || this.probeSentNs !== undefined) return;
    const now = this.opts.nowNs();
    this.probeSentNs = now;
    this.lastProbeNs = now;
    s.votequorumInfo().then((info) => this.probeAnswered(s, info), () => this.probeAnswered(s, undefined));
  }

  private probeAnswered(s: CorosyncSession, info: VotequorumInfo | undefined): void {
    if (s !== this.session) return;
    this.probeSentNs = undefined;
    // A refusal (a CS error) is an answer too; the figures are then kept as they were (status only).
    if (info) this.vq = info;
    this.answered();
    if (this.probeAgain) {
      this.probeAgain = false;
      this.probe();
    }
  }

  /**
   * Every pulse: a call pending past the bound means corosync hangs; a probe every quarter
   * lease. Not on a pulse that comes late (this daemon was paused): corosync's answer may be
   * waiting behind this very pulse (the lab, at load 18, saw one handled 1 ms after it).
   */
  private checkAnswers(now: bigint, late: boolean): void {
    if (!this.session || this.hung) return;
    const pending = this.connectingSince !== undefined ? { call: 'connect', since: this.connectingSince }
      : this.probeSentNs !== undefined ? { call: 'votequorum_getinfo', since: this.probeSentNs } : undefined;
    if (pending && !late && now - pending.since > this.hangAfterNs) {
      this.hangs++;
      this.hung = { call: pending.call, sinceNs: pending.since };
      // WAIT serves nothing from this instant: the lease goes before anything is said.
      this.leaseDeadlineNs = 0n;
      this.goAway(`corosync did not answer (${pending.call})`);
      this.opts.onWarning?.(`corosync does not answer (${pending.call} pending for ${Number((now - pending.since) / MS)} ms): serving nothing until it answers`,
        { event: 'corosync_hung', call: pending.call, pendingMs: Number((now - pending.since) / MS), hangs: this.hangs });
      this.emit({ leaseDeadlineNs: 0n, events: [] });
      return;
    }
    if (!pending && (this.lastProbeNs === undefined || (now - this.lastProbeNs) * 2n >= this.hangAfterNs)) this.probe();
  }

  /** Corosync answered a call: if it was hung, the node returns through the farm and the outbox flows. */
  private answered(): void {
    const h = this.hung;
    if (!h) return;
    this.hung = undefined;
    const ms = Number((this.opts.nowNs() - h.sinceNs) / MS);
    this.opts.onWarning?.(`corosync answers again after ${ms} ms (${h.call}): rejoining the farm`, { event: 'corosync_answers', call: h.call, pendingMs: ms, dropped: this.droppedMessages });
    if (this.localOk) this.readyToReturn();
    this.flush();
    this.emit({ events: [] });
  }

  private localFacts(): LocalFacts {
    return { ok: this.reportedOk(), cause: this.reportedCause(), applied: this.appliedEpoch, ...(this.holdingsReport ? { holdings: this.holdingsReport } : {}) };
  }

  /** The farm's facts about this member out of date (it was out of a round, or a message was lost with one): say them again. */
  private correctFacts(): void {
    const farm = this.farm;
    if (!farm || this.correcting || farm.syncing() || !farm.hasState()) return;
    const f = farm.factsOf(procKey(this.selfProc!));
    if (!f || f.foreign) return;
    if (f.digest !== this.opts.configDigest || f.ok !== this.reportedOk() || f.cause !== this.reportedCause()) this.sendHealth();
  }

  private sendHealth(): void {
    if (!this.farm) return;
    this.correcting = true;
    this.send({ t: 'health', ok: this.reportedOk(), cause: this.reportedCause(), digest: this.opts.configDigest });
  }

  // ---- decisions ------------------------------------------------------------------------

  private handle(step: FarmStep): void {
    for (const msg of step.send) this.send(msg);
    const now = this.opts.nowNs();
    for (const g of step.gone) {
      this.holds.set(`${g.group}:${g.bucket}:${g.role}`, { ...g, untilNs: this.heldUntil(g.node, now) });
    }
    if (step.table) {
      this.replicated = step.table;
      if (!this.epochSeenAt.has(step.table.epoch)) this.epochSeenAt.set(step.table.epoch, now);
      this.pruneHolds(now);
      this.scheduleHolds(now);
      this.emit({ table: this.localTable()!, events: step.events });
    } else if (step.events.length > 0) {
      this.emit({ events: step.events });
    }
  }

  /** Until when a node that left may still serve (docs/membership.md, "Corosync backend"). */
  private heldUntil(node: string, now: bigint): bigint {
    const wait = leaseWaitNs(this.opts.timing);
    const d = this.departures.get(node);
    if (!d) return now + wait;
    if (d.reason === CPG_REASON.LEAVE) return d.atNs;
    if (d.reason === CPG_REASON.NODEDOWN) {
      // The node renewed last when it held the token. The first survivor to miss the token
      // had it at most one rotation (≤ the hold time) before, times out `token` after that,
      // and the survivors then wait `consensus` for the lost node before declaring it gone.
      const t = corosyncTiming(this.opts.running);
      const gap = BigInt(t.tokenMs + t.consensusMs - t.holdMs - ROTATION_MARGIN_MS) * MS;
      return d.atNs + (wait > gap ? wait - gap : 0n);
    }
    return d.atNs + wait;
  }

  private pruneHolds(now: bigint): boolean {
    let changed = false;
    for (const [k, h] of this.holds) {
      if (h.untilNs <= now) {
        this.holds.delete(k);
        changed = true;
      }
    }
    return changed;
  }

  private scheduleHolds(now: bigint): void {
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    let next: bigint | undefined;
    for (const h of this.holds.values()) if (next === undefined || h.untilNs < next) next = h.untilNs;
    if (next === undefined) return;
    this.holdTimer = setTimeout(() => {
      this.holdTimer = undefined;
      const t = this.opts.nowNs();
      const before = this.localTable();
      this.pruneHolds(t);
      const after = this.localTable();
      if (after && before && after.digest !== before.digest) this.emit({ table: after, completesTable: true, events: [] });
      this.scheduleHolds(t);
    }, Number((next - now) / MS) + 1);
  }

  /**
   * The replicated table with this node's holds: a bucket it gains from a member that left
   * stays unowned here (and a departed previous owner stays named) until that member's
   * lease has surely run out.
   */
  private localTable(): ViewTable | undefined {
    const t = this.replicated;
    if (!t) return undefined;
    if (this.holds.size === 0) return t;
    const groups = t.groups.map((r) => [...r]);
    const prev = t.prev.map((r) => [...r]);
    for (const h of this.holds.values()) {
      if (h.role === 'owner' && groups[h.group]![h.bucket] === this.opts.self) groups[h.group]![h.bucket] = null;
      if (h.role === 'prev' && prev[h.group]![h.bucket] === null && groups[h.group]![h.bucket] === this.opts.self) prev[h.group]![h.bucket] = h.node;
    }
    return { ...t, groups, prev, digest: tableDigest(groups, prev) };
  }

  private emptyTable(): ViewTable {
    const groups = emptyRows(this.opts.groups.length);
    const prev = emptyRows(this.opts.groups.length);
    return { epoch: 0, leader: null, view: [], groups, prev, digest: tableDigest(groups, prev) };
  }

  private quorumKnown(): boolean {
    return !this.awaitTotem && this.quorumRing !== null && this.quorumRing === this.totemRing;
  }

  private quorumState(): 'ok' | 'lost' | 'unknown' {
    if (this.quorate === false) return 'lost';
    return this.quorumKnown() && this.quorate === true ? 'ok' : 'unknown';
  }

  /** The module state this node should be in now, and why. */
  private evaluate(): { state: NodeState; cause: string } {
    if (this.stopped) return { state: 'WAIT', cause: 'stopping' };
    if (!this.session) return { state: 'WAIT', cause: `corosync not reachable${this.sessionError ? `: ${this.sessionError}` : ''}` };
    if (this.hung) return { state: 'WAIT', cause: `corosync does not answer (${this.hung.call} pending for over ${Number(this.hangAfterNs / MS)} ms)` };
    if (this.connectingSince !== undefined) return { state: 'WAIT', cause: 'connecting to corosync' };
    if (!this.reportedOk()) return { state: 'WAIT', cause: this.reportedCause() };
    if (this.away) return { state: 'WAIT', cause: `rejoining after ${this.away.why}: waiting for the farm to take this node back` };
    const problem = this.farm?.selfProblem();
    if (problem !== undefined) return { state: 'WAIT', cause: problem };
    if (this.opts.splitBrain === 'quorum') {
      const q = this.quorumState();
      if (q === 'lost') return { state: 'WAIT', cause: 'no quorum (votequorum): split_brain="quorum"' };
      // Unknown right after a change: keep serving on the lease already given, renew nothing.
      if (q === 'unknown' && this.lastState !== 'UP') return { state: 'WAIT', cause: 'waiting for votequorum\'s answer for this ring' };
    }
    return { state: 'UP', cause: '' };
  }

  /** A beat of ours came back through the ring: the lease runs from when it was sent. */
  private renew(sentAtNs: bigint): void {
    const { state } = this.evaluate();
    if (state !== 'UP' || !this.farm?.hasState()) return;
    // A node that is not serving (a quorum minority healed, a node back from a cut) starts
    // again only on the table the round merges: until the round ends, its own table is the one
    // of the configuration it was alone in, and its peers still serve theirs (the lab saw n3
    // serve every bucket for ~20 ms of a heal). A node serving already keeps renewing: it
    // serves what it served, and survivors never pause for a joiner.
    if (this.farm.syncing() && this.leaseDeadlineNs <= this.opts.nowNs()) {
      this.opts.onDebug?.('lease not renewed: not serving, and a sync round is under way', { event: 'corosync_no_renewal', syncing: true });
      return;
    }
    if (this.opts.splitBrain === 'quorum' && this.quorumState() !== 'ok') {
      if (this.pendingRenewalNs === undefined || sentAtNs > this.pendingRenewalNs) this.pendingRenewalNs = sentAtNs;
      this.opts.onDebug?.('lease not renewed: quorum unknown for this ring', { event: 'corosync_no_renewal', totemRing: this.totemRing, quorumRing: this.quorumRing, awaitTotem: this.awaitTotem, quorate: this.quorate });
      return;
    }
    const self = this.opts.self;
    this.servedWith = new Set(this.farm.eligibleNames().filter((n) => n !== self));
    const deadline = sentAtNs + this.leaseNs;
    if (deadline <= this.leaseDeadlineNs) return;
    this.leaseDeadlineNs = deadline;
    this.emit({ leaseDeadlineNs: deadline, events: [] });
  }

  /** Quorum became known and quorate for this ring: the beats it already carried renew now. */
  private renewPending(): void {
    const pending = this.pendingRenewalNs;
    if (pending === undefined || this.quorumState() !== 'ok') return;
    this.pendingRenewalNs = undefined;
    this.renew(pending);
  }

  private emitIfStateChanged(): void {
    const { state, cause } = this.evaluate();
    if (state !== this.lastState || cause !== this.lastCause) this.emit({ events: [] });
  }

  private emit(partial: Omit<EngineOutput, 'state' | 'cause'>, after?: () => void): void {
    if (!this.apply) return;
    const { state, cause } = this.evaluate();
    if (state === 'WAIT') this.leaseDeadlineNs = 0n;
    this.updateSplitBrain(partial.events);
    this.lastState = state;
    this.lastCause = cause;
    const out: EngineOutput = { ...partial, state, cause, ...(state === 'WAIT' ? { leaseDeadlineNs: 0n } : {}) };
    const apply = this.apply;
    const step = this.queue.then(async () => {
      await apply(out);
      // The ack fences wait for: sent only once the table is in the data plane.
      if (out.table && out.table.epoch > this.appliedEpoch) {
        this.appliedEpoch = out.table.epoch;
        this.beat();
      }
      after?.();
    });
    this.queue = step.catch((err) => this.opts.onError?.(err));
  }

  private updateSplitBrain(events: MembershipEvent[]): void {
    const view = this.replicated?.view ?? [];
    const members = new Set((this.farm?.memberProcs() ?? []).map((p) => this.nodeName.get(p.nodeid)).filter((n): n is string => n !== undefined));
    const missing = [...this.seenNames].filter((n) => !members.has(n)).sort();
    const split = missing.length > 0 && this.session !== undefined;
    this.missing = missing;
    if (split && !this.splitBrain) events.push({ type: 'split_brain', view, missing });
    if (!split && this.splitBrain) events.push({ type: 'split_brain_healed', view });
    this.splitBrain = split;
  }

  // ---- sending -------------------------------------------------------------------------

  private beat(): void {
    if (!this.session || !this.farm) return;
    this.send({ t: 'beat', seq: ++this.seq, at: this.opts.nowNs().toString(), applied: this.appliedEpoch });
  }

  private send(msg: FarmMessage): void {
    if (!this.session || !this.farm) return;
    metered((us) => { this.cpuUs.send += us; }, () => {
      this.outbox.push({ beat: msg.t === 'beat', data: encodeMessage(msg, this.opts.key, this.opts.module) });
      if (this.outbox.length > OUTBOX_MAX) {
        // Bounded while corosync does not take them: the oldest beat goes first (a newer one
        // says more), any message if there is no beat left.
        const i = this.outbox.findIndex((m) => m.beat);
        this.outbox.splice(i >= 0 ? i : 0, 1);
        this.droppedMessages++;
      }
      this.flush();
    });
  }

  /**
   * Sends in order; corosync's flow control (CS_ERR_TRY_AGAIN) keeps the rest for a moment.
   * While corosync does not answer, nothing is handed to it: the outbox waits (bounded) and
   * flows once it answers.
   */
  private flush(): void {
    const s = this.session;
    while (s && this.farm && !this.hung && this.outbox.length > 0) {
      const rc = s.mcast(this.outbox[0]!.data);
      if (rc === CS_ERR_TRY_AGAIN) {
        if (!this.retryTimer) this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.flush(); }, RETRY_SEND_MS);
        return;
      }
      this.outbox.shift();
      if (rc !== CS_OK) this.opts.onWarning?.(`cpg_mcast_joined failed (cs_error ${rc}): a farm message was lost`, { event: 'corosync_send_failed', cs: rc });
    }
  }

  // ---- the pulse ------------------------------------------------------------------------

  private pulse(): void {
    metered((us) => { this.cpuUs.tick += us; }, () => {
      const now = this.opts.nowNs();
      this.notePause(now);
      const late = this.lastPulseNs !== undefined && now - this.lastPulseNs > BigInt(3 * this.opts.timing.pulseMs) * MS;
      this.lastPulseNs = now;
      this.checkAnswers(now, late);
      const farm = this.farm;
      if (!this.session || !farm) return;
      this.beat();
      // After a pause of our own (SIGSTOP, a stalled host) the silence is ours: the others'
      // beats wait in the socket. A suspicion then would name stale beats anyway.
      if (!late) {
        for (const p of farm.memberProcs()) {
          const key = procKey(p);
          if (key === procKey(this.selfProc!)) continue;
          const since = this.lastBeatAt.get(key);
          const seq = farm.lastSeqOf(key);
          const f = farm.factsOf(key);
          if (since === undefined || now - since < this.suspectAfterNs || f?.suspected !== null && f?.suspected !== undefined) continue;
          if (this.suspectedSent.get(key) === seq) continue;
          this.suspectedSent.set(key, seq);
          this.send({ t: 'suspect', proc: key, seq });
        }
      }
      if (this.opts.handoverLimitMs > 0) {
        const limitNs = BigInt(this.opts.handoverLimitMs) * MS;
        for (const h of farm.handovers()) {
          if (!this.epochSeenAt.has(h.since)) this.epochSeenAt.set(h.since, now);
          if (now - this.epochSeenAt.get(h.since)! >= limitNs && !this.limitSent.has(h.since)) {
            this.limitSent.add(h.since);
            this.send({ t: 'limit', epoch: h.since });
          }
        }
      }
    });
  }

  private handoverStatus(table: ViewTable): MembershipStatus['handover'] {
    const facts = this.farm?.allFacts() ?? [];
    return table.prev.flatMap((row, g) => {
      const byPrev = new Map<string, number>();
      for (const p of row) if (p !== null) byPrev.set(p, (byPrev.get(p) ?? 0) + 1);
      if (byPrev.size === 0) return [];
      return [{
        group: this.opts.groups[g]!.name,
        buckets: [...byPrev.values()].reduce((a, b) => a + b, 0),
        prevs: [...byPrev].map(([node, buckets]) => {
          const h = facts.find((f) => f.node === node)?.holdings;
          return { node, buckets, ...(h ? { connections: h.connections[g] ?? 0 } : {}) };
        }),
      }];
    });
  }
}
