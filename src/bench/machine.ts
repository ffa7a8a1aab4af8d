// The facts about the machine that explain the benchmark's numbers: the clocksource decides
// what bpf_ktime_get_ns() costs, the CPU and the Spectre v2 mitigation what every
// indirect call (the test-run loop, each helper reached through a retpoline) costs.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { bpfObjectPath, repoRoot } from '../addon/native.js';

export interface MachineFacts {
  /** ISO 8601, when the run started. */
  date: string;
  kernel: string;
  cpuModel: string;
  cpuCount: number;
  clocksource: string;
  /** /sys/devices/system/cpu/vulnerabilities/spectre_v2 */
  spectreV2: string;
  /** net.core.bpf_jit_enable (1 = JIT on) */
  bpfJit: string;
  /** 'hypervisor' flag in /proc/cpuinfo */
  virtualised: boolean;
  /** /proc/loadavg's first three fields when the run started. */
  loadAverage: string;
  /** Which farmlb_xdp was measured: git commit, whether bpf/ had uncommitted changes, object hash. */
  program: string;
}

function readTrimmed(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

function programIdentity(): string {
  let commit = 'no git';
  try {
    const git = (args: string[]): string => execFileSync('git', ['-C', repoRoot(), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    commit = `commit ${git(['rev-parse', '--short', 'HEAD'])}`;
    if (git(['status', '--porcelain', '--', 'bpf']) !== '') commit += ' + uncommitted changes in bpf/';
  } catch {
    // not a git checkout (an installed package): the object hash still identifies the program
  }
  let object = 'missing';
  try {
    object = createHash('sha256').update(readFileSync(bpfObjectPath())).digest('hex').slice(0, 12);
  } catch {
    // reported as missing; the per-packet part will fail with the addon's error
  }
  return `${commit}; farmlb.bpf.o sha256 ${object}`;
}

export function machineFacts(now = new Date()): MachineFacts {
  const cpuList = cpus();
  let virtualised = false;
  try {
    virtualised = /^flags\s*:.*\bhypervisor\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    // not Linux, or /proc unreadable: leave false
  }
  return {
    date: now.toISOString(),
    kernel: release(),
    cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
    cpuCount: cpuList.length,
    clocksource: readTrimmed('/sys/devices/system/clocksource/clocksource0/current_clocksource'),
    spectreV2: readTrimmed('/sys/devices/system/cpu/vulnerabilities/spectre_v2'),
    // Only the initial network namespace has this sysctl; scripts/bench reads it there
    // before starting the benchmark inside the receiving namespace.
    bpfJit: process.env.FARMLB_BENCH_BPF_JIT ?? readTrimmed('/proc/sys/net/core/bpf_jit_enable'),
    virtualised,
    loadAverage: readTrimmed('/proc/loadavg').split(' ').slice(0, 3).join(' '),
    program: programIdentity(),
  };
}
