// The lab's witness of the membership's central invariant (docs/membership.md): among nodes
// that hear each other, no bucket is ever served by two of them. "Served" is what the data
// plane would do with a packet now: the node's active table gives it the bucket AND its
// kernel lease is valid. The sampler reads every node's pinned maps directly (not the
// daemons, which may be dead or stopped), every ~20 ms, and counts an overlap only when an
// immediate re-read of both nodes still shows it — two reads of one sample are a few
// hundred microseconds apart, and a handover between them is not a double serving.
//
// API
//   readServed(lab, node)                 one read: buckets served per group, lease, table (undefined: no pins).
//   new OverlapSampler(lab, { intervalMs?, maxDurationMs?, domains? })
//     .start()                            sample in the background until stop() or maxDurationMs.
//     .setDomains(domains)                the sets of nodes that hear each other (default: all nodes).
//     .last()                             the latest sample (every node's read).
//     .stop() → SamplerReport             samples taken, confirmed overlaps (the first few, in detail).

import { XdpDataplane } from '../../../src/dataplane/xdp.js';
import { NODE_NONE } from '../../../src/dataplane/types.js';
import type { FarmLab } from './farm-lab.js';

export interface NodeRead {
  node: string;
  /** Monotonic ns of the lease read. */
  atNs: bigint;
  leaseValid: boolean;
  leaseDeadlineNs: bigint;
  /** The node's own id in its table (NODE_NONE before it knows). */
  selfNode: number;
  /** Buckets this node's table gives to itself, per group — served only when leaseValid. */
  owned: number[][];
  /** Every owner in the node's table: owners[group][bucket] = node id or NODE_NONE. */
  owners: number[][];
}

export interface Overlap {
  group: number;
  bucket: number;
  nodes: [string, string];
  /** Wall clock ms of the confirming re-read. */
  at: number;
}

export interface Sample {
  at: number;
  reads: Map<string, NodeRead>;
}

export interface SamplerReport {
  samples: number;
  /** Confirmed overlaps (at most MAX_KEPT kept in detail). */
  overlaps: Overlap[];
  overlapCount: number;
  /** Candidates a re-read did not confirm (a handover between two reads). */
  unconfirmed: number;
  /** Reads that failed (pins being replaced by a restarting daemon). */
  readErrors: number;
  durationMs: number;
}

const MAX_KEPT = 20;

/**
 * `read` applied to a node's pinned data plane (closed afterwards); undefined when nothing is
 * pinned (yet).
 */
export function withPinned<T>(lab: FarmLab, node: string, read: (pinned: ReturnType<typeof XdpDataplane.readPinned>) => T): T | undefined {
  let pinned;
  try {
    pinned = XdpDataplane.readPinned(lab.pinDir(node));
  } catch {
    return undefined;
  }
  try {
    return read(pinned);
  } finally {
    pinned.close();
  }
}

/** One read of a node's pinned data plane; undefined when nothing is pinned (yet). */
export function readServed(lab: FarmLab, node: string): NodeRead | undefined {
  return withPinned(lab, node, (pinned) => {
    const tables = pinned.activeTables();
    const lease = pinned.lease();
    const owned = tables.buckets.map((row) => row.flatMap((owner, b) => (owner === tables.selfNode && owner !== NODE_NONE ? [b] : [])));
    return { node, atNs: lease.nowNs, leaseValid: lease.valid, leaseDeadlineNs: lease.deadlineNs, selfNode: tables.selfNode, owned, owners: tables.buckets };
  });
}

/** Buckets a read says its node serves now (owned and lease valid), per group. */
export function servedBuckets(r: NodeRead | undefined): number[][] {
  return r && r.leaseValid ? r.owned : [];
}

export class OverlapSampler {
  private readonly intervalMs: number;
  private readonly maxDurationMs: number;
  private domains: string[][];
  private timer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private stoppedAt = 0;
  private latest: Sample | undefined;
  private report: SamplerReport = { samples: 0, overlaps: [], overlapCount: 0, unconfirmed: 0, readErrors: 0, durationMs: 0 };

  constructor(private readonly lab: FarmLab, opts: { intervalMs?: number; maxDurationMs?: number; domains?: string[][] } = {}) {
    this.intervalMs = opts.intervalMs ?? 20;
    this.maxDurationMs = opts.maxDurationMs ?? 60_000;
    this.domains = opts.domains ?? [lab.nodeNames()];
  }

  start(): this {
    if (this.timer) return this;
    this.startedAt = Date.now();
    // setTimeout chained after each sample: a slow read never piles samples up.
    const tick = () => {
      if (Date.now() - this.startedAt > this.maxDurationMs) {
        this.timer = undefined;
        this.stoppedAt = Date.now();
        return;
      }
      this.sampleOnce();
      this.timer = setTimeout(tick, this.intervalMs);
    };
    this.timer = setTimeout(tick, 0);
    return this;
  }

  /** Which nodes hear each other from now on; overlaps are only looked for inside each set. */
  setDomains(domains: string[][]): void {
    this.domains = domains;
  }

  last(): Sample | undefined {
    return this.latest;
  }

  /** Take one sample now (also usable without start()). */
  sampleOnce(): Sample {
    const reads = new Map<string, NodeRead>();
    for (const node of this.lab.nodeNames()) {
      const r = readServed(this.lab, node);
      if (r) reads.set(node, r);
      else this.report.readErrors++;
    }
    this.report.samples++;
    for (const domain of this.domains) this.checkDomain(domain, reads);
    this.latest = { at: Date.now(), reads };
    return this.latest;
  }

  private checkDomain(domain: string[], reads: Map<string, NodeRead>): void {
    for (let i = 0; i < domain.length; i++) {
      for (let j = i + 1; j < domain.length; j++) {
        const a = domain[i]!;
        const b = domain[j]!;
        const clash = firstClash(servedBuckets(reads.get(a)), servedBuckets(reads.get(b)));
        if (!clash) continue;
        const again = firstClash(servedBuckets(readServed(this.lab, a)), servedBuckets(readServed(this.lab, b)));
        if (!again) {
          this.report.unconfirmed++;
          continue;
        }
        this.report.overlapCount++;
        if (this.report.overlaps.length < MAX_KEPT) this.report.overlaps.push({ ...again, nodes: [a, b], at: Date.now() });
      }
    }
  }

  async stop(): Promise<SamplerReport> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.stoppedAt) this.stoppedAt = Date.now();
    return { ...this.report, durationMs: this.stoppedAt - this.startedAt };
  }
}

function firstClash(x: number[][], y: number[][]): { group: number; bucket: number } | undefined {
  for (let g = 0; g < Math.min(x.length, y.length); g++) {
    const mine = new Set(x[g]);
    const b = y[g]!.find((bucket) => mine.has(bucket));
    if (b !== undefined) return { group: g, bucket: b };
  }
  return undefined;
}

/**
 * Per node, how many buckets of `group` it serves now; plus whether every bucket is served
 * by exactly one of `nodes` (each node judged from its own table and lease).
 */
export function coverage(lab: FarmLab, nodes: string[], group = 0): { counts: Record<string, number>; complete: boolean; doubles: number } {
  const servedBy = new Array<number>(256).fill(0);
  const counts: Record<string, number> = {};
  for (const n of nodes) {
    const served = servedBuckets(readServed(lab, n))[group] ?? [];
    counts[n] = served.length;
    for (const b of served) servedBy[b]!++;
  }
  return { counts, complete: servedBy.every((c) => c === 1), doubles: servedBy.filter((c) => c > 1).length };
}
