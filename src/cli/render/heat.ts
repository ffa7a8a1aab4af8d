// Per-bucket packet rates as a heat view (`farmlb buckets --rate`): the layout of the owner
// grid (row r, column c is bucket 16·r + c), each cell one step of a character ramp by the
// packets/s this node accepted in that bucket. The characters carry the scale on their own,
// so the view reads without colour (NO_COLOR, a pipe, a log); on a terminal each step also
// has a colour from green to red.

import { NBUCKETS, NODE_NONE, type BucketCounter } from '../../dataplane/types.js';
import { bold, dim, nodeColour, type Output } from '../output.js';
import { nodeLabel } from './grid.js';

/** '.' is a bucket with no packet; then one character per eighth of the group's busiest bucket. */
export const HEAT_RAMP = '.:-=+*#%@';
export const HEAT_STEPS = HEAT_RAMP.length - 1;

// 256-colour foregrounds for steps 1..8: readable on dark and light backgrounds.
const HEAT_COLOURS = [22, 28, 34, 70, 142, 178, 208, 196];

export interface BucketRate {
  /** Packets/s this node passed or answered in the bucket. */
  accepted: number;
  /** Packets/s it dropped, left to the owner or forwarded to it. */
  notAccepted: number;
}

/**
 * Rates between two reads of one group's counters. A counter that went backwards means the
 * maps were re-created between the reads (a daemon restart): its rate is unknown, shown as 0.
 */
export function bucketRates(before: readonly BucketCounter[], after: readonly BucketCounter[], seconds: number): BucketRate[] {
  const rate = (a: bigint | undefined, b: bigint | undefined) => {
    const d = (b ?? 0n) - (a ?? 0n);
    return d > 0n && seconds > 0 ? Number(d) / seconds : 0;
  };
  return Array.from({ length: NBUCKETS }, (_, i) => ({
    accepted: rate(before[i]?.accepted, after[i]?.accepted),
    notAccepted: rate(before[i]?.dropped, after[i]?.dropped),
  }));
}

/** 0 for no packet, else 1..HEAT_STEPS: the eighth of `max` the rate falls in (max itself is the top). */
export function heatStep(rate: number, max: number): number {
  if (!(rate > 0) || !(max > 0)) return 0;
  return Math.min(HEAT_STEPS, Math.max(1, Math.ceil((rate / max) * HEAT_STEPS)));
}

export function heatCell(out: Output, step: number): string {
  const ch = HEAT_RAMP[step]!;
  if (step === 0) return dim(out, ch);
  return out.color ? `\x1b[38;5;${HEAT_COLOURS[step - 1]}m${ch}\x1b[0m` : ch;
}

/** 0.5, 12.3, 812, 12.3k, 4.1M: short enough for a legend. */
export function formatRate(x: number): string {
  if (x === 0) return '0';
  if (x < 10) return x.toFixed(1);
  if (x < 10_000) return String(Math.round(x));
  if (x < 1_000_000) return `${(x / 1000).toFixed(1)}k`;
  return `${(x / 1_000_000).toFixed(1)}M`;
}

export interface OwnerRate {
  id: number;
  name: string;
  label: string;
  buckets: number;
  accepted: number;
  notAccepted: number;
  /** Its part of the group's accepted packets/s (0 when the group accepted none). */
  share: number;
}

/** The bucket rates summed per owner of the table in force, in node id order (unowned last). */
export function ownerRates(owners: readonly number[], rates: readonly BucketRate[], nodeNames: readonly string[]): OwnerRate[] {
  const sums = new Map<number, { buckets: number; accepted: number; notAccepted: number }>();
  for (let b = 0; b < NBUCKETS; b++) {
    const o = owners[b] ?? NODE_NONE;
    const s = sums.get(o) ?? { buckets: 0, accepted: 0, notAccepted: 0 };
    s.buckets++;
    s.accepted += rates[b]?.accepted ?? 0;
    s.notAccepted += rates[b]?.notAccepted ?? 0;
    sums.set(o, s);
  }
  const total = [...sums.values()].reduce((t, s) => t + s.accepted, 0);
  return [...sums.entries()]
    .sort(([a], [b]) => a - b)
    .map(([id, s]) => ({
      id,
      name: id === NODE_NONE ? '(unowned)' : nodeNames[id] ?? `node#${id}`,
      label: nodeLabel(id),
      ...s,
      share: total > 0 ? s.accepted / total : 0,
    }));
}

export interface HeatGroupView {
  index: number;
  name: string;
  owners: number[];
  rates: BucketRate[];
}

/** One group's heat grid, its scale, and the rates per owner. */
export function renderHeat(out: Output, group: HeatGroupView, nodeNames: readonly string[], self: number, seconds: number): string {
  const max = Math.max(0, ...group.rates.map((r) => r.accepted));
  const hottest = group.rates.findIndex((r) => r.accepted === max);
  const selfName = self === NODE_NONE ? undefined : nodeNames[self] ?? `node#${self}`;
  const lines: string[] = [];
  lines.push(bold(out, `group ${group.name}`) + dim(out, ` (#${group.index}): packets/s accepted by ${selfName ?? 'this node'} per bucket, over ${seconds.toFixed(1)} s`));
  lines.push(dim(out, `      ${Array.from({ length: 16 }, (_, c) => c.toString(16)).join(' ')}`));
  for (let r = 0; r < 16; r++) {
    const cells = Array.from({ length: 16 }, (_, c) => heatCell(out, heatStep(group.rates[r * 16 + c]?.accepted ?? 0, max)));
    lines.push(`  ${dim(out, `${(r * 16).toString(16).padStart(2, '0')}:`)} ${cells.join(' ')}`);
  }
  if (max > 0) {
    const steps = Array.from({ length: HEAT_STEPS }, (_, i) => `${heatCell(out, i + 1)} ≤${formatRate((max * (i + 1)) / HEAT_STEPS)}`);
    lines.push(`  scale (pkt/s): ${heatCell(out, 0)} 0  ${steps.join('  ')}`);
    lines.push(dim(out, `  busiest: bucket ${hottest} (0x${hottest.toString(16).padStart(2, '0')}) ${formatRate(max)} pkt/s`));
  } else {
    lines.push(`  scale (pkt/s): ${heatCell(out, 0)} 0 — no packet accepted in ${seconds.toFixed(1)} s`);
  }
  const rows = ownerRates(group.owners, group.rates, nodeNames);
  const header = `  ${'OWNER'.padEnd(20)} ${'BUCKETS'.padStart(7)} ${'ACCEPTED/S'.padStart(11)} ${'NOT ACCEPTED/S'.padStart(15)} ${'SHARE'.padStart(6)}`;
  lines.push('', dim(out, header));
  for (const row of rows) {
    const label = row.id === NODE_NONE ? dim(out, row.label) : nodeColour(out, row.id)(row.label);
    const name = `${row.name}${row.id === self ? ' *' : ''}`;
    lines.push(`  ${label} ${name.padEnd(18)} ${String(row.buckets).padStart(7)} ${formatRate(row.accepted).padStart(11)} ${formatRate(row.notAccepted).padStart(15)} ${`${(row.share * 100).toFixed(1)}%`.padStart(6)}`);
  }
  const sum = (k: 'accepted' | 'notAccepted') => rows.reduce((t, r) => t + r[k], 0);
  lines.push(`  ${'total'.padEnd(20)} ${String(NBUCKETS).padStart(7)} ${formatRate(sum('accepted')).padStart(11)} ${formatRate(sum('notAccepted')).padStart(15)}`);
  if (selfName) lines.push(dim(out, `  * this node; the counts are what ${selfName}'s data plane saw`));
  return lines.join('\n');
}
