// The data plane's own types: verdicts and reasons, counters, and the Dataplane interface.
// The tables it decides from (DataplaneTables: produced by src/balance/compile.ts from a
// FarmConfig, a ClusterConfig and a bucket table) are written either into BPF maps
// (XdpDataplane) or kept in memory (ModelDataplane). Semantics: docs/datapath.md and
// bpf/farmlb_abi.h.

// The farm's vocabulary lives below balance (src/balance/tables.ts); the data plane speaks it
// and re-exports it for its own consumers.
export {
  CriterionId,
  GROUP_NONE,
  ModeId,
  NBUCKETS,
  NODE_NONE,
  PORT_ANY,
  REASONS,
  VIP_ANY,
  type BucketRows,
  type CompiledRule,
  type CompiledVip,
  type DataplaneTables,
  type Reason,
} from '../balance/tables.js';
import type { BucketRows, DataplaneTables, Reason } from '../balance/tables.js';

export const XDP_ABORTED = 0;
export const XDP_DROP = 1;
export const XDP_PASS = 2;
export const XDP_TX = 3;
export const XDP_REDIRECT = 4;

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
  /**
   * Replace who owns each bucket (and the handover's previous owners), keeping everything
   * else the last apply() set: a membership change, written without recompiling or comparing
   * the rest. Atomic like apply(). Throws FARMLB_E_DATAPLANE_TABLE_INVALID before any apply().
   */
  applyBuckets(buckets: BucketRows, prevOwners?: BucketRows): Promise<void>;
  /**
   * Set the kernel lease deadline (CLOCK_MONOTONIC ns). 0 = no lease. Takes effect at once,
   * not after an apply() or applyBuckets() under way.
   */
  setLease(deadlineNs: bigint): Promise<void>;
  /** The tables currently active. */
  tables(): DataplaneTables | undefined;
  reasonCounters(): Promise<Record<Reason, ReasonCounter>>;
  /** Summed over CPUs; [group][bucket]. */
  bucketCounters(): Promise<BucketCounter[][]>;
  close(): Promise<void>;
}
