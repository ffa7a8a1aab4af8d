// The one root logger. NDJSON for production (journald, log shippers); pino-pretty only
// when stdout is a terminal, as a convenience for people watching a lab run.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(opts: { level?: string; pretty?: boolean; bindings?: Record<string, string> } = {}): Logger {
  const level = opts.level ?? process.env.FARMLB_LOG_LEVEL ?? 'info';
  const pretty = opts.pretty ?? (process.stdout.isTTY === true && !process.env.NO_COLOR);
  const base = { ...(opts.bindings ?? {}) };
  if (pretty) {
    return pino({ level, base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  return pino({ level, base });
}

/** A logger that discards everything, for library calls made from the CLI. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
