// How a node leaves the farm when its application fails a `wait` checker (docs/application.md,
// "Leaving the farm"). The rule:
//
//   the application still holds its connections — every resource that is down is an HTTP
//   checker whose last probe was not refused, and a TCP connection to its port is accepted
//   now (a failing health page, an overloaded or hung server) — it hands its buckets over
//   like `farmlb drain`: new connections go to the other nodes at once, its established
//   ones finish here (until <farmlb handover_limit>), then it is WAIT;
//
//   otherwise — the connection is refused, the process is gone, or another kind of checker
//   failed (the resource itself is what serves the traffic) — it leaves at once: WAIT, lease
//   revoked, its buckets taken over once the lease has run out.
//
// The drain is a runtime power override of 0 for this node (the membership's own handover);
// the override in force before is put back when the resource is up again. It is recorded in
// <run-dir>/leave.json, so a daemon restarted meanwhile puts it back too. Membership only:
// a --static node has no one to hand its buckets to.

import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { ProbeResult } from '../checks/resource.js';
import { httpTarget, tcpProbe } from '../checks/probes.js';

export interface DownResource {
  resource: string;
  kind: string;
  /** The HTTP checker's URL (kind http). */
  url?: string;
  result?: ProbeResult;
}

/** The rule above: drain when the application still holds connections, else leave at once. */
export async function leaveRule(down: readonly DownResource[], tcp: (host: string, port: number) => Promise<ProbeResult>): Promise<{ drain: boolean; why: string }> {
  if (down.length === 0) return { drain: false, why: 'nothing is down' };
  for (const d of down) {
    if (d.kind !== 'http' || !d.url) return { drain: false, why: `${d.resource} is not an HTTP checker` };
    if (d.result?.refused) return { drain: false, why: `${d.resource}: connection refused` };
  }
  for (const d of down) {
    const { host, port } = httpTarget(d.url!);
    const r = await tcp(host, port);
    if (!r.ok) return { drain: false, why: `${d.resource}: port ${port} ${r.detail}` };
  }
  return { drain: true, why: 'the TCP port still accepts connections' };
}

export interface LeaveHost {
  membership: boolean;
  handoverLimitMs: number;
  runDir: string;
  log: Logger;
  /** This node's runtime power overrides per group (empty: none). */
  selfOverrides(): Record<string, number>;
  /** Sets (power) or clears (null) this node's override, every group or one. */
  setSelfPower(power: number | null, group?: string): Promise<void>;
  /** This node owns no bucket and hands none over. */
  servingNothing(): boolean;
  /** The leave phase changed: the daemon re-evaluates the node's health. */
  changed(): void;
}

const TCP_CHECK_MS = 500;

export class GracefulLeave {
  private phase: 'none' | 'draining' | 'left' = 'none';
  private why = '';
  private watcher: NodeJS.Timeout | undefined;
  private deadline = 0;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly host: LeaveHost, private readonly tcp = (h: string, p: number) => tcpProbe(h, p, TCP_CHECK_MS)) {}

  private get file(): string {
    return path.join(this.host.runDir, 'leave.json');
  }

  /** Set while the rule is being decided (a TCP connection tried): the node does not leave before. */
  private deciding = 0;

  /** While draining (or deciding whether to) the node keeps serving: its application cause waits. */
  holding(): boolean {
    return this.phase === 'draining' || this.deciding > 0;
  }

  draining(): boolean {
    return this.phase === 'draining';
  }

  /** Whether update(down) may start a drain (then the node must not leave before it decided). */
  mayDrain(down: readonly DownResource[]): boolean {
    return this.host.membership && this.host.handoverLimitMs > 0 && this.phase === 'none' && down.length > 0
      && down.every((d) => d.kind === 'http' && d.url !== undefined && !d.result?.refused);
  }

  /** The UP cause while draining. */
  cause(appCause: string): string {
    return `leaving: ${appCause}; handing its buckets over like a drain (${this.why})`;
  }

  /** The application's down resources now (empty: none down). Serialized; never rejects. */
  update(down: readonly DownResource[]): Promise<void> {
    const held = this.mayDrain(down);
    if (held) this.deciding++;
    this.queue = this.queue.then(() => this.step(down)).catch((err) => this.host.log.error({ err, event: 'leave_failed' }, 'graceful leave failed'))
      .finally(() => { if (held) this.deciding--; });
    return this.queue;
  }

  private async step(down: readonly DownResource[]): Promise<void> {
    if (down.length === 0) {
      if (this.phase !== 'none') await this.restore('the resources are up again');
      return;
    }
    if (this.phase === 'left') return;
    if (this.phase === 'draining') {
      // The application died meanwhile: no connection left to finish, leave at once.
      const rule = await leaveRule(down, this.tcp);
      if (!rule.drain) this.finish(`leaving at once: ${rule.why}`);
      return;
    }
    if (!this.host.membership || this.host.handoverLimitMs <= 0) return;
    const rule = await leaveRule(down, this.tcp);
    this.host.log.warn({ event: 'leave', drain: rule.drain, why: rule.why, resources: down.map((d) => d.resource) },
      rule.drain ? `leaving the farm like a drain: ${rule.why}` : `leaving the farm at once: ${rule.why}`);
    if (!rule.drain) return;
    const prev = this.host.selfOverrides();
    await this.persist(prev);
    this.phase = 'draining';
    this.why = rule.why;
    this.deadline = Date.now() + this.host.handoverLimitMs + 5_000;
    await this.host.setSelfPower(0);
    this.host.changed();
    this.watcher = setInterval(() => {
      if (this.host.servingNothing()) this.finish('handover ended');
      else if (Date.now() > this.deadline) this.finish('handover limit reached');
    }, 100);
  }

  private finish(why: string): void {
    if (this.phase !== 'draining') return;
    if (this.watcher) clearInterval(this.watcher);
    this.watcher = undefined;
    this.phase = 'left';
    this.host.log.info({ event: 'leave_done', why }, `left the farm: ${why}`);
    this.host.changed();
  }

  private async restore(why: string): Promise<void> {
    if (this.watcher) clearInterval(this.watcher);
    this.watcher = undefined;
    this.phase = 'none';
    const prev = await this.recorded();
    this.host.changed();
    if (prev) await this.putBack(prev, why);
  }

  /** A daemon restarted after a drain it did not undo: put the earlier override back. */
  async restoreAtStart(): Promise<void> {
    const prev = await this.recorded();
    if (prev) await this.putBack(prev, 'the daemon restarted');
  }

  private async putBack(prev: Record<string, number>, why: string): Promise<void> {
    const groups = Object.entries(prev);
    if (groups.length === 0) await this.host.setSelfPower(null);
    else for (const [g, p] of groups) await this.host.setSelfPower(p, g);
    await rm(this.file, { force: true });
    this.host.log.info({ event: 'leave_restored', why, overrides: prev }, `power override of this node put back (${why})`);
  }

  private async persist(prev: Record<string, number>): Promise<void> {
    await writeFile(`${this.file}.tmp`, `${JSON.stringify({ overrides: prev })}\n`, { mode: 0o600 });
    await rename(`${this.file}.tmp`, this.file);
  }

  private async recorded(): Promise<Record<string, number> | undefined> {
    try {
      const raw = JSON.parse(await readFile(this.file, 'utf8')) as { overrides?: unknown };
      const o = raw.overrides;
      if (typeof o !== 'object' || o === null || Object.values(o).some((v) => !Number.isSafeInteger(v) || (v as number) < 0)) return {};
      return o as Record<string, number>;
    } catch {
      return undefined;
    }
  }

  close(): void {
    if (this.watcher) clearInterval(this.watcher);
    this.watcher = undefined;
  }
}
