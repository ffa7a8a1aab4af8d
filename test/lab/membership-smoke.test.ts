// Smoke test of `farmlb run` with the membership protocol on the bridged lab: three real
// daemons come up and agree on one table (one epoch on every node, every bucket owned by
// exactly one node, the configured quotas), `farmlb status --json` and the HTTP health
// check answer, a `kill -9` of one daemon leaves the two others owning every bucket, and its
// restart gives the quotas back. Timings are waited for with generous deadlines: the
// failover target itself is measured by the benchmark, not asserted here. The full failure
// matrix (SIGSTOP, link down, partitions, loss, quorum) is in the membership lab tests.

import { afterAll, beforeAll, expect, it, type TestContext } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { FarmLab } from './helpers/farm-lab.js';
import { uniqueSuffix, waitFor } from './helpers/netns.js';
import type { DaemonStatus } from '../../src/api/status.js';

const NODES = [
  { name: 'node1', power: 1 },
  { name: 'node2', power: 1 },
  { name: 'node3', power: 2 },
];
/** Largest-remainder quotas of 1:1:2 over 256 buckets. */
const QUOTAS = { node1: 64, node2: 64, node3: 128 };
const GROUP = 'web';

function logsOnFailure(ctx: TestContext, lab: () => FarmLab | undefined): void {
  ctx.onTestFailed(() => {
    const logs = lab()?.logs();
    if (logs) console.error(logs);
  });
}

/** Every running node's status, or undefined when one does not answer yet. */
async function statuses(lab: FarmLab, nodes: string[]): Promise<DaemonStatus[] | undefined> {
  try {
    return await Promise.all(nodes.map((n) => lab.status(n)));
  } catch {
    return undefined;
  }
}

/** One table: the same epoch and view everywhere, UP, and each node's bucket count as expected. */
function agreed(all: DaemonStatus[], expected: Record<string, number>): boolean {
  const epochs = new Set(all.map((s) => s.epoch));
  if (epochs.size !== 1 || all.some((s) => s.state !== 'UP' || !s.ready)) return false;
  const view = Object.keys(expected).sort().join(',');
  if (all.some((s) => [...s.view].sort().join(',') !== view)) return false;
  // Every node's own count (from its own installed table) is its quota, and the counts of
  // each table add up to 256 with the expected owners.
  return all.every((s) => (s.bucketsOwned[GROUP] ?? 0) === expected[s.node]
    && s.nodes.every((n) => (n.buckets[GROUP] ?? 0) === (expected[n.name] ?? 0)));
}

describePrivileged('lab: membership smoke (three daemons agree, fail over after kill -9, rejoin)', () => {
  let lab: FarmLab | undefined;

  beforeAll(async () => {
    lab = await FarmLab.create({
      name: `msm${uniqueSuffix()}`,
      mode: 'vmac_invisible',
      xdpMode: 'generic',
      nodes: NODES,
      clientAddrs4: 0,
      clientAddrs6: 0,
      membership: true,
    });
  }, 120_000);

  afterAll(async () => {
    if (lab) expect(await lab.cleanup()).toEqual([]);
  }, 60_000);

  it('agrees on one table: one epoch on every node, every bucket owned once, the configured quotas', async (ctx) => {
    logsOnFailure(ctx, () => lab);
    const all = await waitFor(async () => {
      const s = await statuses(lab!, lab!.nodeNames());
      return s && agreed(s, QUOTAS) ? s : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250, what: 'the three nodes to agree on one table' });
    expect(new Set(all.map((s) => s.leader)).size).toBe(1);
    // The pinned maps say the same as the daemons: each bucket has exactly one owner across the farm.
    const owners = await Promise.all(lab!.nodeNames().map((n) => lab!.buckets(n)));
    const rows = owners.map((b) => b.groups[0]!.owners);
    for (const row of rows) expect(row).toEqual(rows[0]);
  });

  it('answers farmlb status --json and the health check on every node', async (ctx) => {
    logsOnFailure(ctx, () => lab);
    for (const node of lab!.nodeNames()) {
      const s = await lab!.status(node);
      expect(s).toMatchObject({ node, mode: 'membership', state: 'UP', splitBrain: false });
      expect(s.leaseRemainingMs).toBeGreaterThan(0);
      const ready = await lab!.health(node, `/var/modules/${s.module}/ready.txt`);
      expect(ready).toEqual({ status: 200, body: 'OK' });
      const health = await lab!.health(node, '/health');
      expect(health.status).toBe(200);
      expect(JSON.parse(health.body)).toMatchObject({ node, state: 'UP', epoch: s.epoch, bucketsOwned: { [GROUP]: QUOTAS[node as keyof typeof QUOTAS] } });
      expect((await lab!.health(node, '/nothing')).status).toBe(404);
      // -q exits with the module state: UP = 2.
      const q = await lab!.farmlb(['status', '-q'], node).then(() => 0, (err: { cause?: { code?: number } }) => err.cause?.code ?? -1);
      expect(q).toBe(2);
    }
  });

  it('gives every bucket to the two survivors after kill -9 of one daemon, and the quotas back after its restart', async (ctx) => {
    logsOnFailure(ctx, () => lab);
    const before = (await lab!.status('node1')).epoch;
    await lab!.killNode('node3', 'SIGKILL');
    const survivors = ['node1', 'node2'];
    const after = await waitFor(async () => {
      const s = await statuses(lab!, survivors);
      return s && agreed(s, { node1: 128, node2: 128 }) ? s : undefined;
    }, { timeoutMs: 20_000, intervalMs: 100, what: 'node1 and node2 to own every bucket' });
    expect(after[0]!.epoch).toBeGreaterThan(before);
    expect(after[0]!.nodes.find((n) => n.name === 'node3')?.state).toBe('lost');
    expect(after[0]!.lastViewChange?.cause).toBeTruthy();
    const from = lab!.logMark('node1');
    await lab!.startNode('node3', { timeoutMs: 30_000 });
    await waitFor(async () => {
      const s = await statuses(lab!, lab!.nodeNames());
      return s && agreed(s, QUOTAS) ? s : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250, what: 'the quotas to come back after node3 restarts' });
    // The view change was logged with its timings.
    expect(lab!.logSince('node1', from)).toMatch(/"event":"view"/);
  });
});
