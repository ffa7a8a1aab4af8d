// The reference data plane in TypeScript: the steps of docs/datapath.md §0–12 over the
// semantic tables. bpf/farmlb.bpf.c reaches the same answers by a cheaper route (a VIP
// index with per-VIP descriptors, the rule precedence resolved in advance: docs/datapath.md
// §7); the model keeps
// the semantic form, and the precedence itself is rule-table.ts's winningRule for both. test/bpf/differential.test.ts runs both
// on the same packets and requires the same verdict, output frame, reason, group and
// bucket. Tests of the daemon, membership and CLI use ModelDataplane where no kernel is
// available. Keep every branch here in step with the program: a difference is a bug in
// one of them, and the differential test says which packet shows it.

import { bucketOf } from '../balance/hash.js';
import { FarmlbError } from '../errors.js';
import { formatAddr, formatMac, MAX_GROUPS, MAX_NODES, parseMac } from './abi.js';
import { validateBuckets } from './map-entries.js';
import { ruleLookup, winningRule, type RuleLookup } from './rule-table.js';
import {
  CriterionId,
  NBUCKETS,
  NODE_NONE,
  REASONS,
  XDP_DROP,
  XDP_PASS,
  XDP_TX,
  GROUP_NONE,
  type BucketCounter,
  type BucketRows,
  type CompiledVip,
  type Dataplane,
  type DataplaneTables,
  type PacketDecision,
  type Reason,
  type ReasonCounter,
  type Requester,
} from './types.js';

// Mirrors of bpf/farmlb_parse.h (semantics, not tunables).
/** FARMLB_VLAN_MAX_DEPTH */
export const VLAN_MAX_DEPTH = 2;
/** FARMLB_IPV6_EXT_MAX */
export const IPV6_EXT_MAX = 6;
const IPV6_EXT_MIN_LEN = 8;
const ICMP_MIN_LEN = 4;

const ETH_HLEN = 14;
const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const ETH_P_8021Q = 0x8100;
const ETH_P_8021AD = 0x88a8;
const ETH_P_ARP = 0x0806;

const IPPROTO_HOPOPTS = 0;
const IPPROTO_ICMP = 1;
const IPPROTO_TCP = 6;
/** TCP flag bits (byte 13 of the header): a SYN without ACK opens a connection. */
const TCP_SYN = 0x02;
const TCP_ACK = 0x10;
const IPPROTO_UDP = 17;
const IPPROTO_ROUTING = 43;
const IPPROTO_FRAGMENT = 44;
const IPPROTO_AH = 51;
const IPPROTO_ICMPV6 = 58;
const IPPROTO_DSTOPTS = 60;

const ICMP_ECHO_REQUEST = 8;
const ICMPV6_ECHO_REQUEST = 128;
const ICMP_ERROR_TYPES = new Set([3, 11, 12]); // unreachable, time exceeded, parameter problem
const ICMPV6_ERROR_TYPES = new Set([1, 2, 3, 4]);
const ICMPV6_ND_TYPES = new Set([133, 134, 135, 136, 137]);
const ICMPV6_NS = 135;
const ICMPV6_NA = 136;
/** FARMLB_ICMP_ERR_HLEN / FARMLB_QUOTED_L4_LEN */
const ICMP_ERR_HLEN = 8;
const QUOTED_L4_LEN = 8;
/** struct farmlb_nd_msg, struct farmlb_na */
const ND_MSG_LEN = 24;
const NA_LEN = 32;
const ND_HOP_LIMIT = 255;
const ND_OPT_SLLA = 1;
const ND_OPT_TLLA = 2;
const NA_FLAGS_SO = 0x60;
const ARP_LEN = 28;

/** Lookup structures for one DataplaneTables, built once per tables object. */
interface TableIndex {
  vips: Map<string, CompiledVip>;
  /** The semantic rules; the precedence over them is rule-table.ts's winningRule. */
  rules: RuleLookup;
  /** Known node MACs (lowercase text) → node id: farmlb_node_macs. */
  nodeByMac: Map<string, number>;
  vmac: Uint8Array;
}

export { MAX_GROUPS };

const indexes = new WeakMap<DataplaneTables, TableIndex>();

function vipKey(family: 4 | 6, addr: Uint8Array): string {
  let s = `${family}:`;
  for (const b of addr) s += b.toString(16).padStart(2, '0');
  return s;
}

function indexOf(tables: DataplaneTables): TableIndex {
  let idx = indexes.get(tables);
  if (!idx) {
    idx = { vips: new Map(), rules: ruleLookup(tables.rules), nodeByMac: new Map(), vmac: parseMac(tables.vmac) };
    for (const vip of tables.vips) {
      // The key holds 16 bytes; an IPv4 VIP matches on its first four (the rest are zero).
      const bytes = vip.family === 4 ? vip.addrBytes.subarray(0, 4) : vip.addrBytes.subarray(0, 16);
      idx.vips.set(vipKey(vip.family, bytes), vip);
    }
    (tables.nodeMacs ?? []).forEach((mac, node) => {
      if (mac) idx!.nodeByMac.set(formatMac(parseMac(mac)), node);
    });
    indexes.set(tables, idx);
  }
  return idx;
}

function be16(frame: Uint8Array, at: number): number {
  return (frame[at]! << 8) | frame[at + 1]!;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function isIpv6Ext(nexthdr: number): boolean {
  return (
    nexthdr === IPPROTO_HOPOPTS ||
    nexthdr === IPPROTO_ROUTING ||
    nexthdr === IPPROTO_DSTOPTS ||
    nexthdr === IPPROTO_AH ||
    nexthdr === IPPROTO_FRAGMENT
  );
}

/** The EtherType after at most VLAN_MAX_DEPTH tags and the offset of what follows, or undefined for a truncated tag. */
function parseEthernet(frame: Uint8Array): { etherType: number; l3: number } | undefined {
  let etherType = be16(frame, 12);
  let off = ETH_HLEN;
  for (let i = 0; i < VLAN_MAX_DEPTH; i++) {
    if (etherType !== ETH_P_8021Q && etherType !== ETH_P_8021AD) break;
    if (off + 4 > frame.length) return undefined;
    etherType = be16(frame, off + 2);
    off += 4;
  }
  return { etherType, l3: off };
}

/** What was read from a VIP packet's network header. */
interface NetworkHeader {
  family: 4 | 6;
  vip: CompiledVip;
  proto: number;
  /** Offset of the transport header. */
  l4: number;
  saddr: Uint8Array;
  ipid?: Uint8Array;
}

type ParseOutcome = NetworkHeader | 'not_vip' | 'malformed' | { fragment: CompiledVip };

function parseNetwork(frame: Uint8Array, etherType: number, off: number, idx: TableIndex): ParseOutcome {
  const len = frame.length;
  if (etherType === ETH_P_IP) {
    if (off + 20 > len) return 'not_vip';
    const vip = idx.vips.get(vipKey(4, frame.subarray(off + 16, off + 20)));
    if (!vip) return 'not_vip';
    const version = frame[off]! >> 4;
    const ihl = frame[off]! & 0x0f;
    if (version !== 4 || ihl < 5) return 'malformed';
    if (off + ihl * 4 > len) return 'malformed';
    if ((be16(frame, off + 6) & 0x1fff) !== 0) return { fragment: vip };
    return {
      family: 4,
      vip,
      proto: frame[off + 9]!,
      l4: off + ihl * 4,
      saddr: frame.slice(off + 12, off + 16),
      ipid: frame.slice(off + 4, off + 6),
    };
  }

  if (etherType === ETH_P_IPV6) {
    if (off + 40 > len) return 'not_vip';
    const vip = idx.vips.get(vipKey(6, frame.subarray(off + 24, off + 40)));
    if (!vip) return 'not_vip';
    if (frame[off]! >> 4 !== 6) return 'malformed';
    let nexthdr = frame[off + 6]!;
    let pos = off + 40;
    for (let i = 0; i < IPV6_EXT_MAX; i++) {
      if (!isIpv6Ext(nexthdr)) break;
      if (pos + IPV6_EXT_MIN_LEN > len) return 'malformed';
      if (nexthdr === IPPROTO_FRAGMENT) {
        if ((be16(frame, pos + 2) & 0xfff8) !== 0) return { fragment: vip };
        nexthdr = frame[pos]!;
        pos += 8;
        continue;
      }
      const hdrlen = frame[pos + 1]!;
      const extLen = nexthdr === IPPROTO_AH ? (hdrlen + 2) * 4 : (hdrlen + 1) * 8;
      if (pos + extLen > len) return 'malformed';
      nexthdr = frame[pos]!;
      pos += extLen;
    }
    if (isIpv6Ext(nexthdr)) return 'malformed';
    return { family: 6, vip, proto: nexthdr, l4: pos, saddr: frame.slice(off + 8, off + 24) };
  }

  return 'not_vip';
}

/** Where the frame came in: what the program reads from farmlb_ifaces[ingress_ifindex]. */
export interface Ingress {
  /** MAC of the receiving interface (6 bytes); undefined = the daemon has not registered it. */
  ifaceMac?: Uint8Array;
}

/**
 * The node's TCP sockets as the program's bpf_skc_lookup_tcp sees them (docs/datapath.md §12):
 * does a socket for this client → VIP flow exist that is neither a listener nor in TIME_WAIT?
 * Addresses are wire-order bytes (4 or 16), ports host order.
 */
export interface ConnectionTable {
  holds(family: 4 | 6, client: Uint8Array, clientPort: number, vip: Uint8Array, vipPort: number): boolean;
}

/** No sockets at all: what a namespace without the VIP's connections answers. */
export const NO_CONNECTIONS: ConnectionTable = { holds: () => false };

/** What the quoted packet of an ICMP error says about the flow it belongs to (docs/datapath.md §10). */
interface QuotedFlow {
  proto: 6 | 17;
  /** Quoted source port = the VIP's port. */
  vipPort: number;
  /** Quoted destination = the client: its address and port, wire order. */
  clientAddr: Uint8Array;
  clientPort: Uint8Array;
}

function quotedFlow(frame: Uint8Array, net: NetworkHeader): QuotedFlow | undefined {
  const q = net.l4 + ICMP_ERR_HLEN;
  const len = frame.length;
  let proto: number;
  let ports: number;
  let daddr: Uint8Array;
  if (net.family === 4) {
    if (q + 20 > len) return undefined;
    const ihl = frame[q]! & 0x0f;
    if (frame[q]! >> 4 !== 4 || ihl < 5 || (be16(frame, q + 6) & 0x1fff) !== 0) return undefined;
    proto = frame[q + 9]!;
    if (!bytesEqual(frame.subarray(q + 12, q + 16), net.vip.addrBytes.subarray(0, 4))) return undefined;
    daddr = frame.slice(q + 16, q + 20);
    ports = q + ihl * 4;
  } else {
    ports = q + 40;
    if (ports + QUOTED_L4_LEN > len) return undefined;
    if (frame[q]! >> 4 !== 6) return undefined;
    proto = frame[q + 6]!;
    if (!bytesEqual(frame.subarray(q + 8, q + 24), net.vip.addrBytes)) return undefined;
    daddr = frame.slice(q + 24, q + 40);
  }
  if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) return undefined;
  if (ports + QUOTED_L4_LEN > len) return undefined;
  return { proto, vipPort: be16(frame, ports), clientAddr: daddr, clientPort: frame.slice(ports + 2, ports + 4) };
}

const isDirected = (vip: CompiledVip): boolean => vip.mode === 'vmac_directed';

/** §9: a frame passed for a VIP in vmac_invisible and sent to the VMAC gets the interface's MAC as destination. */
function vmacToIface(frame: Uint8Array, vip: CompiledVip, idx: TableIndex, ingress: Ingress): Uint8Array {
  if (isDirected(vip) || !ingress.ifaceMac || !bytesEqual(frame.subarray(0, 6), idx.vmac)) return frame;
  const out = frame.slice();
  out.set(ingress.ifaceMac.subarray(0, 6), 0);
  return out;
}

/** The ARP/NS answer decision of §8, shared by both families. */
interface SolicitOutcome {
  decision: PacketDecision;
  /** Set when this node answers. */
  announce?: Uint8Array;
  link?: Uint8Array;
}

function solicit(
  frame: Uint8Array,
  tables: DataplaneTables,
  idx: TableIndex,
  vip: CompiledVip,
  family: 4 | 6,
  reqAddr: Uint8Array,
  leaseValid: boolean,
  ingress: Ingress,
): SolicitOutcome {
  const bucket = bucketOf(reqAddr, tables.hashSeed);
  const group = isDirected(vip) ? vip.arpGroup : vip.icmpGroup;
  const addr16 = new Uint8Array(16);
  addr16.set(reqAddr);
  const requester = { family, addr: formatAddr(family, addr16), mac: formatMac(frame.subarray(6, 12)), group, bucket, vipId: vip.id };
  const plain = (action: number, reason: Reason): SolicitOutcome => ({ decision: { action, reason, frame, requester } });

  if (!leaseValid) return plain(XDP_DROP, 'drop_lease');
  let withBucket: Partial<PacketDecision> = {};
  if (!(isDirected(vip) && group === GROUP_NONE)) {
    if (group >= MAX_GROUPS) return plain(XDP_DROP, 'drop_no_rule');
    const owner = tables.buckets[group]?.[bucket] ?? NODE_NONE;
    withBucket = { group, bucket, owner };
    if (owner === NODE_NONE || owner !== tables.selfNode)
      return { decision: { action: XDP_DROP, reason: 'drop_arp_not_mine', frame, requester, ...withBucket } };
  }
  if (!ingress.ifaceMac) return plain(XDP_DROP, 'drop_no_iface');
  const link = ingress.ifaceMac.subarray(0, 6);
  return {
    decision: { action: XDP_TX, reason: 'tx_arp_reply', frame, requester, ...withBucket },
    // The VMAC is only ever announced, never an Ethernet source.
    announce: isDirected(vip) ? link : idx.vmac,
    link,
  };
}

function decideArp(
  frame: Uint8Array,
  off: number,
  tables: DataplaneTables,
  idx: TableIndex,
  leaseValid: boolean,
  ingress: Ingress,
): PacketDecision {
  const notVip: PacketDecision = { action: XDP_PASS, reason: 'pass_not_vip', frame };
  if (off + ARP_LEN > frame.length) return notVip;
  if (be16(frame, off) !== 1 || be16(frame, off + 2) !== ETH_P_IP || frame[off + 4] !== 6 || frame[off + 5] !== 4) return notVip;
  const op = be16(frame, off + 6);
  if (op !== 1 && op !== 2) return notVip;
  const spa = frame.slice(off + 14, off + 18);
  const tpa = frame.slice(off + 24, off + 28);
  const vip = idx.vips.get(vipKey(4, tpa));
  if (!vip) return notVip;
  if (op === 2) return { action: XDP_PASS, reason: 'pass_control', frame: vmacToIface(frame, vip, idx, ingress) };
  if (spa.every((b) => b === 0)) return { action: XDP_DROP, reason: 'drop_arp_dad', frame };
  const { decision, announce, link } = solicit(frame, tables, idx, vip, 4, spa, leaseValid, ingress);
  if (!announce || !link) return decision;
  const out = frame.slice();
  out.set(frame.subarray(6, 12), 0); // to the requester
  out.set(link, 6);
  out[off + 6] = 0;
  out[off + 7] = 2; // reply
  out.set(announce, off + 8); // sender hardware: the MAC the VIP is at
  out.set(tpa, off + 14); // sender protocol: the VIP
  out.set(frame.subarray(off + 8, off + 14), off + 18); // target hardware: the requester
  out.set(spa, off + 24);
  return { ...decision, frame: out };
}

function isSolicitedNodeOf(dst: Uint8Array, target: Uint8Array): boolean {
  const prefix = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff];
  return prefix.every((b, i) => dst[i] === b) && dst[13] === target[13] && dst[14] === target[14] && dst[15] === target[15];
}

/**
 * §8, IPv6: a neighbour solicitation for a VIP right after the fixed header. undefined when
 * the frame is not one (the ordinary path decides it).
 */
function decideNs(
  frame: Uint8Array,
  off: number,
  tables: DataplaneTables,
  idx: TableIndex,
  leaseValid: boolean,
  ingress: Ingress,
): PacketDecision | undefined {
  const icmp = off + 40;
  if (icmp + 1 > frame.length || frame[off]! >> 4 !== 6 || frame[off + 6] !== IPPROTO_ICMPV6 || frame[icmp] !== ICMPV6_NS)
    return undefined;
  if (icmp + ND_MSG_LEN > frame.length) return undefined;
  const target = frame.slice(icmp + 8, icmp + 24);
  const vip = idx.vips.get(vipKey(6, target));
  if (!vip) return undefined;
  const dst = frame.subarray(off + 24, off + 40);
  if (!bytesEqual(dst, target) && !isSolicitedNodeOf(dst, target)) return undefined;
  if (frame[off + 7] !== ND_HOP_LIMIT || frame[icmp + 1] !== 0) return { action: XDP_DROP, reason: 'drop_malformed', frame };
  const src = frame.slice(off + 8, off + 24);
  if (src.every((b) => b === 0)) return { action: XDP_DROP, reason: 'drop_arp_dad', frame };
  const { decision, announce, link } = solicit(frame, tables, idx, vip, 6, src, leaseValid, ingress);
  if (!announce || !link) return decision;

  // The advertisement, in place: the frame is resized to exactly l3 + 40 + 32 bytes.
  const out = new Uint8Array(icmp + NA_LEN);
  out.set(frame.subarray(0, Math.min(frame.length, out.length)));
  out.set(frame.subarray(6, 12), 0);
  out.set(link, 6);
  out[off + 4] = 0;
  out[off + 5] = NA_LEN;
  out[off + 6] = IPPROTO_ICMPV6;
  out[off + 7] = ND_HOP_LIMIT;
  out.set(target, off + 8); // from the VIP
  out.set(src, off + 24); // to the requester
  const na = new Uint8Array(NA_LEN);
  na[0] = ICMPV6_NA;
  na[4] = NA_FLAGS_SO;
  na.set(target, 8);
  na[24] = ND_OPT_TLLA;
  na[25] = 1;
  na.set(announce, 26);
  const csum = icmpv6Checksum(target, src, na);
  na[2] = csum >> 8;
  na[3] = csum & 0xff;
  out.set(na, icmp);
  return { ...decision, frame: out };
}

/** RFC 1071 sum of 16-bit big-endian words, folded (not inverted). */
function onesSum(parts: readonly Uint8Array[]): number {
  let sum = 0;
  for (const p of parts) for (let i = 0; i < p.length; i += 2) sum += (p[i]! << 8) | (p[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** ICMPv6 checksum of `body` (its checksum field zero) from src to dst (RFC 4443 §2.3). */
export function icmpv6Checksum(src: Uint8Array, dst: Uint8Array, body: Uint8Array): number {
  const pseudo = new Uint8Array(40);
  pseudo.set(src, 0);
  pseudo.set(dst, 16);
  pseudo[32] = (body.length >>> 24) & 0xff;
  pseudo[33] = (body.length >>> 16) & 0xff;
  pseudo[34] = (body.length >>> 8) & 0xff;
  pseudo[35] = body.length & 0xff;
  pseudo[39] = IPPROTO_ICMPV6;
  return ~onesSum([pseudo, body]) & 0xffff;
}

/**
 * The program's decision for one frame (docs/datapath.md). `tables` undefined = nothing
 * applied: every lookup misses. The lease is valid while nowNs < leaseDeadlineNs, as
 * `now < lease_deadline_ns` in the program. `ingress` is the receiving interface as
 * farmlb_ifaces knows it.
 */
export function decide(
  frame: Uint8Array,
  tables: DataplaneTables | undefined,
  leaseDeadlineNs: bigint,
  nowNs: bigint,
  ingress: Ingress = {},
  sockets: ConnectionTable = NO_CONNECTIONS,
): PacketDecision {
  const verdict = (action: number, reason: Reason): PacketDecision => ({ action, reason, frame });
  const malformed = (): PacketDecision => verdict(XDP_DROP, 'drop_malformed');
  const leaseValid = nowNs < leaseDeadlineNs;

  if (frame.length < ETH_HLEN || !tables) return verdict(XDP_PASS, 'pass_not_vip');
  const idx = indexOf(tables);
  const eth = parseEthernet(frame);
  if (!eth) return verdict(XDP_PASS, 'pass_not_vip');
  if (eth.etherType === ETH_P_ARP) return decideArp(frame, eth.l3, tables, idx, leaseValid, ingress);
  if (eth.etherType === ETH_P_IPV6 && eth.l3 + 40 <= frame.length) {
    const ns = decideNs(frame, eth.l3, tables, idx, leaseValid, ingress);
    if (ns) return ns;
  }
  const net = parseNetwork(frame, eth.etherType, eth.l3, idx);
  if (net === 'not_vip') return verdict(XDP_PASS, 'pass_not_vip');
  if (net === 'malformed') return malformed();
  if ('fragment' in net)
    return leaseValid
      ? { action: XDP_PASS, reason: 'pass_fragment', frame: vmacToIface(frame, net.fragment, idx, ingress) }
      : verdict(XDP_DROP, 'drop_lease');

  const { family, vip, proto, l4 } = net;
  const control = (): PacketDecision => ({ action: XDP_PASS, reason: 'pass_control', frame: vmacToIface(frame, vip, idx, ingress) });
  let group: number;
  let criterion: number;
  let addrBytes: Uint8Array = net.saddr;
  let sport: Uint8Array | undefined;
  // §12: what the handover rule needs: a TCP flow, a new connection, the VIP's port.
  let tcp = false;
  let syn = false;
  let vipPort = 0;

  if (proto === IPPROTO_TCP || proto === IPPROTO_UDP) {
    if (l4 + (proto === IPPROTO_TCP ? 20 : 8) > frame.length) return malformed();
    const dport = be16(frame, l4 + 2);
    sport = frame.slice(l4, l4 + 2);
    vipPort = dport;
    if (proto === IPPROTO_TCP) {
      tcp = true;
      syn = (frame[l4 + 13]! & (TCP_SYN | TCP_ACK)) === TCP_SYN;
    }
    // The semantic precedence (the program reads the same answer, precomputed, from the
    // resolved table XdpDataplane writes; test/unit/rule-table.test.ts holds them equal).
    const rule = winningRule(idx.rules, proto, vip.id, family, dport);
    if (!rule) return verdict(XDP_DROP, 'drop_no_rule');
    group = rule.group;
    criterion = rule.criterion;
  } else if ((proto === IPPROTO_ICMP && family === 4) || (proto === IPPROTO_ICMPV6 && family === 6)) {
    if (l4 + ICMP_MIN_LEN > frame.length) return malformed();
    const type = frame[l4]!;
    if (type === (family === 6 ? ICMPV6_ECHO_REQUEST : ICMP_ECHO_REQUEST)) {
      group = vip.icmpGroup;
      criterion = CriterionId.Addr;
    } else if ((family === 4 ? ICMP_ERROR_TYPES : ICMPV6_ERROR_TYPES).has(type)) {
      // §10: an error follows the flow it quotes; what cannot be tied to one passes everywhere.
      const q = quotedFlow(frame, net);
      if (!q) return control();
      const rule = winningRule(idx.rules, q.proto, vip.id, family, q.vipPort);
      if (!rule || rule.criterion === CriterionId.Ipid) return control();
      group = rule.group;
      criterion = rule.criterion;
      addrBytes = q.clientAddr;
      sport = q.clientPort;
      tcp = q.proto === IPPROTO_TCP;
      vipPort = q.vipPort;
    } else if (family === 6 && ICMPV6_ND_TYPES.has(type)) {
      if (type === ICMPV6_NS && l4 + ND_MSG_LEN > frame.length) return malformed();
      return control();
    } else {
      return verdict(XDP_DROP, 'drop_no_rule');
    }
  } else {
    return verdict(XDP_DROP, 'drop_no_rule');
  }

  // Steps 5 and 6: bucket and owner.
  if (group >= MAX_GROUPS) return verdict(XDP_DROP, 'drop_no_rule');
  let bytes: Uint8Array;
  if (criterion === CriterionId.Addr) bytes = addrBytes;
  else if (criterion === CriterionId.Port && sport) bytes = sport;
  else if (criterion === CriterionId.Ipid && net.ipid) bytes = net.ipid;
  else return verdict(XDP_DROP, 'drop_no_rule');

  const bucket = bucketOf(bytes, tables.hashSeed);
  const owner = tables.buckets[group]?.[bucket] ?? NODE_NONE;
  const prev = tables.prevOwners?.[group]?.[bucket] ?? NODE_NONE;
  const self = tables.selfNode;
  const withBucket = (action: number, reason: Reason, out = frame): PacketDecision => ({ action, reason, group, bucket, owner, frame: out });
  const pass = (reason: Reason): PacketDecision =>
    leaseValid ? withBucket(XDP_PASS, reason, vmacToIface(frame, vip, idx, ingress)) : withBucket(XDP_DROP, 'drop_lease');
  const holds = (): boolean => sockets.holds(family, addrBytes, be16(sport ?? new Uint8Array(2), 0), vip.addrBytes.subarray(0, family === 4 ? 4 : 16), vipPort);

  // §12, handover: a TCP connection's packets go to whichever of the two nodes holds it.
  let to = owner;
  let secondHop = false;
  let dropReason: Reason = 'drop_not_owned';
  const handover = prev !== NODE_NONE && prev !== owner && tcp && criterion !== CriterionId.Ipid;
  if (handover && self !== NODE_NONE && self === prev) {
    if (!syn && holds()) return pass('pass_handover_prev');
    dropReason = 'drop_handover';
  } else if (handover && self !== NODE_NONE && self === owner) {
    if (syn || holds()) return pass('pass_handover_new');
    dropReason = 'drop_handover';
    to = prev;
    secondHop = true;
  } else {
    if (handover && owner === NODE_NONE) to = prev;
    if (owner === self && owner !== NODE_NONE) return pass('pass_owned');
  }
  // §9, vmac_directed: another node's packet goes on to it, once (twice in a handover).
  if (!isDirected(vip) || to === NODE_NONE || to >= MAX_NODES) return withBucket(XDP_DROP, dropReason);
  if (!leaseValid) return withBucket(XDP_DROP, 'drop_lease');
  const toMac = tables.nodeMacs?.[to];
  if (!toMac) return withBucket(XDP_DROP, dropReason);
  const source = formatMac(frame.subarray(6, 12));
  if (secondHop ? source === formatMac(parseMac(toMac)) : idx.nodeByMac.has(source)) return withBucket(XDP_DROP, dropReason);
  if (!ingress.ifaceMac) return withBucket(XDP_DROP, 'drop_no_iface');
  const out = frame.slice();
  out.set(parseMac(toMac), 0);
  out.set(ingress.ifaceMac.subarray(0, 6), 6);
  return withBucket(XDP_TX, secondHop ? 'tx_forward_prev' : 'tx_forward', out);
}

/** struct farmlb_nd_msg + the option, behind an untagged Ethernet header: farmlb_egress's offsets. */
const EGRESS_ND = ETH_HLEN + 40;
const EGRESS_OPT = EGRESS_ND + ND_MSG_LEN;

/**
 * The tc egress program (bpf/farmlb_egress.bpf.c, docs/datapath.md §11): in a neighbour
 * solicitation / advertisement this node sends from an IPv6 VIP, the first option (source /
 * target link-layer address) announces the farm's MAC for the VIP instead of the node's:
 * the VMAC (vmac_invisible), the MAC of the arp-owner of the neighbour concerned (vmac_directed
 * with an arp rule). The checksum is updated incrementally (RFC 1624), as bpf_l4_csum_replace
 * does. Returns the frame itself when nothing changes.
 */
export function egressRewrite(frame: Uint8Array, tables: DataplaneTables | undefined): Uint8Array {
  if (!tables || frame.length < EGRESS_OPT + 8) return frame;
  if (be16(frame, 12) !== ETH_P_IPV6 || frame[ETH_HLEN + 6] !== IPPROTO_ICMPV6) return frame;
  const type = frame[EGRESS_ND]!;
  if (type !== ICMPV6_NS && type !== ICMPV6_NA) return frame;
  if (frame[EGRESS_OPT] !== (type === ICMPV6_NS ? ND_OPT_SLLA : ND_OPT_TLLA) || frame[EGRESS_OPT + 1] !== 1) return frame;
  const idx = indexOf(tables);
  const vip = idx.vips.get(vipKey(6, frame.subarray(ETH_HLEN + 8, ETH_HLEN + 24)));
  if (!vip) return frame;
  let mac: Uint8Array;
  if (!isDirected(vip)) {
    mac = idx.vmac;
  } else {
    if (vip.arpGroup >= MAX_GROUPS) return frame;
    const client = type === ICMPV6_NS ? frame.subarray(EGRESS_ND + 8, EGRESS_ND + 24) : frame.subarray(ETH_HLEN + 24, ETH_HLEN + 40);
    const owner = tables.buckets[vip.arpGroup]?.[bucketOf(client, tables.hashSeed)] ?? NODE_NONE;
    const ownerMac = owner < MAX_NODES ? tables.nodeMacs?.[owner] : undefined;
    if (!ownerMac) return frame;
    mac = parseMac(ownerMac);
  }
  const oldMac = frame.subarray(EGRESS_OPT + 2, EGRESS_OPT + 8);
  if (bytesEqual(oldMac, mac)) return frame;
  const out = frame.slice();
  out.set(mac, EGRESS_OPT + 2);
  // HC' = ~(~HC + ~m + m') over the three changed words (RFC 1624 eqn. 3).
  const csumAt = EGRESS_ND + 2;
  let sum = ~be16(frame, csumAt) & 0xffff;
  for (let i = 0; i < 6; i += 2) sum += (~be16(oldMac, i) & 0xffff) + be16(mac, i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const csum = ~sum & 0xffff;
  out[csumAt] = csum >> 8;
  out[csumAt + 1] = csum & 0xff;
  return out;
}

function zeroReasonCounters(): Record<Reason, ReasonCounter> {
  return Object.fromEntries(REASONS.map((r) => [r, { packets: 0n, bytes: 0n }])) as Record<Reason, ReasonCounter>;
}

function zeroBucketCounters(): BucketCounter[][] {
  return Array.from({ length: MAX_GROUPS }, () => Array.from({ length: NBUCKETS }, () => ({ accepted: 0n, dropped: 0n })));
}

/** A Dataplane kept in memory: tables, lease and counters, decided by `decide`. */
export class ModelDataplane implements Dataplane {
  private current: DataplaneTables | undefined;
  private leaseDeadlineNs = 0n;
  private reasons = zeroReasonCounters();
  private buckets = zeroBucketCounters();
  private requesterMap = new Map<string, Requester>();
  private ifaceMacs = new Map<number, Uint8Array>();
  private sockets: ConnectionTable = NO_CONNECTIONS;

  async apply(tables: DataplaneTables): Promise<void> {
    this.current = tables;
  }

  async applyBuckets(buckets: BucketRows, prevOwners?: BucketRows): Promise<void> {
    if (!this.current) throw new FarmlbError('FARMLB_E_DATAPLANE_TABLE_INVALID', { detail: 'buckets applied before any table' });
    validateBuckets(buckets, prevOwners);
    const { prevOwners: _old, ...rest } = this.current;
    this.current = { ...rest, buckets, ...(prevOwners ? { prevOwners } : {}) };
  }

  async setLease(deadlineNs: bigint): Promise<void> {
    this.leaseDeadlineNs = deadlineNs;
  }

  tables(): DataplaneTables | undefined {
    return this.current;
  }

  leaseDeadline(): bigint {
    return this.leaseDeadlineNs;
  }

  /** farmlb_ifaces: the MAC of an interface the program is attached to (null removes it). */
  setInterfaceMac(ifindex: number, mac: string | null): void {
    if (mac === null) this.ifaceMacs.delete(ifindex);
    else this.ifaceMacs.set(ifindex, parseMac(mac));
  }

  /** The node's sockets, as the program's socket lookup would find them (§12). */
  setConnections(sockets: ConnectionTable): void {
    this.sockets = sockets;
  }

  /**
   * Decide one frame as the program would at time nowNs, coming in on interface `ifindex`
   * (BPF_PROG_TEST_RUN uses the loopback device, 1), and count it as the program does.
   */
  process(frame: Uint8Array, nowNs: bigint, ifindex = 1): PacketDecision {
    const mac = this.ifaceMacs.get(ifindex);
    const decision = decide(frame, this.current, this.leaseDeadlineNs, nowNs, mac ? { ifaceMac: mac } : {}, this.sockets);
    const counter = this.reasons[decision.reason];
    counter.packets += 1n;
    counter.bytes += BigInt(frame.length);
    if (decision.group !== undefined && decision.bucket !== undefined) {
      const cell = this.buckets[decision.group]![decision.bucket]!;
      if (decision.action === XDP_PASS || decision.reason === 'tx_arp_reply') cell.accepted += 1n;
      else cell.dropped += 1n;
    }
    if (decision.requester) {
      const r = decision.requester;
      this.requesterMap.set(`${r.family}/${r.addr}`, { ...r, lastSeenNs: nowNs });
    }
    return decision;
  }

  /**
   * farmlb_requesters as the program would hold it, without its LRU eviction and its budget of
   * new requesters per window (the model keeps all; tests stay within both).
   */
  async requesters(): Promise<Requester[]> {
    return [...this.requesterMap.values()].map((r) => ({ ...r }));
  }

  async reasonCounters(): Promise<Record<Reason, ReasonCounter>> {
    return Object.fromEntries(REASONS.map((r) => [r, { ...this.reasons[r] }])) as Record<Reason, ReasonCounter>;
  }

  async bucketCounters(): Promise<BucketCounter[][]> {
    return this.buckets.map((row) => row.map((c) => ({ ...c })));
  }

  /** Zero the counters (the program's are per-CPU maps that only the loader can reset). */
  resetCounters(): void {
    this.reasons = zeroReasonCounters();
    this.buckets = zeroBucketCounters();
    this.requesterMap.clear();
  }

  async close(): Promise<void> {
    this.current = undefined;
  }
}
