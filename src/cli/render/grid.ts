// The 16×16 owner grid of one group: row r, column c is bucket 16·r + c. One colour per
// node (by node id) on a terminal; a letter per node everywhere, so the grid still reads
// without colour and in logs.

import { NBUCKETS, NODE_NONE } from '../../dataplane/types.js';
import { bold, dim, nodeColour, type Output } from '../output.js';

export interface GroupView {
  index: number;
  name: string;
  /** Owner node id per bucket (NODE_NONE = unowned). */
  owners: number[];
  /** Packets per bucket (accepted + dropped), if known. */
  packets?: bigint[];
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
    const cells: string[] = [];
    for (let c = 0; c < 16; c++) {
      const owner = group.owners[r * 16 + c] ?? NODE_NONE;
      const label = nodeLabel(owner);
      cells.push(owner === NODE_NONE ? dim(out, label) : nodeColour(out, owner)(label));
    }
    lines.push(`  ${dim(out, `${(r * 16).toString(16).padStart(2, '0')}:`)} ${cells.join(' ')}`);
  }
  for (const row of legend(group.owners, nodeNames)) {
    const mark = row.id === self ? ' (this node)' : '';
    const label = row.id === NODE_NONE ? dim(out, row.label) : nodeColour(out, row.id)(row.label);
    lines.push(`  ${label} ${row.name.padEnd(16)} ${String(row.buckets).padStart(3)} buckets ${(row.share * 100).toFixed(1).padStart(5)}%${mark}`);
  }
  return lines.join('\n');
}
