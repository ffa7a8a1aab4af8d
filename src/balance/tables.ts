// The farm's own vocabulary, below every room that uses it: buckets, node and group ids, the
// criteria and VIP modes, and the tables a node serves from — the compiled VIPs and rules
// and who owns each bucket. src/balance/compile.ts produces DataplaneTables from a config and
// a bucket table; the membership agrees on bucket tables; the data planes
// (src/dataplane/) store and decide from them. The numeric values are those of
// bpf/farmlb_abi.h (test/unit/abi.test.ts compares them). Pure: types and constants only.

import type { Family, VmacMode } from '../config/types.js';

export const NBUCKETS = 256;
export const NODE_NONE = 0xff;
/** FARMLB_MAX_NODES: node ids are indexes into cluster.xml's node list, one byte each. */
export const MAX_NODES = 64;
export const GROUP_NONE = 0xff;
export const VIP_ANY = 0xffff;
export const PORT_ANY = 0;

/** enum farmlb_criterion of the ABI header. */
export const CriterionId = { Addr: 0, Port: 1, Ipid: 2 } as const;
export type CriterionId = (typeof CriterionId)[keyof typeof CriterionId];

/** enum farmlb_mode of the ABI header. */
export const ModeId = { Invisible: 0, Directed: 1 } as const;
export type ModeId = (typeof ModeId)[keyof typeof ModeId];

/**
 * Why a packet met its fate (enum farmlb_reason of the ABI header), by name; index = numeric
 * value. The data planes count them; `farmlb explain` names them (docs/datapath.md §6).
 */
export const REASONS = [
  'pass_not_vip',
  'pass_owned',
  'pass_fragment',
  'pass_control',
  'drop_not_owned',
  'drop_no_rule',
  'drop_lease',
  'drop_malformed',
  // ARP/ND answered in XDP, vmac_directed forwarding (docs/datapath.md §8, §9)
  'tx_arp_reply',
  'drop_arp_not_mine',
  'tx_forward',
  'drop_arp_dad',
  'drop_no_iface',
  // connection-preserving handover (docs/datapath.md §12)
  'pass_handover_prev',
  'pass_handover_new',
  'drop_handover',
  'tx_forward_prev',
] as const;
export type Reason = (typeof REASONS)[number];

/**
 * Who owns each bucket: rows[group][bucket] = node id or NODE_NONE, one row of NBUCKETS per
 * group. The one shape a bucket table has from the membership to the data plane.
 */
export type BucketRows = number[][];

export interface CompiledVip {
  id: number;
  family: Family;
  /** Canonical textual address. */
  addr: string;
  /** 16 bytes, network order; IPv4 in the first 4 bytes, the rest zero. */
  addrBytes: Uint8Array;
  /** First group (file order) with a rule covering this VIP; GROUP_NONE if none. */
  icmpGroup: number;
  /**
   * Group of the proto="arp" rule covering this VIP (a VIP-specific rule beats '*'), or
   * GROUP_NONE. vmac_directed: its owner of hash(requester) answers ARP/NS; GROUP_NONE = every node.
   */
  arpGroup: number;
  mode: VmacMode;
}

export interface CompiledRule {
  /** 6 (TCP) or 17 (UDP); ARP rules are not in this table. */
  proto: 6 | 17;
  /** Destination port in host order; PORT_ANY (0) for '*'. */
  port: number;
  /** VIP id; VIP_ANY for '*'. */
  vipId: number;
  group: number;
  criterion: CriterionId;
}

export interface DataplaneTables {
  hashSeed: number;
  /** This node's id (index in ClusterConfig.nodes); NODE_NONE when not a member. */
  selfNode: number;
  /** aa:bb:cc:dd:ee:ff */
  vmac: string;
  vips: CompiledVip[];
  rules: CompiledRule[];
  /** buckets[group][bucket] = owner node id or NODE_NONE; one row of 256 per group. */
  buckets: BucketRows;
  /**
   * prevOwners[group][bucket] = the previous owner's node id while the bucket is in handover,
   * else NODE_NONE (farmlb_bucket.prev_owner). Same shape as `buckets`; absent = no handover.
   */
  prevOwners?: BucketRows;
  /**
   * MAC (aa:bb:cc:dd:ee:ff) of each node id on the VIP LAN, null when unknown: where
   * vmac_directed forwards, and how a frame from a node is recognised (never forwarded twice).
   * Index = node id; at most MAX_NODES entries.
   */
  nodeMacs: (string | null)[];
}
