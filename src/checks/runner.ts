// What drives a checker: a periodic probe (tcp, http, ping, intf, ip, and <errd> process
// counts), or a custom program farmlb starts and supervises that reports its resource itself.
//
// Periodic: one probe at a time (a slow probe never stacks another); the next starts
// `interval` after the previous one started, or at once when the probe took longer.
//
// Custom (SafeKit §13.16, in farmlb's form): the program runs as long as its checker does and
// prints one line per test on its standard output — `up` or `down`, optionally followed by a
// reason (`down: replica lag 30 s`). Each line counts as one probe for fall/rise. If it
// exits, that is a failed probe, and it is started again after `interval` (at least 1 s, at
// most 10 s apart when it keeps exiting). It runs in its own process group, which stop() ends.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import type { ProbeResult } from './resource.js';

export interface CheckerRunner {
  start(): void;
  /** Stops probing; a probe in flight is ignored when it ends. Idempotent. */
  stop(): void;
}

export type ResultSink = (result: ProbeResult, durationMs: number) => void;

export class PeriodicRunner implements CheckerRunner {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Bumped by stop(): a probe of an older generation reports nothing. */
  private generation = 0;

  constructor(private readonly probe: () => Promise<ProbeResult>, private readonly intervalMs: number, private readonly sink: ResultSink) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.loop(this.generation);
  }

  stop(): void {
    this.running = false;
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async loop(gen: number): Promise<void> {
    if (!this.running || gen !== this.generation) return;
    const t0 = performance.now();
    let result: ProbeResult;
    try {
      result = await this.probe();
    } catch (err) {
      result = { ok: false, detail: `probe failed: ${err instanceof Error ? err.message : String(err)}` };
    }
    if (!this.running || gen !== this.generation) return;
    const took = performance.now() - t0;
    this.sink(result, Math.round(took));
    this.timer = setTimeout(() => void this.loop(gen), Math.max(0, this.intervalMs - took));
  }
}

export interface CustomRunnerOptions {
  /** Absolute path of the program. */
  exec: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  intervalMs: number;
  log: Logger;
}

const LINE = /^\s*(up|down)\b[\s:,-]*(.*)$/i;
const MAX_LINE = 4096;

export class CustomRunner implements CheckerRunner {
  private child: ChildProcess | undefined;
  private running = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private exits = 0;
  private lastLineAt = performance.now();

  constructor(private readonly opts: CustomRunnerOptions, private readonly sink: ResultSink) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.spawn();
  }

  stop(): void {
    this.running = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      killGroup(child, 'SIGTERM');
      setTimeout(() => killGroup(child, 'SIGKILL'), 2_000).unref();
    }
  }

  /** The process id of the running program (tests, status). */
  pid(): number | undefined {
    return this.child?.pid;
  }

  private spawn(): void {
    const { exec, args, env, cwd, log } = this.opts;
    let child: ChildProcess;
    try {
      child = spawn(exec, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      this.exited(`cannot start: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    this.child = child;
    this.lastLineAt = performance.now();
    let buf = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.line(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      // A program that never ends a line must not grow memory without bound.
      if (buf.length > MAX_LINE) buf = '';
    });
    let errBuf = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      errBuf += d;
      let nl: number;
      while ((nl = errBuf.indexOf('\n')) >= 0) {
        log.info({ event: 'custom_checker_output', stream: 'stderr', line: errBuf.slice(0, Math.min(nl, MAX_LINE)) }, 'custom checker output');
        errBuf = errBuf.slice(nl + 1);
      }
      if (errBuf.length > MAX_LINE) errBuf = '';
    });
    child.once('error', (err) => {
      if (this.child === child) this.exited(`cannot start: ${err.message}`);
    });
    child.once('exit', (code, signal) => {
      if (this.child === child) this.exited(`exited (${signal ?? `code ${code}`})`);
    });
  }

  private line(text: string): void {
    if (!this.running) return;
    const m = LINE.exec(text);
    if (!m) {
      this.opts.log.debug({ event: 'custom_checker_output', stream: 'stdout', line: text.slice(0, MAX_LINE) }, 'custom checker output');
      return;
    }
    const now = performance.now();
    const ok = m[1]!.toLowerCase() === 'up';
    const reason = m[2]!.trim().slice(0, 200);
    this.exits = 0;
    this.sink({ ok, detail: reason || (ok ? 'reported up' : 'reported down') }, Math.round(now - this.lastLineAt));
    this.lastLineAt = now;
  }

  private exited(why: string): void {
    this.child = undefined;
    if (!this.running) return;
    this.exits++;
    this.sink({ ok: false, detail: `checker program ${why}` }, 0);
    const delay = Math.min(10_000, Math.max(1_000, this.opts.intervalMs) * Math.min(this.exits, 10));
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.running) this.spawn();
    }, delay);
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid) process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}
