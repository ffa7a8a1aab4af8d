// `scripts/bench sockets`: what one sample of the handover's connection count costs
// (src/daemon/holdings.ts) with many unrelated TCP sockets on the host, read through
// sock_diag filtered to the VIP in the kernel (the default) and by parsing /proc/net/tcp{,6}
// (the fallback). Runs inside a namespace of its own (scripts/bench makes flb-bench-sk-<pid>
// and runs this there): a python3 holder opens N/2 loopback connections (N sockets, both
// ends) to 127.0.0.1 and K connections to the VIP 10.77.0.100, then the two readers are timed
// against the same table, first with the VIP's connections alone, then with the N others.
//
// A benchmark, not a test: it asserts only that both readers count the K connections.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { loadNative } from '../addon/native.js';
import { diagTcpSockets, scanTcpSockets, TCP_STATES, type LocalAddr, type TcpSocket } from '../net/tcp-sockets.js';
import { HELD_STATES } from '../daemon/holdings.js';
import { COMMON_OPTIONS, emitReport, notRoot, progress } from './cli.js';
import { run } from './proc.js';

const USAGE = `Usage: scripts/bench sockets [--quick] [--json] [--sockets N] [--vip-connections K] [--samples S]

  --sockets N           unrelated TCP sockets on the host (default 100000; both ends of N/2 loopback connections)
  --vip-connections K   connections to the VIP the samples count (default 100)
  --samples S           samples per reader and table size (default 30; --quick 5)
  --quick               N 20000, S 5
  --json                JSON document on stdout (the report then goes to stderr)

Must run as root, inside a namespace of its own (scripts/bench sockets makes one).`;

const VIP = '10.77.0.100';
const VIP_PORT = 80;
const VIP_ADDR: LocalAddr = { family: 4, addr: Uint8Array.of(10, 77, 0, 100) };
/** Connections per holder process: two fds each, under a 20,000 fd limit. */
const PER_HOLDER = 9_000;
const HELD = new Set(Object.entries(TCP_STATES).filter(([, s]) => HELD_STATES.has(s)).map(([n]) => Number(n)));

// The holder: `count` connections from 127.0.0.1 to a listener on `addr`, both ends kept.
// Python: 100,000 sockets cost a few MB there (hundreds in Node), and a blocking connect
// over loopback completes at once (the listener's backlog), so the loop is simple.
const HOLDER_PY = String.raw`
import resource, socket, sys
specs = [(a, p, int(n)) for a, p, n in (s.split(',') for s in sys.argv[1:])]
total = sum(n for _, _, n in specs) * 2 + 64
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (total if hard == resource.RLIM_INFINITY else min(total, hard), hard))
keep = []
for addr, port, n in specs:
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, int(port))); srv.listen(4096); keep.append(srv)
    for _ in range(n):
        c = socket.socket(); c.connect((addr, int(port))); s, _ = srv.accept(); keep += [c, s]
print('ready', flush=True)
sys.stdin.read()
`;

interface Holder {
  close(): Promise<void>;
}

async function hold(specs: [string, number, number][]): Promise<Holder> {
  const child: ChildProcess = spawn('python3', ['-c', HOLDER_PY, ...specs.map(([a, p, n]) => `${a},${p},${n}`)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const ready = await new Promise<boolean>((resolve) => {
    createInterface({ input: child.stdout! }).once('line', (l) => resolve(l === 'ready'));
    child.once('exit', () => resolve(false));
  });
  if (!ready) throw new Error('the socket holder (python3) did not start');
  return { close: async () => { child.stdin?.end(); child.kill('SIGTERM'); await exited; } };
}

interface ReaderResult {
  reader: 'sock_diag' | 'proc';
  /** Sockets in the namespace's table when measured (every state, both families). */
  socketsOnHost: number;
  vipConnections: number;
  /** Per sample: wall time and CPU (user + system of the whole process: the addon's worker thread and the kernel work it causes included). */
  wallMsMedian: number;
  wallMsP90: number;
  cpuMsMedian: number;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

async function measure(reader: 'sock_diag' | 'proc', samples: number, socketsOnHost: number): Promise<ReaderResult> {
  const native = loadNative();
  const wall: number[] = [];
  const cpu: number[] = [];
  let counted = 0;
  for (let i = 0; i < samples + 1; i++) {
    counted = 0;
    const visit = (s: TcpSocket): void => { if (s.family === 4 && s.localPort === VIP_PORT && s.localAddr.every((b, k) => b === VIP_ADDR.addr[k])) counted++; };
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    if (reader === 'sock_diag') await diagTcpSockets({ native, visit, states: HELD, locals: [VIP_ADDR] });
    else await scanTcpSockets({ visit, states: HELD });
    const t1 = process.hrtime.bigint();
    const c = process.cpuUsage(c0);
    if (i === 0) continue; // warm-up
    wall.push(Number(t1 - t0) / 1e6);
    cpu.push((c.user + c.system) / 1000);
  }
  return { reader, socketsOnHost, vipConnections: counted, wallMsMedian: quantile(wall, 0.5), wallMsP90: quantile(wall, 0.9), cpuMsMedian: quantile(cpu, 0.5) };
}

/** Every socket of the namespace (ss's count would need another tool): lines of /proc/net/tcp{,6}. */
async function socketsOnHost(): Promise<number> {
  return (await scanTcpSockets({ visit: () => undefined })).lines;
}

export async function socketsMain(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...COMMON_OPTIONS,
      sockets: { type: 'string' },
      'vip-connections': { type: 'string' },
      samples: { type: 'string' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (notRoot('bench sockets', 'a namespace, loopback addresses, the port range sysctl')) return 1;
  const unrelated = Number(values.sockets ?? (values.quick ? 20_000 : 100_000));
  const vipConnections = Number(values['vip-connections'] ?? 100);
  const samples = Number(values.samples ?? (values.quick ? 5 : 30));
  // 50,000 connections from one address need more than the default 28,232 ephemeral ports.
  await run('sysctl', ['-qw', 'net.ipv4.ip_local_port_range=1024 65535']);
  await run('ip', ['link', 'set', 'lo', 'up']);
  await run('ip', ['addr', 'replace', `${VIP}/32`, 'dev', 'lo']);
  const results: ReaderResult[] = [];
  const vipOnly = await hold([[VIP, VIP_PORT, vipConnections]]);
  try {
    let n = await socketsOnHost();
    progress(`${n} sockets (the VIP's ${vipConnections} connections): ${samples} samples per reader`);
    for (const reader of ['sock_diag', 'proc'] as const) results.push(await measure(reader, samples, n));
    progress(`opening ${unrelated} unrelated sockets`);
    // Listener ports below 1024, outside the ephemeral range the clients take theirs from.
    // Holders of at most PER_HOLDER connections each: a process may hold only so many fds
    // (RLIMIT_NOFILE's hard limit, 20,000 on the machine this was written on).
    const others: Holder[] = [];
    try {
      for (let left = Math.ceil(unrelated / 2), port = 900; left > 0; left -= PER_HOLDER, port++) {
        others.push(await hold([['127.0.0.1', port, Math.min(left, PER_HOLDER)]]));
      }
      n = await socketsOnHost();
      progress(`${n} sockets: ${samples} samples per reader`);
      for (const reader of ['sock_diag', 'proc'] as const) results.push(await measure(reader, samples, n));
    } finally {
      await Promise.all(others.map((h) => h.close()));
    }
  } finally {
    await vipOnly.close();
  }
  const bad = results.filter((r) => r.vipConnections !== vipConnections);
  const lines = [
    'Socket accounting: one sample of the handover connection count (src/daemon/holdings.ts)',
    `VIP ${VIP}:${VIP_PORT} with ${vipConnections} connections; median (p90) wall ms and median CPU ms per sample, ${samples} samples`,
    '',
    'reader      sockets on host   VIP sockets seen   wall ms (p90)        CPU ms',
    ...results.map((r) => `${r.reader.padEnd(11)} ${String(r.socketsOnHost).padStart(15)}   ${String(r.vipConnections).padStart(16)}   ${r.wallMsMedian.toFixed(3).padStart(8)} (${r.wallMsP90.toFixed(3)})   ${r.cpuMsMedian.toFixed(3).padStart(10)}`),
    '',
  ];
  emitReport(lines.join('\n'), { vip: VIP, vipConnections, samples, results }, values.json === true);
  if (bad.length > 0) {
    process.stderr.write(`bench sockets: a reader did not count the VIP's connections: ${JSON.stringify(bad)}\n`);
    return 1;
  }
  return 0;
}
