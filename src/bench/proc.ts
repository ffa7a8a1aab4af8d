// Process and counter plumbing for the veth benchmark: run a command, read a link's
// counters, and read CPU time from /proc — the measurements are counter deltas over a
// window, so each reader returns a plain snapshot.

import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export async function run(cmd: string, args: string[], timeoutMs = 15_000): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    // A batch command line can be kilobytes long: the start of it says which one failed.
    const line = `${cmd} ${args.join(' ')}`;
    throw new Error(`${line.length > 300 ? `${line.slice(0, 300)}…` : line}: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
}

export async function linkStats(dev: string): Promise<{ rxPackets: number; rxDropped: number; mac: string }> {
  const out = await run('ip', ['-s', '-j', 'link', 'show', 'dev', dev]);
  const link = (JSON.parse(out) as { address?: string; stats64?: { rx?: { packets?: number; dropped?: number } } }[])[0];
  if (!link?.stats64?.rx || !link.address) throw new Error(`ip -s -j link show dev ${dev}: no rx statistics`);
  return { rxPackets: link.stats64.rx.packets ?? 0, rxDropped: link.stats64.rx.dropped ?? 0, mac: link.address };
}

let clkTck: number | undefined;

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat. */
export function clockTicksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** utime + stime of a process, in ticks; 0 when it is gone. */
export function processTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; fields after its ')' are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** Direct children of pid (all its threads). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // the process exited meanwhile
  }
  return out;
}

/** pid and every descendant. */
export function processTree(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length && all.length < 64; i++) all.push(...childrenOf(all[i]!));
  return all;
}

/** Busy and total ticks of one CPU from /proc/stat (busy = everything but idle and iowait). */
export function cpuTicks(cpu: number): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`cpu${cpu} `));
  if (!line) throw new Error(`cpu${cpu} not in /proc/stat`);
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0); // user..steal; guest is inside user
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** Counters of /proc/net/snmp for a protocol (the reading process's network namespace). */
export function snmpCounters(proto: 'Udp' | 'Ip'): Record<string, number> {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith(`${proto}:`));
  const names = lines[0]?.split(/\s+/).slice(1) ?? [];
  const values = lines[1]?.split(/\s+/).slice(1).map(Number) ?? [];
  return Object.fromEntries(names.map((n, i) => [n, values[i] ?? 0]));
}

/** A command in a lab namespace (network namespace only, as the lab runs daemons). */
export function inNs(ns: string, cmd: string, args: string[], timeoutMs = 15_000): Promise<string> {
  return run('nsenter', [`--net=/run/netns/${ns}`, '--', cmd, ...args], timeoutMs);
}
