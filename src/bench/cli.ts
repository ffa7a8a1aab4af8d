// What the benchmarks' entry points (main.ts, failover.ts, handover.ts) share: the options
// every one has, the root check, progress lines on stderr, and where the report goes.

/** --quick, --json and --help, spread into each benchmark's parseArgs options. */
export const COMMON_OPTIONS = {
  quick: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export const progress = (line: string): void => void process.stderr.write(`bench: ${line}\n`);

/** True (after saying why) when not root: every benchmark needs BPF, namespaces or both. */
export function notRoot(name: string, why: string): boolean {
  if (process.getuid?.() === 0) return false;
  process.stderr.write(`${name}: must run as root (${why})\n`);
  return true;
}

/** The report as text on stdout; with --json the JSON document on stdout and the text on stderr. */
export function emitReport(text: string, report: unknown, json: boolean): void {
  if (json) {
    process.stderr.write(`\n${text}`);
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    process.stdout.write(`\n${text}`);
  }
}
