// Part 2 of the benchmark: the receive-side rate of VIP traffic this node does not own, on a
// veth pair between two namespaces, with four receive filters in turn. Not a target: on
// veth every frame is an skb built by the sending core before any filter sees it, so the
// sending core bounds every variant (LAB-NOTES.md); the numbers are for the record.
//
// This process must run inside the receiving namespace (scripts/bench starts it there with
// nsenter): XDP attaches by ifindex, nft and `ip` act on the caller's namespace, and
// /proc/net/snmp is per namespace. trafgen runs in the sending namespace, pinned to CPU 0.
//
// Rate = delta of the receiving veth's rx_packets (`ip -s -j link`) over the window. For
// veth that counter is taken when a frame enters the receiver (before XDP or the ingress
// hook), so it counts every frame the filter had to look at; each variant also reads its
// own counter (farmlb's reason counters, the socket layer) as a cross-check.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bpfObjectPath, loadNative, type Native } from '../addon/native.js';
import { addrBytes16 } from '../net/frames.js';
import { CriterionId, GROUP_NONE, NBUCKETS, type DataplaneTables } from '../dataplane/types.js';
import { XdpDataplane } from '../dataplane/xdp.js';
import { clockTicksPerSecond, cpuTicks, linkStats, processTicks, processTree, run, snmpCounters } from './proc.js';
import { sleep } from './stats.js';

export const BENCH_VIP = '10.99.0.100';
export const BENCH_PORT = 9;
const HASH_SEED = 0x6661726d;
const SELF_NODE = 1;
const OTHER_NODE = 0;
const NFT_TABLE = 'flbbench';
const GENERATOR_CPU = 0;

export interface VethOptions {
  /** Receiving interface, in this process's namespace. */
  rxDev: string;
  /** Sending namespace (flb-bench-*) and its interface. */
  txNs: string;
  txDev: string;
  windowMs: number;
  /** Before the window opens: trafgen's ring fill and start-up. */
  warmupMs?: number;
  native?: Native;
  /** Progress lines (to stderr). */
  progress?: (line: string) => void;
}

export type VariantId = 'farmlb_xdp' | 'nft_ingress_jhash' | 'xdp_drop' | 'no_filter';

export interface VethRow {
  id: VariantId;
  label: string;
  /** Receive rate over the window: delta rx_packets / seconds. */
  pps: number;
  ratioToXdpDrop: number;
  ratioToNoFilter: number;
  /** trafgen's utime+stime over the window, % of one core. */
  generatorCpuPct: number;
  /** CPU 0 busy (user+system+softirq+…) over the window, %: the sending core. */
  generatorCoreBusyPct: number;
  /** What the variant's own counter says about the same window. */
  check: string;
}

export interface VethResult {
  windowMs: number;
  frameBytes: number;
  generator: string;
  rows: VethRow[];
}

interface Variant {
  id: VariantId;
  label: string;
  setup(): Promise<void>;
  /** A counter snapshot for the cross-check. */
  snapshot(): Promise<Record<string, number>>;
  describe(before: Record<string, number>, after: Record<string, number>, rxDelta: number): string;
  teardown(): Promise<void>;
}

// 60-byte frames: random source address and port (so every bucket is hit), fixed VIP:port.
function trafgenConfig(dstMac: string): string {
  return `{
  eth(da=${dstMac}, type=0x0800),
  ipv4(saddr=drnd(), daddr=${BENCH_VIP}, ttl=64, proto=17),
  udp(sport=drnd(), dport=${BENCH_PORT}),
  fill(0x41, 18),
}
`;
}

function farmTables(): DataplaneTables {
  const vipEntry = (id: number, addr: string) => ({
    id,
    family: 4 as const,
    addr,
    addrBytes: addrBytes16(addr),
    icmpGroup: 0,
    arpGroup: GROUP_NONE,
    mode: 'vmac_invisible' as const,
  });
  return {
    hashSeed: HASH_SEED,
    selfNode: SELF_NODE,
    vmac: '5a:fe:0a:63:00:64',
    vips: [vipEntry(0, BENCH_VIP), vipEntry(1, '10.99.0.101')],
    rules: [
      { proto: 17, port: BENCH_PORT, vipId: 0, group: 0, criterion: CriterionId.Addr },
      { proto: 6, port: 80, vipId: 0, group: 1, criterion: CriterionId.Addr },
      { proto: 6, port: 80, vipId: 1, group: 1, criterion: CriterionId.Addr },
    ],
    // Group 0 (the benchmark's traffic) belongs entirely to another node.
    buckets: [Array<number>(NBUCKETS).fill(OTHER_NODE), Array.from({ length: NBUCKETS }, (_, b) => b % 2)],
    // vmac_invisible: no forwarding, so no node MACs are needed.
    nodeMacs: [null, null],
  };
}

function nftRuleset(rxDev: string): string {
  const seed = `seed 0x${HASH_SEED.toString(16)}`;
  // Owned buckets in a set: this node owns none of the traffic's group, so it stays empty
  // and the lookup misses for every packet, as farmlb's bucket table says "not mine".
  return `table netdev ${NFT_TABLE} {
  set owned { typeof jhash ip saddr mod 256 ${seed}; }
  chain ingress {
    type filter hook ingress device "${rxDev}" priority 0; policy accept;
    ether type ip ip daddr ${BENCH_VIP} udp dport ${BENCH_PORT} jhash ip saddr mod 256 ${seed} != @owned drop
  }
}
`;
}

function variants(opts: VethOptions, native: Native, dir: string): Variant[] {
  const ifindex = (): number => native.ifindex(opts.rxDev);
  let dp: XdpDataplane | undefined;
  let dropObj: Awaited<ReturnType<Native['openObject']>> | undefined;
  let sink: ChildProcess | undefined;
  const none = async (): Promise<Record<string, number>> => ({});

  return [
    {
      id: 'farmlb_xdp',
      label: 'farmlb XDP (native), no bucket owned',
      async setup() {
        dp = await XdpDataplane.open({ native });
        await dp.apply(farmTables());
        await dp.setLease(native.monotonicNs() + 3_600_000_000_000n);
        const { mode } = await dp.attach(opts.rxDev, 'native');
        if (mode !== 'native') throw new Error(`farmlb_xdp attached in ${mode} mode, not native`);
      },
      async snapshot() {
        const c = await dp!.reasonCounters();
        return { notOwned: Number(c.drop_not_owned.packets) };
      },
      describe(b, a, rx) {
        const n = a.notOwned! - b.notOwned!;
        return `farmlb drop_not_owned ${n} = ${pct(n, rx)} of rx`;
      },
      async teardown() {
        if (!dp) return;
        try {
          await dp.detach(opts.rxDev);
        } finally {
          await dp.close();
          dp = undefined;
        }
      },
    },
    {
      id: 'nft_ingress_jhash',
      label: 'nft netdev ingress, jhash mod 256 != @owned drop',
      async setup() {
        const file = join(dir, 'bench.nft');
        writeFileSync(file, nftRuleset(opts.rxDev));
        await run('nft', ['delete', 'table', 'netdev', NFT_TABLE]).catch(() => undefined);
        await run('nft', ['-f', file]);
      },
      snapshot: async () => snmpCounters('Ip'),
      describe(b, a, rx) {
        // Dropped at ingress: nothing may reach IP.
        const n = a.InReceives! - b.InReceives!;
        return `reached IP: ${n} = ${pct(n, rx)} of rx`;
      },
      async teardown() {
        await run('nft', ['delete', 'table', 'netdev', NFT_TABLE]).catch(() => undefined);
      },
    },
    {
      id: 'xdp_drop',
      label: 'XDP_DROP (native), unconditional',
      async setup() {
        dropObj = await native.openObject(bpfObjectPath('drop'));
        const { mode } = await native.xdpAttach(ifindex(), dropObj.programFd('farmlb_drop'), { mode: 'native' });
        if (mode !== 'native') throw new Error(`farmlb_drop attached in ${mode} mode, not native`);
      },
      snapshot: async () => snmpCounters('Ip'),
      describe(b, a, rx) {
        const n = a.InReceives! - b.InReceives!;
        return `reached IP: ${n} = ${pct(n, rx)} of rx`;
      },
      async teardown() {
        if (!dropObj) return;
        try {
          await native.xdpDetach(ifindex(), { expectedProgId: dropObj.programId('farmlb_drop') });
        } finally {
          dropObj.close();
          dropObj = undefined;
        }
      },
    },
    {
      id: 'no_filter',
      label: 'no filter (to a UDP socket that never reads)',
      async setup() {
        // A socket on the VIP's port gives the stack a reason to accept every datagram; it never
        // reads, so after its buffer fills the socket layer drops (RcvbufErrors) — the cheapest
        // end for a frame that went all the way up.
        const code = `import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('${BENCH_VIP}',${BENCH_PORT}))\nprint('ready',flush=True)\ntime.sleep(3600)\n`;
        sink = spawn('python3', ['-c', code], { stdio: ['ignore', 'pipe', 'inherit'] });
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('UDP sink did not start')), 5_000);
          sink!.stdout!.once('data', () => {
            clearTimeout(timer);
            resolve();
          });
          sink!.once('exit', (code) => reject(new Error(`UDP sink exited with ${code}`)));
        });
      },
      snapshot: async () => snmpCounters('Udp'),
      describe(b, a, rx) {
        const got = a.InDatagrams! - b.InDatagrams!;
        const full = a.RcvbufErrors! - b.RcvbufErrors!;
        return `to the socket: ${got + full} = ${pct(got + full, rx)} of rx (${full} dropped, buffer full)`;
      },
      async teardown() {
        if (sink && sink.exitCode === null) {
          const exited = new Promise((r) => sink!.once('exit', r));
          sink.kill('SIGKILL');
          await exited;
        }
        sink = undefined;
      },
    },
  ];
}

function pct(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : 'n/a';
}

interface Window {
  pps: number;
  generatorCpuPct: number;
  generatorCoreBusyPct: number;
  before: Record<string, number>;
  after: Record<string, number>;
  rxDelta: number;
}

function startGenerator(opts: VethOptions, cfgFile: string): { child: ChildProcess; stderr: () => string } {
  // taskset pins the parent and -P 1 makes trafgen use one worker (on CPU 0): one sending core.
  // --no-sock-mem, --notouch-irq: leave the host's socket-memory sysctls and IRQ affinities alone.
  // detached: trafgen leads its own process group, so stopping it reaches its forked worker,
  // which does not exit when only the parent is signalled.
  const child = spawn(
    'nsenter',
    [`--net=/run/netns/${opts.txNs}`, '--', 'taskset', '-c', String(GENERATOR_CPU), 'trafgen', '-i', cfgFile, '-o', opts.txDev, '-P', '1', '--no-sock-mem', '--notouch-irq'],
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    if (err.length < 4096) err += d.toString();
  });
  return { child, stderr: () => err.trim() };
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

/** SIGINT to trafgen's process group (its exit statistics), SIGKILL after 3 s. */
async function stopGenerator(child: ChildProcess): Promise<void> {
  const pgid = child.pid;
  if (pgid === undefined) return;
  signalGroup(pgid, 'SIGINT');
  const deadline = Date.now() + 3_000;
  while (groupAlive(pgid) && Date.now() < deadline) await sleep(50);
  if (groupAlive(pgid)) signalGroup(pgid, 'SIGKILL');
  while (groupAlive(pgid) && Date.now() < deadline + 2_000) await sleep(50);
  child.stderr?.destroy();
}

async function measureWindow(opts: VethOptions, variant: Variant, cfgFile: string): Promise<Window> {
  const gen = startGenerator(opts, cfgFile);
  try {
    await sleep(opts.warmupMs ?? 700);
    if (gen.child.exitCode !== null) throw new Error(`trafgen exited early (${gen.child.exitCode}): ${gen.stderr()}`);
    const pids = processTree(gen.child.pid!);
    const ticks = (): number => pids.reduce((n, p) => n + processTicks(p), 0);

    const before = await variant.snapshot();
    const cpu0 = cpuTicks(GENERATOR_CPU);
    const ticks0 = ticks();
    const t0 = process.hrtime.bigint();
    const rx0 = (await linkStats(opts.rxDev)).rxPackets;
    await sleep(opts.windowMs);
    const rx1 = (await linkStats(opts.rxDev)).rxPackets;
    const t1 = process.hrtime.bigint();
    const ticks1 = ticks();
    const cpu1 = cpuTicks(GENERATOR_CPU);
    const after = await variant.snapshot();

    if (gen.child.exitCode !== null) throw new Error(`trafgen exited during the window (${gen.child.exitCode}): ${gen.stderr()}`);
    const seconds = Number(t1 - t0) / 1e9;
    return {
      pps: (rx1 - rx0) / seconds,
      generatorCpuPct: (100 * (ticks1 - ticks0)) / clockTicksPerSecond() / seconds,
      generatorCoreBusyPct: cpu1.total > cpu0.total ? (100 * (cpu1.busy - cpu0.busy)) / (cpu1.total - cpu0.total) : 0,
      before,
      after,
      rxDelta: rx1 - rx0,
    };
  } finally {
    await stopGenerator(gen.child);
  }
}

export async function measureVeth(opts: VethOptions): Promise<VethResult> {
  const native = opts.native ?? loadNative();
  const dir = mkdtempSync(join(tmpdir(), 'farmlb-bench-'));
  try {
    const { mac } = await linkStats(opts.rxDev);
    const cfgFile = join(dir, 'udp.trafgen');
    writeFileSync(cfgFile, trafgenConfig(mac));
    const measured: (Omit<VethRow, 'ratioToXdpDrop' | 'ratioToNoFilter'>)[] = [];
    for (const v of variants(opts, native, dir)) {
      opts.progress?.(`veth: ${v.label} (${opts.windowMs / 1000} s)`);
      try {
        await v.setup();
        const w = await measureWindow(opts, v, cfgFile);
        measured.push({
          id: v.id,
          label: v.label,
          pps: w.pps,
          generatorCpuPct: w.generatorCpuPct,
          generatorCoreBusyPct: w.generatorCoreBusyPct,
          check: v.describe(w.before, w.after, w.rxDelta),
        });
      } finally {
        await v.teardown();
      }
      // Let the receiver's queues drain before the next variant's window.
      await sleep(200);
    }
    const ppsOf = (id: VariantId): number => measured.find((r) => r.id === id)!.pps;
    const floor = ppsOf('xdp_drop');
    const stack = ppsOf('no_filter');
    return {
      windowMs: opts.windowMs,
      frameBytes: 60,
      generator: `trafgen -P 1 pinned to CPU ${GENERATOR_CPU} (taskset), PF_PACKET ring, qdisc bypass; random saddr/sport UDP to ${BENCH_VIP}:${BENCH_PORT}`,
      rows: measured.map((r) => ({ ...r, ratioToXdpDrop: r.pps / floor, ratioToNoFilter: r.pps / stack })),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
