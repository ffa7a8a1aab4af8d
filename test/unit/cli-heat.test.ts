// `farmlb buckets --rate` (src/cli/render/heat.ts): rates from two counter reads, the
// heat steps of the character ramp, the totals per owner, and a grid that reads without
// colour (no escape sequence at all) and carries a colour per step on a terminal.

import { describe, expect, it } from 'vitest';
import { rateInterval } from '../../src/cli/commands/buckets.js';
import { colorWanted, type Output } from '../../src/cli/output.js';
import { bucketRates, formatRate, HEAT_RAMP, HEAT_STEPS, heatStep, ownerRates, renderHeat, type BucketRate } from '../../src/cli/render/heat.js';
import { NBUCKETS, NODE_NONE, type BucketCounter } from '../../src/dataplane/types.js';

function output(color: boolean): Output {
  return { json: false, color, print: () => undefined, printJson: () => undefined, error: () => undefined };
}

const counters = (f: (b: number) => [number, number]): BucketCounter[] =>
  Array.from({ length: NBUCKETS }, (_, b) => ({ accepted: BigInt(f(b)[0]), dropped: BigInt(f(b)[1]) }));

/** Buckets 0-127 owned by node1 (id 0, this node), 128-255 by node2. */
const OWNERS = Array.from({ length: NBUCKETS }, (_, b) => (b < 128 ? 0 : 1));

describe('buckets --rate: rates and heat steps', () => {
  it('divides the counter difference of each bucket by the measured seconds', () => {
    const before = counters((b) => [b, 1000]);
    const after = counters((b) => [b + 2 * b, 1000 + 4]);
    const rates = bucketRates(before, after, 2);
    expect(rates[10]).toEqual({ accepted: 10, notAccepted: 2 });
    expect(rates[0]).toEqual({ accepted: 0, notAccepted: 2 });
    expect(rates).toHaveLength(NBUCKETS);
  });

  it('shows a counter that went backwards (maps re-created between the reads) as 0, not negative', () => {
    const rates = bucketRates(counters(() => [500, 500]), counters(() => [3, 700]), 1);
    expect(rates[7]).toEqual({ accepted: 0, notAccepted: 200 });
  });

  it('maps no packet to the first ramp character and the busiest bucket to the last', () => {
    expect(heatStep(0, 100)).toBe(0);
    expect(heatStep(0.001, 100)).toBe(1);
    expect(heatStep(12.5, 100)).toBe(1);
    expect(heatStep(12.6, 100)).toBe(2);
    expect(heatStep(100, 100)).toBe(HEAT_STEPS);
    expect(heatStep(5, 0)).toBe(0);
    expect(HEAT_RAMP[0]).toBe('.');
  });

  it('formats rates short enough for the legend', () => {
    expect(formatRate(0)).toBe('0');
    expect(formatRate(2.345)).toBe('2.3');
    expect(formatRate(812.4)).toBe('812');
    expect(formatRate(12_345)).toBe('12.3k');
    expect(formatRate(4_100_000)).toBe('4.1M');
    expect(formatRate(41_000_000)).toBe('41.0M');
  });

  it('sums the rates per owner of the table in force, with each owner\'s share of the accepted packets', () => {
    const rates: BucketRate[] = Array.from({ length: NBUCKETS }, (_, b) => ({ accepted: b < 128 ? 3 : 1, notAccepted: b < 128 ? 0 : 2 }));
    const owners: number[] = [...OWNERS];
    owners[255] = NODE_NONE;
    const rows = ownerRates(owners, rates, ['node1', 'node2']);
    expect(rows.map((r) => [r.name, r.buckets, r.accepted, r.notAccepted])).toEqual([
      ['node1', 128, 384, 0], ['node2', 127, 127, 254], ['(unowned)', 1, 1, 2],
    ]);
    expect(rows[0]!.share).toBeCloseTo(384 / 512);
  });

  it('reads the interval in seconds, 1 by default, and refuses what is not 0.1 to 60', () => {
    expect(rateInterval(undefined)).toBe(1);
    expect(rateInterval('0.5')).toBe(0.5);
    expect(rateInterval('5')).toBe(5);
    for (const bad of ['0', '0.05', '61', 'abc', '-1', '1e3']) expect(() => rateInterval(bad), bad).toThrow(/--interval/);
  });
});

describe('buckets --rate: the heat grid', () => {
  const rates: BucketRate[] = Array.from({ length: NBUCKETS }, (_, b) => ({ accepted: b === 0x3f ? 800 : b < 16 ? 100 : 0, notAccepted: b >= 128 ? 5 : 0 }));
  const group = { index: 0, name: 'web', owners: OWNERS, rates };

  it('draws 16 rows of 16 ramp characters, the scale, the busiest bucket and the totals per owner, with no escape sequence without colour', () => {
    const text = renderHeat(output(false), group, ['node1', 'node2'], 0, 1.002);
    expect(text).not.toContain('\x1b[');
    const rows = text.split('\n').filter((l) => /^ {2}[0-9a-f]{2}: /.test(l));
    expect(rows).toHaveLength(16);
    for (const r of rows) expect(r.slice(6).split(' ')).toHaveLength(16);
    // Row 00: 100/800 is the first eighth; row 30, column f: the busiest bucket.
    expect(rows[0]).toBe(`  00: ${Array(16).fill(':').join(' ')}`);
    expect(rows[3]!.slice(6).split(' ')[15]).toBe('@');
    expect(rows[5]).toBe(`  50: ${Array(16).fill('.').join(' ')}`);
    expect(text).toContain('packets/s accepted by node1 per bucket, over 1.0 s');
    expect(text).toMatch(/scale \(pkt\/s\): \. 0 {2}: ≤100 {2}- ≤200 .* @ ≤800/);
    expect(text).toContain('busiest: bucket 63 (0x3f) 800 pkt/s');
    expect(text).toMatch(/A node1 \*\s+128\s+2400\s+0\s+100\.0%/);
    expect(text).toMatch(/B node2\s+128\s+0\s+640\s+0\.0%/);
    expect(text).toMatch(/total\s+256\s+2400\s+640/);
  });

  it('says so when no packet was accepted in the interval', () => {
    const idle = { ...group, rates: rates.map(() => ({ accepted: 0, notAccepted: 0 })) };
    expect(renderHeat(output(false), idle, ['node1', 'node2'], 0, 1)).toContain('no packet accepted in 1.0 s');
  });

  it('colours each step on a terminal (256 colours) and keeps the characters', () => {
    const text = renderHeat(output(true), group, ['node1', 'node2'], 0, 1);
    expect(text).toContain('\x1b[38;5;196m@\x1b[0m');
    expect(text).toContain('\x1b[38;5;22m:\x1b[0m');
  });
});

describe('colour decision', () => {
  it('is on for a terminal only, off with NO_COLOR or TERM=dumb, and FORCE_COLOR forces it either way', () => {
    expect(colorWanted({}, true)).toBe(true);
    expect(colorWanted({}, false)).toBe(false);
    expect(colorWanted({ NO_COLOR: '1' }, true)).toBe(false);
    expect(colorWanted({ NO_COLOR: '' }, true)).toBe(true);
    expect(colorWanted({ TERM: 'dumb' }, true)).toBe(false);
    expect(colorWanted({ FORCE_COLOR: '1' }, false)).toBe(true);
    expect(colorWanted({ FORCE_COLOR: '1', NO_COLOR: '1' }, false)).toBe(true);
    expect(colorWanted({ FORCE_COLOR: '0' }, true)).toBe(false);
    expect(colorWanted({ FORCE_COLOR: 'false' }, true)).toBe(false);
  });
});
