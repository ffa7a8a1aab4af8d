// <errd><proc>: how many processes of a name run (SafeKit §13.10). Read from /proc — the
// name is /proc/PID/comm (what ps shows, 15 characters at most) or the file name of argv[0]
// (a program may rename its thread: Node.js's is "MainThread"), the arguments
// /proc/PID/cmdline after argv[0] — so no ps is forked every poll. A process that ends while
// it is read is simply not counted.

import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ProcConfig } from '../config/types.js';
import type { ProbeResult } from './resource.js';

export interface ProcessInfo {
  pid: number;
  name: string;
  /** The file name of argv[0] (what started it, e.g. "node"). */
  argv0: string;
  /** Arguments after argv[0], joined by spaces. */
  args: string;
}

/** Every process of the system (its pid namespace), with name and arguments. */
export async function listProcesses(procDir = '/proc'): Promise<ProcessInfo[]> {
  const pids = (await readdir(procDir)).filter((p) => /^\d+$/.test(p));
  const out = await Promise.all(pids.map(async (p): Promise<ProcessInfo | undefined> => {
    try {
      const [comm, cmdline] = await Promise.all([
        readFile(`${procDir}/${p}/comm`, 'utf8'),
        readFile(`${procDir}/${p}/cmdline`, 'utf8'),
      ]);
      const argv = cmdline.split('\0');
      return { pid: Number(p), name: comm.replace(/\n$/, ''), argv0: path.basename(argv[0] ?? ''), args: argv.slice(1).filter((x) => x !== '').join(' ') };
    } catch {
      return undefined;
    }
  }));
  return out.filter((x): x is ProcessInfo => x !== undefined);
}

export function matches(p: ProcConfig, info: ProcessInfo): boolean {
  const nameOk = p.nameRegex !== undefined
    ? new RegExp(p.nameRegex).test(info.name) || new RegExp(p.nameRegex).test(info.argv0)
    : info.name === p.name.slice(0, 15) || info.argv0 === p.name;
  return nameOk && (p.argRegex === undefined || new RegExp(p.argRegex).test(info.args));
}

/** The verdict for one <proc> over a process list: at least `atleast`, at most `atmost` (-1: any). */
export function procResult(p: ProcConfig, list: readonly ProcessInfo[]): ProbeResult {
  const n = list.filter((x) => matches(p, x)).length;
  const what = `${n} process${n === 1 ? '' : 'es'} ${p.nameRegex !== undefined ? `matching ${p.nameRegex}` : p.name}${p.argRegex !== undefined ? ` with arguments matching ${p.argRegex}` : ''}`;
  if (n < p.atleast) return { ok: false, detail: `${what} running, at least ${p.atleast} expected`, ...(n === 0 ? { refused: true } : {}) };
  if (p.atmost >= 0 && n > p.atmost) return { ok: false, detail: `${what} running, at most ${p.atmost} expected` };
  return { ok: true, detail: `${what} running` };
}
