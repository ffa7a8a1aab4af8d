// arpreroute in vmac_directed (docs/net.md "arpreroute (vmac_directed)"): a client that resolved the VIP through node A is
// told, by unicast ARP reply / unsolicited NA from the new owner, where the VIP is once A is
// drained (power 0 on every node through a config reload), and its new connections go to
// the new owners; A serves nothing. Exactly the requesters of the moved buckets are told:
// only the client's two resolving addresses asked for the VIP here, so each round of all
// nodes together sends exactly two frames. A short arpinterval keeps the test fast.

import { afterAll, beforeAll, expect, it, type TestContext } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { FarmLab, HTTP_PORT, type Family } from './helpers/farm-lab.js';
import { uniqueSuffix, waitFor } from './helpers/netns.js';
import { explainPacket } from '../../src/balance/explain.js';
import { XdpDataplane } from '../../src/dataplane/xdp.js';

const NODES = [
  { name: 'n1', power: 1 },
  { name: 'n2', power: 1 },
  { name: 'n3', power: 2 },
];
const DRAINED = 'n3';
const ARP_INTERVAL_MS = 300;
const ARP_ELAPSE_MS = 3_000;

function logsOnFailure(ctx: TestContext, lab: () => FarmLab | undefined): void {
  ctx.onTestFailed(() => {
    const logs = lab()?.logs();
    if (logs) console.error(logs);
  });
}

/** The `count` of each "arpreroute" round in a piece of a node's log. */
function roundCounts(log: string): number[] {
  return log.split('\n').flatMap((line) => (/"event":"arpreroute"/.test(line) ? [Number(/"count":(\d+)/.exec(line)?.[1] ?? NaN)] : []));
}

describePrivileged('lab: arpreroute (vmac_directed, arp rule) repoints the clients of a drained node to the new owners', () => {
  const name = `vmr${uniqueSuffix()}`;
  let lab: FarmLab | undefined;

  beforeAll(async () => {
    lab = await FarmLab.create({
      name, mode: 'vmac_directed', nodes: NODES, clientAddrs4: 64, clientAddrs6: 64, arpRule: true, logLevel: 'info',
      interfaceAttrs: { arpreroute: 'on', arpinterval: `${ARP_INTERVAL_MS}ms`, arpelapse: `${ARP_ELAPSE_MS}ms` },
    });
  }, 90_000);

  afterAll(async () => {
    if (lab) expect(await lab.cleanup()).toEqual([]);
    expect(FarmLab.leftovers(name)).toEqual({ namespaces: [], pins: [], processes: [] });
  }, 30_000);

  it(`after ${DRAINED} is drained to power 0 by a reload, the client that resolved the VIP through it gets the new owner's MAC by unicast, and connects there`, async (ctx) => {
    logsOnFailure(ctx, () => lab);
    const l = lab!;
    const before = await l.compiled();
    // One client address per family whose ARP/NS the drained node answers.
    const through = (family: Family) => {
      const vip = family === 4 ? l.vip4 : l.vip6;
      const src = (family === 4 ? l.clientAddrs4 : l.clientAddrs6).find((a) => l.arpOwner(before, vip, a) === DRAINED);
      if (!src) throw new Error(`no IPv${family} client address resolves through ${DRAINED}`);
      return { family, vip, src };
    };
    const clients = [through(4), through(6)];

    await l.flushNeigh();
    for (const { vip, src } of clients) {
      const ping = await l.ping(vip, { src, count: 1 });
      expect(ping.received, ping.output).toBe(1);
      expect((await l.neigh(vip))?.mac, `client entry for ${vip}`).toBe(l.nodeMac(DRAINED));
    }

    const marks = Object.fromEntries(l.nodeNames().map((n) => [n, l.logMark(n)]));
    await l.writeConfig({ nodes: NODES.map((n) => (n.name === DRAINED ? { ...n, power: 0 } : n)) });
    await Promise.all(l.nodeNames().map((n) => l.reloadNode(n)));
    const after = await l.compiled();

    for (const { vip, src } of clients) {
      const owner = l.arpOwner(after, vip, src);
      expect(owner).not.toBe(DRAINED);
      // Well within arpelapse: the first round comes at once, and repeats cover the 1 s ARP locktime.
      await waitFor(async () => (await l.neigh(vip))?.mac === l.nodeMac(owner!), {
        timeoutMs: ARP_ELAPSE_MS + 1_000, intervalMs: 100, what: `the client's entry for ${vip} to point at ${owner}`,
      });
      await l.waitForLog(owner!, /"event":"arpreroute"[^\n]*"count":[1-9]/, { from: marks[owner!] });
    }

    // The drained node took nothing and announces nothing; the first round of the others
    // together told exactly the requesters that had resolved the VIP through it: the two
    // clients above, and any other address of the client whose ARP/NS the drained node
    // answered (the kernel may solicit from its primary address). Every node sees every
    // ARP request and NS, so any node's requester map lists them all.
    const since = (n: string) => l.logSince(n, marks[n]!);
    expect(since(DRAINED)).not.toContain('"event":"arpreroute_start"');
    const drainedId = before.cluster.nodes.indexOf(DRAINED);
    const witness = l.nodeNames().find((n) => n !== DRAINED)!;
    const pinned = await XdpDataplane.readPinned(l.pinDir(witness));
    let resolvedThroughDrained: string[];
    try {
      resolvedThroughDrained = pinned.requesters()
        .filter((r) => before.tables.buckets[r.group]?.[r.bucket] === drainedId)
        .map((r) => r.addr);
    } finally {
      pinned.close();
    }
    for (const { src } of clients) expect(resolvedThroughDrained).toContain(src);
    // The first round of the campaign the reload started: the campaign every node runs at
    // start (arpelapse long) may still be logging rounds of its own right after the mark.
    const fromReloadCampaign = (log: string) => {
      const at = log.indexOf('"event":"arpreroute_start"');
      return at < 0 ? '' : log.slice(at);
    };
    const firstRounds = l.nodeNames().map((n) => roundCounts(fromReloadCampaign(since(n)))[0] ?? 0);
    expect(firstRounds.reduce((a, b) => a + b, 0),
      `frames in the first round of ${l.nodeNames().join(', ')}: ${firstRounds.join(', ')}; requesters through ${DRAINED}: ${resolvedThroughDrained.join(', ')}`)
      .toBe(resolvedThroughDrained.length);
    await waitFor(() => l.nodeNames().every((n) => !since(n).includes('"event":"arpreroute_start"') || since(n).includes('"event":"arpreroute_done"')),
      { timeoutMs: ARP_ELAPSE_MS + 2_000, intervalMs: 200, what: 'the arpreroute campaigns to end after arpelapse' });

    // New connections from every client address succeed, on the new owners; the drained node serves none.
    for (const family of [4, 6] as const) {
      const vip = family === 4 ? l.vip4 : l.vip6;
      const results = await l.connectMany(l.clientAttempts(family), 16, { connectTimeoutS: 3, maxTimeS: 6 });
      const problems = results.flatMap((r) => {
        const predicted = explainPacket(after.farm, after.tables, { src: r.src, vip, vipPort: HTTP_PORT, proto: 'tcp' }, { cluster: after.cluster }).owner?.name;
        return r.servedBy === predicted && r.servedBy !== DRAINED ? [] : [`${r.src}: served by ${r.servedBy ?? `nobody (${r.error})`}, predicted ${predicted}`];
      });
      expect(problems, `IPv${family}`).toEqual([]);
    }
  }, 60_000);
});
