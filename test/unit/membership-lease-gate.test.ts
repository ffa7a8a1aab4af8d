// LeaseGate (src/membership/lease-gate.ts): a renewal on a table of the lineage of the data
// plane's table and of every table queued after it may be written ahead of the queue — not
// across a change of leader or a table set aside, not before the data plane's table is known,
// not while a revocation, a WAIT or a configuration switch is queued, not for a decision that
// carries a table, nor while an earlier table lets the node accept more than its latest.

import { describe, expect, it } from 'vitest';
import { LeaseGate } from '../../src/membership/lease-gate.js';
import type { EngineOutput, ViewTable } from '../../src/membership/types.js';

const table = (leader: string | null, epoch: number) => ({ leader, epoch } as unknown as ViewTable);
const withTable = (leader: string | null, epoch: number): EngineOutput => ({ state: 'UP', cause: '', events: [], table: table(leader, epoch) });
const renewal = (deadline: bigint, leader: string, fromEpoch: number): EngineOutput =>
  ({ state: 'UP', cause: '', events: [], leaseDeadlineNs: deadline, leaseLineage: { leader, fromEpoch } });

/** A gate whose data plane has table (leader, epoch) and whose queue holds `queued`. */
function gate(dataplane: [string | null, number], ...queued: EngineOutput[]): LeaseGate {
  const g = new LeaseGate('n1');
  const first = withTable(...dataplane);
  g.queued(first);
  g.applied(first);
  for (const q of queued) g.queued(q);
  return g;
}

describe('LeaseGate', () => {
  it('lets a renewal through while tables of its lineage are queued behind the data plane\'s', () => {
    const g = gate(['n1', 3], withTable('n1', 4), withTable('n1', 5));
    expect(g.early(renewal(500n, 'n1', 2))).toBe(500n);
    // With nothing queued too: the data plane's table is of the lineage.
    expect(gate(['n1', 3]).early(renewal(500n, 'n1', 3))).toBe(500n);
  });

  it('refuses across a change of leader: the data plane\'s table or a queued one is another leader\'s', () => {
    expect(gate(['n1', 3], withTable('n2', 4)).early(renewal(500n, 'n2', 4))).toBeUndefined();
    expect(gate(['n2', 3], withTable('n1', 4), withTable('n2', 5)).early(renewal(500n, 'n2', 5))).toBeUndefined();
    // A table of no leader (the start table) is nobody's lineage.
    expect(gate([null, 0], withTable('n1', 1)).early(renewal(500n, 'n1', 1))).toBeUndefined();
  });

  it('refuses after a table set aside: the same leader\'s new lineage starts above the data plane\'s table', () => {
    // n1 set aside its table of epoch 3 (TablesState.setAsideOwnTable) and leads again from epoch 5.
    expect(gate(['n1', 3], withTable('n1', 5)).early(renewal(500n, 'n1', 5))).toBeUndefined();
    expect(gate(['n1', 3]).early(renewal(500n, 'n1', 4))).toBeUndefined();
  });

  it('refuses while the data plane\'s or a queued table lets it accept a packet the latest one does not', () => {
    // n1 leads; its partition-time table (epoch 4) took n3's bucket 7, returned at the heal (epoch 5).
    const rows = (owners: Record<number, string>, prev: Record<number, string> = {}) => ({
      groups: [Array.from({ length: 256 }, (_, b) => owners[b] ?? null)], prev: [Array.from({ length: 256 }, (_, b) => prev[b] ?? null)],
    });
    const t = (epoch: number, owners: Record<number, string>, prev?: Record<number, string>): EngineOutput =>
      ({ state: 'UP', cause: '', events: [], table: { leader: 'n1', epoch, view: ['n1', 'n3'], digest: `d${epoch}`, ...rows(owners, prev) } });
    const g = new LeaseGate('n1');
    const first = t(3, { 1: 'n1', 7: 'n3' });
    g.queued(first);
    g.applied(first);
    const taken = t(4, { 1: 'n1', 7: 'n1' });
    const returned = t(5, { 1: 'n1', 7: 'n3' });
    g.queued(taken);
    g.queued(returned);
    expect(g.early(renewal(500n, 'n1', 1))).toBeUndefined();
    g.applied(taken);
    expect(g.early(renewal(500n, 'n1', 1))).toBeUndefined();
    g.applied(returned);
    // Tables that give it no more than the latest (a bucket gained, one kept as previous owner): through.
    g.queued(t(6, { 1: 'n1', 2: 'n1', 7: 'n3' }));
    expect(g.early(renewal(500n, 'n1', 1))).toBe(500n);
    const g2 = new LeaseGate('n1');
    const handing = t(3, { 1: 'n1' });
    g2.queued(handing);
    g2.applied(handing);
    g2.queued(t(4, { 1: 'n2' }, { 1: 'n1' }));
    // Owner before, previous owner now: the earlier table takes every packet of bucket 1.
    expect(g2.early(renewal(500n, 'n1', 1))).toBeUndefined();
    // A follower too: n3 back from a pause, released and its bucket given away meanwhile,
    // its data plane still on the table it left with.
    const g3 = new LeaseGate('n3');
    const f = t(1, { 7: 'n3' });
    g3.queued(f);
    g3.applied(f);
    g3.queued(t(11, { 7: 'n5' }));
    expect(g3.early(renewal(500n, 'n1', 1))).toBeUndefined();
    // An owner whose latest table names a previous owner the earlier one did not: refused.
    const g4 = new LeaseGate('n1');
    const before = t(3, { 1: 'n1' });
    g4.queued(before);
    g4.applied(before);
    g4.queued(t(4, { 1: 'n1' }, { 1: 'n2' }));
    expect(g4.early(renewal(500n, 'n1', 1))).toBeUndefined();
  });

  it('lets a renewal overtake a table that ends a previous-owner role the node holds no connection in, by a sample under the data plane\'s table', () => {
    // The continuity search's lapse with slow installs: n3's data plane names it previous
    // owner of bucket 9 (handing it to n2), its queued table ends the handover (drained); a
    // renewal waited for that install and the lease ran out meanwhile.
    const rows = (owners: Record<number, string>, prev: Record<number, string> = {}) => ({
      groups: [Array.from({ length: 256 }, (_, b) => owners[b] ?? null)], prev: [Array.from({ length: 256 }, (_, b) => prev[b] ?? null)],
    });
    const t = (epoch: number, owners: Record<number, string>, prev?: Record<number, string>): EngineOutput =>
      ({ state: 'UP', cause: '', events: [], table: { leader: 'n1', epoch, view: ['n1', 'n2', 'n3'], digest: `d${epoch}`, ...rows(owners, prev) } });
    const counts = (held: Record<number, number>) => [Array.from({ length: 256 }, (_, b) => held[b] ?? 0)];
    const handing = () => {
      const g = new LeaseGate('n3');
      const first = t(6, { 3: 'n3', 9: 'n2' }, { 9: 'n3' });
      g.queued(first);
      g.applied(first);
      g.queued(t(7, { 3: 'n3', 9: 'n2' }));
      return g;
    };
    // No sample: refused, as before.
    expect(handing().early(renewal(500n, 'n1', 1))).toBeUndefined();
    // Drained under the data plane's table: through.
    const drained = handing();
    drained.noteHoldings({ epoch: 6, counts: counts({}), sampledAtNs: 1n });
    expect(drained.early(renewal(500n, 'n1', 1))).toBe(500n);
    // A connection still held there: refused (its packets would be accepted twice).
    const held = handing();
    held.noteHoldings({ epoch: 6, counts: counts({ 9: 1 }), sampledAtNs: 1n });
    expect(held.early(renewal(500n, 'n1', 1))).toBeUndefined();
    // A sample under another table (an earlier one: it counted only that table's roles): refused.
    const stale = handing();
    stale.noteHoldings({ epoch: 5, counts: counts({}), sampledAtNs: 1n });
    expect(stale.early(renewal(500n, 'n1', 1))).toBeUndefined();
    // Drained says nothing of a bucket the earlier table owns: owner before, nothing after, refused.
    const g = new LeaseGate('n3');
    const owner = t(6, { 3: 'n3', 9: 'n3' });
    g.queued(owner);
    g.applied(owner);
    g.queued(t(7, { 3: 'n3', 9: 'n2' }));
    g.noteHoldings({ epoch: 6, counts: counts({}), sampledAtNs: 1n });
    expect(g.early(renewal(500n, 'n1', 1))).toBeUndefined();
    // Nor of a previous-owner role a queued table gives (no sample under it yet): refused.
    const g2 = new LeaseGate('n3');
    g2.queued(owner);
    g2.applied(owner);
    g2.queued(t(7, { 3: 'n3', 9: 'n2' }, { 9: 'n3' }));
    g2.queued(t(8, { 3: 'n3', 9: 'n2' }));
    g2.noteHoldings({ epoch: 6, counts: counts({}), sampledAtNs: 1n });
    expect(g2.early(renewal(500n, 'n1', 1))).toBeUndefined();
  });

  it('refuses while a revocation, a WAIT or a configuration switch is queued, until it is applied', () => {
    const revoke: EngineOutput = { state: 'UP', cause: '', events: [], leaseDeadlineNs: 0n };
    const wait: EngineOutput = { state: 'WAIT', cause: 'check failed', events: [] };
    const switched: EngineOutput = { state: 'UP', cause: '', events: [{ type: 'config_switched', from: 'a', to: 'b' }] };
    for (const blocker of [revoke, wait, switched]) {
      const g = gate(['n1', 3], blocker, withTable('n1', 4));
      expect(g.early(renewal(500n, 'n1', 3))).toBeUndefined();
      g.applied(blocker);
      expect(g.early(renewal(500n, 'n1', 3))).toBe(500n);
    }
  });

  it('refuses a revocation, a renewal of a WAIT decision, and a renewal that comes with a table', () => {
    const g = gate(['n1', 3]);
    expect(g.early({ ...renewal(0n, 'n1', 3) })).toBeUndefined();
    expect(g.early({ ...renewal(500n, 'n1', 3), state: 'WAIT' })).toBeUndefined();
    expect(g.early({ ...renewal(500n, 'n1', 3), table: table('n1', 4) })).toBeUndefined();
    // No lineage (the engine's table has no leader): nothing to hold it for.
    expect(g.early({ state: 'UP', cause: '', events: [], leaseDeadlineNs: 500n })).toBeUndefined();
  });

  it('refuses before the data plane has a table, and after an apply failed (its table unknown)', () => {
    const g = new LeaseGate('n1');
    const first = withTable('n1', 1);
    g.queued(first);
    expect(g.early(renewal(500n, 'n1', 1))).toBeUndefined();
    g.applied(first);
    expect(g.early(renewal(500n, 'n1', 1))).toBe(500n);
    const next = withTable('n1', 2);
    g.queued(next);
    g.failed(next);
    expect(g.early(renewal(600n, 'n1', 1))).toBeUndefined();
    // The next table applied is the data plane's again.
    const after = withTable('n1', 3);
    g.queued(after);
    g.applied(after);
    expect(g.early(renewal(700n, 'n1', 1))).toBe(700n);
  });

  it('follows the queue: once the other leader\'s table is applied, its lineage is the data plane\'s', () => {
    const other = withTable('n2', 4);
    const g = gate(['n1', 3], other);
    expect(g.early(renewal(500n, 'n2', 4))).toBeUndefined();
    g.applied(other);
    expect(g.early(renewal(500n, 'n2', 4))).toBe(500n);
  });

  // Slow-install search (serve; Simulator seeds 660081, 5, 368250): a table of a lineage the
  // engine had left landed after it, gaining the node a bucket, served under that lineage's
  // renewal beside the node the new lineage gave it to.
  describe('leaving the lineage of a table still on its way', () => {
    /** A table of `leader` (epoch) where n1 owns `mine` (group 0), with the previous owners `prev`. */
    const owning = (leader: string | null, epoch: number, mine: number[], prev: Record<number, string> = {}): EngineOutput => ({
      state: 'UP', cause: '', events: [],
      table: {
        leader, epoch, view: ['n1', 'n2'], digest: `d${epoch}`,
        groups: [Array.from({ length: 256 }, (_, b) => (mine.includes(b) ? 'n1' : null))],
        prev: [Array.from({ length: 256 }, (_, b) => prev[b] ?? null)],
      },
    });
    /** A gate whose data plane has `dataplane` and whose queue holds `queued`. */
    const on = (dataplane: EngineOutput, ...queued: EngineOutput[]) => {
      const g = new LeaseGate('n1');
      g.queued(dataplane);
      g.applied(dataplane);
      for (const q of queued) g.queued(q);
      return g;
    };
    const heartbeatOf = (leader: string) => ({ state: 'UP', cause: '', events: [], send: { leader } } as unknown as EngineOutput);

    it('asks for a revocation when a table on its way, of the lineage left, gains this node a bucket', () => {
      // Following n2, n2's table giving us bucket 7 is being installed; now n3 leads.
      expect(on(owning('n2', 3, [1]), owning('n2', 4, [1, 7])).leaves(owning('n3', 5, [1]))).toBe(true);
      expect(on(owning('n2', 3, [1]), owning('n2', 4, [1, 7])).leaves(heartbeatOf('n3'))).toBe(true);
      // Our own tables queued, one taking every packet of a bucket we held as previous owner; we follow n2 now.
      expect(on(owning('n1', 3, [1], { 1: 'n2' }), owning('n1', 4, [1])).leaves(owning('n2', 5, [1]))).toBe(true);
      // Given away by one table, back in the next: a gain over the table before it.
      expect(on(owning('n2', 3, [1, 7]), owning('n2', 4, [1]), owning('n2', 5, [1, 7])).leaves(owning('n3', 6, []))).toBe(true);
      // Our table set aside (no leader) is another lineage too.
      expect(on(owning('n1', 3, [1]), owning('n1', 4, [1, 7])).leaves(owning(null, 5, [1]))).toBe(true);
      // A leader giving way at a heal (slow-install search seed 6, Simulator seed 677357): its
      // own table taking bucket 7 is being installed; it takes n3 for leader before it has a
      // table of n3's, its heartbeat still naming the table it installed (its own).
      const givingWay = { state: 'UP', cause: '', events: [{ type: 'leader', leader: 'n3' }], send: { leader: 'n1' } } as unknown as EngineOutput;
      expect(on(owning('n1', 3, [1]), owning('n1', 4, [1, 7])).leaves(givingWay)).toBe(true);
      // Without taking another leader, the same heartbeat leaves nothing.
      expect(on(owning('n1', 3, [1]), owning('n1', 4, [1, 7])).leaves({ ...givingWay, events: [] })).toBe(false);
    });

    it('does not when the tables on their way only give buckets away, are of that leader, or there are none', () => {
      // A returning leader takes the lead back while a survivor installs the handover step that gives it bucket 7.
      expect(on(owning('n2', 3, [1, 7]), owning('n2', 4, [1])).leaves(owning('n3', 5, [1]))).toBe(false);
      expect(on(owning('n2', 3, [1]), owning('n2', 4, [1, 7])).leaves(owning('n2', 5, [1, 7]))).toBe(false);
      expect(on(owning('n2', 3, [1])).leaves(owning('n3', 4, [1, 7]))).toBe(false);
      // A decision that names no leader at all (no table, heartbeat or renewal).
      expect(on(owning('n2', 3, [1]), owning('n2', 4, [1, 7])).leaves({ state: 'UP', cause: '', events: [] })).toBe(false);
    });

    it('holds back the renewals of the lineage left after a revocation, and only then', () => {
      const g = on(owning('n2', 3, [1]), owning('n2', 4, [1, 7]));
      const old = renewal(500n, 'n2', 3);
      expect(g.leaves(old)).toBe(false);
      g.queued(old);
      expect(g.leftLineage(old)).toBe(false);
      expect(g.leaves(owning('n3', 5, [1]))).toBe(true);
      expect(g.leftLineage(old)).toBe(true);
      // The new lineage's renewals are written (in order, after its table); a revocation always.
      expect(g.leftLineage(renewal(600n, 'n3', 5))).toBe(false);
      expect(g.leftLineage({ state: 'WAIT', cause: '', events: [], leaseDeadlineNs: 0n })).toBe(false);
      // A switch that needs no revocation holds nothing back.
      const quiet = on(owning('n2', 3, [1, 7]), owning('n2', 4, [1]));
      expect(quiet.leaves(owning('n3', 5, [1]))).toBe(false);
      expect(quiet.leftLineage(renewal(500n, 'n2', 3))).toBe(false);
    });
  });
});
