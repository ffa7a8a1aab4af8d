// The owner grid of `farmlb buckets` (src/cli/render/grid.ts) with buckets in handover: the
// owner's letter keeps its column, a "~" after it marks the handover without colour, and a
// legend line counts them per (previous owner → owner); --json's handover summary.

import { describe, expect, it } from 'vitest';
import { handoverJson } from '../../src/cli/commands/buckets.js';
import type { Output } from '../../src/cli/output.js';
import { handoverFlows, inHandover, renderGrid } from '../../src/cli/render/grid.js';
import { NBUCKETS, NODE_NONE } from '../../src/dataplane/types.js';

const NAMES = ['node1', 'node2', 'node3'];
// Colour fixed by hand: makeOutput would follow NO_COLOR / FORCE_COLOR of the test's environment.
const output = (color: boolean): Output => ({ json: false, color, print: () => {}, printJson: () => {}, error: () => {} });
const plain = output(false);

/** node1 (A) owns the even buckets, node2 (B) the odd ones. */
const owners = Array.from({ length: NBUCKETS }, (_, b) => b % 2);
/** Buckets 1, 3 and 15 moved node3 → node2, bucket 16 node2 → node1; the rest are not in handover. */
function prevOwners(): number[] {
  const prev = Array<number>(NBUCKETS).fill(NODE_NONE);
  prev[1] = 2; prev[3] = 2; prev[15] = 2; prev[16] = 1;
  // prev == owner is no handover (the data path reads it so).
  prev[20] = 0;
  return prev;
}
const gridRows = (text: string) => text.split('\n').filter((l) => /^ {2}[0-9a-f]{2}: /.test(l));

describe('farmlb buckets grid in handover', () => {
  it('marks each bucket in handover with ~ after its owner letter, keeping every column in place', () => {
    const text = renderGrid(plain, { index: 0, name: 'web', owners, prevOwners: prevOwners() }, NAMES, 0);
    const rows = gridRows(text);
    expect(rows[0]).toBe('  00: A B~A B~A B A B A B A B A B A B~');
    expect(rows[1]).toBe('  10: A~B A B A B A B A B A B A B A B');
    // Letters stay at columns 6, 8, …, 36; only a trailing mark lengthens a row.
    for (const r of rows) expect([...r.slice(6)].filter((_, i) => i % 2 === 0).join('')).toMatch(/^[AB]{16}$/);
    expect(text).toContain('  ~ in handover: 4 buckets (node3 → node2: 3, node2 → node1: 1); the previous owner keeps its established TCP connections there');
    expect(text).not.toMatch(/\x1b/);
  });

  it('draws the usual grid, with no mark and no handover line, when no bucket is in handover', () => {
    for (const prev of [undefined, Array<number>(NBUCKETS).fill(NODE_NONE)]) {
      const text = renderGrid(plain, { index: 0, name: 'web', owners, ...(prev ? { prevOwners: prev } : {}) }, NAMES, 0);
      for (const r of gridRows(text)) expect(r.slice(6)).toMatch(/^[AB](?: [AB]){15}$/);
      expect(text).not.toContain('handover');
    }
  });

  it('also underlines the owner letter of a bucket in handover on a colour terminal', () => {
    const text = renderGrid(output(true), { index: 0, name: 'web', owners, prevOwners: prevOwners() }, NAMES, 0);
    const row0 = text.split('\n').find((l) => l.includes('00:'))!;
    expect(row0).toContain('\x1b[4mB\x1b[24m');
    expect(row0.replace(/\x1b\[[0-9;]*m/g, '')).toBe('  00: A B~A B~A B A B A B A B A B A B~');
  });

  it('names one flow without a count, and a bucket left without owner as (unowned)', () => {
    const o = owners.slice();
    o[2] = NODE_NONE;
    const prev = Array<number>(NBUCKETS).fill(NODE_NONE);
    prev[2] = 1;
    expect(renderGrid(plain, { index: 0, name: 'web', owners: o, prevOwners: prev }, NAMES)).toContain('~ in handover: 1 bucket (node2 → (unowned))');
    expect(handoverFlows(o, prev, NAMES)).toEqual([{ fromId: 1, from: 'node2', toId: NODE_NONE, to: '(unowned)', buckets: 1 }]);
  });

  it('reads prev == owner and NODE_NONE as no handover, like the data path', () => {
    expect(inHandover(1, 1)).toBe(false);
    expect(inHandover(1, NODE_NONE)).toBe(false);
    expect(inHandover(1, undefined)).toBe(false);
    expect(inHandover(1, 2)).toBe(true);
  });

  it('summarises the handover of a group for --json, the owner null when the bucket has none', () => {
    expect(handoverJson(owners, prevOwners(), NAMES)).toEqual({
      buckets: 4, flows: [{ from: 'node3', to: 'node2', buckets: 3 }, { from: 'node2', to: 'node1', buckets: 1 }],
    });
    expect(handoverJson(owners, Array<number>(NBUCKETS).fill(NODE_NONE), NAMES)).toEqual({ buckets: 0, flows: [] });
  });
});
