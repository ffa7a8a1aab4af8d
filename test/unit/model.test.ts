// The TS model of the data path (src/dataplane/model.ts) against docs/datapath.md, one row
// per rule of the document (Katran-style fixtures: name, packet, expected reason and
// action). The same model is held equal to the XDP program by test/bpf/differential.test.ts.

import { describe, expect, it } from 'vitest';
import { bucketOf } from '../../src/balance/hash.js';
import { ModelDataplane, decide } from '../../src/dataplane/model.js';
import {
  addrBytes16,
  buildFrame,
  corrupt,
  l3Offset,
  parseIp,
  truncate,
  type FrameSpec,
  type L4Spec,
} from '../../src/dataplane/packet.js';
import {
  CriterionId,
  GROUP_NONE,
  NODE_NONE,
  PORT_ANY,
  VIP_ANY,
  XDP_DROP,
  XDP_PASS,
  type CompiledRule,
  type CompiledVip,
  type DataplaneTables,
  type Reason,
} from '../../src/dataplane/types.js';

const SELF = 1;
const OTHER = 2;
const LEASE_FOREVER = 2n ** 64n - 1n;

function vip(id: number, addr: string, icmpGroup: number): CompiledVip {
  return { id, family: parseIp(addr).family, addr, addrBytes: addrBytes16(addr), icmpGroup, mode: 'vmac_invisible' };
}

function rule(proto: 6 | 17, port: number, vipId: number, group: number, criterion: CriterionId): CompiledRule {
  return { proto, port, vipId, group, criterion };
}

const row = (owner: number): number[] => Array<number>(256).fill(owner);

// Group 0: every bucket this node's; 1: another node's; 2: nobody's; 3: even buckets ours.
const TABLES: DataplaneTables = {
  hashSeed: 0x6661726d,
  selfNode: SELF,
  vmac: '5a:fe:0a:00:00:64',
  vips: [
    vip(0, '10.0.0.100', 0),
    vip(1, '10.0.0.101', 1),
    vip(2, '10.0.0.102', GROUP_NONE),
    vip(3, '2001:db8::100', 0),
    vip(4, '2001:db8::101', GROUP_NONE),
  ],
  rules: [
    rule(6, 80, 0, 0, CriterionId.Addr),
    rule(6, PORT_ANY, 0, 1, CriterionId.Addr),
    rule(6, 443, VIP_ANY, 2, CriterionId.Port),
    rule(17, 53, VIP_ANY, 0, CriterionId.Ipid),
    rule(17, PORT_ANY, VIP_ANY, 1, CriterionId.Port),
    rule(6, 80, 3, 0, CriterionId.Addr),
    rule(6, 22, 1, 3, CriterionId.Port),
  ],
  buckets: [row(SELF), row(OTHER), row(NODE_NONE), Array.from({ length: 256 }, (_, b) => (b % 2 === 0 ? SELF : OTHER))],
};

const CLIENT4 = '192.0.2.10';
const CLIENT6 = '2001:db8:1::10';

function v4(dst: string, l4?: L4Spec, extra: Partial<FrameSpec> & { ip?: Record<string, unknown> } = {}): FrameSpec {
  const { ip, ...rest } = extra;
  return { l3: { family: 4, src: CLIENT4, dst, id: 0x1234, ...ip }, ...(l4 && { l4 }), payload: 8, ...rest };
}

function v6(dst: string, l4?: L4Spec, extra: Partial<FrameSpec> & { ip?: Record<string, unknown> } = {}): FrameSpec {
  const { ip, ...rest } = extra;
  return { l3: { family: 6, src: CLIENT6, dst, ...ip }, ...(l4 && { l4 }), payload: 8, ...rest };
}

const tcp = (dport: number, sport = 40000): L4Spec => ({ proto: 'tcp', sport, dport });
const udp = (dport: number, sport = 40000): L4Spec => ({ proto: 'udp', sport, dport });

interface Row {
  name: string;
  packet: FrameSpec | Uint8Array;
  expectReason: Reason;
  expectAction: number;
  lease?: 'valid' | 'expired';
}

const ipv4Syn = buildFrame(v4('10.0.0.100', tcp(80)));
const ipv6Syn = buildFrame(v6('2001:db8::100', tcp(80)));

const ROWS: Row[] = [
  // 1. Ethernet and VLAN
  { name: 'ARP is not VIP traffic', packet: { l3: { family: 'arp', senderMac: '02:00:00:00:00:09', senderIp: CLIENT4, targetIp: '10.0.0.100' } }, expectReason: 'pass_not_vip', expectAction: XDP_PASS },
  { name: 'an unknown EtherType passes', packet: { eth: { etherType: 0x1234 }, payload: 60 }, expectReason: 'pass_not_vip', expectAction: XDP_PASS },
  { name: 'a frame of 13 bytes passes', packet: truncate(ipv4Syn, 13), expectReason: 'pass_not_vip', expectAction: XDP_PASS },
  { name: 'a bare Ethernet header passes', packet: truncate(ipv4Syn, 14), expectReason: 'pass_not_vip', expectAction: XDP_PASS },
  { name: 'one 802.1Q tag is skipped', packet: v4('10.0.0.100', tcp(80), { eth: { vlans: [{ vid: 10 }] } }), expectReason: 'pass_owned', expectAction: XDP_PASS },
  { name: 'QinQ (802.1ad + 802.1Q) is skipped', packet: v4('10.0.0.100', tcp(80), { eth: { vlans: [{ tpid: 0x88a8, vid: 10 }, { vid: 20 }] } }), expectReason: 'pass_owned', expectAction: XDP_PASS },
  { name: 'a third VLAN tag makes the frame non-IP', packet: v4('10.0.0.100', tcp(80), { eth: { vlans: [{ vid: 1 }, { vid: 2 }, { vid: 3 }] } }), expectReason: 'pass_not_vip', expectAction: XDP_PASS },
  { name: 'a truncated VLAN tag passes', packet: truncate(buildFrame(v4('10.0.0.100', tcp(80), { eth: { vlans: [{ vid: 1 }] } })), 16), expectReason: 'pass_not_vip', expectAction: XDP_PASS },

  // 2. IP header and VIP lookup
  { name: 'IPv4 to a non-VIP passes', packet: v4('10.0.0.1', tcp(80)), expectReason: 'pass_not_vip', expectAction: XDP_PASS },
  { name: 'IPv6 to a non-VIP passes', packet: v6('2001:db8::1', tcp(80)), expectReason: 'pass_not_vip', expectAction: XDP_PASS },
  { name: 'an IPv4 header shorter than 20 bytes passes (VIP unreadable)', packet: truncate(ipv4Syn, 14 + 19), expectReason: 'pass_not_vip', expectAction: XDP_PASS },
  { name: 'an IPv6 header shorter than 40 bytes passes', packet: truncate(ipv6Syn, 14 + 39), expectReason: 'pass_not_vip', expectAction: XDP_PASS },
  { name: 'an IPv4 VIP address inside an IPv6 frame is not a VIP', packet: { l3: { family: 6, src: CLIENT6, dst: '::ffff:10.0.0.100' }, l4: tcp(80) }, expectReason: 'pass_not_vip', expectAction: XDP_PASS },
  { name: 'IPv4 version 5 to a VIP is malformed', packet: v4('10.0.0.100', tcp(80), { ip: { version: 5 } }), expectReason: 'drop_malformed', expectAction: XDP_DROP },
  { name: 'IPv4 IHL 4 to a VIP is malformed', packet: v4('10.0.0.100', tcp(80), { ip: { ihl: 4 } }), expectReason: 'drop_malformed', expectAction: XDP_DROP },
  { name: 'IPv4 IHL beyond the frame is malformed', packet: truncate(buildFrame(v4('10.0.0.100', undefined, { ip: { ihl: 15 }, payload: 0 })), 14 + 40), expectReason: 'drop_malformed', expectAction: XDP_DROP },
  { name: 'IPv4 options are skipped to reach TCP', packet: v4('10.0.0.100', tcp(80), { ip: { options: new Uint8Array([1, 1, 1, 0]) } }), expectReason: 'pass_owned', expectAction: XDP_PASS },
  { name: 'IPv4 total length is not checked', packet: v4('10.0.0.100', tcp(80), { ip: { totalLength: 9999 } }), expectReason: 'pass_owned', expectAction: XDP_PASS },
  { name: 'IPv6 version 4 to a VIP is malformed', packet: v6('2001:db8::100', tcp(80), { ip: { version: 4 } }), expectReason: 'drop_malformed', expectAction: XDP_DROP },
  { name: 'IPv6 hop-by-hop and destination options are skipped', packet: v6('2001:db8::100', tcp(80), { ip: { ext: [{ type: 'hop-by-hop' }, { type: 'destination', hdrlen: 2 }] } }), expectReason: 'pass_owned', expectAction: XDP_PASS },
  { name: 'IPv6 routing and AH headers are skipped', packet: v6('2001:db8::100', tcp(80), { ip: { ext: [{ type: 'routing', hdrlen: 1 }, { type: 'auth', hdrlen: 4 }] } }), expectReason: 'pass_owned', expectAction: XDP_PASS },
  { name: 'six IPv6 extension headers are walked', packet: v6('2001:db8::100', tcp(80), { ip: { ext: Array.from({ length: 6 }, () => ({ type: 'destination' as const })) } }), expectReason: 'pass_owned', expectAction: XDP_PASS },
  { name: 'a seventh IPv6 extension header is malformed', packet: v6('2001:db8::100', tcp(80), { ip: { ext: Array.from({ length: 7 }, () => ({ type: 'destination' as const })) } }), expectReason: 'drop_malformed', expectAction: XDP_DROP },
  { name: 'a truncated IPv6 extension header is malformed', packet: truncate(buildFrame(v6('2001:db8::100', tcp(80), { ip: { ext: [{ type: 'hop-by-hop', hdrlen: 3 }] } })), 14 + 40 + 20), expectReason: 'drop_malformed', expectAction: XDP_DROP },
  { name: 'fewer than 8 bytes of an IPv6 extension header is malformed', packet: truncate(buildFrame(v6('2001:db8::100', tcp(80), { ip: { ext: [{ type: 'fragment', offset: 0 }] } })), 14 + 40 + 7), expectReason: 'drop_malformed', expectAction: XDP_DROP },

  // 3. Fragments
  { name: 'a non-first IPv4 fragment passes while the lease is valid', packet: v4('10.0.0.100', undefined, { ip: { fragOffset: 3, protocol: 6 } }), expectReason: 'pass_fragment', expectAction: XDP_PASS },
  { name: 'a non-first IPv4 fragment is dropped once the lease ran out', packet: v4('10.0.0.100', undefined, { ip: { fragOffset: 3, protocol: 6 } }), expectReason: 'drop_lease', expectAction: XDP_DROP, lease: 'expired' },
  { name: 'a non-first fragment to a port no rule covers still passes', packet: v4('10.0.0.102', undefined, { ip: { fragOffset: 100, protocol: 6 } }), expectReason: 'pass_fragment', expectAction: XDP_PASS },
  { name: 'a first IPv4 fragment (MF, offset 0) is decided by its rule', packet: v4('10.0.0.100', tcp(81), { ip: { moreFragments: true } }), expectReason: 'drop_not_owned', expectAction: XDP_DROP },
  { name: 'a non-first IPv6 fragment passes while the lease is valid', packet: v6('2001:db8::100', undefined, { ip: { ext: [{ type: 'fragment', offset: 2 }], nextHeader: 6 } }), expectReason: 'pass_fragment', expectAction: XDP_PASS },
  { name: 'a non-first IPv6 fragment is dropped once the lease ran out', packet: v6('2001:db8::100', undefined, { ip: { ext: [{ type: 'fragment', offset: 2 }], nextHeader: 6 } }), expectReason: 'drop_lease', expectAction: XDP_DROP, lease: 'expired' },
  { name: 'a non-first IPv6 fragment ends the walk before more extension headers', packet: v6('2001:db8::100', undefined, { ip: { ext: [{ type: 'fragment', offset: 2 }, ...Array.from({ length: 6 }, () => ({ type: 'destination' as const }))] } }), expectReason: 'pass_fragment', expectAction: XDP_PASS },
  { name: 'a first IPv6 fragment (offset 0) is decided by its rule', packet: v6('2001:db8::100', tcp(80), { ip: { ext: [{ type: 'fragment', offset: 0, more: true }] } }), expectReason: 'pass_owned', expectAction: XDP_PASS },
  { name: 'a malformed IPv4 header wins over its fragment offset', packet: v4('10.0.0.100', undefined, { ip: { fragOffset: 3, ihl: 3 } }), expectReason: 'drop_malformed', expectAction: XDP_DROP },

  // 4. Classification
  { name: 'a TCP header shorter than 20 bytes is malformed', packet: truncate(ipv4Syn, 14 + 20 + 19), expectReason: 'drop_malformed', expectAction: XDP_DROP },
  { name: 'a UDP header shorter than 8 bytes is malformed', packet: truncate(buildFrame(v4('10.0.0.100', udp(53))), 14 + 20 + 7), expectReason: 'drop_malformed', expectAction: XDP_DROP },
  { name: 'exactly a TCP header (no payload) is enough', packet: truncate(ipv4Syn, 14 + 20 + 20), expectReason: 'pass_owned', expectAction: XDP_PASS },
  { name: '(vip, port) beats (vip, *)', packet: v4('10.0.0.100', tcp(80)), expectReason: 'pass_owned', expectAction: XDP_PASS },
  { name: '(vip, *) covers the other ports of the VIP', packet: v4('10.0.0.100', tcp(81)), expectReason: 'drop_not_owned', expectAction: XDP_DROP },
  { name: '(vip, *) beats (*, port)', packet: v4('10.0.0.100', tcp(443)), expectReason: 'drop_not_owned', expectAction: XDP_DROP },
  { name: '(*, port) covers a VIP without its own rule', packet: v4('10.0.0.101', tcp(443)), expectReason: 'drop_not_owned', expectAction: XDP_DROP },
  { name: 'TCP to a port no rule covers is dropped', packet: v4('10.0.0.101', tcp(8080)), expectReason: 'drop_no_rule', expectAction: XDP_DROP },
  { name: 'a rule for TCP does not cover UDP', packet: v6('2001:db8::100', udp(80)), expectReason: 'drop_not_owned', expectAction: XDP_DROP },
  { name: 'on_ipid (*, 53) applies to IPv4', packet: v4('10.0.0.102', udp(53)), expectReason: 'pass_owned', expectAction: XDP_PASS },
  { name: 'on_ipid (*, 53) is skipped for IPv6 and (*, *) applies', packet: v6('2001:db8::101', udp(53)), expectReason: 'drop_not_owned', expectAction: XDP_DROP },
  { name: 'the IPv6 VIP has its own (vip, port) rule', packet: v6('2001:db8::100', tcp(80)), expectReason: 'pass_owned', expectAction: XDP_PASS },
  { name: 'IPv6 TCP with no rule is dropped', packet: v6('2001:db8::101', tcp(80)), expectReason: 'drop_no_rule', expectAction: XDP_DROP },
  { name: 'ICMP echo goes to the VIP\'s icmp_group (owned)', packet: v4('10.0.0.100', { proto: 'icmp', type: 8 }), expectReason: 'pass_owned', expectAction: XDP_PASS },
  { name: 'ICMP echo goes to the VIP\'s icmp_group (not owned)', packet: v4('10.0.0.101', { proto: 'icmp', type: 8 }), expectReason: 'drop_not_owned', expectAction: XDP_DROP },
  { name: 'ICMP echo to a VIP no group covers is dropped', packet: v4('10.0.0.102', { proto: 'icmp', type: 8 }), expectReason: 'drop_no_rule', expectAction: XDP_DROP },
  { name: 'ICMPv6 echo goes to the VIP\'s icmp_group', packet: v6('2001:db8::100', { proto: 'icmpv6', type: 128 }), expectReason: 'pass_owned', expectAction: XDP_PASS },
  { name: 'ICMPv6 echo to a VIP no group covers is dropped', packet: v6('2001:db8::101', { proto: 'icmpv6', type: 128 }), expectReason: 'drop_no_rule', expectAction: XDP_DROP },
  { name: 'ICMP destination unreachable passes on every node', packet: v4('10.0.0.102', { proto: 'icmp', type: 3, code: 4 }), expectReason: 'pass_control', expectAction: XDP_PASS },
  { name: 'ICMP time exceeded passes whatever the lease', packet: v4('10.0.0.101', { proto: 'icmp', type: 11 }), expectReason: 'pass_control', expectAction: XDP_PASS, lease: 'expired' },
  { name: 'ICMP parameter problem passes', packet: v4('10.0.0.101', { proto: 'icmp', type: 12 }), expectReason: 'pass_control', expectAction: XDP_PASS },
  { name: 'ICMPv6 packet too big passes', packet: v6('2001:db8::101', { proto: 'icmpv6', type: 2 }), expectReason: 'pass_control', expectAction: XDP_PASS },
  { name: 'ICMPv6 neighbour solicitation passes', packet: v6('2001:db8::101', { proto: 'icmpv6', type: 135 }), expectReason: 'pass_control', expectAction: XDP_PASS, lease: 'expired' },
  { name: 'ICMPv6 redirect (137) passes', packet: v6('2001:db8::101', { proto: 'icmpv6', type: 137 }), expectReason: 'pass_control', expectAction: XDP_PASS },
  { name: 'ICMPv6 type 138 is not control traffic', packet: v6('2001:db8::101', { proto: 'icmpv6', type: 138 }), expectReason: 'drop_no_rule', expectAction: XDP_DROP },
  { name: 'ICMP echo reply to a VIP is dropped', packet: v4('10.0.0.100', { proto: 'icmp', type: 0 }), expectReason: 'drop_no_rule', expectAction: XDP_DROP },
  { name: 'ICMPv6 carried in IPv4 is another protocol', packet: v4('10.0.0.100', { proto: 'icmpv6', type: 128 }), expectReason: 'drop_no_rule', expectAction: XDP_DROP },
  { name: 'ICMP carried in IPv6 is another protocol', packet: v6('2001:db8::100', { proto: 'icmp', type: 8 }), expectReason: 'drop_no_rule', expectAction: XDP_DROP },
  { name: 'an ICMP header shorter than 4 bytes is malformed', packet: truncate(buildFrame(v4('10.0.0.100', { proto: 'icmp', type: 3 })), 14 + 20 + 3), expectReason: 'drop_malformed', expectAction: XDP_DROP },
  { name: 'an ICMPv6 header shorter than 4 bytes is malformed', packet: truncate(buildFrame(v6('2001:db8::100', { proto: 'icmpv6', type: 135 })), 14 + 40 + 3), expectReason: 'drop_malformed', expectAction: XDP_DROP },
  { name: 'SCTP to a VIP is dropped', packet: v4('10.0.0.100', { proto: 'raw', number: 132, bytes: new Uint8Array(12) }), expectReason: 'drop_no_rule', expectAction: XDP_DROP },
  { name: 'IPv6 No Next Header to a VIP is dropped', packet: v6('2001:db8::100', undefined, { ip: { nextHeader: 59 }, payload: 0 }), expectReason: 'drop_no_rule', expectAction: XDP_DROP },

  // 6. Verdict
  { name: 'an owned bucket is dropped once the lease ran out', packet: v4('10.0.0.100', tcp(80)), expectReason: 'drop_lease', expectAction: XDP_DROP, lease: 'expired' },
  { name: 'a bucket owned by another node is dropped whatever the lease', packet: v4('10.0.0.100', tcp(81)), expectReason: 'drop_not_owned', expectAction: XDP_DROP, lease: 'expired' },
  { name: 'an unowned bucket is dropped', packet: v4('10.0.0.101', tcp(443)), expectReason: 'drop_not_owned', expectAction: XDP_DROP },
];

describe('data path model (docs/datapath.md)', () => {
  for (const r of ROWS) {
    it(r.name, () => {
      const frame = r.packet instanceof Uint8Array ? r.packet : buildFrame(r.packet);
      const deadline = r.lease === 'expired' ? 0n : LEASE_FOREVER;
      const d = decide(frame, TABLES, deadline, 1_000_000n);
      expect({ reason: d.reason, action: d.action }).toEqual({ reason: r.expectReason, action: r.expectAction });
      expect(d.frame).toEqual(frame);
    });
  }

  it('passes everything as not-VIP before any tables are applied', () => {
    for (const r of ROWS) {
      const frame = r.packet instanceof Uint8Array ? r.packet : buildFrame(r.packet);
      expect(decide(frame, undefined, LEASE_FOREVER, 0n)).toMatchObject({ action: XDP_PASS, reason: 'pass_not_vip' });
    }
  });

  it('hashes the criterion bytes in wire order into the bucket it reports', () => {
    for (let sport = 1000; sport < 1200; sport++) {
      const d = decide(buildFrame(v4('10.0.0.101', tcp(22, sport))), TABLES, LEASE_FOREVER, 0n);
      const bucket = bucketOf(new Uint8Array([sport >> 8, sport & 0xff]), TABLES.hashSeed);
      expect(d).toMatchObject({ group: 3, bucket, owner: bucket % 2 === 0 ? SELF : OTHER });
      expect(d.reason).toBe(bucket % 2 === 0 ? 'pass_owned' : 'drop_not_owned');
    }
  });

  it('hashes the IPv4 identification for on_ipid and the 16-byte source for IPv6 on_addr', () => {
    const f4 = buildFrame(v4('10.0.0.102', udp(53), { ip: { id: 0xbeef } }));
    expect(decide(f4, TABLES, LEASE_FOREVER, 0n).bucket).toBe(bucketOf(new Uint8Array([0xbe, 0xef]), TABLES.hashSeed));
    const f6 = buildFrame(v6('2001:db8::100', tcp(80)));
    expect(decide(f6, TABLES, LEASE_FOREVER, 0n).bucket).toBe(bucketOf(parseIp(CLIENT6).bytes, TABLES.hashSeed));
  });

  it('treats an unowned bucket as not ours even when this node has no id', () => {
    const tables = { ...TABLES, selfNode: NODE_NONE };
    expect(decide(buildFrame(v4('10.0.0.101', tcp(443))), tables, LEASE_FOREVER, 0n).reason).toBe('drop_not_owned');
  });

  it('drops as no-rule a rule whose group is out of range', () => {
    const tables = { ...TABLES, rules: [rule(6, 80, 0, 16, CriterionId.Addr)] };
    expect(decide(buildFrame(v4('10.0.0.100', tcp(80))), tables, LEASE_FOREVER, 0n)).toMatchObject({ reason: 'drop_no_rule' });
  });

  it('uses the lease as now < deadline', () => {
    const frame = buildFrame(v4('10.0.0.100', tcp(80)));
    expect(decide(frame, TABLES, 100n, 99n).reason).toBe('pass_owned');
    expect(decide(frame, TABLES, 100n, 100n).reason).toBe('drop_lease');
  });

  it('counts reasons (packets, bytes) and buckets as the program does', async () => {
    const dp = new ModelDataplane();
    await dp.apply(TABLES);
    await dp.setLease(LEASE_FOREVER);
    const owned = buildFrame(v4('10.0.0.100', tcp(80)));
    const notOwned = buildFrame(v4('10.0.0.100', tcp(81)));
    const foreign = buildFrame(v4('10.0.0.1', tcp(80)));
    const a = dp.process(owned, 0n);
    const b = dp.process(notOwned, 0n);
    dp.process(foreign, 0n);
    dp.process(corrupt(owned, l3Offset({}), 0x44), 0n); // IHL 4
    const reasons = await dp.reasonCounters();
    expect(reasons.pass_owned).toEqual({ packets: 1n, bytes: BigInt(owned.length) });
    expect(reasons.drop_not_owned).toEqual({ packets: 1n, bytes: BigInt(notOwned.length) });
    expect(reasons.pass_not_vip.packets).toBe(1n);
    expect(reasons.drop_malformed.packets).toBe(1n);
    const buckets = await dp.bucketCounters();
    expect(buckets[a.group!]![a.bucket!]!.accepted).toBe(1n);
    expect(buckets[b.group!]![b.bucket!]!.dropped).toBe(1n);
    expect(buckets.flat().reduce((n, c) => n + c.accepted + c.dropped, 0n)).toBe(2n);
  });
});
