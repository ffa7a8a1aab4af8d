// Bucket tables on the wire and the powers they are computed from. Pure.

import { createHash } from 'node:crypto';
import type { BucketTable, Owners } from '../balance/assign.js';
import { NBUCKETS } from '../balance/tables.js';
import { FarmlbError } from '../errors.js';
import type { GroupPowers, PowerOverrides } from './types.js';

/** Node index meaning "no owner" on the wire (node ids are < 64, FARMLB_MAX_NODES). */
const WIRE_NONE = 255;

export function emptyRows(groups: number): (string | null)[][] {
  return Array.from({ length: groups }, () => new Array<string | null>(NBUCKETS).fill(null));
}

/** Rows → base64 of one byte per bucket: the owner's index in cluster.xml's node list. */
export function encodeRows(rows: readonly (readonly (string | null)[])[], nodes: readonly string[]): string[] {
  const ids = new Map(nodes.map((n, i) => [n, i]));
  return rows.map((row) => Buffer.from(row.map((o) => (o === null ? WIRE_NONE : (ids.get(o) ?? WIRE_NONE)))).toString('base64'));
}

/** The inverse of encodeRows; undefined when a row is malformed. */
export function decodeRows(rows: readonly string[], nodes: readonly string[]): (string | null)[][] | undefined {
  const out: (string | null)[][] = [];
  for (const row of rows) {
    const bytes = Buffer.from(row, 'base64');
    if (bytes.length !== NBUCKETS) return undefined;
    const owners = new Array<string | null>(NBUCKETS);
    for (let b = 0; b < NBUCKETS; b++) {
      const id = bytes[b]!;
      owners[b] = id === WIRE_NONE ? null : (nodes[id] ?? null);
    }
    out.push(owners);
  }
  return out;
}

/** Do two lists of wire rows (or two absent ones) hold the same strings? */
export function sameWireRows(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Rows of owners (or previous owners) per group. */
export type Rows = Owners[];

/** A table's content: owners and previous owners (same shape): the balance's BucketTable, with its handover rows always present. */
export type TableRows = Required<BucketTable>;

export function hasAny(rows: readonly (readonly (string | null)[])[]): boolean {
  return rows.some((row) => row.some((o) => o !== null));
}

/**
 * Digest of a table's content (not its epoch): equal digests = equal tables. Previous owners
 * count only when some bucket has one, so a table without handover keeps the digest it had
 * before handover existed (nodes with handover off, or older ones, agree on it).
 */
export function tableDigest(rows: readonly (readonly (string | null)[])[], prev?: readonly (readonly (string | null)[])[]): string {
  const h = createHash('sha256');
  for (const row of rows) h.update(JSON.stringify(row)).update('\n');
  if (prev && hasAny(prev)) {
    h.update('prev\n');
    for (const row of prev) h.update(JSON.stringify(row)).update('\n');
  }
  return h.digest('hex').slice(0, 16);
}

/** Bytes of a bucket bitmap: one bit per bucket. */
export const BITMAP_BYTES = NBUCKETS / 8;

/** base64 of 32 bytes: bit b (byte b>>3, bit b&7) set when `has(b)`. */
export function encodeBitmap(has: (bucket: number) => boolean): string {
  const bytes = Buffer.alloc(BITMAP_BYTES);
  for (let b = 0; b < NBUCKETS; b++) if (has(b)) bytes[b >> 3]! |= 1 << (b & 7);
  return bytes.toString('base64');
}

/** Is bucket b set in an encoded bitmap? A malformed bitmap reads as all set (conservative). */
export function bitmapHas(bitmap: string | undefined, bucket: number): boolean {
  if (bitmap === undefined) return true;
  const bytes = Buffer.from(bitmap, 'base64');
  if (bytes.length !== BITMAP_BYTES) return true;
  return (bytes[bucket >> 3]! & (1 << (bucket & 7))) !== 0;
}

export function sameRows(a: readonly (readonly (string | null)[])[], b: readonly (readonly (string | null)[])[]): boolean {
  return a.length === b.length && a.every((row, g) => row.every((o, i) => o === b[g]![i]));
}

export const NO_OVERRIDES: PowerOverrides = { version: 0, origin: '', entries: [] };

/** Does `a` win over `b` (highest version, ties by origin name)? */
export function overridesNewer(a: PowerOverrides, b: PowerOverrides): boolean {
  return a.version > b.version || (a.version === b.version && a.origin > b.origin);
}

/**
 * Configured powers with the runtime overrides applied: an all-groups entry first, then a
 * group's own entry; only for nodes that are hosts of the group (drain does not add a host).
 */
export function effectivePowers(groups: readonly GroupPowers[], overrides: PowerOverrides): Map<string, number>[] {
  return groups.map((g) => {
    const powers = new Map(g.powers);
    for (const pass of [null, g.name]) {
      for (const e of overrides.entries) {
        if (e.group === pass && powers.has(e.node)) powers.set(e.node, e.power);
      }
    }
    return powers;
  });
}

/** Checks a runtime power change against the configuration; throws a FarmlbError. */
export function checkPowerChange(groups: readonly GroupPowers[], nodes: readonly string[], node: string, power: number | undefined, group: string | undefined): void {
  if (!nodes.includes(node)) {
    throw new FarmlbError('FARMLB_E_MEMBERSHIP_UNKNOWN_NODE', { node, nodes: nodes.join(', ') });
  }
  if (power !== undefined && (!Number.isSafeInteger(power) || power < 0 || power > 1_000_000)) {
    throw new FarmlbError('FARMLB_E_MEMBERSHIP_BAD_POWER', { value: String(power) });
  }
  if (group !== undefined) {
    const g = groups.find((x) => x.name === group);
    if (!g) throw new FarmlbError('FARMLB_E_MEMBERSHIP_UNKNOWN_GROUP', { group, groups: groups.map((x) => x.name).join(', ') });
    if (!g.powers.has(node)) throw new FarmlbError('FARMLB_E_MEMBERSHIP_NOT_IN_GROUP', { node, group });
  }
}
