// The TCP sockets of the current network namespace: how a previous owner counts the
// connections it still holds in buckets it is handing over (src/daemon/holdings.ts, docs/membership.md "Handover").
// Two readers: diagTcpSockets asks the kernel through NETLINK_SOCK_DIAG (the addon's
// tcpDiag, native/sockdiag.cc) for the sockets whose local address is a VIP, filtered in the
// kernel — the default; scanTcpSockets parses /proc/net/tcp and tcp6, the fallback where
// inet_diag is missing, whose cost grows with every socket of the host (docs/benchmarks.md,
// "Socket accounting").
//
// /proc/net/tcp{,6}:
// Format (net/ipv4/tcp_ipv4.c get_tcp4_sock, net/ipv6/tcp_ipv6.c get_tcp6_sock): an
// address is printed as 32-bit words with %08X, each word as it sits in memory read as a
// host-endian integer, so the wire bytes of a word come back reversed on a little-endian
// host; a port is printed %04X after ntohs (host order, what it reads). tcp6 also holds the
// IPv4 connections of a dual-stack socket, as ::ffff:a.b.c.d: those belong to IPv4 VIPs.
// A request socket (TCP_NEW_SYN_RECV in the kernel) is printed as SYN_RECV (get_openreq4),
// so state 12 never appears here. A timewait socket is printed with its substate and timer
// 3 (get_timewait4_sock): an orphan that reached FIN_WAIT2 after close() shows as FIN_WAIT2.
// Both readers report it as TIME_WAIT, what it is and what the data path's
// bpf_skc_lookup_tcp sees: it has no application behind it, and a handover must not wait
// for it (src/daemon/holdings.ts).
//
// Cost: the kernel hands the table out about one page (~27 lines) per read(2), and a line
// is ~150 bytes, so the file is read streaming and each line is visited, never the whole
// table kept. A table longer than `maxLines` is cut and reported `truncated`: a partial
// table must not be taken for a complete one (a missed connection would look finished).
// A line can be missed or seen twice when sockets come and go while the file is read
// (seq_file resumes by position in a hash chain): callers that need "none left" confirm it
// with a second read.

import { open } from 'node:fs/promises';
import { endianness } from 'node:os';
import { formatAddr } from '../dataplane/abi.js';
import type { Native } from '../addon/native.js';
import { FarmlbError } from '../errors.js';

/** include/net/tcp_states.h, by number. */
export const TCP_STATES = {
  1: 'ESTABLISHED',
  2: 'SYN_SENT',
  3: 'SYN_RECV',
  4: 'FIN_WAIT1',
  5: 'FIN_WAIT2',
  6: 'TIME_WAIT',
  7: 'CLOSE',
  8: 'CLOSE_WAIT',
  9: 'LAST_ACK',
  10: 'LISTEN',
  11: 'CLOSING',
  12: 'NEW_SYN_RECV',
} as const;
export type TcpStateNumber = keyof typeof TCP_STATES;
export type TcpState = (typeof TCP_STATES)[TcpStateNumber];

export interface TcpSocket {
  /** 4 for an IPv4 socket, including a v4-mapped one read from tcp6. */
  family: 4 | 6;
  /** Wire order: 4 bytes (family 4) or 16. */
  localAddr: Uint8Array;
  localPort: number;
  remoteAddr: Uint8Array;
  remotePort: number;
  state: TcpState;
  /** Kernel state number (TCP_STATES). */
  stateNumber: number;
}

const HOST_LITTLE_ENDIAN = endianness() === 'LE';
const HEX = /^[0-9A-Fa-f]+$/;

/** One %08X word as printed from memory by a host of the given byte order → its 4 wire bytes into `out` at `at`. */
function wordBytes(hex: string, out: Uint8Array, at: number, littleEndian: boolean): boolean {
  if (hex.length !== 8 || !HEX.test(hex)) return false;
  const v = Number.parseInt(hex, 16);
  const bytes = [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  if (littleEndian) bytes.reverse();
  out.set(bytes, at);
  return true;
}

/** "0100007F:1F90" (tcp) or 32 hex digits ":" port (tcp6) → wire bytes and port; undefined when malformed. */
export function parseProcEndpoint(field: string, littleEndian = HOST_LITTLE_ENDIAN): { addr: Uint8Array; port: number } | undefined {
  const colon = field.indexOf(':');
  if (colon !== 8 && colon !== 32) return undefined;
  const hex = field.slice(0, colon);
  const portHex = field.slice(colon + 1);
  if (portHex.length !== 4 || !HEX.test(portHex)) return undefined;
  const port = Number.parseInt(portHex, 16);
  const addr = new Uint8Array(hex.length / 2);
  for (let w = 0; w < hex.length / 8; w++) if (!wordBytes(hex.slice(8 * w, 8 * w + 8), addr, 4 * w, littleEndian)) return undefined;
  return { addr, port };
}

/** ::ffff:a.b.c.d */
export function isV4Mapped(addr: Uint8Array): boolean {
  if (addr.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (addr[i] !== 0) return false;
  return addr[10] === 0xff && addr[11] === 0xff;
}

/** The `tr` field's value of a timewait socket (get_timewait4_sock, get_timewait6_sock). */
const PROC_TIMER_TIMEWAIT = '03';
const TCP_TIME_WAIT = 6;

/** The state a line stands for: its `st`, or TIME_WAIT for a timewait socket whatever its substate. */
function lineState(fields: readonly string[]): number {
  return fields[5]?.startsWith(`${PROC_TIMER_TIMEWAIT}:`) ? TCP_TIME_WAIT : Number.parseInt(fields[3]!, 16);
}

/** The state number of a line without parsing the addresses (undefined for the header or a malformed line). */
export function lineStateNumber(line: string): number | undefined {
  const fields = line.trim().split(/\s+/, 6);
  if (fields.length < 4 || !fields[0]!.endsWith(':')) return undefined;
  const n = lineState(fields);
  return Number.isNaN(n) ? undefined : n;
}

/**
 * One line of /proc/net/tcp or /proc/net/tcp6 → a socket; undefined for the header line,
 * a malformed line or an unknown state. A v4-mapped tcp6 socket comes back as family 4; a
 * timewait socket as TIME_WAIT, whatever substate the line prints.
 */
export function parseTcpLine(line: string, littleEndian = HOST_LITTLE_ENDIAN): TcpSocket | undefined {
  const fields = line.trim().split(/\s+/, 6);
  if (fields.length < 4 || !fields[0]!.endsWith(':')) return undefined;
  const local = parseProcEndpoint(fields[1]!, littleEndian);
  const remote = parseProcEndpoint(fields[2]!, littleEndian);
  const stateNumber = lineState(fields);
  if (!local || !remote || local.addr.length !== remote.addr.length) return undefined;
  const state = TCP_STATES[stateNumber as TcpStateNumber];
  if (!state) return undefined;
  if (local.addr.length === 4) return { family: 4, localAddr: local.addr, localPort: local.port, remoteAddr: remote.addr, remotePort: remote.port, state, stateNumber };
  if (isV4Mapped(local.addr)) {
    // The peer of a mapped local address is an IPv4 peer, mapped too (or all zero for a listener).
    return { family: 4, localAddr: local.addr.slice(12), localPort: local.port, remoteAddr: remote.addr.slice(12), remotePort: remote.port, state, stateNumber };
  }
  return { family: 6, localAddr: local.addr, localPort: local.port, remoteAddr: remote.addr, remotePort: remote.port, state, stateNumber };
}

/** "10.0.0.1:80" / "[2001:db8::1]:80", for logs and tests. */
export function endpointText(family: 4 | 6, addr: Uint8Array, port: number): string {
  const a = formatAddr(family, addr);
  return family === 4 ? `${a}:${port}` : `[${a}]:${port}`;
}

/** Default line cap over both files: a large server, read in about a second. */
export const DEFAULT_MAX_SOCKET_LINES = 1_000_000;
const READ_CHUNK = 64 * 1024;

export interface ScanTcpOptions {
  /** Called for every socket read (of a wanted state). */
  visit(socket: TcpSocket): void;
  /** Kernel state numbers to parse; others are skipped before their addresses are parsed. Default: all. */
  states?: ReadonlySet<number>;
  /** Lines read over both files before the scan stops with `truncated` (default DEFAULT_MAX_SOCKET_LINES). */
  maxLines?: number;
  /** Where `net/tcp` and `net/tcp6` are (default /proc; tests point it at fixtures). */
  procDir?: string;
}

export interface ScanTcpResult {
  /** Socket lines read (both files, every state). */
  lines: number;
  /** Lines handed to `visit`. */
  visited: number;
  /** The cap was reached: some sockets were not read. */
  truncated: boolean;
}

/**
 * Reads /proc/net/tcp then /proc/net/tcp6, streaming, and hands each socket to `visit`.
 * A missing tcp6 (IPv6 disabled) is an empty table; any other failure to read is
 * FARMLB_E_NET_PROC.
 */
export async function scanTcpSockets(opts: ScanTcpOptions): Promise<ScanTcpResult> {
  const procDir = opts.procDir ?? '/proc';
  const result: ScanTcpResult = { lines: 0, visited: 0, truncated: false };
  const budget = opts.maxLines ?? DEFAULT_MAX_SOCKET_LINES;
  for (const name of ['tcp', 'tcp6'] as const) {
    await scanFile(`${procDir}/net/${name}`, name === 'tcp6', opts, budget, result);
    if (result.truncated) break;
  }
  return result;
}

/** Every socket of the wanted states, collected (for small tables and tests). */
export async function listTcpSockets(opts: Omit<ScanTcpOptions, 'visit'> = {}): Promise<{ sockets: TcpSocket[]; truncated: boolean }> {
  const sockets: TcpSocket[] = [];
  const { truncated } = await scanTcpSockets({ ...opts, visit: (s) => sockets.push(s) });
  return { sockets, truncated };
}

async function scanFile(file: string, optional: boolean, opts: ScanTcpOptions, budget: number, result: ScanTcpResult): Promise<void> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new FarmlbError('FARMLB_E_NET_PROC', { file, detail: (err as Error).message }, { cause: err });
  }
  const line = (text: string): boolean => {
    if (text.length === 0) return true;
    const stateNumber = lineStateNumber(text);
    if (stateNumber === undefined) return true; // the header
    if (result.lines >= budget) {
      result.truncated = true;
      return false;
    }
    result.lines++;
    if (opts.states && !opts.states.has(stateNumber)) return true;
    const socket = parseTcpLine(text);
    if (!socket) return true;
    result.visited++;
    opts.visit(socket);
    return true;
  };
  try {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    let rest = '';
    for (;;) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await handle.read(buf, 0, buf.length, null));
      } catch (err) {
        throw new FarmlbError('FARMLB_E_NET_PROC', { file, detail: (err as Error).message }, { cause: err });
      }
      if (bytesRead === 0) break;
      const lines = (rest + buf.toString('latin1', 0, bytesRead)).split('\n');
      rest = lines.pop()!;
      for (const text of lines) if (!line(text)) return;
    }
    line(rest);
  } finally {
    await handle.close();
  }
}

// ---- NETLINK_SOCK_DIAG -----------------------------------------------------------------

/** A local address the kernel filters on (wire order: 4 or 16 bytes). */
export interface LocalAddr {
  family: 4 | 6;
  addr: Uint8Array;
}

/** native/sockdiag.h: kDiagRecordBytes, kDiagLocalBytes. */
const DIAG_RECORD_BYTES = 40;
const DIAG_LOCAL_BYTES = 20;

export interface DiagTcpOptions {
  /** Called for every socket the kernel sent. */
  visit(socket: TcpSocket): void;
  /** Kernel state numbers wanted (default: all). */
  states?: ReadonlySet<number>;
  /** Only sockets whose local address is one of these (filtered in the kernel); absent: every socket. */
  locals?: readonly LocalAddr[];
  /** The addon (src/addon/native.ts loadNative()). */
  native: Pick<Native, 'tcpDiag'>;
}

export interface DiagTcpResult {
  /** Sockets the kernel sent (every one matched the filter). */
  lines: number;
  visited: number;
  /** Never: the kernel sends every match (kept for the same shape as scanTcpSockets'). */
  truncated: false;
  /** NLM_F_DUMP_INTR: sockets came and went during the dump; one may be missing or twice (as with /proc). */
  interrupted: boolean;
}

/** The `locals` argument of tcpDiag: one 20-byte record per address. */
export function encodeLocals(locals: readonly LocalAddr[]): Buffer {
  const buf = Buffer.alloc(locals.length * DIAG_LOCAL_BYTES);
  locals.forEach((l, i) => {
    buf[i * DIAG_LOCAL_BYTES] = l.family;
    buf.set(l.addr.subarray(0, l.family === 4 ? 4 : 16), i * DIAG_LOCAL_BYTES + 4);
  });
  return buf;
}

/** One record of tcpDiag's result → a socket (undefined for an unknown state). */
export function decodeDiagRecord(rec: Uint8Array): TcpSocket | undefined {
  const family = rec[0] === 6 ? 6 : 4;
  const n = family === 4 ? 4 : 16;
  const stateNumber = rec[1]!;
  const state = TCP_STATES[stateNumber as TcpStateNumber];
  if (!state) return undefined;
  return {
    family,
    localAddr: rec.slice(8, 8 + n),
    localPort: (rec[2]! << 8) | rec[3]!,
    remoteAddr: rec.slice(24, 24 + n),
    remotePort: (rec[4]! << 8) | rec[5]!,
    state,
    stateNumber,
  };
}

/**
 * The TCP sockets of this namespace through sock_diag, filtered in the kernel to `locals`.
 * Errors: FARMLB_E_NET_SOCK_DIAG (no inet_diag in this kernel), FARMLB_E_BPF_ADDON_MISSING.
 */
export async function diagTcpSockets(opts: DiagTcpOptions): Promise<DiagTcpResult> {
  let mask = 0;
  for (const n of opts.states ?? Object.keys(TCP_STATES).map(Number)) mask |= 1 << n;
  const { records, count, interrupted } = await opts.native.tcpDiag(mask >>> 0, encodeLocals(opts.locals ?? []));
  let visited = 0;
  for (let i = 0; i < count; i++) {
    const socket = decodeDiagRecord(records.subarray(i * DIAG_RECORD_BYTES, (i + 1) * DIAG_RECORD_BYTES));
    if (!socket || (opts.states && !opts.states.has(socket.stateNumber))) continue;
    visited++;
    opts.visit(socket);
  }
  return { lines: count, visited, truncated: false, interrupted };
}
