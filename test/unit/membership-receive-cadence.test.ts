// When received heartbeats may wait for the pulse (src/membership/receive-cadence.ts).

import { describe, expect, it } from 'vitest';
import { ReceiveCadence } from '../../src/membership/receive-cadence.js';
import type { EngineOutput } from '../../src/membership/types.js';

const P = 50_000_000n;
const calm = (): EngineOutput => ({ state: 'UP', cause: '', events: [] });

function settled(c: ReceiveCadence, fromTick: number, ticks: number, peers: string[] = ['n2']): boolean {
  let batched = false;
  for (let i = fromTick; i < fromTick + ticks; i++) {
    const now = BigInt(i) * P;
    for (const p of peers) c.noteReceived(p, now - P / 2n, calm());
    batched = c.afterTick(calm(), now);
  }
  return batched;
}

describe('receive cadence', () => {
  it('batches after settleTicks calm pulses, and not before', () => {
    const c = new ReceiveCadence({ pulseNs: P, forgetNs: 12n * P });
    expect(settled(c, 1, 4)).toBe(false);
    expect(settled(c, 5, 1)).toBe(true);
  });

  it('a late peer, a table, an event, a node not UP or a dropped datagram reads on arrival again', () => {
    const c = new ReceiveCadence({ pulseNs: P, forgetNs: 12n * P });
    expect(settled(c, 1, 5)).toBe(true);
    // n2 silent for 2 pulses: late.
    expect(c.afterTick(calm(), 7n * P)).toBe(false);
    expect(settled(c, 8, 5)).toBe(true);
    c.noteReceived('n2', 13n * P, { ...calm(), events: [{ type: 'leader', leader: 'n2' }] });
    expect(c.afterTick(calm(), 13n * P)).toBe(false);
    expect(settled(c, 14, 5)).toBe(true);
    expect(c.afterTick({ ...calm(), state: 'WAIT' }, 19n * P)).toBe(false);
    expect(settled(c, 20, 5)).toBe(true);
    c.noteReceived('n2', 25n * P, calm());
    expect(c.afterTick(calm(), 25n * P, false)).toBe(false);
  });

  it('a peer silent past forgetNs (gone) no longer holds batching off', () => {
    const c = new ReceiveCadence({ pulseNs: P, forgetNs: 12n * P });
    settled(c, 1, 5, ['n2', 'n3']);
    // n3 stops at tick 5; n2 goes on. Late until 12 pulses of silence, then forgotten.
    let batched = true;
    let late = false;
    let firstBatched: number | undefined;
    for (let i = 6; i < 30; i++) {
      c.noteReceived('n2', BigInt(i) * P - P / 2n, calm());
      batched = c.afterTick(calm(), BigInt(i) * P);
      if (!batched) late = true;
      if (batched && late && firstBatched === undefined) firstBatched = i;
    }
    expect(batched).toBe(true);
    // n3's last at 4.5 pulses: forgotten at 16.5, then 5 calm pulses.
    expect(firstBatched).toBe(21);
  });

  it('receive times never go backwards nor before the last pulse', () => {
    const c = new ReceiveCadence({ pulseNs: P, forgetNs: 12n * P });
    expect(c.tickTime(100n)).toBe(100n);
    expect(c.receiveTime(90n, () => 0n)).toBe(100n);
    expect(c.receiveTime(120n, () => 0n)).toBe(120n);
    expect(c.receiveTime(110n, () => 0n)).toBe(120n);
    expect(c.receiveTime(undefined, () => 130n)).toBe(130n);
    expect(c.tickTime(125n)).toBe(130n);
  });
});
