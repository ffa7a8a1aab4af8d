// `farmlb explain` for a bucket in handover (src/balance/explain.ts, docs/datapath.md §12):
// it names the previous owner and says what each node does; for TCP on_addr/on_port the
// verdict on this node depends on the packet (SYN, held connection, other), and UDP,
// ICMP echo and on_ipid follow the owner at once. multi-group.xml is vmac_directed: what a
// node does not keep it forwards (to the owner; the owner to the previous owner once).
// test/unit/explain-model.test.ts holds every verdict equal to the model's.

import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileTables, staticTable } from '../../src/balance/compile.js';
import { explainPacket, type PacketQuery } from '../../src/balance/explain.js';
import { loadConfigs } from '../../src/config/index.js';
import { NBUCKETS, NODE_NONE, type DataplaneTables } from '../../src/dataplane/types.js';

const fixtures = path.resolve(import.meta.dirname, '../fixtures/configs');
// multi-group.xml: web = tcp 10.0.0.100:80 on_addr (node1..3); dns = udp * :53 on_ipid and tcp 10.0.0.101:* on_port (node2, node3).
const { farm, cluster } = await loadConfigs({ config: path.join(fixtures, 'multi-group.xml'), cluster: path.join(fixtures, 'cluster.xml') });

const WEB_SYN: PacketQuery = { src: '192.0.2.7', srcPort: 40000, vip: '10.0.0.100', vipPort: 80, proto: 'tcp' };

/** The static table as `self`, with the query's bucket handed over from `prev` to `owner`. */
function handingOver(query: PacketQuery, self: string, prev: string, owner: string): { tables: DataplaneTables; bucket: number; group: number } {
  const base = compileTables(farm, cluster!, staticTable(farm, cluster!), self);
  const probe = explainPacket(farm, base, query, { cluster: cluster! });
  const group = probe.group!.index;
  const bucket = probe.bucket!;
  const id = (n: string) => cluster!.nodes.indexOf(n);
  const buckets = base.buckets.map((row) => row.slice());
  buckets[group]![bucket] = id(owner);
  const prevOwners = base.buckets.map(() => Array<number>(NBUCKETS).fill(NODE_NONE));
  prevOwners[group]![bucket] = id(prev);
  return { tables: { ...base, buckets, prevOwners }, bucket, group };
}

describe('farmlb explain for a bucket in handover', () => {
  it('on the owner: new connections and its own pass (pass_handover_new), any other packet goes on to the previous owner (tx_forward_prev)', () => {
    const { tables } = handingOver(WEB_SYN, 'node2', 'node1', 'node2');
    const e = explainPacket(farm, tables, WEB_SYN, { cluster: cluster! });
    expect(e.prevOwner).toEqual({ id: 0, name: 'node1' });
    expect([e.verdict, e.reason]).toEqual(['pass', 'pass_handover_new']);
    expect(e.handover).toMatchObject({
      applies: true, role: 'owner',
      onThisNode: { syn: { verdict: 'pass', reason: 'pass_handover_new' }, held: { verdict: 'pass', reason: 'pass_handover_new' },
        other: { verdict: 'tx', reason: 'tx_forward_prev', forwardTo: { id: 0, name: 'node1' } } },
    });
    expect(e.handover!.rule).toBe('node1 (previous owner) keeps its established connections, node2 (owner) takes SYNs and its own connections; any other packet is dropped until the handover ends');
    expect(e.summary).toMatch(/owner node2 \(in handover from node1\); this node takes new connections and its own, the previous owner its established ones$/);
  });

  it('on the previous owner: only connections it holds pass (pass_handover_prev), a SYN goes on to the owner', () => {
    const { tables } = handingOver(WEB_SYN, 'node1', 'node1', 'node2');
    const e = explainPacket(farm, tables, WEB_SYN, { cluster: cluster! });
    expect([e.verdict, e.reason, e.forwardTo?.name]).toEqual(['tx', 'tx_forward', 'node2']);
    expect(e.handover).toMatchObject({
      role: 'prev_owner',
      onThisNode: { syn: { reason: 'tx_forward' }, held: { verdict: 'pass', reason: 'pass_handover_prev' }, other: { reason: 'tx_forward' } },
    });
    // Without the owner's MAC (a running node that has not learnt it) the program drops them.
    const noMac = { ...tables, nodeMacs: ['02:00:00:00:00:01', null, '02:00:00:00:00:03'] };
    const d = explainPacket(farm, noMac, WEB_SYN, { cluster: cluster!, nodeMacs: 'tables' });
    expect([d.verdict, d.reason, d.handover?.onThisNode?.other.reason]).toEqual(['drop', 'drop_handover', 'drop_handover']);
    expect(e.summary).toMatch(/this node keeps only its established connections and takes no new one$/);
  });

  it('on a third node: forwarded to the owner, with the handover still named', () => {
    const { tables } = handingOver(WEB_SYN, 'node3', 'node1', 'node2');
    const e = explainPacket(farm, tables, WEB_SYN, { cluster: cluster! });
    expect([e.reason, e.forwardTo?.name, e.handover?.role, e.prevOwner?.name]).toEqual(['tx_forward', 'node2', 'neither', 'node1']);
  });

  it('applies the handover to an on_port TCP rule, not to UDP on_ipid: that follows the owner at once', () => {
    const onPort: PacketQuery = { src: '192.0.2.7', srcPort: 40001, vip: '10.0.0.101', vipPort: 8443, proto: 'tcp' };
    const port = explainPacket(farm, handingOver(onPort, 'node3', 'node2', 'node3').tables, onPort, { cluster: cluster! });
    expect([port.criterion, port.handover?.applies, port.reason]).toEqual(['on_port', true, 'pass_handover_new']);

    const udp: PacketQuery = { src: '192.0.2.7', srcPort: 5353, vip: '10.0.0.100', vipPort: 53, proto: 'udp', ipid: 0x1234 };
    const e = explainPacket(farm, handingOver(udp, 'node3', 'node2', 'node3').tables, udp, { cluster: cluster! });
    expect(e.prevOwner?.name).toBe('node2');
    expect(e.handover).toMatchObject({ applies: false, role: 'owner' });
    expect(e.handover!.onThisNode).toBeUndefined();
    expect(e.handover!.rule).toBe('only TCP on_addr/on_port rules are handed over: this packet follows node3 at once');
    expect([e.verdict, e.reason]).toEqual(['pass', 'pass_owned']);
  });

  it('reports prevOwner null and no handover for a bucket that is not moving, or whose previous owner is its owner', () => {
    const base = compileTables(farm, cluster!, staticTable(farm, cluster!), 'node1');
    const e = explainPacket(farm, base, WEB_SYN, { cluster: cluster! });
    expect(e.prevOwner).toBeNull();
    expect(e.handover).toBeUndefined();
    const same = handingOver(WEB_SYN, 'node1', 'node2', 'node2');
    expect(explainPacket(farm, same.tables, WEB_SYN, { cluster: cluster! }).prevOwner).toBeNull();
  });
});
