import { open, readFile, stat } from 'node:fs/promises';
import { eventsFile, parseEvents, type FarmEvent } from '../../api/events-log.js';
import { FarmlbError } from '../../errors.js';
import { EXIT, type CommandDef } from '../command.js';
import { jsonReplacer, bold, dim, type Output } from '../output.js';
import { CONTROL_OPTIONS, controlPaths } from './status.js';

/** How often --follow looks at the file: events are rare, a quarter second is prompt enough. */
export const FOLLOW_POLL_MS = 250;

function ms(x: number | undefined, digits = 0): string | undefined {
  return x === undefined ? undefined : `${x.toFixed(digits)} ms`;
}

/** One event as one line: time, event, what changed, cause, durations. */
export function formatEvent(out: Output, e: FarmEvent): string {
  const time = dim(out, e.time.replace('T', ' '));
  if (e.event === 'state') {
    return `${time}  ${'state'.padEnd(5)}  ${bold(out, `${e.previous} → ${e.state}`)}  ${e.cause} (${e.buckets} buckets)`;
  }
  if (e.event === 'checker') {
    return `${time}  ${'check'.padEnd(5)}  ${bold(out, `${e.resource} ${e.state}`)}  ${e.detail} (action ${e.action})`;
  }
  if (e.event === 'script') {
    return `${time}  ${'script'.padEnd(5)}  ${bold(out, e.script)}  ${e.ok ? 'done' : `failed: ${e.detail}`} in ${ms(e.durationMs)}`;
  }
  const timing = [
    e.detectionMs !== undefined && `detection ${ms(e.detectionMs)}`,
    e.installMs !== undefined && `install ${ms(e.installMs, 1)}`,
    `${e.moved} buckets moved`,
  ].filter(Boolean).join(', ');
  return `${time}  ${'view'.padEnd(5)}  ${bold(out, `epoch ${e.epoch}`)} [${e.view.join(',')}]  ${e.cause}: ${timing}`;
}

function printEvent(out: Output, e: FarmEvent): void {
  // --follow --json: one object per line (NDJSON), so a reader can act on each as it comes.
  if (out.json) process.stdout.write(`${JSON.stringify(e, jsonReplacer)}\n`);
  else out.print(formatEvent(out, e));
}

/**
 * Calls onEvent for every event appended to `file` after `fromOffset`, polling every pollMs
 * until `signal` aborts. Follows a rotation (events.log renamed to events.log.1): the rest
 * of the old file is read from events.log.1, then the new file from its start.
 */
export async function followEvents(file: string, fromOffset: number, onEvent: (e: FarmEvent) => void,
  signal: AbortSignal, pollMs = FOLLOW_POLL_MS): Promise<void> {
  let offset = fromOffset;
  let ino = await stat(file).then((s) => s.ino, () => undefined);
  let partial = '';
  // Reads `f` from `from` when it is still the file `expectIno` names: a rotation between our
  // stat and this open would hand us the new file with the old file's offset (read as a
  // truncation: offset 0), and the rotation found next would read the old file again from 0.
  const readFrom = async (f: string, from: number, expectIno: number | undefined): Promise<number> => {
    const fh = await open(f, 'r').catch(() => undefined);
    if (!fh) return from;
    try {
      const { size, ino: opened } = await fh.stat();
      if (expectIno !== undefined && opened !== expectIno) return from;
      if (size <= from) return size < from ? 0 : from;
      const buf = Buffer.alloc(size - from);
      await fh.read(buf, 0, buf.length, from);
      const text = partial + buf.toString('utf8');
      const cut = text.lastIndexOf('\n') + 1;
      partial = text.slice(cut);
      for (const e of parseEvents(text.slice(0, cut))) onEvent(e);
      return size;
    } finally {
      await fh.close();
    }
  };
  while (!signal.aborted) {
    const now = await stat(file).then((s) => s.ino, () => undefined);
    if (now !== ino) {
      // Rotated (or created): finish the old file where it went, then start the new one.
      if (ino !== undefined) await readFrom(`${file}.1`, offset, ino);
      partial = '';
      offset = 0;
      ino = now;
    }
    if (now !== undefined) offset = await readFrom(file, offset, now);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, pollMs);
      signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }
}

export const eventsCommand: CommandDef = {
  name: 'events',
  summary: 'show the module state and view changes with their causes and durations (the daemon\'s event log)',
  options: [
    ...CONTROL_OPTIONS,
    { flags: '-f, --follow', description: 'keep printing new events as they come (Ctrl-C stops)' },
    { flags: '-n, --lines <n>', description: 'only the last N events' },
  ],
  examples: ['farmlb events', 'farmlb events --follow', 'farmlb events -n 20 --json', 'farmlb events --follow --json | jq .cause'],
  async run(ctx, _args, opts) {
    const paths = await controlPaths(opts);
    const file = eventsFile(paths.runDir);
    let last: number | undefined;
    if (opts.lines !== undefined) {
      last = Number(opts.lines);
      if (!/^\d+$/.test(String(opts.lines))) throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option: '--lines', value: String(opts.lines), expected: 'a non-negative integer' });
    }
    // What is on disk up to the last complete line; --follow goes on from there, so no
    // event is printed twice or missed.
    const current = await readFile(file).catch(() => Buffer.alloc(0));
    const offset = current.lastIndexOf(0x0a) + 1;
    const rotated = await readFile(`${file}.1`, 'utf8').catch(() => '');
    let events = parseEvents(rotated + current.subarray(0, offset).toString('utf8'));
    if (last !== undefined) events = last === 0 ? [] : events.slice(-last);
    if (!opts.follow) {
      if (ctx.out.json) ctx.out.printJson(events);
      else if (events.length === 0) ctx.out.print(`no events recorded in ${file}`);
      else ctx.out.print(events.map((e) => formatEvent(ctx.out, e)).join('\n'));
      return EXIT.OK;
    }
    for (const e of events) printEvent(ctx.out, e);
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      await followEvents(file, offset, (e) => printEvent(ctx.out, e), stop.signal);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    return EXIT.OK;
  },
};
