// The benchmark's human-readable report: plain fixed-width tables, ratios against the
// baseline measured in the same run, and the targets printed next to the measured deltas.

import type { MachineFacts } from './machine.js';
import type { PerPacketResult } from './per-packet.js';
import type { VethResult } from './veth.js';

export interface BenchReport {
  machine: MachineFacts;
  perPacket: PerPacketResult;
  /** Absent when the veth part was skipped. */
  veth?: VethResult;
  vethSkipped?: string;
}

function table(header: string[], rows: string[][], rightAligned: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const ns = (v: number): string => v.toFixed(1);
const signed = (v: number): string => `${v >= 0 ? '+' : ''}${v.toFixed(1)}`;
const ratio = (v: number): string => v.toFixed(2);
const mpps = (v: number): string => `${(v / 1e6).toFixed(3)} Mpps`;
const thousands = (n: number): string => n.toLocaleString('en-US');

export function renderMachine(m: MachineFacts): string {
  return [
    `date:        ${m.date}`,
    `kernel:      ${m.kernel}`,
    `CPU:         ${m.cpuModel}, ${m.cpuCount} CPUs${m.virtualised ? ' (virtual machine)' : ''}`,
    `clocksource: ${m.clocksource}`,
    `spectre_v2:  ${m.spectreV2}`,
    `BPF JIT:     net.core.bpf_jit_enable=${m.bpfJit}`,
    `load:        ${m.loadAverage} (1/5/15 min load average at the start: other work on the machine disturbs the numbers)`,
    `program:     ${m.program}`,
  ].join('\n');
}

export function renderPerPacket(p: PerPacketResult): string {
  const rows = p.rows.map((r) => {
    const isNop = r.id === 'nop';
    const target =
      r.targetNs === undefined ? '' : `≤ ${r.targetNs} ns: ${r.targetMet ? 'met' : 'not met'} (${signed(r.minusNopNs)} ns)`;
    return [
      r.label,
      r.program,
      r.reason ? `${r.verdict} ${r.reason}` : r.verdict,
      ns(r.nsPerPacket),
      isNop ? '—' : signed(r.minusNopNs),
      ratio(r.ratioToNop),
      `${Math.min(...r.samples)}–${Math.max(...r.samples)}`,
      target,
    ];
  });
  const t = p.tables;
  const d = p.derived;
  return [
    `1. Per-packet cost: BPF_PROG_TEST_RUN, repeat ${thousands(p.repeat)}, median of ${p.rounds} runs (kernel-measured ns per run)`,
    `   farm tables: ${t.groups} groups, ${t.vips} VIPs (IPv4 + IPv6), ${t.rules} rules ((vip, port), (vip, *), (*, port), (*, *)), ` +
      `${t.nodes} nodes (this node owns 1/${t.nodes} of each group's buckets), lease valid`,
    '',
    table(
      ['case', 'program', 'verdict / reason', 'ns/pkt', '− nop', '/ nop', 'runs min–max', 'target for farm − nop'],
      rows,
      new Set([3, 4, 5, 6]),
    ),
    '',
    '   Where the time goes (differences between rows of this run):',
    ...d.map((c) => `   ${signed(c.ns).padStart(7)} ns  ${c.what}  [${c.formula}]`),
  ].join('\n');
}

export function renderVeth(v: VethResult): string {
  const rows = v.rows.map((r) => [
    r.label,
    mpps(r.pps),
    ratio(r.ratioToXdpDrop),
    ratio(r.ratioToNoFilter),
    `${r.generatorCpuPct.toFixed(0)}%`,
    `${r.generatorCoreBusyPct.toFixed(0)}%`,
    r.check,
  ]);
  return [
    `2. veth receive rate of not-owned VIP traffic: ${v.frameBytes}-byte UDP frames, ${v.windowMs / 1000} s window per variant`,
    `   generator: ${v.generator}`,
    '   rate = Δ rx_packets of the receiving veth (ip -s -j link) / window. For the record, not a target:',
    '   on veth the sending core builds every skb, so it bounds every variant.',
    '',
    table(['receive filter', 'rate', '/XDP_DROP', '/no filter', 'trafgen CPU', 'CPU 0 busy', 'cross-check'], rows, new Set([1, 2, 3, 4, 5])),
  ].join('\n');
}

export function renderReport(r: BenchReport): string {
  const parts = [`farmlb benchmark`, renderMachine(r.machine), '', renderPerPacket(r.perPacket), ''];
  if (r.veth) parts.push(renderVeth(r.veth), '');
  else if (r.vethSkipped) parts.push(`2. veth receive rate: skipped (${r.vethSkipped})`, '');
  return parts.join('\n');
}
