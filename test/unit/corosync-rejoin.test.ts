// A returning node under the Corosync backend (docs/membership.md, "A returning node under
// Corosync"): real CorosyncMembership instances on a fake corosync (test/helpers/
// fake-corosync.ts, the addon's corosyncOpen seam) under fake timers. A node back from a
// failed check, a hang or a lost session serves nothing until it is in a CPG configuration
// with a node that kept serving (or with every node it served with), and never revives the
// table it held before; a partition of serving nodes under `serve` still serves on both sides.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CorosyncMembership } from '../../src/membership/corosync/corosync-membership.js';
import type { EngineOutput, NodeState, ViewTable } from '../../src/membership/types.js';
import { FakeCorosync } from '../helpers/fake-corosync.js';

const NODES = ['n1', 'n2', 'n3'];
const POWERS = { n1: 1, n2: 1, n3: 2 };
const QUOTAS = { n1: 64, n2: 64, n3: 128 };
const KEY = Buffer.alloc(32, 7);
const MS = 1_000_000n;

interface Seen {
  state: NodeState;
  cause: string;
  lease: bigint;
  table: ViewTable | undefined;
}

class Farm {
  readonly fake = new FakeCorosync(NODES);
  readonly members = new Map<string, CorosyncMembership>();
  readonly seen = new Map<string, Seen>();
  /** Per node, every sample at which it served a bucket, with the table's view. */
  readonly servedViews = new Map<string, string[][]>();
  readonly doubles: string[] = [];

  start(node: string): CorosyncMembership {
    const pid = this.fake.pid();
    this.fake.pidFor.set(node, pid);
    const seen: Seen = { state: 'WAIT', cause: '', lease: 0n, table: undefined };
    this.seen.set(node, seen);
    const m = new CorosyncMembership({
      native: this.fake.native(node), module: 'web', self: node, nodes: NODES,
      groups: [{ name: 'web', powers: new Map(Object.entries(POWERS)) }], configDigest: 'digest-A',
      timing: { pulseMs: 50, slostCount: 5, mlostCount: 7, leaseMs: 770, leaseClockSlackMs: 20 },
      splitBrain: 'serve', handoverLimitMs: 0, key: KEY, running: this.fake.running(node), pid,
      nowNs: () => BigInt(Date.now()) * MS,
    });
    m.start((out: EngineOutput) => {
      seen.state = out.state;
      seen.cause = out.cause;
      if (out.leaseDeadlineNs !== undefined) seen.lease = out.leaseDeadlineNs;
      if (out.table) seen.table = out.table;
    });
    this.members.set(node, m);
    return m;
  }

  /** The buckets `node` serves now: its installed table's, while its lease holds. */
  served(node: string): number[] {
    const s = this.seen.get(node)!;
    if (!s.table || s.lease <= BigInt(Date.now()) * MS) return [];
    return s.table.groups[0]!.flatMap((o, b) => (o === node ? [b] : []));
  }

  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const n of NODES) {
      const c = this.served(n).length;
      if (c > 0) out[n] = c;
    }
    return out;
  }

  /** Advances time in 10 ms steps, sampling who serves what (the lab's sampler, in fake time). */
  async run(ms: number, opts: { sides?: string[][] } = {}): Promise<void> {
    for (let t = 0; t < ms; t += 10) {
      await vi.advanceTimersByTimeAsync(10);
      const by = new Map<number, string[]>();
      for (const n of NODES) {
        const served = this.served(n);
        if (served.length > 0) this.servedViews.set(n, [...(this.servedViews.get(n) ?? []), this.seen.get(n)!.table!.view]);
        for (const b of served) by.set(b, [...(by.get(b) ?? []), n]);
      }
      // Two nodes serving a bucket is double serving unless they are on two sides of a partition under `serve`.
      const sides = opts.sides ?? [NODES];
      for (const [b, ns] of by) {
        if (ns.length > 1 && sides.some((side) => ns.filter((n) => side.includes(n)).length > 1)) this.doubles.push(`bucket ${b}: ${ns.join(',')} at ${Date.now()}`);
      }
    }
  }

  /** Disables a member's pulse (its event loop does not run: a hang), or gives it back. */
  setPulse(node: string, on: boolean): void {
    const m = this.members.get(node) as unknown as { pulse?: () => void };
    if (on) delete m.pulse;
    else m.pulse = () => {};
  }

  async stop(): Promise<void> {
    const stops = [...this.members.values()].map((m) => m.stop());
    await vi.advanceTimersByTimeAsync(2000);
    await Promise.all(stops);
  }
}

async function startedFarm(): Promise<Farm> {
  const farm = new Farm();
  for (const n of NODES) farm.start(n);
  await farm.run(3000);
  expect(farm.counts(), JSON.stringify([...farm.seen].map(([n, s]) => [n, s.state, s.cause, String(s.lease), s.table?.epoch, s.table?.view]))).toEqual(QUOTAS);
  expect(farm.doubles).toEqual([]);
  return farm;
}

/**
 * The rings merge (the partition heals): n1 serves again, only on tables formed with n2 and
 * n3, the quotas come back, and no bucket was ever served twice.
 */
async function mergedAgain(farm: Farm): Promise<void> {
  farm.fake.heal();
  await farm.run(3000);
  expect(farm.counts()).toEqual(QUOTAS);
  expect(new Set(farm.servedViews.get('n1')!.map((v) => v.join(',')))).toEqual(new Set(['n1,n2,n3']));
  expect(farm.doubles).toEqual([]);
}

/** The farm runs on fake timers (timeouts, intervals, Date) for the describe block it is called in. */
function useFakeClock(): void {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
}

describe('Corosync backend: a returning node never serves a stale table', () => {
  useFakeClock();

  it('three members on the fake corosync agree on the quotas', async () => {
    const farm = await startedFarm();
    for (const n of NODES) expect(farm.seen.get(n)!.state).toBe('UP');
    await farm.stop();
  });

  it('a node whose check failed, then passes while alone in its ring under `serve`, serves nothing until a table formed with a serving member names it', async () => {
    const farm = await startedFarm();
    const n1 = farm.members.get('n1')!;
    farm.servedViews.clear();
    n1.setLocalHealth(false, 'interface eth0 down');
    await farm.run(100);
    // The link is down: corosync drops n1 from the others' ring, n1 is alone in its own.
    farm.fake.partition([['n2', 'n3'], ['n1']]);
    await farm.run(1000);
    expect(farm.served('n1')).toEqual([]);
    n1.setLocalHealth(true, '');
    // Far beyond any rejoin grace (downcheck + merge + join + consensus + token + pulse = 1960 ms): no timer ends it.
    await farm.run(5000);
    expect(farm.servedViews.get('n1') ?? []).toEqual([]);
    expect(farm.seen.get('n1')).toMatchObject({ state: 'WAIT', lease: 0n });
    expect(farm.seen.get('n1')!.cause).toMatch(/rejoining/);
    expect(farm.counts()).toEqual({ n2: 85, n3: 171 });
    await mergedAgain(farm);
    await farm.stop();
  });

  it('a node back from a hang (its host paused, its lease out) does not revive its old table while alone', async () => {
    const farm = await startedFarm();
    const old = farm.served('n1');
    expect(old).toHaveLength(64);
    farm.servedViews.clear();
    farm.setPulse('n1', false);
    farm.fake.hang('n1');
    await farm.run(3000, { sides: [['n1'], ['n2', 'n3']] });
    expect(farm.counts()).toEqual({ n2: 85, n3: 171 });
    // It resumes alone: corosync tells it the others left its ring (as after any ring loss).
    farm.setPulse('n1', true);
    farm.fake.resume('n1');
    await farm.run(3000, { sides: [['n1'], ['n2', 'n3']] });
    expect(farm.servedViews.get('n1')?.filter((v) => v.join(',') !== 'n1,n2,n3') ?? []).toEqual([]);
    expect(farm.served('n1')).toEqual([]);
    expect(farm.seen.get('n1')!.state).toBe('WAIT');
    farm.fake.heal();
    await farm.run(3000);
    expect(farm.counts()).toEqual(QUOTAS);
    expect(farm.doubles).toEqual([]);
    await farm.stop();
  });

  it('a node whose corosync was killed and restarted alone in its ring serves nothing until it merges with the farm', async () => {
    const farm = await startedFarm();
    farm.servedViews.clear();
    farm.fake.killCorosync('n1');
    await vi.advanceTimersByTimeAsync(0);
    expect(farm.served('n1')).toEqual([]);
    // The daemon opens a new session a second later, alone in its ring: a fresh member.
    await farm.run(4000, { sides: [['n1'], ['n2', 'n3']] });
    expect(farm.servedViews.get('n1') ?? []).toEqual([]);
    expect(farm.seen.get('n1')!.cause).toMatch(/rejoining after lost corosync/);
    await mergedAgain(farm);
    await farm.stop();
  });

  it('two returning nodes cut off together do not make a side of their own: they wait for the node that kept serving', async () => {
    const farm = await startedFarm();
    farm.servedViews.clear();
    for (const n of ['n1', 'n2']) farm.members.get(n)!.setLocalHealth(false, 'uplink down');
    await farm.run(100);
    farm.fake.partition([['n1', 'n2'], ['n3']]);
    await farm.run(1000, { sides: [['n1', 'n2'], ['n3']] });
    for (const n of ['n1', 'n2']) farm.members.get(n)!.setLocalHealth(true, '');
    await farm.run(5000, { sides: [['n1', 'n2'], ['n3']] });
    expect(farm.servedViews.get('n1') ?? []).toEqual([]);
    expect(farm.servedViews.get('n2') ?? []).toEqual([]);
    expect(farm.counts()).toEqual({ n3: 256 });
    farm.fake.heal();
    await farm.run(3000);
    expect(farm.counts()).toEqual(QUOTAS);
    expect(farm.doubles).toEqual([]);
    await farm.stop();
  });

  it('a daemon stalled for less than its lease serves on without a gap (a pause is a return only once the lease ran out)', async () => {
    const farm = await startedFarm();
    const lapses: number[] = [];
    farm.setPulse('n2', false);
    farm.fake.pauseDaemon('n2');
    for (let i = 0; i < 40; i++) {
      await farm.run(10);
      if (farm.served('n2').length !== 64) lapses.push(Date.now());
    }
    farm.setPulse('n2', true);
    farm.fake.resume('n2');
    for (let i = 0; i < 100; i++) {
      await farm.run(10);
      if (farm.served('n2').length !== 64) lapses.push(Date.now());
    }
    expect(lapses).toEqual([]);
    expect(farm.seen.get('n2')!.state).toBe('UP');
    expect(farm.doubles).toEqual([]);
    await farm.stop();
  });

  it('a daemon hung for 2 s (its corosync alive): suspected, its buckets move; resumed, it rejoins through the farm and gets its quota back', async () => {
    const farm = await startedFarm();
    farm.setPulse('n2', false);
    farm.fake.pauseDaemon('n2');
    await farm.run(2000);
    expect(farm.counts()).toEqual({ n1: 85, n3: 171 });
    farm.setPulse('n2', true);
    farm.fake.resume('n2');
    await farm.run(2000);
    expect(farm.counts()).toEqual(QUOTAS);
    expect(farm.doubles).toEqual([]);
    await farm.stop();
  });

  it('every check fails and passes together in one ring: the farm serves again (no node waits for another)', async () => {
    const farm = await startedFarm();
    for (const n of NODES) farm.members.get(n)!.setLocalHealth(false, 'gateway unreachable');
    await farm.run(500);
    expect(farm.counts()).toEqual({});
    for (const n of NODES) farm.members.get(n)!.setLocalHealth(true, '');
    await farm.run(3000);
    expect(farm.counts()).toEqual(QUOTAS);
    expect(farm.doubles).toEqual([]);
    await farm.stop();
  });

  it('a node whose check fails and passes while in the ring with serving members rejoins at once', async () => {
    const farm = await startedFarm();
    const n2 = farm.members.get('n2')!;
    n2.setLocalHealth(false, 'VIP check failed');
    await farm.run(500);
    expect(farm.served('n2')).toEqual([]);
    n2.setLocalHealth(true, '');
    await farm.run(300);
    expect(farm.seen.get('n2')!.state).toBe('UP');
    await farm.run(1000);
    expect(farm.counts()).toEqual(QUOTAS);
    expect(farm.doubles).toEqual([]);
    await farm.stop();
  });

  it("a node whose peers' daemons died (PROCDOWN) while its check was failing serves alone once it passes", async () => {
    const farm = await startedFarm();
    const n1 = farm.members.get('n1')!;
    n1.setLocalHealth(false, 'VIP check failed');
    await farm.run(200);
    farm.fake.killDaemon('n2');
    farm.fake.killDaemon('n3');
    await farm.run(1000, { sides: [['n1'], ['n2'], ['n3']] });
    n1.setLocalHealth(true, '');
    await farm.run(3000, { sides: [['n1'], ['n2'], ['n3']] });
    expect(farm.served('n1')).toHaveLength(256);
  });

  it('a partition of serving nodes under `serve` keeps serving on both sides (the lone node never lapses)', async () => {
    const farm = await startedFarm();
    const lapses: number[] = [];
    farm.fake.partition([['n2', 'n3'], ['n1']]);
    for (let i = 0; i < 300; i++) {
      await farm.run(10, { sides: [['n1'], ['n2', 'n3']] });
      if (farm.served('n1').length === 0) lapses.push(Date.now());
    }
    expect(lapses).toEqual([]);
    expect(farm.seen.get('n1')!.state).toBe('UP');
    expect(farm.served('n1')).toHaveLength(256);
    expect(farm.served('n2').length + farm.served('n3').length).toBe(256);
    expect(farm.doubles).toEqual([]);
    farm.fake.heal();
    await farm.run(3000);
    expect(farm.counts()).toEqual(QUOTAS);
    await farm.stop();
  });
});

// docs/membership.md, "When corosync hangs": every call that waits for corosync runs on the
// session's thread (native/corosync.cc); here the fake corosync's stopCorosync leaves those
// calls pending, as a SIGSTOPped corosync does. Lease 770 ms: corosync counts as hung once a
// call has waited half of it (385 ms).
describe('Corosync backend: a hung corosync (SIGSTOP) makes its node WAIT with the cause; it returns through the farm', () => {
  useFakeClock();

  it('a stopped corosync: WAIT within half a lease and a probe interval, lease revoked, the cause names the pending call; the outbox stays bounded; back, it serves again only with the farm', async () => {
    const farm = await startedFarm();
    const n1 = farm.members.get('n1')!;
    const stoppedAt = Date.now();
    farm.fake.stopCorosync('n1');
    // Its lease (renewed last before the stop) may still hold: it serves on, and the others
    // take its buckets only once it has surely run out (no double serving, sampled every 10 ms).
    let waitAt: number | undefined;
    for (let t = 0; t < 1000 && waitAt === undefined; t += 10) {
      await farm.run(10);
      if (farm.seen.get('n1')!.state === 'WAIT') waitAt = Date.now() - stoppedAt;
    }
    // Half a lease (385 ms) past a probe sent at most a quarter lease (192 ms) before the stop, checked each pulse (50 ms).
    expect(waitAt).toBeDefined();
    expect(waitAt!).toBeGreaterThanOrEqual(385 - 192 - 50);
    expect(waitAt!).toBeLessThanOrEqual(385 + 192 + 50);
    expect(farm.seen.get('n1')).toMatchObject({ state: 'WAIT', lease: 0n, cause: 'corosync does not answer (votequorum_getinfo pending for over 385 ms)' });
    const during = n1.status();
    expect(during.corosync).toMatchObject({ hung: { call: 'votequorum_getinfo' }, hangs: 1 });
    expect(during.corosync!.hung!.pendingMs).toBeGreaterThan(385);
    expect(during.leaseDeadlineNs).toBe(0n);
    // The others drop it from their ring and take its buckets.
    await farm.run(3000);
    expect(farm.counts()).toEqual({ n2: 85, n3: 171 });
    expect(farm.seen.get('n1')!.state).toBe('WAIT');
    // 3.6 s of beats (20 a second) did not pile up: the oldest went, counted.
    expect(n1.status().corosync!.droppedMessages).toBeGreaterThan(30);
    // SIGCONT: corosync answers, the node is alone in its ring: it rejoins, it does not revive its table.
    farm.servedViews.clear();
    farm.fake.contCorosync('n1');
    await farm.run(2000, { sides: [['n1'], ['n2', 'n3']] });
    expect(n1.status().corosync!.hung).toBeUndefined();
    expect(farm.served('n1')).toEqual([]);
    expect(farm.seen.get('n1')!.cause).toMatch(/rejoining after corosync did not answer \(votequorum_getinfo\)/);
    expect(farm.servedViews.get('n1') ?? []).toEqual([]);
    await mergedAgain(farm);
    await farm.stop();
  });

  it('a connection to a stopped corosync: WAIT with "connect pending"; it connects once corosync answers', async () => {
    const farm = await startedFarm();
    const n1 = farm.members.get('n1')!;
    // corosync killed, started again and stopped before the daemon's next connection (1 s later).
    farm.fake.killCorosync('n1');
    farm.fake.stopCorosync('n1');
    await farm.run(2000, { sides: [['n1'], ['n2', 'n3']] });
    expect(farm.seen.get('n1')).toMatchObject({ state: 'WAIT', lease: 0n, cause: 'corosync does not answer (connect pending for over 385 ms)' });
    expect(n1.status().corosync).toMatchObject({ connected: false, hung: { call: 'connect' } });
    farm.fake.contCorosync('n1');
    await farm.run(500, { sides: [['n1'], ['n2', 'n3']] });
    expect(n1.status().corosync).toMatchObject({ connected: true });
    expect(n1.status().corosync!.hung).toBeUndefined();
    farm.fake.heal();
    await farm.run(3000);
    expect(farm.counts()).toEqual(QUOTAS);
    expect(farm.doubles).toEqual([]);
    await farm.stop();
  });

  it('a live corosync is asked every quarter lease, and a stop while corosync hangs ends within a second', async () => {
    const farm = await startedFarm();
    const before = farm.fake.infoCalls.get('n2') ?? 0;
    await farm.run(1925);
    // 1925 ms / 192 ms ≈ 10 probes (a ring event may add one).
    expect((farm.fake.infoCalls.get('n2') ?? 0) - before).toBeGreaterThanOrEqual(9);
    expect((farm.fake.infoCalls.get('n2') ?? 0) - before).toBeLessThanOrEqual(12);
    farm.fake.stopCorosync('n2');
    await farm.run(1000, { sides: [['n2'], ['n1', 'n3']] });
    let stopped = false;
    const stopping = farm.members.get('n2')!.stop().then(() => { stopped = true; });
    await vi.advanceTimersByTimeAsync(1100);
    expect(stopped).toBe(true);
    await stopping;
    farm.fake.contCorosync('n2');
    await farm.stop();
  });
});
