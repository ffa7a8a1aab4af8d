// Where a daemon's bucket table and lease come from. The daemon (farm-daemon.ts) owns one
// start/stop path; the source is the only difference between `farmlb run --static` (the
// configured powers as if every node were up, lease renewed from the daemon's own
// liveness) and `farmlb run` (the membership engine: views, epochs, two-way lease).

import type { BucketTable } from '../balance/assign.js';
import type { ClusterConfig, FarmConfig } from '../config/types.js';
import type { PowerChange } from '../api/control.js';
import type { NodeStatus, ViewChange } from '../api/status.js';
import type { MembershipCpu, MembershipDatagrams } from '../membership/membership.js';
import type { CorosyncStatus } from '../membership/types.js';

/** What a source decided; the daemon applies it (tables, lease, state) in this order. */
export interface SourceDecision {
  /** The module state the source wants (the daemon adds its own reasons for WAIT). */
  state: 'WAIT' | 'UP';
  cause: string;
  /** A new table to install (undefined: keep the installed one). */
  table?: { epoch: number; table: BucketTable; view: string[]; cause: string; detectionMs?: number;
    /** The installed epoch again, now complete: buckets held back after a change of leader (docs/membership.md). */
    completes?: boolean };
  /** A new lease deadline (CLOCK_MONOTONIC ns). Never extended by the daemon on its own. */
  leaseDeadlineNs?: bigint;
}

/** What the daemon gives a source once the data plane runs. */
export interface SourceSink {
  /** Queues the decision; resolves once it is applied (decisions are applied in call order). */
  decide(d: SourceDecision): Promise<void>;
  /**
   * A lease renewal that may reach the kernel ahead of the decisions queued before it (the
   * membership's LeaseGate decided so: src/membership/lease-gate.ts). Written at once, also
   * during an install, if the node serves (UP, with a valid lease); returns whether it was.
   */
  renewLease?(deadlineNs: bigint): boolean;
  /**
   * Revokes the lease at once, ahead of the queued decisions (the membership left the lineage
   * of a table still being installed: src/membership/lease-gate.ts, leaves()).
   */
  revokeLease?(cause: string): void;
  /** Monotonic clock, ns (CLOCK_MONOTONIC: the lease's base). */
  nowNs(): bigint;
  /** The staged configuration (reload() said 'staged') is now the farm's: apply it with `table`, before the next heartbeat. */
  configSwitched?(digest: string, table: BucketTable): Promise<void>;
}

export interface SourceView {
  view: string[];
  epoch: number;
  leader: string | null;
  splitBrain: boolean;
  /** Per node: state as known, last heard, runtime power override. */
  peers: Map<string, { state: NodeStatus['state']; lastHeardMs?: number; overrides?: Record<string, number> } & Pick<NodeStatus, 'heartbeatsReceived' | 'heartbeatsMissed' | 'foreignKeyMs' | 'foreignKeyId'>>;
  lastViewChange: ViewChange | null;
  /** CPU of the heartbeat path since start (membership mode only). */
  membershipCpu?: MembershipCpu;
  /** The heartbeat port's datagrams since start: sent, failed sends, refused (built-in membership). */
  membershipDatagrams?: MembershipDatagrams;
  /** Membership mode: the engine (<farmlb membership>), and Corosync's state under the corosync backend. */
  backend?: 'builtin' | 'corosync';
  corosync?: CorosyncStatus;
}

/**
 * Connections this node still holds as the previous owner of buckets in handover
 * (docs/membership.md "Handover"), counted from the kernel's socket table
 * (src/daemon/holdings.ts). The sample is taken after the table of `epoch` was applied, so
 * a count of 0 proves the node is done with a bucket: a previous owner never accepts a new
 * connection.
 */
export interface Holdings {
  /** Epoch of the installed table the sample was taken under. */
  epoch: number;
  /** counts[group][bucket]: established (not LISTEN, not TIME_WAIT) sockets; 0 where this node is not the previous owner. */
  counts: number[][];
  /** CLOCK_MONOTONIC ns when the sample was taken. */
  sampledAtNs: bigint;
}

export interface TableSource {
  readonly mode: 'static' | 'membership';
  /**
   * Lease renewals that extend the written deadline by less than this are not written (the
   * membership renews on every acknowledgement: hundreds a second at 16 nodes). The written
   * lease is never further than this behind, and is written anyway when it would run out
   * within it, so coalescing only ever shortens what the kernel allows. Absent: write all.
   */
  readonly leaseWriteStepNs?: bigint;
  /** The table and lease the data plane starts with (before the program is attached). */
  initial(): { table: BucketTable; leaseDeadlineNs: bigint; announce: boolean };
  start(sink: SourceSink): Promise<void>;
  stop(): Promise<void>;
  /** The local checks or an administrative stop: false = this node must serve nothing. */
  setLocalHealth(ok: boolean, cause: string): void;
  /** The latest connection sample of the buckets this node is handing over (optional: the static source ignores it). */
  setHoldings?(h: Holdings): void;
  /** A runtime power change (farmlb power/drain/undrain). */
  setPower(change: PowerChange): Promise<void>;
  /**
   * A SIGHUP reload checked by the host: the table to apply now, 'staged' (the membership
   * applies it later, through SourceSink.configSwitched, once every node has it), or a
   * refusal (throws).
   */
  reload(farm: FarmConfig, cluster: ClusterConfig): BucketTable | 'staged' | Promise<BucketTable | 'staged'>;
  view(): SourceView;
}
