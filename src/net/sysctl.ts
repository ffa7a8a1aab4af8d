// Interface sysctls farmlb sets while it serves a VIP, and plain read/write of
// /proc/sys. The keys are paths under /proc/sys ("net/ipv4/conf/eth0/arp_announce"), not
// dotted names: an interface name may itself hold a dot (eth0.100, a VLAN). /proc/sys/net
// is the network namespace of the process, so a daemon run with `nsenter --net` changes
// its own namespace only. Why each value: docs/net.md.

import { readFile, writeFile } from 'node:fs/promises';
import { FarmlbError } from '../errors.js';
import { isInterfaceName } from '../config/ifname.js';

export interface SysctlSetting {
  /** Path under /proc/sys. */
  key: string;
  value: string;
}

/** The conventional dotted name (a dot inside the interface name written as "/", as sysctl(8) does). */
export function sysctlName(key: string): string {
  return key.split('/').map((part) => part.replace(/\./g, '/')).join('.');
}

export function sysctlPath(key: string): string {
  return `/proc/sys/${key}`;
}

export async function readSysctl(key: string): Promise<string> {
  try {
    return (await readFile(sysctlPath(key), 'utf8')).trim();
  } catch (err) {
    throw new FarmlbError('FARMLB_E_NET_SYSCTL', { op: 'read', name: sysctlName(key), detail: (err as Error).message }, { cause: err });
  }
}

/**
 * Is `key` one farmlb ever changes (wantedSysctls: the fixed list, for a real interface
 * name)? Only these are written, so a tampered netstate.json cannot turn the restore at
 * start into a write of any file as root ("../../etc/…", docs/security.md).
 */
export function isFarmlbSysctl(key: string): boolean {
  const m = /^net\/(ipv4|ipv6)\/conf\/([^/]+)\/([a-z_]+)$/.exec(key);
  if (!m || !isInterfaceName(m[2]!)) return false;
  return m[1] === 'ipv4' ? m[3] === 'arp_announce' || m[3] === 'arp_notify' : m[3] === 'ndisc_notify';
}

/** A value farmlb writes or restores: a small integer, as every key of the list holds. */
export function isSysctlValue(value: string): boolean {
  return /^-?[0-9]{1,10}$/.test(value);
}

export async function writeSysctl(key: string, value: string): Promise<void> {
  if (!isFarmlbSysctl(key) || !isSysctlValue(value)) {
    throw new FarmlbError('FARMLB_E_NET_SYSCTL', { op: 'write', name: key.slice(0, 200), detail: 'not a setting farmlb changes (refused)' });
  }
  try {
    await writeFile(sysctlPath(key), `${value}\n`);
  } catch (err) {
    throw new FarmlbError('FARMLB_E_NET_SYSCTL', { op: 'write', name: sysctlName(key), detail: (err as Error).message }, { cause: err });
  }
}

/** True when the error says the key does not exist (the interface is gone, or has no IPv6). */
export function isMissingSysctl(err: unknown): boolean {
  return err instanceof FarmlbError && err.code === 'FARMLB_E_NET_SYSCTL' && /ENOENT/.test(String(err.details?.detail));
}

/**
 * What farmlb sets on an interface holding VIPs of the given families, in both VMAC modes.
 * None of these stops the kernel answering ARP/ND for the VIP — no sysctl can tell the VIP
 * from the node's own address on the same interface — the XDP program does (docs/net.md).
 */
export function wantedSysctls(ifname: string, families: readonly (4 | 6)[]): SysctlSetting[] {
  const out: SysctlSetting[] = [];
  if (families.includes(4)) {
    const conf = `net/ipv4/conf/${ifname}`;
    // The kernel's own ARP requests take the interface's primary address as sender, never
    // the VIP: a request "VIP is at <node MAC>" would repoint every client that hears it.
    out.push({ key: `${conf}/arp_announce`, value: '2' });
    // arp_notify=1 broadcasts a gratuitous ARP for every address (the VIP included, with the
    // node's MAC) when the link comes up or its MAC changes: the same repointing.
    out.push({ key: `${conf}/arp_notify`, value: '0' });
  }
  if (families.includes(6)) {
    // ndisc_notify=1 sends unsolicited NAs for every address (the VIP included) on link
    // events and when an address is added: IPv6's version of arp_notify.
    out.push({ key: `net/ipv6/conf/${ifname}/ndisc_notify`, value: '0' });
  }
  return out;
}
