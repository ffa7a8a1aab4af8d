// Thin wrappers over iproute2 (`ip -j`): interface lookup and VIP aliases. The daemon
// runs as root in the node's network namespace; these calls act there.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { isIPv4 } from 'node:net';
import { FarmlbError } from '../errors.js';

const exec = promisify(execFile);

export interface IfAddr {
  ifname: string;
  family: 4 | 6;
  local: string;
  prefixlen: number;
}

interface IpJsonLink {
  ifname: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** Runs `ip ARGS` and returns its stdout; a failure is FARMLB_E_NET_IP with ip's stderr. */
export async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await exec('ip', args, { timeout: 10_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new FarmlbError('FARMLB_E_NET_IP', { command: `ip ${args.join(' ')}`, detail: (e.stderr ?? e.message).trim() }, { cause: err });
  }
}

export async function listAddrs(): Promise<IfAddr[]> {
  const links = JSON.parse(await ip(['-j', 'addr', 'show'])) as IpJsonLink[];
  return links.flatMap((l) => (l.addr_info ?? []).map((a) => ({
    ifname: l.ifname,
    family: a.family === 'inet' ? 4 as const : 6 as const,
    local: a.local,
    prefixlen: a.prefixlen,
  })));
}

function toBigInt(addr: string, family: 4 | 6): bigint {
  if (family === 4) return addr.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  const [head, tail] = addr.includes('::') ? addr.split('::') as [string, string] : [addr, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n);
}

export function sameSubnet(a: string, b: string, family: 4 | 6, prefixlen: number): boolean {
  const bits = family === 4 ? 32 : 128;
  const shift = BigInt(bits - prefixlen);
  return toBigInt(a, family) >> shift === toBigInt(b, family) >> shift;
}

/** The interface whose own (non-VIP) address shares a subnet with the VIP, with that prefix. */
export function findInterfaceForVip(addrs: IfAddr[], vip: string, family: 4 | 6): IfAddr | undefined {
  return addrs.find((a) => a.family === family && a.local !== vip && a.prefixlen < (family === 4 ? 32 : 128) &&
    sameSubnet(a.local, vip, family, a.prefixlen));
}

export async function addAlias(ifname: string, vip: string, prefixlen: number): Promise<void> {
  const args = ['addr', 'replace', `${vip}/${prefixlen}`, 'dev', ifname];
  // Every node holds the same IPv6 VIP: duplicate address detection would mark it
  // dadfailed (LAB-NOTES), so it is added without DAD.
  if (!isIPv4(vip)) args.push('nodad');
  await ip(args);
}

export async function removeAlias(ifname: string, vip: string, prefixlen: number): Promise<void> {
  try {
    await ip(['addr', 'del', `${vip}/${prefixlen}`, 'dev', ifname]);
  } catch (err) {
    // Already gone (removed by hand, or the interface vanished): nothing to undo.
    if (/Cannot assign|not exist|Cannot find device/i.test(String((err as FarmlbError).details?.detail))) return;
    throw err;
  }
}

/** The link's kind ("veth", "bridge", …) or undefined for a physical device. */
export async function linkKind(ifname: string): Promise<string | undefined> {
  const links = JSON.parse(await ip(['-d', '-j', 'link', 'show', 'dev', ifname])) as { linkinfo?: { info_kind?: string } }[];
  return links[0]?.linkinfo?.info_kind;
}
