// Lab helpers: network namespaces, veth pairs and bounded waits, with cleanup that runs
// even when a test fails or the run is interrupted.
//
// API
//   run(cmd, args, opts?)            execFile with a timeout (default 15 s); resolves
//                                    { stdout, stderr }; rejects with an Error naming the
//                                    command, its exit status and its stderr.
//   inNetns(ns, cmd, args, opts?)    run() inside namespace ns via `nsenter --net=/run/netns/ns`
//                                    (not `ip netns exec`, which gives the command a private
//                                    /sys and so hides bpffs pins — LAB-NOTES.md).
//   createNetns(name) / deleteNetns(name)    `ip netns add/del`; names must start with flb-.
//                                    deleteNetns ignores a namespace that is already gone.
//   vethPair({ a: {name, ns?}, b: {name, ns?}, up? })  create a veth pair, move each end into
//                                    its namespace (if given) and set both up (default).
//   addAddr(ns, dev, cidr, { nodad? })  `ip addr add`; nodad for IPv6 addresses shared by nodes.
//   linkMac(ns, dev)                 the MAC address of a link (aa:bb:cc:dd:ee:ff).
//   uniqueSuffix()                   a short per-process suffix for names (pid based).
//   waitFor(cond, { timeoutMs, intervalMs?, what })  polls cond() (sync or async, truthy =
//                                    done) until the deadline; throws "timed out after N ms
//                                    waiting for <what>" with the last error cond() threw.
//   new LabRegistry()                remembers what a test created:
//     .netns(name)                   create a namespace and remember it
//     .veth({...})                   vethPair() and remember the root-namespace ends
//     .onCleanup(fn)                 any other undo step (run in reverse order)
//     .cleanup()                     undo everything, newest first; never throws, idempotent.
//   Every registry is also cleaned up on process exit, SIGINT and SIGTERM, so a killed test
//   run does not leave flb-* namespaces behind. Call cleanup() from afterAll anyway.
//   A run killed by SIGKILL (a stopped CI job, an OOM kill) runs no handler: each namespace a
//   registry creates is recorded with its creator's pid in /run/flb-lab/, and the first
//   registry of the next run removes the namespaces (their processes and pins too) whose
//   creator is gone. Namespaces of a live run, of this process or another, are never touched.

import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { PIN_ROOT } from '../../../src/paths.js';

const execFileAsync = promisify(execFile);

export interface RunOptions {
  timeoutMs?: number;
  /** Written to the command's stdin. */
  input?: string;
  maxBuffer?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeout = opts.timeoutMs ?? 15_000;
  try {
    if (opts.input !== undefined) return await runWithInput(cmd, args, opts.input, timeout, opts.maxBuffer);
    const { stdout, stderr } = await execFileAsync(cmd, args, {
      timeout,
      killSignal: 'SIGKILL',
      maxBuffer: opts.maxBuffer ?? 64 << 20,
      encoding: 'utf8',
    });
    return { stdout, stderr };
  } catch (err) {
    throw commandError(cmd, args, timeout, err);
  }
}

function runWithInput(cmd: string, args: string[], input: string, timeout: number, maxBuffer?: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout, killSignal: 'SIGKILL', maxBuffer: maxBuffer ?? 64 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) reject(Object.assign(err, { stdout, stderr }));
        else resolve({ stdout, stderr });
      },
    );
    child.stdin?.end(input);
  });
}

function commandError(cmd: string, args: string[], timeoutMs: number, err: unknown): Error {
  const e = err as { code?: unknown; signal?: unknown; killed?: boolean; stderr?: string; message?: string };
  const status = e.killed ? `killed after ${timeoutMs} ms` : e.code !== undefined ? `exit ${String(e.code)}` : String(e.signal ?? '');
  const stderr = (e.stderr ?? '').trim();
  return new Error(`${cmd} ${args.join(' ')}: ${status}${stderr ? `: ${stderr}` : e.message ? `: ${e.message}` : ''}`, {
    cause: err,
  });
}

export function netnsPath(ns: string): string {
  return `/run/netns/${ns}`;
}

export function inNetns(ns: string, cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return run('nsenter', [`--net=${netnsPath(ns)}`, '--', cmd, ...args], opts);
}

function checkName(name: string): void {
  // The common rule for this project: everything a test creates is named flb-*, so a
  // leftover is recognisable and never collides with the host's own namespaces.
  if (!name.startsWith('flb-')) throw new Error(`lab namespace name ${name} must start with flb-`);
}

export async function createNetns(name: string): Promise<void> {
  checkName(name);
  await run('ip', ['netns', 'add', name]);
  await inNetns(name, 'ip', ['link', 'set', 'lo', 'up']);
}

export async function deleteNetns(name: string): Promise<void> {
  checkName(name);
  try {
    await run('ip', ['netns', 'del', name]);
  } catch (err) {
    if (!/No such file|does not exist|Invalid netns/i.test(String(err))) throw err;
  }
}

export interface VethEnd {
  name: string;
  /** Namespace to move this end into; undefined = stay in the root namespace. */
  ns?: string;
}

export async function vethPair(opts: { a: VethEnd; b: VethEnd; up?: boolean }): Promise<void> {
  // Linux interface names have at most 15 characters.
  for (const end of [opts.a, opts.b]) {
    if (end.name.length > 15) throw new Error(`interface name ${end.name} is longer than 15 characters`);
  }
  await run('ip', ['link', 'add', opts.a.name, 'type', 'veth', 'peer', 'name', opts.b.name]);
  for (const end of [opts.a, opts.b]) {
    if (end.ns) await run('ip', ['link', 'set', end.name, 'netns', end.ns]);
    if (opts.up ?? true) await ipIn(end.ns, ['link', 'set', end.name, 'up']);
  }
}

function ipIn(ns: string | undefined, args: string[]): Promise<RunResult> {
  return ns ? inNetns(ns, 'ip', args) : run('ip', args);
}

export async function addAddr(ns: string | undefined, dev: string, cidr: string, opts: { nodad?: boolean } = {}): Promise<void> {
  await ipIn(ns, ['addr', 'add', cidr, 'dev', dev, ...(opts.nodad ? ['nodad'] : [])]);
}

export async function linkMac(ns: string | undefined, dev: string): Promise<string> {
  const { stdout } = await ipIn(ns, ['-j', 'link', 'show', 'dev', dev]);
  const links = JSON.parse(stdout) as { address?: string }[];
  const mac = links[0]?.address;
  if (!mac) throw new Error(`no MAC address for ${dev}${ns ? ` in ${ns}` : ''}`);
  return mac;
}

/** A short suffix that differs between concurrent test processes. */
export function uniqueSuffix(): string {
  return (process.pid % 100_000).toString(36);
}

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** What is being waited for, for the timeout message. */
  what: string;
}

export async function waitFor<T>(cond: () => T | Promise<T>, opts: WaitOptions): Promise<NonNullable<T>> {
  const deadline = Date.now() + opts.timeoutMs;
  const interval = opts.intervalMs ?? 100;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await cond();
      if (value) return value as NonNullable<T>;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError === undefined ? '' : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`;
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${why}`, { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(interval, deadline - Date.now()))));
  }
}

type Undo = { what: string; async: () => Promise<void>; sync: () => void };

const liveRegistries = new Set<LabRegistry>();
let exitHooksInstalled = false;

/** Who created each lab namespace (one file per namespace holding the creator's pid). */
export const OWNERS_DIR = '/run/flb-lab';

function recordOwner(ns: string): void {
  mkdirSync(OWNERS_DIR, { recursive: true, mode: 0o700 });
  writeFileSync(path.join(OWNERS_DIR, ns), `${process.pid}\n`);
}

function forgetOwner(ns: string): void {
  rmSync(path.join(OWNERS_DIR, ns), { force: true });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the namespaces (processes, pins) of lab runs whose process is gone; returns their names. */
export function sweepDeadRuns(): string[] {
  let names: string[];
  try {
    names = readdirSync(OWNERS_DIR).filter((n) => n.startsWith('flb-'));
  } catch {
    return [];
  }
  const swept: string[] = [];
  for (const ns of names) {
    const pid = Number.parseInt(readFileSync(path.join(OWNERS_DIR, ns), 'utf8'), 10);
    if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) continue;
    let pids = '';
    try {
      pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 10_000 });
    } catch {
      // Already gone: only the record is left.
    }
    for (const p of pids.split(/\s+/).filter(Boolean)) quietSync('kill', ['-KILL', p]);
    quietSync('ip', ['netns', 'del', ns]);
    // A lab node's pins are named after its namespace (FarmLab's pinDir).
    rmSync(path.join(PIN_ROOT, ns), { recursive: true, force: true });
    forgetOwner(ns);
    swept.push(ns);
  }
  return swept;
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  sweepDeadRuns();
  // At exit only synchronous work runs, so each undo step has a sync form (execFileSync).
  process.on('exit', () => {
    for (const r of liveRegistries) r.cleanupSync();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const r of liveRegistries) r.cleanupSync();
      process.kill(process.pid, signal);
    });
  }
}

function quietSync(cmd: string, args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
  } catch {
    // Best effort: the object may already be gone.
  }
}

export class LabRegistry {
  private undos: Undo[] = [];

  constructor() {
    installExitHooks();
    liveRegistries.add(this);
  }

  async netns(name: string): Promise<string> {
    checkName(name);
    // Remember it first: if creation half-fails, cleanup still tries to remove it.
    this.remember(`netns ${name}`, async () => {
      await deleteNetns(name);
      forgetOwner(name);
    }, () => {
      quietSync('ip', ['netns', 'del', name]);
      forgetOwner(name);
    });
    // A leftover from a killed run with the same name would make `ip netns add` fail.
    await deleteNetns(name);
    recordOwner(name);
    await createNetns(name);
    return name;
  }

  async veth(opts: { a: VethEnd; b: VethEnd; up?: boolean }): Promise<void> {
    // Deleting one end deletes the pair; ends inside a namespace go with the namespace.
    for (const end of [opts.a, opts.b]) {
      if (!end.ns) {
        this.remember(
          `veth ${end.name}`,
          async () => {
            await run('ip', ['link', 'del', end.name]).catch(() => undefined);
          },
          () => quietSync('ip', ['link', 'del', end.name]),
        );
      }
    }
    await vethPair(opts);
  }

  /** Register any other undo step; `sync` is used at process exit when given. */
  onCleanup(what: string, fn: () => Promise<void> | void, sync?: () => void): void {
    this.remember(what, async () => {
      await fn();
    }, sync ?? (() => undefined));
  }

  private remember(what: string, undo: () => Promise<void>, undoSync: () => void): void {
    this.undos.push({ what, async: undo, sync: undoSync });
  }

  /** Undo everything, newest first. Never throws; returns what could not be undone. */
  async cleanup(): Promise<string[]> {
    const failures: string[] = [];
    while (this.undos.length > 0) {
      const undo = this.undos.pop()!;
      try {
        await undo.async();
      } catch (err) {
        failures.push(`${undo.what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    liveRegistries.delete(this);
    return failures;
  }

  /** For exit/signal handlers, where only synchronous work runs. */
  cleanupSync(): void {
    while (this.undos.length > 0) this.undos.pop()!.sync();
    liveRegistries.delete(this);
  }
}
