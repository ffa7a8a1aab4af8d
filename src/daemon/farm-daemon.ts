// The farmlb daemon of one node and module: the module state machine STOP → WAIT → UP
// around one start/stop path (NodeHost: data plane and interfaces), a table source (the
// static table or the membership engine), the local checks, the control socket and the
// HTTP health check.
//
//   start: host (program attached, VIPs up; lease as the source says: --static renews from
//          its own liveness, membership starts revoked) → state WAIT (membership) →
//          checks polled → control socket → health server → source started (it says UP).
//   stop:  health, control, checks, holdings sampler and SYN cookie watch, source stopped →
//          host stopped (lease revoked, tcpreset, VIPs removed, program detached …) →
//          state STOP.
//
// Handover (docs/membership.md "Handover"): after every table it applied, the daemon tells
// the holdings sampler (src/daemon/holdings.ts) the installed table and its epoch; while
// that table names this node the previous owner of a bucket, the sampler reads the socket
// table every 250 ms and hands the counts to the source (TableSource.setHoldings), which
// lets the leader end the handover. Every few seconds the SYN cookie counters are checked: cookies defeat the
// data path's socket test, so an episode of cookies sent is logged (once) and shown in the
// status.
//
// WAIT (a failing check, `farmlb stop`, a config digest that differs from the view's, a
// minority under `quorum`): the lease is revoked at once, so the program accepts no VIP
// traffic and answers no ARP/ND for the VIP, and the other nodes take the buckets once the
// lease has surely run out. The VIP aliases stay: SafeKit unconfigures the VIP in WAIT,
// farmlb gets the same effect on the wire from the revoked lease, and keeping the alias
// keeps the rule "never the alias without the program" trivially true and the return to UP
// instant. With tcpreset on, the connections with a VIP as local address are reset when
// this node itself goes from UP to WAIT (a failing check, `farmlb stop`) and when the VIPs
// are removed at stop (src/daemon/tcpreset.ts) — not on a WAIT the membership causes.

import type { Logger } from 'pino';
import { loadConfigs } from '../config/index.js';
import { groupPowers } from '../balance/compile.js';
import type { BucketTable } from '../balance/assign.js';
import type { ClusterConfig, FarmConfig } from '../config/types.js';
import { configDigest } from '../config/digest.js';
import { loadNative } from '../addon/native.js';
import { NBUCKETS, NODE_NONE, type DataplaneTables } from '../dataplane/types.js';
import { FarmlbError } from '../errors.js';
import type { NeighbourSystem } from '../net/neighbours.js';
import type { InstancePaths } from '../paths.js';
import { packageVersion } from '../version.js';
import type { SystemdNotifier } from './systemd.js';
import { startControlServer, type ControlServer, type PowerChange } from '../api/control.js';
import { startHealthServer, type HealthServer } from '../api/health.js';
import { parseCidr, type Cidr } from '../config/cidr.js';

/** <farmlb health_detail> as the health server takes it (absent: its default, the node itself). */
function healthDetailOption(list: string[] | undefined): { detail?: readonly Cidr[] | 'any' } {
  if (list === undefined) return {};
  if (list.length === 1 && list[0] === 'any') return { detail: 'any' };
  return { detail: list.map((x) => parseCidr(x)).filter((c): c is Cidr => c !== undefined) };
}
import { createMetrics, ViewHistory, type DataplaneCounters, type Metrics } from '../api/metrics.js';
import { EventsLog, eventsFile, movedBucketsByGroup } from '../api/events-log.js';
import type { DaemonStatus, ModuleState, NodeStatus, ViewChange } from '../api/status.js';
import { CheckPoller, describeFailures, type CheckResult, type CheckTarget } from '../checks/local-checks.js';
import { NodeHost, ownedCount } from './node-host.js';
import { realHostPort, type CounterReader, type HostPort } from './host-port.js';
import { resetVipConnections, type SsRunner } from './tcpreset.js';
import { HoldingsSampler, socketScanFallback, type InstalledTables } from './holdings.js';
import { SynCookieMonitor } from '../net/syncookies.js';
import { leaseWriteNeeded } from './lease-write.js';
import type { SourceDecision, TableSource } from './table-source.js';
import { Application } from './application.js';
import { GracefulLeave } from './leave.js';
import { defaultAppConfig } from '../config/app.js';
import type { CheckerStatus } from '../api/status.js';

export interface FarmDaemonOptions {
  farm: FarmConfig;
  cluster: ClusterConfig;
  node: string;
  paths: InstancePaths;
  xdpMode: 'auto' | 'native' | 'generic';
  log: Logger;
  /** Builds the table source once the configuration is known (static or membership). */
  source: TableSource;
  /** Checks poll period (default 2 × the heartbeat pulse). */
  checkIntervalMs?: number;
  /** HTTP health port (default <farmlb health_port>); 0 disables the health server. */
  healthPort?: number;
  /** Reload the configuration files on SIGHUP (default true). */
  reloadOnSighup?: boolean;
  /** For tests: how peers' MACs are found. */
  neighbours?: NeighbourSystem;
  /** For tests: the kernel as the host and the daemon use it (default: the node itself; test/helpers/fake-host.ts). */
  hostPort?: HostPort;
  /** Told RELOADING=1 / READY=1 around every reload (systemd Type=notify; src/daemon/systemd.ts). */
  notifier?: Pick<SystemdNotifier, 'reloading' | 'ready'>;
}

export class FarmDaemon {
  private readonly host: NodeHost;
  private readonly source: TableSource;
  private state: ModuleState = 'STOP';
  private stateCause = 'not started';
  private stateSince = Date.now();
  private adminStopped = false;
  /** <vip scriptcontrol="on">: the VIP traffic is closed until the scripts open it (farmlb vip open). */
  private vipClosed: boolean;
  private checkResult: CheckResult = { ok: true, failures: [] };
  private checks: CheckPoller | undefined;
  private control: ControlServer | undefined;
  private health: HealthServer | undefined;
  private stopping: Promise<void> | undefined;
  private started = false;
  /** Decisions applied one at a time, in order: table, then lease, then state. */
  private decisions: Promise<void> = Promise.resolve();
  private installedEpoch = -1;
  /** The renewal last written ahead of the queued decisions (renewLease); 0n once a revocation is written. */
  private earlyLeaseNs = 0n;
  private lastViewChange: ViewChange | null = null;
  private digest: string;
  /** A reload the membership staged (reload() got 'staged'): applied at configSwitched. */
  private stagedReload: Awaited<ReturnType<NodeHost['checkReload']>> | undefined;
  /** <run-dir>/events.log: state and view events for `farmlb events` and `buckets --diff`. */
  private readonly events: EventsLog;
  private readonly history = new ViewHistory();
  private readonly metrics: Metrics;
  /** Connections held as previous owner of buckets in handover, reported to the source. */
  private readonly holdings: HoldingsSampler;
  private readonly synCookies = new SynCookieMonitor();
  private synCookieTimer: NodeJS.Timeout | undefined;
  private synCookieChecking = false;
  private synCookieReadFailed = false;
  /** Read-only handle on the pinned maps, opened at the first scrape (the kernel counters). */
  private counterReader: CounterReader | undefined;
  /** The application: checkers, process monitoring, module scripts (docs/application.md). */
  private readonly app: Application;
  /** How the node leaves when its application fails (docs/application.md, "Leaving the farm"). */
  private readonly leave: GracefulLeave;
  /** The last local health pushed to the source (pushed again only when it changes). */
  private pushedHealth: string | undefined;
  /** ss(8) for tcpreset (the host port's). */
  /** The kernel (the node itself, or a test's fake host). */
  private readonly port: HostPort;
  private readonly ss: SsRunner;
  private readonly onSighup = () => {
    this.reload().catch(() => { /* logged by reload() */ });
  };

  constructor(private readonly opts: FarmDaemonOptions) {
    this.host = new NodeHost({
      farm: opts.farm, cluster: opts.cluster, node: opts.node, paths: opts.paths, xdpMode: opts.xdpMode,
      log: opts.log, ...(opts.neighbours ? { neighbours: opts.neighbours } : {}), ...(opts.hostPort ? { port: opts.hostPort } : {}),
    });
    this.source = opts.source;
    this.port = opts.hostPort ?? realHostPort;
    this.ss = this.port.ss;
    this.vipClosed = opts.farm.scriptcontrol;
    this.digest = configDigest(opts.farm, opts.cluster);
    const holdingsLog = opts.log.child({ module: 'holdings' });
    this.holdings = new HoldingsSampler({
      report: (h) => this.source.setHoldings?.(h),
      nowNs,
      log: holdingsLog,
      scan: this.port.socketScan(socketScanFallback(holdingsLog)),
    });
    this.events = new EventsLog(eventsFile(opts.paths.runDir), { log: opts.log });
    this.leave = new GracefulLeave({
      membership: opts.source.mode === 'membership', handoverLimitMs: opts.farm.farmlb.handoverLimitMs, runDir: opts.paths.runDir,
      log: opts.log.child({ room: 'application' }),
      selfOverrides: () => this.source.view().peers.get(opts.node)?.overrides ?? {},
      setSelfPower: async (power, group) => { await this.source.setPower({ node: opts.node, power, ...(group !== undefined ? { group } : {}) }); },
      servingNothing: () => this.emptyHanded(),
      changed: () => this.pushLocalHealth(),
    });
    this.app = new Application({
      app: opts.farm.app ?? defaultAppConfig(), paths: opts.paths, node: opts.node, configFile: opts.farm.file,
      log: opts.log.child({ room: 'application' }),
      hooks: {
        changed: () => this.appChanged(),
        servingNothing: (limitMs) => this.servingNothing(limitMs),
        checker: (e) => this.events.append({ event: 'checker', time: new Date().toISOString(), node: opts.node, module: opts.paths.module, ...e }),
        script: (r) => this.events.append({
          event: 'script', time: new Date().toISOString(), node: opts.node, module: opts.paths.module,
          script: r.script, ok: r.ok, detail: r.detail, durationMs: r.durationMs,
        }),
      },
    });
    this.metrics = createMetrics({
      status: () => this.status(),
      dataplaneCounters: () => this.dataplaneCounters(),
      tables: () => this.host.tables(),
      interfaces: () => [...new Set(this.host.vips().map((v) => v.ifname))],
      arpreroute: () => this.host.arprerouteStats(),
      history: () => this.history,
    }, { version: packageVersion(), node: process.version });
  }

  get mode(): 'static' | 'membership' {
    return this.source.mode;
  }

  async start(): Promise<void> {
    const { log, node, paths } = this.opts;
    try {
      // docs/application.md, "Order": pre checkers, prestart, the VIPs (serving nothing yet),
      // then start_both, and only then the source may make the node take buckets.
      this.app.startPre();
      await this.app.prestart();
      const initial = this.source.initial();
      await this.host.start(this.app.hasScripts ? { ...initial, leaseDeadlineNs: 0n } : initial);
      this.started = true;
      this.holdings.tablesChanged(this.installed());
      await this.startSynCookieWatch();
      if (this.source.mode === 'membership') this.setState('WAIT', 'starting: waiting for the membership');
      this.checks = new CheckPoller({
        targets: this.checkTargets(),
        intervalMs: this.opts.checkIntervalMs ?? 2 * (this.host.farm.farm?.pulseMs ?? 100),
        onChange: (r) => this.checksChanged(r),
      });
      // The first result before anything says UP to the outside.
      await this.checks.poll();
      this.checks.start();
      this.control = await startControlServer({ runDir: paths.runDir, log: log.child({ room: 'api' }), handler: {
        status: () => this.status(),
        start: () => this.adminStart(),
        stop: () => this.adminStop(),
        power: (c) => this.power(c),
        reload: async () => { await this.reload(); return this.status(); },
        vip: (action) => this.scriptVip(action),
      } });
      const port = this.opts.healthPort ?? this.host.farm.farmlb.healthPort;
      if (port > 0) {
        this.health = await startHealthServer({
          addrs: this.host.farm.farmlb.healthBind ?? this.nodeAddrs(), port, module: paths.module, status: () => this.status(), log: log.child({ room: 'api' }), metrics: this.metrics,
          ...healthDetailOption(this.host.farm.farmlb.healthDetail),
        });
      }
      // Last: the source is what says UP, and by then status, health and checks answer. The
      // application's cause (not started yet, no checker result yet) holds the node in WAIT
      // until start_both and the first results allow it.
      this.pushLocalHealth();
      await this.source.start({ decide: (d) => this.decide(d), renewLease: (deadlineNs) => this.renewLease(deadlineNs), revokeLease: (cause) => this.revokeLease(cause), nowNs: nowNs, configSwitched: (digest, table) => this.configSwitched(digest, table) });
      // A drain a killed run left in force (powers.json) is undone (docs/application.md).
      if (this.source.mode === 'membership') await this.leave.restoreAtStart();
      // Not awaited: start_both may take minutes (nicestoptimeout), and the daemon answers meanwhile.
      void this.app.startBoth();
      if (this.opts.reloadOnSighup ?? true) process.on('SIGHUP', this.onSighup);
      log.info({ event: 'started', node, module: paths.module, mode: this.source.mode }, 'daemon started');
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** The one cleanup path: undoes start() in reverse order; idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const { log } = this.opts;
    process.off('SIGHUP', this.onSighup);
    await this.health?.close().catch((err) => log.error({ err, event: 'stop_step_failed', step: 'health server' }, 'stop: health server'));
    await this.control?.close().catch((err) => log.error({ err, event: 'stop_step_failed', step: 'control socket' }, 'stop: control socket'));
    this.checks?.stop();
    await this.holdings.stop();
    if (this.synCookieTimer) clearInterval(this.synCookieTimer);
    this.synCookieTimer = undefined;
    await this.source.stop().catch((err) => log.error({ err, event: 'stop_step_failed', step: 'table source' }, 'stop: table source'));
    await this.decisions;
    const tcpreset = this.host.farm.tcpreset && this.started;
    const { clean } = await this.host.stop({
      beforeAliases: tcpreset ? async () => { await resetVipConnections(this.host.vips().map((v) => v.addr), log, 'stop', this.ss); } : undefined,
    });
    this.counterReader?.close();
    this.counterReader = undefined;
    // The node serves nothing now: the application stops after it (stop_both, poststop).
    this.app.close();
    this.leave.close();
    await this.app.stopBoth();
    await this.app.poststop();
    const previous = this.state;
    this.state = 'STOP';
    this.stateSince = Date.now();
    log.info({ event: 'state', state: 'STOP', clean }, 'stopped');
    this.events.append({
      event: 'state', time: new Date(this.stateSince).toISOString(), node: this.opts.node, module: this.opts.paths.module,
      state: 'STOP', previous, cause: clean ? 'daemon stopped' : 'daemon stopped (cleanup incomplete: see the log)', buckets: 0,
    });
  }

  tables(): DataplaneTables | undefined {
    return this.host.tables();
  }

  arprerouteStats() {
    return this.host.arprerouteStats();
  }

  // ---- decisions -------------------------------------------------------------------

  private decide(d: SourceDecision): Promise<void> {
    this.decisions = this.decisions.then(() => this.apply(d)).catch((err) => {
      this.opts.log.error({ err, event: 'decision_failed' }, 'could not apply the membership decision');
    });
    return this.decisions;
  }

  private async apply(d: SourceDecision): Promise<void> {
    if (this.stopping) return;
    const local = this.localWaitCause();
    const state: 'WAIT' | 'UP' = local ? 'WAIT' : d.state;
    const appCause = this.app.waitCause();
    const cause = local ?? (state === 'UP' && appCause !== undefined && this.leave.draining() ? this.leave.cause(appCause)
      : d.cause || (state === 'UP' ? 'serving its buckets of the view' : 'waiting for the membership'));
    if (d.table && (d.table.epoch !== this.installedEpoch || d.table.completes === true)) {
      const t0 = process.hrtime.bigint();
      const before = this.host.tables();
      const table = d.table;
      await this.host.changeBuckets(table.table, `epoch ${table.epoch}`);
      this.installedEpoch = table.epoch;
      const after = this.host.tables();
      // Only now, with the table in the data plane: a sample tagged with this epoch proves
      // what this node holds under it.
      this.holdings.tablesChanged(this.installed());
      const change: ViewChange = {
        at: Date.now(),
        epoch: table.epoch,
        view: table.view,
        cause: table.cause,
        ...(table.detectionMs !== undefined ? { detectionMs: table.detectionMs } : {}),
        installMs: Number(process.hrtime.bigint() - t0) / 1e6,
        moved: movedBuckets(before, after),
      };
      const previousView = this.lastViewChange?.view ?? [];
      this.lastViewChange = change;
      const buckets = after ? ownedCount(after.buckets, after.selfNode) : 0;
      this.opts.log.info({ event: 'view', ...change, buckets },
        `view ${table.view.join(',')} epoch ${table.epoch} installed (${table.cause})`);
      this.history.record(change, previousView);
      this.events.append({
        event: 'view', time: new Date(change.at).toISOString(), node: this.opts.node, module: this.opts.paths.module,
        epoch: change.epoch, view: change.view, cause: change.cause,
        ...(change.detectionMs !== undefined ? { detectionMs: change.detectionMs } : {}),
        ...(change.installMs !== undefined ? { installMs: change.installMs } : {}),
        moved: change.moved ?? 0,
        movedBuckets: movedBucketsByGroup(this.host.farm.groups.map((g) => g.name), this.ownerNames(before), this.ownerNames(after) ?? []),
        buckets,
      });
    }
    // A check that failed during this decision's install revoked the lease at once
    // (pushLocalHealth): this decision, made before, writes no renewal back and says WAIT.
    const localNow = this.localWaitCause();
    if (localNow !== undefined && local === undefined) return this.applyLocalWait(localNow);
    // WAIT serves nothing from the first instant: the lease goes before anything else would.
    if (state === 'WAIT') {
      this.earlyLeaseNs = 0n;
      if (this.host.leaseDeadlineNs() !== 0n) await this.host.setLease(0n);
    } else if (d.leaseDeadlineNs !== undefined && !this.overtaken(d.leaseDeadlineNs)
      && leaseWriteNeeded(d.leaseDeadlineNs, this.host.leaseDeadlineNs(), nowNs(), this.source.leaseWriteStepNs)) {
      if (d.leaseDeadlineNs === 0n) this.earlyLeaseNs = 0n;
      await this.host.setLease(d.leaseDeadlineNs);
    }
    await this.setStateAsync(state, cause, local !== undefined);
  }

  /** The end of a decision during whose install this node's own checks failed: WAIT, no lease. */
  private async applyLocalWait(cause: string): Promise<void> {
    this.earlyLeaseNs = 0n;
    if (this.host.leaseDeadlineNs() !== 0n) await this.host.setLease(0n);
    await this.setStateAsync('WAIT', cause, true);
  }

  /**
   * A renewal the membership lets go ahead of the queued decisions (a table of the data
   * plane's lineage: src/membership/lease-gate.ts), written at once — also while a table is
   * being installed — but only while this node serves: UP, no reason of its own to wait, its
   * lease not revoked (one that ran out, a stalled host, is renewed: that is when it matters).
   * Otherwise (false) it stays in its decision, applied in order.
   */
  private renewLease(deadlineNs: bigint): boolean {
    if (this.stopping || !this.started || this.state !== 'UP') return false;
    const written = this.host.leaseDeadlineNs();
    if (written === 0n || deadlineNs <= written || !leaseWriteNeeded(deadlineNs, written, nowNs(), this.source.leaseWriteStepNs)) return false;
    if (this.localWaitCause() !== undefined || !this.host.renewLease(deadlineNs)) return false;
    this.earlyLeaseNs = deadlineNs;
    return true;
  }

  /**
   * A revocation the membership sends ahead of the queued decisions: it left the lineage of a
   * table still being installed (src/membership/lease-gate.ts, leaves()). The renewals queued
   * before it are not written back: the membership strips those of the lineage left.
   */
  private revokeLease(cause: string): void {
    if (!this.stopping) this.revokeLeaseAtOnce(cause);
  }

  /** Revokes the kernel lease ahead of the queued decisions (a non-blocking write), and logs why. */
  private revokeLeaseAtOnce(cause: string): void {
    if (!this.started || this.host.leaseDeadlineNs() === 0n || !this.host.revokeLeaseNow()) return;
    this.earlyLeaseNs = 0n;
    this.opts.log.info({ event: 'lease_revoked', cause }, `lease revoked at once: ${cause}`);
  }

  /**
   * A renewal decided before one written ahead of it (renewLease): not written back. The
   * engine's renewals only grow between revocations, so one below the early write since the
   * last revocation is older than it.
   */
  private overtaken(deadlineNs: bigint): boolean {
    return deadlineNs !== 0n && deadlineNs < this.earlyLeaseNs;
  }

  /** Why this node must be in WAIT whatever the source says (administrative stop, checks). */
  private localWaitCause(): string | undefined {
    if (this.adminStopped) return 'stopped by farmlb stop';
    if (this.vipClosed) return 'VIP traffic closed by the module scripts (scriptcontrol: farmlb vip open opens it)';
    if (!this.checkResult.ok) return `check failed: ${describeFailures(this.checkResult.failures)}`;
    const app = this.app.waitCause();
    // Draining (or deciding whether to): the node keeps serving the connections it hands over.
    if (app !== undefined && this.leave.holding()) return undefined;
    return app;
  }

  /** The application changed: the node's health now, or once the leave rule has decided. */
  private appChanged(): void {
    const down = this.app.downResources();
    if (!this.leave.mayDrain(down)) this.pushLocalHealth();
    void this.leave.update(down).then(() => this.pushLocalHealth());
  }

  /** This node owns no bucket and hands none over. */
  private emptyHanded(): boolean {
    const self = this.status().nodes.find((n) => n.self);
    const sum = (r: Record<string, number> | undefined) => Object.values(r ?? {}).reduce((a, b) => a + b, 0);
    return self !== undefined && sum(self.buckets) === 0 && sum(self.handingOver) === 0;
  }

  /**
   * `localCause`: WAIT comes from this node (a failing check, `farmlb stop`), the case where
   * SafeKit unconfigures the VIP and tcpreset makes its clients fail fast. A WAIT the
   * membership causes (a leader change, waiting for the new leader's table) is transient and
   * usually gives the node back the same buckets: resetting there would cut every
   * connection of every follower whenever the leader is lost.
   */
  private async setStateAsync(next: ModuleState, cause: string, localCause: boolean): Promise<void> {
    const prev = this.state;
    this.setState(next, cause);
    if (prev === 'UP' && next === 'WAIT' && localCause && this.host.farm.tcpreset) {
      // Not awaited: decisions (and the heartbeats queued behind them) must not wait for ss.
      void resetVipConnections(this.host.vips().map((v) => v.addr), this.opts.log, 'wait', this.ss);
    }
  }

  private setState(next: ModuleState, cause: string): void {
    if (next === this.state && cause === this.stateCause) return;
    const prev = this.state;
    this.stateCause = cause;
    if (next === prev) {
      this.opts.log.debug({ event: 'state_cause', state: next, cause }, `still ${next}: ${cause}`);
      return;
    }
    this.state = next;
    this.stateSince = Date.now();
    const t = this.host.tables();
    const { node, paths } = this.opts;
    this.events.append({
      event: 'state', time: new Date(this.stateSince).toISOString(), node, module: paths.module,
      state: next, previous: prev, cause, buckets: t ? ownedCount(t.buckets, t.selfNode) : 0,
    });
    const msg = next === 'UP' && this.source.mode === 'static' ? 'serving the static table' : `module ${next}: ${cause}`;
    // The lab harness waits on "state":"UP": keep this shape.
    this.opts.log[next === 'WAIT' && prev === 'UP' ? 'warn' : 'info']({
      event: 'state', state: next, previous: prev, cause, node, module: paths.module,
      buckets: t ? ownedCount(t.buckets, t.selfNode) : 0,
    }, msg);
  }

  private checksChanged(r: CheckResult): void {
    this.checkResult = r;
    if (r.ok) this.opts.log.info({ event: 'checks_ok' }, 'local checks pass');
    else this.opts.log.warn({ event: 'check_failed', failures: r.failures }, `local check failed: ${describeFailures(r.failures)}`);
    this.pushLocalHealth();
  }

  private pushLocalHealth(): void {
    const cause = this.localWaitCause();
    if (cause === this.pushedHealth && this.pushedHealth !== undefined) return;
    if (cause === undefined && this.pushedHealth === undefined && this.started) return;
    this.pushedHealth = cause;
    // WAIT serves nothing from the first instant, also while a table is being installed
    // (hundreds of ms on a loaded host): the revocation goes ahead of the queued decisions.
    // Those apply as WAIT while the cause lasts (apply: local), so none writes an older
    // renewal back.
    if (cause !== undefined) this.revokeLeaseAtOnce(cause);
    this.source.setLocalHealth(cause === undefined, cause ?? 'local checks pass');
  }

  /**
   * Resolves once this node serves nothing — its lease revoked, or no bucket owned and none
   * handed over — or after `limitMs`: stop_both runs after the node gave its buckets up and
   * its handover ended (docs/application.md).
   */
  private async servingNothing(limitMs: number): Promise<void> {
    const deadline = Date.now() + limitMs;
    for (;;) {
      if (this.stopping || !this.started) return;
      if (this.host.leaseDeadlineNs() === 0n || this.emptyHanded()) return;
      if (Date.now() >= deadline) {
        this.opts.log.warn({ event: 'leave_timeout', limitMs }, `the node still serves after ${limitMs} ms; the application stops anyway`);
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  // ---- control ---------------------------------------------------------------------

  private async adminStop(): Promise<DaemonStatus> {
    if (!this.adminStopped) {
      this.adminStopped = true;
      this.opts.log.info({ event: 'admin_stop' }, 'farmlb stop: module held in WAIT');
      this.pushLocalHealth();
    }
    await this.settle();
    // SafeKit's stop stops the application too, once the node gave its buckets up.
    if (this.app.hasScripts) {
      await this.servingNothing(35_000);
      await this.app.stopBoth();
    }
    return this.status();
  }

  private async adminStart(): Promise<DaemonStatus> {
    // A VIP removed by hand comes back with an administrative start (SafeKit restarts the module).
    await this.host.ensureAliases();
    await this.checks?.poll();
    // After maxloop stopped the module, or farmlb stop: start_both again before serving.
    const appStopped = this.app.stopped !== undefined || (this.app.hasScripts && this.app.status().phase !== 'running');
    this.app.clearStop();
    if (this.adminStopped) {
      this.adminStopped = false;
      this.opts.log.info({ event: 'admin_start' }, 'farmlb start: module may go UP');
      this.pushLocalHealth();
    }
    if (appStopped) await this.app.startBoth();
    await this.settle();
    return this.status();
  }

  /**
   * SafeKit's scriptcontrol (seed 001 §13.6.4): with <vip scriptcontrol="on"> the module
   * scripts open the VIP traffic (typically at the end of start_both) and close it (at the
   * start of stop_both). Closed, the node serves nothing, as in any WAIT.
   */
  private async scriptVip(action: 'open' | 'close'): Promise<DaemonStatus> {
    if (!this.host.farm.scriptcontrol) throw new FarmlbError('FARMLB_E_API_SCRIPTCONTROL_OFF', { action });
    const closed = action === 'close';
    if (closed !== this.vipClosed) {
      this.vipClosed = closed;
      this.opts.log.info({ event: 'vip_traffic', action }, `farmlb vip ${action}: VIP traffic ${closed ? 'closed' : 'opened'} by the module scripts`);
      this.pushLocalHealth();
    }
    await this.settle();
    return this.status();
  }

  private async power(change: PowerChange): Promise<DaemonStatus> {
    const { cluster, farm } = { cluster: this.opts.cluster, farm: this.host.farm };
    if (!cluster.nodes.includes(change.node)) {
      throw new FarmlbError('FARMLB_E_API_UNKNOWN_NODE', { node: change.node, nodes: cluster.nodes.join(', ') });
    }
    if (change.group !== undefined && !farm.groups.some((g) => g.name === change.group)) {
      throw new FarmlbError('FARMLB_E_API_UNKNOWN_GROUP', { group: change.group, groups: farm.groups.map((g) => g.name).join(', ') });
    }
    await this.source.setPower(change);
    this.opts.log.info({ event: 'power_set', node: change.node, power: change.power, group: change.group ?? null }, 'power override changed');
    await this.settle();
    return this.status();
  }

  /** Lets the decision the last command caused be applied before answering. */
  private async settle(): Promise<void> {
    await new Promise((r) => setImmediate(r));
    await this.decisions;
  }

  // ---- reload ----------------------------------------------------------------------

  /**
   * Re-reads userconfig.xml and cluster.xml. What can change in place (powers, groups,
   * rules, the hash seed, arpreroute settings — --static; see the source for membership) is
   * applied; anything else is refused with FARMLB_E_RUN_RELOAD_NEEDS_RESTART.
   */
  async reload(): Promise<void> {
    const { log, notifier } = this.opts;
    if (this.stopping || !this.started) return;
    log.info({ event: 'reload', config: this.host.farm.file }, 'reloading the configuration');
    notifier?.reloading();
    try {
      const loaded = await loadConfigs({ config: this.host.farm.file, cluster: this.opts.cluster.file });
      // The application's checkers, processes and scripts run from the start: a change needs one.
      if (appKey(loaded.farm.app) !== appKey(this.host.farm.app)) {
        throw new FarmlbError('FARMLB_E_RUN_RELOAD_NEEDS_RESTART', {
          detail: '<check>, <errd>, <user> or <service maxloop> changed: restart the daemon to apply them (docs/application.md)',
        });
      }
      const checked = await this.host.checkReload(loaded.farm, loaded.cluster);
      const table = await this.source.reload(checked.farm, checked.cluster);
      if (table === 'staged') {
        // The membership applies it once every node has it (configSwitched).
        this.stagedReload = checked;
        this.metrics.reloaded(true);
        return;
      }
      this.stagedReload = undefined;
      await this.host.applyReload(checked, table);
      this.digest = configDigest(checked.farm, checked.cluster);
      const t = this.host.tables()!;
      // Rules or the hash seed may have changed: the buckets of the held connections with them.
      this.holdings.tablesChanged(this.installed());
      this.metrics.reloaded(true);
      log.info({ event: 'reloaded', buckets: ownedCount(t.buckets, t.selfNode) }, 'configuration reloaded');
    } catch (err) {
      this.metrics.reloaded(false);
      log.error({ err, event: 'reload_failed' }, 'reload failed; the previous configuration stays');
      throw err;
    } finally {
      // Serving again either way: with the new configuration or the previous one.
      notifier?.ready();
    }
  }

  /** Every node has the staged configuration: apply it now, with the membership's current table. */
  private async configSwitched(digest: string, table: BucketTable): Promise<void> {
    const checked = this.stagedReload;
    this.stagedReload = undefined;
    if (!checked || configDigest(checked.farm, checked.cluster) !== digest) {
      this.opts.log.error({ event: 'config_switch_failed', digest }, 'the membership switched to a configuration this daemon does not hold; restart it');
      return;
    }
    await this.host.applyReload(checked, table);
    this.digest = digest;
    this.holdings.tablesChanged(this.installed());
    const t = this.host.tables()!;
    this.opts.log.info({ event: 'reloaded', digest, buckets: ownedCount(t.buckets, t.selfNode) }, 'staged configuration applied');
  }

  // ---- status ----------------------------------------------------------------------

  status(): DaemonStatus {
    const { node, paths, cluster } = this.opts;
    const farm = this.host.farm;
    const t = this.host.tables();
    const v = this.source.view();
    const groups = farm.groups.map((g) => g.name);
    const configured = groupPowers(farm, cluster);
    const count = (id: number) => Object.fromEntries(groups.map((g, gi) => [g, t?.buckets[gi]?.filter((o) => o === id).length ?? 0]));
    const countPrev = (id: number) => Object.fromEntries(groups.map((g, gi) => [g, t?.prevOwners?.[gi]?.filter((o) => o === id).length ?? 0]));
    const nodes: NodeStatus[] = cluster.nodes.map((name, id) => {
      const peer = v.peers.get(name);
      const buckets = count(id);
      const overrides = peer?.overrides ?? {};
      return {
        name,
        id,
        self: name === node,
        inView: v.view.includes(name),
        state: peer?.state ?? 'unknown',
        buckets,
        handingOver: countPrev(id),
        share: Object.fromEntries(groups.map((g) => [g, buckets[g]! / NBUCKETS])),
        power: Object.fromEntries(groups.map((g, gi) => [g, overrides[g] ?? configured[gi]?.get(name) ?? 0])),
        overridden: Object.keys(overrides).length > 0,
        ...(peer?.lastHeardMs !== undefined ? { lastHeardMs: peer.lastHeardMs } : {}),
        ...(peer?.heartbeatsReceived !== undefined ? { heartbeatsReceived: peer.heartbeatsReceived, heartbeatsMissed: peer.heartbeatsMissed ?? 0 } : {}),
        ...(peer?.foreignKeyMs !== undefined ? { foreignKeyMs: peer.foreignKeyMs } : {}),
        ...(peer?.foreignKeyId !== undefined ? { foreignKeyId: peer.foreignKeyId } : {}),
        ...(name === node ? this.selfHandoverStatus() : {}),
      };
    });
    const self = cluster.nodes.indexOf(node);
    const leaseNs = this.host.leaseDeadlineNs() - (this.started && !this.stopping ? nowNs() : 0n);
    const leaseRemainingMs = this.host.leaseDeadlineNs() === 0n || leaseNs <= 0n ? 0 : Number(leaseNs / 1_000_000n);
    return {
      node,
      module: paths.module,
      mode: this.source.mode,
      pid: process.pid,
      state: this.state,
      stateCause: this.stateCause,
      stateSince: this.stateSince,
      admin: this.adminStopped ? 'stopped' : 'started',
      ready: this.state === 'UP' && leaseRemainingMs > 0,
      view: v.view,
      epoch: v.epoch,
      leader: v.leader,
      groups,
      nodes,
      bucketsOwned: self < 0 ? {} : count(self),
      leaseRemainingMs,
      splitBrain: v.splitBrain,
      splitBrainPolicy: farm.farmlb.splitBrain,
      lastViewChange: v.lastViewChange ?? this.lastViewChange,
      checks: this.checkResult,
      checkers: [...this.vipCheckers(), ...this.app.checkers()],
      ...(this.app.hasScripts || this.app.checkers().length > 0 ? { application: this.app.status() } : {}),
      configDigest: this.digest,
      ...(v.backend ? { backend: v.backend } : {}),
      ...(v.corosync ? { corosync: v.corosync } : {}),
      ...(this.stagedReload ? { stagedDigest: configDigest(this.stagedReload.farm, this.stagedReload.cluster) } : {}),
      interfaces: this.host.interfaces().map((i) => ({ ...i })),
      ...(v.membershipCpu ? { membershipCpu: v.membershipCpu } : {}),
      ...(v.membershipDatagrams ? { membershipDatagrams: v.membershipDatagrams } : {}),
    };
  }

  /** This node's handover and SYN cookie state, for its NodeStatus. */
  private selfHandoverStatus(): Pick<NodeStatus, 'handover' | 'synCookies'> {
    const handover = this.holdings.status();
    const synCookies = this.synCookies.status();
    return { ...(handover ? { handover } : {}), ...(synCookies ? { synCookies } : {}) };
  }

  /** The table in the data plane and the epoch it was installed for (-1: the source's initial table). */
  private installed(): InstalledTables | undefined {
    const tables = this.host.tables();
    return tables ? { epoch: this.installedEpoch, tables } : undefined;
  }

  // ---- SYN cookies -----------------------------------------------------------------

  /** The first check sets the baseline; then one every SYN_COOKIE_CHECK_MS. */
  private async startSynCookieWatch(): Promise<void> {
    await this.checkSynCookies();
    const mode = this.synCookies.status()?.mode;
    if (mode === 2) {
      this.opts.log.warn({ event: 'syn_cookies_always', mode },
        'net.ipv4.tcp_syncookies=2: every handshake gets a SYN cookie, so a connection opened while its bucket moves is lost (set it to 1 and give the service a large listen backlog)');
    }
    this.synCookieTimer = setInterval(() => void this.checkSynCookies(), SYN_COOKIE_CHECK_MS);
    this.synCookieTimer.unref();
  }

  private async checkSynCookies(): Promise<void> {
    if (this.synCookieChecking || this.stopping) return;
    this.synCookieChecking = true;
    const { log } = this.opts;
    try {
      const c = await this.synCookies.check();
      this.synCookieReadFailed = false;
      if (c.started) {
        log.warn({ event: 'syn_cookies_sent', sent: c.sentSinceLast, sentTotal: c.sample.sent, mode: c.sample.mode },
          `the kernel sent ${c.sentSinceLast} SYN cookie(s): a listen backlog overflowed, and a connection made from a cookie is lost if its bucket moves during the handshake (give the service a larger listen backlog)`);
      }
      if (c.ended) {
        log.info({ event: 'syn_cookies_stopped', sent: c.ended.sent, durationMs: c.ended.durationMs },
          `no SYN cookie sent for a while (${c.ended.sent} in the episode)`);
      }
    } catch (err) {
      if (!this.synCookieReadFailed) log.warn({ err, event: 'syn_cookies_unreadable' }, 'cannot read the SYN cookie counters');
      this.synCookieReadFailed = true;
    } finally {
      this.synCookieChecking = false;
    }
  }

  /** [group][bucket] owner names of a table (null: unowned). */
  private ownerNames(t: DataplaneTables | undefined): (string | null)[][] | undefined {
    return t?.buckets.map((row) => row.map((o) => (o === NODE_NONE ? null : this.opts.cluster.nodes[o] ?? `node#${o}`)));
  }

  /** The kernel counters for /metrics, from the pinned maps (read-only, like `farmlb buckets`). */
  private async dataplaneCounters(): Promise<DataplaneCounters | undefined> {
    if (!this.started || this.stopping) return undefined;
    this.counterReader ??= this.port.readCounters(this.opts.paths.pinDir);
    const groups = Math.max(1, this.host.tables()?.buckets.length ?? 1);
    return this.counterReader.counters(groups);
  }

  private checkTargets(): CheckTarget[] {
    const bound = this.host.vips();
    const targets: CheckTarget[] = [];
    for (const intf of this.host.farm.interfaces) {
      const ifname = bound.find((b) => intf.addrs.some((a) => a.addr === b.addr))?.ifname;
      if (!ifname) continue;
      if (intf.check && !targets.some((t) => t.kind === 'interface' && t.ifname === ifname)) targets.push({ kind: 'interface', ifname });
      for (const a of intf.addrs) if (a.check) targets.push({ kind: 'vip', ifname, addr: a.addr });
    }
    return targets;
  }

  /** The <vip> checks (interface link, VIP configured) as resources beside the configured checkers. */
  private vipCheckers(): CheckerStatus[] {
    const interval = this.opts.checkIntervalMs ?? 2 * (this.host.farm.farm?.pulseMs ?? 100);
    return (this.checks ? this.checkTargets() : []).map((t) => {
      const target = t.kind === 'interface' ? t.ifname : t.addr;
      const failure = this.checkResult.failures.find((f) => f.kind === t.kind && f.target === target);
      return {
        resource: t.kind === 'interface' ? `intf.${t.ifname}` : `ip.${t.addr}`, kind: t.kind === 'interface' ? 'intf' : 'ip', target,
        when: 'pre', action: 'wait', effectiveAction: 'wait', fall: 1, rise: 1, intervalMs: interval, timeoutMs: 2_000,
        state: failure ? 'down' : 'up', probes: 0, failures: 0, consecutiveOk: 0, consecutiveFailed: 0, changes: 0,
        ...(failure ? { lastResult: { ok: false, detail: failure.detail, atMs: this.stateSince, durationMs: 0 } } : {}),
      };
    });
  }

  /** This node's addresses in cluster.xml (every LAN): where the health check listens. */
  private nodeAddrs(): string[] {
    const { cluster, node } = this.opts;
    return [...new Set(cluster.lans.flatMap((l) => l.nodes.filter((n) => n.name === node).map((n) => n.addr)))];
  }
}

/** The application configuration without source positions: what a reload may not change. */
function appKey(app: FarmConfig['app']): string {
  return JSON.stringify(app ?? null, (k, v) => (k === 'src' ? undefined : v));
}

/** How often the SYN cookie counters are read (cheap: one small /proc file). */
const SYN_COOKIE_CHECK_MS = 5_000;

function nowNs(): bigint {
  return loadNative().monotonicNs();
}

/** Buckets (all groups) whose owner differs between two tables. */
export function movedBuckets(before: DataplaneTables | undefined, after: DataplaneTables | undefined): number {
  if (!after) return 0;
  let moved = 0;
  after.buckets.forEach((row, g) => row.forEach((owner, b) => {
    if ((before?.buckets[g]?.[b] ?? NODE_NONE) !== owner) moved++;
  }));
  return moved;
}
