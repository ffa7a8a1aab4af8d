// Prometheus metrics for GET /metrics on the health port (docs/metrics.md). Everything is
// read when Prometheus scrapes (prom-client collect callbacks): the per-CPU verdict and
// bucket counters straight from the maps, the rest from the daemon's status and its view
// history. No timers: a daemon nobody scrapes does no metrics work.
//
// Counters taken from the kernel are cumulative since the maps were created; they are
// exposed as Prometheus counters (reset + inc to the read value at each scrape), so rate()
// works and a daemon restart that re-creates the maps shows as a counter reset.

import { Counter, Gauge, Registry, collectDefaultMetrics, type CounterConfiguration, type GaugeConfiguration } from 'prom-client';
import { NBUCKETS, NODE_NONE, REASONS, type BucketCounter, type DataplaneTables, type Reason, type ReasonCounter } from '../dataplane/types.js';
import type { ArpRerouteStats } from '../net/arpreroute.js';
import type { DaemonStatus, ModuleState, NodeStatus, ViewChange } from './status.js';

const STATES: ModuleState[] = ['STOP', 'WAIT', 'UP'];

/**
 * Heartbeat counts per peer, from the membership engine (PeerStatus). Read as optional on
 * top of NodeStatus: a static daemon, or a status that does not carry them, has none, and
 * then the series are absent rather than 0.
 */
export type PeerHeartbeats = Pick<NodeStatus, 'name' | 'self'> & { heartbeatsReceived?: number; heartbeatsMissed?: number };

/** What a view change did, as the metrics and the event log see it. */
export interface FailoverRecord {
  /** Wall clock (ms) of the install. */
  at: number;
  epoch: number;
  detectionMs: number;
  installMs: number;
  /** Nodes that left the view. */
  lost: string[];
}

/**
 * Failovers and peer losses seen by this daemon since it started. A failover is a view
 * change that removed a node which the membership detected as lost (the view event carries
 * its detectionMs); a node leaving the view for any reason counts as one loss of that peer.
 */
export class ViewHistory {
  viewChanges = 0;
  failovers = 0;
  lastFailover: FailoverRecord | undefined;
  readonly peerLosses = new Map<string, number>();

  record(change: ViewChange, previousView: readonly string[]): void {
    this.viewChanges++;
    const lost = previousView.filter((n) => !change.view.includes(n));
    for (const n of lost) this.peerLosses.set(n, (this.peerLosses.get(n) ?? 0) + 1);
    if (change.detectionMs === undefined || lost.length === 0) return;
    this.failovers++;
    this.lastFailover = { at: change.at, epoch: change.epoch, detectionMs: change.detectionMs, installMs: change.installMs ?? 0, lost };
  }
}

export interface DataplaneCounters {
  reasons: Record<Reason, ReasonCounter>;
  /** [group][bucket], summed over CPUs. */
  buckets: BucketCounter[][];
  /** New ARP / NS requesters the program could not record (its budget per window was spent). */
  requestersRefused?: bigint;
}

/** What the metrics read at scrape time; the daemon implements it, unit tests fake it. */
export interface MetricsSource {
  status(): DaemonStatus;
  /** The kernel counters; undefined when the maps cannot be read (the scrape still answers). */
  dataplaneCounters(): Promise<DataplaneCounters | undefined>;
  /** Tables in force: who owns each bucket (for packets per owner). */
  tables(): DataplaneTables | undefined;
  /** Interfaces the XDP program is attached to. */
  interfaces(): string[];
  arpreroute(): ArpRerouteStats;
  history(): ViewHistory;
}

export interface Metrics {
  readonly registry: Registry;
  readonly contentType: string;
  /** The exposition text of one scrape. */
  render(): Promise<string>;
  /** Counts a configuration reload (SIGHUP, `farmlb reload`) that was applied (true) or refused. */
  reloaded(ok: boolean, atMs?: number): void;
}

/** What farmlb_build_info says; the daemon passes the package version and the running Node. */
export interface BuildInfo {
  version: string;
  node: string;
}

export function createMetrics(source: MetricsSource, build: BuildInfo = { version: 'unknown', node: process.version }): Metrics {
  const registry = new Registry();
  // process_* (CPU, memory, file descriptors, start time) and nodejs_* (event loop lag, heap,
  // GC): prom-client's standard set, read at scrape time like the rest.
  collectDefaultMetrics({ register: registry });
  const gauge = <T extends string>(cfg: Omit<GaugeConfiguration<T>, 'registers'>) => new Gauge<T>({ ...cfg, registers: [registry] });
  const counter = <T extends string>(cfg: Omit<CounterConfiguration<T>, 'registers'>) => new Counter<T>({ ...cfg, registers: [registry] });
  // One status and one counter read per scrape, shared by every collect callback of that scrape.
  let scrape: { status: DaemonStatus; counters: Promise<DataplaneCounters | undefined> } | undefined;
  const current = () => (scrape ??= { status: source.status(), counters: source.dataplaneCounters().catch(() => undefined) });
  const setCounter = <T extends string>(c: Counter<T>, labels: Partial<Record<T, string>>, value: number | bigint) => {
    c.inc(labels as never, Number(value));
  };
  // prom-client gives an unlabelled metric a 0 sample after reset(); remove() makes the
  // series absent instead, so "unknown" does not read as a real 0.
  const setOrAbsent = (m: Gauge | Counter, value: number | undefined) => {
    m.reset();
    if (value === undefined) m.remove();
    else if (m instanceof Gauge) m.set(value);
    else m.inc(value);
  };

  gauge({
    name: 'farmlb_build_info', help: 'Constant 1, labelled with the farmlb version and the Node.js version running it',
    labelNames: ['version', 'nodejs_version'],
    collect() { this.reset(); this.set({ version: build.version, nodejs_version: build.node }, 1); },
  });
  const reloads = counter({
    name: 'farmlb_config_reloads_total', help: 'Configuration reloads (SIGHUP, farmlb reload, systemctl reload) since the daemon started, by result: applied or refused',
    labelNames: ['result'],
  });
  reloads.inc({ result: 'applied' }, 0);
  reloads.inc({ result: 'refused' }, 0);
  const lastReloadOk = gauge({
    name: 'farmlb_config_last_reload_successful', help: '1 when the last reload was applied (or none was tried), 0 when it was refused and the previous configuration stays',
  });
  lastReloadOk.set(1);
  const lastReloadAt = gauge({
    name: 'farmlb_config_last_reload_timestamp_seconds', help: 'Wall clock (Unix seconds) of the last reload tried (absent until one is)',
  });
  lastReloadAt.reset();
  lastReloadAt.remove();
  gauge({
    name: 'farmlb_info', help: 'Constant 1, labelled with the node, module, mode and config digest',
    labelNames: ['node', 'module', 'mode', 'config_digest'],
    collect() { const s = current().status; this.reset(); this.set({ node: s.node, module: s.module, mode: s.mode, config_digest: s.configDigest }, 1); },
  });
  gauge({
    name: 'farmlb_state', help: 'Module state: 1 for the current state (STOP, WAIT, UP), 0 for the others',
    labelNames: ['state'],
    collect() { const s = current().status; for (const st of STATES) this.set({ state: st }, s.state === st ? 1 : 0); },
  });
  gauge({
    name: 'farmlb_ready', help: '1 when the module is UP and its kernel lease valid (what ready.txt answers), else 0',
    collect() { this.set(current().status.ready ? 1 : 0); },
  });
  gauge({
    name: 'farmlb_view_epoch', help: 'Epoch of the view (bucket table) in force',
    collect() { this.set(current().status.epoch); },
  });
  gauge({
    name: 'farmlb_view_nodes', help: 'Number of nodes in this node\'s view',
    collect() { this.set(current().status.view.length); },
  });
  gauge({
    name: 'farmlb_split_brain', help: '1 when the view lacks configured nodes (partition or nodes down)',
    collect() { this.set(current().status.splitBrain ? 1 : 0); },
  });
  gauge({
    name: 'farmlb_lease_remaining_seconds', help: 'Time left on the kernel lease (0: expired or revoked)',
    collect() { this.set(current().status.leaseRemainingMs / 1000); },
  });
  gauge({
    name: 'farmlb_owned_buckets', help: 'Buckets this node owns in the table in force, per group',
    labelNames: ['group'],
    collect() { const s = current().status; this.reset(); for (const g of s.groups) this.set({ group: g }, s.bucketsOwned[g] ?? 0); },
  });
  gauge({
    name: 'farmlb_node_buckets', help: 'Buckets each node owns in the table in force, per group',
    labelNames: ['group', 'node'],
    collect() {
      const s = current().status;
      this.reset();
      for (const n of s.nodes) for (const g of s.groups) this.set({ group: g, node: n.name }, n.buckets[g] ?? 0);
    },
  });
  // Handover (docs/datapath.md §12), as this node sees it from its own status.
  const selfNode = () => current().status.nodes.find((n) => n.self);
  gauge({
    name: 'farmlb_handover_buckets', help: 'Buckets this node is handing over as their previous owner (it still serves its established TCP connections there), per group',
    labelNames: ['group'],
    collect() {
      const s = current().status;
      const self = selfNode();
      this.reset();
      if (self?.handingOver) for (const g of s.groups) this.set({ group: g }, self.handingOver[g] ?? 0);
    },
  });
  gauge({
    name: 'farmlb_handover_connections', help: 'Connections this node still holds in the buckets it is handing over (its socket table, sampled every 250 ms during a handover)',
    collect() { setOrAbsent(this, selfNode()?.handover?.connections); },
  });
  counter({
    name: 'farmlb_handover_connections_carried_total',
    help: 'Connections this node kept serving as previous owner after their bucket moved (rejoin, power change, drain), since the daemon started',
    collect() { setOrAbsent(this, selfNode()?.handover?.carriedTotal); },
  });
  counter({
    name: 'farmlb_handover_connections_lost_total',
    help: 'Connections still open on this node when a bucket it was handing over moved on without them (handover_limit, or a second move): reset by the new owner',
    collect() { setOrAbsent(this, selfNode()?.handover?.lostTotal); },
  });
  gauge({
    name: 'farmlb_syncookies_sent_recently', help: '1 when the kernel sent SYN cookies in the last 30 s (they defeat the handover\'s socket test), else 0',
    collect() { const c = selfNode()?.synCookies; setOrAbsent(this, c ? (c.sentRecently ? 1 : 0) : undefined); },
  });
  counter({
    name: 'farmlb_syncookies_sent_total', help: 'SYN cookies the kernel sent in this node\'s network namespace (TcpExt SyncookiesSent, cumulative since the namespace was created)',
    collect() { setOrAbsent(this, selfNode()?.synCookies?.sentTotal); },
  });
  gauge({
    name: 'farmlb_peer_up', help: 'Per configured peer: 1 when heard alive (UP or WAIT), 0 when lost or never heard',
    labelNames: ['peer'],
    collect() {
      const s = current().status;
      this.reset();
      for (const n of s.nodes) if (!n.self) this.set({ peer: n.name }, n.state === 'UP' || n.state === 'WAIT' ? 1 : 0);
    },
  });
  gauge({
    name: 'farmlb_peer_last_heard_seconds', help: 'Per peer: seconds since its last heartbeat was heard (absent when never heard)',
    labelNames: ['peer'],
    collect() {
      const s = current().status;
      this.reset();
      for (const n of s.nodes) if (!n.self && n.lastHeardMs !== undefined) this.set({ peer: n.name }, n.lastHeardMs / 1000);
    },
  });
  counter({
    name: 'farmlb_peer_losses_total', help: 'Per peer: times it left this node\'s view (heartbeats lost, stopped, partitioned)',
    labelNames: ['peer'],
    collect() {
      const s = current().status;
      const losses = source.history().peerLosses;
      this.reset();
      for (const n of s.nodes) if (!n.self) setCounter(this, { peer: n.name }, losses.get(n.name) ?? 0);
    },
  });
  const heartbeats = (name: string, help: string, pick: (n: PeerHeartbeats) => number | undefined) => counter({
    name, help,
    labelNames: ['peer'],
    collect() {
      this.reset();
      for (const n of current().status.nodes as PeerHeartbeats[]) {
        const v = n.self ? undefined : pick(n);
        if (v !== undefined) setCounter(this, { peer: n.name }, v);
      }
    },
  });
  heartbeats('farmlb_heartbeats_received_total', 'Per peer: heartbeats received from it since this daemon started', (n) => n.heartbeatsReceived);
  heartbeats('farmlb_heartbeats_missed_total', 'Per peer: its heartbeats never received (gaps in its sequence numbers) since this daemon started', (n) => n.heartbeatsMissed);
  counter({
    name: 'farmlb_membership_cpu_seconds_total',
    help: 'CPU seconds this daemon spent on the heartbeat path since it started, by part: send (encode, sign, sendmsg), receive (authenticate, decode, handle), tick (the pulse)',
    labelNames: ['part'],
    collect() {
      this.reset();
      const c = current().status.membershipCpu;
      if (!c) return;
      setCounter(this, { part: 'send' }, c.sendSeconds);
      setCounter(this, { part: 'receive' }, c.receiveSeconds);
      setCounter(this, { part: 'tick' }, c.tickSeconds);
    },
  });
  // Built-in membership only (the Corosync backend has no heartbeat port of its own).
  counter({
    name: 'farmlb_membership_datagrams_sent_total', help: 'Heartbeat datagrams this daemon sent since it started (each peer on each LAN is one)',
    collect() { setOrAbsent(this, current().status.membershipDatagrams?.sent); },
  });
  counter({
    name: 'farmlb_membership_send_errors_total', help: 'Heartbeat sends the kernel refused (a full socket buffer, no route) since this daemon started',
    collect() { setOrAbsent(this, current().status.membershipDatagrams?.sendErrors); },
  });
  counter({
    name: 'farmlb_membership_dropped_total',
    help: 'Datagrams on the heartbeat port refused before the membership engine (no state changed), by reason: oversize, not_farmlb, bad_mac, malformed, wrong_source',
    labelNames: ['reason'],
    collect() {
      this.reset();
      const d = current().status.membershipDatagrams;
      if (!d) return;
      for (const [reason, n] of Object.entries(d.dropped)) setCounter(this, { reason }, n);
    },
  });
  // The Corosync backend only (absent otherwise): docs/membership.md, "When corosync hangs".
  gauge({
    name: 'farmlb_corosync_answering', help: 'Corosync backend: 1 while the corosync of this node answers, 0 while a call has waited for it longer than half a lease (the node is WAIT)',
    collect() { const c = current().status.corosync; setOrAbsent(this, c ? (c.hung ? 0 : 1) : undefined); },
  });
  counter({
    name: 'farmlb_corosync_hangs_total', help: 'Corosync backend: times the corosync of this node stopped answering (a call pending past half a lease) since this daemon started',
    collect() { this.reset(); const c = current().status.corosync; if (c) setCounter(this, {}, c.hangs); },
  });
  counter({
    name: 'farmlb_corosync_dropped_messages_total', help: 'Corosync backend: farm messages (oldest beats first) dropped from the bounded outbox while corosync did not take them',
    collect() { this.reset(); const c = current().status.corosync; if (c) setCounter(this, {}, c.droppedMessages); },
  });
  counter({
    name: 'farmlb_view_changes_total', help: 'Tables installed by this daemon (view or rebalance changes)',
    collect() { this.reset(); setCounter(this, {}, source.history().viewChanges); },
  });
  counter({
    name: 'farmlb_failovers_total', help: 'View changes that took over the buckets of a node detected as lost',
    collect() { this.reset(); setCounter(this, {}, source.history().failovers); },
  });
  const lastFailover = (name: string, help: string, pick: (f: FailoverRecord) => number) => gauge({
    name, help,
    collect() { const f = source.history().lastFailover; setOrAbsent(this, f ? pick(f) : undefined); },
  });
  lastFailover('farmlb_last_failover_detection_seconds', 'Last failover: from the lost node\'s last heartbeat to its detection', (f) => f.detectionMs / 1000);
  lastFailover('farmlb_last_failover_install_seconds', 'Last failover: from the detection to the new table in the data plane of this node', (f) => f.installMs / 1000);
  lastFailover('farmlb_last_failover_duration_seconds', 'Last failover: detection plus install', (f) => (f.detectionMs + f.installMs) / 1000);
  lastFailover('farmlb_last_failover_timestamp_seconds', 'Last failover: wall clock of the install (Unix seconds)', (f) => f.at / 1000);

  const verdictLabels = (reason: Reason, interfaces: string[]) => ({
    reason, verdict: reason.split('_')[0]!, interface: interfaces.join(',') || 'none',
  });
  const verdictCounters = [
    {
      name: 'farmlb_verdict_packets_total',
      help: 'Packets the XDP program decided, per reason (verdict = pass, drop or tx). The stats map is shared by the interfaces the program is attached to: interface lists them',
      field: 'packets',
    },
    { name: 'farmlb_verdict_bytes_total', help: 'Bytes the XDP program decided, per reason (as farmlb_verdict_packets_total)', field: 'bytes' },
  ] as const;
  for (const { name, help, field } of verdictCounters) {
    counter({
      name,
      help,
      labelNames: ['reason', 'verdict', 'interface'],
      async collect() {
        const c = await current().counters;
        this.reset();
        if (!c) return;
        const ifs = source.interfaces();
        for (const r of REASONS) setCounter(this, verdictLabels(r, ifs), c.reasons[r]?.[field] ?? 0n);
      },
    });
  }
  counter({
    name: 'farmlb_bucket_packets_total',
    help: 'Packets per group and bucket: accepted (passed or answered by this node) or not_accepted (dropped, left to the owner, forwarded)',
    labelNames: ['group', 'bucket', 'result'],
    async collect() {
      const c = await current().counters;
      const groups = current().status.groups;
      this.reset();
      if (!c) return;
      groups.forEach((g, gi) => (c.buckets[gi] ?? []).forEach((b, bucket) => {
        if (b.accepted > 0n) setCounter(this, { group: g, bucket: String(bucket), result: 'accepted' }, b.accepted);
        if (b.dropped > 0n) setCounter(this, { group: g, bucket: String(bucket), result: 'not_accepted' }, b.dropped);
      }));
    },
  });
  // A gauge, not a counter: it sums the bucket counters over the buckets each node owns
  // now, so it drops when buckets move away, and rate() would read that as a reset.
  gauge({
    name: 'farmlb_owner_packets',
    help: 'Packets per group summed over the buckets each node owns in the table in force (follows the buckets when they move, so it can go down: use farmlb_bucket_packets_total for rates)',
    labelNames: ['group', 'owner', 'result'],
    async collect() {
      const c = await current().counters;
      const s = current().status;
      const t = source.tables();
      this.reset();
      if (!c || !t) return;
      const nodeName = (id: number) => (id === NODE_NONE ? '(unowned)' : s.nodes.find((n) => n.id === id)?.name ?? `node#${id}`);
      s.groups.forEach((g, gi) => {
        const sums = new Map<number, { accepted: bigint; dropped: bigint }>();
        for (let b = 0; b < NBUCKETS; b++) {
          const owner = t.buckets[gi]?.[b] ?? NODE_NONE;
          const cnt = c.buckets[gi]?.[b];
          const sum = sums.get(owner) ?? { accepted: 0n, dropped: 0n };
          if (cnt) { sum.accepted += cnt.accepted; sum.dropped += cnt.dropped; }
          sums.set(owner, sum);
        }
        for (const [owner, sum] of sums) {
          this.set({ group: g, owner: nodeName(owner), result: 'accepted' }, Number(sum.accepted));
          this.set({ group: g, owner: nodeName(owner), result: 'not_accepted' }, Number(sum.dropped));
        }
      });
    },
  });
  // The application (docs/application.md): one series per resource checked on this node.
  gauge({
    name: 'farmlb_checker_up', help: 'Per resource checked on this node (<vip> checks, <check> checkers, <errd> processes): 1 up, 0 down; absent before the first result or while its application is stopped',
    labelNames: ['resource', 'kind', 'action'],
    collect() {
      this.reset();
      for (const c of current().status.checkers ?? []) {
        if (c.state === 'up' || c.state === 'down') this.set({ resource: c.resource, kind: c.kind, action: c.effectiveAction }, c.state === 'up' ? 1 : 0);
      }
    },
  });
  const checkerCounter = (name: string, help: string, pick: (c: NonNullable<DaemonStatus['checkers']>[number]) => number) => counter({
    name, help,
    labelNames: ['resource'],
    collect() {
      this.reset();
      for (const c of current().status.checkers ?? []) setCounter(this, { resource: c.resource }, pick(c));
    },
  });
  checkerCounter('farmlb_checker_probes_total', 'Per resource: probes (or custom checker reports) since the daemon started', (c) => c.probes);
  checkerCounter('farmlb_checker_failures_total', 'Per resource: failed probes since the daemon started', (c) => c.failures);
  checkerCounter('farmlb_checker_changes_total', 'Per resource: changes between up and down since the daemon started', (c) => c.changes);
  gauge({
    name: 'farmlb_application_restarts', help: 'Restarts and stopstarts of the application within the current loop_interval (the module stops past <service maxloop>); absent without an application',
    collect() { setOrAbsent(this, current().status.application?.loops); },
  });
  gauge({
    name: 'farmlb_application_stopped', help: '1 when maxloop stopped the module (until farmlb start), else 0; absent without an application',
    collect() { const a = current().status.application; setOrAbsent(this, a ? (a.stoppedBy ? 1 : 0) : undefined); },
  });
  const arp = (name: string, help: string, pick: (s: ArpRerouteStats) => number) => counter({
    name, help, collect() { this.reset(); setCounter(this, {}, pick(source.arpreroute())); },
  });
  arp('farmlb_arpreroute_frames_sent_total', 'Gratuitous ARP replies and neighbour advertisements sent (arpreroute)', (s) => s.framesSent);
  arp('farmlb_arpreroute_rounds_total', 'arpreroute rounds run over all campaigns and interfaces', (s) => s.rounds);
  arp('farmlb_arpreroute_send_errors_total', 'arpreroute frames the kernel refused to send', (s) => s.sendErrors);
  counter({
    name: 'farmlb_arpreroute_requesters_refused_total',
    help: 'New ARP / NS requesters the XDP program did not record because more new ones than its budget came in one window (a flood of spoofed requests, or a very large segment)',
    async collect() {
      const c = await current().counters;
      this.reset();
      if (c?.requestersRefused !== undefined) setCounter(this, {}, c.requestersRefused);
    },
  });

  return {
    registry,
    contentType: registry.contentType,
    async render() {
      try {
        return await registry.metrics();
      } finally {
        scrape = undefined;
      }
    },
    reloaded(ok, atMs = Date.now()) {
      reloads.inc({ result: ok ? 'applied' : 'refused' });
      lastReloadOk.set(ok ? 1 : 0);
      lastReloadAt.set(atMs / 1000);
    },
  };
}
