// <run-dir>/netstate.json: the record of every change farmlb made to the node's network
// configuration, so that a run killed without cleanup (SIGKILL, OOM, a crash) is undone
// or adopted by the next one (docs/net.md, "Recovery"). Each change is recorded *before*
// it is made, so the record may list a change that never happened (undoing it is then a
// no-op) but never misses one. The file is replaced atomically (write a temporary file,
// then rename): a reader sees the old record or the new one, never half of one.

import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { FarmlbError } from '../errors.js';
import { isInterfaceName } from '../config/ifname.js';
import { isFarmlbSysctl, isSysctlValue } from './sysctl.js';

export const NETSTATE_VERSION = 1;

export interface RecordedAlias {
  ifname: string;
  addr: string;
  prefixlen: number;
}

export interface RecordedSysctl {
  /** Path under /proc/sys (src/net/sysctl.ts). */
  key: string;
  /** The value before farmlb first changed it; restored on stop. */
  original: string;
}

export interface RecordedXdp {
  ifname: string;
  /** The program farmlb attached (detached on stop only if it is still this one). */
  progId: number;
}

export interface NetState {
  version: typeof NETSTATE_VERSION;
  /** The daemon that wrote the record last (for the operator; never signalled). */
  pid: number;
  /** bpffs directories holding farmlb's pinned maps. */
  pinDirs: string[];
  xdp: RecordedXdp[];
  sysctls: RecordedSysctl[];
  /** Interfaces whose promiscuous flag farmlb turned on (it was off before). */
  promisc: string[];
  aliases: RecordedAlias[];
  /**
   * Interfaces holding farmlb's tc egress program (the IPv6 NS-source guard, docs/net.md).
   * Absent in records written before it existed: read as [].
   */
  egress: string[];
}

export function emptyNetState(): NetState {
  return { version: NETSTATE_VERSION, pid: process.pid, pinDirs: [], xdp: [], sysctls: [], promisc: [], aliases: [], egress: [] };
}

/** Nothing left to undo. */
export function isEmptyNetState(s: NetState): boolean {
  return s.pinDirs.length + s.xdp.length + s.sysctls.length + s.promisc.length + s.aliases.length + s.egress.length === 0;
}

export function netstateFile(runDir: string): string {
  return path.join(runDir, 'netstate.json');
}

function stateError(file: string, detail: string, cause?: unknown): FarmlbError {
  return new FarmlbError('FARMLB_E_NET_STATE', { file, detail }, cause === undefined ? {} : { cause });
}

/** The record a previous run left, or undefined when there is none. */
export async function readNetState(runDir: string): Promise<NetState | undefined> {
  const file = netstateFile(runDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw stateError(file, (err as Error).message, err);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw stateError(file, `not JSON: ${(err as Error).message}`, err);
  }
  return checkNetState(parsed, file);
}

// A record that does not have this shape is refused rather than half-used: guessing would
// risk treating farmlb's own settings as the originals to restore. It is input like any
// other (docs/security.md, "Persisted state"): sysctl keys only from the fixed list farmlb
// changes, interface names that are names, pin directories under bpffs.
function checkNetState(v: unknown, file: string): NetState {
  const o = v as Partial<NetState> | null;
  const isStr = (x: unknown): x is string => typeof x === 'string';
  const isIf = (x: unknown): x is string => isStr(x) && isInterfaceName(x);
  const isPinDir = (x: unknown): x is string => isStr(x) && /^\/sys\/fs\/bpf\/[A-Za-z0-9_./-]{1,200}$/.test(x) && !x.split('/').some((p) => p === '..' || p === '.');
  const ok =
    o !== null && typeof o === 'object' && o.version === NETSTATE_VERSION &&
    Array.isArray(o.pinDirs) && o.pinDirs.every(isPinDir) &&
    Array.isArray(o.xdp) && o.xdp.every((x) => isIf(x?.ifname) && Number.isInteger(x?.progId)) &&
    Array.isArray(o.sysctls) && o.sysctls.every((x) => isStr(x?.key) && isFarmlbSysctl(x.key) && isStr(x?.original) && isSysctlValue(x.original)) &&
    Array.isArray(o.promisc) && o.promisc.every(isIf) &&
    Array.isArray(o.aliases) && o.aliases.every((x) => isIf(x?.ifname) && isStr(x?.addr) && isIP(x.addr) !== 0 && Number.isInteger(x?.prefixlen) && x.prefixlen >= 0 && x.prefixlen <= 128) &&
    (o.egress === undefined || (Array.isArray(o.egress) && o.egress.every(isIf)));
  if (!ok) throw stateError(file, `not a version ${NETSTATE_VERSION} farmlb interface state record (or one naming a setting, interface or path farmlb never changes)`);
  return { ...(o as NetState), pid: Number.isInteger(o.pid) ? o.pid! : 0, egress: o.egress ?? [] };
}

export async function writeNetState(runDir: string, state: NetState): Promise<void> {
  const file = netstateFile(runDir);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await mkdir(runDir, { recursive: true, mode: 0o700 });
    await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw stateError(file, (err as Error).message, err);
  }
}

export async function removeNetState(runDir: string): Promise<void> {
  await rm(netstateFile(runDir), { force: true });
}
