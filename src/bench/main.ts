// Entry point of the benchmark (normally started by scripts/bench, which builds everything,
// makes the two flb-bench-* namespaces and runs this inside the receiving one). Prints one
// report; with --json the report goes to stderr and the JSON document to stdout, so both
// are available from one run and stdout stays machine-readable.
//
// A benchmark, not a test: nothing here asserts a time. It fails only when it could not
// measure what it says (a wrong verdict, a tool that did not start).

import { parseArgs } from 'node:util';
import { loadNative } from '../addon/native.js';
import { COMMON_OPTIONS, emitReport, notRoot, progress } from './cli.js';
import { machineFacts } from './machine.js';
import { measurePerPacket } from './per-packet.js';
import { renderReport, type BenchReport } from './report.js';
import { measureVeth } from './veth.js';

const USAGE = `Usage: node dist/bench/main.js [--quick] [--json] [--rx-dev DEV --tx-ns NS --tx-dev DEV] [--no-veth]

  --quick        repeat 100,000 and 1 s windows (a smoke run)
  --json         JSON document on stdout (the report then goes to stderr)
  --rx-dev DEV   receiving veth, in this process's namespace
  --tx-ns NS     sending namespace (flb-bench-*), where trafgen runs
  --tx-dev DEV   sending veth, in NS
  --no-veth      only the per-packet part (BPF_PROG_TEST_RUN)

Must run as root. scripts/bench sets up the namespaces and passes the veth options.`;

async function main(): Promise<number> {
  // `failover` is its own benchmark (src/bench/failover.ts), with its own lab and options.
  if (process.argv[2] === 'failover') return (await import('./failover.js')).failoverMain(process.argv.slice(3));
  // `handover`: connections lost on a rejoin with the handover on and off (src/bench/handover.ts).
  if (process.argv[2] === 'handover') return (await import('./handover.js')).handoverMain(process.argv.slice(3));
  // `sockets`: a handover connection count through sock_diag and /proc with many sockets (src/bench/sockets.ts).
  if (process.argv[2] === 'sockets') return (await import('./sockets.js')).socketsMain(process.argv.slice(3));
  const { values } = parseArgs({
    options: {
      ...COMMON_OPTIONS,
      'rx-dev': { type: 'string' },
      'tx-ns': { type: 'string' },
      'tx-dev': { type: 'string' },
      'no-veth': { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (notRoot('bench', 'BPF_PROG_TEST_RUN, XDP attach, nftables')) return 1;
  const rxDev = values['rx-dev'];
  const txNs = values['tx-ns'];
  const txDev = values['tx-dev'];
  const veth = !values['no-veth'];
  if (veth && (!rxDev || !txNs || !txDev)) {
    process.stderr.write(`bench: --rx-dev, --tx-ns and --tx-dev are needed for the veth part (or --no-veth)\n\n${USAGE}\n`);
    return 2;
  }

  const native = loadNative();
  const machine = machineFacts();
  const repeat = values.quick ? 100_000 : 1_000_000;
  const rounds = 5;

  progress(`per-packet cost, ${rounds} rounds of ${repeat.toLocaleString('en-US')} repetitions per case`);
  const perPacket = await measurePerPacket({ repeat, rounds, native });
  const report: BenchReport = { machine, perPacket };
  if (veth) {
    report.veth = await measureVeth({
      rxDev: rxDev!,
      txNs: txNs!,
      txDev: txDev!,
      windowMs: values.quick ? 1_000 : 5_000,
      native,
      progress,
    });
  } else {
    report.vethSkipped = '--no-veth';
  }

  emitReport(renderReport(report), report, values.json);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
