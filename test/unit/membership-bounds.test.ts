// Values from peers and from persisted state are bounded before use (docs/security.md,
// "Values from peers"): one authenticated heartbeat, or one powers.json, cannot crash a
// leader or wedge the farm; a node whose configuration differs has no say; an exception in
// a decision is contained and leaves the node safe (lease revoked).

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Simulator } from '../helpers/membership-sim.js';
import {
  BuiltinMembership, createMemoryNetwork, decodeHeartbeat, encodeHeartbeat, type EngineOutput, type Heartbeat, type MembershipEngine,
} from '../../src/membership/index.js';
import { readPowers } from '../../src/daemon/membership-source.js';

const key = Buffer.alloc(32, 7);
const nodes = ['node1', 'node2', 'node3'];

function farm(): Simulator {
  const sim = new Simulator({ nodes, seed: 11, key });
  sim.startAll();
  expect(sim.run(3000, () => sim.converged(nodes))).toBe(true);
  return sim;
}

/** node2's latest heartbeat to node1, changed by `edit`, re-signed as a key holder would, as a new incarnation. */
function forged(sim: Simulator, edit: (hb: Heartbeat) => Heartbeat): Buffer {
  const last = sim.wire.filter((w) => w.from === 'node2' && w.to === 'node1').at(-1)!;
  const hb = decodeHeartbeat(last.bytes, key);
  return encodeHeartbeat(edit({ ...hb, incarnation: hb.incarnation + 1000n }), key);
}

function rejections(sim: Simulator, node: string): string[] {
  return sim.eventsOf(node, 'rejected').map((e) => (e.event.type === 'rejected' ? e.event.reason : ''));
}

describe('membership: values from peers are bounded', () => {
  it('a power override of 2^50 from a key holder is refused; the leader keeps deciding', () => {
    const sim = farm();
    const before = sim.node('node1').engine!.powerOverrides();
    sim.inject('node1', forged(sim, (hb) => ({ ...hb, powers: { version: 99, origin: 'node2', entries: [{ node: 'node2', group: null, power: 2 ** 50 }] } })));
    sim.run(1000);
    expect(sim.node('node1').engine!.powerOverrides()).toEqual(before);
    expect(rejections(sim, 'node1')).toContain('a power is not an integer from 0 to 1000000');
    sim.crash('node3');
    expect(sim.run(5000, () => sim.converged(['node1', 'node2']))).toBe(true);
  });

  it('an epoch of 2^53−1 is refused: the next table stays encodable and the farm keeps its view', () => {
    const sim = farm();
    sim.inject('node1', forged(sim, (hb) => ({ ...hb, epoch: Number.MAX_SAFE_INTEGER })));
    sim.crash('node3');
    expect(sim.run(5000, () => sim.converged(['node1', 'node2']))).toBe(true);
    expect(sim.node('node1').engine!.status().epoch).toBeLessThan(1000);
    expect(rejections(sim, 'node1')).toContain('epoch out of range');
  });

  it('an incarnation above 2^64 is refused', () => {
    const sim = farm();
    sim.inject('node1', forged(sim, (hb) => ({ ...hb, incarnation: 2n ** 64n })));
    expect(rejections(sim, 'node1')).toContain('incarnation out of range');
  });

  it('a node whose config digest differs has no say in powers (it is only heard)', () => {
    const sim = farm();
    const before = sim.node('node1').engine!.powerOverrides();
    sim.inject('node1', forged(sim, (hb) => ({ ...hb, configDigest: 'another', powers: { version: 99, origin: 'node2', entries: [{ node: 'node3', group: null, power: 0 }] } })));
    sim.run(500);
    expect(sim.node('node1').engine!.powerOverrides()).toEqual(before);
  });
});

describe('membership: persisted powers.json is validated on read', () => {
  const log = pino({ level: 'silent' });
  const groups = [{ name: 'web', powers: new Map([['n1', 1], ['n2', 1]]) }];

  it.each([
    ['a power of 2^50', { version: 3, origin: 'n1', entries: [{ node: 'n1', group: null, power: 2 ** 50 }] }],
    ['an unknown node', { version: 3, origin: 'n1', entries: [{ node: 'evil', group: null, power: 1 }] }],
    ['an unknown group', { version: 3, origin: 'n1', entries: [{ node: 'n1', group: 'nope', power: 1 }] }],
    ['a version of 2^53', { version: 2 ** 53, origin: 'n1', entries: [] }],
    ['not an object', [1, 2]],
  ])('ignores a record with %s', async (_what, record) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'flb-powers-'));
    try {
      await writeFile(path.join(dir, 'powers.json'), JSON.stringify(record));
      expect(await readPowers(dir, log, ['n1', 'n2'], groups)).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads a valid record', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'flb-powers-'));
    try {
      const record = { version: 3, origin: 'n1', entries: [{ node: 'n2', group: 'web', power: 0 }] };
      await writeFile(path.join(dir, 'powers.json'), JSON.stringify(record));
      expect(await readPowers(dir, log, ['n1', 'n2'], groups)).toEqual(record);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('membership: a throwing decision is contained', () => {
  it('revokes the lease, reports WAIT and keeps the process up; a later pulse decides again', async () => {
    const net = createMemoryNetwork(1);
    let throwing = true;
    const ok: EngineOutput = { state: 'UP', cause: '', leaseDeadlineNs: 5n, events: [] };
    // A stand-in for the engine's decision step: the property under test is BuiltinMembership's containment.
    const engine = {
      tick: () => { if (throwing) throw new Error('boom'); return { ...ok }; },
      nextDeadlineNs: () => undefined,
      noteForeignKey: () => {},
    } as unknown as MembershipEngine;
    const errors: unknown[] = [];
    const m = new BuiltinMembership({ engine, transport: net.transport('n1', key), pulseMs: 10, nowNs: () => 1n, onError: (e) => errors.push(e) });
    const applied: EngineOutput[] = [];
    m.start((out) => { applied.push(out); });
    try {
      for (let i = 0; i < 200 && applied.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(applied[0]).toMatchObject({ state: 'WAIT', leaseDeadlineNs: 0n });
      expect(errors.length).toBeGreaterThan(0);
      throwing = false;
      for (let i = 0; i < 200 && !applied.some((o) => o.state === 'UP'); i++) await new Promise((r) => setTimeout(r, 5));
      expect(applied.at(-1)).toMatchObject({ state: 'UP', leaseDeadlineNs: 5n });
    } finally {
      await m.stop();
    }
  });
});
