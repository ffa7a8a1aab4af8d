// The TS model of the data path (src/dataplane/model.ts) against docs/datapath.md, one row
// per rule of the document (Katran-style fixtures: name, packet, expected reason and
// action). The same model is held equal to the XDP program by test/bpf/differential.test.ts.

import { rule, vip } from '../helpers/tables.js';
import { describe, expect, it } from 'vitest';
import { bucketOf } from '../../src/balance/hash.js';
import { formatMac, parseMac } from '../../src/dataplane/abi.js';
import { ModelDataplane, decide, egressRewrite } from '../../src/dataplane/model.js';
import { buildArpReply } from '../../src/net/announce.js';
import {
  addrBytes16,
  buildFrame,
  corrupt,
  inetChecksum,
  neighbourAdvertisement,
  neighbourSolicitation,
  quotedPacket,
  toHex,
  l3Offset,
  parseIp,
  truncate,
  type FrameSpec,
  type L4Spec,
} from '../../src/net/frames.js';
import {
  CriterionId,
  GROUP_NONE,
  NODE_NONE,
  PORT_ANY,
  VIP_ANY,
  XDP_DROP,
  XDP_PASS,
  XDP_TX,
  type CompiledRule,
  type CompiledVip,
  type DataplaneTables,
  type Reason,
} from '../../src/dataplane/types.js';

const SELF = 1;
const OTHER = 2;
const LEASE_FOREVER = 2n ** 64n - 1n;


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
  nodeMacs: [],
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
  { name: 'ARP for an address that is not a VIP passes', packet: { l3: { family: 'arp', senderMac: '02:00:00:00:00:09', senderIp: CLIENT4, targetIp: '10.0.0.1' } }, expectReason: 'pass_not_vip', expectAction: XDP_PASS },
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
  { name: 'an ICMPv6 neighbour advertisement to a VIP passes whatever the lease', packet: v6('2001:db8::101', { proto: 'icmpv6', type: 136 }, { payload: 16 }), expectReason: 'pass_control', expectAction: XDP_PASS, lease: 'expired' },
  { name: 'a neighbour solicitation to a VIP shorter than its 24-byte message is malformed', packet: v6('2001:db8::101', { proto: 'icmpv6', type: 135 }), expectReason: 'drop_malformed', expectAction: XDP_DROP },
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

  it('changes only who owns the buckets with applyBuckets, keeping the rest, and refuses rows the program cannot hold', async () => {
    const dp = new ModelDataplane();
    await expect(dp.applyBuckets(TABLES.buckets)).rejects.toMatchObject({ code: 'FARMLB_E_DATAPLANE_TABLE_INVALID' });
    await dp.apply({ ...TABLES, prevOwners: TABLES.buckets.map((row) => row.map(() => NODE_NONE)) });
    await dp.setLease(LEASE_FOREVER);
    const frame = buildFrame(v4('10.0.0.100', tcp(80)));
    expect(dp.process(frame, 0n).reason).toBe('pass_owned');
    const nobody = TABLES.buckets.map((row) => row.map(() => NODE_NONE));
    await dp.applyBuckets(nobody);
    expect(dp.tables()).toEqual({ ...TABLES, buckets: nobody });
    expect(dp.process(frame, 0n).reason).toBe('drop_not_owned');
    const bad = nobody.map((row) => [...row]);
    bad[0]![3] = 64;
    await expect(dp.applyBuckets(bad)).rejects.toMatchObject({ code: 'FARMLB_E_DATAPLANE_TABLE_INVALID' });
    expect(dp.tables()!.buckets).toEqual(nobody);
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

// --- VMAC modes: ARP/ND answered in XDP, forwarding, ICMP errors, egress (§8–11) ---------

const IFACE_MAC = '02:00:00:00:00:aa';
const CLIENT_MAC = '02:00:00:00:00:c1';
const NODE_MACS = ['02:00:00:00:00:10', '02:00:00:00:00:11', '02:00:00:00:00:12'];
const VMAC = '5a:fe:0a:00:00:64';
const INGRESS = { ifaceMac: parseMac(IFACE_MAC) };

// Group 0: all buckets this node's; 1: another node's; 2: nobody's.
const VM: DataplaneTables = {
  hashSeed: 0x6661726d,
  selfNode: SELF,
  vmac: VMAC,
  vips: [
    vip(0, '10.0.0.100', 0), // invisible, icmp owned
    vip(1, '10.0.0.101', 1), // invisible, icmp another node's
    vip(2, '10.0.0.110', 1, 'vmac_directed'), // directed, no arp rule
    vip(3, '10.0.0.111', 0, 'vmac_directed', 1), // directed, arp group another node's
    vip(4, '10.0.0.112', 0, 'vmac_directed', 0), // directed, arp group ours
    vip(5, '2001:db8::100', 0), // invisible IPv6
    vip(6, '2001:db8::110', 1, 'vmac_directed', 0), // directed IPv6, arp group ours
    vip(7, '10.0.0.102', GROUP_NONE), // invisible, no group covers it
    vip(8, '2001:db8::111', 0, 'vmac_directed', 1), // directed IPv6, arp group another node's
  ],
  rules: [
    rule(6, 80, 0, 0, CriterionId.Addr),
    rule(6, PORT_ANY, 0, 1, CriterionId.Addr),
    rule(6, 80, 2, 1, CriterionId.Addr),
    rule(6, 81, 2, 0, CriterionId.Addr),
    rule(6, 82, 2, 2, CriterionId.Addr),
    rule(17, PORT_ANY, VIP_ANY, 0, CriterionId.Port),
    rule(6, 443, VIP_ANY, 1, CriterionId.Port),
    rule(17, 5353, VIP_ANY, 0, CriterionId.Ipid),
    rule(6, 80, 6, 1, CriterionId.Addr),
  ],
  buckets: [row(SELF), row(OTHER), row(NODE_NONE)],
  nodeMacs: NODE_MACS,
};

const arpRequest = (targetIp: string, senderIp = CLIENT4, over: Partial<FrameSpec> = {}): FrameSpec => ({
  eth: { dst: 'ff:ff:ff:ff:ff:ff', src: CLIENT_MAC },
  l3: { family: 'arp', op: 1, senderMac: CLIENT_MAC, senderIp, targetIp },
  ...over,
});

const ns = (target: string, over: Partial<Parameters<typeof neighbourSolicitation>[0]> = {}): FrameSpec =>
  neighbourSolicitation({ src: CLIENT6, srcMac: CLIENT_MAC, target, ...over });

const naFor = (target: string, mac: string, vlans?: FrameSpec['eth'] extends infer E ? (E extends { vlans?: infer V } ? V : never) : never): Uint8Array =>
  buildFrame(neighbourAdvertisement({ target, dst: CLIENT6, ethDst: CLIENT_MAC, ethSrc: IFACE_MAC, mac, ...(vlans && { vlans }) }));

const withEth = (spec: FrameSpec, dst: string, src = CLIENT_MAC): FrameSpec => ({ ...spec, eth: { ...spec.eth, dst, src } });
const macsSwapped = (frame: Uint8Array, dst: string, src: string): Uint8Array => {
  const out = frame.slice();
  out.set(parseMac(dst), 0);
  out.set(parseMac(src), 6);
  return out;
};

/** An ICMP error to `vipAddr` quoting a packet the farm sent from vipAddr:vipPort to the client. */
function icmpError(vipAddr: string, quoted: { proto: 'tcp' | 'udp'; vipPort: number; client?: string; clientPort?: number; from?: string }, cut?: number): FrameSpec {
  const family = parseIp(vipAddr).family;
  const client = quoted.client ?? (family === 4 ? CLIENT4 : CLIENT6);
  const q: FrameSpec = {
    l3: family === 4 ? { family: 4, src: quoted.from ?? vipAddr, dst: client } : { family: 6, src: quoted.from ?? vipAddr, dst: client },
    l4: { proto: quoted.proto, sport: quoted.vipPort, dport: quoted.clientPort ?? 40000 },
    payload: 16,
  };
  const l4: L4Spec = family === 4 ? { proto: 'icmp', type: 3, code: 3, id: 0, seq: 0 } : { proto: 'icmpv6', type: 1, code: 4, id: 0, seq: 0 };
  return family === 4
    ? { l3: { family: 4, src: '192.0.2.254', dst: vipAddr }, l4, payload: quotedPacket(q, cut) }
    : { l3: { family: 6, src: '2001:db8:1::fe', dst: vipAddr }, l4, payload: quotedPacket(q, cut) };
}

interface VmRow {
  name: string;
  packet: FrameSpec | Uint8Array;
  reason: Reason;
  action: number;
  lease?: 'valid' | 'expired';
  ingress?: 'registered' | 'missing';
  /** Expected output frame; default: the input unchanged. */
  out?: (input: Uint8Array) => Uint8Array;
}

const VM_ROWS: VmRow[] = [
  // §8 ARP
  { name: 'vmac_invisible: the owner of hash(requester) answers an ARP request with the VMAC, from the interface MAC', packet: arpRequest('10.0.0.100'), reason: 'tx_arp_reply', action: XDP_TX,
    out: () => buildArpReply({ vip: '10.0.0.100', announcedMac: VMAC, linkMac: IFACE_MAC, clientIp: CLIENT4, clientMac: CLIENT_MAC }) },
  { name: 'vmac_invisible: another node owns hash(requester), so this node stays silent', packet: arpRequest('10.0.0.101'), reason: 'drop_arp_not_mine', action: XDP_DROP },
  { name: 'vmac_invisible: a VIP no group covers is answered by nobody', packet: arpRequest('10.0.0.102'), reason: 'drop_no_rule', action: XDP_DROP },
  { name: 'vmac_directed without an arp rule: every node answers with its own MAC', packet: arpRequest('10.0.0.110'), reason: 'tx_arp_reply', action: XDP_TX,
    out: () => buildArpReply({ vip: '10.0.0.110', announcedMac: IFACE_MAC, linkMac: IFACE_MAC, clientIp: CLIENT4, clientMac: CLIENT_MAC }) },
  { name: 'vmac_directed with an arp rule: the arp-group owner answers with its own MAC', packet: arpRequest('10.0.0.112'), reason: 'tx_arp_reply', action: XDP_TX,
    out: () => buildArpReply({ vip: '10.0.0.112', announcedMac: IFACE_MAC, linkMac: IFACE_MAC, clientIp: CLIENT4, clientMac: CLIENT_MAC }) },
  { name: 'vmac_directed with an arp rule: a node that does not own the requester stays silent', packet: arpRequest('10.0.0.111'), reason: 'drop_arp_not_mine', action: XDP_DROP },
  { name: 'an ARP probe (sender 0.0.0.0) is never answered', packet: arpRequest('10.0.0.100', '0.0.0.0'), reason: 'drop_arp_dad', action: XDP_DROP },
  { name: 'a node whose lease ran out answers no ARP', packet: arpRequest('10.0.0.100'), reason: 'drop_lease', action: XDP_DROP, lease: 'expired' },
  { name: 'without a registered interface MAC the answer is dropped, never sent from a wrong MAC', packet: arpRequest('10.0.0.100'), reason: 'drop_no_iface', action: XDP_DROP, ingress: 'missing' },
  { name: 'an ARP request keeps its padding and VLAN tag in the reply', packet: arpRequest('10.0.0.100', CLIENT4, { eth: { dst: 'ff:ff:ff:ff:ff:ff', src: CLIENT_MAC, vlans: [{ vid: 7 }] }, payload: 18 }), reason: 'tx_arp_reply', action: XDP_TX,
    out: () => buildFrame({ eth: { dst: CLIENT_MAC, src: IFACE_MAC, vlans: [{ vid: 7 }] }, l3: { family: 'arp', op: 2, senderMac: VMAC, senderIp: '10.0.0.100', targetMac: CLIENT_MAC, targetIp: CLIENT4 }, payload: 18 }) },
  { name: 'an ARP reply to a VIP passes on every node, VMAC destination rewritten', packet: withEth(arpRequest('10.0.0.101', CLIENT4, { l3: { family: 'arp', op: 2, senderMac: CLIENT_MAC, senderIp: CLIENT4, targetIp: '10.0.0.101' } }), VMAC), reason: 'pass_control', action: XDP_PASS, lease: 'expired',
    out: (f) => macsSwapped(f, IFACE_MAC, CLIENT_MAC) },
  { name: 'an ARP of another hardware type is not looked at', packet: buildFrame(arpRequest('10.0.0.100')).map((b, i) => (i === 15 ? 6 : b)), reason: 'pass_not_vip', action: XDP_PASS },
  { name: 'a truncated ARP is not looked at', packet: truncate(buildFrame(arpRequest('10.0.0.100')), 14 + 27), reason: 'pass_not_vip', action: XDP_PASS },
  { name: 'an ARP of another opcode (RARP 3) is not looked at', packet: arpRequest('10.0.0.100', CLIENT4, { l3: { family: 'arp', op: 3, senderMac: CLIENT_MAC, senderIp: CLIENT4, targetIp: '10.0.0.100' } }), reason: 'pass_not_vip', action: XDP_PASS },

  // §8 IPv6 neighbour solicitation
  { name: 'vmac_invisible: an NS with a source link-layer option is answered by an NA with the VMAC', packet: ns('2001:db8::100'), reason: 'tx_arp_reply', action: XDP_TX, out: () => naFor('2001:db8::100', VMAC) },
  { name: 'an NS without options is answered: the frame grows by 8 bytes', packet: ns('2001:db8::100', { slla: false }), reason: 'tx_arp_reply', action: XDP_TX, out: () => naFor('2001:db8::100', VMAC) },
  { name: 'an NS with trailing bytes is answered: the frame shrinks to the NA', packet: { ...ns('2001:db8::100'), payload: new Uint8Array([...buildFrame(ns('2001:db8::100')).slice(14 + 48), 9, 9, 9, 9, 9, 9, 9, 9]) }, reason: 'tx_arp_reply', action: XDP_TX, out: () => naFor('2001:db8::100', VMAC) },
  { name: 'a unicast NS to the VIP itself (NUD) is answered', packet: ns('2001:db8::100', { dst: '2001:db8::100' }), reason: 'tx_arp_reply', action: XDP_TX, out: () => naFor('2001:db8::100', VMAC) },
  { name: 'an NS under a VLAN tag is answered under the same tag', packet: ns('2001:db8::100', { vlans: [{ vid: 9 }] }), reason: 'tx_arp_reply', action: XDP_TX, out: () => naFor('2001:db8::100', VMAC, [{ vid: 9 }]) },
  { name: 'vmac_directed with an arp rule: the owner answers the NS with its own MAC', packet: ns('2001:db8::110'), reason: 'tx_arp_reply', action: XDP_TX, out: () => naFor('2001:db8::110', IFACE_MAC) },
  { name: 'vmac_directed with an arp rule: a node that does not own the requester ignores the NS', packet: ns('2001:db8::111'), reason: 'drop_arp_not_mine', action: XDP_DROP },
  { name: 'an NS from :: (duplicate address detection) is never answered', packet: ns('2001:db8::100', { src: '::' }), reason: 'drop_arp_dad', action: XDP_DROP },
  { name: 'an NS with hop limit 64 is invalid and dropped', packet: ns('2001:db8::100', { hopLimit: 64 }), reason: 'drop_malformed', action: XDP_DROP },
  { name: 'an NS with code 1 is invalid and dropped', packet: ns('2001:db8::100', { code: 1 }), reason: 'drop_malformed', action: XDP_DROP },
  { name: 'an NS for a VIP sent to an unrelated multicast group is left to the kernel', packet: ns('2001:db8::100', { dst: 'ff02::1' }), reason: 'pass_not_vip', action: XDP_PASS },
  { name: 'an NS for a non-VIP target sent to a VIP passes as control', packet: ns('2001:db8::5', { dst: '2001:db8::100' }), reason: 'pass_control', action: XDP_PASS },
  { name: 'an NS for a VIP is not answered once the lease ran out', packet: ns('2001:db8::100'), reason: 'drop_lease', action: XDP_DROP, lease: 'expired' },
  { name: 'an NS truncated inside its target to the solicited-node group passes untouched', packet: truncate(buildFrame(ns('2001:db8::100')), 14 + 40 + 20), reason: 'pass_not_vip', action: XDP_PASS },

  // §9 vmac_invisible destination rewrite
  { name: 'vmac_invisible: an owned frame to the VMAC is passed to the interface MAC', packet: withEth(v4('10.0.0.100', tcp(80)), VMAC), reason: 'pass_owned', action: XDP_PASS, out: (f) => macsSwapped(f, IFACE_MAC, CLIENT_MAC) },
  { name: 'vmac_invisible: an owned frame to the node\'s own MAC is left alone', packet: withEth(v4('10.0.0.100', tcp(80)), IFACE_MAC), reason: 'pass_owned', action: XDP_PASS },
  { name: 'vmac_invisible: a frame to the VMAC owned by another node is dropped', packet: withEth(v4('10.0.0.100', tcp(81)), VMAC), reason: 'drop_not_owned', action: XDP_DROP },
  { name: 'vmac_invisible: a later fragment to the VMAC is rewritten too', packet: withEth(v4('10.0.0.100', undefined, { ip: { fragOffset: 3, protocol: 6 } }), VMAC), reason: 'pass_fragment', action: XDP_PASS, out: (f) => macsSwapped(f, IFACE_MAC, CLIENT_MAC) },
  { name: 'vmac_invisible: without a registered interface MAC the VMAC frame passes unchanged', packet: withEth(v4('10.0.0.100', tcp(80)), VMAC), reason: 'pass_owned', action: XDP_PASS, ingress: 'missing' },
  { name: 'vmac_directed: a frame to the VMAC is not rewritten', packet: withEth(v4('10.0.0.110', tcp(81)), VMAC), reason: 'pass_owned', action: XDP_PASS },

  // §9 vmac_directed forwarding
  { name: 'vmac_directed: a packet another node owns is sent on to its MAC, from the interface MAC', packet: withEth(v4('10.0.0.110', tcp(80)), IFACE_MAC), reason: 'tx_forward', action: XDP_TX, out: (f) => macsSwapped(f, NODE_MACS[OTHER]!, IFACE_MAC) },
  { name: 'vmac_directed: a frame coming from a farm node is never forwarded again', packet: withEth(v4('10.0.0.110', tcp(80)), IFACE_MAC, NODE_MACS[0]!), reason: 'drop_not_owned', action: XDP_DROP },
  { name: 'vmac_directed: a frame from a node, owned here, is accepted', packet: withEth(v4('10.0.0.110', tcp(81)), IFACE_MAC, NODE_MACS[OTHER]!), reason: 'pass_owned', action: XDP_PASS },
  { name: 'vmac_directed: an unowned bucket is dropped, not forwarded', packet: withEth(v4('10.0.0.110', tcp(82)), IFACE_MAC), reason: 'drop_not_owned', action: XDP_DROP },
  { name: 'vmac_directed: a node whose lease ran out does not forward', packet: withEth(v4('10.0.0.110', tcp(80)), IFACE_MAC), reason: 'drop_lease', action: XDP_DROP, lease: 'expired' },
  { name: 'vmac_directed: without a registered interface MAC nothing is forwarded', packet: withEth(v4('10.0.0.110', tcp(80)), IFACE_MAC), reason: 'drop_no_iface', action: XDP_DROP, ingress: 'missing' },
  { name: 'vmac_directed: ICMP echo goes to the owner of the source address', packet: withEth(v4('10.0.0.110', { proto: 'icmp', type: 8 }), IFACE_MAC), reason: 'tx_forward', action: XDP_TX, out: (f) => macsSwapped(f, NODE_MACS[OTHER]!, IFACE_MAC) },
  { name: 'vmac_directed: IPv6 to another node\'s bucket is forwarded', packet: withEth(v6('2001:db8::110', tcp(80)), IFACE_MAC), reason: 'tx_forward', action: XDP_TX, out: (f) => macsSwapped(f, NODE_MACS[OTHER]!, IFACE_MAC) },

  // §10 ICMP errors
  { name: 'an ICMP error quoting an owned TCP flow (on_addr: the quoted destination) passes as owned', packet: icmpError('10.0.0.100', { proto: 'tcp', vipPort: 80 }), reason: 'pass_owned', action: XDP_PASS },
  { name: 'an ICMP error quoting another node\'s TCP flow is dropped (vmac_invisible)', packet: icmpError('10.0.0.100', { proto: 'tcp', vipPort: 81 }), reason: 'drop_not_owned', action: XDP_DROP },
  { name: 'an ICMP error quoting an on_port UDP flow is decided by the quoted destination port', packet: icmpError('10.0.0.101', { proto: 'udp', vipPort: 53 }), reason: 'pass_owned', action: XDP_PASS },
  { name: 'an ICMP error quoting an on_port TCP flow another node owns is dropped', packet: icmpError('10.0.0.101', { proto: 'tcp', vipPort: 443 }), reason: 'drop_not_owned', action: XDP_DROP },
  { name: 'vmac_directed: an ICMP error for another node\'s flow is forwarded to it', packet: withEth(icmpError('10.0.0.110', { proto: 'tcp', vipPort: 80 }), IFACE_MAC), reason: 'tx_forward', action: XDP_TX, out: (f) => macsSwapped(f, NODE_MACS[OTHER]!, IFACE_MAC) },
  { name: 'an ICMPv6 error quoting an owned flow passes as owned', packet: icmpError('2001:db8::100', { proto: 'udp', vipPort: 9 }), reason: 'pass_owned', action: XDP_PASS },
  { name: 'vmac_directed: an ICMPv6 error for another node\'s flow is forwarded to it', packet: withEth(icmpError('2001:db8::110', { proto: 'tcp', vipPort: 80 }), IFACE_MAC), reason: 'tx_forward', action: XDP_TX, out: (f) => macsSwapped(f, NODE_MACS[OTHER]!, IFACE_MAC) },
  { name: 'an ICMP error whose flow is balanced on_ipid passes on every node', packet: icmpError('10.0.0.100', { proto: 'udp', vipPort: 5353 }), reason: 'pass_control', action: XDP_PASS },
  { name: 'an ICMP error whose flow no rule covers passes on every node', packet: icmpError('10.0.0.101', { proto: 'tcp', vipPort: 22 }), reason: 'pass_control', action: XDP_PASS },
  { name: 'an ICMP error quoting a packet from another address passes on every node', packet: icmpError('10.0.0.100', { proto: 'tcp', vipPort: 80, from: '10.0.0.101' }), reason: 'pass_control', action: XDP_PASS },
  { name: 'an ICMP error with a quote cut inside the ports passes on every node', packet: icmpError('10.0.0.100', { proto: 'tcp', vipPort: 80 }, 20 + 7), reason: 'pass_control', action: XDP_PASS },
  { name: 'an ICMPv6 error with a quote cut inside the IPv6 header passes on every node', packet: icmpError('2001:db8::100', { proto: 'tcp', vipPort: 80 }, 30), reason: 'pass_control', action: XDP_PASS },
  { name: 'an unparseable ICMP error to the VMAC passes with the destination rewritten', packet: withEth(icmpError('10.0.0.100', { proto: 'tcp', vipPort: 80 }, 10), VMAC), reason: 'pass_control', action: XDP_PASS, out: (f) => macsSwapped(f, IFACE_MAC, CLIENT_MAC) },
];

describe('VMAC modes in the data path model (docs/datapath.md §8–10)', () => {
  for (const r of VM_ROWS) {
    it(r.name, () => {
      const frame = r.packet instanceof Uint8Array ? r.packet : buildFrame(r.packet);
      const deadline = r.lease === 'expired' ? 0n : LEASE_FOREVER;
      const d = decide(frame, VM, deadline, 1_000_000n, r.ingress === 'missing' ? {} : INGRESS);
      expect({ reason: d.reason, action: d.action }).toEqual({ reason: r.reason, action: r.action });
      expect(toHex(d.frame)).toBe(toHex(r.out ? r.out(frame) : frame));
    });
  }

  it('gives a neighbour advertisement a valid ICMPv6 checksum over the pseudo-header', () => {
    const d = decide(buildFrame(ns('2001:db8::100', { slla: false })), VM, LEASE_FOREVER, 0n, INGRESS);
    const icmp = d.frame.slice(14 + 40);
    const pseudo = new Uint8Array(40);
    pseudo.set(parseIp('2001:db8::100').bytes, 0);
    pseudo.set(parseIp(CLIENT6).bytes, 16);
    pseudo[35] = icmp.length;
    pseudo[39] = 58;
    expect(inetChecksum(pseudo, icmp)).toBe(0);
    expect(d.frame.length).toBe(14 + 40 + 32);
  });

  it('counts an answered ARP as accepted and one left to another node as dropped in the arp bucket', async () => {
    const dp = new ModelDataplane();
    await dp.apply(VM);
    await dp.setLease(LEASE_FOREVER);
    dp.setInterfaceMac(1, IFACE_MAC);
    const mine = dp.process(buildFrame(arpRequest('10.0.0.112')), 0n);
    const theirs = dp.process(buildFrame(arpRequest('10.0.0.111', '192.0.2.99')), 0n);
    const fwd = dp.process(buildFrame(withEth(v4('10.0.0.110', tcp(80)), IFACE_MAC)), 0n);
    const buckets = await dp.bucketCounters();
    expect(buckets[mine.group!]![mine.bucket!]!.accepted).toBe(1n);
    expect(buckets[theirs.group!]![theirs.bucket!]!.dropped).toBe(1n);
    expect(fwd.reason).toBe('tx_forward');
    expect(buckets[fwd.group!]![fwd.bucket!]!.dropped).toBe(1n);
    expect((await dp.reasonCounters()).tx_arp_reply.packets).toBe(1n);
  });

  it('records every requester of an ARP/NS for a VIP, whoever answers, but not probes', async () => {
    const dp = new ModelDataplane();
    await dp.apply(VM);
    await dp.setLease(0n); // lease out: nobody answers, the requesters are still recorded
    dp.process(buildFrame(arpRequest('10.0.0.111', '192.0.2.77')), 5n);
    dp.process(buildFrame(ns('2001:db8::110')), 6n);
    dp.process(buildFrame(arpRequest('10.0.0.100', '0.0.0.0')), 7n);
    dp.process(buildFrame(arpRequest('10.0.0.1', '192.0.2.78')), 8n);
    const got = (await dp.requesters()).sort((a, b) => a.family - b.family);
    expect(got).toEqual([
      { family: 4, addr: '192.0.2.77', mac: CLIENT_MAC, group: 1, bucket: bucketOf(parseIp('192.0.2.77').bytes, VM.hashSeed), vipId: 3, lastSeenNs: 5n },
      { family: 6, addr: CLIENT6, mac: CLIENT_MAC, group: 0, bucket: bucketOf(parseIp(CLIENT6).bytes, VM.hashSeed), vipId: 6, lastSeenNs: 6n },
    ]);
  });
});

describe('tc egress rewrite model (docs/datapath.md §11)', () => {
  const kernelNs = (vipAddr: string, client: string, mac = IFACE_MAC): Uint8Array =>
    buildFrame({ ...neighbourSolicitation({ src: vipAddr, srcMac: mac, target: client }) });
  const kernelNa = (vipAddr: string, client: string, mac = IFACE_MAC): Uint8Array =>
    buildFrame(neighbourAdvertisement({ target: vipAddr, dst: client, ethDst: CLIENT_MAC, ethSrc: mac, mac }));
  const optMac = (f: Uint8Array): string => formatMac(f.subarray(14 + 40 + 24 + 2, 14 + 40 + 32));
  const validChecksum = (f: Uint8Array): boolean => {
    const pseudo = new Uint8Array(40);
    pseudo.set(f.subarray(14 + 8, 14 + 40), 0);
    const icmp = f.subarray(14 + 40);
    pseudo[34] = icmp.length >> 8;
    pseudo[35] = icmp.length & 0xff;
    pseudo[39] = 58;
    return inetChecksum(pseudo, icmp) === 0;
  };

  it('vmac_invisible: the kernel\'s NS from a VIP announces the VMAC, checksum still valid', () => {
    const out = egressRewrite(kernelNs('2001:db8::100', CLIENT6), VM);
    expect(optMac(out)).toBe(VMAC);
    expect(validChecksum(out)).toBe(true);
    expect(formatMac(out.subarray(6, 12))).toBe(IFACE_MAC); // the Ethernet source stays the node's
  });

  it('vmac_invisible: the kernel\'s NA from a VIP announces the VMAC', () => {
    const out = egressRewrite(kernelNa('2001:db8::100', CLIENT6), VM);
    expect(optMac(out)).toBe(VMAC);
    expect(validChecksum(out)).toBe(true);
  });

  it('vmac_directed with an arp rule: the NS announces the arp-owner of the solicited client', () => {
    const out = egressRewrite(kernelNs('2001:db8::111', CLIENT6), VM);
    expect(optMac(out)).toBe(NODE_MACS[OTHER]);
    expect(validChecksum(out)).toBe(true);
  });

  it('leaves alone: NS from a non-VIP, directed without arp rule, IPv6 other than ND, and the MAC already right', () => {
    const f1 = kernelNs('2001:db8::5', CLIENT6);
    expect(egressRewrite(f1, VM)).toBe(f1);
    const noArp: DataplaneTables = { ...VM, vips: VM.vips.map((v) => (v.id === 8 ? { ...v, arpGroup: GROUP_NONE } : v)) };
    const f2 = kernelNs('2001:db8::111', CLIENT6);
    expect(egressRewrite(f2, noArp)).toBe(f2);
    const f3 = buildFrame(v6(CLIENT6, tcp(80), { ip: { src: '2001:db8::100' } }));
    expect(egressRewrite(f3, VM)).toBe(f3);
    const f4 = kernelNs('2001:db8::100', CLIENT6, VMAC);
    expect(egressRewrite(f4, VM)).toBe(f4);
  });
});
