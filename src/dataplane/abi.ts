// TypeScript mirror of bpf/farmlb_abi.h: one declarative table per struct (field, offset,
// size, byte order), encoders/decoders for every map key and value, the constants, and the
// expected shape of every map. abi-check.ts compares the tables with the layouts in the
// compiled object's BTF (test/unit/abi.test.ts, and XdpDataplane before it loads an object),
// and the test compares the constants with the header's, so the two cannot drift.
//
// Byte order (abi-codec.ts): 'host' is the CPU's order (the addon and the program share the
// machine), 'network' is big-endian as on the wire, 'bytes' is a byte array copied as is.

import { endianness } from 'node:os';
import { bool, bytes, layout, nested, struct, u64, uint, type StructSpec } from './abi-codec.js';
import type { VmacMode } from '../config/types.js';
import { MAX_NODES } from '../balance/tables.js';
import {
  CriterionId,
  GROUP_NONE,
  ModeId,
  NBUCKETS,
  NODE_NONE,
  PORT_ANY,
  REASONS,
  VIP_ANY,
  type BucketCounter,
  type DataplaneTables,
  type ReasonCounter,
} from './types.js';

// ---- constants ----------------------------------------------------------------------

export { NBUCKETS, NODE_NONE, GROUP_NONE, VIP_ANY, PORT_ANY };
export const MAX_GROUPS = 16;
export const MAX_VIPS = 64;
export const MAX_RULES = 256;
export { MAX_NODES };
export const MAX_IFACES = 64;
export const REQUESTERS_ENTRIES = 16384;
/** New requesters the program records per window; known ones are refreshed whatever the budget. */
export const REQUESTERS_NEW_PER_WINDOW = 1024;
export const REQUESTERS_WINDOW_NS = 16_000_000_000;
export const NODES_ENTRIES = 2 * MAX_NODES;
export const NODE_F_KNOWN = 0x01;
/** The tc egress filter's fixed handle and priority (FARMLB_TC_HANDLE / FARMLB_TC_PRIORITY). */
export const TC_HANDLE = 0x666c62;
export const TC_PRIORITY = 0x666c;
export const SLOTS = 2;
export const DEFAULT_HASH_SEED = 0x6661726d; // "farm"
export const R_MAX = REASONS.length;
export const BUCKET_ENTRIES = SLOTS * MAX_GROUPS * NBUCKETS;
export const BUCKET_STATS_ENTRIES = MAX_GROUPS * NBUCKETS;
export const VIPS_ENTRIES = SLOTS * MAX_VIPS;
/** Resolved rule entries one slot can need (see the header: at most MAX_RULES per VIP). */
export const RESOLVED_RULES_PER_SLOT = MAX_VIPS * (MAX_RULES + 1);
export const RULES_ENTRIES = SLOTS * RESOLVED_RULES_PER_SLOT;
export const RULE_SPECS_ENTRIES = SLOTS * MAX_RULES;
/** farmlb_vip_index: entries per slot, addressed by the last 12 bits of a VIP's last two bytes. */
export const VIP_INDEX_BITS = 12;
export const VIP_INDEX_SIZE = 1 << VIP_INDEX_BITS;
/** Index entry: no VIP of the slot has this index. */
export const VIP_INDEX_NONE = 0;
/** Index entry: several VIPs share it; the program asks the hash maps. */
export const VIP_INDEX_MANY = 0xff;
/** Port entries a VIP descriptor holds inline (the rest: FARMLB_VIP_F_OVERFLOW_*, farmlb_rules). */
export const VIP_INLINE_PORTS = 8;
export const VIP_F_ANY_TCP = 0x01;
export const VIP_F_ANY_UDP = 0x02;
export const VIP_F_OVERFLOW_TCP = 0x04;
export const VIP_F_OVERFLOW_UDP = 0x08;
export const VIP_DESC_ENTRIES = SLOTS * MAX_VIPS;
/** farmlb_iface_cache entries per CPU (ifindex modulo this). */
export const IFACE_CACHE_ENTRIES = 16;
/**
 * FARMLB_LEASE_CLOCK_SLACK_NS: the program reads the lease clock coarsely (less than two
 * ticks behind CLOCK_MONOTONIC), so it may accept traffic that long past the deadline.
 * Whoever waits for another node's lease to run out waits deadline + this (as a bigint:
 * BigInt(LEASE_CLOCK_SLACK_NS)). docs/datapath.md §6.
 */
export const LEASE_CLOCK_SLACK_NS = 20_000_000;

/** Every constant of the header by its C name, for the comparison with the addon. */
export const ABI_CONSTANTS: Record<string, number> = {
  FARMLB_NBUCKETS: NBUCKETS,
  FARMLB_MAX_GROUPS: MAX_GROUPS,
  FARMLB_MAX_VIPS: MAX_VIPS,
  FARMLB_MAX_RULES: MAX_RULES,
  FARMLB_MAX_NODES: MAX_NODES,
  FARMLB_MAX_IFACES: MAX_IFACES,
  FARMLB_REQUESTERS_ENTRIES: REQUESTERS_ENTRIES,
  FARMLB_REQUESTERS_NEW_PER_WINDOW: REQUESTERS_NEW_PER_WINDOW,
  FARMLB_REQUESTERS_WINDOW_NS: REQUESTERS_WINDOW_NS,
  FARMLB_NODES_ENTRIES: NODES_ENTRIES,
  FARMLB_NODE_F_KNOWN: NODE_F_KNOWN,
  FARMLB_TC_HANDLE: TC_HANDLE,
  FARMLB_TC_PRIORITY: TC_PRIORITY,
  FARMLB_NODE_NONE: NODE_NONE,
  FARMLB_GROUP_NONE: GROUP_NONE,
  FARMLB_VIP_ANY: VIP_ANY,
  FARMLB_PORT_ANY: PORT_ANY,
  FARMLB_SLOTS: SLOTS,
  FARMLB_DEFAULT_HASH_SEED: DEFAULT_HASH_SEED,
  FARMLB_CRIT_ADDR: CriterionId.Addr,
  FARMLB_CRIT_PORT: CriterionId.Port,
  FARMLB_CRIT_IPID: CriterionId.Ipid,
  FARMLB_MODE_INVISIBLE: ModeId.Invisible,
  FARMLB_MODE_DIRECTED: ModeId.Directed,
  ...Object.fromEntries(REASONS.map((r, i) => [`FARMLB_R_${r.toUpperCase()}`, i])),
  FARMLB_R_MAX: R_MAX,
  FARMLB_BUCKET_ENTRIES: BUCKET_ENTRIES,
  FARMLB_BUCKET_STATS_ENTRIES: BUCKET_STATS_ENTRIES,
  FARMLB_VIPS_ENTRIES: VIPS_ENTRIES,
  FARMLB_RULES_ENTRIES: RULES_ENTRIES,
  FARMLB_RESOLVED_RULES_PER_SLOT: RESOLVED_RULES_PER_SLOT,
  FARMLB_RULE_SPECS_ENTRIES: RULE_SPECS_ENTRIES,
  FARMLB_VIP_INDEX_BITS: VIP_INDEX_BITS,
  FARMLB_VIP_INDEX_SIZE: VIP_INDEX_SIZE,
  FARMLB_VIP_INDEX_NONE: VIP_INDEX_NONE,
  FARMLB_VIP_INDEX_MANY: VIP_INDEX_MANY,
  FARMLB_VIP_INLINE_PORTS: VIP_INLINE_PORTS,
  FARMLB_VIP_F_ANY_TCP: VIP_F_ANY_TCP,
  FARMLB_VIP_F_ANY_UDP: VIP_F_ANY_UDP,
  FARMLB_VIP_F_OVERFLOW_TCP: VIP_F_OVERFLOW_TCP,
  FARMLB_VIP_F_OVERFLOW_UDP: VIP_F_OVERFLOW_UDP,
  FARMLB_VIP_DESC_ENTRIES: VIP_DESC_ENTRIES,
  FARMLB_IFACE_CACHE_ENTRIES: IFACE_CACHE_ENTRIES,
  FARMLB_LEASE_CLOCK_SLACK_NS: LEASE_CLOCK_SLACK_NS,
};

// ---- struct tables ------------------------------------------------------------------
//
// One table per struct of farmlb_abi.h (abi-codec.ts): every C field with its offset, size,
// byte order and the TS property it carries. ABI_STRUCTS and every encoder/decoder below are
// read from these tables; abi-check.ts holds them against the compiled object's BTF.

export type { ByteOrder, FieldSpec, StructSpec } from './abi-codec.js';

export interface Ctl {
  leaseDeadlineNs: bigint;
  activeSlot: number;
  /** Bumped after every write to farmlb_ifaces: invalidates the program's farmlb_iface_cache. */
  ifaceGen: number;
}
const CTL = struct<Ctl>()(16, {
  lease_deadline_ns: u64(0, 'leaseDeadlineNs'),
  active_slot: uint(8, 4, 'activeSlot'),
  iface_gen: uint(12, 4, 'ifaceGen'),
});

export interface SlotCfg {
  hashSeed: number;
  selfNode: number;
  /** 6 bytes */
  vmac: Uint8Array;
}
const SLOT_CFG = struct<SlotCfg>()(16, {
  hash_seed: uint(0, 4, 'hashSeed'),
  self_node: uint(4, 1, 'selfNode'),
  _pad0: layout(5, 3),
  vmac: bytes(8, 6, 'vmac'),
  _pad1: layout(14, 2),
});

export interface VipKey {
  slot: number;
  family: 4 | 6;
  /** 16 bytes, network order; IPv4 in the first 4. */
  addr: Uint8Array;
}
const VIP_KEY = struct<VipKey>()(20, {
  slot: uint(0, 1, 'slot'),
  family: uint(1, 1, 'family'),
  _pad0: layout(2, 2),
  addr: bytes(4, 16, 'addr'),
});

export interface VipValue {
  vipId: number;
  icmpGroup: number;
  /** enum farmlb_mode */
  mode: number;
  arpGroup: number;
}
const VIP = struct<VipValue>()(8, {
  vip_id: uint(0, 2, 'vipId'),
  icmp_group: uint(2, 1, 'icmpGroup'),
  mode: uint(3, 1, 'mode'),
  arp_group: uint(4, 1, 'arpGroup'),
  _pad0: layout(5, 3),
});

/** Key of the resolved rule table (farmlb_rules): the VIP by address. */
export interface RuleKey {
  slot: number;
  family: 4 | 6;
  proto: number;
  /** Host-order number here; stored in network order. PORT_ANY for the VIP's "any port" entry. */
  port: number;
  /** 16 bytes, network order; IPv4 in the first 4. */
  addr: Uint8Array;
}
const RULE_KEY = struct<RuleKey>()(24, {
  slot: uint(0, 1, 'slot'),
  family: uint(1, 1, 'family'),
  proto: uint(2, 1, 'proto'),
  _pad0: layout(3, 1),
  port: uint(4, 2, 'port', 'network'),
  _pad1: layout(6, 2),
  addr: bytes(8, 16, 'addr'),
});

/** Key of farmlb_rule_specs: a rule as the config states it. */
export interface RuleSpecKey {
  slot: number;
  proto: number;
  /** Host-order number here; stored in network order. PORT_ANY for '*'. */
  port: number;
  vipId: number;
}
const RULE_SPEC_KEY = struct<RuleSpecKey>()(8, {
  slot: uint(0, 1, 'slot'),
  proto: uint(1, 1, 'proto'),
  port: uint(2, 2, 'port', 'network'),
  vip_id: uint(4, 2, 'vipId'),
  _pad0: layout(6, 2),
});

/** The farmlb_vip_index value: VIP_INDEX_SIZE entry bytes (VIP_INDEX_NONE, 1 + descriptor, VIP_INDEX_MANY). */
const VIP_INDEX = struct<{ entry: Uint8Array }>()(VIP_INDEX_SIZE, { entry: bytes(0, VIP_INDEX_SIZE, 'entry') });

export interface RuleValue {
  group: number;
  criterion: number;
  /** enum farmlb_mode of the entry's VIP: farmlb_rules only, 0 in farmlb_rule_specs. */
  mode?: number;
}
const RULE = struct<RuleValue>()(4, {
  group: uint(0, 1, 'group'),
  criterion: uint(1, 1, 'criterion'),
  mode: uint(2, 1, 'mode'),
  _pad0: layout(3, 1),
});

/** One inline port entry of a VIP descriptor. */
export interface VipPortValue {
  /** Host-order number here; stored in network order. Never PORT_ANY. */
  port: number;
  proto: number;
  rule: RuleValue;
}
const VIP_PORT = struct<VipPortValue>()(8, {
  port: uint(0, 2, 'port', 'network'),
  proto: uint(2, 1, 'proto'),
  _pad0: layout(3, 1),
  rule: nested(4, RULE, 'rule'),
});

/** farmlb_vip_desc: one VIP and its resolved rules, as the program reads them without a hash lookup. */
export interface VipDescValue {
  /** 0 marks an unused descriptor. */
  family: 0 | 4 | 6;
  /** 16 bytes, network order; IPv4 in the first 4. */
  addr: Uint8Array;
  /** VIP_F_* */
  flags: number;
  vip: VipValue;
  /** [TCP, UDP]; meaningful with VIP_F_ANY_TCP / VIP_F_ANY_UDP. */
  anyPort: [RuleValue, RuleValue];
  /** At most VIP_INLINE_PORTS. */
  ports: VipPortValue[];
}
// The two arrays (any_port, ports) have counts the table cannot say (nports is the length of
// ports): encodeVipDesc / decodeVipDesc write them with the RULE and VIP_PORT codecs.
const VIP_DESC = struct<VipDescValue>()(36 + VIP_PORT.size * VIP_INLINE_PORTS, {
  addr: bytes(0, 16, 'addr'),
  family: uint(16, 1, 'family'),
  flags: uint(17, 1, 'flags'),
  nports: layout(18, 1, 'host'),
  _pad0: layout(19, 1),
  vip: nested(20, VIP, 'vip'),
  any_port: layout(28, 2 * RULE.size),
  ports: layout(36, VIP_PORT.size * VIP_INLINE_PORTS),
});

export interface NodeValue {
  /** 6 bytes */
  mac: Uint8Array;
  flags: number;
}
const NODE = struct<NodeValue>()(8, { mac: bytes(0, 6, 'mac'), flags: uint(6, 1, 'flags'), _pad0: layout(7, 1) });

export interface MacKey {
  slot: number;
  /** 6 bytes */
  mac: Uint8Array;
}
const MAC_KEY = struct<MacKey>()(8, { slot: uint(0, 1, 'slot'), _pad0: layout(1, 1), mac: bytes(2, 6, 'mac') });

const NODE_REF = struct<{ node: number }>()(4, { node: uint(0, 1, 'node'), _pad0: layout(1, 3) });

const IFACE = struct<{ mac: Uint8Array }>()(8, { mac: bytes(0, 6, 'mac'), _pad0: layout(6, 2) });

export interface IfaceCacheValue {
  ifindex: number;
  gen: number;
  /** 6 bytes */
  mac: Uint8Array;
  known: boolean;
}
const IFACE_CACHE = struct<IfaceCacheValue>()(16, {
  ifindex: uint(0, 4, 'ifindex'),
  gen: uint(4, 4, 'gen'),
  mac: bytes(8, 6, 'mac'),
  known: bool(14, 'known'),
  _pad0: layout(15, 1),
});

export interface RequesterKey {
  family: 4 | 6;
  /** 16 bytes, network order; IPv4 in the first 4. */
  addr: Uint8Array;
}
const REQUESTER_KEY = struct<RequesterKey>()(20, { family: uint(0, 1, 'family'), _pad0: layout(1, 3), addr: bytes(4, 16, 'addr') });

export interface RequesterValue {
  lastSeenNs: bigint;
  /** 6 bytes */
  mac: Uint8Array;
  group: number;
  bucket: number;
  vipId: number;
}
const REQUESTER = struct<RequesterValue>()(24, {
  last_seen_ns: u64(0, 'lastSeenNs'),
  mac: bytes(8, 6, 'mac'),
  group: uint(14, 1, 'group'),
  bucket: uint(15, 1, 'bucket'),
  vip_id: uint(16, 2, 'vipId'),
  _pad0: layout(18, 6),
});

/** farmlb_requester_budget[0]: new requesters recorded in the current window, and refused since load. */
export interface RequesterBudget {
  windowNs: bigint;
  admitted: bigint;
  refused: bigint;
}
const REQUESTER_BUDGET = struct<RequesterBudget>()(24, {
  window_ns: u64(0, 'windowNs'),
  admitted: u64(8, 'admitted'),
  refused: u64(16, 'refused'),
});

export interface BucketValue {
  owner: number;
  prevOwner: number;
  flags: number;
}
const BUCKET = struct<BucketValue>()(4, {
  owner: uint(0, 1, 'owner'),
  prev_owner: uint(1, 1, 'prevOwner'),
  flags: uint(2, 1, 'flags'),
  _pad0: layout(3, 1),
});

const LEASE_CLOCK = struct<{ jiffies: bigint; nowNs: bigint }>()(16, { jiffies: u64(0, 'jiffies'), now_ns: u64(8, 'nowNs') });

const COUNTER = struct<ReasonCounter>()(16, { packets: u64(0, 'packets'), bytes: u64(8, 'bytes') });

/** One CPU's farmlb_bucket_counter as the program stores it (see sumPerCpuBucketCounter). */
export interface RawBucketCounter {
  accepted: bigint;
  dropped: bigint;
  owned: ReasonCounter;
  notOwned: ReasonCounter;
}
// owned, not_owned: PASS_OWNED / DROP_NOT_OWNED of the bucket.
const BUCKET_COUNTER = struct<RawBucketCounter>()(48, {
  accepted: u64(0, 'accepted'),
  dropped: u64(8, 'dropped'),
  owned: nested(16, COUNTER, 'owned'),
  not_owned: nested(32, COUNTER, 'notOwned'),
});

// The hot tables: the value of the farmlb_hot map (global data of the program). Each member
// is an array of the struct of the same name; src/dataplane/hot-tables.ts addresses them.
const HOT_SLOT_CFG_OFFSET = CTL.size;
const HOT_VIP_INDEX_OFFSET = HOT_SLOT_CFG_OFFSET + SLOT_CFG.size * SLOTS;
const HOT_VIP_DESC_OFFSET = HOT_VIP_INDEX_OFFSET + VIP_INDEX.size * SLOTS;
const HOT_BUCKETS_OFFSET = HOT_VIP_DESC_OFFSET + VIP_DESC.size * VIP_DESC_ENTRIES;
const HOT = struct<object>()(HOT_BUCKETS_OFFSET + BUCKET.size * BUCKET_ENTRIES, {
  ctl: layout(0, CTL.size),
  slot_cfg: layout(HOT_SLOT_CFG_OFFSET, SLOT_CFG.size * SLOTS),
  vip_index: layout(HOT_VIP_INDEX_OFFSET, VIP_INDEX.size * SLOTS),
  vip_desc: layout(HOT_VIP_DESC_OFFSET, VIP_DESC.size * VIP_DESC_ENTRIES),
  buckets: layout(HOT_BUCKETS_OFFSET, BUCKET.size * BUCKET_ENTRIES),
});

/** Every ABI struct by its C name: the tables above as the BTF check and hot-tables.ts read them. */
export const ABI_STRUCTS = {
  farmlb_ctl: CTL.spec,
  farmlb_slot_cfg: SLOT_CFG.spec,
  farmlb_vip_key: VIP_KEY.spec,
  farmlb_vip: VIP.spec,
  farmlb_rule_key: RULE_KEY.spec,
  farmlb_rule_spec_key: RULE_SPEC_KEY.spec,
  farmlb_vip_index: VIP_INDEX.spec,
  farmlb_vip_port: VIP_PORT.spec,
  farmlb_vip_desc: VIP_DESC.spec,
  farmlb_rule: RULE.spec,
  farmlb_node: NODE.spec,
  farmlb_mac_key: MAC_KEY.spec,
  farmlb_node_ref: NODE_REF.spec,
  farmlb_iface: IFACE.spec,
  farmlb_iface_cache: IFACE_CACHE.spec,
  farmlb_requester_key: REQUESTER_KEY.spec,
  farmlb_requester: REQUESTER.spec,
  farmlb_bucket: BUCKET.spec,
  farmlb_lease_clock: LEASE_CLOCK.spec,
  farmlb_requester_budget: REQUESTER_BUDGET.spec,
  farmlb_counter: COUNTER.spec,
  farmlb_bucket_counter: BUCKET_COUNTER.spec,
  farmlb_hot: HOT.spec,
} satisfies Record<string, StructSpec>;

export type AbiStructName = keyof typeof ABI_STRUCTS;

// ---- keys and values ----------------------------------------------------------------

const HOST_LE = endianness() === 'LE';

/** Key of the ARRAY maps (ctl, slot_cfg, buckets, stats, bucket_stats): __u32, host order. */
export function encodeIndexKey(index: number): Buffer {
  const buf = Buffer.alloc(4);
  if (HOST_LE) buf.writeUInt32LE(index);
  else buf.writeUInt32BE(index);
  return buf;
}

export function decodeIndexKey(buf: Buffer): number {
  return HOST_LE ? buf.readUInt32LE(0) : buf.readUInt32BE(0);
}

export const encodeCtl = (v: Ctl): Buffer => CTL.encode(v);
export const decodeCtl = (buf: Buffer): Ctl => CTL.decode(buf);
export const encodeSlotCfg = (v: SlotCfg): Buffer => SLOT_CFG.encode(v);
export const decodeSlotCfg = (buf: Buffer): SlotCfg => SLOT_CFG.decode(buf);
export const encodeVipKey = (v: VipKey): Buffer => VIP_KEY.encode(v);
export const decodeVipKey = (buf: Buffer): VipKey => VIP_KEY.decode(buf);
export const encodeVip = (v: VipValue): Buffer => VIP.encode(v);
export const decodeVip = (buf: Buffer): VipValue => VIP.decode(buf);
export const encodeRuleKey = (v: RuleKey): Buffer => RULE_KEY.encode(v);
export const decodeRuleKey = (buf: Buffer): RuleKey => RULE_KEY.decode(buf);
export const encodeRuleSpecKey = (v: RuleSpecKey): Buffer => RULE_SPEC_KEY.encode(v);
export const decodeRuleSpecKey = (buf: Buffer): RuleSpecKey => RULE_SPEC_KEY.decode(buf);
export const encodeRule = (v: RuleValue): Buffer => RULE.encode(v);
export const decodeRule = (buf: Buffer): RuleValue => RULE.decode(buf);
export const encodeNode = (v: NodeValue): Buffer => NODE.encode(v);
export const decodeNode = (buf: Buffer): NodeValue => NODE.decode(buf);
export const encodeMacKey = (v: MacKey): Buffer => MAC_KEY.encode(v);
export const decodeMacKey = (buf: Buffer): MacKey => MAC_KEY.decode(buf);
export const encodeNodeRef = (node: number): Buffer => NODE_REF.encode({ node });
export const decodeNodeRef = (buf: Buffer): number => NODE_REF.decode(buf).node;
export const encodeIface = (mac: Uint8Array): Buffer => IFACE.encode({ mac });
export const decodeIface = (buf: Buffer): Uint8Array => IFACE.decode(buf).mac;
/** One CPU's farmlb_iface_cache entry (the program writes them; tests read them). */
export const decodeIfaceCache = (buf: Buffer, at = 0): IfaceCacheValue => IFACE_CACHE.decode(buf, at);
export const encodeRequesterKey = (v: RequesterKey): Buffer => REQUESTER_KEY.encode(v);
export const decodeRequesterKey = (buf: Buffer): RequesterKey => REQUESTER_KEY.decode(buf);
export const encodeRequester = (v: RequesterValue): Buffer => REQUESTER.encode(v);
export const decodeRequester = (buf: Buffer): RequesterValue => REQUESTER.decode(buf);
export const decodeRequesterBudget = (buf: Buffer): RequesterBudget => REQUESTER_BUDGET.decode(buf);
export const encodeBucket = (v: BucketValue, into?: Buffer, at = 0): Buffer => BUCKET.encode(v, into, at);
export const decodeBucket = (buf: Buffer, at = 0): BucketValue => BUCKET.decode(buf, at);
export const decodeCounter = (buf: Buffer, at = 0): ReasonCounter => COUNTER.decode(buf, at);
export const decodeBucketCounter = (buf: Buffer, at = 0): RawBucketCounter => BUCKET_COUNTER.decode(buf, at);

/** FARMLB_VIP_INDEX_OF: the farmlb_vip_index entry of an address, from its last two bytes. */
export function vipIndexOf(family: 4 | 6, addr: Uint8Array): number {
  const last = family === 4 ? 2 : 14;
  return (((addr[last] ?? 0) << 8) | (addr[last + 1] ?? 0)) & (VIP_INDEX_SIZE - 1);
}

export function encodeVipIndex(entries: Uint8Array): Buffer {
  if (entries.length !== VIP_INDEX_SIZE) throw new RangeError(`VIP index has ${entries.length} entries, not ${VIP_INDEX_SIZE}`);
  return VIP_INDEX.encode({ entry: entries });
}

export function decodeVipIndex(buf: Buffer): Uint8Array {
  return VIP_INDEX.decode(buf).entry;
}

const DESC = VIP_DESC.spec.fields;

export function encodeVipDesc(v: VipDescValue): Buffer {
  if (v.ports.length > VIP_INLINE_PORTS) throw new RangeError(`${v.ports.length} inline ports, a descriptor holds ${VIP_INLINE_PORTS}`);
  const buf = VIP_DESC.encode(v);
  buf[DESC.nports.offset] = v.ports.length;
  v.anyPort.forEach((r, i) => RULE.encode(r, buf, DESC.any_port.offset + i * RULE.size));
  v.ports.forEach((p, i) => VIP_PORT.encode(p, buf, DESC.ports.offset + i * VIP_PORT.size));
  return buf;
}

export function decodeVipDesc(buf: Buffer): VipDescValue {
  const nports = Math.min(buf[DESC.nports.offset] ?? 0, VIP_INLINE_PORTS);
  const v = VIP_DESC.decode(buf);
  return {
    family: v.family,
    addr: v.addr,
    flags: v.flags,
    vip: v.vip,
    anyPort: [RULE.decode(buf, DESC.any_port.offset), RULE.decode(buf, DESC.any_port.offset + RULE.size)],
    ports: Array.from({ length: nports }, (_, i) => VIP_PORT.decode(buf, DESC.ports.offset + i * VIP_PORT.size)),
  };
}

/** Index into farmlb_vip_desc. */
export function vipDescIndex(slot: number, desc: number): number {
  return slot * MAX_VIPS + desc;
}

/** Index into farmlb_nodes. */
export function nodeIndex(slot: number, node: number): number {
  return slot * MAX_NODES + node;
}

/** Index into farmlb_buckets. */
export function bucketIndex(slot: number, group: number, bucket: number): number {
  return (slot * MAX_GROUPS + group) * NBUCKETS + bucket;
}

/** Index into farmlb_bucket_stats (not slotted). */
export function bucketStatsIndex(group: number, bucket: number): number {
  return group * NBUCKETS + bucket;
}

/**
 * Offsets of each CPU's copy in a per-CPU value: the kernel lays them out every
 * roundup(valueSize, 8) bytes, for every possible CPU.
 */
export function perCpuOffsets(buf: Buffer, valueSize: number, numPossibleCpus: number): number[] {
  const stride = Math.ceil(valueSize / 8) * 8;
  if (buf.length !== stride * numPossibleCpus)
    throw new RangeError(`per-CPU value is ${buf.length} bytes, expected ${numPossibleCpus} × ${stride}`);
  return Array.from({ length: numPossibleCpus }, (_, cpu) => cpu * stride);
}

export function sumPerCpuCounter(buf: Buffer, numPossibleCpus: number): ReasonCounter {
  const sum = { packets: 0n, bytes: 0n };
  for (const at of perCpuOffsets(buf, ABI_STRUCTS.farmlb_counter.size, numPossibleCpus)) {
    const c = decodeCounter(buf, at);
    sum.packets += c.packets;
    sum.bytes += c.bytes;
  }
  return sum;
}

/**
 * A bucket's counters summed over CPUs, with what the program counted in owned / not_owned
 * only (one update per packet, bpf/farmlb_abi.h) added back: accepted includes PASS_OWNED,
 * dropped DROP_NOT_OWNED; `owned` / `notOwned` are those two reasons' share of this bucket,
 * for the reason totals (readers add them to farmlb_stats).
 */
export function sumPerCpuBucketCounter(buf: Buffer, numPossibleCpus: number): BucketCounter & { owned: ReasonCounter; notOwned: ReasonCounter } {
  const sum = { accepted: 0n, dropped: 0n, owned: { packets: 0n, bytes: 0n }, notOwned: { packets: 0n, bytes: 0n } };
  for (const at of perCpuOffsets(buf, ABI_STRUCTS.farmlb_bucket_counter.size, numPossibleCpus)) {
    const c = decodeBucketCounter(buf, at);
    sum.accepted += c.accepted + c.owned.packets;
    sum.dropped += c.dropped + c.notOwned.packets;
    sum.owned.packets += c.owned.packets;
    sum.owned.bytes += c.owned.bytes;
    sum.notOwned.packets += c.notOwned.packets;
    sum.notOwned.bytes += c.notOwned.bytes;
  }
  return sum;
}

// ---- map shapes ---------------------------------------------------------------------

export const MapType = { Hash: 1, Array: 2, PercpuArray: 6, LruHash: 9 } as const;

export interface MapShape {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

/** The maps of farmlb.bpf.o by pin name, as the header comments define them. */
export const MAP_SHAPES = {
  // Global data (section .data.hot), pinned under this name: farmlb_ctl, farmlb_slot_cfg,
  // farmlb_vip_index, farmlb_vip_desc and farmlb_buckets live in it (hot-tables.ts).
  farmlb_hot: { type: MapType.Array, keySize: 4, valueSize: ABI_STRUCTS.farmlb_hot.size, maxEntries: 1 },
  farmlb_vips: {
    type: MapType.Hash,
    keySize: ABI_STRUCTS.farmlb_vip_key.size,
    valueSize: ABI_STRUCTS.farmlb_vip.size,
    maxEntries: VIPS_ENTRIES,
  },
  farmlb_rules: {
    type: MapType.Hash,
    keySize: ABI_STRUCTS.farmlb_rule_key.size,
    valueSize: ABI_STRUCTS.farmlb_rule.size,
    maxEntries: RULES_ENTRIES,
  },
  farmlb_rule_specs: {
    type: MapType.Hash,
    keySize: ABI_STRUCTS.farmlb_rule_spec_key.size,
    valueSize: ABI_STRUCTS.farmlb_rule.size,
    maxEntries: RULE_SPECS_ENTRIES,
  },
  farmlb_nodes: { type: MapType.Array, keySize: 4, valueSize: ABI_STRUCTS.farmlb_node.size, maxEntries: NODES_ENTRIES },
  farmlb_node_macs: {
    type: MapType.Hash,
    keySize: ABI_STRUCTS.farmlb_mac_key.size,
    valueSize: ABI_STRUCTS.farmlb_node_ref.size,
    maxEntries: NODES_ENTRIES,
  },
  farmlb_ifaces: { type: MapType.Hash, keySize: 4, valueSize: ABI_STRUCTS.farmlb_iface.size, maxEntries: MAX_IFACES },
  farmlb_iface_cache: {
    type: MapType.PercpuArray,
    keySize: 4,
    valueSize: ABI_STRUCTS.farmlb_iface_cache.size,
    maxEntries: IFACE_CACHE_ENTRIES,
  },
  farmlb_requesters: {
    type: MapType.LruHash,
    keySize: ABI_STRUCTS.farmlb_requester_key.size,
    valueSize: ABI_STRUCTS.farmlb_requester.size,
    maxEntries: REQUESTERS_ENTRIES,
  },
  farmlb_requester_budget: { type: MapType.Array, keySize: 4, valueSize: ABI_STRUCTS.farmlb_requester_budget.size, maxEntries: 1 },
  farmlb_lease_clock: { type: MapType.PercpuArray, keySize: 4, valueSize: ABI_STRUCTS.farmlb_lease_clock.size, maxEntries: 1 },
  farmlb_stats: { type: MapType.PercpuArray, keySize: 4, valueSize: ABI_STRUCTS.farmlb_counter.size, maxEntries: R_MAX },
  farmlb_bucket_stats: {
    type: MapType.PercpuArray,
    keySize: 4,
    valueSize: ABI_STRUCTS.farmlb_bucket_counter.size,
    maxEntries: BUCKET_STATS_ENTRIES,
  },
} as const satisfies Record<string, MapShape>;

export type MapName = keyof typeof MAP_SHAPES;
export const MAP_NAMES = Object.keys(MAP_SHAPES) as MapName[];

/** "" if the map has the expected shape, else what differs. */
export function mapShapeMismatch(name: MapName, actual: MapShape): string {
  const want = MAP_SHAPES[name];
  const diffs: string[] = [];
  for (const k of ['type', 'keySize', 'valueSize', 'maxEntries'] as const)
    if (actual[k] !== want[k]) diffs.push(`${k} ${actual[k]} (expected ${want[k]})`);
  return diffs.join(', ');
}

// ---- conversions between DataplaneTables and map entries ----------------------------

export function modeId(mode: VmacMode): number {
  return mode === 'vmac_directed' ? ModeId.Directed : ModeId.Invisible;
}

export function modeName(id: number): VmacMode {
  return id === ModeId.Directed ? 'vmac_directed' : 'vmac_invisible';
}

export function parseMac(mac: string): Uint8Array {
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new RangeError(`bad MAC ${mac}`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Canonical text of a VIP key's address: dotted quad, or RFC 5952 for IPv6. */
export function formatAddr(family: 4 | 6, addr: Uint8Array): string {
  if (family === 4) return Array.from(addr.subarray(0, 4)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => ((addr[2 * i] ?? 0) << 8) | (addr[2 * i + 1] ?? 0));
  let bestAt = -1;
  let bestLen = 1; // RFC 5952: a single zero group is not compressed
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
}
