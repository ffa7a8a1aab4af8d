// A qnetd witness for a two-node Corosync lab farm (docs/membership.md, "Two-node farms"):
// corosync-qnetd in a namespace of its own on the lab's bridge (flb-<lab>-w), corosync-
// qdevice on each node, and the certificates made as an operator makes them
// (corosync-qnetd-certutil / corosync-qdevice-net-certutil, offline). Both programs keep
// their files under hard-coded /etc/corosync and /run paths, so each runs in a mount
// namespace (`ip netns exec`) with per-host directories bound over /etc/corosync and /run.
//
// API
//   QnetdWitness.ADDR                   the witness's address (give `--qnetd ADDR` to farmlb corosync-conf)
//   await QnetdWitness.create(lab)      namespace, link, CA, qnetd running, nodes enrolled, qdevice on every node
//   .waitVoting()                      until votequorum counts the witness's vote on every node
//   .log(name) / .allLogs()
//   .cleanup()                          kill what it started, remove its namespace (the lab removes the rest)

import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { FarmLab } from './farm-lab.js';
import { inNetns, run, waitFor } from './netns.js';

const WITNESS_ADDR = '10.79.0.90';

export class QnetdWitness {
  static readonly ADDR = WITNESS_ADDR;
  readonly ns: string;
  private readonly dir: string;
  private qnetd: ChildProcess | undefined;
  private readonly qdevices = new Map<string, ChildProcess>();
  private readonly logs = new Map<string, string>();

  private constructor(private readonly lab: FarmLab) {
    this.ns = `flb-${lab.name}-w`;
    this.dir = path.join(lab.dir, 'witness');
  }

  static async create(lab: FarmLab, clusterName: string): Promise<QnetdWitness> {
    const w = new QnetdWitness(lab);
    try {
      await w.build(clusterName);
      return w;
    } catch (err) {
      const logs = [...w.logs].map(([k, v]) => `--- ${k} ---\n${v}`).join('\n');
      await w.cleanup();
      throw new Error(`qnetd witness: ${err instanceof Error ? err.message : String(err)}\n${logs}`, { cause: err });
    }
  }

  /** A shell in `ns` with `etc` bound over /etc/corosync and `runDir` over /run. */
  private sh(ns: string, etc: string, runDir: string, script: string): string[] {
    return ['netns', 'exec', ns, 'sh', '-c', `mount --bind ${etc} /etc/corosync && mount --bind ${runDir} /run && ${script}`];
  }

  private hostDirs(name: string): { etc: string; runDir: string } {
    const base = path.join(this.dir, name);
    const etc = path.join(base, 'etc');
    const runDir = path.join(base, 'run');
    mkdirSync(etc, { recursive: true });
    mkdirSync(runDir, { recursive: true });
    return { etc, runDir };
  }

  private async build(clusterName: string): Promise<void> {
    await run('ip', ['netns', 'add', this.ns]);
    await inNetns(this.ns, 'ip', ['link', 'set', 'lo', 'up']);
    await run('ip', ['link', 'add', 'p-w', 'netns', this.lab.switchNs, 'type', 'veth', 'peer', 'name', 'flbw', 'netns', this.ns]);
    await inNetns(this.lab.switchNs, 'ip', ['link', 'set', 'p-w', 'master', 'br0']);
    await inNetns(this.lab.switchNs, 'ip', ['link', 'set', 'p-w', 'up']);
    await inNetns(this.ns, 'ip', ['addr', 'add', `${WITNESS_ADDR}/16`, 'dev', 'flbw']);
    await inNetns(this.ns, 'ip', ['link', 'set', 'flbw', 'up']);

    // The witness: a CA and its server certificate, then qnetd.
    const w = this.hostDirs('qnetd');
    mkdirSync(path.join(w.etc, 'qnetd'), { recursive: true });
    await run('ip', this.sh(this.ns, w.etc, w.runDir, 'corosync-qnetd-certutil -i'), { timeoutMs: 60_000 });
    this.qnetd = this.spawnLogged('qnetd', this.sh(this.ns, w.etc, w.runDir, 'exec corosync-qnetd -f -d'));
    await waitFor(async () => (await inNetns(this.ns, 'ss', ['-Hltn', 'sport = :5403'])).stdout.includes(':5403'),
      { timeoutMs: 15_000, what: 'corosync-qnetd to listen on 5403' });
    const cacert = path.join(w.etc, 'qnetd/nssdb/qnetd-cacert.crt');

    // The nodes: a database with the CA, one node's request signed by the witness, the
    // signed certificate imported there and its PKCS#12 copied to the other.
    const nodes = this.lab.nodeNames();
    const dirs = new Map(nodes.map((n) => [n, this.hostDirs(n)]));
    for (const n of nodes) {
      const d = dirs.get(n)!;
      mkdirSync(path.join(d.etc, 'qdevice'), { recursive: true });
      copyFileSync(cacert, path.join(d.etc, 'qnetd-cacert.crt'));
      await run('ip', this.sh(this.lab.nodeNs(n), d.etc, d.runDir, 'corosync-qdevice-net-certutil -i -c /etc/corosync/qnetd-cacert.crt'), { timeoutMs: 60_000 });
    }
    const first = dirs.get(nodes[0]!)!;
    await run('ip', this.sh(this.lab.nodeNs(nodes[0]!), first.etc, first.runDir, `corosync-qdevice-net-certutil -r -n ${clusterName}`), { timeoutMs: 60_000 });
    const crq = path.join(w.etc, 'qdevice-net-node.crq');
    copyFileSync(path.join(first.etc, 'qdevice/net/nssdb/qdevice-net-node.crq'), crq);
    await run('ip', this.sh(this.ns, w.etc, w.runDir, `corosync-qnetd-certutil -s -c /etc/corosync/qdevice-net-node.crq -n ${clusterName}`), { timeoutMs: 60_000 });
    copyFileSync(path.join(w.etc, `qnetd/nssdb/cluster-${clusterName}.crt`), path.join(first.etc, 'cluster.crt'));
    await run('ip', this.sh(this.lab.nodeNs(nodes[0]!), first.etc, first.runDir, 'corosync-qdevice-net-certutil -M -c /etc/corosync/cluster.crt'), { timeoutMs: 60_000 });
    for (const n of nodes.slice(1)) {
      const d = dirs.get(n)!;
      copyFileSync(path.join(first.etc, 'qdevice/net/nssdb/qdevice-net-node.p12'), path.join(d.etc, 'node.p12'));
      await run('ip', this.sh(this.lab.nodeNs(n), d.etc, d.runDir, 'corosync-qdevice-net-certutil -m -c /etc/corosync/node.p12'), { timeoutMs: 60_000 });
    }
    for (const n of nodes) {
      const d = dirs.get(n)!;
      this.qdevices.set(n, this.spawnLogged(`qdevice ${n}`, this.sh(this.lab.nodeNs(n), d.etc, d.runDir, 'exec corosync-qdevice -f -d')));
    }
  }

  /**
   * Until votequorum counts the witness's vote on every node (`corosync-quorumtool -s` in the
   * node's namespace: total votes 3, flag Qdevice), i.e. qdevice is registered and qnetd answers.
   */
  async waitVoting(timeoutMs = 30_000): Promise<void> {
    await waitFor(async () => {
      for (const n of this.lab.nodeNames()) {
        const r = await inNetns(this.lab.nodeNs(n), 'corosync-quorumtool', ['-s']).catch((err: unknown) => ({ stdout: String(err) }));
        if (!/Total votes:\s+3\b/.test(r.stdout) || !/Flags:.*Qdevice/.test(r.stdout)) return false;
      }
      return true;
    }, { timeoutMs, intervalMs: 250, what: 'votequorum to count the witness\'s vote on every node' });
  }

  private spawnLogged(name: string, args: string[]): ChildProcess {
    const p = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const add = (d: Buffer) => {
      const log = this.logs.get(name) ?? '';
      if (log.length < 1 << 20) this.logs.set(name, log + d.toString());
    };
    p.stdout!.on('data', add);
    p.stderr!.on('data', add);
    p.on('exit', (code, signal) => add(Buffer.from(`[lab] ${name} exited: ${signal ?? `code ${code}`}\n`)));
    return p;
  }

  log(name: string): string {
    return this.logs.get(name) ?? '';
  }

  allLogs(): string {
    return [...this.logs].map(([k, v]) => `--- ${k} ---\n${v.split('\n').slice(-30).join('\n')}`).join('\n');
  }

  async cleanup(): Promise<void> {
    for (const p of [this.qnetd, ...this.qdevices.values()]) {
      if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }
    await waitFor(() => [this.qnetd, ...this.qdevices.values()].every((p) => !p || p.exitCode !== null || p.signalCode !== null),
      { timeoutMs: 5_000, intervalMs: 20, what: 'qnetd and qdevice to exit' }).catch(() => undefined);
    await run('ip', ['netns', 'del', this.ns]).catch(() => undefined);
  }
}
