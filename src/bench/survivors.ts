// `scripts/bench failover`, per case: what a node's failure or return costs the clients of
// the *other* nodes (docs/membership.md, "Survivors keep serving"), beside how fast the failed
// node's clients are served again. Cases: the leader (n1, smallest name) and a follower
// (n2, n3 in turn) killed (kill -9), hung (SIGSTOP) and cut off (its link down); each is then
// undone — restart, SIGCONT, link up — and the return is a case of its own.
//
// While the cases run, the poll client of the lab tests (poll-client.ts) opens a new
// connection from each of 32 source addresses every 50 ms; a request without an answer
// within 300 ms is failed. A source is a bystander of a case when its bucket's owner neither
// failed nor returned and is the same before and after: its failed requests are what the
// survivors' pauses cost (target 0). Failover time = the event → the first answer from
// another node to a source of the failed node (the prober of failover.ts).

import { addrBytes } from '../balance/addr.js';
import { bucketOf } from '../balance/hash.js';
import { PollClient, pollTotals, type PollRow } from './poll-client.js';
import type { BenchFarm } from './failover.js';
import { HASH_SEED, HTTP_PORT, VIP } from './lab-farm.js';
import { inNs } from './proc.js';
import { percentile } from './stats.js';
import { round, sleep } from './stats.js';

const POLL_EVERY_MS = 50;
const POLL_TIMEOUT_MS = 300;
const POLLED_SOURCES = 32;
/** How long after the farm agrees again a case's window stays open (late pauses count too). */
const SETTLE_MS = 1_000;

export type SurvivorEvent = 'killed' | 'hung' | 'link down';
const RETURN: Record<SurvivorEvent, string> = { killed: 'restart', hung: 'SIGCONT', 'link down': 'link up' };

export interface SurvivorCase {
  /** e.g. "leader killed", "leader returns (restart)". */
  name: string;
  trials: number;
  /** Event → the failed node's source served by another node (ms); none for returns. */
  failoverMs?: { p50: number; p99: number; max: number };
  /** Requests of bystander sources, and how many failed (target 0). */
  bystanderRequests: number;
  bystanderFailed: number;
  /** Trials with at least one failed bystander request. */
  trialsWithFailures: number;
  /** Requests the poll client missed while it was itself stalled (a loaded machine). */
  stalled: number;
}

type Node = BenchFarm['nodes'][number];

async function act(farm: BenchFarm, n: Node, event: SurvivorEvent): Promise<void> {
  if (event === 'killed') await farm.killDaemon(n, 'SIGKILL');
  else if (event === 'hung') n.daemon!.kill('SIGSTOP');
  else await inNs(n.ns, 'ip', ['link', 'set', 'flbn', 'down']);
}

async function undo(farm: BenchFarm, n: Node, event: SurvivorEvent): Promise<void> {
  if (event === 'killed') await farm.startDaemon(n);
  else if (event === 'hung') n.daemon!.kill('SIGCONT');
  else await inNs(n.ns, 'ip', ['link', 'set', 'flbn', 'up']);
}

/** Runs `trials` trials of each case on a running, agreed farm (three nodes: n1 leads). */
export async function survivorCases(farm: BenchFarm, trials: number, progress: (s: string) => void): Promise<SurvivorCase[]> {
  const owner = (owners: number[], src: string) => owners[bucketOf(addrBytes(src)!, HASH_SEED)]!;
  const sources = farm.clientAddrs.slice(0, POLLED_SOURCES);
  // Niced up like the lab's: a client starved by the daemons it watches would miss answers.
  const poller = PollClient.start(farm.clientNs, farm.dir, { sources, host: VIP, port: HTTP_PORT, intervalMs: POLL_EVERY_MS, timeoutMs: POLL_TIMEOUT_MS, nice: -5 });
  const prober = farm.getProber();
  const acc = new Map<string, { times: number[]; requests: number; failed: number; bad: number; stalled: number; trials: number }>();
  const note = (name: string, rows: PollRow[], bystander: (src: string) => boolean, ms?: number) => {
    const a = acc.get(name) ?? { times: [], requests: 0, failed: 0, bad: 0, stalled: 0, trials: 0 };
    const { answered, failed, stalled } = pollTotals(rows, bystander);
    a.requests += answered + failed;
    a.stalled += stalled;
    a.failed += failed;
    a.trials++;
    if (failed > 0) a.bad++;
    if (ms !== undefined) a.times.push(ms);
    acc.set(name, a);
    return failed;
  };
  try {
    // Every source answered once before the first case: the servers and the client are warm.
    await poller.waitAllAnswered();
    for (let t = 0; t < trials; t++) {
      for (const event of ['killed', 'hung', 'link down'] as SurvivorEvent[]) {
        for (const role of ['leader', 'follower'] as const) {
          const victim = role === 'leader' ? farm.nodes[0]! : farm.nodes[1 + (t % (farm.nodes.length - 1))]!;
          const before = await farm.waitAgreed(farm.nodes, 30_000);
          await farm.waitNoHandover('the last case');
          const src = farm.clientAddrs.find((a) => owner(before, a) === victim.index);
          if (!src) throw new Error(`no client address in a bucket of ${victim.name}`);
          const survivors = farm.nodes.filter((n) => n !== victim);
          // The failure.
          const probe = prober.probe(src, victim.name, 15_000);
          await sleep(30);
          await poller.mark();
          const at = process.hrtime.bigint();
          await act(farm, victim, event);
          const served = await probe;
          const after = await farm.waitAgreed(survivors, 30_000);
          await sleep(SETTLE_MS);
          const ms = served ? Number(served.atNs - at) / 1e6 : undefined;
          const kept = (s: string) => owner(before, s) !== victim.index && owner(before, s) === owner(after, s);
          const failed = note(`${role} ${event}`, await poller.report(), kept, ms);
          // The return.
          await poller.mark();
          await undo(farm, victim, event);
          const back = await farm.waitAgreed(farm.nodes, 30_000);
          await farm.waitNoHandover('the return');
          await sleep(SETTLE_MS);
          const stays = (s: string) => owner(after, s) !== victim.index && owner(after, s) === owner(back, s);
          const failedBack = note(`${role} returns (${RETURN[event]})`, await poller.report(), stays);
          progress(`survivors trial ${t + 1}/${trials}: ${victim.name} (${role}) ${event} → served again ${ms === undefined ? 'never' : `${round(ms)} ms`}, bystanders failed ${failed}; ${RETURN[event]} → bystanders failed ${failedBack}`);
        }
      }
    }
  } finally {
    poller.close();
  }
  return [...acc].map(([name, a]) => ({
    name, trials: a.trials, bystanderRequests: a.requests, bystanderFailed: a.failed, trialsWithFailures: a.bad, stalled: a.stalled,
    ...(a.times.length ? { failoverMs: { p50: percentile(a.times, 50), p99: percentile(a.times, 99), max: Math.max(...a.times) } } : {}),
  }));
}

export function renderSurvivorCases(cases: SurvivorCase[], timing: string): string {
  const out = [`Survivors (${timing}): failed requests of the other nodes' clients per case (32 sources, a new connection each every ${POLL_EVERY_MS} ms, failed after ${POLL_TIMEOUT_MS} ms)`];
  const row = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(30) : x.padStart(11))).join(' ');
  out.push(row(['case', 'trials', 'p50 ms', 'p99 ms', 'bystander', 'failed', 'trials w/']));
  out.push(row(['', '', '', '', 'requests', '', 'failures']));
  for (const c of cases) {
    const f = c.failoverMs;
    out.push(row([c.name, String(c.trials), f ? String(round(f.p50)) : '-', f ? String(round(f.p99)) : '-', String(c.bystanderRequests),
      String(c.bystanderFailed), String(c.trialsWithFailures)]));
  }
  return out.join('\n');
}
