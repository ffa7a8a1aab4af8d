// When received heartbeats may wait for the pulse (docs/membership.md, "Batched receive";
// docs/benchmarks.md, "Heartbeat CPU at 16 nodes: batched receive"). Each received datagram
// woken for costs a daemon ~65 µs at 16 nodes, ten times the work it carries: at rest the
// pulse reads every heartbeat of the last pulse in its own wake-up instead (each with its
// kernel arrival time, so liveness is what it would have been). While anything is happening
// — a peer late, a table, an event, a node not UP — every datagram is read as it arrives,
// so no reaction (install, takeover, fence) waits for a pulse.
//
// Invariants guarded here:
// - Batched only after `settleTicks` calm pulses in a row: UP, no table, no event, no datagram
//   dropped, every peer heard within `lateNs` (or silent long enough to be forgotten) — afterTick.
// - Any decision from a received heartbeat ends batching at once — noteReceived.
// - Times a heartbeat is handled with never go backwards, nor before the last pulse: a
//   later time than its arrival is only later evidence (liveness errs on the side of keeping
//   a peer, never of losing it early) — receiveTime.

import type { EngineOutput } from './types.js';

export interface ReceiveCadenceOptions {
  pulseNs: bigint;
  /** Calm pulses in a row before batching (default 5). */
  settleTicks?: number;
  /** A peer not heard for longer than this is late: no batching (default 1.5 pulses). */
  lateNs?: bigint;
  /** A peer silent for longer than this no longer holds batching off (a node that is gone). */
  forgetNs: bigint;
}

export class ReceiveCadence {
  private calmTicks = 0;
  private readonly lastHeardNs = new Map<string, bigint>();
  private floorNs = 0n;
  private readonly settleTicks: number;
  private readonly lateNs: bigint;

  constructor(private readonly opts: ReceiveCadenceOptions) {
    this.settleTicks = opts.settleTicks ?? 5;
    this.lateNs = opts.lateNs ?? (opts.pulseNs * 3n) / 2n;
  }

  /**
   * The time to hand a heartbeat to the engine with: its arrival time (now when unknown),
   * raised to the latest time already handed (a pulse or another heartbeat).
   */
  receiveTime(arrivalNs: bigint | undefined, nowNs: () => bigint): bigint {
    const t = arrivalNs ?? nowNs();
    if (t > this.floorNs) this.floorNs = t;
    return this.floorNs;
  }

  /** The time of a pulse (a tick): later receives are not handled before it. */
  tickTime(nowNs: bigint): bigint {
    if (nowNs > this.floorNs) this.floorNs = nowNs;
    return this.floorNs;
  }

  /** A heartbeat of `from` handled at `atNs`, and the engine's decision on it. */
  noteReceived(from: string, atNs: bigint, out: EngineOutput): void {
    this.lastHeardNs.set(from, atNs);
    if (!calm(out)) this.calmTicks = 0;
  }

  /**
   * After a pulse: may received heartbeats wait for the next one? `noDrops`: the transport
   * dropped nothing since the last pulse (junk on the port reads on arrival: a flood must not
   * fill the socket buffer between two pulses).
   */
  afterTick(out: EngineOutput, nowNs: bigint, noDrops = true): boolean {
    this.calmTicks = noDrops && calm(out) && this.peersOnTime(nowNs) ? this.calmTicks + 1 : 0;
    return this.calmTicks >= this.settleTicks;
  }

  private peersOnTime(nowNs: bigint): boolean {
    for (const at of this.lastHeardNs.values()) {
      const age = nowNs - at;
      if (age > this.lateNs && age < this.opts.forgetNs) return false;
    }
    return true;
  }
}

/** Nothing to react to: serving, no table to install, no event, no revoked lease. */
function calm(out: EngineOutput): boolean {
  return out.state === 'UP' && !out.table && out.events.length === 0 && out.leaseDeadlineNs !== 0n;
}
