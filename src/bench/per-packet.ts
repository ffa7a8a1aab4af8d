// Part 1 of the benchmark: what farmlb_xdp costs per packet, measured by the kernel through
// BPF_PROG_TEST_RUN (the addon runs it off the JS thread), against the cheapest program
// (farmlb_nop) measured the same way in the same run. The farm program gets realistic
// tables — three groups, five VIPs (IPv4 and IPv6), rules of all four specificities, buckets
// spread over three nodes, a valid lease — and one frame per path worth knowing.
//
// Rounds are interleaved (every case once per round) so that a slow moment of the VM
// disturbs one sample of every case rather than all samples of one case; the median of the
// rounds is reported. Each case is first run once and its verdict and reason checked, so
// a table mistake cannot make the benchmark time the wrong path.

import { bucketOf } from '../balance/hash.js';
import { bpfObjectPath, loadNative, type Native, type NativeObject } from '../addon/native.js';
import { addrBytes16, buildFrame, parseIp, TCP_ACK, TCP_SYN, type FrameSpec } from '../net/frames.js';
import { holdConnection, type HeldConnection } from './socket-holder.js';
import {
  CriterionId,
  GROUP_NONE,
  NBUCKETS,
  NODE_NONE,
  PORT_ANY,
  VIP_ANY,
  XDP_DROP,
  XDP_PASS,
  type CompiledRule,
  type CompiledVip,
  type DataplaneTables,
  type Reason,
} from '../dataplane/types.js';
import { MAX_GROUPS, MAX_RULES, VIP_INLINE_PORTS } from '../dataplane/abi.js';
import { XdpDataplane } from '../dataplane/xdp.js';
import { median } from './stats.js';

const SELF_NODE = 1;
const NODES = 3;
const HASH_SEED = 0x6661726d;

export interface PerPacketOptions {
  /** Repetitions per BPF_PROG_TEST_RUN call. */
  repeat: number;
  /** Calls per case; the median is reported. */
  rounds: number;
  native?: Native;
}

export type CaseId =
  | 'nop'
  | 'non_vip_v4_udp'
  | 'owned_v4_tcp'
  | 'owned_v4_tcp_vmac'
  | 'not_owned_v4_tcp'
  | 'vip_no_rule_v4_udp'
  | 'owned_v6_tcp'
  | 'handover_owner_syn'
  | 'handover_owner_miss'
  | 'handover_prev_held'
  | 'max_owned_v4_inline'
  | 'max_owned_v4_overflow'
  | 'drop';

export interface PerPacketRow {
  id: CaseId;
  label: string;
  program: 'farmlb_nop' | 'farmlb_xdp' | 'farmlb_drop';
  verdict: 'XDP_PASS' | 'XDP_DROP';
  /** farmlb_xdp's reason for the frame (checked before timing). */
  reason?: Reason;
  frameBytes: number;
  /** Median over the rounds, kernel-measured ns per repetition. */
  nsPerPacket: number;
  samples: number[];
  /** nsPerPacket − nop's nsPerPacket. */
  minusNopNs: number;
  /** nsPerPacket / nop's nsPerPacket. */
  ratioToNop: number;
  /** The budget for farm − nop on this path, when it sets one. */
  targetNs?: number;
  targetMet?: boolean;
}

export interface DerivedCost {
  /** "a − b" in case ids. */
  formula: string;
  what: string;
  ns: number;
}

export interface PerPacketResult {
  repeat: number;
  rounds: number;
  rows: PerPacketRow[];
  /** Costs read off differences between rows: what each step of the path adds. */
  derived: DerivedCost[];
  tables: { groups: number; vips: number; rules: number; nodes: number; selfNode: number };
}

// ---- tables ---------------------------------------------------------------------------

function vip(id: number, addr: string, icmpGroup: number): CompiledVip {
  // vmac_invisible with no ARP rule: the paths measured here are TCP/UDP only.
  return { id, family: parseIp(addr).family, addr, addrBytes: addrBytes16(addr), icmpGroup, arpGroup: GROUP_NONE, mode: 'vmac_invisible' };
}

function rule(proto: 6 | 17, port: number, vipId: number, group: number, criterion: CriterionId): CompiledRule {
  return { proto, port, vipId, group, criterion };
}

const VIP_WEB4 = '10.0.0.100';
const VMAC = '5a:fe:0a:00:00:64';
/** BPF_PROG_TEST_RUN gives every frame the loopback device (ifindex 1) as ingress. */
const TEST_RUN_IFINDEX = 1;
const IFACE_MAC = '02:00:00:00:00:aa';
const VIP_WEB6 = '2001:db8::100';
const NON_VIP4 = '10.0.0.1';

/** A farm as userconfig.xml would give it: web, DNS, and a catch-all group. */
export function benchTables(): DataplaneTables {
  const vips = [
    vip(0, VIP_WEB4, 0),
    vip(1, '10.0.0.101', 0),
    vip(2, '10.0.0.102', 2),
    vip(3, VIP_WEB6, 0),
    vip(4, '2001:db8::101', 2),
  ];
  const rules = [
    // group 0 "web": exact (vip, port) rules on both web VIPs, by source address
    rule(6, 80, 0, 0, CriterionId.Addr),
    rule(6, 443, 0, 0, CriterionId.Addr),
    rule(6, 80, 3, 0, CriterionId.Addr),
    rule(6, 443, 3, 0, CriterionId.Addr),
    rule(6, 80, 1, 0, CriterionId.Addr),
    // group 1 "dns": (*, port), by source port
    rule(17, 53, VIP_ANY, 1, CriterionId.Port),
    rule(6, 53, VIP_ANY, 1, CriterionId.Port),
    // group 2 "other": (vip, *), (*, port) and (*, *) catch-alls; no UDP catch-all, so
    // UDP to a port no rule names is "VIP, no rule"
    rule(6, PORT_ANY, 2, 2, CriterionId.Addr),
    rule(6, PORT_ANY, 4, 2, CriterionId.Addr),
    rule(6, 8443, VIP_ANY, 2, CriterionId.Addr),
    rule(6, PORT_ANY, VIP_ANY, 2, CriterionId.Addr),
  ];
  // SafeKit's static spread: bucket b to node b mod 3 in every group.
  const row = Array.from({ length: NBUCKETS }, (_, b) => b % NODES);
  return {
    hashSeed: HASH_SEED,
    selfNode: SELF_NODE,
    vmac: VMAC,
    vips,
    rules,
    buckets: [row, [...row], [...row]],
    // Only vmac_directed forwards to a node's MAC; these VIPs are vmac_invisible.
    nodeMacs: Array<string | null>(NODES).fill(null),
  };
}

const VIP_MAX4 = '10.0.1.100';
/** Ports of the configured-maximum table: MAX_RULES (vip, port) rules on one VIP. */
const MAX_TABLE_FIRST_PORT = 1000;

/**
 * The rule lookup at the configured maximum: 16 groups and 256 rules, all (vip, port) rules
 * of one VIP spread over the groups. The descriptor keeps the first VIP_INLINE_PORTS ports
 * inline; the others are "overflow" ports the program finds in the farmlb_rules hash map.
 */
export function maxTables(): DataplaneTables {
  const rules = Array.from({ length: MAX_RULES }, (_, i) => rule(6, MAX_TABLE_FIRST_PORT + i, 0, i % MAX_GROUPS, CriterionId.Addr));
  const row = Array.from({ length: NBUCKETS }, (_, b) => b % NODES);
  return {
    hashSeed: HASH_SEED,
    selfNode: SELF_NODE,
    vmac: VMAC,
    vips: [vip(0, VIP_MAX4, 0)],
    rules,
    buckets: Array.from({ length: MAX_GROUPS }, () => [...row]),
    nodeMacs: Array<string | null>(NODES).fill(null),
  };
}

/** The first source address of the form prefix+n whose bucket is (or is not) this node's. */
function sourceFor(tables: DataplaneTables, owned: boolean, make: (n: number) => string): string {
  const row = tables.buckets[0]!;
  for (let n = 1; n < 10_000; n++) {
    const addr = make(n);
    const isOwned = row[bucketOf(parseIp(addr).bytes, tables.hashSeed)] === tables.selfNode;
    if (isOwned === owned) return addr;
  }
  throw new Error(`no ${owned ? 'owned' : 'not-owned'} source address found`);
}

const v4 = (n: number): string => `198.51.${(n >> 8) & 0xff}.${n & 0xff}`;
const v6 = (n: number): string => `2001:db8:ffff::${n.toString(16)}`;

interface Case {
  id: CaseId;
  label: string;
  program: PerPacketRow['program'];
  frame: Uint8Array;
  verdict: number;
  reason?: Reason;
  targetNs?: number;
  /** Run in this namespace (its sockets are what the handover lookup finds). */
  netns?: string;
  /** Run on the data plane holding maxTables() instead of benchTables(). */
  maxTable?: boolean;
}

/**
 * Buckets in handover (docs/datapath.md §12), none of them the bucket of the plain owned
 * case: `held`'s bucket is being handed over by this node (it is the previous owner and
 * holds the connection), `taking`'s bucket is being taken over by this node.
 */
function handoverSetup(tables: DataplaneTables, plainOwned: string, held: string): { tables: DataplaneTables; taking: string } {
  const row = [...tables.buckets[0]!];
  const prev = Array<number>(NBUCKETS).fill(NODE_NONE);
  const bucketOfAddr = (a: string): number => bucketOf(parseIp(a).bytes, tables.hashSeed);
  const other = (SELF_NODE + 1) % NODES;
  const heldBucket = bucketOfAddr(held);
  const used = new Set([bucketOfAddr(plainOwned), heldBucket]);
  let taking = '';
  for (let n = 1; n < 10_000 && !taking; n++) if (!used.has(bucketOfAddr(v4(n)))) taking = v4(n);
  row[heldBucket] = other;
  prev[heldBucket] = SELF_NODE;
  row[bucketOfAddr(taking)] = SELF_NODE;
  prev[bucketOfAddr(taking)] = other;
  const prevOwners = tables.buckets.map(() => Array<number>(NBUCKETS).fill(NODE_NONE));
  prevOwners[0] = prev;
  return { tables: { ...tables, buckets: [row, ...tables.buckets.slice(1)], prevOwners }, taking };
}

/** 60-byte frames (the Ethernet minimum without FCS) for IPv4, 74+ for IPv6 TCP. */
function cases(tables: DataplaneTables, owned4: string, held: HeldConnection, taking: string, ownedMax: string): Case[] {
  const udp = (src: string, dst: string, dport: number): FrameSpec => ({
    l3: { family: 4, src, dst },
    l4: { proto: 'udp', sport: 40000, dport },
    payload: 18,
  });
  const tcp = (src: string, dst: string, dport: number, ethDst?: string, flags = TCP_ACK, sport = 40000): FrameSpec => ({
    ...(ethDst && { eth: { dst: ethDst } }),
    l3: src.includes(':') ? { family: 6, src, dst } : { family: 4, src, dst },
    l4: { proto: 'tcp', sport, dport, flags },
    payload: src.includes(':') ? 0 : 6,
  });
  const nonVip = buildFrame(udp('198.51.100.7', NON_VIP4, 53));
  return [
    { id: 'nop', label: 'nop program (baseline)', program: 'farmlb_nop', frame: nonVip, verdict: XDP_PASS },
    {
      id: 'non_vip_v4_udp',
      label: 'non-VIP IPv4 UDP',
      program: 'farmlb_xdp',
      frame: nonVip,
      verdict: XDP_PASS,
      reason: 'pass_not_vip',
      targetNs: 5,
    },
    {
      id: 'owned_v4_tcp',
      label: 'owned IPv4 TCP',
      program: 'farmlb_xdp',
      frame: buildFrame(tcp(owned4, VIP_WEB4, 80)),
      verdict: XDP_PASS,
      reason: 'pass_owned',
      targetNs: 15,
    },
    {
      // vmac_invisible: a client frame to the VMAC is passed with the interface MAC as
      // destination (docs/datapath.md §9), read from farmlb_iface_cache.
      id: 'owned_v4_tcp_vmac',
      label: 'owned IPv4 TCP to the VMAC',
      program: 'farmlb_xdp',
      frame: buildFrame(tcp(owned4, VIP_WEB4, 80, VMAC)),
      verdict: XDP_PASS,
      reason: 'pass_owned',
    },
    {
      id: 'not_owned_v4_tcp',
      label: 'not-owned IPv4 TCP',
      program: 'farmlb_xdp',
      frame: buildFrame(tcp(sourceFor(tables, false, v4), VIP_WEB4, 80)),
      verdict: XDP_DROP,
      reason: 'drop_not_owned',
    },
    {
      id: 'vip_no_rule_v4_udp',
      label: 'VIP, no rule (IPv4 UDP)',
      program: 'farmlb_xdp',
      frame: buildFrame(udp('198.51.100.7', VIP_WEB4, 9999)),
      verdict: XDP_DROP,
      reason: 'drop_no_rule',
    },
    {
      id: 'owned_v6_tcp',
      label: 'owned IPv6 TCP',
      program: 'farmlb_xdp',
      frame: buildFrame(tcp(sourceFor(tables, true, v6), VIP_WEB6, 80)),
      verdict: XDP_PASS,
      reason: 'pass_owned',
    },
    {
      // §12: a SYN needs no socket lookup; the owner takes it.
      id: 'handover_owner_syn',
      label: 'in handover, owner: SYN',
      program: 'farmlb_xdp',
      frame: buildFrame(tcp(taking, VIP_WEB4, 80, undefined, TCP_SYN)),
      verdict: XDP_PASS,
      reason: 'pass_handover_new',
    },
    {
      id: 'handover_owner_miss',
      label: 'in handover, owner: ACK it does not hold (lookup misses)',
      program: 'farmlb_xdp',
      frame: buildFrame(tcp(taking, VIP_WEB4, 80)),
      verdict: XDP_DROP,
      reason: 'drop_handover',
    },
    {
      id: 'handover_prev_held',
      label: 'in handover, previous owner: ACK of its connection (lookup finds it)',
      program: 'farmlb_xdp',
      frame: buildFrame(tcp(held.client, VIP_WEB4, held.vipPort, undefined, TCP_ACK, held.clientPort)),
      verdict: XDP_PASS,
      reason: 'pass_handover_prev',
      netns: held.netnsPath,
    },
    {
      // 16 groups × 256 rules: a port of the descriptor's inline table (the last one scanned).
      id: 'max_owned_v4_inline',
      label: '16 groups × 256 rules: owned IPv4 TCP, inline port',
      program: 'farmlb_xdp',
      frame: buildFrame(tcp(owned4, VIP_MAX4, MAX_TABLE_FIRST_PORT + VIP_INLINE_PORTS - 1)),
      verdict: XDP_PASS,
      reason: 'pass_owned',
      maxTable: true,
    },
    {
      // The same table, a port past the inline ones: the scan misses, farmlb_rules answers.
      id: 'max_owned_v4_overflow',
      label: '16 groups × 256 rules: owned IPv4 TCP, overflow port (hash lookup)',
      program: 'farmlb_xdp',
      frame: buildFrame(tcp(ownedMax, VIP_MAX4, MAX_TABLE_FIRST_PORT + MAX_RULES - 1)),
      verdict: XDP_PASS,
      reason: 'pass_owned',
      maxTable: true,
    },
    { id: 'drop', label: 'drop program', program: 'farmlb_drop', frame: nonVip, verdict: XDP_DROP },
  ];
}

// ---- measuring ------------------------------------------------------------------------

type Runner = (frame: Uint8Array, repeat: number, netns?: string) => Promise<{ retval: number; durationNs: number }>;

const buf = (f: Uint8Array): Buffer => Buffer.from(f.buffer, f.byteOffset, f.byteLength);
const verdictName = (v: number): PerPacketRow['verdict'] => (v === XDP_DROP ? 'XDP_DROP' : 'XDP_PASS');

async function checkReason(dp: XdpDataplane, c: Case): Promise<void> {
  const before = await dp.reasonCounters();
  const { retval } = await dp.testRun(c.frame, 1, c.netns ? { netns: c.netns } : {});
  const after = await dp.reasonCounters();
  const moved = (Object.keys(after) as Reason[]).filter((r) => after[r].packets !== before[r].packets);
  if (retval !== c.verdict || moved.length !== 1 || moved[0] !== c.reason)
    throw new Error(`bench case "${c.label}": expected ${verdictName(c.verdict)}/${c.reason}, got retval ${retval}, reason ${moved.join(',') || 'none'}`);
}

export async function measurePerPacket(opts: PerPacketOptions): Promise<PerPacketResult> {
  const native = opts.native ?? loadNative();
  const opened: NativeObject[] = [];
  let dp: XdpDataplane | undefined;
  let maxDp: XdpDataplane | undefined;
  let held: HeldConnection | undefined;
  try {
    const nop = await native.openObject(bpfObjectPath('nop'));
    opened.push(nop);
    const drop = await native.openObject(bpfObjectPath('drop'));
    opened.push(drop);
    dp = await XdpDataplane.open({ native });
    const farm = dp;
    const owned4 = sourceFor(benchTables(), true, v4);
    held = await holdConnection(VIP_WEB4, 80, sourceFor(benchTables(), false, (n) => v4(n + 5000)));
    const { tables, taking } = handoverSetup(benchTables(), owned4, held.client);
    await farm.apply(tables);
    // Valid for an hour: the lease check takes its "still valid" branch, as on a healthy node.
    await farm.setLease(native.monotonicNs() + 3_600_000_000_000n);
    // What attach() registers on a real interface; the VMAC case rewrites to it.
    farm.setInterfaceMac(TEST_RUN_IFINDEX, IFACE_MAC);
    // A second instance of the program with its own maps, for the configured-maximum table.
    maxDp = await XdpDataplane.open({ native });
    const max = maxDp;
    const big = maxTables();
    await max.apply(big);
    await max.setLease(native.monotonicNs() + 3_600_000_000_000n);
    max.setInterfaceMac(TEST_RUN_IFINDEX, IFACE_MAC);
    // The overflow port's rule is in group (MAX_RULES - 1) % MAX_GROUPS: a source this node owns there.
    const overflowGroup = (MAX_RULES - 1) % MAX_GROUPS;
    const ownedMax = sourceFor({ ...big, buckets: [big.buckets[overflowGroup]!] }, true, v4);

    const runners: Record<Case['program'], Runner> = {
      farmlb_nop: (f, n) => nop.testRun('farmlb_nop', buf(f), n),
      farmlb_drop: (f, n) => drop.testRun('farmlb_drop', buf(f), n),
      farmlb_xdp: (f, n, netns) => farm.testRun(f, n, netns ? { netns } : {}),
    };
    const run = (c: Case, n: number): ReturnType<Runner> =>
      c.maxTable ? max.testRun(c.frame, n) : runners[c.program](c.frame, n, c.netns);
    const all = cases(tables, owned4, held, taking, ownedMax);
    for (const c of all) if (c.program === 'farmlb_xdp') await checkReason(c.maxTable ? max : farm, c);

    const samples = new Map<CaseId, number[]>(all.map((c) => [c.id, []]));
    // Round 0 warms caches, the JIT image and the CPU frequency; it is not kept.
    for (let round = 0; round <= opts.rounds; round++) {
      for (const c of all) {
        const r = await run(c, opts.repeat);
        if (r.retval !== c.verdict) throw new Error(`bench case "${c.label}": verdict ${r.retval} during timing`);
        if (round > 0) samples.get(c.id)!.push(r.durationNs);
      }
    }

    const nopNs = median(samples.get('nop')!);
    const rows: PerPacketRow[] = all.map((c) => {
      const s = samples.get(c.id)!;
      const ns = median(s);
      const row: PerPacketRow = {
        id: c.id,
        label: c.label,
        program: c.program,
        verdict: verdictName(c.verdict),
        frameBytes: c.frame.length,
        nsPerPacket: ns,
        samples: s,
        minusNopNs: ns - nopNs,
        ratioToNop: ns / nopNs,
      };
      if (c.reason) row.reason = c.reason;
      if (c.targetNs !== undefined) {
        row.targetNs = c.targetNs;
        row.targetMet = ns - nopNs <= c.targetNs;
      }
      return row;
    });
    const ns = (id: CaseId): number => rows.find((r) => r.id === id)!.nsPerPacket;
    return {
      repeat: opts.repeat,
      rounds: opts.rounds,
      rows,
      derived: [
        ['non_vip_v4_udp', 'nop', 'the non-VIP path: parse Ethernet + IPv4, find "not a VIP", count'],
        ['not_owned_v4_tcp', 'non_vip_v4_udp', 'a VIP packet decided by bucket instead (descriptor, inline rule, hash, bucket lookup, bucket counter)'],
        ['owned_v4_tcp', 'not_owned_v4_tcp', 'the lease check an owned packet adds'],
        ['owned_v4_tcp_vmac', 'owned_v4_tcp', 'the VMAC rewrite (interface MAC from the per-CPU cache, destination rewritten)'],
        ['vip_no_rule_v4_udp', 'non_vip_v4_udp', 'VIP traffic no rule covers (descriptor, a port scan that misses, then "drop, no rule")'],
        ['owned_v6_tcp', 'owned_v4_tcp', 'IPv6 instead of IPv4 on the owned path (16-byte address compare and hash)'],
        ['handover_owner_syn', 'owned_v4_tcp', 'a SYN in a bucket in handover (the TCP flags and the previous owner read; no lookup)'],
        ['handover_owner_miss', 'owned_v4_tcp', 'a socket lookup that misses (the owner checks a packet it does not hold)'],
        ['handover_prev_held', 'owned_v4_tcp', 'a socket lookup that finds an established connection (and releases it)'],
        ['max_owned_v4_inline', 'owned_v4_tcp', '16 groups × 256 rules instead of 3 × 11, a port found inline (a scan of 8 ports)'],
        ['max_owned_v4_overflow', 'owned_v4_tcp', '16 groups × 256 rules, a port past the inline table (scan misses, one farmlb_rules hash lookup)'],
      ].map(([a, b, what]) => ({ formula: `${a} − ${b}`, what: what!, ns: ns(a as CaseId) - ns(b as CaseId) })),
      tables: {
        groups: tables.buckets.length,
        vips: tables.vips.length,
        rules: tables.rules.length,
        nodes: NODES,
        selfNode: SELF_NODE,
      },
    };
  } finally {
    await held?.close();
    await dp?.close();
    await maxDp?.close();
    for (const o of opened) o.close();
  }
}
