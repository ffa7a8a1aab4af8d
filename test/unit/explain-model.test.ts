// `farmlb explain` tells what the data path does (docs/cli.md "farmlb explain"): for random packets, on every
// node, in both VMAC modes and with buckets in handover, explainPacket's verdict and reason
// equal ModelDataplane's (src/dataplane/model.ts), the reference the XDP program is held to
// by test/bpf/differential.test.ts. In vmac_directed a packet another node owns is
// forwarded there (tx_forward), not dropped.

import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileTables, staticTable } from '../../src/balance/compile.js';
import { explainPacket, type HandoverVerdict, type PacketQuery } from '../../src/balance/explain.js';
import { loadConfigs } from '../../src/config/index.js';
import { parseMac } from '../../src/dataplane/abi.js';
import { decide, type ConnectionTable } from '../../src/dataplane/model.js';
import { buildFrame, TCP_ACK, TCP_SYN, type FrameSpec } from '../../src/net/frames.js';
import { NBUCKETS, NODE_NONE, XDP_DROP, XDP_PASS, XDP_TX, type DataplaneTables } from '../../src/dataplane/types.js';

const fixtures = path.resolve(import.meta.dirname, '../fixtures/configs');
// multi-group.xml: vmac_directed; web = tcp 10.0.0.100:80,443 on_addr; dns = udp *:53 on_ipid,
// tcp 10.0.0.101:* on_port; FarmProto = arp + tcp *:* on_addr.
const { farm, cluster } = await loadConfigs({ config: path.join(fixtures, 'multi-group.xml'), cluster: path.join(fixtures, 'cluster.xml') });
const NODE_MAC = (id: number) => `02:00:00:00:00:${(0x10 + id).toString(16)}`;
const CLIENT_MAC = '02:00:00:00:00:99';
const FOREVER = 2n ** 64n - 1n;

/** Deterministic pseudo-random numbers (mulberry32): a failure reproduces. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function tablesFor(self: string, mode: 'vmac_directed' | 'vmac_invisible', rand: () => number, handoverShare: number): DataplaneTables {
  const base = compileTables(farm, cluster!, staticTable(farm, cluster!), self);
  const n = cluster!.nodes.length;
  // Some buckets moved to a random node with a random previous owner (or none at all).
  const buckets = base.buckets.map((row) => row.map((o) => (rand() < handoverShare ? (rand() < 0.1 ? NODE_NONE : Math.floor(rand() * n)) : o)));
  const prevOwners = base.buckets.map((row, g) => row.map((o, b) => (rand() < handoverShare && buckets[g]![b] !== o ? o : NODE_NONE)));
  return {
    ...base, buckets, prevOwners,
    vips: base.vips.map((v) => ({ ...v, mode })),
    nodeMacs: cluster!.nodes.map((_, id) => NODE_MAC(id)),
  };
}

const VIPS = ['10.0.0.100', '10.0.0.101'];
const PORTS = [80, 443, 53, 8443, 22];

function randomQuery(rand: () => number): PacketQuery {
  const proto = (['tcp', 'tcp', 'udp', 'icmp'] as const)[Math.floor(rand() * 4)]!;
  return {
    src: `192.0.2.${1 + Math.floor(rand() * 250)}`, srcPort: 1024 + Math.floor(rand() * 60000),
    vip: VIPS[Math.floor(rand() * VIPS.length)]!, vipPort: PORTS[Math.floor(rand() * PORTS.length)]!, proto, ipid: Math.floor(rand() * 65536),
  };
}

function frameOf(q: PacketQuery, tables: DataplaneTables, flags: number): Uint8Array {
  const dst = tables.vips[0]!.mode === 'vmac_directed' ? NODE_MAC(tables.selfNode) : tables.vmac;
  const l4: FrameSpec['l4'] = q.proto === 'icmp' ? { proto: 'icmp', type: 8 }
    : q.proto === 'tcp' ? { proto: 'tcp', sport: q.srcPort!, dport: q.vipPort!, flags } : { proto: 'udp', sport: q.srcPort!, dport: q.vipPort! };
  return buildFrame({ eth: { dst, src: CLIENT_MAC }, l3: { family: 4, src: q.src, dst: q.vip, id: q.ipid! }, l4, payload: 8 });
}

const ACTION = { [XDP_PASS]: 'pass', [XDP_DROP]: 'drop', [XDP_TX]: 'tx' } as Record<number, string>;

function model(q: PacketQuery, tables: DataplaneTables, flags: number, holds: boolean): { reason: string; verdict: string } {
  const sockets: ConnectionTable = { holds: () => holds };
  const d = decide(frameOf(q, tables, flags), tables, FOREVER, 0n, { ifaceMac: parseMac(NODE_MAC(tables.selfNode)) }, sockets);
  return { reason: d.reason, verdict: ACTION[d.action]! };
}

const pick = (v: HandoverVerdict) => ({ reason: v.reason, verdict: v.verdict });

describe('explainPacket agrees with ModelDataplane', () => {
  for (const mode of ['vmac_directed', 'vmac_invisible'] as const) {
    it(`${mode}: 600 random packets per node, a third of the buckets in handover: same verdict and reason (SYN, held connection, other packet)`, () => {
      const rand = rng(mode === 'vmac_directed' ? 12 : 21);
      let forwards = 0;
      const seen = new Set<string>();
      for (const self of cluster!.nodes) {
        const tables = tablesFor(self, mode, rand, 1 / 3);
        for (let i = 0; i < 600; i++) {
          const q = randomQuery(rand);
          const e = explainPacket(farm, tables, q, { cluster: cluster!, nodeMacs: 'tables' });
          const syn = model(q, tables, TCP_SYN, false);
          const ctx = `${self} ${JSON.stringify(q)}: ${e.summary}`;
          expect({ reason: e.reason, verdict: e.verdict }, ctx).toEqual(syn);
          seen.add(e.reason);
          for (const v of Object.values(e.handover?.onThisNode ?? {})) seen.add(v.reason);
          if (e.verdict === 'tx') {
            forwards++;
            expect(e.forwardTo, ctx).toBeDefined();
          }
          const on = e.handover?.onThisNode;
          if (on) {
            expect(pick(on.held), `${ctx} (held)`).toEqual(model(q, tables, TCP_ACK, true));
            expect(pick(on.other), `${ctx} (other)`).toEqual(model(q, tables, TCP_ACK, false));
          } else if (q.proto === 'tcp') {
            expect({ reason: e.reason, verdict: e.verdict }, `${ctx} (ACK)`).toEqual(model(q, tables, TCP_ACK, false));
          }
        }
      }
      if (mode === 'vmac_directed') expect(forwards).toBeGreaterThan(100);
      else expect(forwards).toBe(0);
      // The random tables reach every branch worth comparing.
      const expected = ['pass_owned', 'drop_no_rule', 'pass_handover_new', 'pass_handover_prev', 'drop_handover',
        ...(mode === 'vmac_directed' ? ['tx_forward', 'tx_forward_prev'] : ['drop_not_owned'])];
      expect([...seen].filter((r) => expected.includes(r)).sort()).toEqual(expected.sort());
    });
  }

  it('vmac_directed: a packet another node owns is forwarded there, and the summary says so', () => {
    const tables = compileTables(farm, cluster!, staticTable(farm, cluster!), 'node1');
    const q = Array.from({ length: 50 }, (_, i) => ({ src: `192.0.2.${i + 1}`, vip: '10.0.0.100', vipPort: 80, proto: 'tcp' as const }))
      .find((x) => explainPacket(farm, tables, x, { cluster: cluster! }).owner?.name === 'node2')!;
    const e = explainPacket(farm, tables, q, { cluster: cluster! });
    expect([e.verdict, e.reason, e.forwardTo?.name]).toEqual(['tx', 'tx_forward', 'node2']);
    expect(e.summary).toMatch(/owner node2; this node forwards it to node2 \(vmac_directed\)$/);
    // A running node that has not learnt node2's MAC drops it, as the program does.
    const noMac = { ...tables, nodeMacs: [NODE_MAC(0), null, NODE_MAC(2)] };
    expect(explainPacket(farm, noMac, q, { cluster: cluster!, nodeMacs: 'tables' }).reason).toBe('drop_not_owned');
    expect(NBUCKETS).toBe(256);
  });
});
