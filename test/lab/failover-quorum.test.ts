// Failover lab (docs/membership.md "Split brain and heal") with split-brain policy `quorum`: a partition that isolates one node
// of three leaves that minority owning nothing (its lease is not renewed: no majority), while
// the majority serves every bucket — so, unlike `serve`, no bucket is ever served twice even
// across the partition, and established connections on the majority carry on. Healing
// restores the quotas. Both membership backends: the built-in engine counts the heartbeats
// it hears, the Corosync one asks votequorum (and treats quorum as unknown after a ring change
// until votequorum's answer for the new ring has come); the cut-off node reports no quorum.

import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { FarmLab } from './helpers/farm-lab.js';
import { uniqueSuffix, waitFor } from './helpers/netns.js';
import { OverlapSampler, coverage, readServed } from './helpers/overlap-sampler.js';
import { heal, partition } from './helpers/nft-faults.js';
import { LongConns } from './helpers/long-conns.js';
import {
  FAILOVER_NODES, FAILOVER_NODE_NAMES, FULL_QUOTAS, MEMBERSHIP_BACKENDS, backendOptions, clientHealth, logsOnFailure, srcOwner, waitCoverage,
} from './helpers/failover-kit.js';

const ALL = FAILOVER_NODE_NAMES;

for (const backend of MEMBERSHIP_BACKENDS) describePrivileged(`lab: failover with split_brain="quorum" (${backend} membership): an isolated minority owns nothing, the majority serves every bucket`, () => {
  const name = `fq${backend === 'corosync' ? 'c' : ''}${uniqueSuffix()}`;
  let lab: FarmLab | undefined;
  let seed = 0;
  let conns: LongConns | undefined;

  beforeAll(async () => {
    lab = await FarmLab.create({
      name, mode: 'vmac_invisible', xdpMode: 'generic', nodes: FAILOVER_NODES,
      clientAddrs4: 160, clientAddrs6: 0, ...backendOptions(backend), splitBrain: 'quorum',
    });
    seed = (await lab.compiled()).tables.hashSeed;
    await waitCoverage(lab, ALL, { quotas: FULL_QUOTAS, timeoutMs: 30_000 });
  }, 120_000);

  afterAll(async () => {
    conns?.close();
    if (lab) expect(await lab.cleanup()).toEqual([]);
    expect(FarmLab.leftovers(name)).toEqual({ namespaces: [], pins: [], processes: [] });
  }, 60_000);

  // The Corosync backend has no leader: the node of power 2 is its case.
  for (const isolated of backend === 'builtin' ? ['n3', 'n1'] : ['n3']) {
    it(`isolating ${isolated}${isolated === 'n1' ? ' (the leader)' : ' (power 2)'}: it serves nothing, the two others serve every bucket, no bucket is served twice anywhere, their connections carry on; healing restores the quotas`, async (ctx) => {
      logsOnFailure(ctx, () => lab);
      const l = lab!;
      await heal(l);
      await waitCoverage(l, ALL, { quotas: FULL_QUOTAS, timeoutMs: 20_000 });
      conns?.close();
      conns = await LongConns.open(l, l.clientAddrs4);
      const majority = ALL.filter((n) => n !== isolated);
      // Under quorum the invariant holds across the partition too: one domain, all nodes.
      const sampler = new OverlapSampler(l).start();
      try {
        await partition(l, [majority, [isolated]]);
        await waitCoverage(l, majority);
        await waitFor(() => coverage(l, [isolated]).counts[isolated] === 0, { timeoutMs: 5_000, intervalMs: 20, what: `${isolated} to serve nothing` });
        // It stays so: no lease renewal without a majority.
        for (let i = 0; i < 20; i++) {
          expect(coverage(l, [isolated]).counts[isolated]).toBe(0);
          await sleep(50);
        }
        // Not ready (its lease is gone), and it reports the partition loudly.
        const h = await waitFor(async () => {
          const r = await clientHealth(l, isolated, '/health');
          return r.status === 200 && (JSON.parse(r.body) as { splitBrain?: boolean }).splitBrain === true ? r : undefined;
        }, { timeoutMs: 5_000, intervalMs: 100, what: `/health of the quorum minority ${isolated} to report the split brain` });
        expect(JSON.parse(h.body)).toMatchObject({ node: isolated, ready: false, leaseRemainingMs: 0, splitBrain: true });
        if (backend === 'corosync') expect((await l.status(isolated)).corosync?.quorate).toBe(false);
        const during = (await conns.report()).filter((c) => c.servedBy !== isolated);
        expect(during.length, 'long connections on the majority').toBeGreaterThanOrEqual(50);
        expect(LongConns.problems(during, () => true)).toEqual([]);
      } finally {
        await heal(l);
      }
      await waitCoverage(l, ALL, { quotas: FULL_QUOTAS, timeoutMs: 20_000 });
      await sleep(500);
      const owners = readServed(l, majority[0]!)!.owners[0]!;
      const kept = (await conns.report()).filter((c) => c.servedBy !== null && majority.includes(c.servedBy) && srcOwner(l, c.src, seed, owners) === c.servedBy);
      // The rejoin moves buckets back to the isolated node: only those that stayed are followed.
      expect(kept.length, 'long connections whose bucket never moved').toBeGreaterThan(0);
      expect(LongConns.problems(kept, () => true)).toEqual([]);
      const r = await sampler.stop();
      expect(r.samples).toBeGreaterThan(10);
      expect(r.overlaps, `confirmed double serving (${r.overlapCount})`).toEqual([]);
    }, 90_000);
  }
});
