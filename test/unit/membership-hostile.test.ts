// Hostile input on the membership port (docs/security.md, "Unauthenticated datagrams"): junk,
// oversize, wrong-key and wrong-source datagrams are counted per source and dropped before
// any decision; they change no state, eligibility or lease — a lone node keeps serving.

import dgram from 'node:dgram';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import {
  BuiltinMembership, DEFAULT_TIMING, MembershipEngine, createMemoryNetwork, createUdpTransport, encodeHeartbeat,
  type EngineOutput, type Heartbeat,
} from '../../src/membership/index.js';
import { DropAccounting, DROP_LOG_EVERY_MS, MAX_DROP_SOURCES, type TransportStats } from '../../src/membership/transport.js';

const key = Buffer.alloc(32, 1);
const log = pino({ level: 'silent' });
const nowNs = () => process.hrtime.bigint();

function hb(over: Partial<Heartbeat> = {}): Heartbeat {
  return {
    v: 2, module: 'farm', from: 'n2', incarnation: 5n, seq: 1, sentAtNs: nowNs(),
    state: 'UP', cause: '', configDigest: 'cfg', epoch: 0, leader: null, view: [], tableDigest: 'd',
    table: [Buffer.alloc(256, 255).toString('base64')], powers: { version: 0, origin: '', entries: [] },
    acks: [], heard: [],
    ...over,
  };
}

/** Polls `cond` every 5 ms until true or `ms` passed (a deadline, not a timed assertion). */
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return cond();
}

function stats(): TransportStats {
  return { sent: 0, received: 0, badMac: 0, malformed: 0, wrongSource: 0, sendErrors: 0, sendCpuUs: 0, receiveCpuUs: 0 };
}

describe('membership: unauthenticated datagrams change no state', () => {
  it('a lone node under junk UDP (junk, oversize, wrong key from a peer address) keeps serving: no decision, no lease lapse', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const engine = new MembershipEngine({
      self: 'n1', nodes: ['n1', 'n2'], groups: [{ name: 'g', powers: new Map([['n1', 1], ['n2', 1]]) }],
      configDigest: 'cfg', timing: DEFAULT_TIMING, splitBrain: 'serve', incarnation: 1n, startNs: nowNs(),
    });
    const transport = await createUdpTransport({ bindAddrs: ['127.0.0.1'], peers: [{ node: 'n2', addrs: ['127.0.0.2'] }], port, key, log });
    const membership = new BuiltinMembership({ engine, transport, pulseMs: DEFAULT_TIMING.pulseMs, nowNs });
    const applied: EngineOutput[] = [];
    membership.start((out) => { applied.push(out); });
    // n2's address (the node is down) and a stranger's, as a scanner or an attacker sends.
    const fromPeer = dgram.createSocket('udp4');
    const fromStranger = dgram.createSocket('udp4');
    await Promise.all([
      new Promise<void>((r) => fromPeer.bind(0, '127.0.0.2', () => r())),
      new Promise<void>((r) => fromStranger.bind(0, '127.0.0.9', () => r())),
    ]);
    try {
      expect(await until(() => engine.status(nowNs()).state === 'UP', 5000)).toBe(true);
      const upAt = applied.length;
      const wrongKey = encodeHeartbeat(hb(), Buffer.alloc(32, 9));
      const junk = [Buffer.from('junk\n'), Buffer.alloc(61_000, 1), Buffer.from('FLB1'), wrongKey, Buffer.concat([wrongKey.subarray(0, 36), Buffer.from('{')])];
      let sent = 0;
      for (let round = 0; round < 40; round++) {
        for (const bytes of junk) {
          fromPeer.send(bytes, port, '127.0.0.1');
          fromStranger.send(bytes, port, '127.0.0.1');
          sent += 2;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      const dropped = () => [...transport.drops().values()].reduce((a, b) => a + b, 0);
      expect(await until(() => dropped() >= sent * 0.9, 5000)).toBe(true);
      // Several pulses after the last junk: still UP, the lease still renewed.
      const ticks = applied.length;
      expect(await until(() => applied.length >= ticks + 3, 5000)).toBe(true);
      const since = applied.slice(upAt);
      expect(since.every((o) => o.state === 'UP')).toBe(true);
      expect(since.some((o) => o.leaseDeadlineNs === 0n)).toBe(false);
      expect(since.flatMap((o) => o.events).filter((e) => e.type === 'rejected')).toEqual([]);
      expect(engine.status(nowNs()).leaseDeadlineNs).toBeGreaterThan(nowNs());
      // Counted per source; the wrong-key frame from n2's address is reported, nothing more.
      expect(transport.drops().get('127.0.0.2')).toBeGreaterThan(0);
      expect(transport.drops().get('127.0.0.9')).toBeGreaterThan(0);
      expect(transport.stats().received).toBe(0);
      expect(engine.status(nowNs()).peers.find((p) => p.node === 'n2')?.foreignKeyMs).toBeDefined();
      // What an operator sees (status membershipDatagrams, farmlb_membership_dropped_total):
      // each refusal under its reason, the two sources, and this node's own heartbeats still leaving.
      const d = membership.datagrams();
      expect(d.dropped.not_farmlb).toBeGreaterThan(0); // 'junk\n', a bare 'FLB1'
      expect(d.dropped.oversize).toBeGreaterThan(0); // 61,000 bytes
      expect(d.dropped.bad_mac).toBeGreaterThan(0); // another key
      expect(d.dropped.wrong_source).toBe(0);
      expect(Object.values(d.dropped).reduce((a, b) => a + b, 0)).toBe(dropped());
      expect(d.droppedBySource.map((x) => x.source).sort()).toEqual(['127.0.0.2', '127.0.0.9']);
      expect(d.droppedBySource.reduce((a, x) => a + x.count, 0)).toBe(dropped());
      expect(d.sent).toBeGreaterThan(0);
      expect(d.sendErrors).toBe(0);
    } finally {
      fromPeer.close();
      fromStranger.close();
      await membership.stop();
    }
  }, 20_000);

  it('"another key" is diagnosed only from a well-formed frame of a configured node address', async () => {
    const net = createMemoryNetwork(1);
    const b = net.transport('n1', key);
    const foreign: string[] = [];
    b.onForeignKey((node) => foreign.push(node));
    const wrongKey = encodeHeartbeat(hb(), Buffer.alloc(32, 9));
    net.inject('n1', wrongKey); // from no node address
    net.inject('n1', Buffer.from('junk'), 'n2'); // junk from n2's address
    net.inject('n1', wrongKey, 'n2');
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(foreign).toEqual(['n2']);
    expect(b.stats()).toMatchObject({ badMac: 2, malformed: 1, received: 0 });
  });

  it('a heartbeat that authenticates but names another node than its source address is dropped (check_unicast_src)', async () => {
    const net = createMemoryNetwork(1);
    const b = net.transport('n1', key);
    const got: Heartbeat[] = [];
    b.onReceive((m) => got.push(m));
    net.inject('n1', encodeHeartbeat(hb({ from: 'n2' }), key), 'n3');
    net.inject('n1', encodeHeartbeat(hb({ from: 'n2' }), key));
    net.inject('n1', encodeHeartbeat(hb({ from: 'n2', seq: 2 }), key), 'n2');
    await new Promise((r) => setImmediate(r));
    expect(got.map((m) => m.seq)).toEqual([2]);
    expect(b.stats().wrongSource).toBe(2);
  });

  it('logs one warning per reason per interval whatever the sizes, and counts sources in bounded memory', () => {
    const warnings: unknown[] = [];
    const fakeLog = { warn: (o: unknown) => warnings.push(o) } as unknown as pino.Logger;
    let now = 0;
    const s = stats();
    const acc = new DropAccounting(s, fakeLog, () => now);
    for (let i = 0; i < 10_000; i++) acc.drop('oversize', `10.0.${i >> 8}.${i & 255}`);
    expect(warnings).toHaveLength(1);
    expect(s.malformed).toBe(10_000);
    expect(acc.counts().size).toBe(MAX_DROP_SOURCES + 1);
    expect(acc.counts().get('other')).toBe(10_000 - MAX_DROP_SOURCES);
    now += DROP_LOG_EVERY_MS;
    acc.drop('oversize', '10.9.9.9');
    expect(warnings).toHaveLength(2);
    expect(warnings[1]).toMatchObject({ reason: 'oversize', dropped: 10_000 });
  });
});
