// Failover timings of the default timing in the simulator: kill a random node (leader or
// follower) of a steady farm, and measure detection (kill → the leader declares it lost)
// and takeover (kill → every bucket it owned is served by a survivor). The numbers are
// printed for docs/membership.md; the assertions keep them within the budget
// (p50 ≤ 300 ms, p99 ≤ 500 ms, network and install times here near zero).

import { describe, expect, it } from 'vitest';
import { Simulator } from '../helpers/membership-sim.js';
import { LEASE_CLOCK_SLACK_NS } from '../../src/dataplane/abi.js';
import { DEFAULT_TIMING, leaseWaitNs, timingFromTopology } from '../../src/membership/timing.js';
import type { MembershipTiming } from '../../src/membership/types.js';

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

function measure(timing: MembershipTiming, trials: number, nodes = 4): { takeover: number[]; detection: number[]; leaderTakeover: number[] } {
  const names = Array.from({ length: nodes }, (_, i) => `node${i + 1}`);
  const takeover: number[] = [];
  const detection: number[] = [];
  const leaderTakeover: number[] = [];
  for (let t = 0; t < trials; t++) {
    const sim = new Simulator({ nodes: names, seed: 1000 + t, timing });
    sim.startAll();
    if (!sim.run(5000, () => sim.converged(names))) throw new Error('no convergence');
    // A random moment within a pulse, so the kill is not aligned with heartbeats.
    sim.run(sim.random() * 10 * timing.pulseMs);
    const victim = names[t % nodes]!;
    const owned = sim.node(victim).rows[0]!.map((o, b) => (o === victim ? b : -1)).filter((b) => b >= 0);
    const leader = sim.engine(names[0]!).status().leader;
    sim.crash(victim);
    const killedAt = sim.nowMs;
    const survivors = names.filter((n) => n !== victim);
    const taken = () => {
      const servers = sim.servers(0);
      return owned.every((b) => servers[b]!.length === 1 && servers[b]![0] !== victim);
    };
    if (!sim.run(5000, taken)) throw new Error('no takeover');
    const ms = sim.nowMs - killedAt;
    (victim === leader ? leaderTakeover : takeover).push(ms);
    const newLeader = survivors[0]!;
    const lost = sim.eventsOf(newLeader, 'peer_lost').find((e) => e.atMs >= killedAt);
    if (lost) detection.push(lost.atMs - killedAt);
  }
  return { takeover, detection, leaderTakeover };
}

describe('membership timings (simulated, default timing)', () => {
  it('takes over a killed node\'s buckets within the failover budget: p50 ≤ 300 ms, p99 ≤ 500 ms', () => {
    const r = measure(DEFAULT_TIMING, 60);
    const all = [...r.takeover, ...r.leaderTakeover];
    const report = {
      timing: DEFAULT_TIMING,
      followerTakeoverMs: { p50: percentile(r.takeover, 50), p99: percentile(r.takeover, 99), max: Math.max(...r.takeover) },
      leaderTakeoverMs: { p50: percentile(r.leaderTakeover, 50), p99: percentile(r.leaderTakeover, 99), max: Math.max(...r.leaderTakeover) },
      detectionMs: { p50: percentile(r.detection, 50), p99: percentile(r.detection, 99) },
      allTakeoverMs: { p50: percentile(all, 50), p99: percentile(all, 99) },
    };
    console.log(JSON.stringify(report));
    expect(report.allTakeoverMs.p50).toBeLessThanOrEqual(300);
    expect(report.allTakeoverMs.p99).toBeLessThanOrEqual(500);
  });

  it('derives a lease that runs out before a follower is declared lost, for SafeKit\'s own timing too', () => {
    expect(timingFromTopology({ pulseMs: 50, slostCount: 5, mlostCount: 7 }).leaseMs).toBe(200);
    expect(timingFromTopology({ pulseMs: 100, slostCount: 10, mlostCount: 20 }).leaseMs).toBe(400);
    const fast = timingFromTopology({ pulseMs: 20, slostCount: 4, mlostCount: 5 });
    expect(fast.leaseMs).toBeLessThan(20 * 4 - 20);
    const r = measure(fast, 20, 3);
    console.log(JSON.stringify({ fast, takeoverP50: percentile([...r.takeover, ...r.leaderTakeover], 50) }));
  });

  it('takes the lease clock slack from the data plane: the default is its value, and a given slack shortens the lease cap and lengthens the takeover wait', () => {
    expect(DEFAULT_TIMING.leaseClockSlackMs * 1e6).toBe(LEASE_CLOCK_SLACK_NS);
    expect(timingFromTopology({ pulseMs: 20, slostCount: 4, mlostCount: 5 }, LEASE_CLOCK_SLACK_NS / 1e6)).toEqual(
      timingFromTopology({ pulseMs: 20, slostCount: 4, mlostCount: 5 }),
    );
    const slow = timingFromTopology({ pulseMs: 20, slostCount: 4, mlostCount: 5 }, 40);
    expect(slow.leaseClockSlackMs).toBe(40);
    expect(slow.leaseMs).toBeLessThan(timingFromTopology({ pulseMs: 20, slostCount: 4, mlostCount: 5 }).leaseMs);
    expect(leaseWaitNs({ ...DEFAULT_TIMING, leaseClockSlackMs: 40 }) - leaseWaitNs(DEFAULT_TIMING)).toBe(20_000_000n);
  });
});
