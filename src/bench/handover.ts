// `scripts/bench handover`: established connections lost per 1,000 when a node rejoins and
// takes its buckets back, with the connection-preserving handover (docs/datapath.md §12) on
// and off (handover_limit="0"). Three nodes of power 1 on the failover benchmark's lab
// (BenchFarm), vmac_invisible; node 3 is killed, the two survivors take its buckets; a client
// then opens N long-lived keep-alive connections (one per source address, so they spread over
// the buckets) that send a request every 200 ms; node 3 starts again and takes a third of the
// buckets back. A connection counts as lost when it closes, fails, is answered by another
// node, or waits more than 2 s for an answer, from the rejoin until every connection has been
// answered 10 more times (or 20 s). A benchmark: it asserts nothing.

import { spawn, type ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import { BenchFarm, HTTP_PORT, PROFILES, VIP, liveFarms } from './failover.js';
import { COMMON_OPTIONS, emitReport, notRoot, progress } from './cli.js';
import { LONG_CLIENT_JS } from './long-client.js';
import { sleep } from './stats.js';

interface ConnReport {
  src: string;
  servedBy: string | null;
  answered: number;
  maxWaitMs: number;
  closed: boolean;
  error: string | null;
  mismatches: number;
}

export interface HandoverRow {
  handover: 'on' | 'off';
  handoverLimit: string;
  connections: number;
  /** Connections whose bucket moved to the rejoining node. */
  inMovedBuckets: number;
  lost: number;
  lostPer1000: number;
  /** How the lost ones ended: closed / error / another node answered / stalled > 2 s. */
  why: Record<string, number>;
}

export interface HandoverReport {
  rows: HandoverRow[];
  notes: string[];
}

const STALL_MS = 2_000;

/** The long-connection client in the farm's client namespace, driven over stdin. */
class Client {
  private out = '';
  private readonly child: ChildProcess;

  constructor(ns: string, sources: string[]) {
    const conns = sources.map((src) => ({ src, host: VIP, port: HTTP_PORT }));
    this.child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', process.execPath, '-e', LONG_CLIENT_JS, JSON.stringify({ conns, intervalMs: 200 })], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    this.child.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
  }

  async report(): Promise<ConnReport[]> {
    const from = this.out.length;
    this.child.stdin!.write('report\n');
    const deadline = Date.now() + 10_000;
    for (;;) {
      const nl = this.out.indexOf('\n', from);
      if (nl >= 0) return JSON.parse(this.out.slice(from, nl)) as ConnReport[];
      if (Date.now() > deadline) throw new Error('the long-connection client did not report');
      await sleep(10);
    }
  }

  close(): void {
    this.child.stdin!.end('exit\n');
    setTimeout(() => this.child.kill('SIGKILL'), 1_000).unref();
  }
}

async function waitUntil<T>(what: string, timeoutMs: number, cond: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function oneRun(tag: string, connections: number, handoverLimit: string, progress: (s: string) => void): Promise<HandoverRow> {
  const farm = new BenchFarm(tag, [1, 1, 1], 'vmac_invisible', connections);
  farm.farmlbAttrs = { handover_limit: handoverLimit };
  liveFarms.add(farm);
  let client: Client | undefined;
  try {
    await farm.build(PROFILES.default!);
    for (const n of farm.nodes) await farm.startDaemon(n);
    const [n1, n2, n3] = farm.nodes as [typeof farm.nodes[0], typeof farm.nodes[0], typeof farm.nodes[0]];
    await farm.waitAgreed(farm.nodes, 30_000);
    await farm.killDaemon(n3);
    const before = await farm.waitAgreed([n1, n2], 30_000);
    client = new Client(farm.clientNs, farm.clientAddrs);
    const c = client;
    await waitUntil('every connection answered once', 30_000, async () => {
      const r = await c.report();
      return r.every((x) => x.answered > 0 || x.closed || x.error) ? r : undefined;
    });
    const base = new Map((await c.report()).map((x) => [x.src, x.answered]));
    progress(`handover ${handoverLimit === '0' ? 'off' : 'on'}: ${connections} connections open, node 3 rejoins`);
    await farm.startDaemon(n3);
    const after = await farm.waitAgreed(farm.nodes, 30_000);
    const moved = before.filter((o, b) => after[b] !== o).length;
    const deadline = Date.now() + 20_000;
    let report = await c.report();
    while (Date.now() < deadline && !report.every((x) => x.closed || x.error || x.answered >= (base.get(x.src) ?? 0) + 10)) {
      await sleep(200);
      report = await c.report();
    }
    const why: Record<string, number> = {};
    let lost = 0;
    for (const x of report) {
      const reason = x.closed ? 'closed' : x.error ? `error ${x.error}` : x.mismatches > 0 ? 'another node answered' : x.maxWaitMs > STALL_MS ? `stalled > ${STALL_MS} ms` : undefined;
      if (!reason) continue;
      lost++;
      why[reason] = (why[reason] ?? 0) + 1;
    }
    const inMovedBuckets = Math.round((connections * moved) / 256);
    return {
      handover: handoverLimit === '0' ? 'off' : 'on',
      handoverLimit,
      connections: report.length,
      inMovedBuckets,
      lost,
      lostPer1000: Math.round((lost * 1000) / report.length),
      why,
    };
  } finally {
    client?.close();
    await farm.cleanup();
  }
}

export async function measureHandover(opts: { connections: number; progress: (s: string) => void }): Promise<HandoverReport> {
  const base = `bfo${process.pid}h`;
  const onSignal = () => {
    void Promise.all([...liveFarms].map((f) => f.cleanup())).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const rows = [
      await oneRun(`${base}1`, opts.connections, '300s', opts.progress),
      await oneRun(`${base}0`, opts.connections, '0', opts.progress),
    ];
    return {
      rows,
      notes: [
        `lost = closed, failed, answered by another node, or a request waiting > ${STALL_MS} ms, from the rejoin until every connection answered 10 more times (at most 20 s)`,
        '"in moved buckets" is the share of connections expected in the buckets node 3 took back (moved buckets / 256)',
      ],
    };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function renderHandover(r: HandoverReport): string {
  const out = ['Rejoin with established connections (3 nodes, power 1, vmac_invisible; node 3 killed, then restarted)', ''];
  const row = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(28) : c.padStart(12))).join(' ');
  out.push(row(['handover', 'connections', 'in moved', 'lost', 'lost/1000']));
  for (const x of r.rows) out.push(row([`${x.handover} (limit ${x.handoverLimit})`, String(x.connections), String(x.inMovedBuckets), String(x.lost), String(x.lostPer1000)]));
  for (const x of r.rows) if (x.lost > 0) out.push(`  handover ${x.handover}: ${Object.entries(x.why).map(([k, v]) => `${v} ${k}`).join(', ')}`);
  out.push('', ...r.notes);
  return `${out.join('\n')}\n`;
}

const USAGE = `Usage: node dist/bench/main.js handover [--connections N] [--quick] [--json]

  --connections N   long-lived connections (default 1000; --quick 200)
  --json            JSON document on stdout (the report then goes to stderr)

Must run as root. Namespaces flb-bfo<pid>h* are removed on exit.`;

export async function handoverMain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...COMMON_OPTIONS,
      connections: { type: 'string' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (notRoot('bench handover', 'namespaces, XDP')) return 1;
  const connections = Number(values.connections ?? (values.quick ? 200 : 1000));
  if (!Number.isInteger(connections) || connections < 1 || connections > 4000) {
    process.stderr.write(`bench handover: --connections must be an integer 1..4000\n\n${USAGE}\n`);
    return 2;
  }
  const report = await measureHandover({ connections, progress });
  emitReport(renderHandover(report), report, values.json);
  return 0;
}
