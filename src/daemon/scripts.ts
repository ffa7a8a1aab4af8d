// The module scripts (SafeKit user guide §14, farm module): prestart, start_both, stop_both,
// poststop in the module's bin directory, run when <user> is configured and the file
// exists. docs/application.md gives the order around the buckets.
//
// Each runs in its own process group with SafeKit's environment (SAFE, SAFEBIN, SAFEVAR,
// SAFEMODULE, SAFEUSERBIN and the <var> values) plus farmlb's (FARMLB_NODE, FARMLB_MODULE,
// FARMLB_RUN_DIR, FARMLB_PIN_DIR), bounded by <user nicestoptimeout>: past it the group is
// killed, and a stop script is run again as `<script> -force`, bounded by forcestoptimeout.
// Its output, and that of what it started in the background while it keeps the pipe
// (SafeKit's logging="userlog"), goes to the log line by line with the script's name.

import { spawn } from 'node:child_process';
import { access, constants, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AppConfig } from '../config/types.js';
import type { InstancePaths } from '../paths.js';

export type ScriptName = 'prestart' | 'start_both' | 'stop_both' | 'poststop';

export interface ScriptResult {
  script: ScriptName;
  /** false: no such script (nothing to run, not a failure). */
  ran: boolean;
  ok: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** The stop script timed out and `-force` ran after it. */
  forced: boolean;
  durationMs: number;
  detail: string;
}

/** The SafeKit environment of scripts and custom checkers (plus farmlb's own). */
export function moduleEnv(app: AppConfig, paths: InstancePaths, node: string, configFile: string): NodeJS.ProcessEnv {
  const bin = path.dirname(process.argv[1] ?? process.execPath);
  const vars = Object.fromEntries((app.scripts?.vars ?? []).map((v) => [v.name, v.value]));
  return {
    ...process.env,
    SAFE: path.dirname(bin),
    SAFEBIN: bin,
    SAFEVAR: paths.runDir,
    SAFEMODULE: paths.module,
    SAFEUSERBIN: app.binDir,
    FARMLB_NODE: node,
    FARMLB_MODULE: paths.module,
    FARMLB_RUN_DIR: paths.runDir,
    FARMLB_PIN_DIR: paths.pinDir,
    FARMLB_CONFIG: configFile,
    ...vars,
  };
}

const MAX_LINE = 4096;

export class ModuleScripts {
  constructor(private readonly opts: {
    dir: string;
    env: NodeJS.ProcessEnv;
    niceTimeoutMs: number;
    forceTimeoutMs: number;
    logOutput: boolean;
    log: Logger;
  }) {}

  /** Runs one script (no-op when it does not exist). Never rejects. */
  async run(script: ScriptName): Promise<ScriptResult> {
    const file = path.join(this.opts.dir, script);
    const t0 = performance.now();
    const none = (ok: boolean, detail: string): ScriptResult => ({
      script, ran: false, ok, code: null, signal: null, timedOut: false, forced: false, durationMs: 0, detail,
    });
    try {
      if (!(await stat(file)).isFile()) return none(false, `${file} is not a file`);
    } catch {
      return none(true, 'no such script');
    }
    try {
      await access(file, constants.X_OK);
    } catch {
      const r = none(false, `${file} is not executable (chmod +x it)`);
      this.opts.log.error({ event: 'script_failed', script, detail: r.detail }, `module script ${script}: ${r.detail}`);
      return r;
    }
    const stop = script === 'stop_both' || script === 'poststop';
    this.opts.log.info({ event: 'script_start', script }, `running ${script}`);
    let r = await this.once(script, file, [], this.opts.niceTimeoutMs);
    let forced = false;
    if (r.timedOut && stop) {
      this.opts.log.warn({ event: 'script_timeout', script, timeoutMs: this.opts.niceTimeoutMs }, `${script} did not end within ${this.opts.niceTimeoutMs} ms: killed; running ${script} -force`);
      r = await this.once(script, file, ['-force'], this.opts.forceTimeoutMs);
      forced = true;
    }
    const durationMs = Math.round(performance.now() - t0);
    const ok = !r.timedOut && r.code === 0;
    const detail = r.timedOut ? `killed after ${forced ? this.opts.forceTimeoutMs : this.opts.niceTimeoutMs} ms` : r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`;
    const fields = { event: ok ? 'script_done' : 'script_failed', script, code: r.code, signal: r.signal, timedOut: r.timedOut, forced, durationMs };
    if (ok) this.opts.log.info(fields, `${script} done in ${durationMs} ms`);
    else this.opts.log.error(fields, `module script ${script} failed: ${detail}`);
    return { script, ran: true, ok, code: r.code, signal: r.signal, timedOut: r.timedOut, forced, durationMs, detail };
  }

  private once(script: ScriptName, file: string, args: string[], timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean }> {
    const { log, logOutput, env, dir } = this.opts;
    return new Promise((resolve) => {
      const child = spawn(file, args, { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        try { if (child.pid) process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
      }, timeoutMs);
      for (const [stream, s] of [['stdout', child.stdout!], ['stderr', child.stderr!]] as const) {
        let buf = '';
        s.setEncoding('utf8');
        // Kept after the script exits: what it started in the background may still write here.
        s.on('data', (d: string) => {
          buf += d;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            if (logOutput) log.info({ event: 'script_output', script, stream, line: buf.slice(0, Math.min(nl, MAX_LINE)) }, `${script}: ${buf.slice(0, Math.min(nl, 200))}`);
            buf = buf.slice(nl + 1);
          }
          if (buf.length > MAX_LINE) buf = '';
        });
        s.on('error', () => { /* the pipe of a killed group */ });
      }
      child.once('error', (err) => {
        clearTimeout(timer);
        log.error({ err, event: 'script_failed', script }, `cannot run ${script}`);
        resolve({ code: null, signal: null, timedOut: false });
      });
      // 'exit', not 'close': an application started in the background keeps the pipes open.
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, timedOut });
      });
    });
  }
}
