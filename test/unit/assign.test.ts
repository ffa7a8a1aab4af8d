// Bucket assignment: exact largest-remainder quotas from scratch, and rebalancing that moves
// only what it must (DESIGN.md, "Bucket assignment").
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  countOwners,
  freshTable,
  idsToOwners,
  nodeIds,
  ownersToIds,
  quotas,
  rebalance,
  type Owners,
} from '../../src/balance/assign.js';
import { NODE_NONE } from '../../src/dataplane/types.js';

const NAMES = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];

/** 1..8 distinct node names with powers 0..1000 (often small, so remainders tie). */
const powersArb = fc
  .uniqueArray(fc.constantFrom(...NAMES), { minLength: 1, maxLength: 8 })
  .chain((names) =>
    fc.tuple(
      ...names.map((n) =>
        fc.oneof(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 1000 })).map((p) => [n, p] as const),
      ),
    ),
  )
  .map((pairs) => new Map<string, number>(pairs));

/** Powers with at least one positive power. */
const servingPowersArb = powersArb.filter((p) => [...p.values()].some((v) => v > 0));

function total(powers: Map<string, number>): number {
  return [...powers.values()].reduce((a, b) => a + b, 0);
}

/** The exact share as a fraction num/den = 256·p/Σp; "within one" means |count·den − num| < den. */
function withinOneOfShare(count: number, power: number, sum: number): boolean {
  return Math.abs(count * sum - 256 * power) < sum;
}

function moved(a: Owners, b: Owners): number {
  return a.reduce((n, owner, i) => n + (owner === b[i] ? 0 : 1), 0);
}

function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('quotas', () => {
  test('gives floor(256·p/Σp) plus one to the largest remainders, ties by name', () => {
    expect(quotas({ a: 1, b: 1, c: 1 })).toEqual(new Map([['a', 86], ['b', 85], ['c', 85]]));
    expect(quotas({ c: 1, b: 1, a: 1 })).toEqual(new Map([['a', 86], ['b', 85], ['c', 85]]));
    expect(quotas({ a: 1, b: 2 })).toEqual(new Map([['a', 85], ['b', 171]]));
    expect(quotas({ a: 3, b: 1 })).toEqual(new Map([['a', 192], ['b', 64]]));
  });

  test('gives power 0 nothing and leaves every bucket unowned when all powers are 0 or there are no nodes', () => {
    expect(quotas({ a: 0, b: 5 })).toEqual(new Map([['a', 0], ['b', 256]]));
    expect(quotas({ a: 0, b: 0 })).toEqual(new Map([['a', 0], ['b', 0]]));
    expect(quotas(new Map())).toEqual(new Map());
  });

  test('sums to 256 and keeps every node within one bucket of its exact share', () => {
    fc.assert(
      fc.property(servingPowersArb, (powers) => {
        const q = quotas(powers);
        expect([...q.values()].reduce((a, b) => a + b, 0)).toBe(256);
        for (const [name, p] of powers) {
          expect(withinOneOfShare(q.get(name)!, p, total(powers))).toBe(true);
          if (p === 0) expect(q.get(name)).toBe(0);
        }
      }),
    );
  });

  test('is exact for large powers where floating point would round', () => {
    // 256·p/Σp with these values is not representable exactly as a double.
    const q = quotas({ a: 2 ** 40 + 1, b: 2 ** 40 - 1, c: 3 });
    expect([...q.values()].reduce((x, y) => x + y, 0)).toBe(256);
  });

  test('rejects negative or fractional powers as a bug', () => {
    expect(() => quotas({ a: -1 })).toThrow(expect.objectContaining({ code: 'FARMLB_E_INTERNAL' }));
    expect(() => quotas({ a: 1.5 })).toThrow(expect.objectContaining({ code: 'FARMLB_E_INTERNAL' }));
  });
});

describe('freshTable', () => {
  test('has exactly the largest-remainder quotas and power 0 gets nothing', () => {
    fc.assert(
      fc.property(powersArb, (powers) => {
        const table = freshTable(powers);
        expect(table).toHaveLength(256);
        const counts = countOwners(table);
        for (const [name, q] of quotas(powers)) expect(counts.get(name) ?? 0).toBe(q);
        if (total(powers) === 0) expect(table.every((o) => o === null)).toBe(true);
      }),
    );
  });

  test('does not depend on the order the hosts are listed in', () => {
    fc.assert(
      fc.property(powersArb, fc.integer(), (powers, seed) => {
        const permuted = new Map(shuffled([...powers], seed));
        expect(freshTable(permuted)).toEqual(freshTable(powers));
      }),
    );
  });

  test('interleaves the nodes instead of dealing contiguous blocks', () => {
    const table = freshTable({ a: 1, b: 1 });
    expect(table.slice(0, 4)).toEqual(['a', 'b', 'a', 'b']);
    const quarter = countOwners(table.slice(0, 64));
    expect(quarter.get('a')).toBe(32);
  });
});

describe('rebalance', () => {
  test('changes nothing when the powers and live nodes are those the table was made for', () => {
    fc.assert(
      fc.property(powersArb, (powers) => {
        const table = freshTable(powers);
        expect(rebalance(table, powers)).toEqual(table);
      }),
    );
  });

  test('from an empty table gives exactly the largest-remainder quotas', () => {
    fc.assert(
      fc.property(powersArb, (powers) => {
        const counts = countOwners(rebalance(new Array(256).fill(null), powers));
        for (const [name, q] of quotas(powers)) expect(counts.get(name) ?? 0).toBe(q);
      }),
    );
  });

  test('ends with every serving node within one bucket of its exact share, whatever the previous table', () => {
    fc.assert(
      fc.property(
        fc.array(fc.option(fc.constantFrom(...NAMES), { nil: null }), { minLength: 256, maxLength: 256 }),
        servingPowersArb,
        (previous, powers) => {
          const result = rebalance(previous, powers);
          expect(result.every((o) => o !== null)).toBe(true);
          const counts = countOwners(result);
          for (const [name, count] of counts) expect(powers.get(name)).toBeGreaterThan(0);
          for (const [name, p] of powers) expect(withinOneOfShare(counts.get(name) ?? 0, p, total(powers))).toBe(true);
        },
      ),
    );
  });

  // Both rules hold together whenever they can: a survivor gives up a bucket only when the
  // failed node's buckets alone cannot bring every survivor within one bucket of its share
  // (powers hotel 4, foxtrot 8, juliet 490, india 1, echo 2, alpha 106 with foxtrot failing
  // need 4 buckets and free 3), and then only a bucket above its share.
  test('moves only the buckets of a failed node unless they cannot bring every survivor within one bucket of its share', () => {
    fc.assert(
      fc.property(servingPowersArb, fc.nat(), (powers, pick) => {
        const before = freshTable(powers);
        const names = [...powers.keys()];
        const failed = names[pick % names.length]!;
        const survivors = names.filter((n) => n !== failed);
        const after = rebalance(before, powers, survivors);
        expect(after.includes(failed)).toBe(false);
        const alive = new Map(survivors.map((n) => [n, powers.get(n)!]));
        if (total(alive) === 0) {
          expect(after.every((o) => o === null)).toBe(true);
          return;
        }
        const sum = total(alive);
        const countsBefore = countOwners(before);
        const counts = countOwners(after);
        for (const [name, p] of alive) expect(withinOneOfShare(counts.get(name) ?? 0, p, sum)).toBe(true);
        const freed = countsBefore.get(failed) ?? 0;
        // The fewest buckets each survivor must gain to end within one bucket of its share.
        let needed = 0;
        for (const [name, p] of alive) {
          let c = countsBefore.get(name) ?? 0;
          while (!withinOneOfShare(c, p, sum) && c * sum < 256 * p) c++;
          needed += c - (countsBefore.get(name) ?? 0);
        }
        const survivorBucketsMoved = before.filter((o, b) => o !== null && o !== failed && after[b] !== o).length;
        if (needed <= freed) expect(survivorBucketsMoved).toBe(0);
        for (const [name, p] of alive) {
          const lost = before.filter((o, b) => o === name && after[b] !== name).length;
          if (lost > 0) expect((counts.get(name) ?? 0) * sum).toBeGreaterThanOrEqual(256 * p - sum + 1);
        }
      }),
    );
  });

  test('a failure that frees fewer buckets than the survivors need still leaves every survivor within one bucket of its share', () => {
    const powers = new Map([['hotel', 4], ['foxtrot', 8], ['juliet', 490], ['india', 1], ['echo', 2], ['alpha', 106]]);
    const survivors = [...powers.keys()].filter((n) => n !== 'foxtrot');
    const after = rebalance(freshTable(powers), powers, survivors);
    const sum = total(new Map(survivors.map((n) => [n, powers.get(n)!])));
    const counts = countOwners(after);
    for (const n of survivors) expect(withinOneOfShare(counts.get(n) ?? 0, powers.get(n)!, sum)).toBe(true);
  });

  test('keeps survivors in place even where largest remainder alone would lower a survivor (Alabama paradox)', () => {
    // quotas() of these powers gives n5 one bucket with n3 present and none without it.
    const powers = new Map([['n0', 408], ['n1', 979], ['n2', 72], ['n3', 10], ['n4', 352], ['n5', 3]]);
    const without = new Map([...powers].filter(([n]) => n !== 'n3'));
    expect(quotas(powers).get('n5')).toBe(1);
    expect(quotas(without).get('n5')).toBe(0);
    const before = freshTable(powers);
    const after = rebalance(before, powers, without.keys());
    for (let b = 0; b < 256; b++) if (before[b] !== 'n3') expect(after[b]).toBe(before[b]);
  });

  test('on a join or power change moves only the buckets the new shares need', () => {
    fc.assert(
      fc.property(powersArb, servingPowersArb, (oldPowers, newPowers) => {
        const before = freshTable(oldPowers);
        const after = rebalance(before, newPowers);
        const held = countOwners(before.map((o) => (o !== null && (newPowers.get(o) ?? 0) > 0 ? o : null)));
        const counts = countOwners(after);
        // Every changed bucket lands with a node that gained: moved = Σ positive deficits.
        let gained = 0;
        for (const [name, count] of counts) gained += Math.max(0, count - (held.get(name) ?? 0));
        expect(moved(before, after)).toBe(gained);
      }),
    );
  });

  test('moves exactly the new node’s quota when a node joins', () => {
    const before = freshTable({ a: 1, b: 1, c: 1 });
    const after = rebalance(before, { a: 1, b: 1, c: 1, d: 1 });
    expect(countOwners(after).get('d')).toBe(64);
    expect(moved(before, after)).toBe(64);
  });

  test('gives nodes that are absent, not live or of power 0 nothing, and leaves everything unowned when none serves', () => {
    const before = freshTable({ a: 1, b: 1, c: 1 });
    const after = rebalance(before, { a: 1, b: 0 }, ['a', 'b', 'c']);
    expect(after.every((o) => o === 'a')).toBe(true);
    expect(rebalance(before, { a: 1, b: 1 }, []).every((o) => o === null)).toBe(true);
    expect(rebalance(before, { a: 0 }).every((o) => o === null)).toBe(true);
  });

  test('does not depend on the order the hosts are listed in', () => {
    fc.assert(
      fc.property(powersArb, servingPowersArb, fc.integer(), (oldPowers, newPowers, seed) => {
        const before = freshTable(oldPowers);
        const permuted = new Map(shuffled([...newPowers], seed));
        expect(rebalance(before, permuted)).toEqual(rebalance(before, newPowers));
        expect(rebalance(before, newPowers)).toEqual(rebalance([...before], new Map(newPowers)));
      }),
    );
  });

  test('spreads a failed node’s buckets over the survivors one by one', () => {
    const before = freshTable({ a: 1, b: 1, c: 1, d: 1 });
    const after = rebalance(before, { a: 1, b: 1, c: 1 });
    const taken = after.filter((_, b) => before[b] === 'd');
    expect(countOwners(taken)).toEqual(new Map([['a', 22], ['b', 21], ['c', 21]]));
  });
});

describe('node ids', () => {
  test('converts owner names to cluster node ids and back, null to NODE_NONE', () => {
    const nodes = ['n1', 'n2', 'n3'];
    const owners: Owners = ['n3', null, 'n1'];
    expect(ownersToIds(owners, nodes)).toEqual([2, NODE_NONE, 0]);
    expect(idsToOwners([2, NODE_NONE, 0], nodes)).toEqual(owners);
  });

  test('refuses an owner that is not a cluster node', () => {
    expect(() => ownersToIds(['ghost'], ['n1'])).toThrow(expect.objectContaining({ code: 'FARMLB_E_BALANCE_UNKNOWN_NODE' }));
  });

  test('converts with an id map built once (nodeIds) as with the node list', () => {
    const nodes = ['n1', 'n2', 'n3'];
    const ids = nodeIds(nodes);
    expect(ownersToIds(['n3', null, 'n1'], ids)).toEqual(ownersToIds(['n3', null, 'n1'], nodes));
    expect(() => ownersToIds(['ghost'], ids)).toThrow(expect.objectContaining({ code: 'FARMLB_E_BALANCE_UNKNOWN_NODE' }));
  });
});
