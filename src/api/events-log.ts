// The daemon's event log: every module state change and every installed view, one JSON
// object per line, in <run-dir>/events.log, for `farmlb events` and `farmlb buckets --diff`
// (the daemon's stdout log has the same events among everything else; this file is the
// short history an operator asks for, and it outlives the daemon until the next boot).
//
// Bounded: past maxBytes the file is renamed to events.log.1 (replacing the older one) and a
// new one begins, so at most two files of about maxBytes each exist. Appends are
// synchronous: events are rare (a few per failover), a line is small, the run directory is
// a tmpfs, and a synchronous append keeps the lines in the order the events happened.
//
// In api/ rather than daemon/: the file is an interface between the daemon, which writes it,
// and the CLI, which reads it, like the control socket; the CLI reads no daemon internals.

import { appendFileSync, mkdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

export const EVENTS_FILE = 'events.log';
export const DEFAULT_EVENTS_MAX_BYTES = 1024 * 1024;

export function eventsFile(runDir: string): string {
  return path.join(runDir, EVENTS_FILE);
}

/** A bucket whose owner changed: [bucket, previous owner, new owner] (node names; null = unowned). */
export type MovedBucket = [number, string | null, string | null];

export interface StateEvent {
  event: 'state';
  /** ISO 8601 wall clock. */
  time: string;
  node: string;
  module: string;
  state: 'STOP' | 'WAIT' | 'UP';
  previous: 'STOP' | 'WAIT' | 'UP';
  cause: string;
  buckets: number;
}

export interface ViewEvent {
  event: 'view';
  time: string;
  node: string;
  module: string;
  epoch: number;
  view: string[];
  cause: string;
  detectionMs?: number;
  installMs?: number;
  /** Buckets whose owner changed, all groups. */
  moved: number;
  /** Per group name: the buckets that moved, with their previous and new owner. */
  movedBuckets: Record<string, MovedBucket[]>;
  /** Buckets this node owns after the change (all groups). */
  buckets: number;
}

/** A checker's or a monitored process's resource went up or down (docs/application.md). */
export interface CheckerEvent {
  event: 'checker';
  time: string;
  node: string;
  module: string;
  resource: string;
  state: 'up' | 'down';
  detail: string;
  /** What the node does about it: wait (leave while down), restart, stopstart. */
  action: string;
}

/** A module script ran (prestart, start_both, stop_both, poststop). */
export interface ScriptEvent {
  event: 'script';
  time: string;
  node: string;
  module: string;
  script: string;
  ok: boolean;
  detail: string;
  durationMs: number;
}

export type FarmEvent = StateEvent | ViewEvent | CheckerEvent | ScriptEvent;

export class EventsLog {
  private size: number | undefined;
  private failed = false;

  constructor(
    readonly file: string,
    private readonly opts: { maxBytes?: number; log?: Logger } = {},
  ) {}

  append(event: FarmEvent): void {
    const line = `${JSON.stringify(event)}\n`;
    const max = this.opts.maxBytes ?? DEFAULT_EVENTS_MAX_BYTES;
    try {
      if (this.size === undefined) {
        mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
        try { this.size = statSync(this.file).size; } catch { this.size = 0; }
      }
      if (this.size > 0 && this.size + line.length > max) {
        renameSync(this.file, `${this.file}.1`);
        this.size = 0;
      }
      appendFileSync(this.file, line, { mode: 0o600 });
      this.size += Buffer.byteLength(line);
      this.failed = false;
    } catch (err) {
      // The events also go to the daemon's log; a full or missing run dir must not stop it.
      if (!this.failed) this.opts.log?.error({ err, event: 'events_log_failed', file: this.file }, 'cannot append to the event log');
      this.failed = true;
      this.size = undefined;
    }
  }
}

/** Parses NDJSON event lines; a torn or foreign line is skipped, not fatal. */
export function parseEvents(text: string): FarmEvent[] {
  const events: FarmEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as FarmEvent;
      if (e && (e.event === 'state' || e.event === 'view' || e.event === 'checker' || e.event === 'script')) events.push(e);
    } catch {
      // a line cut by a crash mid-append
    }
  }
  return events;
}

/** Every event still on disk, oldest first (the rotated file, then the current one). */
export function readEvents(file: string): FarmEvent[] {
  const read = (f: string) => { try { return readFileSync(f, 'utf8'); } catch { return ''; } };
  return parseEvents(read(`${file}.1`) + read(file));
}

/** Per group, the buckets whose owner differs between two owner tables ([group][bucket] = node name or null). */
export function movedBucketsByGroup(groups: readonly string[], before: (string | null)[][] | undefined, after: (string | null)[][]): Record<string, MovedBucket[]> {
  const out: Record<string, MovedBucket[]> = {};
  groups.forEach((g, gi) => {
    const moved: MovedBucket[] = [];
    (after[gi] ?? []).forEach((owner, b) => {
      const was = before?.[gi]?.[b] ?? null;
      if (was !== owner) moved.push([b, was, owner]);
    });
    out[g] = moved;
  });
  return out;
}
