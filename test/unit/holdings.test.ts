// The connections a previous owner still holds in buckets it hands over
// (src/daemon/holdings.ts): bucket computation against the TS model of the data path, the
// states and sockets counted, and the sampler's pace, epochs and max-of-two rule.

import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { rule, vip } from '../helpers/tables.js';
import { decide } from '../../src/dataplane/model.js';
import { buildFrame, parseIp } from '../../src/net/frames.js';
import { CriterionId, NODE_NONE, PORT_ANY, VIP_ANY, type DataplaneTables } from '../../src/dataplane/types.js';
import {
  connectionBucket,
  countHoldings,
  HELD_STATES,
  HoldingsSampler,
  prevBucketCount,
  type SocketScan,
} from '../../src/daemon/holdings.js';
import type { Holdings } from '../../src/daemon/table-source.js';
import { parseTcpLine, TCP_STATES, type TcpSocket, type TcpState } from '../../src/net/tcp-sockets.js';

const SELF = 1;
const OTHER = 2;
const LEASE_FOREVER = 2n ** 64n - 1n;
const row = (v: number): number[] => new Array<number>(256).fill(v);

// Group 0: TCP 80 of every VIP, on_addr. Group 1: every TCP port of 10.0.0.101, on_port.
// Group 2: every TCP port of 10.0.0.102, on_ipid (no bucket per connection).
// Every bucket is OTHER's; SELF is the previous owner of every bucket of every group.
const BASE: DataplaneTables = {
  hashSeed: 0x6661726d,
  selfNode: SELF,
  vmac: '5a:fe:0a:00:00:64',
  vips: [vip(0, '10.0.0.100', 0), vip(1, '2001:db8::100', 0), vip(2, '10.0.0.101', 1), vip(3, '10.0.0.102', 2)],
  rules: [
    rule(6, 80, VIP_ANY, 0, CriterionId.Addr),
    rule(6, PORT_ANY, 2, 1, CriterionId.Port),
    rule(6, PORT_ANY, 3, 2, CriterionId.Ipid),
  ],
  buckets: [row(OTHER), row(OTHER), row(OTHER)],
  prevOwners: [row(SELF), row(SELF), row(SELF)],
  nodeMacs: [null, null, null],
};

function sock(local: string, localPort: number, remote: string, remotePort: number, state: TcpState = 'ESTABLISHED'): TcpSocket {
  const l = parseIp(local);
  const r = parseIp(remote);
  const stateNumber = Number(Object.entries(TCP_STATES).find(([, s]) => s === state)![0]);
  return { family: l.family, localAddr: l.bytes, localPort, remoteAddr: r.bytes, remotePort, state, stateNumber };
}

/** The model's group and bucket for the client's packet of this connection. */
function modelBucket(tables: DataplaneTables, s: TcpSocket): { group?: number; bucket?: number } {
  const family = s.family;
  const fmt = (b: Uint8Array) => (family === 4 ? Array.from(b).join('.') : Buffer.from(b).toString('hex').match(/.{4}/g)!.join(':'));
  const frame = buildFrame({
    l3: { family, src: fmt(s.remoteAddr), dst: fmt(s.localAddr) },
    l4: { proto: 'tcp', sport: s.remotePort, dport: s.localPort, flags: 0x10 },
  });
  // The bucket does not depend on the handover: ask the model without one.
  const d = decide(frame, { ...tables, prevOwners: undefined, buckets: tables.buckets.map(() => row(SELF)) }, LEASE_FOREVER, 0n);
  return { group: d.group, bucket: d.bucket };
}

/** A deterministic spread of clients. */
function clients(n: number): { v4: string; v6: string; port: number }[] {
  let x = 0x12345678;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  return Array.from({ length: n }, () => {
    const a = next();
    return {
      v4: `192.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`,
      v6: `2001:db8:${(a >>> 16).toString(16)}::${(a & 0xffff).toString(16)}`,
      port: 1024 + (next() % 60000),
    };
  });
}

describe('connectionBucket', () => {
  it('puts an on_addr connection in the group and bucket the model gives its client\'s packets (IPv4 and IPv6)', () => {
    for (const c of clients(200)) {
      for (const s of [sock('10.0.0.100', 80, c.v4, c.port), sock('2001:db8::100', 80, c.v6, c.port)]) {
        const where = connectionBucket(BASE, s);
        expect(where.kind).toBe('bucket');
        if (where.kind === 'bucket') expect({ group: where.group, bucket: where.bucket }).toEqual(modelBucket(BASE, s));
      }
    }
  });

  it('hashes the remote port for an on_port rule, as the model does', () => {
    const buckets = new Set<number>();
    for (const c of clients(200)) {
      const s = sock('10.0.0.101', 8443, c.v4, c.port);
      const where = connectionBucket(BASE, s);
      expect(where.kind).toBe('bucket');
      if (where.kind !== 'bucket') continue;
      expect({ group: where.group, bucket: where.bucket }).toEqual(modelBucket(BASE, s));
      // The address does not matter, only the port.
      expect(connectionBucket(BASE, sock('10.0.0.101', 8443, '198.51.100.9', c.port))).toEqual(where);
      buckets.add(where.bucket);
    }
    expect(buckets.size).toBeGreaterThan(100);
  });

  it('follows the rule precedence: a VIP-specific rule beats the wildcard one', () => {
    const tables = { ...BASE, rules: [...BASE.rules, rule(6, 80, 0, 1, CriterionId.Port)] };
    const s = sock('10.0.0.100', 80, '192.0.2.7', 40000);
    expect(connectionBucket(tables, s)).toMatchObject({ kind: 'bucket', group: 1 });
    expect(connectionBucket(tables, s)).toMatchObject(modelBucket(tables, s));
  });

  it('gives no bucket to an on_ipid connection, to a port no rule covers, or to a local address that is no VIP', () => {
    expect(connectionBucket(BASE, sock('10.0.0.102', 22, '192.0.2.7', 40000))).toEqual({ kind: 'ipid', vipId: 3, group: 2 });
    expect(connectionBucket(BASE, sock('10.0.0.100', 22, '192.0.2.7', 40000))).toEqual({ kind: 'no_rule', vipId: 0 });
    expect(connectionBucket(BASE, sock('10.0.0.1', 80, '192.0.2.7', 40000))).toEqual({ kind: 'not_vip' });
    // An IPv4 VIP's address in IPv6 form is another address.
    expect(connectionBucket(BASE, sock('::ffff:10.0.0.100', 80, '::ffff:192.0.2.7', 40000))).toEqual({ kind: 'not_vip' });
  });
});

describe('countHoldings', () => {
  it('counts every state but LISTEN, TIME_WAIT and CLOSE', () => {
    expect([...HELD_STATES].sort()).toEqual(
      ['CLOSE_WAIT', 'CLOSING', 'ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'LAST_ACK', 'NEW_SYN_RECV', 'SYN_RECV', 'SYN_SENT'].sort());
    const states = Object.values(TCP_STATES);
    const sockets = states.map((st, i) => sock('10.0.0.100', 80, '192.0.2.7', 40000 + i, st));
    const r = countHoldings(BASE, sockets);
    expect(r.connections).toBe(states.length - 3);
    const bucket = (connectionBucket(BASE, sockets[0]!) as { bucket: number }).bucket;
    expect(r.counts[0]![bucket]).toBe(states.length - 3);
  });

  it('counts only buckets whose previous owner is this node, in their group and bucket', () => {
    const s1 = sock('10.0.0.100', 80, '192.0.2.7', 40000);
    const s2 = sock('10.0.0.101', 9000, '192.0.2.8', 40001);
    const b1 = (connectionBucket(BASE, s1) as { bucket: number }).bucket;
    const b2 = (connectionBucket(BASE, s2) as { bucket: number }).bucket;
    const prevOwners = [row(NODE_NONE), row(NODE_NONE), row(NODE_NONE)];
    prevOwners[0]![b1] = SELF;
    prevOwners[1]![b2] = OTHER;
    const r = countHoldings({ ...BASE, prevOwners }, [s1, s1, s2]);
    expect(r).toMatchObject({ prevBuckets: 1, connections: 2, unbucketed: 0 });
    expect(r.counts[0]![b1]).toBe(2);
    expect(r.counts[1]!.every((n) => n === 0)).toBe(true);
    expect(r.counts.map((g) => g.length)).toEqual([256, 256, 256]);
  });

  it('counts nothing without a handover, and reports on_ipid connections as unbucketed', () => {
    expect(countHoldings({ ...BASE, prevOwners: undefined }, [sock('10.0.0.100', 80, '192.0.2.7', 40000)]))
      .toMatchObject({ prevBuckets: 0, connections: 0 });
    const r = countHoldings(BASE, [sock('10.0.0.102', 22, '192.0.2.7', 40000), sock('10.0.0.102', 22, '192.0.2.8', 40000, 'TIME_WAIT')]);
    expect(r).toMatchObject({ connections: 0, unbucketed: 1 });
  });

  it('counts the IPv4 connections of a dual-stack listener (read as IPv4 from tcp6)', () => {
    // [::ffff:10.0.0.100]:80 ← [::ffff:192.0.2.7]:40000, as a little-endian host prints it in tcp6.
    const line = '   0: 0000000000000000FFFF00006400000A:0050 0000000000000000FFFF0000070200C0:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0 20 4 30 10 -1';
    const s = parseTcpLine(line, true)!;
    expect(countHoldings(BASE, [s]).connections).toBe(1);
    expect(connectionBucket(BASE, s)).toEqual(connectionBucket(BASE, sock('10.0.0.100', 80, '192.0.2.7', 40000)));
  });
});

describe('prevBucketCount', () => {
  it('counts the buckets naming this node previous owner, over all groups', () => {
    expect(prevBucketCount(BASE)).toBe(768);
    expect(prevBucketCount({ ...BASE, prevOwners: undefined })).toBe(0);
    expect(prevBucketCount({ ...BASE, selfNode: NODE_NONE, prevOwners: [row(NODE_NONE)] })).toBe(0);
    expect(prevBucketCount(undefined)).toBe(0);
  });
});

// ---- the sampler ---------------------------------------------------------------------

describe('HoldingsSampler', () => {
  const log = pino({ level: 'silent' });
  const held = sock('10.0.0.100', 80, '192.0.2.7', 40000);
  const heldBucket = (connectionBucket(BASE, held) as { bucket: number }).bucket;
  const ONE_PREV: DataplaneTables = {
    ...BASE,
    prevOwners: [row(NODE_NONE), row(NODE_NONE), row(NODE_NONE)].map((r, g) => (g === 0 ? r.map((_, b) => (b === heldBucket ? SELF : NODE_NONE)) : r)),
  };
  const NO_PREV: DataplaneTables = { ...BASE, prevOwners: undefined };

  let reports: Holdings[];
  let scans: number;
  let sockets: TcpSocket[];

  beforeEach(() => {
    vi.useFakeTimers();
    reports = [];
    scans = 0;
    sockets = [held];
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const scan: SocketScan = async (visit) => {
    scans++;
    for (const s of sockets) visit(s);
    return { truncated: false, lines: sockets.length };
  };

  function sampler(over: Partial<ConstructorParameters<typeof HoldingsSampler>[0]> = {}): HoldingsSampler {
    return new HoldingsSampler({ report: (h) => reports.push(h), nowNs: () => BigInt(Date.now()) * 1_000_000n, log, scan, nowMs: () => Date.now(), ...over });
  }

  it('samples at once when a table names this node previous owner, then every 250 ms, and stops when none does', async () => {
    const s = sampler();
    s.tablesChanged({ epoch: 7, tables: ONE_PREV });
    await vi.advanceTimersByTimeAsync(0);
    expect(reports).toHaveLength(1);
    expect(reports[0]!.epoch).toBe(7);
    expect(reports[0]!.counts[0]![heldBucket]).toBe(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(reports).toHaveLength(5);
    s.tablesChanged({ epoch: 8, tables: NO_PREV });
    await vi.advanceTimersByTimeAsync(2000);
    expect(reports).toHaveLength(5);
    expect(s.status()).toEqual({ prevBuckets: 0, connections: 0, carriedTotal: 1, lostTotal: 1 });
    await s.stop();
  });

  it('counts the connections carried over, and those cut when a bucket moves on without coming back', async () => {
    const s = sampler();
    // A handover that ends with the connection still open (the limit): carried 1, lost 1.
    s.tablesChanged({ epoch: 1, tables: ONE_PREV });
    await vi.advanceTimersByTimeAsync(300);
    s.tablesChanged({ epoch: 2, tables: NO_PREV });
    expect(s.status()).toMatchObject({ carriedTotal: 1, lostTotal: 1 });
    // One that ends after the connection closed (drained): carried 1 more, nothing lost.
    s.tablesChanged({ epoch: 3, tables: ONE_PREV });
    await vi.advanceTimersByTimeAsync(300);
    sockets = [];
    await vi.advanceTimersByTimeAsync(600);
    s.tablesChanged({ epoch: 4, tables: NO_PREV });
    expect(s.status()).toMatchObject({ carriedTotal: 2, lostTotal: 1 });
    // One whose bucket comes back to this node: its connections go on, nothing lost.
    sockets = [held];
    s.tablesChanged({ epoch: 5, tables: ONE_PREV });
    await vi.advanceTimersByTimeAsync(300);
    const back = ONE_PREV.buckets.map((r, g) => (g === 0 ? r.map((o, b) => (b === heldBucket ? SELF : o)) : r));
    s.tablesChanged({ epoch: 6, tables: { ...NO_PREV, buckets: back } });
    expect(s.status()).toMatchObject({ carriedTotal: 3, lostTotal: 1 });
    await s.stop();
  });

  it('does not sample without a bucket in handover from this node', async () => {
    const s = sampler();
    s.tablesChanged({ epoch: 1, tables: NO_PREV });
    s.tablesChanged(undefined);
    await vi.advanceTimersByTimeAsync(2000);
    expect(scans).toBe(0);
    expect(s.status()).toBeUndefined();
    await s.stop();
  });

  it('never samples more often than every 250 ms, whatever the interval asked or the table changes', async () => {
    const s = sampler({ intervalMs: 10 });
    s.tablesChanged({ epoch: 1, tables: ONE_PREV });
    await vi.advanceTimersByTimeAsync(0);
    for (let e = 2; e < 12; e++) {
      s.tablesChanged({ epoch: e, tables: e % 2 ? ONE_PREV : NO_PREV });
      await vi.advanceTimersByTimeAsync(20);
    }
    // 200 ms of churn after the first sample (its two reads): no second sample yet.
    expect(scans).toBe(2);
    expect(reports).toHaveLength(1);
    await s.stop();
  });

  it('tags a sample with the epoch installed when it started, even if a newer table came during the read', async () => {
    let release!: () => void;
    const slow: SocketScan = async (visit) => {
      scans++;
      if (scans === 1) await new Promise<void>((r) => { release = r; });
      visit(held);
      return { truncated: false, lines: 1 };
    };
    const s = sampler({ scan: slow });
    s.tablesChanged({ epoch: 3, tables: ONE_PREV });
    await vi.advanceTimersByTimeAsync(0);
    s.tablesChanged({ epoch: 4, tables: ONE_PREV });
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(reports.map((r) => r.epoch)).toEqual([3]);
    await vi.advanceTimersByTimeAsync(250);
    expect(reports.map((r) => r.epoch)).toEqual([3, 4]);
    await s.stop();
  });

  it('reports a bucket finished only after two reads found it empty', async () => {
    const s = sampler();
    s.tablesChanged({ epoch: 1, tables: ONE_PREV });
    await vi.advanceTimersByTimeAsync(0);
    sockets = [];
    await vi.advanceTimersByTimeAsync(250);
    await vi.advanceTimersByTimeAsync(250);
    expect(reports.map((r) => r.counts[0]![heldBucket])).toEqual([1, 1, 0]);
    expect(s.status()).toMatchObject({ prevBuckets: 1, connections: 0 });
    expect(s.status()!.sampledAtMs).toBe(Date.now());
    await s.stop();
  });

  it('drops a sample in flight when the new table no longer names this node previous owner', async () => {
    let release!: () => void;
    const slow: SocketScan = async (visit) => {
      scans++;
      await new Promise<void>((r) => { release = r; });
      visit(held);
      return { truncated: false, lines: 1 };
    };
    const s = sampler({ scan: slow });
    s.tablesChanged({ epoch: 1, tables: ONE_PREV });
    await vi.advanceTimersByTimeAsync(0);
    s.tablesChanged({ epoch: 2, tables: NO_PREV });
    release();
    await vi.advanceTimersByTimeAsync(1000);
    expect(reports).toEqual([]);
    expect(scans).toBe(1);
    await s.stop();
  });

  it('confirms a bucket that just became ours to hand over with a second read at once', async () => {
    const s = sampler();
    s.tablesChanged({ epoch: 1, tables: ONE_PREV });
    await vi.advanceTimersByTimeAsync(0);
    expect(scans).toBe(2);
    await vi.advanceTimersByTimeAsync(250);
    expect(scans).toBe(3);
    // Same buckets under a new epoch: the previous sample still confirms.
    s.tablesChanged({ epoch: 2, tables: { ...ONE_PREV } });
    await vi.advanceTimersByTimeAsync(250);
    expect(scans).toBe(4);
    // A new hash seed puts connections in other buckets: the old reads say nothing.
    s.tablesChanged({ epoch: 3, tables: { ...ONE_PREV, hashSeed: 1 } });
    await vi.advanceTimersByTimeAsync(250);
    expect(scans).toBe(6);
    expect(reports.map((r) => r.epoch)).toEqual([1, 1, 2, 3]);
    await s.stop();
  });

  it('does not let a read that missed a connection end a new handover (two reads at its start)', async () => {
    let n = 0;
    const flaky: SocketScan = async (visit) => {
      // The first read of all misses the connection (a skip in the kernel's table walk).
      if (n++ > 0) visit(held);
      return { truncated: false, lines: 1 };
    };
    const s = sampler({ scan: flaky });
    s.tablesChanged({ epoch: 1, tables: ONE_PREV });
    await vi.advanceTimersByTimeAsync(0);
    expect(reports.map((r) => r.counts[0]![heldBucket])).toEqual([1]);
    await s.stop();
  });

  it('reports nothing from a truncated or unreadable table (a partial count could end a handover too early)', async () => {
    const lines: Record<string, unknown>[] = [];
    const capture = pino({ level: 'warn' }, { write: (l: string) => { lines.push(JSON.parse(l) as Record<string, unknown>); } });
    let mode: 'truncated' | 'error' = 'truncated';
    const bad: SocketScan = async () => {
      scans++;
      if (mode === 'error') throw new Error('EACCES');
      return { truncated: true, lines: 1_000_000 };
    };
    const s = sampler({ scan: bad, log: capture });
    s.tablesChanged({ epoch: 1, tables: ONE_PREV });
    await vi.advanceTimersByTimeAsync(600);
    mode = 'error';
    await vi.advanceTimersByTimeAsync(600);
    expect(scans).toBeGreaterThanOrEqual(4);
    expect(reports).toEqual([]);
    // Warned once per kind, not at every sample.
    expect(lines.map((l) => l.event)).toEqual(['holdings_truncated', 'holdings_unreadable']);
    await s.stop();
  });

  it('reports nothing once stopped', async () => {
    const s = sampler();
    s.tablesChanged({ epoch: 1, tables: ONE_PREV });
    await s.stop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(reports).toEqual([]);
    s.tablesChanged({ epoch: 2, tables: ONE_PREV });
    await vi.advanceTimersByTimeAsync(1000);
    expect(scans).toBe(0);
  });
});
