// Address allow-lists ("10.0.0.0/8, ::1, 192.0.2.7"): which clients may read the health
// server's detail (<farmlb health_detail>, docs/security.md, "Health and metrics"): parsed
// and checked with the configuration, used by the health server.

import { isIP } from 'node:net';
import { ipBytes, parseIp, type IpAddr } from './values.js';

export interface Cidr {
  addr: IpAddr;
  prefixLen: number;
}

/** One "addr" or "addr/len"; undefined when it is neither. */
export function parseCidr(text: string): Cidr | undefined {
  const [a, len, extra] = text.split('/');
  if (extra !== undefined || a === undefined) return undefined;
  const ip = parseIp(a);
  if (!ip.ok) return undefined;
  const max = ip.value.family === 4 ? 32 : 128;
  if (len === undefined) return { addr: ip.value, prefixLen: max };
  if (!/^\d{1,3}$/.test(len) || Number(len) > max) return undefined;
  return { addr: ip.value, prefixLen: Number(len) };
}

/** The IPv4 address inside ::ffff:a.b.c.d (what a dual-stack socket reports), else the address. */
export function unmapped(addr: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  return m ? m[1]! : addr;
}

export function cidrContains(c: Cidr, addr: string): boolean {
  const a = unmapped(addr);
  const family = isIP(a);
  if (family !== c.addr.family) return false;
  const ip = parseIp(a);
  if (!ip.ok) return false;
  const x = ipBytes(ip.value);
  const y = ipBytes(c.addr);
  let bits = c.prefixLen;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((x[i]! & mask) !== (y[i]! & mask)) return false;
  }
  return true;
}

/** Loopback, where `farmlb` and local monitoring run. */
export const LOOPBACK: readonly Cidr[] = [parseCidr('127.0.0.1')!, parseCidr('::1')!];
