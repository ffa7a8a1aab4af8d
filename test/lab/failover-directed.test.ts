// Failover lab (docs/membership.md "Survivors keep serving") in vmac_directed with an arp rule and arpreroute: after kill -9 of a
// node the survivors serve every bucket with no bucket served twice; connections that enter
// through a live node (the client's ARP entry for the VIP) and sit in buckets of live nodes
// carry on; and when the dead node is the one the client resolved the VIP through, the
// survivors' arpreroute repoints the client, whose new connections are served again.

import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { FarmLab } from './helpers/farm-lab.js';
import { uniqueSuffix, waitFor } from './helpers/netns.js';
import { OverlapSampler, readServed } from './helpers/overlap-sampler.js';
import { LongConns } from './helpers/long-conns.js';
import { FAILOVER_NODES, FAILOVER_NODE_NAMES, FULL_QUOTAS, logsOnFailure, srcOwner, waitCoverage } from './helpers/failover-kit.js';

const ALL = FAILOVER_NODE_NAMES;

describePrivileged('lab: failover in vmac_directed (arp rule, arpreroute): kill -9, connections through live nodes carry on, clients of the dead node are repointed', () => {
  const name = `fd${uniqueSuffix()}`;
  let lab: FarmLab | undefined;
  let seed = 0;
  let conns: LongConns | undefined;

  beforeAll(async () => {
    lab = await FarmLab.create({
      name, mode: 'vmac_directed', nodes: FAILOVER_NODES, clientAddrs4: 160, clientAddrs6: 0, arpRule: true, membership: true,
      interfaceAttrs: { arpreroute: 'on', arpinterval: '300ms', arpelapse: '5000ms' },
    });
    seed = (await lab.compiled()).tables.hashSeed;
    await waitCoverage(lab, ALL, { quotas: FULL_QUOTAS, timeoutMs: 30_000 });
  }, 120_000);

  afterAll(async () => {
    conns?.close();
    if (lab) expect(await lab.cleanup()).toEqual([]);
    expect(FarmLab.leftovers(name)).toEqual({ namespaces: [], pins: [], processes: [] });
  }, 60_000);

  /** Make the client resolve the VIP through `node`: ping it from a source whose ARP request `node` answers. */
  async function resolveThrough(node: string): Promise<string> {
    const l = lab!;
    // The client has one ARP entry for the VIP: a reroute campaign still running from an
    // earlier table change (arpelapse) would overwrite it. Wait until every campaign is over.
    await waitFor(() => l.nodeNames().every((n) => {
      // The current run of the daemon only: a killed run never logs the end of its campaign.
      const all = l.logs(n);
      const log = all.slice(all.lastIndexOf('[lab] starting'));
      return log.lastIndexOf('"event":"arpreroute_start"') < log.lastIndexOf('"event":"arpreroute_done"') || !log.includes('"event":"arpreroute_start"');
    }), { timeoutMs: 15_000, intervalMs: 100, what: 'the arpreroute campaigns to end' });
    const owners = readServed(l, node)!.owners[0]!;
    const src = l.clientAddrs4.find((a) => srcOwner(l, a, seed, owners) === node);
    if (!src) throw new Error(`no client address resolves through ${node}`);
    // Bounded retries: a stray announcement for the VIP (to another requester of this client
    // host, which has one entry for the VIP) can land between the flush and the check.
    let through: string | undefined;
    for (let attempt = 0; attempt < 3 && through !== node; attempt++) {
      if (attempt > 0) await sleep(1_200); // past the ARP locktime
      await l.flushNeigh();
      const ping = await l.ping(l.vip4, { src, count: 1 });
      expect(ping.received, ping.output).toBe(1);
      through = l.nodeByMac((await l.neigh(l.vip4))?.mac ?? '');
    }
    if (through !== node) {
      const arp = await l.arping(l.vip4, 2, { src });
      throw new Error(`the client resolved ${l.vip4} from ${src} (bucket owner ${node}) through ${through}; ARP replies now: ${JSON.stringify(arp.replies.map((r) => ({ ...r, node: l.nodeByMac(r.mac) })))}`);
    }
    return src;
  }

  it('kill -9 of a node the client does not enter through: survivors serve every bucket, no bucket served twice, connections on live nodes carry on, restart restores the quotas', async (ctx) => {
    logsOnFailure(ctx, () => lab);
    const l = lab!;
    const entry = 'n3';
    const victim = 'n2';
    await resolveThrough(entry);
    conns = await LongConns.open(l, l.clientAddrs4);
    const sampler = new OverlapSampler(l).start();
    await l.killNode(victim, 'SIGKILL');
    await waitCoverage(l, ALL.filter((n) => n !== victim));
    await sleep(1_000);
    expect(LongConns.problems(await conns.report(), (c) => c.servedBy !== victim)).toEqual([]);
    await l.startNode(victim, { timeoutMs: 30_000 });
    await waitCoverage(l, ALL, { quotas: FULL_QUOTAS, timeoutMs: 20_000 });
    await sleep(500);
    const owners = readServed(l, entry)!.owners[0]!;
    const kept = (await conns.report()).filter((c) => c.servedBy !== null && c.servedBy !== victim && srcOwner(l, c.src, seed, owners) === c.servedBy);
    expect(kept.length).toBeGreaterThanOrEqual(50);
    expect(LongConns.problems(kept, () => true)).toEqual([]);
    conns.close();
    const r = await sampler.stop();
    expect(r.overlaps, `confirmed double serving (${r.overlapCount})`).toEqual([]);
  }, 90_000);

  it('kill -9 of the node the client resolved the VIP through: arpreroute repoints the client to a live node and new connections from every client address are served', async (ctx) => {
    logsOnFailure(ctx, () => lab);
    const l = lab!;
    await waitCoverage(l, ALL, { quotas: FULL_QUOTAS, timeoutMs: 20_000 });
    const victim = 'n1';
    await resolveThrough(victim);
    const sampler = new OverlapSampler(l).start();
    await l.killNode(victim, 'SIGKILL');
    const survivors = ALL.filter((n) => n !== victim);
    await waitCoverage(l, survivors);
    const mac = await waitFor(async () => {
      const m = (await l.neigh(l.vip4))?.mac;
      return m && m !== l.nodeMac(victim) ? m : undefined;
    }, { timeoutMs: 10_000, intervalMs: 50, what: 'the client\'s ARP entry for the VIP to leave the dead node' });
    expect(survivors).toContain(l.nodeByMac(mac));
    const results = await l.connectMany(l.clientAttempts(4, { count: 60 }), 16, { connectTimeoutS: 3, maxTimeS: 6 });
    expect(results.filter((r) => r.servedBy === null || r.servedBy === victim).map((r) => `${r.src}: ${r.servedBy ?? r.error}`)).toEqual([]);
    await l.startNode(victim, { timeoutMs: 30_000 });
    await waitCoverage(l, ALL, { quotas: FULL_QUOTAS, timeoutMs: 20_000 });
    const r = await sampler.stop();
    expect(r.overlaps, `confirmed double serving (${r.overlapCount})`).toEqual([]);
  }, 90_000);
});
