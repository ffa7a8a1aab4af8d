// Membership timing: defaults and the kernel lease derived from the pulse (docs/membership.md,
// "Defaults and why").

import { FarmlbError } from '../errors.js';
import type { FarmTopology } from '../config/types.js';
import type { MembershipTiming } from './types.js';

/**
 * Defaults for sub-300 ms failover: a follower is lost after 250 ms of silence, the leader
 * after 350 ms; the lease (200 ms) runs out before a follower is declared lost, so the
 * takeover never waits for it. Measured in the simulator (docs/membership.md).
 */
export const DEFAULT_TIMING: MembershipTiming = { pulseMs: 50, slostCount: 5, mlostCount: 7, leaseMs: 200, leaseClockSlackMs: 20 };

/** Fixed part of the margin for clock-rate differences between nodes. */
const DRIFT_MARGIN_FIXED_NS = 1_000_000n;

/** What a taker adds to a peer's last evidence + lease before its buckets are surely free. */
export function leaseWaitNs(timing: MembershipTiming): bigint {
  const leaseNs = BigInt(timing.leaseMs) * 1_000_000n;
  // 1000 ppm of clock-rate difference over one lease, plus a fixed millisecond.
  return leaseNs + leaseClockSlackNs(timing) + leaseNs / 1000n + DRIFT_MARGIN_FIXED_NS;
}

/** The data plane's lease clock slack in ns: a lease deadline + this is when it surely stops serving. */
export function leaseClockSlackNs(timing: Pick<MembershipTiming, 'leaseClockSlackMs'>): bigint {
  return BigInt(Math.round(timing.leaseClockSlackMs * 1e6));
}

/**
 * Timing from <farm pulse mlost_count slost_count>: the lease is four pulses, capped so it
 * runs out (with the data plane's clock slack and the drift margin) before a follower is
 * declared lost. The daemon passes the data plane's slack; the default is DEFAULT_TIMING's.
 */
export function timingFromTopology(
  farm: Pick<FarmTopology, 'pulseMs' | 'slostCount' | 'mlostCount'>,
  leaseClockSlackMs = DEFAULT_TIMING.leaseClockSlackMs,
): MembershipTiming {
  const lostMs = farm.pulseMs * farm.slostCount;
  const capMs = Math.floor((lostMs - leaseClockSlackMs - 1) / 1.001);
  const leaseMs = Math.min(4 * farm.pulseMs, capMs);
  const timing = { pulseMs: farm.pulseMs, slostCount: farm.slostCount, mlostCount: farm.mlostCount, leaseMs, leaseClockSlackMs };
  checkTiming(timing);
  return timing;
}

/** Refuses timings that cannot keep a lease alive between two heartbeats. */
export function checkTiming(t: MembershipTiming): void {
  const problems: string[] = [];
  if (!(t.pulseMs >= 1)) problems.push(`pulse ${t.pulseMs} ms`);
  if (!(t.slostCount >= 2)) problems.push(`slost_count ${t.slostCount} (at least 2)`);
  if (!(t.mlostCount >= t.slostCount)) problems.push(`mlost_count ${t.mlostCount} below slost_count ${t.slostCount}`);
  if (!(t.leaseMs >= 1.5 * t.pulseMs)) problems.push(`lease ${t.leaseMs} ms shorter than 1.5 pulses: it would lapse between two heartbeats`);
  if (problems.length > 0) {
    throw new FarmlbError('FARMLB_E_MEMBERSHIP_TIMING', { detail: problems.join('; ') });
  }
}
