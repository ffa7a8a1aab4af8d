// Identity and freshness (docs/membership.md, "Replay protection"): a new incarnation of a
// peer counts only once it acknowledges a recent heartbeat of ours, so a recording replayed
// after our restart never revives a dead peer; an incarnation lower than the last one (a
// clock stepped back) is accepted from a live peer; a forged huge incarnation locks no one
// out; the incarnation is a persisted counter, not the wall clock.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Simulator } from '../helpers/membership-sim.js';
import { decodeHeartbeat, encodeHeartbeat } from '../../src/membership/index.js';
import { incarnationFile, nextIncarnation } from '../../src/membership/incarnation.js';
import { DEFAULT_TIMING } from '../../src/membership/timing.js';

const key = Buffer.alloc(32, 7);
const nodes = ['node1', 'node2', 'node3'];
const pulse = DEFAULT_TIMING.pulseMs;

function farm(): Simulator {
  const sim = new Simulator({ nodes, seed: 21, key });
  sim.startAll();
  expect(sim.run(3000, () => sim.converged(nodes))).toBe(true);
  return sim;
}

describe('membership: freshness of incarnations', () => {
  it('a dead peer\'s heartbeats replayed at their pace after our restart never revive it; we keep our lease', () => {
    const sim = farm();
    const from = sim.wire.length;
    sim.run(2000);
    const recording = sim.wire.slice(from).filter((w) => w.from === 'node3' && w.to === 'node1');
    expect(recording.length).toBeGreaterThan(20);
    sim.crash('node3');
    expect(sim.run(5000, () => sim.converged(['node1', 'node2']))).toBe(true);
    sim.crash('node1');
    sim.run(500);
    sim.start('node1');
    expect(sim.run(5000, () => sim.converged(['node1', 'node2']))).toBe(true);
    for (const w of recording) {
      sim.inject('node1', w.bytes);
      sim.run(pulse);
      const s = sim.node('node1').engine!.status();
      expect(s.view).toEqual(['node1', 'node2']);
      expect(s.peers.find((p) => p.node === 'node3')?.alive).toBe(false);
      expect(s.state).toBe('UP');
    }
    expect(sim.converged(['node1', 'node2'])).toBe(true);
  });

  it('a peer restarted with a lower incarnation (its clock stepped back) rejoins', () => {
    const sim = farm();
    sim.crash('node2');
    expect(sim.run(5000, () => sim.converged(['node1', 'node3']))).toBe(true);
    sim.node('node2').incarnation = 5n; // start() adds 1: 6, far below the 1001 its peers know
    sim.start('node2');
    expect(sim.run(5000, () => sim.converged(nodes))).toBe(true);
  });

  it('a forged huge incarnation in a node\'s name locks it out of nothing', () => {
    const sim = farm();
    const last = sim.wire.filter((w) => w.from === 'node2' && w.to === 'node1').at(-1)!;
    const hb = decodeHeartbeat(last.bytes, key);
    sim.inject('node1', encodeHeartbeat({ ...hb, incarnation: 2n ** 63n, seq: 1, acks: [] }, key));
    sim.run(1000);
    expect(sim.converged(nodes)).toBe(true);
    expect(sim.node('node1').engine!.status().peers.find((p) => p.node === 'node2')?.incarnation).toBe(hb.incarnation.toString());
  });
});

describe('incarnation counter', () => {
  it('grows by one per start from the persisted value, whatever the wall clock says', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'flb-inc-'));
    try {
      const first = await nextIncarnation(dir, () => 1_000_000n);
      expect(first).toBe(1_000_000n);
      // The clock stepped back by an hour: the counter does not care.
      expect(await nextIncarnation(dir, () => 5n)).toBe(1_000_001n);
      expect(await nextIncarnation(dir, () => 5n)).toBe(1_000_002n);
      // A tampered file restarts from the clock rather than wrapping or throwing.
      await writeFile(incarnationFile(dir), '99999999999999999999999\n');
      expect(await nextIncarnation(dir, () => 7n)).toBe(7n);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
