// Long-lived TCP connections through the VIP, for the "established connections carry on"
// checks of the membership lab tests. One Node process in the client namespace opens one
// HTTP/1.1 keep-alive connection per client source address to the lab's servers (port 8080,
// which answer their node's name) and sends a request on each every ~200 ms, one in flight
// at a time. The parent asks it for a report over stdin; the report says, per connection,
// which node answered first, whether another node ever answered, how long the longest
// request waited, and whether the connection closed or failed.
//
// API
//   LongConns.open(lab, sources, opts?)   connect from every source, wait until each has answered once.
//   conns.report()                        per connection: { src, servedBy, answered, maxWaitMs, pendingMs, closed, error, mismatches }.
//   conns.resetWaits()                    start a new phase: maxWaitMs and mismatches count from now.
//   LongConns.problems(report, keep, maxWaitMs?)  the connections among `keep` that did not carry on, described.
//   conns.close()                         end the client process (idempotent; also at process exit).

import { spawn, type ChildProcess } from 'node:child_process';
import { isIPv4 } from 'node:net';
import { LONG_CLIENT_JS as CLIENT_JS } from '../../../src/bench/long-client.js';
import { HTTP_PORT, type FarmLab } from './farm-lab.js';
import { netnsPath, waitFor } from './netns.js';

export interface ConnReport {
  src: string;
  servedBy: string | null;
  answered: number;
  /** Longest wait of one request for its answer since the last resetWaits() (answered or still pending). */
  maxWaitMs: number;
  /** Age of the request in flight now (0: none). */
  pendingMs: number;
  closed: boolean;
  error: string | null;
  /** Answers from another node than the first one, since the last resetWaits(). */
  mismatches: number;
}


const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export class LongConns {
  private out = '';
  private closed = false;

  private constructor(private readonly child: ChildProcess, readonly sources: string[]) {
    child.stdout!.on('data', (d: Buffer) => { this.out += d.toString(); });
  }

  static async open(lab: FarmLab, sources: string[], opts: { intervalMs?: number; port?: number; timeoutMs?: number } = {}): Promise<LongConns> {
    const conns = sources.map((src) => ({ src, host: isIPv4(src) ? lab.vip4 : lab.vip6, port: opts.port ?? HTTP_PORT }));
    // The lab directory on the command line lets FarmLab.leftovers() see a forgotten client.
    const child = spawn('nsenter', [`--net=${netnsPath(lab.clientNs)}`, '--', 'node', '-e', CLIENT_JS,
      JSON.stringify({ conns, intervalMs: opts.intervalMs ?? 200 }), lab.dir], { stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(child);
    child.on('exit', () => live.delete(child));
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const lc = new LongConns(child, sources);
    try {
      await waitFor(async () => {
        if (child.exitCode !== null) throw new Error(`the long-connection client exited: ${stderr}`);
        return (await lc.report()).every((c) => c.answered > 0 || c.closed);
      }, { timeoutMs: opts.timeoutMs ?? 15_000, intervalMs: 250, what: `${sources.length} long connections to answer once` });
      const failed = (await lc.report()).filter((c) => c.answered === 0);
      if (failed.length > 0) throw new Error(`long connections that never answered: ${failed.map((c) => `${c.src} (${c.error ?? 'closed'})`).join(', ')}`);
    } catch (err) {
      lc.close();
      throw err;
    }
    return lc;
  }

  private async ask(cmd: string): Promise<ConnReport[]> {
    if (this.closed) throw new Error('the long-connection client is closed');
    const before = this.out.length;
    this.child.stdin!.write(`${cmd}\n`);
    const line = await waitFor(() => {
      const nl = this.out.indexOf('\n', before);
      return nl >= 0 ? this.out.slice(before, nl) : undefined;
    }, { timeoutMs: 5_000, intervalMs: 10, what: `the long-connection client to answer ${cmd}` });
    return JSON.parse(line) as ConnReport[];
  }

  report(): Promise<ConnReport[]> {
    return this.ask('report');
  }

  async resetWaits(): Promise<void> {
    await this.ask('reset');
  }

  /**
   * The connections served by one of `keep` that did not carry on: closed, failed, answered by
   * another node, or a request that waited longer than `maxWaitMs`.
   */
  static problems(report: ConnReport[], keep: (c: ConnReport) => boolean, maxWaitMs = 2_000): string[] {
    return report.filter(keep).flatMap((c) => {
      const why = [
        c.closed && 'closed',
        c.error && `error ${c.error}`,
        c.mismatches > 0 && `${c.mismatches} answers from another node`,
        c.maxWaitMs > maxWaitMs && `a request waited ${c.maxWaitMs} ms`,
      ].filter(Boolean);
      return why.length > 0 ? [`${c.src} (served by ${c.servedBy}): ${why.join(', ')}`] : [];
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.child.stdin!.end('exit\n');
    setTimeout(() => this.child.kill('SIGKILL'), 1_000).unref();
  }
}
