// Heartbeats on every LAN of cluster.xml (docs/membership.md; SafeKit's <farm><lan …/>…):
// three nodes on two bridges, `default` (which also carries the VIP) and `backup`. Every
// node receives heartbeats on both; with the membership datagrams dropped on `default` on
// every node the view holds (no view change, every node UP, connections served) because
// `backup` still carries them; cutting `backup` too for one node then loses it — so it was
// `backup` alone that kept it — and healing brings it back.

import { afterAll, beforeAll, expect, it, type TestContext } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { FarmLab, NODE_IF, SECOND_LAN } from './helpers/farm-lab.js';
import { MEMBERSHIP_PORT } from './helpers/nft-faults.js';
import { uniqueSuffix, waitFor } from './helpers/netns.js';

const NODES = [{ name: 'n1', power: 1 }, { name: 'n2', power: 1 }, { name: 'n3', power: 1 }];
const TABLE = 'flb_lan';

function logsOnFailure(ctx: TestContext, lab: () => FarmLab | undefined): void {
  ctx.onTestFailed(() => { const l = lab()?.logs(); if (l) console.error(l); });
}

/** Counts (and, for the listed interfaces, drops) the membership datagrams a node receives per interface. */
async function lanRules(lab: FarmLab, node: string, drop: string[]): Promise<void> {
  const rule = (ifname: string) => `iifname "${ifname}" udp dport ${MEMBERSHIP_PORT} counter ${drop.includes(ifname) ? 'drop' : 'accept'}`;
  await lab.inNode(node, 'nft', ['-f', '-'], {
    input: `table inet ${TABLE}\ndelete table inet ${TABLE}\ntable inet ${TABLE} {\n chain in { type filter hook input priority -10; policy accept;\n  ${rule(NODE_IF)}\n  ${rule(SECOND_LAN.ifname)}\n }\n}\n`,
  });
}

async function received(lab: FarmLab, node: string): Promise<Record<string, number>> {
  const { stdout } = await lab.inNode(node, 'nft', ['list', 'chain', 'inet', TABLE, 'in']);
  const out: Record<string, number> = {};
  for (const m of stdout.matchAll(/iifname "(\w+)" udp dport \d+ counter packets (\d+)/g)) out[m[1]!] = Number(m[2]);
  return out;
}

describePrivileged('lab: heartbeats on two LANs keep the view when one LAN loses them', () => {
  const name = `ml${uniqueSuffix()}`;
  let lab: FarmLab | undefined;
  const views = async () => Promise.all(NODES.map(async (n) => {
    const s = await lab!.status(n.name);
    return { state: s.state, epoch: s.epoch, view: [...s.view].sort().join(',') };
  }));

  beforeAll(async () => {
    lab = await FarmLab.create({ name, mode: 'vmac_invisible', nodes: NODES, clientAddrs4: 8, clientAddrs6: 0, membership: true, secondLan: true });
    await waitFor(async () => {
      const v = await views();
      return v.every((x) => x.state === 'UP' && x.view === 'n1,n2,n3' && x.epoch === v[0]!.epoch);
    }, { timeoutMs: 30_000, intervalMs: 200, what: 'one view of the three nodes' });
  }, 120_000);

  afterAll(async () => {
    if (lab) expect(await lab.cleanup()).toEqual([]);
    expect(FarmLab.leftovers(name)).toEqual({ namespaces: [], pins: [], processes: [] });
  }, 60_000);

  it('every node receives heartbeats on both LANs', async (ctx) => {
    logsOnFailure(ctx, () => lab);
    for (const n of NODES) await lanRules(lab!, n.name, []);
    await waitFor(async () => {
      const all = await Promise.all(NODES.map((n) => received(lab!, n.name)));
      return all.every((r) => (r[NODE_IF] ?? 0) > 5 && (r[SECOND_LAN.ifname] ?? 0) > 5);
    }, { timeoutMs: 5_000, intervalMs: 100, what: 'heartbeats counted on flbn and flbm of every node' });
  });

  it('with the heartbeats dropped on the default LAN everywhere: no view change for 3 s, every node UP, connections served; cutting the backup LAN of n3 too loses n3; healing brings it back', async (ctx) => {
    logsOnFailure(ctx, () => lab);
    const before = await views();
    for (const n of NODES) await lanRules(lab!, n.name, [NODE_IF]);
    const until = Date.now() + 3_000;
    while (Date.now() < until) {
      expect(await views()).toEqual(before);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect((await received(lab!, 'n1'))[NODE_IF], 'datagrams dropped on the default LAN').toBeGreaterThan(0);
    const served = await lab!.connectMany(lab!.clientAttempts(4), 8);
    expect(served.filter((r) => r.servedBy === null).map((r) => `${r.src}: ${r.error}`)).toEqual([]);

    await lanRules(lab!, 'n3', [NODE_IF, SECOND_LAN.ifname]);
    await waitFor(async () => (await lab!.status('n1')).view.join(',') === 'n1,n2', { timeoutMs: 10_000, intervalMs: 100, what: 'n1 to lose n3' });

    await lanRules(lab!, 'n3', [NODE_IF]);
    await waitFor(async () => {
      const v = await views();
      return v.every((x) => x.state === 'UP' && x.view === 'n1,n2,n3' && x.epoch === v[0]!.epoch);
    }, { timeoutMs: 20_000, intervalMs: 200, what: 'n3 back in one view over the backup LAN alone' });
  }, 60_000);
});
