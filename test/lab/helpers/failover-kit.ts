// Shared pieces of the membership failover lab tests (test/lab/failover*.test.ts): the farm
// they build, bounded waits on bucket coverage read from the pinned maps, the health check as
// a client sees it, and heartbeats captured on the switch and sent again from the client.
//
// API
//   FAILOVER_NODES, FULL_QUOTAS          three nodes of powers 1, 1, 2 and their bucket quotas.
//   logsOnFailure(ctx, lab)              print the tail of every daemon log when the test fails.
//   waitCoverage(lab, nodes, opts?)      until every bucket is served by exactly one of `nodes`
//                                        (and, with `quotas`, each serves its quota).
//   clientHealth(lab, node, path)        GET http://<node>:9010<path> from the client: { status, body } (status 0: refused).
//   waitHealth(lab, node, status)        until ready.txt answers `status` (200, 404 or 0).
//   srcOwner(lab, src, owners)           the node owning src's bucket in a table row (on_addr).
//   captureHeartbeats(lab, from, count)  UDP payloads of `from`'s heartbeats, captured on the bridge.
//   sendDatagrams(lab, payloads, to, opts?)  send payloads from the client namespace to node addresses.
//   viewEvents(lab, marks)               the "view" log lines each node wrote since its mark.

import type { TestContext } from 'vitest';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { FarmLab } from './farm-lab.js';
import { inNetns, run, waitFor } from './netns.js';
import { coverage, withPinned } from './overlap-sampler.js';
import { MEMBERSHIP_PORT } from './nft-faults.js';
import { addrBytes } from '../../../src/balance/addr.js';
import { bucketOf } from '../../../src/balance/hash.js';
import { NODE_NONE } from '../../../src/dataplane/types.js';

export const FAILOVER_NODES = [
  { name: 'n1', power: 1 },
  { name: 'n2', power: 1 },
  { name: 'n3', power: 2 },
];
export const FAILOVER_NODE_NAMES = FAILOVER_NODES.map((n) => n.name);
/** Largest-remainder quotas of 1:1:2 over 256 buckets. */
export const FULL_QUOTAS: Record<string, number> = { n1: 64, n2: 64, n3: 128 };
export const HEALTH_PORT = 9010;
/**
 * The membership lab suites run against both backends (docs/membership.md): the same cases,
 * parametrized with `backendOptions`, not copied.
 */
export const MEMBERSHIP_BACKENDS = ['builtin', 'corosync'] as const;
export type MembershipBackendName = (typeof MEMBERSHIP_BACKENDS)[number];
/** FarmLab options that run the membership on `backend` (Corosync: one corosync per node namespace). */
export function backendOptions(backend: MembershipBackendName): { membership: boolean; corosync: boolean } {
  return { membership: backend === 'builtin', corosync: backend === 'corosync' };
}
const LOG_TAIL_LINES = 150;

export function logsOnFailure(ctx: TestContext, lab: () => FarmLab | undefined): void {
  ctx.onTestFailed(() => {
    const l = lab();
    if (!l) return;
    for (const n of l.nodeNames()) {
      const lines = l.logs(n).split('\n');
      console.error(`--- ${n}: last ${LOG_TAIL_LINES} of ${lines.length} log lines ---\n${lines.slice(-LOG_TAIL_LINES).join('\n')}`);
    }
  });
}

/** Waits (bounded) until `nodes` together serve every bucket of group 0 exactly once. */
export async function waitCoverage(lab: FarmLab, nodes: string[], opts: { quotas?: Record<string, number>; timeoutMs?: number; what?: string } = {}): Promise<Record<string, number>> {
  let last: ReturnType<typeof coverage> | undefined;
  try {
    return await waitFor(() => {
      last = coverage(lab, nodes);
      if (!last.complete) return undefined;
      if (opts.quotas && nodes.some((n) => last!.counts[n] !== opts.quotas![n])) return undefined;
      return last.counts;
    }, { timeoutMs: opts.timeoutMs ?? 10_000, intervalMs: 20, what: opts.what ?? `${nodes.join(', ')} to serve every bucket${opts.quotas ? ` with quotas ${JSON.stringify(opts.quotas)}` : ''}` });
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}; last coverage: ${JSON.stringify(last)}`, { cause: err });
  }
}

/**
 * Waits (bounded) until no bucket of any group is in handover on any of `nodes` (their pinned
 * tables name no previous owner): a rejoin hands buckets over while connections run, and the
 * table changes that end it must not fall into the next case's "no view change" window.
 * A handover ends when the previous owner holds no connection in the bucket, at the latest at
 * handover_limit (30 s by default, the labs'): a connection whose client is gone (reset by
 * another node in a partition) stays held until then, so the default deadline outlasts it.
 */
const HANDOVER_SETTLE_MS = 40_000;

export async function waitNoHandover(lab: FarmLab, nodes: string[], timeoutMs = HANDOVER_SETTLE_MS): Promise<void> {
  const settled = (n: string) => withPinned(lab, n, (p) => (p.activeTables().prevOwners ?? []).every((row) => row.every((x) => x === NODE_NONE)));
  await waitFor(() => nodes.every(settled) || undefined, { timeoutMs, intervalMs: 50, what: `no bucket in handover on ${nodes.join(', ')}` });
}

/** GET from the client to a node's health port; status 0 when nothing answers (refused, unreachable). */
export async function clientHealth(lab: FarmLab, node: string, urlPath: string): Promise<{ status: number; body: string }> {
  const url = `http://${lab.nodeAddr(node, 4)}:${HEALTH_PORT}${urlPath}`;
  try {
    const { stdout } = await lab.inClient('curl', ['-sS', '--max-time', '2', '-w', '\\n%{http_code}', url], { timeoutMs: 6_000 });
    const nl = stdout.lastIndexOf('\n');
    return { status: Number(stdout.slice(nl + 1)), body: stdout.slice(0, nl).trim() };
  } catch (err) {
    return { status: 0, body: err instanceof Error ? err.message : String(err) };
  }
}

export function readyPath(lab: FarmLab): string {
  // The module name the lab writes in <farmlb module=…>.
  return `/var/modules/${`lab-${lab.name}`.slice(0, 32)}/ready.txt`;
}

export async function waitHealth(lab: FarmLab, node: string, status: number, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
  return waitFor(async () => {
    const r = await clientHealth(lab, node, readyPath(lab));
    return r.status === status ? r : undefined;
  }, { timeoutMs, intervalMs: 100, what: `${node}'s ready.txt to answer ${status || 'nothing (refused)'}` });
}

export function srcBucket(src: string, hashSeed: number): number {
  return bucketOf(addrBytes(src)!, hashSeed);
}

/** The node owning src's bucket in one table row (node ids = cluster.xml order = lab order). */
export function srcOwner(lab: FarmLab, src: string, hashSeed: number, owners: number[]): string | null {
  return lab.nodeNames()[owners[srcBucket(src, hashSeed)]!] ?? null;
}

/** The "view" event lines of each node's log since its mark. */
export function viewEvents(lab: FarmLab, marks: Record<string, number>): Record<string, string[]> {
  return Object.fromEntries(lab.nodeNames().map((n) => [n, lab.logSince(n, marks[n] ?? 0).split('\n').filter((l) => l.includes('"event":"view"'))]));
}

export function logMarks(lab: FarmLab): Record<string, number> {
  return Object.fromEntries(lab.nodeNames().map((n) => [n, lab.logMark(n)]));
}

/**
 * The UDP payloads of up to `count` heartbeats sent by node `from`, captured on the bridge
 * of the switch namespace (every heartbeat crosses it).
 */
export async function captureHeartbeats(lab: FarmLab, from: string, count: number): Promise<Buffer[]> {
  const file = path.join(lab.dir, `hb-${from}-${Date.now()}.pcap`);
  await inNetns(lab.switchNs, 'timeout', ['5', 'tcpdump', '-i', 'br0', '-U', '-c', String(count), '-w', file,
    `udp dst port ${MEMBERSHIP_PORT} and src host ${lab.nodeAddr(from, 4)}`], { timeoutMs: 10_000 }).catch(() => undefined);
  return udpPayloads(await readFile(file));
}

/** UDP payloads of the IPv4 frames of a classic pcap file (Ethernet link type). */
export function udpPayloads(pcap: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const le = pcap.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (o: number) => (le ? pcap.readUInt32LE(o) : pcap.readUInt32BE(o));
  for (let off = 24; off + 16 <= pcap.length;) {
    const caplen = u32(off + 8);
    const frame = pcap.subarray(off + 16, off + 16 + caplen);
    off += 16 + caplen;
    if (frame.length < 14 + 20 + 8 || frame.readUInt16BE(12) !== 0x0800 || frame[14 + 9] !== 17) continue;
    const ihl = (frame[14]! & 0x0f) * 4;
    const udpLen = frame.readUInt16BE(14 + ihl + 4);
    out.push(Buffer.from(frame.subarray(14 + ihl + 8, 14 + ihl + udpLen)));
  }
  return out;
}

// argv: JSON { payloads: base64[], targets: [host], port, rounds, intervalMs }
const SENDER_JS = String.raw`
const dgram = require('dgram');
const { payloads, targets, port, rounds, intervalMs } = JSON.parse(process.argv[1]);
const sock = dgram.createSocket('udp4');
let round = 0;
const send = () => {
  for (const p of payloads) for (const t of targets) sock.send(Buffer.from(p, 'base64'), port, t);
  if (++round >= rounds) setTimeout(() => sock.close(), 50); else setTimeout(send, intervalMs);
};
send();
`;

/** Sends every payload to every target node, `rounds` times, from the client namespace. */
export async function sendDatagrams(lab: FarmLab, payloads: Buffer[], to: string[], opts: { rounds?: number; intervalMs?: number; port?: number } = {}): Promise<void> {
  const rounds = opts.rounds ?? 1;
  const intervalMs = opts.intervalMs ?? 50;
  await lab.inClient('node', ['-e', SENDER_JS, JSON.stringify({
    payloads: payloads.map((p) => p.toString('base64')), targets: to.map((n) => lab.nodeAddr(n, 4)),
    port: opts.port ?? MEMBERSHIP_PORT, rounds, intervalMs,
  }), lab.dir], { timeoutMs: rounds * intervalMs + 10_000 });
}

/** Run a command in the switch namespace (where the bridge is). */
export function inSwitch(lab: FarmLab, cmd: string, args: string[]): ReturnType<typeof run> {
  return inNetns(lab.switchNs, cmd, args);
}

export { FarmLab };
