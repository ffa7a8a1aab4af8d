// Both VMAC modes end to end on a bridged farm of three nodes (powers 1, 1, 2), IPv4 and
// IPv6 (docs/datapath.md §8, §9): real clients (curl, ping, the client kernel's own ARP/ND) against real
// `farmlb run --static` daemons. The bridge is plain (nothing attached to its ports, no
// offload changed) and the daemons run with the default `--xdp-mode auto` (docs/net.md "XDP mode"): what
// a user's containers or test namespaces give farmlb.
//
// Prediction, not statistics: every connection's server is predicted by `explainPacket`
// over the static table compiled from the same config files (a sample is also asked of the
// `farmlb explain` CLI), so the test requires the exact predicted split. The hash itself is
// checked statistically: each node's predicted count must lie within ±4 standard deviations
// of the binomial expectation n·p, p = its bucket share (64/256, 64/256, 128/256) —
// chance of a false failure below 1e-4 per node and family.

import { isIPv4 } from 'node:net';
import { afterAll, beforeAll, expect, it, type TestContext } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { FarmLab, HTTP_PORT, LAB_NET, type CompiledLab, type Family, type VmacMode } from './helpers/farm-lab.js';
import { uniqueSuffix } from './helpers/netns.js';
import { explainPacket } from '../../src/balance/explain.js';

const NODES = [
  { name: 'n1', power: 1 },
  { name: 'n2', power: 1 },
  { name: 'n3', power: 2 },
];
const CONNECTIONS = 200;
const CLI_SAMPLE = 4;
const SIGMAS = 4;

function logsOnFailure(ctx: TestContext, lab: () => FarmLab | undefined): void {
  ctx.onTestFailed(() => {
    const l = lab();
    if (!l) return;
    const counters = l.nodeNames().map((n) => {
      try {
        return `${n}: ${JSON.stringify(Object.fromEntries(Object.entries(l.reasonCounters(n)).filter(([, v]) => v > 0)))}`;
      } catch (err) {
        return `${n}: (no counters: ${String(err)})`;
      }
    });
    console.error(`verdict counters:\n${counters.join('\n')}\n${l.logs()}`);
  });
}

for (const mode of ['vmac_invisible', 'vmac_directed'] as const satisfies readonly VmacMode[]) {
  const directed = mode === 'vmac_directed';
  describePrivileged(`lab: ${mode}${directed ? ' with an arp rule' : ''} serves real clients on one VIP (3 nodes, powers 1, 1, 2)`, () => {
    const name = `${directed ? 'vmd' : 'vmi'}${uniqueSuffix()}`;
    let lab: FarmLab | undefined;
    let c: CompiledLab;

    beforeAll(async () => {
      lab = await FarmLab.create({
        // A plain bridge and farmlb's default XDP mode (auto), as a user would run it.
        name, mode, nodes: NODES, clientAddrs4: CONNECTIONS, clientAddrs6: CONNECTIONS, arpRule: directed, logLevel: 'info',
      });
      c = await lab.compiled();
    }, 90_000);

    afterAll(async () => {
      if (lab) expect(await lab.cleanup()).toEqual([]);
      expect(FarmLab.leftovers(name)).toEqual({ namespaces: [], pins: [], processes: [] });
    }, 30_000);

    /** The MAC the client must hold for the VIP after resolving it from `src`. */
    const expectedMac = (vip: string, src: string): string => {
      if (!directed) return c.tables.vmac;
      const owner = lab!.arpOwner(c, vip, src);
      if (!owner) throw new Error(`no arp owner for ${src}`);
      return lab!.nodeMac(owner);
    };

    it('auto picks generic XDP on every node\'s veth and farmlb status says why', async (ctx) => {
      logsOnFailure(ctx, () => lab);
      for (const node of lab!.nodeNames()) {
        const s = await lab!.status(node);
        expect(s.interfaces, node).toEqual([expect.objectContaining({ ifname: 'flbn', vmacMode: mode, requested: 'auto', xdpMode: 'generic', reason: expect.stringMatching(/^veth: /) })]);
      }
    });

    for (const family of [4, 6] as const satisfies readonly Family[]) {
      const vip = family === 4 ? LAB_NET.vip4 : LAB_NET.vip6;
      const main = family === 4 ? LAB_NET.client4 : LAB_NET.client6;

      it(`IPv${family}: one ${family === 4 ? 'ARP request' : 'neighbour solicitation'} for the VIP gets exactly one reply, from the owner of the requester, giving ${directed ? 'that node\'s own MAC' : 'the virtual MAC'}`, async (ctx) => {
        logsOnFailure(ctx, () => lab);
        const owner = lab!.arpOwner(c, vip, main)!;
        expect(owner).not.toBeNull();
        await lab!.flushNeigh();
        if (family === 4) {
          const r = await lab!.arping(vip, 1, { src: main });
          expect(r.replies, r.output).toHaveLength(1);
          expect(r.replies[0]).toEqual({ from: vip, mac: expectedMac(vip, main), ethSrc: lab!.nodeMac(owner), ethDst: LAB_NET.clientMac });
        } else {
          const nas = await lab!.solicit(vip, { src: main });
          expect(nas.map((f) => f.line)).toHaveLength(1);
          // The virtual MAC is never a source MAC (the switch must keep flooding it).
          expect(nas[0]!.srcMac).toBe(lab!.nodeMac(owner));
          expect(nas[0]!.dstMac).toBe(LAB_NET.clientMac);
        }
        // The client's own kernel resolves it the same way.
        await lab!.flushNeigh();
        const ping = await lab!.ping(vip, { src: main, count: 1 });
        expect(ping.received, ping.output).toBe(1);
        expect((await lab!.neigh(vip))?.mac).toBe(expectedMac(vip, main));
      });

      it(`IPv${family}: ${CONNECTIONS} curl connections from ${CONNECTIONS} source addresses all succeed, each on the node farmlb explain predicts, split by the powers`, async (ctx) => {
        logsOnFailure(ctx, () => lab);
        await lab!.flushNeigh();
        // Resolve the VIP from the client's main address: the entry every connection then uses is predictable.
        await lab!.ping(vip, { src: main, count: 1 });
        const resolvedMac = (await lab!.neigh(vip))?.mac;
        expect(resolvedMac).toBe(expectedMac(vip, main));
        const before = directed ? lab!.reasonCounters(lab!.nodeByMac(resolvedMac!)!) : undefined;

        const attempts = lab!.clientAttempts(family, { count: CONNECTIONS });
        expect(attempts).toHaveLength(CONNECTIONS);
        const results = await lab!.connectMany(attempts, 16, { connectTimeoutS: 3, maxTimeS: 6 });
        const predicted = results.map((r) => explainPacket(c.farm, c.tables, { src: r.src, vip, vipPort: HTTP_PORT, proto: 'tcp' }, { cluster: c.cluster }).owner?.name ?? null);

        const failed = results.filter((r) => r.servedBy === null).map((r) => `${r.src}: ${r.error}`);
        expect(failed, 'failed connections').toEqual([]);
        const wrong = results.flatMap((r, i) => (r.servedBy === predicted[i] ? [] : [`${r.src}: served by ${r.servedBy}, predicted ${predicted[i]}`]));
        expect(wrong, 'connections served by another node than predicted').toEqual([]);

        // The CLI agrees with the TS prediction on a sample.
        for (const i of Array.from({ length: CLI_SAMPLE }, (_, k) => Math.floor((k * CONNECTIONS) / CLI_SAMPLE))) {
          const src = results[i]!.src;
          const { stdout } = await lab!.farmlb(['explain', isIPv4(src) ? src : `[${src}]`, `${family === 4 ? vip : `[${vip}]`}:${HTTP_PORT}/tcp`, ...lab!.configArgs(), '--json']);
          expect((JSON.parse(stdout) as { owner: { name: string } | null }).owner?.name, `farmlb explain ${src}`).toBe(predicted[i]);
        }

        // The split: exactly the predicted counts, and those within ±4σ of the bucket shares.
        const count = (xs: (string | null)[], n: string) => xs.filter((x) => x === n).length;
        const web = c.tables.buckets[0]!;
        for (const [id, node] of lab!.nodeNames().entries()) {
          const served = count(results.map((r) => r.servedBy), node);
          expect(served, `${node} served`).toBe(count(predicted, node));
          const p = web.filter((o) => o === id).length / 256;
          const sd = Math.sqrt(CONNECTIONS * p * (1 - p));
          expect(Math.abs(served - CONNECTIONS * p), `${node}: ${served} of ${CONNECTIONS}, expected ${CONNECTIONS * p} ± ${SIGMAS}·${sd.toFixed(1)}`).toBeLessThanOrEqual(SIGMAS * sd);
        }

        const after = (await lab!.neigh(vip))?.mac ?? null;
        if (!directed) {
          // Every node solicited the client's addresses from the VIP (the source of its
          // replies): without the tc egress guard one of those NSs would have repointed the
          // client's entry at that node's own MAC (LAB-NOTES, docs/net.md).
          expect(after, 'the client still reaches the VIP through the virtual MAC').toBe(c.tables.vmac);
        } else {
          // One node's own MAC; the kernel's NS from the VIP may repoint it to the arp
          // owner of another of the client's addresses (the tc egress guard), never elsewhere.
          expect(lab!.nodeByMac(after ?? ''), `neighbour entry ${after}`).toBeDefined();
          // The client sent every connection to one node's MAC, yet all three nodes served: that node forwarded.
          expect(new Set(results.map((r) => r.servedBy)).size).toBe(3);
          const node = lab!.nodeByMac(resolvedMac!)!;
          const fwd = (lab!.reasonCounters(node)['tx_forward'] ?? 0) - (before!['tx_forward'] ?? 0);
          expect(fwd, `tx_forward on ${node}`).toBeGreaterThan(0);
        }
      }, 120_000);

      it(`IPv${family}: ping to the VIP is answered once per request, never twice`, async (ctx) => {
        logsOnFailure(ctx, () => lab);
        for (const src of [main, family === 4 ? lab!.clientAddrs4[7]! : lab!.clientAddrs6[7]!]) {
          const r = await lab!.ping(vip, { src, count: 5, intervalS: 0.2 });
          expect({ received: r.received, duplicates: r.duplicates }, r.output).toEqual({ received: 5, duplicates: 0 });
        }
      });
    }

    if (directed) {
      for (const family of [4, 6] as const satisfies readonly Family[]) {
        it(`IPv${family}: a client whose neighbour entry for the VIP points at a node that does not own its bucket is still served, by the owner, through a forward`, async (ctx) => {
          logsOnFailure(ctx, () => lab);
          const vip = family === 4 ? LAB_NET.vip4 : LAB_NET.vip6;
          const via = 'n1';
          const srcs = family === 4 ? lab!.clientAddrs4 : lab!.clientAddrs6;
          const owner = (src: string) => explainPacket(c.farm, c.tables, { src, vip, vipPort: HTTP_PORT, proto: 'tcp' }, { cluster: c.cluster }).owner?.name;
          const src = srcs.find((a) => owner(a) !== via && owner(a) !== undefined)!;
          expect(src).toBeDefined();
          // STALE, as an entry left from before a bucket moved: the client sends to `via` at
          // once. (Not PERMANENT: for IPv6 the owner's NS repoints the entry so that the
          // client's NA reaches the owner, as it would on a real LAN.)
          await lab!.inClient('ip', ['neigh', 'replace', vip, 'lladdr', lab!.nodeMac(via), 'dev', 'flbc', 'nud', 'stale']);
          try {
            const before = lab!.reasonCounters(via)['tx_forward'] ?? 0;
            const [r] = await lab!.connectMany([{ src }], 1, { connectTimeoutS: 3, maxTimeS: 6 });
            expect(r!.servedBy, r!.error).toBe(owner(src));
            expect((lab!.reasonCounters(via)['tx_forward'] ?? 0) - before, `tx_forward on ${via}`).toBeGreaterThan(0);
          } finally {
            await lab!.inClient('ip', ['neigh', 'del', vip, 'dev', 'flbc']).catch(() => undefined);
          }
        });
      }

      it('without an arp rule (after a reload) every node answers an ARP request and a neighbour solicitation, as SafeKit does', async (ctx) => {
        logsOnFailure(ctx, () => lab);
        await lab!.writeConfig({ arpRule: false });
        await Promise.all(lab!.nodeNames().map((n) => lab!.reloadNode(n)));
        const all = lab!.nodeNames().map((n) => lab!.nodeMac(n)).sort();
        const r = await lab!.arping(LAB_NET.vip4, 1);
        expect(r.replies.map((x) => x.mac).sort(), r.output).toEqual(all);
        const nas = await lab!.solicit(LAB_NET.vip6);
        expect(nas.map((f) => f.srcMac).sort()).toEqual(all);
      });
    }
  });
}
