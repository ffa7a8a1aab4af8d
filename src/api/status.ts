// The status a running daemon reports: one data object, rendered by `farmlb status` (text,
// or as is with --json), answered on the control socket and, in part, by GET /health.

import type { MembershipCpu, MembershipDatagrams } from '../membership/membership.js';
import type { CorosyncStatus } from '../membership/types.js';
import type { AppAction, AppWhen, CheckerKind } from '../config/types.js';
import type { ResourceSnapshot } from '../checks/resource.js';
import type { ScriptResult } from '../daemon/scripts.js';

export type ModuleState = 'STOP' | 'WAIT' | 'UP';

/** One resource as `farmlb checks` and the status show it. */
export interface CheckerStatus extends ResourceSnapshot {
  resource: string;
  kind: CheckerKind | 'proc';
  target: string;
  when: AppWhen;
  action: AppAction;
  /** The action in force: restart/stopstart without module scripts act as wait. */
  effectiveAction: AppAction;
  fall: number;
  rise: number;
  intervalMs: number;
  timeoutMs: number;
}

export interface ApplicationStatus {
  /** Scripts configured (<user>). */
  scripts: boolean;
  /** stopped: not started or stopped; starting/stopping: start_both/stop_both running; failed: start_both failed. */
  phase: 'stopped' | 'starting' | 'running' | 'stopping' | 'failed';
  /** Restarts and stopstarts within the current loop_interval, and the limit. */
  loops: number;
  maxloop: number;
  /** Set when maxloop stopped the module (until farmlb start). */
  stoppedBy?: string;
  lastScripts: ScriptResult[];
}



export interface NodeStatus {
  name: string;
  /** Node id in the maps (index in cluster.xml). */
  id: number;
  self: boolean;
  /** In this node's current view. */
  inView: boolean;
  /** What this node knows of it: UP or WAIT as it says in its heartbeats, lost when not heard, unknown never heard. */
  state: 'UP' | 'WAIT' | 'lost' | 'unknown';
  /** Buckets it owns in the installed table, per group name. */
  buckets: Record<string, number>;
  /**
   * Buckets it is handing over, per group name: the installed table names it their previous
   * owner (docs/datapath.md §12), so it still serves its established TCP connections in them.
   * A node is empty (drained) when `buckets` and `handingOver` are 0 in every group.
   */
  handingOver?: Record<string, number>;
  /** buckets / 256, per group name. */
  share: Record<string, number>;
  /** Its power per group name: the runtime override (farmlb power/drain) if any, else the configured one. */
  power: Record<string, number>;
  /** True when a runtime override (farmlb power/drain) applies to it. */
  overridden: boolean;
  /** Milliseconds since its last heartbeat was heard (by anyone in the view), when known. */
  lastHeardMs?: number;
  /** Heartbeats received from this peer since this daemon started (membership mode only). */
  heartbeatsReceived?: number;
  /** Heartbeats of this peer that never arrived: gaps in its sequence numbers (membership mode only). */
  heartbeatsMissed?: number;
  /**
   * Milliseconds since a well-formed heartbeat from this peer's configured address failed
   * authentication: it probably uses another key (membership mode only). Reported, never
   * acted upon: a forged frame must not take a node out of the farm.
   */
  foreignKeyMs?: number;
  /** The key id those heartbeats named (absent: a release without key ids sent them). */
  foreignKeyId?: string;
  /**
   * This node only: the buckets it hands over as their previous owner and the connections it
   * still holds in them (sampled from its socket table every 250 ms while prevBuckets > 0;
   * sampledAtMs = wall clock of the last sample).
   */
  handover?: { prevBuckets: number; connections: number; sampledAtMs?: number; carriedTotal?: number; lostTotal?: number };
  /**
   * This node only: SYN cookies, which defeat the handover's socket test. mode =
   * net.ipv4.tcp_syncookies; sentRecently = cookies sent within the last 30 s; sentTotal =
   * TcpExt SyncookiesSent.
   */
  synCookies?: { mode: 0 | 1 | 2; sentRecently: boolean; sentTotal: number };
}

export interface ViewChange {
  /** Wall clock (ms since the epoch) when the table was installed. */
  at: number;
  epoch: number;
  view: string[];
  cause: string;
  /** From the last evidence of the change (e.g. last heartbeat of a lost node) to its detection. */
  detectionMs?: number;
  /** From the detection to the table being in the data plane on this node. */
  installMs?: number;
  /** Buckets whose owner changed (all groups). */
  moved?: number;
}

export interface InterfaceStatus {
  ifname: string;
  vmacMode: 'vmac_invisible' | 'vmac_directed';
  /** --xdp-mode as given. */
  requested: 'auto' | 'native' | 'generic';
  xdpMode: 'native' | 'generic';
  reason: string;
  warning?: string;
}

export interface DaemonStatus {
  node: string;
  module: string;
  /** static: `farmlb run --static`; membership: the heartbeat protocol decides the table. */
  mode: 'static' | 'membership';
  pid: number;
  state: ModuleState;
  /** Why the module is in this state (WAIT: the check that fails, the administrative stop, the config difference…). */
  stateCause: string;
  /** Wall clock (ms since the epoch) of the last state change. */
  stateSince: number;
  /** `farmlb stop` holds the module in WAIT until `farmlb start`. */
  admin: 'started' | 'stopped';
  /** UP and the kernel lease valid: what ready.txt answers. */
  ready: boolean;
  view: string[];
  epoch: number;
  leader: string | null;
  groups: string[];
  nodes: NodeStatus[];
  /** Buckets this node owns, per group name. */
  bucketsOwned: Record<string, number>;
  /** Time left on the kernel lease (0: expired or revoked). */
  leaseRemainingMs: number;
  /** The view lacks configured nodes (a partition, or nodes down): reported, not an error by itself. */
  splitBrain: boolean;
  splitBrainPolicy: 'serve' | 'quorum';
  lastViewChange: ViewChange | null;
  checks: { ok: boolean; failures: { kind: string; target: string; detail: string }[] };
  /**
   * Every resource checked on this node (docs/application.md): the <vip> checks (interface,
   * VIP) and the checkers and processes of <check> and <errd>, with their counts.
   */
  checkers?: CheckerStatus[];
  /** The module scripts and the restarts counted against maxloop (absent: no application configured). */
  application?: ApplicationStatus;
  configDigest: string;
  /** Membership mode: the engine that agrees on the table (<farmlb membership>). */
  backend?: 'builtin' | 'corosync';
  /** Corosync backend: the ring and votequorum's answer for it, the CPG group's members (corosync node id, pid, node). */
  corosync?: CorosyncStatus;
  /** Membership mode: a reloaded configuration waiting until every node has it (docs/operations.md). */
  stagedDigest?: string;
  /**
   * Each interface the program is attached to: its VMAC mode, the XDP mode it runs in and
   * why (docs/net.md, "XDP mode"), and a limit of that mode worth knowing, if any.
   */
  interfaces?: InterfaceStatus[];
  /** Membership mode: CPU seconds this daemon spent on heartbeats since it started, per part. */
  membershipCpu?: MembershipCpu;
  /**
   * Built-in membership: the heartbeat port's datagrams since the daemon started — sent, sends
   * the kernel refused, and datagrams refused before the engine, per reason and from the
   * busiest sources (docs/security.md, "Unauthenticated datagrams").
   */
  membershipDatagrams?: MembershipDatagrams;
}

/** What GET /health answers: the part of the status a load balancer or monitor needs. */
export function healthView(s: DaemonStatus): Record<string, unknown> {
  return {
    node: s.node,
    module: s.module,
    state: s.state,
    // Why (WAIT): what a load balancer's operator reads first when the node stops answering ready.txt.
    stateCause: s.stateCause,
    ready: s.ready,
    view: s.view,
    epoch: s.epoch,
    leader: s.leader,
    bucketsOwned: s.bucketsOwned,
    leaseRemainingMs: s.leaseRemainingMs,
    splitBrain: s.splitBrain,
    lastViewChange: s.lastViewChange,
  };
}

/** The exit code of `farmlb status -q`: STOP 0, WAIT 1, UP 2 (SafeKit's module state numbers). */
export function stateExitCode(state: ModuleState): number {
  return state === 'UP' ? 2 : state === 'WAIT' ? 1 : 0;
}
