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
import { PollClient, pollFailures, pollTotals, type PollRow } from '../../../src/bench/poll-client.js';
import { CLIENT_IF, HTTP_PORT, type FarmLab } from './farm-lab.js';
import { netnsPath, waitFor } from './netns.js';

export type PollReport = PollRow;
export type ClientPoller = PollClient;

/** The benchmarks' poll client (src/bench/poll-client.ts) with the lab's defaults. */
export const ClientPoller = {
  async start(lab: FarmLab, sources: string[], opts: { intervalMs?: number; timeoutMs?: number } = {}): Promise<PollClient> {
    // Niced up: a client starved by the other processes of the test machine misses answers.
    const poller = PollClient.start(lab.clientNs, lab.dir, {
      sources, host: lab.vip4, port: HTTP_PORT, intervalMs: opts.intervalMs ?? 50, timeoutMs: opts.timeoutMs ?? 300, nice: -5,
    });
    try {
      await poller.waitAllAnswered();
    } catch (err) {
      poller.close();
      throw err;
    }
    return poller;
  },
  failures: pollFailures,
  totals: pollTotals,
};

// tcpdump processes still running when the test process exits are killed with it.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

function track(child: ChildProcess): void {
  live.add(child);
  child.on('exit', () => live.delete(child));
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
