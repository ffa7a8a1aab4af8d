// `farmlb drain NODE --wait` (Windows NLB's drainstop): after the drain is accepted, ask the
// local daemon's status until the node is empty, i.e. owns no bucket and is the previous
// owner of none (docs/datapath.md §12: while it hands a bucket over it still serves its
// established TCP connections there). Its own connection count is known only when the
// daemon asked is the drained node itself. The status source, clock and sleep are passed in
// so the loop is tested without a daemon or real time.

import type { DaemonStatus, NodeStatus } from '../api/status.js';
import { FarmlbError } from '../errors.js';

/** Poll period: fast enough to end soon after the last connection closes, cheap for the daemon. */
export const DRAIN_POLL_MS = 250;
export const DRAIN_TIMEOUT_DEFAULT_S = 300;

/** What is still on a node, per group and in total. */
export interface DrainRemaining {
  /** Buckets it owns, per group. */
  buckets: Record<string, number>;
  /** Buckets it hands over as previous owner, per group. */
  handingOver: Record<string, number>;
  totalBuckets: number;
  totalHandingOver: number;
  /** Connections it still holds in the buckets it hands over; only when the status is the node's own. */
  connections?: number;
  /** Whether the daemon reports handovers at all (`NodeStatus.handingOver`); without it only buckets are waited for. */
  handoverKnown: boolean;
}

export function drainRemaining(status: DaemonStatus, node: string): DrainRemaining {
  const n: NodeStatus | undefined = status.nodes.find((x) => x.name === node);
  if (!n) throw new FarmlbError('FARMLB_E_API_UNKNOWN_NODE', { node, nodes: status.nodes.map((x) => x.name).join(', ') });
  const buckets = Object.fromEntries(status.groups.map((g) => [g, n.buckets[g] ?? 0]));
  const handingOver = Object.fromEntries(status.groups.map((g) => [g, n.handingOver?.[g] ?? 0]));
  const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
  return {
    buckets,
    handingOver,
    totalBuckets: sum(buckets),
    totalHandingOver: sum(handingOver),
    ...(n.self && n.handover ? { connections: n.handover.connections } : {}),
    handoverKnown: n.handingOver !== undefined,
  };
}

export function isDrained(r: DrainRemaining): boolean {
  return r.totalBuckets === 0 && r.totalHandingOver === 0;
}

/** "3 buckets, 12 handing over, 37 connections" (the connections when known). */
export function describeRemaining(r: DrainRemaining): string {
  const parts = [`${r.totalBuckets} bucket${r.totalBuckets === 1 ? '' : 's'} owned`, `${r.totalHandingOver} handing over`];
  if (r.connections !== undefined) parts.push(`${r.connections} connection${r.connections === 1 ? '' : 's'} still open in them`);
  return parts.join(', ');
}

export interface DrainWaitOptions {
  node: string;
  /** The status the drain request answered: the first check costs no request. */
  initial: DaemonStatus;
  /** One status from the local daemon. */
  fetchStatus(): Promise<DaemonStatus>;
  timeoutMs: number;
  pollMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Called after every status read, drained or not. */
  onProgress?: (remaining: DrainRemaining, elapsedMs: number) => void;
}

export interface DrainWaitResult {
  node: string;
  drained: boolean;
  waitedMs: number;
  remaining: DrainRemaining;
  /** The last status read. */
  status: DaemonStatus;
}

export async function waitForDrain(o: DrainWaitOptions): Promise<DrainWaitResult> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const pollMs = o.pollMs ?? DRAIN_POLL_MS;
  const start = now();
  let status = o.initial;
  for (;;) {
    const remaining = drainRemaining(status, o.node);
    const elapsed = now() - start;
    o.onProgress?.(remaining, elapsed);
    if (isDrained(remaining)) return { node: o.node, drained: true, waitedMs: elapsed, remaining, status };
    if (elapsed >= o.timeoutMs) return { node: o.node, drained: false, waitedMs: elapsed, remaining, status };
    // The last poll lands on the deadline rather than past it.
    await sleep(Math.min(pollMs, o.timeoutMs - elapsed));
    status = await o.fetchStatus();
  }
}

/** The error a timed-out wait ends with (exit code EXIT.TIMEOUT). */
export function drainTimeoutError(result: DrainWaitResult, timeoutS: number): FarmlbError {
  return new FarmlbError('FARMLB_E_CLI_DRAIN_TIMEOUT', { node: result.node, seconds: timeoutS, remaining: describeRemaining(result.remaining) });
}
