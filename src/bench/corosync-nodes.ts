// One corosync per lab node, for farms run with <farmlb membership="corosync"> (LAB-NOTES,
// "Corosync 3 in network namespaces"). Each runs in its node's network namespace, so its IPC
// sockets (abstract unix sockets) are that namespace's and the node's daemon finds it; `ip
// netns exec` gives it a mount namespace of its own, where a per-node directory is bound
// over /run (corosync's pid file is hard-coded) and over /var/lib/corosync (its ring id
// files). corosync.conf is written by `farmlb corosync-conf` from the lab's cluster.xml
// (what an operator does), with logging turned to stderr for the test logs. Used by the
// failover benchmark and, through test/lab/helpers/corosync-lab.ts, by the lab tests.
//
// API
//   new CorosyncNodes({ dir, nodes: [{ name, ns }], farmlbBin, configArgs, tokenMs? })
//   .writeConf()              farmlb corosync-conf → <dir>/corosync.conf
//   .start(name)              corosync -f in the node's namespace; resolves once it serves clients
//   .kill(name, signal?)      signal it and wait for it to exit (SIGKILL by default)
//   .running(name) / .log(name) / .pid(name)
//   .cleanup()                SIGKILL what runs, remove the /dev/shm/qb-* files of every corosync started

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from './proc.js';

export interface CorosyncNode {
  name: string;
  ns: string;
}

export interface CorosyncNodesOptions {
  dir: string;
  nodes: CorosyncNode[];
  farmlbBin: string;
  /** -c userconfig.xml --cluster cluster.xml */
  configArgs: string[];
  tokenMs?: number;
  /** More `farmlb corosync-conf` options (e.g. --qnetd ADDR). */
  confArgs?: string[];
}

const LOG_LIMIT = 1 << 20;

export class CorosyncNodes {
  readonly confFile: string;
  private readonly procs = new Map<string, ChildProcess>();
  private readonly logs = new Map<string, string>();
  /** Every corosync pid started: their /dev/shm/qb-<pid>-* files outlive a kill -9. */
  private readonly pids = new Set<number>();

  constructor(private readonly opts: CorosyncNodesOptions) {
    this.confFile = path.join(opts.dir, 'corosync.conf');
  }

  private nodeDir(name: string): string {
    return path.join(this.opts.dir, name, 'corosync');
  }

  async writeConf(): Promise<void> {
    await run('node', [this.opts.farmlbBin, 'corosync-conf', ...this.opts.configArgs, '-o', this.confFile,
      ...(this.opts.tokenMs ? ['--token', String(this.opts.tokenMs)] : []), ...(this.opts.confArgs ?? [])], 20_000);
    const conf = await readFile(this.confFile, 'utf8');
    // The lab reads corosync's log from its stderr; syslog would reach the host's.
    await writeFile(this.confFile, conf.replace(/logging \{[^}]*\}/, 'logging {\n  to_syslog: no\n  to_stderr: yes\n  timestamp: hires\n}'));
  }

  async start(name: string, opts: { timeoutMs?: number } = {}): Promise<void> {
    const node = this.opts.nodes.find((n) => n.name === name);
    if (!node) throw new Error(`no node ${name}`);
    if (this.running(name)) throw new Error(`corosync of ${name} is running`);
    const dir = this.nodeDir(name);
    for (const sub of ['run', 'state']) mkdirSync(path.join(dir, sub), { recursive: true });
    const script = `mount --bind ${dir}/run /run && mount --bind ${dir}/state /var/lib/corosync && exec corosync -f -c ${this.confFile}`;
    // ip netns exec execs sh, which execs corosync: the child's pid is corosync's.
    const p = spawn('ip', ['netns', 'exec', node.ns, 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    if (p.pid !== undefined) this.pids.add(p.pid);
    this.procs.set(name, p);
    const from = (this.logs.get(name) ?? '').length;
    const append = (d: Buffer) => {
      const log = this.logs.get(name) ?? '';
      if (log.length < LOG_LIMIT) this.logs.set(name, log + d.toString());
    };
    p.stdout!.on('data', append);
    p.stderr!.on('data', append);
    p.on('exit', (code, signal) => append(Buffer.from(`[lab] corosync exited: ${signal ?? `code ${code}`}\n`)));
    const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
    while (!(this.logs.get(name) ?? '').slice(from).includes('Completed service synchronization')) {
      const why = p.exitCode !== null || p.signalCode !== null ? 'exited while starting' : Date.now() > deadline ? 'did not serve clients in time' : undefined;
      if (why) throw new Error(`corosync of ${name} ${why}\n--- corosync ${name} ---\n${this.log(name)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  running(name: string): boolean {
    const p = this.procs.get(name);
    return p !== undefined && p.exitCode === null && p.signalCode === null;
  }

  pid(name: string): number | undefined {
    return this.running(name) ? this.procs.get(name)!.pid : undefined;
  }

  log(name: string): string {
    return this.logs.get(name) ?? '';
  }

  /** Totem rings this node's corosync has formed so far ("A new membership … was formed"). */
  ringsFormed(name: string): number {
    return (this.log(name).match(/A new membership \(/g) ?? []).length;
  }

  async kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.procs.get(name);
    if (!p || !this.running(name)) return;
    p.kill(signal);
    const deadline = Date.now() + 10_000;
    while (this.running(name)) {
      if (Date.now() > deadline) throw new Error(`corosync of ${name} did not exit after ${signal}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async cleanup(): Promise<void> {
    await Promise.all([...this.procs.keys()].map((n) => this.kill(n, 'SIGKILL').catch(() => undefined)));
    this.removeShm();
  }

  cleanupSync(): void {
    for (const p of this.procs.values()) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    this.removeShm();
  }

  /** libqb's shared memory of our corosyncs (and of their clients): qb-<pid>-… and qb-corosync-<pid>-…. */
  private removeShm(): void {
    let entries: string[] = [];
    try {
      entries = readdirSync('/dev/shm');
    } catch {
      return;
    }
    for (const pid of this.pids) {
      for (const e of entries) {
        if (e.startsWith(`qb-${pid}-`) || e.startsWith(`qb-corosync-${pid}-`)) rmSync(path.join('/dev/shm', e), { recursive: true, force: true });
      }
    }
  }
}
