// Parsers for the attribute values of userconfig.xml and cluster.xml. Each returns the
// parsed value or a short reason (a string) the caller turns into a located error, so the
// rules for "what is a valid X" live in one place and are testable without XML.

import { isIP } from 'node:net';
import type { Family } from './types.js';

export type Parsed<T> = { ok: true; value: T } | { ok: false; why: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(why: string): Parsed<T> => ({ ok: false, why });

/** SafeKit booleans are "on" / "off" (seed 001 §13.6.5). */
export function parseOnOff(text: string): Parsed<boolean> {
  if (text === 'on') return ok(true);
  if (text === 'off') return ok(false);
  return bad('"on" or "off"');
}

const TIME_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration as SafeKit 8.2.5 writes it (seed 001 §13.1 "time-based attributes"): a number
 * with an optional unit ms, s, m, h or d. A bare number keeps the attribute's historical
 * unit (seconds for arpinterval, milliseconds for pulse), so old files mean what they meant.
 */
export function parseDurationMs(text: string, bareUnit: 'ms' | 's'): Parsed<number> {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) return bad('a number with an optional unit ms, s, m, h or d');
  const ms = Number(m[1]) * TIME_UNITS_MS[m[2] ?? bareUnit]!;
  if (!Number.isFinite(ms) || !Number.isInteger(ms)) return bad('a whole number of milliseconds');
  if (ms > 0x7fffffff) return bad('at most 24 days');
  return ok(ms);
}

/** A non-negative decimal integer without sign, exponent or fraction. */
export function parseUint(text: string, max: number): Parsed<number> {
  if (!/^\d+$/.test(text)) return bad(`a whole number from 0 to ${max}`);
  const n = Number(text);
  if (n > max) return bad(`a whole number from 0 to ${max}`);
  return ok(n);
}

/** 0 .. 2^32-1, decimal or 0x hex: the jhash seed nftables also takes. */
export function parseUint32(text: string): Parsed<number> {
  const valid = /^0x[0-9a-fA-F]{1,8}$/.test(text) || (/^\d{1,10}$/.test(text) && Number(text) <= 0xffffffff);
  return valid ? ok(Number(text)) : bad('a number from 0 to 4294967295, decimal or 0x hex');
}

export function parsePortNumber(text: string): Parsed<number> {
  if (!/^\d{1,5}$/.test(text)) return bad('a port from 1 to 65535');
  const n = Number(text);
  return n >= 1 && n <= 65535 ? ok(n) : bad('a port from 1 to 65535');
}

export interface IpAddr {
  /** IPv4 dotted quad or IPv6 in RFC 5952 form. */
  canonical: string;
  family: Family;
}

/** What a string that is not an address looks like: a DNS name, or just garbage. */
export function looksLikeHostname(text: string): boolean {
  return /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/.test(text) &&
    !/^[\d.]+$/.test(text);
}

export function parseIp(text: string): Parsed<IpAddr> {
  // A zone index (fe80::1%eth0) names one node's interface: it cannot be a farm-wide VIP.
  if (text.includes('%')) return bad('an address without a zone index');
  const kind = isIP(text);
  if (kind === 4) return ok({ canonical: text, family: 4 });
  if (kind === 6) return ok({ canonical: canonicalIpv6(text), family: 6 });
  return bad('an IPv4 or IPv6 address');
}

/** The 16 bytes of an IPv6 address node:net accepted (embedded IPv4 tail allowed). */
export function ipv6Bytes(text: string): Uint8Array {
  let s = text.toLowerCase();
  const groups: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  let tail: number[] = [];
  if (v4) {
    const o = v4[1]!.split('.').map(Number);
    tail = [(o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!];
    s = s.slice(0, -v4[1]!.length);
    if (s.endsWith(':') && !s.endsWith('::')) s = s.slice(0, -1);
  }
  const parseList = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const dbl = s.indexOf('::');
  if (dbl >= 0) {
    const head = parseList(s.slice(0, dbl));
    const rest = parseList(s.slice(dbl + 2));
    const fill = 8 - head.length - rest.length - tail.length;
    groups.push(...head, ...Array<number>(fill).fill(0), ...rest, ...tail);
  } else {
    groups.push(...parseList(s), ...tail);
  }
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => { bytes[2 * i] = g >> 8; bytes[2 * i + 1] = g & 0xff; });
  return bytes;
}

/**
 * RFC 5952 §4: lower-case hex, no leading zeros, the longest run (first on a tie) of two or
 * more zero groups written "::". IPv4-mapped addresses keep the dotted tail (§5).
 */
export function canonicalIpv6(text: string): string {
  const b = ipv6Bytes(text);
  const groups = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Network-order bytes of a canonical address (4 or 16). */
export function ipBytes(addr: IpAddr): Uint8Array {
  return addr.family === 4 ? Uint8Array.from(addr.canonical.split('.').map(Number)) : ipv6Bytes(addr.canonical);
}

/** Why an address cannot be a VIP that every farm node holds; undefined when it can. */
export function vipAddressProblem(addr: IpAddr): string | undefined {
  const b = ipBytes(addr);
  if (addr.family === 4) {
    if (b[0] === 0) return 'a 0.0.0.0/8 address is not routable';
    if (b[0] === 127) return 'a loopback address never reaches the farm';
    if (b[0] === 169 && b[1] === 254) return 'a link-local address (169.254.0.0/16) is per link and cannot be a farm VIP';
    if (b[0]! >= 224) return 'a multicast, reserved or broadcast address cannot be a VIP';
    return undefined;
  }
  if (b.every((x) => x === 0)) return 'the unspecified address :: cannot be a VIP';
  if (b.slice(0, 15).every((x) => x === 0) && b[15] === 1) return 'the loopback address ::1 never reaches the farm';
  // ::ffff:a.b.c.d is an IPv4 address to the kernel's sockets but an IPv6 one on the wire
  // (neighbour discovery, the maps): write the IPv4 VIP instead. ::a.b.c.d is deprecated (RFC 4291).
  if (b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return 'an IPv4-mapped address (::ffff:a.b.c.d) is not a VIP: write the IPv4 address';
  if (b.slice(0, 12).every((x) => x === 0)) return 'an IPv4-compatible address (::a.b.c.d) is deprecated and cannot be a VIP';
  if (b[0] === 0xff) return 'a multicast address cannot be a VIP';
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return 'a link-local address is per interface and cannot be a farm VIP';
  return undefined;
}

/**
 * Why an IPv4 VIP cannot have this prefix length: the network or broadcast address of its
 * own subnet (only with /30 and wider; /31 and /32 have neither). undefined when it can.
 */
export function vipPrefixProblem(addr: IpAddr, prefixLen: number): string | undefined {
  if (addr.family !== 4 || prefixLen > 30) return undefined;
  const b = ipBytes(addr);
  const n = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  const host = prefixLen === 0 ? 0xffffffff : (2 ** (32 - prefixLen) - 1);
  if ((n & host) >>> 0 === 0) return `${addr.canonical} is the network address of its /${prefixLen}`;
  if ((n & host) >>> 0 === host) return `${addr.canonical} is the broadcast address of its /${prefixLen}`;
  return undefined;
}

/** A netmask for an IPv4 VIP: dotted (255.255.255.0) or a prefix length (24). */
export function parseNetmask(text: string): Parsed<number> {
  if (/^\d{1,2}$/.test(text)) {
    const len = Number(text);
    return len >= 1 && len <= 32 ? ok(len) : bad('a prefix length from 1 to 32');
  }
  if (isIP(text) !== 4) return bad('a dotted netmask such as 255.255.255.0 or a prefix length');
  const bits = text.split('.').map((o) => Number(o).toString(2).padStart(8, '0')).join('');
  if (!/^1+0*$/.test(bits)) return bad('its one-bits are not contiguous');
  return ok(bits.indexOf('0') === -1 ? 32 : bits.indexOf('0'));
}

/** A unicast MAC written as six hex bytes (":" or "-" separated); returned lower-case with ":". */
export function parseUnicastMac(text: string): Parsed<string> {
  const parts = text.split(/[:-]/);
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{1,2}$/.test(p))) return bad('it is not six hex bytes');
  const bytes = parts.map((p) => parseInt(p, 16));
  if (bytes[0]! & 1) return bad('the first byte has the multicast bit set');
  if (bytes.every((x) => x === 0)) return bad('00:00:00:00:00:00 is not an address');
  return ok(bytes.map((x) => x.toString(16).padStart(2, '0')).join(':'));
}

/** SafeKit's default VMAC: 5a:fe + the VIP's four bytes (the last four of an IPv6 VIP). */
export function defaultVmac(firstVip: IpAddr): string {
  const b = ipBytes(firstVip);
  const last4 = Array.from(b.slice(b.length - 4));
  return [0x5a, 0xfe, ...last4].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
