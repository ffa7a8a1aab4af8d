// Starting a farm: a node leads a view only once the peers it hears hear it too (or its
// discovery grace is over), and slow table installs (a loaded host) slow convergence but
// never let two nodes serve one bucket. The simulator checks the no-double-serving
// invariant after every applied decision and throws on a violation.

import { describe, expect, it } from 'vitest';
import { Simulator } from '../helpers/membership-sim.js';
import { DEFAULT_TIMING } from '../../src/membership/timing.js';

const { pulseMs, mlostCount } = DEFAULT_TIMING;

function names(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `node${String(i + 1).padStart(2, '0')}`);
}

describe('membership: start', () => {
  it('a starting node that hears a peer in contact with nobody waits for mutual contact until its discovery grace ends', () => {
    const nodes = names(3);
    const sim = new Simulator({ nodes, seed: 3 });
    // node03 reaches node01 only and hears nobody: node01 hears it, and no heartbeat (direct
    // or relayed) says node03 hears anyone.
    sim.setLink('node01', 'node03', false);
    sim.setLink('node02', 'node03', false);
    sim.setLink('node03', 'node02', false);
    sim.startAll();
    expect(sim.run(3000, () => sim.node('node01').state === 'UP')).toBe(true);
    const firstUp = sim.eventsOf('node01', 'state').find((e) => e.event.type === 'state' && e.event.state === 'UP')!;
    // Its first tick is within one pulse of the start; the grace is mlost_count pulses after it.
    expect(firstUp.atMs).toBeGreaterThanOrEqual(mlostCount * pulseMs);
    const waits = sim.eventsOf('node01', 'state').filter((e) => e.atMs < firstUp.atMs);
    expect(waits.every((e) => e.event.type === 'state' && e.event.state === 'WAIT')).toBe(true);
  });

  it('a farm whose peers all hear each other leads as soon as contact is mutual, well before the grace ends', () => {
    const nodes = names(3);
    const sim = new Simulator({ nodes, seed: 3 });
    sim.startAll();
    expect(sim.run(3000, () => sim.converged(nodes))).toBe(true);
    const firstUp = sim.eventsOf('node01', 'state').find((e) => e.event.type === 'state' && e.event.state === 'UP')!;
    expect(firstUp.atMs).toBeLessThan(mlostCount * pulseMs);
  });

  it('slow table installs (20–90 ms, a loaded host) delay convergence after a crash but never serve a bucket twice', () => {
    const nodes = names(16);
    const sim = new Simulator({ nodes, seed: 5, installMs: [20, 90] });
    sim.startAll();
    expect(sim.run(10_000, () => sim.converged(nodes))).toBe(true);
    sim.run(2000);
    for (const victim of ['node16', 'node01']) {
      sim.crash(victim);
      const survivors = nodes.filter((n) => n !== victim && sim.node(n).engine !== undefined);
      expect(sim.run(5000, () => sim.converged(survivors))).toBe(true);
      sim.run(1000);
    }
    expect(sim.violations).toEqual([]);
  });
});
