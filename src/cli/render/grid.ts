// The 16×16 owner grid of one group: row r, column c is bucket 16·r + c. One colour per
// node (by node id) on a terminal; a letter per node everywhere, so the grid still reads
// without colour and in logs. A bucket in handover (docs/datapath.md §12) is its owner's
// letter followed by HANDOVER_MARK in the gap after it (underlined too on a terminal), so
// the mark needs no colour and the columns stay aligned.

import { NBUCKETS, NODE_NONE } from '../../dataplane/types.js';
import { bold, dim, nodeColour, type Output } from '../output.js';

export interface GroupView {
  index: number;
  name: string;
  /** Owner node id per bucket (NODE_NONE = unowned). */
  owners: number[];
  /** Packets per bucket (accepted + dropped), if known. */
  packets?: bigint[];
  /** Previous owner per bucket while it is in handover, else NODE_NONE; absent = no handover. */
  prevOwners?: number[];
}

/** Follows the owner letter of a bucket in handover. */
export const HANDOVER_MARK = '~';

/** The data path's test (farmlb_bucket.prev_owner): prev == owner is no handover. */
export function inHandover(owner: number, prev: number | undefined): boolean {
  return prev !== undefined && prev !== NODE_NONE && prev !== owner;
}

export interface HandoverFlow {
  /** Previous owner's id and name. */
  fromId: number;
  from: string;
  /** Owner's id and name; NODE_NONE / '(unowned)' when the bucket has no owner now. */
  toId: number;
  to: string;
  buckets: number;
}

/** Buckets in handover, grouped by (previous owner → owner), most buckets first. */
export function handoverFlows(owners: number[], prevOwners: number[] | undefined, nodeNames: string[]): HandoverFlow[] {
  const name = (id: number) => (id === NODE_NONE ? '(unowned)' : nodeNames[id] ?? `node#${id}`);
  const flows = new Map<string, HandoverFlow>();
  owners.forEach((owner, b) => {
    const prev = prevOwners?.[b];
    if (!inHandover(owner, prev)) return;
    const key = `${prev}>${owner}`;
    const f = flows.get(key) ?? { fromId: prev!, from: name(prev!), toId: owner, to: name(owner), buckets: 0 };
    f.buckets++;
    flows.set(key, f);
  });
  return [...flows.values()].sort((a, b) => b.buckets - a.buckets || a.fromId - b.fromId || a.toId - b.toId);
}

/** Short label of a node: A, B, …, Z, then a..z, then digits. '.' is unowned. */
export function nodeLabel(id: number): string {
  if (id === NODE_NONE) return '.';
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789#@';
  return alphabet[id] ?? '?';
}

export interface LegendRow {
  id: number;
  name: string;
  label: string;
  buckets: number;
  share: number;
}

export function legend(owners: number[], nodeNames: string[]): LegendRow[] {
  const counts = new Map<number, number>();
  for (const o of owners) counts.set(o, (counts.get(o) ?? 0) + 1);
  return [...counts.entries()]
    .sort(([a], [b]) => a - b)
    .map(([id, n]) => ({
      id,
      name: id === NODE_NONE ? '(unowned)' : nodeNames[id] ?? `node#${id}`,
      label: nodeLabel(id),
      buckets: n,
      share: n / NBUCKETS,
    }));
}

export function renderGrid(out: Output, group: GroupView, nodeNames: string[], self?: number): string {
  const lines: string[] = [];
  lines.push(bold(out, `group ${group.name}`) + dim(out, ` (#${group.index})`));
  lines.push(dim(out, `      ${Array.from({ length: 16 }, (_, c) => c.toString(16)).join(' ')}`));
  for (let r = 0; r < 16; r++) {
    let row = '';
    for (let c = 0; c < 16; c++) {
      const owner = group.owners[r * 16 + c] ?? NODE_NONE;
      const moving = inHandover(owner, group.prevOwners?.[r * 16 + c]);
      const label = moving && out.color ? `\x1b[4m${nodeLabel(owner)}\x1b[24m` : nodeLabel(owner);
      row += owner === NODE_NONE ? dim(out, label) : nodeColour(out, owner)(label);
      if (moving) row += HANDOVER_MARK;
      else if (c < 15) row += ' ';
    }
    lines.push(`  ${dim(out, `${(r * 16).toString(16).padStart(2, '0')}:`)} ${row}`);
  }
  for (const row of legend(group.owners, nodeNames)) {
    const mark = row.id === self ? ' (this node)' : '';
    const label = row.id === NODE_NONE ? dim(out, row.label) : nodeColour(out, row.id)(row.label);
    lines.push(`  ${label} ${row.name.padEnd(16)} ${String(row.buckets).padStart(3)} buckets ${(row.share * 100).toFixed(1).padStart(5)}%${mark}`);
  }
  const flows = handoverFlows(group.owners, group.prevOwners, nodeNames);
  if (flows.length > 0) {
    const total = flows.reduce((t, f) => t + f.buckets, 0);
    const detail = flows.map((f) => `${f.from} → ${f.to}${flows.length > 1 ? `: ${f.buckets}` : ''}`).join(', ');
    lines.push(`  ${HANDOVER_MARK} in handover: ${total} bucket${total === 1 ? '' : 's'} (${detail}); the previous owner keeps its established TCP connections there`);
  }
  return lines.join('\n');
}
