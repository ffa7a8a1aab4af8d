// A cloud farm (docs/application.md, "Cloud farm"; SafeKit §13.6.3): a farm module without
// <vip>. Three real daemons run the membership and a TCP checker on each node's web server;
// the cloud's load balancer would probe ready.txt. It answers 200 on every node while their
// application runs; the application of one killed, that node's ready.txt stops answering 200
// (the node is WAIT, naming the checker) while the others go on; back after rise successes.

import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { FarmLab } from './helpers/farm-lab.js';
import { uniqueSuffix, waitFor } from './helpers/netns.js';
import { FAILOVER_NODES, FAILOVER_NODE_NAMES, logsOnFailure, waitHealth } from './helpers/failover-kit.js';

const ALL = FAILOVER_NODE_NAMES;

describePrivileged('lab: a cloud farm (no <vip>): ready.txt follows the checkers', () => {
  const name = `cf${uniqueSuffix()}`;
  let lab: FarmLab | undefined;

  beforeAll(async () => {
    lab = await FarmLab.create({
      name, mode: 'vmac_invisible', nodes: FAILOVER_NODES, clientAddrs4: 0, clientAddrs6: 0, membership: true, cloud: true,
      app: { xml: () => '<check><tcp ident="web" action="wait" fall="2" rise="2"><to addr="127.0.0.1" port="8080" interval="250ms"/></tcp></check>' },
    });
  }, 120_000);

  afterAll(async () => {
    if (lab) expect(await lab.cleanup()).toEqual([]);
    expect(FarmLab.leftovers(name)).toEqual({ namespaces: [], pins: [], processes: [] });
  }, 60_000);

  it('every node is UP in one view of the three, holds no VIP, and its ready.txt answers 200', async (ctx) => {
    logsOnFailure(ctx, () => lab);
    const l = lab!;
    await waitFor(async () => {
      for (const n of ALL) {
        const s = await l.status(n);
        if (s.state !== 'UP' || s.view.length !== 3) return false;
      }
      return true;
    }, { timeoutMs: 15_000, intervalMs: 200, what: 'three nodes UP in one view' });
    for (const n of ALL) {
      await waitHealth(l, n, 200);
      expect((await l.inNode(n, 'ip', ['-o', 'addr'])).stdout).not.toMatch(/10\.79\.0\.100/);
    }
  }, 60_000);

  it('the application killed on one node: its ready.txt stops answering 200, the others go on; back after rise', async (ctx) => {
    logsOnFailure(ctx, () => lab);
    const l = lab!;
    await l.signalServer('n2', 'SIGKILL');
    try {
      // ready.txt answers 404 "NOT FOUND" when the module is not ready (SafeKit's).
      await waitHealth(l, 'n2', 404);
      const s = await l.status('n2');
      expect(s.state).toBe('WAIT');
      expect(s.stateCause).toMatch(/checker tcp\.web down \(connection refused\)/);
      for (const n of ['n1', 'n3']) expect((await waitHealth(l, n, 200)).status).toBe(200);
      await waitFor(async () => (await l.status('n1')).view.join() === 'n1,n3', { timeoutMs: 10_000, intervalMs: 100, what: 'n1 and n3 to form the view' });
    } finally {
      await l.restartServer('n2');
    }
    await waitHealth(l, 'n2', 200);
    expect((await l.status('n2')).state).toBe('UP');
  }, 60_000);
});
