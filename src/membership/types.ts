// The data the membership engine takes and gives (docs/membership.md). Times are bigint
// nanoseconds of the local CLOCK_MONOTONIC (the kernel lease's base) and are always passed
// in: the engine never reads a clock.

import type { SplitBrainPolicy } from '../config/types.js';

/** Eligibility a node advertises: UP = willing and allowed to serve; WAIT = serves nothing. */
export type NodeState = 'UP' | 'WAIT';

/** The latest heartbeat received from a peer, acknowledged in every heartbeat we send. */
export interface AckEntry {
  node: string;
  incarnation: bigint;
  seq: number;
}

/** What the sender knows about a peer it hears directly (indirect evidence for the others). */
export interface HeardEntry {
  node: string;
  /** Time since the sender last received a heartbeat from `node`, at the moment it sent this one. */
  ageMs: number;
  /** The state `node` advertised in that heartbeat. */
  state: NodeState;
  /** `node` hears the sender too (its latest heartbeat lists the sender as freshly heard). */
  mutual: boolean;
  /** The table `node` had installed in that heartbeat (what it may serve). */
  epoch: number;
  tableDigest: string;
}

/** Runtime power overrides (farmlb power/drain/undrain): one versioned set for the farm. */
export interface PowerOverride {
  node: string;
  /** null = every group the node is a host of. */
  group: string | null;
  power: number;
}

export interface PowerOverrides {
  /** Highest version wins; equal versions: the greater `origin` name wins. */
  version: number;
  /** Node where this version was made ('' for none). */
  origin: string;
  entries: PowerOverride[];
}

export interface Heartbeat {
  /** Wire body version: what it came in, or what to send it in (codec.ts, docs "Heartbeats"). */
  v: 1 | 2;
  /**
   * A v1 body from a node that reads v2 (it speaks v1 for a peer that does not): its v1
   * heartbeats must not keep the farm on v1 once the last v1-only node is gone. Implied by v2.
   */
  readsV2?: true;
  module: string;
  from: string;
  /** Sender boot id; strictly greater after every restart (wall-clock ns at start). */
  incarnation: bigint;
  /** +1 per heartbeat within an incarnation, from 1. */
  seq: number;
  /** Sender's CLOCK_MONOTONIC when sent. */
  sentAtNs: bigint;
  state: NodeState;
  /** Why WAIT (empty when UP). */
  cause: string;
  configDigest: string;
  /**
   * A configuration the sender has loaded (reload) and will switch to once every node of
   * cluster.xml has it too (docs/operations.md, "Changing the configuration"). Absent: none.
   */
  stagedDigest?: string;
  /** The sender's installed table: epoch, the leader that made it, its view, its digest. */
  epoch: number;
  leader: string | null;
  view: string[];
  tableDigest: string;
  /** The installed table, one row per group: 256 node indexes (cluster.xml order; 255 = none), base64. */
  table: string[];
  /**
   * The installed table's previous owners (handover), encoded like `table`. Absent = no
   * bucket in handover (and what a sender without handover support means).
   */
  prev?: string[];
  /** Present when the sender is the previous owner of some bucket of its installed table. */
  holdings?: HeartbeatHoldings;
  powers: PowerOverrides;
  acks: AckEntry[];
  heard: HeardEntry[];
}

/**
 * What a previous owner still holds (docs/membership.md, "Handover"). The leader ends the
 * handover of bucket b when the bit of b is clear in a report whose `epoch` is the sender's
 * installed epoch and whose table names the sender previous owner of b.
 */
export interface HeartbeatHoldings {
  /** Epoch of the installed table the connection sample was taken under; 0 = no sample yet. */
  epoch: number;
  /**
   * Per group: base64 of 32 bytes, bit b (byte b>>3, bit b&7, least significant first) set =
   * the sender is previous owner of b and holds ≥ 1 connection in it. Without a sample for
   * the installed epoch every bucket the sender is previous owner of is set (conservative).
   */
  held: string[];
  /** Per group: connections the sample counted in the sender's previous-owner buckets (for display). */
  connections: number[];
}

/** A connection sample of the buckets this node is handing over (the daemon's Holdings). */
export interface HoldingsSample {
  /** Epoch of the installed table the sample was taken under. */
  epoch: number;
  /** counts[group][bucket]: connections held; only buckets where this node is previous owner count. */
  counts: number[][];
  /** CLOCK_MONOTONIC ns of the sample. */
  sampledAtNs: bigint;
}

/** A bucket table agreed for a view. */
export interface ViewTable {
  epoch: number;
  leader: string | null;
  view: string[];
  /** owners per group (Group.index), 256 entries each; null = unowned. */
  groups: (string | null)[][];
  /**
   * Previous owners per group, same shape as `groups`: the node that still serves its own
   * TCP connections of a moving bucket; null = not in handover. Never equal to the owner.
   */
  prev: (string | null)[][];
  /** Digest of owners and previous owners (tableDigest()). */
  digest: string;
}

export interface MembershipTiming {
  /** Heartbeat period. */
  pulseMs: number;
  /** Missed pulses (no evidence from any view member) before a follower is lost. */
  slostCount: number;
  /** Missed pulses before the leader is lost. */
  mlostCount: number;
  /** Kernel lease length, counted from the send time of an acknowledged heartbeat. */
  leaseMs: number;
  /**
   * How long past its deadline the data plane may still accept traffic under a lease (the
   * granularity of its lease clock): a taker waits this much longer. The data plane's fact
   * (FARMLB_LEASE_CLOCK_SLACK_NS, docs/datapath.md §6), passed in by the daemon.
   */
  leaseClockSlackMs: number;
}

export interface GroupPowers {
  name: string;
  /** Configured powers (groupPowers() of src/balance/compile.ts). */
  powers: Map<string, number>;
}

export interface MembershipEngineOptions {
  module?: string;
  self: string;
  /** cluster.xml's node names, in file order (node ids). */
  nodes: string[];
  /** Indexed by Group.index. */
  groups: GroupPowers[];
  configDigest: string;
  timing: MembershipTiming;
  splitBrain: SplitBrainPolicy;
  incarnation: bigint;
  /** Monotonic time at start (startup discovery grace counts from here). */
  startNs: bigint;
  /** The table found in the pinned maps of a previous run (adopted, not trusted for serving). */
  initialTable?: (string | null)[][];
  /** powers.json of the run directory. */
  powerOverrides?: PowerOverrides;
  /**
   * Connection-preserving moves (`<farmlb handover_limit>`, ms): how long a moving bucket
   * keeps its previous owner at most. 0 or absent = off: a bucket moves in one hand-over.
   */
  handoverLimitMs?: number;
}

/** Why a previous owner stopped being named for some buckets. */
export type HandoverEndReason =
  /** It reported no connection left in them. */
  | 'drained'
  /** `handoverLimitMs` passed: its remaining connections are cut. */
  | 'limit'
  /** It left the view; cleared once its lease had surely run out. */
  | 'prev_lost'
  /**
   * Its connections are cut: the bucket moved again (the owner it was taken from is the
   * previous owner now), or another node may take every packet of it (after a partition).
   */
  | 'moved'
  /** The bucket went back to it: it owns its connections again, nothing is cut. */
  | 'returned';

export type MembershipEvent =
  | { type: 'state'; state: NodeState; cause: string }
  | {
      type: 'view';
      epoch: number;
      leader: string | null;
      view: string[];
      cause: string;
      /** Leader only, when a node was lost: ms from its last evidence to the decision. */
      detectionMs?: number;
      /** Buckets of this node's groups whose owner changed. */
      moved: number;
      /** Buckets this node gained / lost. */
      gained: number;
      lost: number;
    }
  | { type: 'leader'; leader: string | null }
  | { type: 'peer_lost'; node: string; detectionMs: number }
  | { type: 'peer_joined'; node: string; incarnation: string }
  | { type: 'split_brain'; view: string[]; missing: string[] }
  | { type: 'split_brain_healed'; view: string[] }
  | { type: 'quorum_lost'; alive: number; needed: number }
  | { type: 'config_mismatch'; node: string; ours: string; theirs: string; reference: string }
  /** Every node of cluster.xml has the staged configuration: this node switched to it (the daemon applies it). */
  | { type: 'config_switched'; from: string; to: string }
  | { type: 'powers'; overrides: PowerOverrides; origin: 'local' | 'peer' }
  /**
   * `reason` is a fixed text (a log key: the rejections of one sender are rate-limited per
   * reason); what the heartbeat said, when it matters, is in `detail`.
   */
  | { type: 'rejected'; from: string; reason: string; detail?: string }
  /** Leader only: buckets of `group` start handing over from `from` (their owner-to-be: `to`, null = none yet). */
  | { type: 'handover_started'; group: string; from: string; to: string | null; buckets: number[] }
  /**
   * Leader only: `from` is no longer previous owner of `buckets`. connectionsLeft (reasons
   * 'limit' and 'moved'): the connections it last reported holding in the group's handed-over
   * buckets — exact when all of them end together, else an upper bound.
   */
  | { type: 'handover_ended'; group: string; from: string; buckets: number[]; reason: HandoverEndReason; connectionsLeft?: number };

/** What one call to the engine asks the caller to do, in this order. */
export interface EngineOutput {
  /**
   * Install this table in the data plane (before transmitting `send`). After a change of
   * leader its `groups` may hold back buckets it gains us (docs/membership.md, "Switching
   * leaders"): then a later output gives the same epoch again, complete (`completesTable`).
   */
  table?: ViewTable;
  /** `table` is the installed epoch again, now with the buckets held back since a change of leader. */
  completesTable?: true;
  /** Write this lease deadline (monotonic ns); 0n = revoke now. */
  leaseDeadlineNs?: bigint;
  /**
   * The tables `leaseDeadlineNs` holds for besides the installed one: those of `leader` from
   * `fromEpoch` on (the lineage, docs/membership.md "Kernel lease"). A data plane still on
   * an earlier table of it may take the deadline before the tables queued after it.
   */
  leaseLineage?: { leader: string; fromEpoch: number };
  /** Transmit to every peer on every LAN. */
  send?: Heartbeat;
  /** The module state: UP = eligible and serving its view's table. */
  state: NodeState;
  cause: string;
  events: MembershipEvent[];
}

export interface PeerStatus {
  node: string;
  alive: boolean;
  member: boolean;
  /** ms since any evidence (direct or reported by a peer); undefined = never heard. */
  lastHeardMs?: number;
  /** ms since a heartbeat was received directly. */
  lastDirectMs?: number;
  state?: NodeState;
  cause?: string;
  incarnation?: string;
  configDigest?: string;
  epoch?: number;
  /** Heartbeats accepted from this peer since start (all incarnations). */
  heartbeatsReceived?: number;
  /** Heartbeats of this peer never received: seq gaps within an incarnation. */
  heartbeatsMissed?: number;
  /**
   * ms since a well-formed frame from this peer's address failed the MAC (it probably uses
   * another key). Reported only: it changes no state (docs/security.md).
   */
  foreignKeyMs?: number;
  /** The key id that peer's frames named (8 hex digits; absent for frames of releases without key ids). */
  foreignKeyId?: string;
}

/** Buckets in handover in one group of the installed table. */
export interface GroupHandover {
  group: string;
  /** Buckets whose installed table names a previous owner. */
  buckets: number;
  prevs: {
    node: string;
    /** Buckets this node is previous owner of. */
    buckets: number;
    /** Of those, the ones it last reported still holding connections in (undefined = no report). */
    held?: number;
    /** Connections it last reported holding in them (undefined = no sample reported yet). */
    connections?: number;
  }[];
}

/** What the Corosync backend adds to its status (docs/membership.md, "Corosync backend"). */
export interface CorosyncStatus {
  /** A session with corosync is open (its descriptors are live). */
  connected: boolean;
  /** Corosync does not answer: the call pending for longer than half a lease (docs/membership.md, "When corosync hangs"). */
  hung?: { call: string; pendingMs: number };
  /** How often corosync has not answered since this daemon started. */
  hangs: number;
  /** Farm messages dropped from the bounded outbox while corosync did not take them. */
  droppedMessages: number;
  /** corosync's node id of this node. */
  localNodeId: number;
  /** The totem ring this node is in, "nodeid.seq" in hex (corosync-quorumtool's Ring ID); null before the first. */
  ringId: string | null;
  /** votequorum's answer for that ring; null while unknown (no answer yet for the current ring). */
  quorate: boolean | null;
  /** The members of the CPG group: corosync node id, process id, node name, and what the farm knows of them. */
  members: { nodeid: number; pid: number; node: string | null; state: string }[];
  /** A state-transfer round runs (members joined): the table is the one before it until all answered. */
  syncing: boolean;
  transport?: string;
  tokenMs?: number;
  consensusMs?: number;
  votequorum?: { expectedVotes: number; totalVotes: number; quorum: number; twoNode: boolean; waitForAll: boolean; qdevice: boolean; qdeviceAlive: boolean };
}

export interface MembershipStatus {
  /** Which engine: farmlb's heartbeats (absent = builtin) or Corosync. */
  backend?: 'builtin' | 'corosync';
  corosync?: CorosyncStatus;
  node: string;
  state: NodeState;
  cause: string;
  leader: string | null;
  epoch: number;
  view: string[];
  tableDigest: string;
  table: ViewTable;
  leaseDeadlineNs: bigint;
  splitBrain: boolean;
  /** Configured nodes heard since start that are not in the view. */
  missing: string[];
  quorum: boolean;
  configDigest: string;
  /** A reloaded configuration waiting for every node (stageConfig). */
  stagedDigest?: string;
  referenceDigest: string;
  powers: PowerOverrides;
  incarnation: string;
  peers: PeerStatus[];
  /** Groups of the installed table with buckets in handover (empty: none). */
  handover: GroupHandover[];
}
