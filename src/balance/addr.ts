// Textual IP addresses → wire-order bytes, the form the bucket hash and the VIP map key
// use. Pure (no DNS): the caller has a literal address.

import { isIPv4, isIPv6 } from 'node:net';

/** 4 bytes for IPv4, 16 for IPv6 (including IPv4-mapped forms); undefined if not a literal address. */
export function addrBytes(text: string): Uint8Array | undefined {
  if (isIPv4(text)) return Uint8Array.from(text.split('.').map(Number));
  if (!isIPv6(text)) return undefined;
  const zone = text.indexOf('%');
  let s = zone >= 0 ? text.slice(0, zone) : text;
  const tail: number[] = [];
  // An embedded IPv4 tail (::ffff:1.2.3.4) stands for the last two groups.
  const lastColon = s.lastIndexOf(':');
  const last = s.slice(lastColon + 1);
  if (isIPv4(last)) {
    tail.push(...last.split('.').map(Number));
    s = s.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = s.includes('::') ? s.split('::') as [string, string] : [s, undefined];
  const groups = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const words = rest === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  if (tail.length) out.set(tail, 12);
  return out;
}

/** The 16-byte VIP map form: IPv4 in the first 4 bytes, the rest zero. */
export function addrBytes16(text: string): Uint8Array | undefined {
  const b = addrBytes(text);
  if (!b) return undefined;
  const out = new Uint8Array(16);
  out.set(b);
  return out;
}

export function bytesToHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}
