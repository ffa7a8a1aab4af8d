// The application of a module (docs/application.md): the checkers of <check>, the processes
// of <errd>, the module scripts of <user>, and what a failing resource does.
//
//   wait       the node leaves the farm while the resource is down (the daemon makes it
//              WAIT, naming the resource) and comes back once it is up `rise` times;
//   restart    stop_both; start_both — the node stays in the farm;
//   stopstart  the node leaves the farm; once it serves nothing: stop_both; start_both;
//              it comes back.
// restart and stopstart count against <service maxloop> within loop_interval: one more and
// the module stops (the node leaves the farm, stop_both runs, and it stays out until
// `farmlb start`), with an error in the log. Without <user> there is no script to restart
// the application, so a restart or stopstart resource acts as wait.
//
// Script and action steps run one at a time, in order (a queue); checkers report at any time.

import { isAbsolute, join } from 'node:path';
import type { Logger } from 'pino';
import type { AppAction, AppConfig, AppWhen, CheckerConfig, ProcConfig } from '../config/types.js';
import type { InstancePaths } from '../paths.js';
import { Resource, type ProbeResult } from '../checks/resource.js';
import type { ApplicationStatus, CheckerStatus } from '../api/status.js';

export type { ApplicationStatus, CheckerStatus } from '../api/status.js';
import { CustomRunner, PeriodicRunner, type CheckerRunner } from '../checks/runner.js';
import { checkerTarget, probeFor } from '../checks/probes.js';
import { listProcesses, procResult, type ProcessInfo } from '../checks/procs.js';
import { ModuleScripts, moduleEnv, type ScriptName, type ScriptResult } from './scripts.js';

export interface ApplicationHooks {
  /** waitCause() may have changed: the daemon re-evaluates whether the node may serve. */
  changed(): void;
  /** Resolves once this node serves nothing (lease revoked, no bucket, no handover), or after `limitMs`. */
  servingNothing(limitMs: number): Promise<void>;
  /** A resource went up or down (the daemon's event log). */
  checker?(e: { resource: string; state: 'up' | 'down'; detail: string; action: AppAction }): void;
  /** A script ran. */
  script?(r: ScriptResult): void;
}

export interface ApplicationOptions {
  app: AppConfig;
  paths: InstancePaths;
  node: string;
  configFile: string;
  log: Logger;
  hooks: ApplicationHooks;
  /** For tests: the process list <errd> reads. */
  processes?: () => Promise<ProcessInfo[]>;
  /** For tests: the clock of maxloop (ms). */
  nowMs?: () => number;
  /** How long a stopstart or a module stop waits for the node to serve nothing before stop_both. */
  leaveLimitMs?: number;
}

interface Watched {
  resource: string;
  /** An HTTP checker's URL (the leave rule tries its port). */
  url?: string;
  kind: CheckerStatus['kind'];
  target: string;
  when: AppWhen;
  action: AppAction;
  fall: number;
  rise: number;
  intervalMs: number;
  timeoutMs: number;
  state: Resource;
  runner: CheckerRunner;
  running: boolean;
}

const LEAVE_LIMIT_MS = 35_000;

export class Application {
  private readonly watched: Watched[] = [];
  private readonly scripts: ModuleScripts | undefined;
  private phase: ApplicationStatus['phase'] = 'stopped';
  private queue: Promise<void> = Promise.resolve();
  private readonly loopTimes: number[] = [];
  private stoppedBy: string | undefined;
  /** stopstart in progress: the node leaves the farm for it. */
  private leavingFor: string | undefined;
  /** restart in progress: the node stays in the farm while the application restarts. */
  private restarting = false;
  private lastScripts: ScriptResult[] = [];
  private closed = false;
  private readonly log: Logger;

  constructor(private readonly opts: ApplicationOptions) {
    const { app, paths, node, configFile } = opts;
    this.log = opts.log;
    const env = moduleEnv(app, paths, node, configFile);
    if (app.scripts) {
      this.scripts = new ModuleScripts({
        dir: app.binDir, env, niceTimeoutMs: app.scripts.niceStopTimeoutMs, forceTimeoutMs: app.scripts.forceStopTimeoutMs,
        logOutput: app.scripts.logOutput, log: opts.log.child({ module: 'scripts' }),
      });
    }
    for (const c of app.checkers) this.watch(c, env);
    if (app.procs.length > 0) this.watchProcs(app.procs, app.procPollMs);
  }

  get hasScripts(): boolean {
    return this.scripts !== undefined;
  }

  // ---- life cycle (called by the daemon, in docs/application.md's order) -------------

  /** `when="pre"` checkers and `class="pre"` processes: from the daemon's start. */
  startPre(): void {
    for (const w of this.watched) if (w.when === 'pre') this.run(w, true);
  }

  prestart(): Promise<void> {
    return this.step(async () => { await this.script('prestart'); });
  }

  /** start_both, then the checkers and processes of the running application. false: start_both failed. */
  startBoth(): Promise<boolean> {
    let ok = false;
    return this.step(async () => { ok = await this.doStartBoth(); }).then(() => ok);
  }

  /** The application's checkers stop, then stop_both. */
  stopBoth(): Promise<void> {
    return this.step(() => this.doStopBoth());
  }

  poststop(): Promise<void> {
    return this.step(async () => { await this.script('poststop'); });
  }

  /** Every checker stops (the daemon's stop); idempotent. */
  close(): void {
    this.closed = true;
    for (const w of this.watched) this.run(w, false);
  }

  /** `farmlb start` after maxloop stopped the module: counts start again. */
  clearStop(): void {
    this.stoppedBy = undefined;
    this.loopTimes.length = 0;
  }

  /** The application is stopped by maxloop. */
  get stopped(): string | undefined {
    return this.stoppedBy;
  }

  /**
   * Why this node must not serve, from the application's side (undefined: it may). The daemon
   * makes the node WAIT with this cause.
   */
  waitCause(): string | undefined {
    if (this.stoppedBy) return this.stoppedBy;
    if (this.leavingFor) return this.leavingFor;
    if (this.phase === 'failed') return 'start_both failed: the application is not started (farmlb start retries)';
    if (this.scripts && this.phase !== 'running' && !this.restarting) return `application ${this.phase}`;
    const down = this.watched.filter((w) => w.running && this.effective(w) === 'wait' && w.state.state === 'down');
    if (down.length) return down.map((w) => `${w.kind === 'proc' ? 'process' : 'checker'} ${w.resource} down (${w.state.snapshot().lastResult?.detail ?? 'no result'})`).join('; ');
    const unknown = this.watched.filter((w) => w.running && this.effective(w) === 'wait' && w.state.state === 'unknown');
    if (unknown.length) return `waiting for the first result of ${unknown.map((w) => w.resource).join(', ')}`;
    return undefined;
  }

  /** The down resources that make the node leave, with their last results (for the leave rule). */
  downResources(): { resource: string; kind: CheckerStatus['kind']; url?: string; result?: ProbeResult }[] {
    if (this.stoppedBy || this.leavingFor || this.phase !== 'running') return [];
    return this.watched.filter((w) => w.running && this.effective(w) === 'wait' && w.state.state === 'down')
      .map((w) => ({ resource: w.resource, kind: w.kind, ...(w.url ? { url: w.url } : {}), ...(w.state.snapshot().lastResult ? { result: w.state.snapshot().lastResult! } : {}) }));
  }

  checkers(): CheckerStatus[] {
    return this.watched.map((w) => ({
      resource: w.resource, kind: w.kind, target: w.target, when: w.when, action: w.action, effectiveAction: this.effective(w),
      fall: w.fall, rise: w.rise, intervalMs: w.intervalMs, timeoutMs: w.timeoutMs,
      ...w.state.snapshot(),
    }));
  }

  status(): ApplicationStatus {
    this.pruneLoops();
    return {
      scripts: this.scripts !== undefined, phase: this.phase, loops: this.loopTimes.length, maxloop: this.opts.app.maxloop,
      ...(this.stoppedBy ? { stoppedBy: this.stoppedBy } : {}), lastScripts: [...this.lastScripts],
    };
  }

  /** Resolves once the queued steps are done (tests, stop). */
  idle(): Promise<void> {
    return this.queue;
  }

  // ---- internals ---------------------------------------------------------------------

  private effective(w: Watched): AppAction {
    return this.scripts ? w.action : 'wait';
  }

  private step(fn: () => Promise<void>): Promise<void> {
    const next = this.queue.then(fn).catch((err) => this.log.error({ err, event: 'application_step_failed' }, 'application step failed'));
    this.queue = next;
    return next;
  }

  private async script(name: ScriptName): Promise<ScriptResult | undefined> {
    if (!this.scripts) return undefined;
    const r = await this.scripts.run(name);
    if (r.ran) {
      this.lastScripts = [...this.lastScripts.filter((x) => x.script !== name), r];
      this.opts.hooks.script?.(r);
    }
    return r;
  }

  private async doStartBoth(keepState = false): Promise<boolean> {
    if (this.closed || this.stoppedBy) return false;
    this.phase = 'starting';
    this.opts.hooks.changed();
    const r = await this.script('start_both');
    if (r && r.ran && !r.ok) {
      this.phase = 'failed';
      this.opts.hooks.changed();
      return false;
    }
    this.phase = 'running';
    for (const w of this.watched) if (w.when === 'both') this.run(w, true, keepState);
    this.opts.hooks.changed();
    return true;
  }

  private async doStopBoth(keepState = false): Promise<void> {
    for (const w of this.watched) if (w.when === 'both') this.run(w, false, keepState);
    if (this.phase === 'stopped') return;
    this.phase = 'stopping';
    this.opts.hooks.changed();
    await this.script('stop_both');
    this.phase = 'stopped';
    this.opts.hooks.changed();
  }

  /**
   * Starts or stops a checker. `keepState` (a restart): its resource keeps the state it had,
   * so a restarted application that answers again is not first "unknown" — which would make
   * the node leave the farm for the first probe.
   */
  private run(w: Watched, on: boolean, keepState = false): void {
    if (on && this.closed) return;
    if (on === w.running) return;
    w.running = on;
    if (on) {
      if (!keepState) w.state.reset('unknown');
      w.runner.start();
    } else {
      w.runner.stop();
      if (!keepState) w.state.reset('stopped');
    }
  }

  private watch(c: CheckerConfig, env: NodeJS.ProcessEnv): void {
    const state = new Resource(c.fall, c.rise);
    const w: Watched = {
      resource: c.resource, kind: c.kind, target: checkerTarget(c), when: c.when, action: c.action, ...(c.kind === 'http' ? { url: c.url } : {}),
      fall: c.fall, rise: c.rise, intervalMs: c.intervalMs, timeoutMs: c.timeoutMs, state, running: false,
      runner: undefined as unknown as CheckerRunner,
    };
    const sink = (r: ProbeResult, ms: number) => this.result(w, r, ms);
    w.runner = c.kind === 'custom'
      ? new CustomRunner({
        exec: isAbsolute(c.exec) ? c.exec : join(this.opts.app.binDir, c.exec), args: c.args, env, cwd: this.opts.app.binDir,
        intervalMs: c.intervalMs, log: this.log.child({ module: 'checker', resource: c.resource }),
      }, sink)
      : new PeriodicRunner(probeFor(c), c.intervalMs, sink);
    this.watched.push(w);
  }

  /** One /proc read per poll for every <proc> of its class. */
  private watchProcs(procs: ProcConfig[], pollMs: number): void {
    const read = this.opts.processes ?? (() => listProcesses());
    for (const when of ['pre', 'both'] as const) {
      const mine = procs.filter((p) => p.when === when);
      if (!mine.length) continue;
      const entries = mine.map((p) => {
        const w: Watched = {
          resource: p.resource, kind: 'proc', target: p.argRegex ? `${p.name} (${p.argRegex})` : p.name, when, action: p.action,
          // A process is there or not: no need to see it missing twice.
          fall: 1, rise: 1, intervalMs: pollMs, timeoutMs: pollMs, state: new Resource(1, 1), running: false,
          runner: { start: () => undefined, stop: () => undefined },
        };
        this.watched.push(w);
        return { p, w };
      });
      const poller = new PeriodicRunner(async () => {
        const list = await read();
        for (const { p, w } of entries) if (w.running) this.result(w, procResult(p, list), 0);
        return { ok: true, detail: '' };
      }, pollMs, () => undefined);
      // The shared poller runs while any of its processes is watched.
      let active = 0;
      for (const { w } of entries) {
        w.runner = {
          start: () => { if (active++ === 0) poller.start(); },
          stop: () => { if (--active === 0) poller.stop(); },
        };
      }
    }
  }

  private result(w: Watched, r: ProbeResult, durationMs: number): void {
    if (!w.running) return;
    const change = w.state.record(r, Date.now(), durationMs);
    if (!change) return;
    const fields = { event: 'checker', resource: w.resource, kind: w.kind, state: change, detail: r.detail, action: this.effective(w) };
    if (change === 'down') this.log.warn(fields, `${w.resource} down: ${r.detail}`);
    else this.log.info(fields, `${w.resource} up: ${r.detail}`);
    this.opts.hooks.checker?.({ resource: w.resource, state: change, detail: r.detail, action: this.effective(w) });
    this.opts.hooks.changed();
    if (change === 'down') {
      const action = this.effective(w);
      if (action === 'restart' || action === 'stopstart') this.step(() => this.act(w, action));
    }
  }

  private pruneLoops(): void {
    const now = (this.opts.nowMs ?? Date.now)();
    while (this.loopTimes.length && now - this.loopTimes[0]! > this.opts.app.loopIntervalMs) this.loopTimes.shift();
  }

  /** restart or stopstart for `w` (queued): counted against maxloop. */
  private async act(w: Watched, action: 'restart' | 'stopstart'): Promise<void> {
    if (this.closed || this.stoppedBy || this.phase !== 'running' || w.state.state !== 'down') return;
    this.pruneLoops();
    const { maxloop, loopIntervalMs } = this.opts.app;
    if (this.loopTimes.length >= maxloop) {
      this.stoppedBy = `module stopped: ${w.resource} down again after ${this.loopTimes.length} restart(s) within ${Math.round(loopIntervalMs / 1000)} s (maxloop ${maxloop}); farmlb start restarts it`;
      this.log.error({ event: 'maxloop_reached', resource: w.resource, loops: this.loopTimes.length, maxloop, loopIntervalMs }, this.stoppedBy);
      this.opts.hooks.changed();
      await this.opts.hooks.servingNothing(this.opts.leaveLimitMs ?? LEAVE_LIMIT_MS);
      await this.doStopBoth();
      return;
    }
    this.loopTimes.push((this.opts.nowMs ?? Date.now)());
    this.log.warn({ event: 'application_action', action, resource: w.resource, loops: this.loopTimes.length, maxloop },
      `action ${action} called by ${w.resource} (${this.loopTimes.length} of ${maxloop} within loop_interval)`);
    if (action === 'stopstart') {
      this.leavingFor = `stopstart: ${w.resource} down, the application restarts`;
      this.opts.hooks.changed();
      await this.opts.hooks.servingNothing(this.opts.leaveLimitMs ?? LEAVE_LIMIT_MS);
    }
    this.restarting = action === 'restart';
    try {
      await this.doStopBoth(this.restarting);
      // The resource that called the restart starts afresh, so failing again is a new down.
      w.state.reset('unknown');
      await this.doStartBoth(this.restarting);
    } finally {
      this.leavingFor = undefined;
      this.restarting = false;
      this.opts.hooks.changed();
    }
  }
}
