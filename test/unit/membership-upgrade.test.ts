// Heartbeat v2 in a rolling upgrade (docs/membership.md, "Heartbeats"): nodes of the release
// before v2 send v1 and refuse v2; upgraded nodes read both and speak v1 while such a node is
// alive, so a half-upgraded farm keeps one membership and one table.

import { describe, expect, it } from 'vitest';
import { Simulator } from '../helpers/membership-sim.js';
import { DEFAULT_TIMING } from '../../src/membership/timing.js';
import { frameBody } from '../../src/membership/codec.js';

const names = Array.from({ length: 5 }, (_, i) => `node${i + 1}`);
const pulse = DEFAULT_TIMING.pulseMs;

/** Body versions of the datagrams sent in the last `ms`, by sender. */
function versionsSent(sim: Simulator, ms: number): Map<string, Set<number>> {
  const out = new Map<string, Set<number>>();
  for (const w of sim.wire) {
    if (w.atMs < sim.nowMs - ms) continue;
    const v = (JSON.parse(frameBody(w.bytes).toString()) as { v: number }).v;
    out.set(w.from, (out.get(w.from) ?? new Set()).add(v));
  }
  return out;
}

function oneTable(sim: Simulator, nodes: string[]): boolean {
  const digests = new Set(nodes.map((n) => sim.engine(n).status().tableDigest));
  return digests.size === 1 && sim.converged(nodes);
}

describe('heartbeat v2: rolling upgrade', () => {
  it('a farm of v2 nodes speaks v2', () => {
    const sim = new Simulator({ nodes: names, seed: 3 });
    sim.startAll();
    expect(sim.run(3000, () => sim.converged(names))).toBe(true);
    sim.run(1000);
    for (const n of names) expect([...versionsSent(sim, 500).get(n)!]).toEqual([2]);
    expect(sim.rejectedByCodec).toBe(0);
  });

  it('a half-upgraded farm (two nodes speak only v1) converges to one table and stays one membership', () => {
    const sim = new Simulator({ nodes: names, seed: 5, v1Only: ['node1', 'node4'] });
    sim.startAll();
    expect(sim.run(4000, () => oneTable(sim, names))).toBe(true);
    const rejected = sim.rejectedByCodec;
    const epoch = sim.engine('node2').status().epoch;
    sim.run(10_000);
    // Only the first v2 heartbeats, sent before a v1 peer was heard, were refused.
    expect(sim.rejectedByCodec).toBe(rejected);
    for (const n of names) expect([...versionsSent(sim, 2000).get(n)!]).toEqual([1]);
    expect(oneTable(sim, names)).toBe(true);
    expect(sim.engine('node2').status().epoch).toBe(epoch);
    for (const n of names) expect(sim.eventsOf(n, 'peer_lost')).toEqual([]);
  });

  it('upgrades node by node with one table throughout, and speaks v2 within mlost pulses of the last v1 node', () => {
    const old = ['node1', 'node2', 'node3'];
    const sim = new Simulator({ nodes: names, seed: 9, v1Only: old });
    sim.startAll();
    expect(sim.run(4000, () => oneTable(sim, names))).toBe(true);
    for (const n of old) {
      sim.upgrade(n);
      expect(sim.run(4000, () => oneTable(sim, names)), `after upgrading ${n}`).toBe(true);
      sim.run(1000);
      expect(oneTable(sim, names)).toBe(true);
    }
    const rejected = sim.rejectedByCodec;
    sim.run((DEFAULT_TIMING.mlostCount + 2) * pulse);
    for (const n of names) expect([...versionsSent(sim, 2 * pulse).get(n)!]).toEqual([2]);
    sim.run(5000);
    expect(sim.rejectedByCodec).toBe(rejected);
    expect(oneTable(sim, names)).toBe(true);
  });

  it('a v1-only node that fails over in a mixed farm loses its buckets to the others as in a v2 farm', () => {
    const sim = new Simulator({ nodes: names, seed: 13, v1Only: ['node3'] });
    sim.startAll();
    expect(sim.run(4000, () => oneTable(sim, names))).toBe(true);
    sim.crash('node3');
    const rest = names.filter((n) => n !== 'node3');
    expect(sim.run(5000, () => oneTable(sim, rest) && !sim.engine('node1').status().view.includes('node3'))).toBe(true);
    // node3 gone: the others go back to v2.
    sim.run((DEFAULT_TIMING.mlostCount + 2) * pulse);
    for (const n of rest) expect([...versionsSent(sim, 2 * pulse).get(n)!]).toEqual([2]);
  });
});
