// The `Membership` interface a daemon drives, so another backend (Corosync CPG/votequorum,
// planned) can replace the built-in protocol, and BuiltinMembership: MembershipEngine +
// Transport + a pulse timer. The one ordering rule (docs/membership.md): a decision's table
// and lease are applied (awaited) before its heartbeat is transmitted, because peers take
// a bucket from us as soon as our heartbeat says we installed the table that moves it. (A
// heartbeat of a decision without a table leaves during an install, reporting the table the
// data plane has: heartbeat-gate.ts. A renewal on a table of the data plane's lineage is
// written ahead of the queued decisions: lease-gate.ts.)

import type { MembershipEngine } from './engine.js';
import { HeartbeatGate } from './heartbeat-gate.js';
import { LeaseGate } from './lease-gate.js';
import { ReceiveCadence } from './receive-cadence.js';
import { type DropReason, metered, type Transport } from './transport.js';
import type { EngineOutput, GroupPowers, HoldingsSample, MembershipStatus, PowerOverrides } from './types.js';

/** Lease writes that go ahead of the queued decisions (Membership.start). */
export interface EarlyLeaseWrites {
  renew(deadlineNs: bigint): boolean;
  revoke(cause: string): void;
}

export interface Membership {
  /**
   * Starts heartbeats; `apply` receives every decision, in order, and is awaited. `lease`,
   * when given, writes the kernel lease ahead of the decisions queued before it
   * (BuiltinMembership: lease-gate.ts), synchronously: `renew` is offered a renewal and
   * returns whether it wrote it (then the decision is queued without it); `revoke` revokes
   * the lease at once, for the reason given.
   */
  start(apply: (out: EngineOutput) => Promise<void> | void, lease?: EarlyLeaseWrites): void;
  /** Stops the timer and the transport. Idempotent. */
  stop(): Promise<void>;
  setLocalHealth(ok: boolean, cause: string): void;
  setPower(node: string, power: number, group?: string): void;
  clearPower(node: string, group?: string): void;
  /** The latest count of connections held as previous owner (handover); reported in heartbeats. */
  setHoldings(sample: HoldingsSample): void;
  /** A reloaded configuration to switch to once every node has it (MembershipEngine.stageConfig); null withdraws it. */
  stageConfig(staged: { digest: string; groups: GroupPowers[] } | null): void;
  status(): MembershipStatus;
  powerOverrides(): PowerOverrides;
  /** CPU this process spent on the heartbeat path since start (bench, /metrics). */
  cpu(): MembershipCpu;
  /**
   * The heartbeat port's datagrams since start (status, /metrics): sent, failed sends, and
   * what the transport refused. A backend without a port of its own has none.
   */
  datagrams?(): MembershipDatagrams;
  /**
   * The key to sign heartbeats with and the other keys accepted (docs/security.md, "Rotating
   * the key"), from the next heartbeat on. A backend with its own keys may not have it.
   */
  setKeys?(key: Buffer, accept: readonly Buffer[]): void;
}

/** Seconds of CPU (user + system) per part of the heartbeat path. */
export interface MembershipCpu {
  /** Encoding, signing and sending heartbeats. */
  sendSeconds: number;
  /** Authenticating, decoding and handling received heartbeats. */
  receiveSeconds: number;
  /** The pulse: liveness, leadership, the leader's table decisions. */
  tickSeconds: number;
}

/** Refused datagrams: at most this many sources listed, the busiest first. */
export const DROP_SOURCES_REPORTED = 8;

/** The heartbeat port's datagrams since start (Membership.datagrams). */
export interface MembershipDatagrams {
  /** Heartbeat datagrams sent (each peer on each LAN is one). */
  sent: number;
  /** Sends the kernel refused (a full buffer, no route). */
  sendErrors: number;
  /** Datagrams the transport refused before the engine, per reason (docs/security.md, "Unauthenticated datagrams"). */
  dropped: Record<DropReason, number>;
  /** The busiest sources of refused datagrams (at most DROP_SOURCES_REPORTED; "other" stands for sources past the 256 tracked). */
  droppedBySource: { source: string; count: number }[];
}

export interface BuiltinMembershipOptions {
  engine: MembershipEngine;
  transport: Transport;
  pulseMs: number;
  /** CLOCK_MONOTONIC in ns (the lease's base). */
  nowNs: () => bigint;
  /** Errors thrown by `apply` (the decision is lost; the next pulse decides again). */
  onError?: (err: unknown) => void;
  /**
   * Pulses of silence after which the leader is lost (mlost_count; default 10): a silent peer
   * keeps every datagram read on arrival until then and two pulses more (receive-cadence.ts).
   */
  lostPulses?: number;
}

export class BuiltinMembership implements Membership {
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<void> = Promise.resolve();
  private apply: ((out: EngineOutput) => Promise<void> | void) | undefined;
  private stopped = false;
  private tickCpuUs = 0;
  /** The last pulse threw: the lease stays revoked until one succeeds (contained()). */
  private failed = false;
  private lastState: EngineOutput['state'] | undefined;
  private lastCause: string | undefined;
  /** Heartbeats that leave while a table is being installed (heartbeat-gate.ts). */
  private readonly gate = new HeartbeatGate();
  /** Renewals written ahead of the queued decisions (lease-gate.ts). */
  private readonly leases: LeaseGate;
  private lease: EarlyLeaseWrites | undefined;
  /** Whether received heartbeats wait for the pulse (a transport that can batch them). */
  private readonly cadence: ReceiveCadence;
  /** The transport's dropped datagrams at the last pulse. */
  private droppedAtTick = 0;
  /** The check at a peer's deadline between two pulses (armCheck). */
  private checkTimer: NodeJS.Timeout | undefined;
  private readonly pulseNs: bigint;

  constructor(private readonly opts: BuiltinMembershipOptions) {
    this.leases = new LeaseGate(opts.engine.self);
    const pulseNs = BigInt(Math.round(opts.pulseMs * 1e6));
    this.pulseNs = pulseNs;
    this.cadence = new ReceiveCadence({ pulseNs, forgetNs: BigInt((opts.lostPulses ?? 10) + 2) * pulseNs });
  }

  start(apply: (out: EngineOutput) => Promise<void> | void, lease?: EarlyLeaseWrites): void {
    this.apply = apply;
    this.lease = lease;
    const { engine, transport, nowNs } = this.opts;
    transport.onReceive((hb, arrivalNs) => {
      const at = this.cadence.receiveTime(arrivalNs, nowNs);
      const out = this.contained('receive', () => engine.receive(hb, at));
      this.cadence.noteReceived(hb.from, at, out);
      this.handle(out);
    });
    // Datagrams that do not authenticate are counted and dropped by the transport; only the
    // diagnosis "this peer uses another key" reaches the engine, as a report (no decision).
    transport.onForeignKey((node, keyId) => engine.noteForeignKey(node, nowNs(), keyId));
    this.timer = setInterval(() => this.pulse(), this.opts.pulseMs);
    this.pulse();
  }

  private pulse(): void {
    this.handle(this.tick());
    this.armCheck();
  }

  private tick(): EngineOutput {
    this.drain();
    const out = metered((us) => { this.tickCpuUs += us; }, () => this.contained('tick', () => this.opts.engine.tick(this.cadence.tickTime(this.opts.nowNs()))));
    this.afterTick(out);
    return out;
  }

  /** Every heartbeat that arrived before a pulse or a check is handled before it (batched or not). */
  private drain(): void {
    try {
      this.opts.transport.drain?.();
    } catch (err) {
      // The socket failed (FARMLB_E_MEMBERSHIP_SOCKET): the pulse goes on; peers' silence is judged as usual.
      this.opts.onError?.(err);
    }
  }

  /**
   * A check at the moment a live peer's silence reaches its limit, when that comes before the
   * next pulse (MembershipEngine.nextDeadlineNs): a failure is found then, not up to a pulse
   * later. At rest every peer is heard each pulse and no deadline falls before the next one:
   * no timer. Nor while a table is being installed: the check's decision would wait behind
   * that install anyway, and a decision between pulses adds a table to a queue already
   * behind — with installs of 5–150 ms the slow-install search found a bucket served twice
   * that way (seed 1, `serve`), so checks are for a data plane that keeps up, and a busy one
   * is left to the pulse as before.
   */
  private armCheck(afterCheck = false): void {
    if (this.checkTimer) clearTimeout(this.checkTimer);
    this.checkTimer = undefined;
    if (this.stopped || this.gate.installing) return;
    let at: bigint | undefined;
    try {
      at = this.opts.engine.nextDeadlineNs();
    } catch (err) {
      // No check: the pulse finds the silence, as it did before checks.
      this.opts.onError?.(err);
    }
    if (at === undefined) return;
    const inNs = at - this.opts.nowNs();
    // A check that decided nothing although a deadline is due (its pulse is overdue): the pulse decides.
    if (inNs >= this.pulseNs || (afterCheck && inNs <= 0n)) return;
    // Timers fire on whole milliseconds, at or after their delay: never before the deadline
    // by more than the loop clock's rounding (a check that finds nothing due arms again).
    this.checkTimer = setTimeout(() => this.check(), inNs <= 0n ? 0 : Math.ceil(Number(inNs) / 1e6));
  }

  private check(): void {
    this.checkTimer = undefined;
    if (this.stopped || this.gate.installing) return;
    this.drain();
    const out = metered((us) => { this.tickCpuUs += us; }, () => this.contained('tick', () => this.opts.engine.checkDeadline(this.cadence.tickTime(this.opts.nowNs())) ?? null));
    if (out) {
      this.afterTick(out);
      this.handle(out);
    }
    this.armCheck(!out);
  }

  private afterTick(out: EngineOutput): void {
    const { transport } = this.opts;
    // Datagrams dropped since the last pulse (junk, another key): read on arrival for a while,
    // so a flood does not sit in the socket buffer, crowding out heartbeats, between pulses.
    const t = transport.stats();
    const dropped = t.badMac + t.malformed + t.wrongSource;
    const noDrops = dropped === this.droppedAtTick;
    this.droppedAtTick = dropped;
    transport.setBatched?.(this.cadence.afterTick(out, this.opts.nowNs(), noDrops));
  }

  /**
   * Runs one engine input; an exception (a bug, or peer data the bounds missed) must not
   * escape into a timer or socket callback and end the process, nor leave the node serving
   * on a decision it could not make: it is logged, and the node revokes its lease and stays
   * WAIT until a pulse decides without failing (docs/security.md, "Values from peers").
   */
  private contained<T extends EngineOutput | null>(what: string, fn: () => T): EngineOutput | T {
    try {
      const out = fn();
      if (out === null) return out;
      if (what === 'tick') this.failed = false;
      // After a failed pulse, no renewal from a heartbeat until a pulse succeeds.
      if (this.failed && out.leaseDeadlineNs !== undefined && out.leaseDeadlineNs > 0n) delete out.leaseDeadlineNs;
      return out;
    } catch (err) {
      this.failed = true;
      this.opts.onError?.(err);
      return { state: 'WAIT', cause: `a membership decision failed (${what}); see the log`, leaseDeadlineNs: 0n, events: [] };
    }
  }

  cpu(): MembershipCpu {
    const t = this.opts.transport.stats();
    return { sendSeconds: t.sendCpuUs / 1e6, receiveSeconds: t.receiveCpuUs / 1e6, tickSeconds: this.tickCpuUs / 1e6 };
  }

  datagrams(): MembershipDatagrams {
    const { transport } = this.opts;
    const t = transport.stats();
    const droppedBySource = [...transport.drops()].map(([source, count]) => ({ source, count }))
      .sort((a, b) => b.count - a.count || (a.source < b.source ? -1 : 1)).slice(0, DROP_SOURCES_REPORTED);
    return { sent: t.sent, sendErrors: t.sendErrors, dropped: transport.dropReasons(), droppedBySource };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.checkTimer) clearTimeout(this.checkTimer);
    await this.queue;
    await this.opts.transport.close();
  }

  setLocalHealth(ok: boolean, cause: string): void {
    this.handle(this.opts.engine.setLocalHealth(ok, cause));
  }

  setPower(node: string, power: number, group?: string): void {
    this.handle(this.opts.engine.setPower(node, power, group));
  }

  clearPower(node: string, group?: string): void {
    this.handle(this.opts.engine.clearPower(node, group));
  }

  setKeys(key: Buffer, accept: readonly Buffer[]): void {
    this.opts.transport.setKeys(key, accept);
  }

  stageConfig(staged: { digest: string; groups: GroupPowers[] } | null): void {
    // The next heartbeat advertises it; the switch comes from a pulse (every node has it).
    this.opts.engine.stageConfig(staged);
  }

  setHoldings(sample: HoldingsSample): void {
    // No decision follows from it at once: the next pulse's heartbeat carries it.
    this.opts.engine.setHoldings(sample);
    this.leases.noteHoldings(sample);
  }

  status(): MembershipStatus {
    return this.opts.engine.status(this.opts.nowNs());
  }

  powerOverrides(): PowerOverrides {
    return this.opts.engine.powerOverrides();
  }

  /**
   * Applies decisions one at a time; a heartbeat leaves only after its decision applied —
   * except while a table is being installed: then it leaves at once, reporting the table the
   * data plane has (heartbeat-gate.ts); a renewal on a table of the data plane's lineage
   * is written at once, and a decision that leaves the lineage of a table still on its way
   * revokes the lease at once (lease-gate.ts).
   */
  private handle(out: EngineOutput): void {
    if (this.stopped) return;
    // (The whole decision: its heartbeat may leave early below, and names its leader.)
    if (this.leases.leaves(out)) this.revokeEarly();
    const early = this.gate.early(out);
    if (early.now) this.opts.transport.send(early.now);
    out = this.renewEarly(early.queued);
    // Most received heartbeats change nothing to apply: no table, lease, heartbeat, event or
    // state. Queueing them through the daemon would cost more than the heartbeat itself.
    const idle = !out.table && out.leaseDeadlineNs === undefined && !out.send && out.events.length === 0
      && out.state === this.lastState && out.cause === this.lastCause;
    if (idle) return;
    this.lastState = out.state;
    this.lastCause = out.cause;
    this.leases.queued(out);
    const step = this.queue.then(async () => {
      try {
        // A renewal of a lineage left since (leaves()) is not written: the lease was revoked.
        await this.apply?.(this.leases.leftLineage(out) ? withoutRenewal(out) : out);
      } catch (err) {
        // Not applied: no heartbeat reports its table (the next pulse decides again).
        this.gate.failed(out);
        this.leases.failed(out);
        throw err;
      }
      this.leases.applied(out);
      if (out.table) this.opts.engine.noteApplied(out.table, this.opts.nowNs());
      const hb = this.gate.applied(out, () => this.opts.engine.beat(this.opts.nowNs()));
      if (hb && !this.stopped) this.opts.transport.send(hb);
    });
    this.queue = step.catch((err) => this.opts.onError?.(err));
  }

  /** `out` without its renewal when that renewal was written ahead of the queue (lease-gate.ts). */
  private renewEarly(out: EngineOutput): EngineOutput {
    const deadline = this.leases.early(out);
    if (deadline === undefined || !this.lease) return out;
    let written = false;
    try {
      written = this.lease.renew(deadline);
    } catch (err) {
      // Not written: the decision keeps its renewal, applied in order.
      this.opts.onError?.(err);
    }
    return written ? withoutRenewal(out) : out;
  }

  private revokeEarly(): void {
    try {
      this.lease?.revoke('the membership follows another leader while a table of the former is still being installed');
    } catch (err) {
      // Not written: the renewals of the lineage left are still not written (leftLineage).
      this.opts.onError?.(err);
    }
  }
}

/** `out` without its renewal (written ahead of the queue, or of a lineage left). */
export function withoutRenewal(out: EngineOutput): EngineOutput {
  const { leaseDeadlineNs: _d, leaseLineage: _l, ...rest } = out;
  return rest;
}
