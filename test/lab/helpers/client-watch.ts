// What a client sees of a failover (docs/membership.md, "Survivors keep serving"), for the
// membership lab tests: a poller that opens a new connection from every source address every
// 50 ms and counts a request failed when it has no answer within 300 ms, and a tcpdump on the
// client's interface that finds every SYN answered by two nodes (the same 4-tuple and
// acknowledgement number in SYN-ACKs from two source MACs).
//
// API
//   ClientPoller.start(lab, sources, opts?)  start polling (resolves once every source has been answered once).
//   poller.mark()                            start a new window: counts restart from 0.
//   poller.report()                          per source since the mark: { src, answered, failed, failedAtMs, servedBy }.
//   ClientPoller.failures(report, keep)      the sources among `keep` with failed requests, described.
//   ClientPoller.totals(report, keep)        { answered, failed, stalled } summed over `keep`.
//   poller.close()                           end the client (idempotent; also at process exit).
//   SynAckCapture.start(lab)                 tcpdump of SYN-ACKs reaching the client.
//   capture.stop()                           { synAcks, doubles }: doubles = SYNs answered from two MACs.

import { spawn, type ChildProcess } from 'node:child_process';
import { POLL_CLIENT_JS } from '../../../src/bench/poll-client.js';
import { CLIENT_IF, HTTP_PORT, type FarmLab } from './farm-lab.js';
import { netnsPath, waitFor } from './netns.js';

export interface PollReport {
  src: string;
  answered: number;
  failed: number;
  /** Unanswered while the client itself was stalled (a loaded machine): not the farm's failures. */
  stalled: number;
  /** Start of each failed request, ms after the mark (the first 50). */
  failedAtMs: number[];
  /** Answers per answering node. */
  servedBy: Record<string, number>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

function track(child: ChildProcess): void {
  live.add(child);
  child.on('exit', () => live.delete(child));
}

export class ClientPoller {
  private out = '';
  private closed = false;

  private constructor(private readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => { this.out += d.toString(); });
  }

  static async start(lab: FarmLab, sources: string[], opts: { intervalMs?: number; timeoutMs?: number } = {}): Promise<ClientPoller> {
    const args = { sources, host: lab.vip4, port: HTTP_PORT, intervalMs: opts.intervalMs ?? 50, timeoutMs: opts.timeoutMs ?? 300 };
    // The lab directory on the command line lets FarmLab.leftovers() see a forgotten client.
    // Niced up: a client starved by the other processes of the test machine misses answers.
    const child = spawn('nsenter', [`--net=${netnsPath(lab.clientNs)}`, '--', 'nice', '-n', '-5', 'node', '-e', POLL_CLIENT_JS, JSON.stringify(args), lab.dir],
      { stdio: ['pipe', 'pipe', 'pipe'] });
    track(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const poller = new ClientPoller(child);
    try {
      await waitFor(async () => {
        if (child.exitCode !== null) throw new Error(`the poll client exited: ${stderr}`);
        return (await poller.report()).every((r) => r.answered > 0);
      }, { timeoutMs: 15_000, intervalMs: 250, what: `${sources.length} polled sources to be answered once` });
    } catch (err) {
      poller.close();
      throw err;
    }
    return poller;
  }

  private async ask(cmd: string, prefix: string): Promise<string> {
    if (this.closed) throw new Error('the poll client is closed');
    const before = this.out.length;
    this.child.stdin!.write(`${cmd}\n`);
    return waitFor(() => {
      const at = this.out.indexOf(prefix, before);
      const nl = at < 0 ? -1 : this.out.indexOf('\n', at);
      return nl >= 0 ? this.out.slice(at, nl) : undefined;
    }, { timeoutMs: 5_000, intervalMs: 10, what: `the poll client to answer ${cmd}` });
  }

  async mark(): Promise<void> {
    await this.ask('mark', 'marked');
  }

  async report(): Promise<PollReport[]> {
    return JSON.parse(await this.ask('report', '[')) as PollReport[];
  }

  /** The sources among `keep` that saw a failed request, each with when (ms after the mark). */
  static failures(report: PollReport[], keep: (src: string) => boolean): string[] {
    return report.filter((r) => keep(r.src) && r.failed > 0)
      .map((r) => `${r.src}: ${r.failed} failed of ${r.failed + r.answered} (at ${r.failedAtMs.join(', ')} ms)`);
  }

  static totals(report: PollReport[], keep: (src: string) => boolean): { answered: number; failed: number; stalled: number } {
    const t = { answered: 0, failed: 0, stalled: 0 };
    for (const r of report.filter((x) => keep(x.src))) {
      t.answered += r.answered;
      t.failed += r.failed;
      t.stalled += r.stalled;
    }
    return t;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.child.stdin!.end('exit\n');
    setTimeout(() => this.child.kill('SIGKILL'), 1_000).unref();
  }
}

export interface SynAckReport {
  synAcks: number;
  /** SYNs answered by two nodes: "<4-tuple> ack <n>: <mac>, <mac>". */
  doubles: string[];
}

export class SynAckCapture {
  private out = '';
  private err = '';

  private constructor(private readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => { this.out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { this.err += d.toString(); });
  }

  static async start(lab: FarmLab): Promise<SynAckCapture> {
    // -S: absolute sequence numbers (only SYN-ACKs are captured: nothing to be relative to).
    const child = spawn('nsenter', [`--net=${netnsPath(lab.clientNs)}`, '--', 'tcpdump', '-i', CLIENT_IF, '-e', '-n', '-l', '-U', '-S',
      `tcp src port ${HTTP_PORT} and tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)`], { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    const c = new SynAckCapture(child);
    await waitFor(() => {
      if (child.exitCode !== null) throw new Error(`tcpdump exited: ${c.err}`);
      return c.err.includes('listening on');
    }, { timeoutMs: 5_000, intervalMs: 20, what: 'tcpdump to start' });
    return c;
  }

  async stop(): Promise<SynAckReport> {
    this.child.kill('SIGINT');
    await waitFor(() => this.child.exitCode !== null || this.child.signalCode !== null, { timeoutMs: 3_000, intervalMs: 20, what: 'tcpdump to exit' })
      .catch(() => this.child.kill('SIGKILL'));
    return SynAckCapture.parse(this.out);
  }

  /** tcpdump -e -n -S lines of SYN-ACKs → the SYNs answered from more than one source MAC. */
  static parse(text: string): SynAckReport {
    const macs = new Map<string, Set<string>>();
    let synAcks = 0;
    for (const line of text.split('\n')) {
      const m = /^\S+\s+([0-9a-f:]{17}) > [0-9a-f:]{17}, .*?: (\S+) > (\S+): Flags \[S\.\], seq \d+, ack (\d+)/.exec(line.trim());
      if (!m) continue;
      synAcks++;
      const key = `${m[2]} > ${m[3]} ack ${m[4]}`;
      const set = macs.get(key) ?? new Set<string>();
      set.add(m[1]!);
      macs.set(key, set);
    }
    const doubles = [...macs].filter(([, s]) => s.size > 1).map(([k, s]) => `${k}: ${[...s].join(', ')}`);
    return { synAcks, doubles };
  }
}
