// Power → 256-bucket assignment and minimal-movement rebalancing (DESIGN.md, "Bucket
// assignment"). Pure and deterministic: every node of a view runs these functions on the
// same inputs and must get the same table, so nothing here depends on insertion order,
// time or randomness, and all arithmetic on shares is exact integer arithmetic (a float
// rounding difference between two nodes would give one bucket to two of them).
//
// Choices (docs: these comments are the reference until docs/ has a balance page):
// - A table computed from scratch gives each node its largest-remainder quota: floor of
//   its exact share 256·p/Σp, plus one for the nodes with the largest remainders, ties by
//   name (ascending).
// - freshTable interleaves each node's buckets over 0..255 instead of dealing contiguous
//   blocks: bucket indexes are the top byte of a hash, so either is fair for uniform
//   traffic, but interleaving keeps a node's buckets spread when a few hot clients skew a
//   range, and it makes a later rebalance (which takes buckets from the top) less lumpy.
// - rebalance keeps every bucket whose owner may keep it. Its targets are always within
//   one bucket of the exact share (floor or ceiling), and are the exact largest-remainder
//   quotas whenever that costs no extra movement (from an empty table, or from any table
//   of the same powers). They can differ from them after a failure: largest remainder is
//   not monotone (the Alabama paradox), so removing a node can lower a survivor's quota —
//   honouring it would move a survivor's bucket, which DESIGN.md forbids on a failure.
//   The one exception: when the failed node's buckets are too few to bring every survivor
//   within one bucket of its share (a large node well below its share, small nodes rounded
//   up), a survivor above its share gives up a bucket too — the bound on the share wins.

import { FarmlbError } from '../errors.js';
import { NBUCKETS, NODE_NONE } from './tables.js';

export type Powers = Map<string, number> | Record<string, number>;
/** owners[bucket] = node name, or null when nobody serves the bucket. Length NBUCKETS. */
export type Owners = (string | null)[];

/** One row of owners per group, indexed by Group.index. */
export interface BucketTable {
  groups: Owners[];
  /**
   * Connection-preserving handover (DESIGN.md, "Handover"; docs/datapath.md): per group, the
   * previous owner of each bucket that is moving, else null. Absent = no bucket in handover.
   * A TCP packet of such a bucket goes to the previous owner when it holds the connection,
   * to the owner when it is a SYN or the owner holds the connection, else to nobody.
   */
  prev?: Owners[];
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Powers as sorted [name, power] pairs, validated. */
function entries(powers: Powers): [string, number][] {
  const list = powers instanceof Map ? [...powers.entries()] : Object.entries(powers);
  for (const [name, power] of list) {
    if (!Number.isSafeInteger(power) || power < 0) {
      throw new FarmlbError('FARMLB_E_INTERNAL', { detail: `power of ${name} is ${power}, not a non-negative integer` });
    }
  }
  const total = list.reduce((sum, [, p]) => sum + p, 0);
  if (!Number.isSafeInteger(total * NBUCKETS)) {
    throw new FarmlbError('FARMLB_E_INTERNAL', { detail: `sum of powers ${total} is too large for exact shares` });
  }
  return list.sort(([a], [b]) => byName(a, b));
}

/** floor(256·p/Σp) and the remainder 256·p mod Σp, exactly. */
function shares(list: [string, number][]): { name: string; floor: number; rem: number; total: number }[] {
  const total = list.reduce((sum, [, p]) => sum + p, 0);
  return list.map(([name, p]) => ({
    name,
    floor: total === 0 ? 0 : Math.floor((NBUCKETS * p) / total),
    rem: total === 0 ? 0 : (NBUCKETS * p) % total,
    total,
  }));
}

/**
 * Largest-remainder quotas over 256 buckets. Every name of `powers` is in the result;
 * power 0 → 0; all zero or empty → all 0 (every bucket unowned).
 */
export function quotas(powers: Powers): Map<string, number> {
  const s = shares(entries(powers));
  const result = new Map(s.map((x) => [x.name, x.floor]));
  if (s.length === 0 || s[0]!.total === 0) return result;
  const left = NBUCKETS - s.reduce((sum, x) => sum + x.floor, 0);
  // Sorting is stable and s is sorted by name, so equal remainders stay in name order.
  const byRemainder = s.filter((x) => x.rem > 0).sort((a, b) => b.rem - a.rem);
  for (const x of byRemainder.slice(0, left)) result.set(x.name, x.floor + 1);
  return result;
}

/**
 * A table computed from scratch: each node gets exactly its quota, its buckets spread over
 * the range. Node i's k-th bucket ideally sits at (k + ½)·256/q_i; all these ideal positions
 * are sorted (exactly, by cross-multiplication; ties by name) and dealt to 0..255 in order.
 */
export function freshTable(powers: Powers): Owners {
  const slots: { name: string; num: number; den: number }[] = [];
  for (const [name, q] of [...quotas(powers)].sort(([a], [b]) => byName(a, b))) {
    // position = (2k+1)/(2q) of the range; compare num/den exactly.
    for (let k = 0; k < q; k++) slots.push({ name, num: 2 * k + 1, den: 2 * q });
  }
  slots.sort((x, y) => x.num * y.den - y.num * x.den || byName(x.name, y.name));
  const owners: Owners = new Array<string | null>(NBUCKETS).fill(null);
  slots.forEach((slot, bucket) => {
    owners[bucket] = slot.name;
  });
  return owners;
}

/**
 * Per-node targets for a rebalance: floor or ceiling of the exact share, summing to 256.
 * The ceilings go first to nodes that already hold at least their ceiling (each such
 * choice keeps one bucket in place), then by largest remainder and name as in quotas().
 */
function targets(list: [string, number][], held: Map<string, number>): Map<string, number> {
  const s = shares(list);
  const result = new Map(s.map((x) => [x.name, x.floor]));
  if (s.length === 0 || s[0]!.total === 0) return result;
  let left = NBUCKETS - s.reduce((sum, x) => sum + x.floor, 0);
  const candidates = s.filter((x) => x.rem > 0);
  const keeps = (x: { name: string; floor: number }): boolean => (held.get(x.name) ?? 0) > x.floor;
  const ordered = [
    ...candidates.filter(keeps).sort((a, b) => b.rem - a.rem),
    ...candidates.filter((x) => !keeps(x)).sort((a, b) => b.rem - a.rem),
  ];
  for (const x of ordered) {
    if (left === 0) break;
    result.set(x.name, x.floor + 1);
    left--;
  }
  return result;
}

/**
 * Move as few buckets as possible from `previous` to a table for `powers`.
 * - A node absent from `powers`, with power 0, or (when `live` is given) not in `live`
 *   loses all its buckets.
 * - Every serving node ends with the floor or ceiling of its exact share (see targets()).
 * - A node above its target gives up its highest bucket indexes first.
 * - Free buckets, in ascending index, go one at a time to the node with the largest
 *   remaining deficit (ties by name), which interleaves what each node receives.
 */
export function rebalance(previous: readonly (string | null)[], powers: Powers, live?: Iterable<string>): Owners {
  if (previous.length !== NBUCKETS) {
    throw new FarmlbError('FARMLB_E_INTERNAL', { detail: `bucket row has ${previous.length} entries, not ${NBUCKETS}` });
  }
  const liveSet = live === undefined ? undefined : new Set(live);
  const serving = entries(powers).filter(([name, p]) => p > 0 && (liveSet === undefined || liveSet.has(name)));
  const servingNames = new Set(serving.map(([name]) => name));

  const owners: Owners = previous.map((o) => (o !== null && servingNames.has(o) ? o : null));
  const held = new Map<string, number>();
  for (const o of owners) if (o !== null) held.set(o, (held.get(o) ?? 0) + 1);
  const target = targets(serving, held);

  for (const [name, count] of held) {
    let excess = count - (target.get(name) ?? 0);
    for (let b = NBUCKETS - 1; b >= 0 && excess > 0; b--) {
      if (owners[b] === name) {
        owners[b] = null;
        excess--;
      }
    }
  }

  const deficit = new Map<string, number>();
  for (const [name, t] of target) {
    const d = t - Math.min(held.get(name) ?? 0, t);
    if (d > 0) deficit.set(name, d);
  }
  for (let b = 0; b < NBUCKETS && deficit.size > 0; b++) {
    if (owners[b] !== null) continue;
    let best: string | undefined;
    for (const [name, d] of deficit) {
      const bestD = best === undefined ? 0 : deficit.get(best)!;
      if (best === undefined || d > bestD || (d === bestD && byName(name, best) < 0)) best = name;
    }
    owners[b] = best!;
    const d = deficit.get(best!)! - 1;
    if (d === 0) deficit.delete(best!);
    else deficit.set(best!, d);
  }
  return owners;
}

/** How many buckets each node owns in a row (nodes with none are absent). */
export function countOwners(owners: readonly (string | null)[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const o of owners) if (o !== null) counts.set(o, (counts.get(o) ?? 0) + 1);
  return counts;
}

/** Node name → node id (its index in cluster.xml's node list): built once for many rows. */
export function nodeIds(nodes: readonly string[]): ReadonlyMap<string, number> {
  return new Map(nodes.map((name, i) => [name, i]));
}

/** Owner names → node ids (index in cluster.xml's node list, or nodeIds of it); null → NODE_NONE. */
export function ownersToIds(owners: readonly (string | null)[], nodes: readonly string[] | ReadonlyMap<string, number>): number[] {
  const ids = 'get' in nodes ? nodes : nodeIds(nodes);
  return owners.map((o) => {
    if (o === null) return NODE_NONE;
    const id = ids.get(o);
    if (id === undefined) throw new FarmlbError('FARMLB_E_BALANCE_UNKNOWN_NODE', { node: o });
    return id;
  });
}

/** Node ids → owner names; NODE_NONE, or an id past the node list, → null. */
export function idsToOwners(ids: readonly number[], nodes: readonly string[]): Owners {
  return ids.map((id) => (id === NODE_NONE ? null : (nodes[id] ?? null)));
}

/** A whole table as node ids, one row per group. */
export function tableToIds(table: BucketTable, nodes: readonly string[]): number[][] {
  return table.groups.map((row) => ownersToIds(row, nodes));
}
