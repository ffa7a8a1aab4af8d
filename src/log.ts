// The one root logger. NDJSON for production (journald, log shippers); pino-pretty only
// when stdout is a terminal, as a convenience for people watching a lab run.
import { fstatSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import { FarmlbError } from './errors.js';

export type { Logger };

/** pino's levels, most severe first; --log-level and FARMLB_LOG_LEVEL take one of them (or silent). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/** The level to log at: the option, else $FARMLB_LOG_LEVEL, else info. Throws on an unknown level. */
export function logLevel(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const [value, where] = option !== undefined ? [option, '--log-level'] : env.FARMLB_LOG_LEVEL ? [env.FARMLB_LOG_LEVEL, 'FARMLB_LOG_LEVEL'] : ['info', ''];
  if (value !== 'silent' && !(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option: where, value, expected: `one of ${LOG_LEVELS.join(', ')}, silent` });
  }
  return value;
}

export function createLogger(opts: { level?: string; pretty?: boolean; bindings?: Record<string, string> } = {}): Logger {
  const level = opts.level ?? logLevel(undefined);
  const pretty = opts.pretty ?? (process.stdout.isTTY === true && !process.env.NO_COLOR);
  const base = { ...(opts.bindings ?? {}) };
  if (pretty) {
    return pino({ level, base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  return pino({ level, base, ...(stdoutIsJournal() ? { hooks: { streamWrite: withJournalPriority } } : {}) });
}

/**
 * journald's priority of a pino level (syslog(3) numbers): fatal crit, error err, warn
 * warning, info info, debug and trace debug. `journalctl -p warning` then shows warn and worse.
 */
export function journalPriority(pinoLevel: number): number {
  if (pinoLevel >= 60) return 2;
  if (pinoLevel >= 50) return 3;
  if (pinoLevel >= 40) return 4;
  if (pinoLevel >= 30) return 6;
  return 7;
}

/**
 * Prefixes one NDJSON line with "<N>", which journald reads as the priority and strips
 * (systemd.exec(5) SyslogLevelPrefix=, on by default): the journal's MESSAGE stays the
 * JSON object, so `journalctl -o cat | jq` works. pino writes "level" first.
 */
export function withJournalPriority(line: string): string {
  const m = /^\{"level":(\d+)/.exec(line);
  return m ? `<${journalPriority(Number(m[1]))}>${line}` : line;
}

/**
 * Whether stdout is the journal's stream: systemd sets JOURNAL_STREAM to "dev:inode" of
 * the stream it connected (sd_journal_stream_fd(3)); a pipe or a file elsewhere gets plain
 * JSON without the prefix.
 */
export function stdoutIsJournal(env: NodeJS.ProcessEnv = process.env, fd = 1): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]!) && st.ino === BigInt(m[2]!);
  } catch {
    return false;
  }
}

/** A logger that discards everything, for library calls made from the CLI. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
