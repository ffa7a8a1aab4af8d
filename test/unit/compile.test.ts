// Rule compilation, the static table and `farmlb explain` (docs/datapath.md §4–§6).
import { describe, expect, test } from 'vitest';
import { addrBytes, addrBytes16 } from '../../src/balance/addr.js';
import { countOwners, freshTable, rebalance, type BucketTable } from '../../src/balance/assign.js';
import { compileTables, groupPowers, icmpGroupOf, staticTable } from '../../src/balance/compile.js';
import { explainPacket } from '../../src/balance/explain.js';
import { bucketOf } from '../../src/balance/hash.js';
import type { ClusterConfig, FarmConfig, Group, Rule, SourceRef, VipInterface, VirtualAddr } from '../../src/config/types.js';
import { GROUP_NONE, NODE_NONE, VIP_ANY } from '../../src/dataplane/types.js';

const src = (line: number, element = 'rule'): SourceRef => ({ file: 'userconfig.xml', line, column: 1, element });

function vip(addr: string, id: number): VirtualAddr {
  return { addr, family: addr.includes(':') ? 6 : 4, id, where: 'alias', check: false, connections: false, src: src(10 + id, 'virtual_addr') };
}

function rule(vipAddr: string, port: number | '*', proto: Rule['proto'], filter: Rule['filter'], line: number): Rule {
  return { vip: vipAddr, port, proto, filter, src: src(line) };
}

function group(index: number, name: string, hosts: Group['hosts'], rules: Rule[]): Group {
  return { name, index, hosts, rules, src: src(30 + index, 'group') };
}

const V4A = vip('192.0.2.10', 0);
const V4B = vip('192.0.2.11', 1);
const V6 = vip('2001:db8::10', 2);

function iface(type: VipInterface['type'], vmac: string, addrs: VirtualAddr[]): VipInterface {
  return { name: 'eth0', check: false, arpreroute: false, arpintervalMs: 0, arpelapseMs: 0, type, vmac, vmacExplicit: false, addrs, src: src(5, 'virtual_interface') };
}

function farm(groups: Group[], interfaces = [iface('vmac_invisible', '5a:fe:c0:00:02:0a', [V4A, V4B]), iface('vmac_directed', '5a:fe:00:00:00:01', [V6])]): FarmConfig {
  return {
    file: 'userconfig.xml',
    tcpreset: false,
    scriptcontrol: false,
    interfaces,
    vips: [V4A, V4B, V6],
    groups,
    farmlb: { module: 'farm', hashSeed: 0x12345678, keyFile: '', membershipPort: 0, healthPort: 0, splitBrain: 'serve', handoverLimitMs: 0 },
    warnings: [],
  };
}

const CLUSTER: ClusterConfig = { file: 'cluster.xml', lans: [], nodes: ['node1', 'node2', 'node3'] };

const hosts = (...pairs: [string, number][]): Group['hosts'] => pairs.map(([name, power], i) => ({ name, power, src: src(40 + i, 'host') }));

// Group 0: ipid balancing for every VIP (IPv4 only); group 1: the web VIP on port 80 by address
// and ARP; group 2: DNS by port on the IPv6 VIP.
const FARM = farm([
  group(0, 'ipid', null, [rule('*', '*', 'udp', 'on_ipid', 50)]),
  group(1, 'web', hosts(['node1', 1], ['node2', 3]), [rule('192.0.2.10', 80, 'tcp', 'on_addr', 60), rule('*', '*', 'arp', 'on_addr', 61)]),
  group(2, 'dns', hosts(['node2', 1], ['node3', 1]), [rule('2001:db8::10', 53, 'udp', 'on_port', 70), rule('*', 443, 'tcp', 'on_addr', 71)]),
]);

describe('compileTables', () => {
  const table = staticTable(FARM, CLUSTER);
  const tables = compileTables(FARM, CLUSTER, table, 'node2');

  test('lists every VIP with its id, 16-byte network-order address and its interface mode', () => {
    expect(tables.vips.map((v) => [v.id, v.family, v.addr, v.mode])).toEqual([
      [0, 4, '192.0.2.10', 'vmac_invisible'],
      [1, 4, '192.0.2.11', 'vmac_invisible'],
      [2, 6, '2001:db8::10', 'vmac_directed'],
    ]);
    expect([...tables.vips[0]!.addrBytes]).toEqual([192, 0, 2, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect([...tables.vips[2]!.addrBytes]).toEqual([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]);
  });

  test('gives each VIP the first covering group for ICMP, where a * on_ipid rule does not cover an IPv6 VIP', () => {
    expect(tables.vips.map((v) => v.icmpGroup)).toEqual([0, 0, 2]);
    const noCover = farm([group(0, 'ipid', null, [rule('*', '*', 'udp', 'on_ipid', 50)])]);
    expect(icmpGroupOf(noCover, V6)).toBe(GROUP_NONE);
  });

  test('compiles TCP/UDP rules with port 0 and VIP_ANY for *, and leaves ARP rules out', () => {
    expect(tables.rules).toEqual([
      { proto: 17, port: 0, vipId: VIP_ANY, group: 0, criterion: 2 },
      { proto: 6, port: 80, vipId: 0, group: 1, criterion: 0 },
      { proto: 17, port: 53, vipId: 2, group: 2, criterion: 1 },
      { proto: 6, port: 443, vipId: VIP_ANY, group: 2, criterion: 0 },
    ]);
  });

  test('carries the seed, the node id of this node, the first interface VMAC and owner ids per group', () => {
    expect(tables.hashSeed).toBe(0x12345678);
    expect(tables.selfNode).toBe(1);
    expect(tables.vmac).toBe('5a:fe:c0:00:02:0a');
    expect(tables.buckets).toHaveLength(3);
    expect(tables.buckets[1]!.filter((id) => id === 1)).toHaveLength(192);
    expect(tables.buckets[1]!.filter((id) => id === 0)).toHaveLength(64);
  });

  test('marks a node outside the cluster with NODE_NONE and a group missing from the table as unowned', () => {
    const t = compileTables(FARM, CLUSTER, { groups: [table.groups[0]!] }, 'stranger');
    expect(t.selfNode).toBe(NODE_NONE);
    expect(t.buckets[2]!.every((id) => id === NODE_NONE)).toBe(true);
  });

  test('gives each VIP the group of the arp rule covering it, a VIP-specific rule beating \'*\'', () => {
    expect(compileTables(FARM, CLUSTER, table, 'node2').vips.map((v) => v.arpGroup)).toEqual([1, 1, 1]);
    const f = farm([
      group(0, 'a', null, [rule('*', '*', 'tcp', 'on_addr', 5), rule('*', '*', 'arp', 'on_addr', 6)]),
      group(1, 'b', null, [rule('192.0.2.11', '*', 'arp', 'on_addr', 7)]),
    ]);
    const t = compileTables(f, CLUSTER, staticTable(f, CLUSTER), 'node1');
    expect(t.vips.map((v) => [v.addr, v.arpGroup])).toEqual([
      ['192.0.2.10', 0],
      ['192.0.2.11', 1],
      ['2001:db8::10', 0],
    ]);
    const none = farm([group(0, 'a', null, [rule('*', '*', 'tcp', 'on_addr', 5)])]);
    expect(compileTables(none, CLUSTER, staticTable(none, CLUSTER), 'node1').vips.every((v) => v.arpGroup === GROUP_NONE)).toBe(true);
  });

  test('leaves every node MAC unknown: the daemon learns them on the LAN', () => {
    expect(compileTables(FARM, CLUSTER, table, 'node2').nodeMacs).toEqual([null, null, null]);
  });

  test('refuses a table naming an owner that is not a cluster node', () => {
    const bad: BucketTable = { groups: [new Array(256).fill('ghost')] };
    expect(() => compileTables(FARM, CLUSTER, bad, 'node1')).toThrow(expect.objectContaining({ code: 'FARMLB_E_BALANCE_UNKNOWN_NODE' }));
  });
});

describe('staticTable and groupPowers', () => {
  test('a group without <cluster> is every cluster node with power 1', () => {
    expect(groupPowers(FARM, CLUSTER)[0]).toEqual(new Map([['node1', 1], ['node2', 1], ['node3', 1]]));
    expect(countOwners(staticTable(FARM, CLUSTER).groups[0]!)).toEqual(new Map([['node1', 86], ['node2', 85], ['node3', 85]]));
  });

  test('splits each group by its configured powers as if every node were up', () => {
    const t = staticTable(FARM, CLUSTER);
    expect(countOwners(t.groups[1]!)).toEqual(new Map([['node1', 64], ['node2', 192]]));
    expect(t.groups[1]).toEqual(freshTable({ node1: 1, node2: 3 }));
    expect(rebalance(t.groups[2]!, groupPowers(FARM, CLUSTER)[2]!)).toEqual(t.groups[2]);
  });

  test('gives hosts that are not cluster nodes nothing, and without cluster.xml leaves every bucket unowned', () => {
    const f = farm([group(0, 'g', hosts(['node1', 1], ['elsewhere', 1]), [rule('*', '*', 'tcp', 'on_addr', 5)])]);
    expect(countOwners(staticTable(f, CLUSTER).groups[0]!)).toEqual(new Map([['node1', 256]]));
    expect(staticTable(f, undefined).groups[0]!.every((o) => o === null)).toBe(true);
  });
});

describe('explainPacket', () => {
  const table = staticTable(FARM, CLUSTER);
  const tables = compileTables(FARM, CLUSTER, table, 'node2');

  test('names the rule with its source line, the criterion bytes, the bucket and the owner', () => {
    const e = explainPacket(FARM, tables, { src: '198.51.100.7', srcPort: 40000, vip: '192.0.2.10', vipPort: 80, proto: 'tcp' }, { cluster: CLUSTER });
    const bucket = bucketOf(Uint8Array.of(198, 51, 100, 7), 0x12345678);
    expect(e.rule).toEqual({ proto: 'tcp', vip: '192.0.2.10', port: 80, filter: 'on_addr', src: src(60) });
    expect(e.group).toEqual({ index: 1, name: 'web' });
    expect(e.criterionBytes).toBe('c6336407');
    expect(e.bucket).toBe(bucket);
    const ownerName = table.groups[1]![bucket]!;
    expect(e.owner?.name).toBe(ownerName);
    expect(e.verdict).toBe(ownerName === 'node2' ? 'pass' : 'drop');
    expect(e.reason).toBe(ownerName === 'node2' ? 'pass_owned' : 'drop_not_owned');
    // Only two nodes in the group: the other one takes the bucket when its owner fails.
    expect(e.ownerIfOwnerFails?.name).toBe(ownerName === 'node2' ? 'node1' : 'node2');
  });

  test('prefers an exact VIP over * and an exact port over *', () => {
    const e = explainPacket(FARM, tables, { src: '2001:db8::99', srcPort: 5353, vip: '2001:db8::10', vipPort: 53, proto: 'udp' });
    expect(e.rule?.src).toEqual(src(70));
    expect(e.criterion).toBe('on_port');
    expect(e.criterionBytes).toBe('14e9');
    const star = explainPacket(FARM, tables, { src: '2001:db8::99', vip: '2001:db8::10', vipPort: 443, proto: 'tcp' });
    expect(star.rule).toMatchObject({ vip: '*', port: 443 });
  });

  test('skips a * on_ipid rule for an IPv6 VIP and drops what no rule covers', () => {
    const e = explainPacket(FARM, tables, { src: '2001:db8::99', srcPort: 1, vip: '2001:db8::10', vipPort: 54, proto: 'udp' });
    expect(e.reason).toBe('drop_no_rule');
    const v4 = explainPacket(FARM, tables, { src: '198.51.100.7', vip: '192.0.2.11', vipPort: 54, proto: 'udp', ipid: 0x1234 });
    expect(v4.criterion).toBe('on_ipid');
    expect(v4.criterionBytes).toBe('1234');
    expect(explainPacket(FARM, tables, { src: '198.51.100.7', vip: '192.0.2.11', vipPort: 81, proto: 'tcp' }).reason).toBe('drop_no_rule');
  });

  test('decides ICMP echo by source address in the VIP’s first covering group', () => {
    const e = explainPacket(FARM, tables, { src: '2001:db8::99', vip: '2001:db8::10', proto: 'icmp' });
    expect(e.group?.index).toBe(2);
    expect(e.criterion).toBe('on_addr');
    expect(e.rule).toBeUndefined();
    expect(e.bucket).toBe(bucketOf(addrBytes('2001:db8::99')!, 0x12345678));
  });

  test('passes traffic to an address that is not a VIP', () => {
    expect(explainPacket(FARM, tables, { src: '198.51.100.7', vip: '192.0.2.99', vipPort: 80, proto: 'tcp' }).reason).toBe('pass_not_vip');
  });

  test('asks for the fields the matching rule needs', () => {
    expect(() => explainPacket(FARM, tables, { src: '198.51.100.7', vip: '192.0.2.10', proto: 'tcp' })).toThrow(
      expect.objectContaining({ code: 'FARMLB_E_BALANCE_MISSING_FIELD' }),
    );
    expect(() => explainPacket(FARM, tables, { src: '2001:db8::9', vip: '2001:db8::10', vipPort: 53, proto: 'udp' })).toThrow(/srcPort/);
    expect(() => explainPacket(FARM, tables, { src: '10.0.0.1', vip: '2001:db8::10', proto: 'icmp' })).toThrow(/same IP family/);
  });
});

describe('addrBytes', () => {
  test('parses IPv4, compressed IPv6 and IPv4-mapped IPv6 to wire order', () => {
    expect([...addrBytes('10.1.2.3')!]).toEqual([10, 1, 2, 3]);
    expect(Buffer.from(addrBytes('2001:db8::1:0:0:1')!).toString('hex')).toBe('20010db8000000000001000000000001');
    expect(Buffer.from(addrBytes('::')!).toString('hex')).toBe('0'.repeat(32));
    expect(Buffer.from(addrBytes('fe80::1')!).toString('hex')).toBe('fe800000000000000000000000000001');
    expect(Buffer.from(addrBytes('::ffff:192.0.2.1')!).toString('hex')).toBe('00000000000000000000ffffc0000201');
    expect(Buffer.from(addrBytes('1:2:3:4:5:6:7:8')!).toString('hex')).toBe('00010002000300040005000600070008');
    expect(addrBytes16('10.1.2.3')!.length).toBe(16);
    expect(addrBytes('example.com')).toBeUndefined();
  });
});
