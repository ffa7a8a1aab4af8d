// TypeScript mirror of bpf/farmlb_abi.h: one declarative table per struct (field, offset,
// size, byte order), encoders/decoders for every map key and value, the constants, and the
// expected shape of every map. abi-check.ts compares the tables with the layouts in the
// compiled object's BTF (test/unit/abi.test.ts, and XdpDataplane before it loads an object),
// and the test compares the constants with the header's, so the two cannot drift.
//
// Byte order: 'host' is the CPU's order (the addon and the program share the machine),
// 'network' is big-endian as on the wire, 'bytes' is a byte array copied as is.

import { endianness } from 'node:os';
import { FarmlbError } from '../errors.js';
import type { VmacMode } from '../config/types.js';
import type { ResolvedRule, VipDescriptor, VipLayout } from './rule-table.js';
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
  type CompiledRule,
  type CompiledVip,
  type DataplaneTables,
  type ReasonCounter,
} from './types.js';

// ---- constants ----------------------------------------------------------------------

export { NBUCKETS, NODE_NONE, GROUP_NONE, VIP_ANY, PORT_ANY };
export const MAX_GROUPS = 16;
export const MAX_VIPS = 64;
export const MAX_RULES = 256;
export const MAX_NODES = 64;
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

export type ByteOrder = 'host' | 'network' | 'bytes';

export interface FieldSpec {
  offset: number;
  size: number;
  order: ByteOrder;
}

export interface StructSpec {
  size: number;
  fields: Record<string, FieldSpec>;
}

const f = (offset: number, size: number, order: ByteOrder): FieldSpec => ({ offset, size, order });
const HOT_VIP_DESC_OFFSET = 16 + 16 * SLOTS + VIP_INDEX_SIZE * SLOTS;
const HOT_BUCKETS_OFFSET = HOT_VIP_DESC_OFFSET + (36 + 8 * VIP_INLINE_PORTS) * VIP_DESC_ENTRIES;

export const ABI_STRUCTS = {
  farmlb_ctl: {
    size: 16,
    fields: { lease_deadline_ns: f(0, 8, 'host'), active_slot: f(8, 4, 'host'), iface_gen: f(12, 4, 'host') },
  },
  farmlb_slot_cfg: {
    size: 16,
    fields: {
      hash_seed: f(0, 4, 'host'),
      self_node: f(4, 1, 'host'),
      _pad0: f(5, 3, 'bytes'),
      vmac: f(8, 6, 'bytes'),
      _pad1: f(14, 2, 'bytes'),
    },
  },
  farmlb_vip_key: {
    size: 20,
    fields: { slot: f(0, 1, 'host'), family: f(1, 1, 'host'), _pad0: f(2, 2, 'bytes'), addr: f(4, 16, 'bytes') },
  },
  farmlb_vip: {
    size: 8,
    fields: {
      vip_id: f(0, 2, 'host'),
      icmp_group: f(2, 1, 'host'),
      mode: f(3, 1, 'host'),
      arp_group: f(4, 1, 'host'),
      _pad0: f(5, 3, 'bytes'),
    },
  },
  farmlb_rule_key: {
    size: 24,
    fields: {
      slot: f(0, 1, 'host'),
      family: f(1, 1, 'host'),
      proto: f(2, 1, 'host'),
      _pad0: f(3, 1, 'bytes'),
      port: f(4, 2, 'network'),
      _pad1: f(6, 2, 'bytes'),
      addr: f(8, 16, 'bytes'),
    },
  },
  farmlb_rule_spec_key: {
    size: 8,
    fields: {
      slot: f(0, 1, 'host'),
      proto: f(1, 1, 'host'),
      port: f(2, 2, 'network'),
      vip_id: f(4, 2, 'host'),
      _pad0: f(6, 2, 'bytes'),
    },
  },
  farmlb_vip_index: {
    size: VIP_INDEX_SIZE,
    fields: { entry: f(0, VIP_INDEX_SIZE, 'bytes') },
  },
  farmlb_vip_port: {
    size: 8,
    // rule: a nested struct farmlb_rule (encodeRule's 4 bytes).
    fields: { port: f(0, 2, 'network'), proto: f(2, 1, 'host'), _pad0: f(3, 1, 'bytes'), rule: f(4, 4, 'bytes') },
  },
  farmlb_vip_desc: {
    size: 36 + 8 * VIP_INLINE_PORTS,
    fields: {
      addr: f(0, 16, 'bytes'),
      family: f(16, 1, 'host'),
      flags: f(17, 1, 'host'),
      nports: f(18, 1, 'host'),
      _pad0: f(19, 1, 'bytes'),
      // nested structs: farmlb_vip, farmlb_rule[2], farmlb_vip_port[VIP_INLINE_PORTS]
      vip: f(20, 8, 'bytes'),
      any_port: f(28, 8, 'bytes'),
      ports: f(36, 8 * VIP_INLINE_PORTS, 'bytes'),
    },
  },
  farmlb_rule: {
    size: 4,
    fields: { group: f(0, 1, 'host'), criterion: f(1, 1, 'host'), mode: f(2, 1, 'host'), _pad0: f(3, 1, 'bytes') },
  },
  farmlb_node: {
    size: 8,
    fields: { mac: f(0, 6, 'bytes'), flags: f(6, 1, 'host'), _pad0: f(7, 1, 'bytes') },
  },
  farmlb_mac_key: {
    size: 8,
    fields: { slot: f(0, 1, 'host'), _pad0: f(1, 1, 'bytes'), mac: f(2, 6, 'bytes') },
  },
  farmlb_node_ref: {
    size: 4,
    fields: { node: f(0, 1, 'host'), _pad0: f(1, 3, 'bytes') },
  },
  farmlb_iface: {
    size: 8,
    fields: { mac: f(0, 6, 'bytes'), _pad0: f(6, 2, 'bytes') },
  },
  farmlb_iface_cache: {
    size: 16,
    fields: {
      ifindex: f(0, 4, 'host'),
      gen: f(4, 4, 'host'),
      mac: f(8, 6, 'bytes'),
      known: f(14, 1, 'host'),
      _pad0: f(15, 1, 'bytes'),
    },
  },
  farmlb_requester_key: {
    size: 20,
    fields: { family: f(0, 1, 'host'), _pad0: f(1, 3, 'bytes'), addr: f(4, 16, 'bytes') },
  },
  farmlb_requester: {
    size: 24,
    fields: {
      last_seen_ns: f(0, 8, 'host'),
      mac: f(8, 6, 'bytes'),
      group: f(14, 1, 'host'),
      bucket: f(15, 1, 'host'),
      vip_id: f(16, 2, 'host'),
      _pad0: f(18, 6, 'bytes'),
    },
  },
  farmlb_bucket: {
    size: 4,
    fields: { owner: f(0, 1, 'host'), prev_owner: f(1, 1, 'host'), flags: f(2, 1, 'host'), _pad0: f(3, 1, 'bytes') },
  },
  farmlb_lease_clock: {
    size: 16,
    fields: { jiffies: f(0, 8, 'host'), now_ns: f(8, 8, 'host') },
  },
  farmlb_requester_budget: {
    size: 24,
    fields: { window_ns: f(0, 8, 'host'), admitted: f(8, 8, 'host'), refused: f(16, 8, 'host') },
  },
  farmlb_counter: {
    size: 16,
    fields: { packets: f(0, 8, 'host'), bytes: f(8, 8, 'host') },
  },
  farmlb_bucket_counter: {
    size: 48,
    // owned, not_owned: nested struct farmlb_counter (PASS_OWNED / DROP_NOT_OWNED of the bucket)
    fields: { accepted: f(0, 8, 'host'), dropped: f(8, 8, 'host'), owned: f(16, 16, 'bytes'), not_owned: f(32, 16, 'bytes') },
  },
  // The hot tables: the value of the farmlb_hot map (global data of the program). Each member
  // is an array of the struct of the same name; src/dataplane/hot-tables.ts addresses them.
  farmlb_hot: {
    size: HOT_BUCKETS_OFFSET + 4 * BUCKET_ENTRIES,
    fields: {
      ctl: f(0, 16, 'bytes'),
      slot_cfg: f(16, 16 * SLOTS, 'bytes'),
      vip_index: f(16 + 16 * SLOTS, VIP_INDEX_SIZE * SLOTS, 'bytes'),
      vip_desc: f(HOT_VIP_DESC_OFFSET, (36 + 8 * VIP_INLINE_PORTS) * VIP_DESC_ENTRIES, 'bytes'),
      buckets: f(HOT_BUCKETS_OFFSET, 4 * BUCKET_ENTRIES, 'bytes'),
    },
  },
} as const satisfies Record<string, StructSpec>;

export type AbiStructName = keyof typeof ABI_STRUCTS;

// ---- field access -------------------------------------------------------------------

const HOST_LE = endianness() === 'LE';

function littleEndian(spec: FieldSpec): boolean {
  return spec.order === 'host' ? HOST_LE : false;
}

function put(buf: Buffer, spec: FieldSpec, value: number | bigint, base = 0): void {
  const at = base + spec.offset;
  if (spec.size === 8) {
    const v = BigInt(value);
    if (littleEndian(spec)) buf.writeBigUInt64LE(v, at);
    else buf.writeBigUInt64BE(v, at);
    return;
  }
  if (littleEndian(spec)) buf.writeUIntLE(Number(value), at, spec.size);
  else buf.writeUIntBE(Number(value), at, spec.size);
}

function get(buf: Buffer, spec: FieldSpec, base = 0): number {
  const at = base + spec.offset;
  return littleEndian(spec) ? buf.readUIntLE(at, spec.size) : buf.readUIntBE(at, spec.size);
}

function get64(buf: Buffer, spec: FieldSpec, base = 0): bigint {
  const at = base + spec.offset;
  return littleEndian(spec) ? buf.readBigUInt64LE(at) : buf.readBigUInt64BE(at);
}

function putBytes(buf: Buffer, spec: FieldSpec, bytes: Uint8Array): void {
  if (bytes.length > spec.size) throw new RangeError(`${bytes.length} bytes do not fit a ${spec.size}-byte field`);
  buf.set(bytes, spec.offset);
}

function getBytes(buf: Buffer, spec: FieldSpec): Uint8Array {
  return Uint8Array.from(buf.subarray(spec.offset, spec.offset + spec.size));
}

// ---- keys and values ----------------------------------------------------------------

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

export interface Ctl {
  leaseDeadlineNs: bigint;
  activeSlot: number;
  /** Bumped after every write to farmlb_ifaces: invalidates the program's farmlb_iface_cache. */
  ifaceGen: number;
}

const CTL = ABI_STRUCTS.farmlb_ctl.fields;
export function encodeCtl(v: Ctl): Buffer {
  const buf = Buffer.alloc(ABI_STRUCTS.farmlb_ctl.size);
  put(buf, CTL.lease_deadline_ns, v.leaseDeadlineNs);
  put(buf, CTL.active_slot, v.activeSlot);
  put(buf, CTL.iface_gen, v.ifaceGen >>> 0);
  return buf;
}
export function decodeCtl(buf: Buffer): Ctl {
  return {
    leaseDeadlineNs: get64(buf, CTL.lease_deadline_ns),
    activeSlot: get(buf, CTL.active_slot),
    ifaceGen: get(buf, CTL.iface_gen),
  };
}

export interface SlotCfg {
  hashSeed: number;
  selfNode: number;
  /** 6 bytes */
  vmac: Uint8Array;
}

const SLOT = ABI_STRUCTS.farmlb_slot_cfg.fields;
export function encodeSlotCfg(v: SlotCfg): Buffer {
  const buf = Buffer.alloc(ABI_STRUCTS.farmlb_slot_cfg.size);
  put(buf, SLOT.hash_seed, v.hashSeed >>> 0);
  put(buf, SLOT.self_node, v.selfNode);
  putBytes(buf, SLOT.vmac, v.vmac);
  return buf;
}
export function decodeSlotCfg(buf: Buffer): SlotCfg {
  return { hashSeed: get(buf, SLOT.hash_seed), selfNode: get(buf, SLOT.self_node), vmac: getBytes(buf, SLOT.vmac) };
}

export interface VipKey {
  slot: number;
  family: 4 | 6;
  /** 16 bytes, network order; IPv4 in the first 4. */
  addr: Uint8Array;
}

const VIPK = ABI_STRUCTS.farmlb_vip_key.fields;
export function encodeVipKey(v: VipKey): Buffer {
  const buf = Buffer.alloc(ABI_STRUCTS.farmlb_vip_key.size);
  put(buf, VIPK.slot, v.slot);
  put(buf, VIPK.family, v.family);
  putBytes(buf, VIPK.addr, v.addr);
  return buf;
}
export function decodeVipKey(buf: Buffer): VipKey {
  return { slot: get(buf, VIPK.slot), family: get(buf, VIPK.family) as 4 | 6, addr: getBytes(buf, VIPK.addr) };
}

export interface VipValue {
  vipId: number;
  icmpGroup: number;
  /** enum farmlb_mode */
  mode: number;
  arpGroup: number;
}

const VIP = ABI_STRUCTS.farmlb_vip.fields;
export function encodeVip(v: VipValue): Buffer {
  const buf = Buffer.alloc(ABI_STRUCTS.farmlb_vip.size);
  put(buf, VIP.vip_id, v.vipId);
  put(buf, VIP.icmp_group, v.icmpGroup);
  put(buf, VIP.mode, v.mode);
  put(buf, VIP.arp_group, v.arpGroup);
  return buf;
}
export function decodeVip(buf: Buffer): VipValue {
  return {
    vipId: get(buf, VIP.vip_id),
    icmpGroup: get(buf, VIP.icmp_group),
    mode: get(buf, VIP.mode),
    arpGroup: get(buf, VIP.arp_group),
  };
}

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

const RULEK = ABI_STRUCTS.farmlb_rule_key.fields;
export function encodeRuleKey(v: RuleKey): Buffer {
  const buf = Buffer.alloc(ABI_STRUCTS.farmlb_rule_key.size);
  put(buf, RULEK.slot, v.slot);
  put(buf, RULEK.family, v.family);
  put(buf, RULEK.proto, v.proto);
  put(buf, RULEK.port, v.port);
  putBytes(buf, RULEK.addr, v.addr);
  return buf;
}
export function decodeRuleKey(buf: Buffer): RuleKey {
  return {
    slot: get(buf, RULEK.slot),
    family: get(buf, RULEK.family) as 4 | 6,
    proto: get(buf, RULEK.proto),
    port: get(buf, RULEK.port),
    addr: getBytes(buf, RULEK.addr),
  };
}

/** Key of farmlb_rule_specs: a rule as the config states it. */
export interface RuleSpecKey {
  slot: number;
  proto: number;
  /** Host-order number here; stored in network order. PORT_ANY for '*'. */
  port: number;
  vipId: number;
}

const SPECK = ABI_STRUCTS.farmlb_rule_spec_key.fields;
export function encodeRuleSpecKey(v: RuleSpecKey): Buffer {
  const buf = Buffer.alloc(ABI_STRUCTS.farmlb_rule_spec_key.size);
  put(buf, SPECK.slot, v.slot);
  put(buf, SPECK.proto, v.proto);
  put(buf, SPECK.port, v.port);
  put(buf, SPECK.vip_id, v.vipId);
  return buf;
}
export function decodeRuleSpecKey(buf: Buffer): RuleSpecKey {
  return {
    slot: get(buf, SPECK.slot),
    proto: get(buf, SPECK.proto),
    port: get(buf, SPECK.port),
    vipId: get(buf, SPECK.vip_id),
  };
}

/** FARMLB_VIP_INDEX_OF: the farmlb_vip_index entry of an address, from its last two bytes. */
export function vipIndexOf(family: 4 | 6, addr: Uint8Array): number {
  const last = family === 4 ? 2 : 14;
  return (((addr[last] ?? 0) << 8) | (addr[last + 1] ?? 0)) & (VIP_INDEX_SIZE - 1);
}

/** The farmlb_vip_index value: VIP_INDEX_SIZE entry bytes (VIP_INDEX_NONE, 1 + descriptor, VIP_INDEX_MANY). */
export function encodeVipIndex(entries: Uint8Array): Buffer {
  if (entries.length !== VIP_INDEX_SIZE) throw new RangeError(`VIP index has ${entries.length} entries, not ${VIP_INDEX_SIZE}`);
  return Buffer.from(entries);
}

export function decodeVipIndex(buf: Buffer): Uint8Array {
  return getBytes(buf, ABI_STRUCTS.farmlb_vip_index.fields.entry);
}

export interface RuleValue {
  group: number;
  criterion: number;
  /** enum farmlb_mode of the entry's VIP: farmlb_rules only, 0 in farmlb_rule_specs. */
  mode?: number;
}

const RULE = ABI_STRUCTS.farmlb_rule.fields;
export function encodeRule(v: RuleValue): Buffer {
  const buf = Buffer.alloc(ABI_STRUCTS.farmlb_rule.size);
  put(buf, RULE.group, v.group);
  put(buf, RULE.criterion, v.criterion);
  put(buf, RULE.mode, v.mode ?? 0);
  return buf;
}
export function decodeRule(buf: Buffer): RuleValue {
  return { group: get(buf, RULE.group), criterion: get(buf, RULE.criterion), mode: get(buf, RULE.mode) };
}

/** One inline port entry of a VIP descriptor. */
export interface VipPortValue {
  /** Host-order number here; stored in network order. Never PORT_ANY. */
  port: number;
  proto: number;
  rule: RuleValue;
}

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

const DESC = ABI_STRUCTS.farmlb_vip_desc.fields;
const VPORT = ABI_STRUCTS.farmlb_vip_port.fields;
const RULE_SIZE = ABI_STRUCTS.farmlb_rule.size;
const VPORT_SIZE = ABI_STRUCTS.farmlb_vip_port.size;

export function encodeVipDesc(v: VipDescValue): Buffer {
  if (v.ports.length > VIP_INLINE_PORTS) throw new RangeError(`${v.ports.length} inline ports, a descriptor holds ${VIP_INLINE_PORTS}`);
  const buf = Buffer.alloc(ABI_STRUCTS.farmlb_vip_desc.size);
  putBytes(buf, DESC.addr, v.addr);
  put(buf, DESC.family, v.family);
  put(buf, DESC.flags, v.flags);
  put(buf, DESC.nports, v.ports.length);
  encodeVip(v.vip).copy(buf, DESC.vip.offset);
  v.anyPort.forEach((r, i) => encodeRule(r).copy(buf, DESC.any_port.offset + i * RULE_SIZE));
  v.ports.forEach((p, i) => {
    const at = DESC.ports.offset + i * VPORT_SIZE;
    put(buf, VPORT.port, p.port, at);
    put(buf, VPORT.proto, p.proto, at);
    encodeRule(p.rule).copy(buf, at + VPORT.rule.offset);
  });
  return buf;
}

export function decodeVipDesc(buf: Buffer): VipDescValue {
  const nports = Math.min(get(buf, DESC.nports), VIP_INLINE_PORTS);
  const rule = (at: number): RuleValue => decodeRule(buf.subarray(at, at + RULE_SIZE));
  return {
    family: get(buf, DESC.family) as 0 | 4 | 6,
    addr: getBytes(buf, DESC.addr),
    flags: get(buf, DESC.flags),
    vip: decodeVip(buf.subarray(DESC.vip.offset, DESC.vip.offset + DESC.vip.size)),
    anyPort: [rule(DESC.any_port.offset), rule(DESC.any_port.offset + RULE_SIZE)],
    ports: Array.from({ length: nports }, (_, i) => {
      const at = DESC.ports.offset + i * VPORT_SIZE;
      return { port: get(buf, VPORT.port, at), proto: get(buf, VPORT.proto, at), rule: rule(at + VPORT.rule.offset) };
    }),
  };
}

/** Index into farmlb_vip_desc. */
export function vipDescIndex(slot: number, desc: number): number {
  return slot * MAX_VIPS + desc;
}

// ---- node MACs, interfaces, requesters ------------------------------------------------

export interface NodeValue {
  /** 6 bytes */
  mac: Uint8Array;
  flags: number;
}

const NODE = ABI_STRUCTS.farmlb_node.fields;
export function encodeNode(v: NodeValue): Buffer {
  const buf = Buffer.alloc(ABI_STRUCTS.farmlb_node.size);
  putBytes(buf, NODE.mac, v.mac);
  put(buf, NODE.flags, v.flags);
  return buf;
}
export function decodeNode(buf: Buffer): NodeValue {
  return { mac: getBytes(buf, NODE.mac), flags: get(buf, NODE.flags) };
}

/** Index into farmlb_nodes. */
export function nodeIndex(slot: number, node: number): number {
  return slot * MAX_NODES + node;
}

export interface MacKey {
  slot: number;
  /** 6 bytes */
  mac: Uint8Array;
}

const MACK = ABI_STRUCTS.farmlb_mac_key.fields;
export function encodeMacKey(v: MacKey): Buffer {
  const buf = Buffer.alloc(ABI_STRUCTS.farmlb_mac_key.size);
  put(buf, MACK.slot, v.slot);
  putBytes(buf, MACK.mac, v.mac);
  return buf;
}
export function decodeMacKey(buf: Buffer): MacKey {
  return { slot: get(buf, MACK.slot), mac: getBytes(buf, MACK.mac) };
}

const NODEREF = ABI_STRUCTS.farmlb_node_ref.fields;
export function encodeNodeRef(node: number): Buffer {
  const buf = Buffer.alloc(ABI_STRUCTS.farmlb_node_ref.size);
  put(buf, NODEREF.node, node);
  return buf;
}
export function decodeNodeRef(buf: Buffer): number {
  return get(buf, NODEREF.node);
}

const IFACE = ABI_STRUCTS.farmlb_iface.fields;
export function encodeIface(mac: Uint8Array): Buffer {
  const buf = Buffer.alloc(ABI_STRUCTS.farmlb_iface.size);
  putBytes(buf, IFACE.mac, mac);
  return buf;
}
export function decodeIface(buf: Buffer): Uint8Array {
  return getBytes(buf, IFACE.mac);
}

export interface IfaceCacheValue {
  ifindex: number;
  gen: number;
  /** 6 bytes */
  mac: Uint8Array;
  known: boolean;
}

const IFCACHE = ABI_STRUCTS.farmlb_iface_cache.fields;
/** One CPU's farmlb_iface_cache entry (the program writes them; tests read them). */
export function decodeIfaceCache(buf: Buffer, at = 0): IfaceCacheValue {
  return {
    ifindex: get(buf, IFCACHE.ifindex, at),
    gen: get(buf, IFCACHE.gen, at),
    mac: Uint8Array.from(buf.subarray(at + IFCACHE.mac.offset, at + IFCACHE.mac.offset + 6)),
    known: get(buf, IFCACHE.known, at) !== 0,
  };
}

export interface RequesterKey {
  family: 4 | 6;
  /** 16 bytes, network order; IPv4 in the first 4. */
  addr: Uint8Array;
}

const REQK = ABI_STRUCTS.farmlb_requester_key.fields;
export function encodeRequesterKey(v: RequesterKey): Buffer {
  const buf = Buffer.alloc(ABI_STRUCTS.farmlb_requester_key.size);
  put(buf, REQK.family, v.family);
  putBytes(buf, REQK.addr, v.addr);
  return buf;
}
export function decodeRequesterKey(buf: Buffer): RequesterKey {
  return { family: get(buf, REQK.family) as 4 | 6, addr: getBytes(buf, REQK.addr) };
}

export interface RequesterValue {
  lastSeenNs: bigint;
  /** 6 bytes */
  mac: Uint8Array;
  group: number;
  bucket: number;
  vipId: number;
}

const REQ = ABI_STRUCTS.farmlb_requester.fields;
export function encodeRequester(v: RequesterValue): Buffer {
  const buf = Buffer.alloc(ABI_STRUCTS.farmlb_requester.size);
  put(buf, REQ.last_seen_ns, v.lastSeenNs);
  putBytes(buf, REQ.mac, v.mac);
  put(buf, REQ.group, v.group);
  put(buf, REQ.bucket, v.bucket);
  put(buf, REQ.vip_id, v.vipId);
  return buf;
}
export function decodeRequester(buf: Buffer): RequesterValue {
  return {
    lastSeenNs: get64(buf, REQ.last_seen_ns),
    mac: getBytes(buf, REQ.mac),
    group: get(buf, REQ.group),
    bucket: get(buf, REQ.bucket),
    vipId: get(buf, REQ.vip_id),
  };
}

/** farmlb_requester_budget[0]: new requesters recorded in the current window, and refused since load. */
export interface RequesterBudget {
  windowNs: bigint;
  admitted: bigint;
  refused: bigint;
}
const BUDGET = ABI_STRUCTS.farmlb_requester_budget.fields;
export function decodeRequesterBudget(buf: Buffer): RequesterBudget {
  return { windowNs: get64(buf, BUDGET.window_ns), admitted: get64(buf, BUDGET.admitted), refused: get64(buf, BUDGET.refused) };
}

export interface BucketValue {
  owner: number;
  prevOwner: number;
  flags: number;
}

const BUCKET = ABI_STRUCTS.farmlb_bucket.fields;
export function encodeBucket(v: BucketValue, into?: Buffer, at = 0): Buffer {
  const buf = into ?? Buffer.alloc(ABI_STRUCTS.farmlb_bucket.size);
  put(buf, BUCKET.owner, v.owner, at);
  put(buf, BUCKET.prev_owner, v.prevOwner, at);
  put(buf, BUCKET.flags, v.flags, at);
  return buf;
}
export function decodeBucket(buf: Buffer, at = 0): BucketValue {
  return { owner: get(buf, BUCKET.owner, at), prevOwner: get(buf, BUCKET.prev_owner, at), flags: get(buf, BUCKET.flags, at) };
}

/** Index into farmlb_buckets. */
export function bucketIndex(slot: number, group: number, bucket: number): number {
  return (slot * MAX_GROUPS + group) * NBUCKETS + bucket;
}

/** Index into farmlb_bucket_stats (not slotted). */
export function bucketStatsIndex(group: number, bucket: number): number {
  return group * NBUCKETS + bucket;
}

const COUNTER = ABI_STRUCTS.farmlb_counter.fields;
export function decodeCounter(buf: Buffer, at = 0): ReasonCounter {
  return { packets: get64(buf, COUNTER.packets, at), bytes: get64(buf, COUNTER.bytes, at) };
}

const BCOUNTER = ABI_STRUCTS.farmlb_bucket_counter.fields;
/** One CPU's farmlb_bucket_counter as the program stores it (see sumPerCpuBucketCounter). */
export interface RawBucketCounter {
  accepted: bigint;
  dropped: bigint;
  owned: ReasonCounter;
  notOwned: ReasonCounter;
}
export function decodeBucketCounter(buf: Buffer, at = 0): RawBucketCounter {
  return {
    accepted: get64(buf, BCOUNTER.accepted, at),
    dropped: get64(buf, BCOUNTER.dropped, at),
    owned: decodeCounter(buf, at + BCOUNTER.owned.offset),
    notOwned: decodeCounter(buf, at + BCOUNTER.not_owned.offset),
  };
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

function invalid(detail: string): FarmlbError {
  return new FarmlbError('FARMLB_E_DATAPLANE_TABLE_INVALID', { detail });
}

const isInt = (v: unknown, lo: number, hi: number): boolean => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;
const isNode = (v: unknown): boolean => isInt(v, 0, MAX_NODES - 1) || v === NODE_NONE;
const isGroupRef = (v: unknown): boolean => isInt(v, 0, MAX_GROUPS - 1) || v === GROUP_NONE;

/**
 * Checks a table against the ABI limits before anything is written, so a rejected table
 * leaves the running maps untouched. Throws FARMLB_E_DATAPLANE_TABLE_INVALID.
 */
export function validateTables(t: DataplaneTables): void {
  if (!isInt(t.hashSeed, 0, 0xffffffff)) throw invalid(`hash seed ${t.hashSeed} is not a 32-bit unsigned integer`);
  if (!isNode(t.selfNode)) throw invalid(`self node ${t.selfNode} is neither < ${MAX_NODES} nor NODE_NONE`);
  try {
    parseMac(t.vmac);
  } catch {
    throw invalid(`vmac "${t.vmac}" is not aa:bb:cc:dd:ee:ff`);
  }
  if (t.buckets.length > MAX_GROUPS) throw invalid(`${t.buckets.length} groups, the data plane holds ${MAX_GROUPS}`);
  t.buckets.forEach((row, group) => {
    if (row.length !== NBUCKETS) throw invalid(`group ${group} has ${row.length} buckets, not ${NBUCKETS}`);
    row.forEach((owner, bucket) => {
      if (!isNode(owner)) throw invalid(`group ${group} bucket ${bucket}: owner ${owner} is neither < ${MAX_NODES} nor NODE_NONE`);
    });
  });
  if (t.prevOwners) {
    if (t.prevOwners.length !== t.buckets.length) throw invalid(`${t.prevOwners.length} rows of previous owners for ${t.buckets.length} groups`);
    t.prevOwners.forEach((row, group) => {
      if (row.length !== NBUCKETS) throw invalid(`group ${group} has ${row.length} previous owners, not ${NBUCKETS}`);
      row.forEach((prev, bucket) => {
        if (!isNode(prev)) throw invalid(`group ${group} bucket ${bucket}: previous owner ${prev} is neither < ${MAX_NODES} nor NODE_NONE`);
        // The program reads prev == owner as no handover; the membership never writes it.
        if (prev !== NODE_NONE && prev === t.buckets[group]![bucket]) {
          throw invalid(`group ${group} bucket ${bucket}: node ${prev} is both owner and previous owner`);
        }
      });
    });
  }
  if (t.vips.length > MAX_VIPS) throw invalid(`${t.vips.length} VIPs, the data plane holds ${MAX_VIPS}`);
  const vipIds = new Set<number>();
  const vipAddrs = new Set<string>();
  for (const vip of t.vips) {
    if (!isInt(vip.id, 0, VIP_ANY - 1)) throw invalid(`VIP ${vip.addr}: id ${vip.id} out of range`);
    if (vipIds.has(vip.id)) throw invalid(`VIP id ${vip.id} appears twice`);
    vipIds.add(vip.id);
    if (vip.family !== 4 && vip.family !== 6) throw invalid(`VIP ${vip.addr}: family ${String(vip.family)}`);
    if (vip.addrBytes.length !== 16) throw invalid(`VIP ${vip.addr}: address has ${vip.addrBytes.length} bytes, not 16`);
    const addrKey = `${vip.family}/${Buffer.from(vip.addrBytes).toString('hex')}`;
    if (vipAddrs.has(addrKey)) throw invalid(`VIP ${vip.addr} appears twice`);
    vipAddrs.add(addrKey);
    if (!isGroupRef(vip.icmpGroup)) throw invalid(`VIP ${vip.addr}: icmp group ${vip.icmpGroup} out of range`);
    if (!isGroupRef(vip.arpGroup)) throw invalid(`VIP ${vip.addr}: arp group ${String(vip.arpGroup)} out of range`);
  }
  const nodeMacs = t.nodeMacs ?? [];
  if (nodeMacs.length > MAX_NODES) throw invalid(`${nodeMacs.length} node MACs, the data plane holds ${MAX_NODES}`);
  const seenMacs = new Map<string, number>();
  nodeMacs.forEach((mac, node) => {
    if (mac === null || mac === undefined) return;
    let bytes: Uint8Array;
    try {
      bytes = parseMac(mac);
    } catch {
      throw invalid(`node ${node}: MAC "${mac}" is not aa:bb:cc:dd:ee:ff`);
    }
    const text = formatMac(bytes);
    const other = seenMacs.get(text);
    if (other !== undefined) throw invalid(`nodes ${other} and ${node} have the same MAC ${text}`);
    seenMacs.set(text, node);
  });
  if (t.rules.length > MAX_RULES) throw invalid(`${t.rules.length} rules, the data plane holds ${MAX_RULES}`);
  const ruleKeys = new Set<string>();
  for (const rule of t.rules) {
    const name = `rule ${rule.proto}/${rule.vipId === VIP_ANY ? '*' : rule.vipId}:${rule.port === PORT_ANY ? '*' : rule.port}`;
    if (rule.proto !== 6 && rule.proto !== 17) throw invalid(`${name}: protocol ${String(rule.proto)} is not TCP or UDP`);
    if (!isInt(rule.port, 0, 0xffff)) throw invalid(`${name}: port out of range`);
    if (rule.vipId !== VIP_ANY && !vipIds.has(rule.vipId)) throw invalid(`${name}: no VIP with id ${rule.vipId}`);
    if (!isInt(rule.group, 0, MAX_GROUPS - 1)) throw invalid(`${name}: group ${rule.group} out of range`);
    if (!isInt(rule.criterion, 0, CriterionId.Ipid)) throw invalid(`${name}: criterion ${rule.criterion} unknown`);
    const key = `${rule.proto}/${rule.vipId}/${rule.port}`;
    if (ruleKeys.has(key)) throw invalid(`${name} appears twice`);
    ruleKeys.add(key);
  }
}

export function vipEntry(slot: number, vip: CompiledVip): { key: Buffer; value: Buffer } {
  return {
    key: encodeVipKey({ slot, family: vip.family, addr: vip.addrBytes }),
    value: encodeVip({ vipId: vip.id, icmpGroup: vip.icmpGroup, mode: modeId(vip.mode), arpGroup: vip.arpGroup }),
  };
}

/** farmlb_nodes entries of a slot: one per node id (unknown ones without FARMLB_NODE_F_KNOWN). */
export function nodeEntries(slot: number, nodeMacs: readonly (string | null)[]): { key: Buffer; value: Buffer }[] {
  return Array.from({ length: MAX_NODES }, (_, node) => {
    const mac = nodeMacs[node];
    return {
      key: encodeIndexKey(nodeIndex(slot, node)),
      value: mac ? encodeNode({ mac: parseMac(mac), flags: NODE_F_KNOWN }) : encodeNode({ mac: new Uint8Array(6), flags: 0 }),
    };
  });
}

/** farmlb_node_macs entries of a slot: each known node MAC → its node id. */
export function nodeMacEntries(slot: number, nodeMacs: readonly (string | null)[]): { key: Buffer; value: Buffer }[] {
  const out: { key: Buffer; value: Buffer }[] = [];
  nodeMacs.forEach((mac, node) => {
    if (mac) out.push({ key: encodeMacKey({ slot, mac: parseMac(mac) }), value: encodeNodeRef(node) });
  });
  return out;
}

/** farmlb_rule_specs entry: the rule as the config states it (read back, never by the program). */
export function ruleSpecEntry(slot: number, rule: CompiledRule): { key: Buffer; value: Buffer } {
  return {
    key: encodeRuleSpecKey({ slot, proto: rule.proto, port: rule.port, vipId: rule.vipId }),
    value: encodeRule({ group: rule.group, criterion: rule.criterion }),
  };
}

/** farmlb_rules entry: one resolved (VIP address, proto, port) → winning rule. */
export function resolvedRuleEntry(slot: number, entry: ResolvedRule): { key: Buffer; value: Buffer } {
  return {
    key: encodeRuleKey({ slot, family: entry.family, proto: entry.proto, port: entry.port, addr: entry.addrBytes }),
    value: encodeRule({ group: entry.group, criterion: entry.criterion, mode: modeId(entry.mode) }),
  };
}

const NO_RULE: RuleValue = { group: 0, criterion: 0, mode: 0 };

function inlineRule(e: ResolvedRule): RuleValue {
  return { group: e.group, criterion: e.criterion, mode: modeId(e.mode) };
}

/** The farmlb_vip_desc value of one descriptor of a VipLayout. */
export function vipDescValue(d: VipDescriptor): VipDescValue {
  const { vip } = d;
  const flags =
    (d.anyPort[6] ? VIP_F_ANY_TCP : 0) |
    (d.anyPort[17] ? VIP_F_ANY_UDP : 0) |
    (d.overflow[6] ? VIP_F_OVERFLOW_TCP : 0) |
    (d.overflow[17] ? VIP_F_OVERFLOW_UDP : 0);
  return {
    family: vip.family,
    addr: vip.addrBytes,
    flags,
    vip: { vipId: vip.id, icmpGroup: vip.icmpGroup, mode: modeId(vip.mode), arpGroup: vip.arpGroup },
    anyPort: [d.anyPort[6] ? inlineRule(d.anyPort[6]) : NO_RULE, d.anyPort[17] ? inlineRule(d.anyPort[17]) : NO_RULE],
    ports: d.ports.map((e) => ({ port: e.port, proto: e.proto, rule: inlineRule(e) })),
  };
}

/**
 * farmlb_vip_desc entries of a slot: every descriptor index of the slot, those beyond the
 * layout's VIPs zeroed (family 0), so no descriptor of an earlier table survives a flip.
 */
export function vipDescEntries(slot: number, layout: VipLayout): { key: Buffer; value: Buffer }[] {
  if (layout.descriptors.length > MAX_VIPS) throw invalid(`${layout.descriptors.length} VIPs, the data plane holds ${MAX_VIPS}`);
  return Array.from({ length: MAX_VIPS }, (_, k) => {
    const d = layout.descriptors[k];
    return {
      key: encodeIndexKey(vipDescIndex(slot, k)),
      value: d ? encodeVipDesc(vipDescValue(d)) : Buffer.alloc(ABI_STRUCTS.farmlb_vip_desc.size),
    };
  });
}
