// A client of short connections through a VIP, shared by the lab tests
// (test/lab/helpers/client-watch.ts) and the failover benchmark: from every source address,
// a new TCP connection every `intervalMs` (HTTP/1.0 GET, the servers answer their node's
// name and close); a request that has no answer within `timeoutMs` is failed. One request in
// flight per source: a tick that finds one still pending starts none (the pending one fails
// at its timeout). Over stdin: "report" prints, per source, answered and failed counts since
// the last "mark", the times of the failures (ms since the mark) and which nodes answered;
// "mark" starts a new window; "exit" ends it. A request that got no answer while this client
// itself was stalled (its event loop late by more than a third of the timeout: a loaded test
// machine) is counted `stalled`, not failed: the client, not the farm, missed it.
//
// Plain CommonJS run with `node -e`; argv: JSON of { sources, host, port, intervalMs, timeoutMs }.
// The benchmarks and the lab tests drive it through PollClient (below).

import { spawn, type ChildProcess } from 'node:child_process';
import { sleep } from './stats.js';

export const POLL_CLIENT_JS = String.raw`
const net = require('net');
const { sources, host, port, intervalMs, timeoutMs } = JSON.parse(process.argv[1]);
let markAt = Date.now();
const state = sources.map((src) => ({ src, pending: false, answered: 0, failed: 0, stalled: 0, failedAtMs: [], servedBy: {} }));
// Event-loop stalls of this client: [start, end] (ms), the last few seconds' worth.
const stalls = [];
let lastBeat = Date.now();
setInterval(() => {
  const now = Date.now();
  if (now - lastBeat > 10 + timeoutMs / 3) { stalls.push([lastBeat, now]); if (stalls.length > 200) stalls.shift(); }
  lastBeat = now;
}, 10);
// (A stall still going on when the timeout fires has not been recorded yet: lastBeat shows it.)
const stalledDuring = (from, to) => to - lastBeat > 10 + timeoutMs / 3 || stalls.some(([a, b]) => a < to && b > from);
const attempt = (s) => {
  s.pending = true;
  let buf = '';
  let done = false;
  const startedAt = Date.now();
  const sock = net.connect({ host, port, localAddress: s.src });
  const finish = (body) => {
    if (done) return;
    done = true;
    clearTimeout(t);
    sock.destroy();
    s.pending = false;
    if (startedAt < markAt) return; // begun before the mark: counts in no window
    if (body) { s.answered++; s.servedBy[body] = (s.servedBy[body] || 0) + 1; }
    else if (stalledDuring(startedAt, Date.now())) s.stalled++;
    else { s.failed++; if (s.failedAtMs.length < 50) s.failedAtMs.push(startedAt - markAt); }
  };
  const t = setTimeout(() => finish(null), timeoutMs);
  sock.setNoDelay(true);
  sock.on('connect', () => sock.write('GET / HTTP/1.0\r\n\r\n'));
  sock.on('data', (d) => { buf += d.toString('latin1'); });
  sock.on('end', () => { const i = buf.indexOf('\r\n\r\n'); finish(i >= 0 ? buf.slice(i + 4).trim() || null : null); });
  sock.on('error', () => finish(null));
};
// Sources spread over the interval, so that connections do not all start at once.
sources.forEach((_, i) => setTimeout(() => setInterval(() => { const s = state[i]; if (!s.pending) attempt(s); }, intervalMs), (i * intervalMs) / sources.length));
let input = '';
process.stdin.on('data', (d) => {
  input += d;
  let nl;
  while ((nl = input.indexOf('\n')) >= 0) {
    const cmd = input.slice(0, nl).trim();
    input = input.slice(nl + 1);
    if (cmd === 'mark') {
      markAt = Date.now();
      for (const s of state) { s.answered = 0; s.failed = 0; s.stalled = 0; s.failedAtMs = []; s.servedBy = {}; }
      process.stdout.write('marked\n');
    }
    if (cmd === 'report') process.stdout.write(JSON.stringify(state.map(({ pending, ...r }) => r)) + '\n');
    if (cmd === 'exit') process.exit(0);
  }
});
process.stdin.on('end', () => process.exit(0));
`;

/** One source's counts since the last mark (what "report" prints). */
export interface PollRow {
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

export interface PollClientOptions {
  sources: string[];
  host: string;
  port: number;
  intervalMs: number;
  timeoutMs: number;
  /** `nice -n` of the client (default: inherited). */
  nice?: number;
}

// Clients still running when this process exits (a failed test, an interrupted benchmark)
// are killed with it: a forgotten client would poll the next run's farm.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** POLL_CLIENT_JS run in a namespace, asked over stdin. */
export class PollClient {
  private out = '';
  private err = '';
  private closed = false;

  private constructor(private readonly child: ChildProcess) {
    live.add(child);
    child.on('exit', () => live.delete(child));
    child.stdout!.on('data', (d: Buffer) => { this.out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { if (this.err.length < 4096) this.err += d.toString(); });
    // A write to a client that has exited fails with EPIPE on stdin: ask() then reports
    // exitReason instead of an unhandled 'error' event taking the test process down.
    child.stdin!.on('error', () => {});
  }

  /**
   * `dir` goes on the client's command line only so that a lab's leftover check
   * (FarmLab.leftovers()) can tell its clients from another run's.
   */
  static start(ns: string, dir: string, opts: PollClientOptions): PollClient {
    const { nice, ...args } = opts;
    const niced = nice === undefined ? [] : ['nice', '-n', String(nice)];
    return new PollClient(spawn('nsenter', [`--net=/run/netns/${ns}`, '--', ...niced, 'node', '-e', POLL_CLIENT_JS, JSON.stringify(args), dir],
      { stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  /** Why the client is gone (its stderr), or undefined while it runs. */
  get exitReason(): string | undefined {
    if (this.child.exitCode === null && this.child.signalCode === null) return undefined;
    return `the poll client exited (${this.child.exitCode ?? this.child.signalCode}): ${this.err.trim() || 'no output'}`;
  }

  private async ask(cmd: string, prefix: string): Promise<string> {
    if (this.closed) throw new Error('the poll client is closed');
    const from = this.out.length;
    this.child.stdin!.write(`${cmd}\n`);
    const deadline = Date.now() + 5_000;
    for (;;) {
      const at = this.out.indexOf(prefix, from);
      const nl = at < 0 ? -1 : this.out.indexOf('\n', at);
      if (nl >= 0) return this.out.slice(at, nl);
      const gone = this.exitReason;
      if (gone) throw new Error(gone);
      if (Date.now() > deadline) throw new Error(`the poll client did not answer ${cmd} within 5 s`);
      await sleep(5);
    }
  }

  async mark(): Promise<void> {
    await this.ask('mark', 'marked');
  }

  async report(): Promise<PollRow[]> {
    return JSON.parse(await this.ask('report', '[')) as PollRow[];
  }

  /** Resolves once every source has been answered once since the last mark: servers and client are warm. */
  async waitAllAnswered(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const silent = (await this.report()).filter((r) => r.answered === 0);
      if (silent.length === 0) return;
      if (Date.now() > deadline) {
        throw new Error(`the poll client got no answer within ${timeoutMs} ms for ${silent.length} source(s): ${silent.slice(0, 4).map((r) => r.src).join(', ')}`);
      }
      await sleep(100);
    }
  }

  /** Asks it to exit; killed if it has not within `graceMs`. Idempotent. */
  close(graceMs = 1_000): void {
    if (this.closed) return;
    this.closed = true;
    this.child.stdin!.end('exit\n');
    setTimeout(() => this.child.kill('SIGKILL'), graceMs).unref();
  }
}

/** The sources among `keep` that saw a failed request, each with when (ms after the mark). */
export function pollFailures(rows: readonly PollRow[], keep: (src: string) => boolean): string[] {
  return rows.filter((r) => keep(r.src) && r.failed > 0)
    .map((r) => `${r.src}: ${r.failed} failed of ${r.failed + r.answered} (at ${r.failedAtMs.join(', ')} ms)`);
}

/** Answered, failed and stalled requests summed over the sources among `keep`. */
export function pollTotals(rows: readonly PollRow[], keep: (src: string) => boolean): { answered: number; failed: number; stalled: number } {
  const t = { answered: 0, failed: 0, stalled: 0 };
  for (const r of rows) {
    if (!keep(r.src)) continue;
    t.answered += r.answered;
    t.failed += r.failed;
    t.stalled += r.stalled;
  }
  return t;
}
