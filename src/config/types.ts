// The validated shape of userconfig.xml (<vip> section of SafeKit, seed 001 §13.6, plus
// farmlb's own <farmlb/> element) and cluster.xml. Produced by src/config/, consumed by
// balance, dataplane and daemon. Every element keeps where it came from so later errors
// (a host missing from the running cluster, a VIP that cannot be added) can still say
// file:line.

export type Family = 4 | 6;
export type RuleProto = 'tcp' | 'udp' | 'arp';
export type Criterion = 'on_addr' | 'on_port' | 'on_ipid';
export type VmacMode = 'vmac_invisible' | 'vmac_directed';
export type SplitBrainPolicy = 'serve' | 'quorum';
/** Which engine agrees on the table: farmlb's heartbeats, or Corosync CPG/votequorum (docs/membership.md). */
export type MembershipBackend = 'builtin' | 'corosync';

export interface SourceRef {
  file: string;
  line: number;
  column: number;
  element: string;
}

export interface VirtualAddr {
  /** Canonical textual form (IPv4 dotted quad, IPv6 RFC 5952). */
  addr: string;
  family: Family;
  /** Index in file order over all <virtual_addr> of all interfaces; the VIP id in the maps. */
  id: number;
  where: 'alias';
  check: boolean;
  connections: boolean;
  /** Prefix length from netmask=, IPv4 only; undefined = the interface's own netmask. */
  prefixLen?: number;
  src: SourceRef;
}

export interface VipInterface {
  /** Linux interface name (name=); undefined = detect the interface holding the VIP's subnet. */
  name?: string;
  check: boolean;
  arpreroute: boolean;
  arpintervalMs: number;
  arpelapseMs: number;
  type: VmacMode;
  /** Virtual MAC, lower-case aa:bb:cc:dd:ee:ff. Default: 5a:fe + first VIP of the file (DESIGN.md). */
  vmac: string;
  vmacExplicit: boolean;
  addrs: VirtualAddr[];
  src: SourceRef;
}

export interface Host {
  name: string;
  power: number;
  src: SourceRef;
}

export interface Rule {
  /** A VIP's canonical address, or '*' for every VIP. */
  vip: string | '*';
  /** Destination port, or '*' for every port. Always '*' for proto arp. */
  port: number | '*';
  proto: RuleProto;
  filter: Criterion;
  src: SourceRef;
}

export interface Group {
  name: string;
  /** Index in file order; the group id in the maps. */
  index: number;
  /** Hosts from <cluster>; null when the group has no <cluster> (every farm node, power 1). */
  hosts: Host[] | null;
  rules: Rule[];
  src: SourceRef;
}

/** Settings SafeKit has no place for, from <farmlb .../> inside <service> (DESIGN.md). */
export interface FarmlbSettings {
  module: string;
  hashSeed: number;
  keyFile: string;
  /** <farmlb accept_key_file>: another key accepted on receive (a rotation); absent = none. */
  acceptKeyFile?: string;
  membershipPort: number;
  healthPort: number;
  /** <farmlb health_bind>: addresses the health server listens on; absent = the node's cluster.xml addresses. */
  healthBind?: string[];
  /**
   * <farmlb health_detail>: who may read /health and /metrics — addresses or prefixes, or
   * ['any']; absent = loopback and the node's own addresses (docs/security.md).
   */
  healthDetail?: string[];
  splitBrain: SplitBrainPolicy;
  handoverLimitMs: number;
  /** <farmlb membership>: the membership engine (absent = builtin). */
  membership?: MembershipBackend;
  /** <farmlb scripts_dir>: the module scripts' directory (default: SafeKit's <module>/bin, docs/application.md). */
  scriptsDir?: string;
  src?: SourceRef;
}

export interface ConfigWarning {
  code: string;
  message: string;
  src: SourceRef;
}

/**
 * SafeKit's <farm pulse=… mlost_count=… slost_count=…><lan name=…/></farm> (DESIGN.md,
 * "Membership"): which LANs of cluster.xml carry heartbeats and how fast. Defaults apply
 * when <farm> or an attribute is absent.
 */
export interface FarmTopology {
  /** Heartbeat period. Default 100 ms. */
  pulseMs: number;
  /** Missed pulses after which the leader (master) is declared lost. Default 20. */
  mlostCount: number;
  /** Missed pulses after which a follower (slave) is declared lost. Default 10. */
  slostCount: number;
  /** LAN names of cluster.xml carrying heartbeats, in file order; empty = every LAN of cluster.xml. */
  lans: string[];
  /** Where each name of `lans` was written (same order). */
  lanRefs?: { name: string; src: SourceRef }[];
  src?: SourceRef;
}

// ---- the application: <check>, <errd>, <user> (SafeKit user guide §13.8, §13.10–13.16) ----

/**
 * What a failing checker or process does (SafeKit's failover actions, for a farm):
 * wait — the node leaves the farm while the resource is down and returns when it is up;
 * restart — stop_both then start_both, the node staying in the farm;
 * stopstart — the node leaves the farm, stop_both, start_both, and it comes back.
 */
export type AppAction = 'wait' | 'restart' | 'stopstart';

/**
 * When a checker (or a <proc>) runs: `pre` from the daemon's start (before prestart), even
 * while the module is in WAIT; `both` once start_both succeeded, until stop_both (SafeKit's
 * farm class; its mirror word `prim` is read as `both`).
 */
export type AppWhen = 'pre' | 'both';

interface CheckerCommon {
  /** SafeKit's ident=: the resource is `<kind>.<ident>`. */
  ident: string;
  /** SafeKit resource name, e.g. tcp.HTTP_APP. */
  resource: string;
  when: AppWhen;
  action: AppAction;
  intervalMs: number;
  /** A probe not answered within this fails. */
  timeoutMs: number;
  /** Consecutive failures before the resource goes down. */
  fall: number;
  /** Consecutive successes before it is up again. */
  rise: number;
  src: SourceRef;
}

export type CheckerConfig = CheckerCommon & (
  | { kind: 'tcp'; addr: string; port: number }
  /** keepalived's HTTP_GET/SSL_GET: a GET of url must answer one of `status`. */
  | { kind: 'http'; url: string; status: number[]; verifyTls: boolean }
  | { kind: 'ping'; addr: string }
  | { kind: 'intf'; ifname: string }
  | { kind: 'ip'; addr: string }
  /** A program farmlb starts and supervises; it reports its resource by printing up/down lines. */
  | { kind: 'custom'; exec: string; args: string[] }
);

export type CheckerKind = CheckerConfig['kind'];

/** <errd><proc>: at least `atleast` (at most `atmost`, -1 = any) processes named so must run. */
export interface ProcConfig {
  /** Matched against the process name (/proc/PID/comm, 15 characters) unless nameRegex. */
  name: string;
  nameRegex?: string;
  /** A regular expression the process's arguments (cmdline after argv[0], space-joined) must match. */
  argRegex?: string;
  atleast: number;
  atmost: number;
  action: AppAction;
  when: AppWhen;
  /** SafeKit resource name: proc.<name>. */
  resource: string;
  src: SourceRef;
}

export interface AppConfig {
  /** Where the module's programs live (scripts, custom checkers): <farmlb scripts_dir>, else SafeKit's <module>/bin. */
  binDir: string;
  /** <check>: checkers in file order. */
  checkers: CheckerConfig[];
  /** <errd>: processes monitored, and how often. */
  procs: ProcConfig[];
  procPollMs: number;
  /** <user>: the module scripts run (absent: no script runs, as in SafeKit). */
  scripts?: {
    /** <user nicestoptimeout>: bound of a script's normal run. */
    niceStopTimeoutMs: number;
    /** <user forcestoptimeout>: bound of `stop_both -force` after a stop timed out. */
    forceStopTimeoutMs: number;
    /** <user logging="userlog"|"none">: the scripts' output is logged, or dropped. */
    logOutput: boolean;
    /** <var name value>: environment of every script. */
    vars: { name: string; value: string }[];
    src: SourceRef;
  };
  /** <service maxloop loop_interval>: restarts and stopstarts allowed within the interval before the module stops. */
  maxloop: number;
  loopIntervalMs: number;
}

export interface FarmConfig {
  file: string;
  /** A farm without <vip> (SafeKit's cloud farm): no VIP, no data plane; ready.txt tells the cloud's load balancer. */
  cloud?: boolean;
  /** The application around the VIP: checkers, process monitoring, module scripts (set by the parser; absent = none). */
  app?: AppConfig;
  tcpreset: boolean;
  scriptcontrol: boolean;
  interfaces: VipInterface[];
  /** All VIPs of all interfaces in file order (vips[i].id === i). */
  vips: VirtualAddr[];
  groups: Group[];
  farmlb: FarmlbSettings;
  /** Heartbeat topology and timing; set by the parser (defaults when <farm> is absent). */
  farm?: FarmTopology;
  warnings: ConfigWarning[];
}

export interface ClusterNode {
  name: string;
  addr: string;
  src: SourceRef;
}

export interface ClusterLan {
  name: string;
  nodes: ClusterNode[];
  src: SourceRef;
}

export interface ClusterConfig {
  file: string;
  lans: ClusterLan[];
  /** Node names in order of first appearance; a node's index here is its node id in the maps. */
  nodes: string[];
  /** What was accepted but ignored (set by the parser). */
  warnings?: ConfigWarning[];
}
