// SYN cookies on this node: they defeat the handover's socket test (docs/datapath.md §12). With a cookie
// the kernel keeps no request socket for a handshake, so the handshake's last ACK finds
// only the listener in bpf_skc_lookup_tcp: during a handover neither the new owner (not a
// SYN, no connection of its own) nor the previous owner (nothing of its own) takes it, and
// that connection fails. The kernel sends cookies when a listener's SYN backlog is full
// (net.ipv4.tcp_syncookies=1, the default), or for every handshake (=2), so a service in
// a farm needs a listen backlog large enough for its bursts, and farmlb says when cookies
// were sent: TcpExt SyncookiesSent in /proc/net/netstat (per network namespace).

import { readFile } from 'node:fs/promises';
import { FarmlbError } from '../errors.js';

/** net.ipv4.tcp_syncookies: 0 never, 1 when a SYN backlog overflows, 2 always. */
export type SynCookieMode = 0 | 1 | 2;

export interface SynCookieCounters {
  /** TcpExt SyncookiesSent: SYN-ACKs carrying a cookie. */
  sent: number;
  /** TcpExt SyncookiesRecv: ACKs whose cookie was valid (a connection made from a cookie). */
  recv: number;
  /** TcpExt SyncookiesFailed: ACKs with no request socket and no valid cookie. */
  failed: number;
}

export interface SynCookieSample extends SynCookieCounters {
  mode: SynCookieMode;
}

/**
 * /proc/net/netstat (and /proc/net/snmp): pairs of lines "Prefix: Name1 Name2 …" then
 * "Prefix: v1 v2 …" → values by prefix and name. Lines that do not pair up are skipped.
 */
export function parseNetstat(text: string): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  for (let i = 0; i + 1 < lines.length; i++) {
    const [prefix, ...names] = lines[i]!.trim().split(/\s+/);
    const [prefix2, ...values] = lines[i + 1]!.trim().split(/\s+/);
    if (!prefix?.endsWith(':') || prefix !== prefix2 || names.length !== values.length) continue;
    if (!values.every((v) => /^-?\d+$/.test(v))) continue;
    const section = out.get(prefix.slice(0, -1)) ?? new Map<string, number>();
    names.forEach((n, k) => section.set(n, Number(values[k])));
    out.set(prefix.slice(0, -1), section);
    i++;
  }
  return out;
}

/** The SYN cookie counters of a /proc/net/netstat text (0 for a counter the kernel does not print). */
export function synCookieCounters(netstat: string): SynCookieCounters {
  const tcpExt = parseNetstat(netstat).get('TcpExt');
  return {
    sent: tcpExt?.get('SyncookiesSent') ?? 0,
    recv: tcpExt?.get('SyncookiesRecv') ?? 0,
    failed: tcpExt?.get('SyncookiesFailed') ?? 0,
  };
}

export function parseSynCookieMode(text: string): SynCookieMode {
  const n = Number(text.trim());
  return n === 0 || n === 2 ? n : 1;
}

async function readProc(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new FarmlbError('FARMLB_E_NET_PROC', { file, detail: (err as Error).message }, { cause: err });
  }
}

/** The current namespace's SYN cookie mode and counters. Throws FARMLB_E_NET_PROC. */
export async function readSynCookies(procDir = '/proc'): Promise<SynCookieSample> {
  const [netstat, mode] = await Promise.all([readProc(`${procDir}/net/netstat`), readProc(`${procDir}/sys/net/ipv4/tcp_syncookies`)]);
  return { mode: parseSynCookieMode(mode), ...synCookieCounters(netstat) };
}

/** What NodeStatus shows. */
export interface SynCookieStatus {
  mode: SynCookieMode;
  /** An episode is open: cookies were sent within the quiet period. */
  sentRecently: boolean;
  /** SyncookiesSent since the namespace was created. */
  sentTotal: number;
}

export interface SynCookieCheck {
  sample: SynCookieSample;
  /** Cookies sent since the previous check (0 at the first check: it sets the baseline). */
  sentSinceLast: number;
  /** This check opened an episode: cookies are being sent (warn once, here). */
  started: boolean;
  /** This check closed an episode: none sent for the quiet period; its total and length. */
  ended?: { sent: number; durationMs: number };
}

export interface SynCookieMonitorOptions {
  /** An episode ends after this long without a cookie sent (default 30 s). */
  quietMs?: number;
  /** For tests. */
  read?: () => Promise<SynCookieSample>;
  nowMs?: () => number;
}

/**
 * Turns SyncookiesSent into episodes: the first check only sets the baseline (cookies sent
 * before the daemon started are history), an increase opens an episode, further increases
 * extend it, and quietMs without one closes it. The caller logs the opening (once per
 * episode) and the closing.
 */
export class SynCookieMonitor {
  private last: SynCookieSample | undefined;
  private episode: { startMs: number; lastSentMs: number; sent: number } | undefined;
  private readonly quietMs: number;
  private readonly read: () => Promise<SynCookieSample>;
  private readonly nowMs: () => number;

  constructor(opts: SynCookieMonitorOptions = {}) {
    this.quietMs = opts.quietMs ?? 30_000;
    this.read = opts.read ?? (() => readSynCookies());
    this.nowMs = opts.nowMs ?? Date.now;
  }

  /** Reads the counters and advances the episode. Throws FARMLB_E_NET_PROC (the state is unchanged). */
  async check(): Promise<SynCookieCheck> {
    const sample = await this.read();
    const now = this.nowMs();
    const previous = this.last;
    this.last = sample;
    // A counter that went back (a new namespace under the same daemon?) starts a new baseline.
    const sentSinceLast = previous && sample.sent >= previous.sent ? sample.sent - previous.sent : 0;
    if (sentSinceLast > 0) {
      if (this.episode) {
        this.episode.sent += sentSinceLast;
        this.episode.lastSentMs = now;
        return { sample, sentSinceLast, started: false };
      }
      this.episode = { startMs: now, lastSentMs: now, sent: sentSinceLast };
      return { sample, sentSinceLast, started: true };
    }
    if (this.episode && now - this.episode.lastSentMs >= this.quietMs) {
      const ended = { sent: this.episode.sent, durationMs: this.episode.lastSentMs - this.episode.startMs };
      this.episode = undefined;
      return { sample, sentSinceLast, started: false, ended };
    }
    return { sample, sentSinceLast, started: false };
  }

  /** Undefined before the first successful check. */
  status(): SynCookieStatus | undefined {
    if (!this.last) return undefined;
    return { mode: this.last.mode, sentRecently: this.episode !== undefined, sentTotal: this.last.sent };
  }
}
