// The reference data plane in TypeScript: the steps of docs/datapath.md §0–6 over the
// semantic tables. bpf/farmlb.bpf.c reaches the same answers by a cheaper route (a VIP
// prefilter, the rule precedence resolved in advance: docs/datapath.md §7); the model keeps
// the semantic form, and the precedence itself is rule-table.ts's winningRule for both. test/bpf/differential.test.ts runs both
// on the same packets and requires the same verdict, output frame, reason, group and
// bucket. Tests of the daemon, membership and CLI use ModelDataplane where no kernel is
// available. Keep every branch here in step with the program: a difference is a bug in
// one of them, and the differential test says which packet shows it.

import { bucketOf } from '../balance/hash.js';
import { MAX_GROUPS } from './abi.js';
import { ruleLookup, winningRule, type RuleLookup } from './rule-table.js';
import {
  CriterionId,
  NBUCKETS,
  NODE_NONE,
  REASONS,
  XDP_DROP,
  XDP_PASS,
  type BucketCounter,
  type CompiledVip,
  type Dataplane,
  type DataplaneTables,
  type PacketDecision,
  type Reason,
  type ReasonCounter,
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

const IPPROTO_HOPOPTS = 0;
const IPPROTO_ICMP = 1;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_ROUTING = 43;
const IPPROTO_FRAGMENT = 44;
const IPPROTO_AH = 51;
const IPPROTO_ICMPV6 = 58;
const IPPROTO_DSTOPTS = 60;

const ICMP_ECHO_REQUEST = 8;
const ICMP_CONTROL_TYPES = new Set([3, 11, 12]); // unreachable, time exceeded, parameter problem
const ICMPV6_ECHO_REQUEST = 128;
// errors 1..4, neighbour discovery 133..137
const ICMPV6_CONTROL_TYPES = new Set([1, 2, 3, 4, 133, 134, 135, 136, 137]);

/** Lookup structures for one DataplaneTables, built once per tables object. */
interface TableIndex {
  vips: Map<string, CompiledVip>;
  /** The semantic rules; the precedence over them is rule-table.ts's winningRule. */
  rules: RuleLookup;
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
    idx = { vips: new Map(), rules: ruleLookup(tables.rules) };
    for (const vip of tables.vips) {
      // The key holds 16 bytes; an IPv4 VIP matches on its first four (the rest are zero).
      const bytes = vip.family === 4 ? vip.addrBytes.subarray(0, 4) : vip.addrBytes.subarray(0, 16);
      idx.vips.set(vipKey(vip.family, bytes), vip);
    }
    indexes.set(tables, idx);
  }
  return idx;
}

function be16(frame: Uint8Array, at: number): number {
  return (frame[at]! << 8) | frame[at + 1]!;
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

type ParseOutcome = NetworkHeader | 'not_vip' | 'malformed' | 'fragment';

function parseNetwork(frame: Uint8Array, idx: TableIndex): ParseOutcome {
  const len = frame.length;
  let etherType = be16(frame, 12);
  let off = ETH_HLEN;
  for (let i = 0; i < VLAN_MAX_DEPTH; i++) {
    if (etherType !== ETH_P_8021Q && etherType !== ETH_P_8021AD) break;
    if (off + 4 > len) return 'not_vip';
    etherType = be16(frame, off + 2);
    off += 4;
  }

  if (etherType === ETH_P_IP) {
    if (off + 20 > len) return 'not_vip';
    const vip = idx.vips.get(vipKey(4, frame.subarray(off + 16, off + 20)));
    if (!vip) return 'not_vip';
    const version = frame[off]! >> 4;
    const ihl = frame[off]! & 0x0f;
    if (version !== 4 || ihl < 5) return 'malformed';
    if (off + ihl * 4 > len) return 'malformed';
    if ((be16(frame, off + 6) & 0x1fff) !== 0) return 'fragment';
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
        if ((be16(frame, pos + 2) & 0xfff8) !== 0) return 'fragment';
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

/**
 * The program's decision for one frame (docs/datapath.md). `tables` undefined = nothing
 * applied: every lookup misses. The lease is valid while nowNs < leaseDeadlineNs, as
 * `bpf_ktime_get_ns() < lease_deadline_ns` in the program.
 */
export function decide(
  frame: Uint8Array,
  tables: DataplaneTables | undefined,
  leaseDeadlineNs: bigint,
  nowNs: bigint,
): PacketDecision {
  const verdict = (action: number, reason: Reason): PacketDecision => ({ action, reason, frame });
  const malformed = (): PacketDecision => verdict(XDP_DROP, 'drop_malformed');
  const leaseValid = nowNs < leaseDeadlineNs;

  if (frame.length < ETH_HLEN || !tables) return verdict(XDP_PASS, 'pass_not_vip');
  const net = parseNetwork(frame, indexOf(tables));
  if (net === 'not_vip') return verdict(XDP_PASS, 'pass_not_vip');
  if (net === 'malformed') return malformed();
  if (net === 'fragment') return leaseValid ? verdict(XDP_PASS, 'pass_fragment') : verdict(XDP_DROP, 'drop_lease');

  const { family, vip, proto, l4 } = net;
  let group: number;
  let criterion: number;
  let sport: Uint8Array | undefined;

  if (proto === IPPROTO_TCP || proto === IPPROTO_UDP) {
    if (l4 + (proto === IPPROTO_TCP ? 20 : 8) > frame.length) return malformed();
    const dport = be16(frame, l4 + 2);
    sport = frame.slice(l4, l4 + 2);
    // The semantic precedence (the program reads the same answer, precomputed, from the
    // resolved table XdpDataplane writes; test/unit/rule-table.test.ts holds them equal).
    const rule = winningRule(indexOf(tables).rules, proto, vip.id, family, dport);
    if (!rule) return verdict(XDP_DROP, 'drop_no_rule');
    group = rule.group;
    criterion = rule.criterion;
  } else if ((proto === IPPROTO_ICMP && family === 4) || (proto === IPPROTO_ICMPV6 && family === 6)) {
    if (l4 + ICMP_MIN_LEN > frame.length) return malformed();
    const type = frame[l4]!;
    if (type === (family === 6 ? ICMPV6_ECHO_REQUEST : ICMP_ECHO_REQUEST)) {
      group = vip.icmpGroup;
      criterion = CriterionId.Addr;
    } else if ((family === 4 ? ICMP_CONTROL_TYPES : ICMPV6_CONTROL_TYPES).has(type)) {
      return verdict(XDP_PASS, 'pass_control');
    } else {
      return verdict(XDP_DROP, 'drop_no_rule');
    }
  } else {
    return verdict(XDP_DROP, 'drop_no_rule');
  }

  // Steps 5 and 6: bucket and owner.
  if (group >= MAX_GROUPS) return verdict(XDP_DROP, 'drop_no_rule');
  let bytes: Uint8Array;
  if (criterion === CriterionId.Addr) bytes = net.saddr;
  else if (criterion === CriterionId.Port && sport) bytes = sport;
  else if (criterion === CriterionId.Ipid && net.ipid) bytes = net.ipid;
  else return verdict(XDP_DROP, 'drop_no_rule');

  const bucket = bucketOf(bytes, tables.hashSeed);
  const owner = tables.buckets[group]?.[bucket] ?? NODE_NONE;
  const withBucket = (action: number, reason: Reason): PacketDecision => ({ action, reason, group, bucket, owner, frame });
  if (owner === NODE_NONE || owner !== tables.selfNode) return withBucket(XDP_DROP, 'drop_not_owned');
  return leaseValid ? withBucket(XDP_PASS, 'pass_owned') : withBucket(XDP_DROP, 'drop_lease');
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

  async apply(tables: DataplaneTables): Promise<void> {
    this.current = tables;
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

  /** Decide one frame as the program would at time nowNs, and count it as the program does. */
  process(frame: Uint8Array, nowNs: bigint): PacketDecision {
    const decision = decide(frame, this.current, this.leaseDeadlineNs, nowNs);
    const counter = this.reasons[decision.reason];
    counter.packets += 1n;
    counter.bytes += BigInt(frame.length);
    if (decision.group !== undefined && decision.bucket !== undefined) {
      const cell = this.buckets[decision.group]![decision.bucket]!;
      if (decision.action === XDP_PASS) cell.accepted += 1n;
      else cell.dropped += 1n;
    }
    return decision;
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
  }

  async close(): Promise<void> {
    this.current = undefined;
  }
}
