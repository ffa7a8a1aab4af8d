// What the data plane needs to decide packets, independent of how it is stored: produced
// by src/balance/compile.ts from a FarmConfig, a ClusterConfig and a bucket table, and
// written either into BPF maps (XdpDataplane) or kept in memory (ModelDataplane).
// Layout rules and semantics: docs/datapath.md and bpf/farmlb_abi.h.

import type { Family, VmacMode } from '../config/types.js';

export const NBUCKETS = 256;
export const NODE_NONE = 0xff;
export const GROUP_NONE = 0xff;
export const VIP_ANY = 0xffff;
export const PORT_ANY = 0;

/** enum farmlb_criterion of the ABI header. */
export const CriterionId = { Addr: 0, Port: 1, Ipid: 2 } as const;
export type CriterionId = (typeof CriterionId)[keyof typeof CriterionId];

/** enum farmlb_mode of the ABI header. */
export const ModeId = { Invisible: 0, Directed: 1 } as const;
export type ModeId = (typeof ModeId)[keyof typeof ModeId];

/** enum farmlb_reason of the ABI header, by name. Index = numeric value. */
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

export const XDP_ABORTED = 0;
export const XDP_DROP = 1;
export const XDP_PASS = 2;
export const XDP_TX = 3;
export const XDP_REDIRECT = 4;

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
  buckets: number[][];
  /**
   * prevOwners[group][bucket] = the previous owner's node id while the bucket is in handover,
   * else NODE_NONE (farmlb_bucket.prev_owner). Same shape as `buckets`; absent = no handover.
   */
  prevOwners?: number[][];
  /**
   * MAC (aa:bb:cc:dd:ee:ff) of each node id on the VIP LAN, null when unknown: where
   * vmac_directed forwards, and how a frame from a node is recognised (never forwarded twice).
   * Index = node id; at most MAX_NODES entries.
   */
  nodeMacs: (string | null)[];
}

export interface PacketDecision {
  action: number;
  reason: Reason;
  /** Set when the decision went through a bucket. */
  group?: number;
  bucket?: number;
  owner?: number;
  /** Output frame: the input, rewritten in place for XDP_TX and VMAC rewrites, resized for a neighbour advertisement. */
  frame: Uint8Array;
  /** Set for an ARP request / NS for a VIP that was recorded in farmlb_requesters. */
  requester?: Omit<Requester, 'lastSeenNs'>;
}

/** One entry of farmlb_requesters: a client that asked this segment where a VIP is (arpreroute). */
export interface Requester {
  family: 4 | 6;
  /** The requester's address, canonical text. */
  addr: string;
  /** Ethernet source of its request (aa:bb:cc:dd:ee:ff): where a unicast reply goes. */
  mac: string;
  /** The group that decided who answers (arp group in vmac_directed, ICMP group in vmac_invisible), or GROUP_NONE. */
  group: number;
  /** Bucket of the requester's address (hashed as on_addr). */
  bucket: number;
  vipId: number;
  /** CLOCK_MONOTONIC ns of the last request seen. */
  lastSeenNs: bigint;
}

export interface ReasonCounter {
  packets: bigint;
  bytes: bigint;
}

export interface BucketCounter {
  /** Passed by this node, or an ARP/NS it answered. */
  accepted: bigint;
  /** Everything else the bucket decided: dropped, another node answers, or forwarded to the owner (tx_forward). */
  dropped: bigint;
}

/** One data plane: where tables live and packets are decided. */
export interface Dataplane {
  /** Replace the tables atomically: every packet sees either the old tables or the new ones. */
  apply(tables: DataplaneTables): Promise<void>;
  /** Set the kernel lease deadline (CLOCK_MONOTONIC ns). 0 = no lease. */
  setLease(deadlineNs: bigint): Promise<void>;
  /** The tables currently active. */
  tables(): DataplaneTables | undefined;
  reasonCounters(): Promise<Record<Reason, ReasonCounter>>;
  /** Summed over CPUs; [group][bucket]. */
  bucketCounters(): Promise<BucketCounter[][]>;
  close(): Promise<void>;
}
