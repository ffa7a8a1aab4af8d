// Heartbeat encoding, authentication, replay protection, the key file and the UDP
// transport on loopback.

import { createHmac } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ReplayGuard, createMemoryNetwork, createUdpTransport, decodeHeartbeat, encodeHeartbeat, loadKey, MembershipEngine,
  DEFAULT_TIMING, addressesFromLans, encodeBitmap, bitmapHas, tableDigest, type Heartbeat,
} from '../../src/membership/index.js';
import { decodeRows, encodeRows, sameWireRows } from '../../src/membership/table.js';

const key = Buffer.alloc(32, 1);

function hb(over: Partial<Heartbeat> = {}): Heartbeat {
  return {
    v: 1, module: 'farm', from: 'node1', incarnation: 1_700_000_000_000_000_000n, seq: 1, sentAtNs: 5_000_000_000n,
    state: 'UP', cause: '', configDigest: 'abc', epoch: 3, leader: 'node1', view: ['node1', 'node2'], tableDigest: 'd',
    table: [Buffer.alloc(256, 0).toString('base64')], powers: { version: 1, origin: 'node2', entries: [{ node: 'node2', group: null, power: 0 }] },
    acks: [{ node: 'node2', incarnation: 42n, seq: 9 }],
    heard: [{ node: 'node2', ageMs: 12, state: 'UP', mutual: true, epoch: 3, tableDigest: 'd' }],
    ...over,
  };
}

describe('heartbeat codec', () => {
  it('round-trips a heartbeat, bigints included', () => {
    expect(decodeHeartbeat(encodeHeartbeat(hb(), key), key)).toEqual(hb());
  });

  it('rejects a heartbeat signed with another key', () => {
    expect(() => decodeHeartbeat(encodeHeartbeat(hb(), Buffer.alloc(32, 2)), key)).toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_BAD_MAC' }));
  });

  it('rejects a forged heartbeat: any flipped byte of the body fails authentication', () => {
    const bytes = encodeHeartbeat(hb(), key);
    for (const i of [40, 60, bytes.length - 2]) {
      const forged = Buffer.from(bytes);
      forged[i] = forged[i]! ^ 1;
      expect(() => decodeHeartbeat(forged, key)).toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_BAD_MAC' }));
    }
  });

  it('rejects what is not a farmlb heartbeat without parsing it', () => {
    expect(() => decodeHeartbeat(Buffer.from('hello'), key)).toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_BAD_MESSAGE' }));
    expect(() => decodeHeartbeat(Buffer.alloc(70_000), key)).toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_BAD_MESSAGE' }));
  });

  it('round-trips the handover fields: previous owners and what the sender still holds', () => {
    const withHandover = hb({
      prev: [Buffer.alloc(256, 255).toString('base64')],
      holdings: { epoch: 3, held: [encodeBitmap((b) => b === 0 || b === 255)], connections: [12] },
    });
    const back = decodeHeartbeat(encodeHeartbeat(withHandover, key), key);
    expect(back).toEqual(withHandover);
    expect(bitmapHas(back.holdings!.held[0], 0)).toBe(true);
    expect(bitmapHas(back.holdings!.held[0], 1)).toBe(false);
    expect(bitmapHas(back.holdings!.held[0], 255)).toBe(true);
  });

  it('reads a heartbeat without handover fields as no bucket in handover, and a malformed bitmap as all held', () => {
    const back = decodeHeartbeat(encodeHeartbeat(hb(), key), key);
    expect('prev' in back).toBe(false);
    expect('holdings' in back).toBe(false);
    expect(bitmapHas('AAAA', 7)).toBe(true);
    expect(() => decodeHeartbeat(encodeHeartbeat(hb({ holdings: { epoch: -1, held: [], connections: [] } }), key), key))
      .toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_BAD_MESSAGE' }));
  });

  it('gives a table with previous owners another digest, and one without them the digest it always had', () => {
    const owners = [new Array<string | null>(256).fill('a')];
    const none = [new Array<string | null>(256).fill(null)];
    const some = [new Array<string | null>(256).fill(null).map((_, b) => (b === 3 ? 'b' : null))];
    expect(tableDigest(owners, none)).toBe(tableDigest(owners));
    expect(tableDigest(owners, some)).not.toBe(tableDigest(owners));
  });

  it('rejects an authenticated body of the wrong shape', () => {
    const bytes = encodeHeartbeat({ ...hb(), seq: -1 }, key);
    expect(() => decodeHeartbeat(bytes, key)).toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_BAD_MESSAGE' }));
  });
});

describe('receive path: decoding work skipped, validation kept', () => {
  const nodes = ['node1', 'node2'];
  const rowsOf = (owner: (b: number) => string | null) => [Array.from({ length: 256 }, (_, b) => owner(b))];
  const follower = () => new MembershipEngine({
    self: 'node2', nodes, groups: [{ name: 'web', powers: new Map([['node1', 1], ['node2', 1]]) }], configDigest: 'x',
    timing: DEFAULT_TIMING, splitBrain: 'serve', incarnation: 1n, startNs: 0n,
  });
  /** A heartbeat of leader node1 carrying `rows` (wire rows overridable to tamper with them). */
  const leaderHb = (seq: number, epoch: number, rows: (string | null)[][], wire?: string[]): Heartbeat => hb({
    from: 'node1', seq, sentAtNs: BigInt(seq) * 50_000_000n, configDigest: 'x', epoch, leader: 'node1', view: nodes,
    tableDigest: tableDigest(rows), table: wire ?? encodeRows(rows, nodes), acks: [], powers: { version: 0, origin: '', entries: [] },
    heard: [{ node: 'node2', ageMs: 1, state: 'UP', mutual: true, epoch: 0, tableDigest: 'd' }],
  });
  const peerRows = (e: MembershipEngine) => (e as unknown as { peers: Map<string, { rows?: unknown }> }).peers.get('node1')!.rows;
  const ms = 1_000_000n;

  it('decodes a peer\'s unchanged table once, decodes a changed one afresh, and still refuses a tampered one', () => {
    const e = follower();
    e.tick(0n);
    const a = rowsOf((b) => (b % 2 ? 'node1' : 'node2'));
    e.receive(leaderHb(1, 1, a), 10n * ms);
    const first = peerRows(e);
    expect(first).toEqual({ groups: a, prev: [new Array(256).fill(null)] });
    expect(e.tick(50n * ms).table?.groups).toEqual(a);
    // Same wire rows (new strings from a new datagram): the same decoded rows, not a copy.
    e.receive(leaderHb(2, 1, a), 60n * ms);
    expect(peerRows(e)).toBe(first);
    // A changed table is decoded again and installed as it is.
    const b2 = rowsOf((b) => (b < 200 ? 'node1' : 'node2'));
    expect(e.receive(leaderHb(3, 2, b2), 110n * ms).table?.groups).toEqual(b2);
    expect(peerRows(e)).not.toBe(first);
    // A row one byte short, or not base64 of 256 bytes: no table, nothing installed, however often it comes.
    const short = Buffer.alloc(255, 0).toString('base64');
    for (const [seq, wire] of [[4, [short]], [5, [short]], [6, ['!!!!']]] as const) {
      expect(e.receive(leaderHb(seq, 3, b2, [...wire]), BigInt(110 + seq) * ms).table).toBeUndefined();
      expect(peerRows(e)).toBeUndefined();
    }
    expect(e.status().table.epoch).toBe(2);
    // And the valid table after them decodes again.
    expect(e.receive(leaderHb(7, 3, a), 130n * ms).table?.groups).toEqual(a);
  });

  it('decodes rows exactly as encoded, unknown indexes as unowned, and compares wire rows by content', () => {
    const rows = [rowsOf((b) => (b % 3 === 0 ? null : b % 3 === 1 ? 'node1' : 'node2'))[0]!, rowsOf(() => 'node2')[0]!];
    expect(decodeRows(encodeRows(rows, nodes), nodes)).toEqual(rows);
    expect(decodeRows([Buffer.alloc(256, 7).toString('base64')], nodes)).toEqual([new Array(256).fill(null)]);
    expect(decodeRows([Buffer.alloc(257, 0).toString('base64')], nodes)).toBeUndefined();
    const wire = encodeRows(rows, nodes);
    expect(sameWireRows(wire, wire.map((r) => `${r}`))).toBe(true);
    expect(sameWireRows(undefined, undefined)).toBe(true);
    expect(sameWireRows(wire, undefined)).toBe(false);
    expect(sameWireRows(wire, [wire[0]!])).toBe(false);
    expect(sameWireRows(wire, [wire[0]!, wire[0]!])).toBe(false);
  });

  it('still refuses malformed bodies field by field, also after the same fields were accepted', () => {
    // An incarnation accepted once (and remembered) does not make a malformed one pass.
    expect(decodeHeartbeat(encodeHeartbeat(hb(), key), key).acks[0]!.incarnation).toBe(42n);
    const forge = (body: Record<string, unknown>) => {
      const json = Buffer.from(JSON.stringify(body));
      const mac = createHmac('sha256', key).update('FLB1').update(json).digest();
      return Buffer.concat([Buffer.from('FLB1'), mac, json]);
    };
    const good = JSON.parse(encodeHeartbeat(hb(), key).subarray(36).toString()) as Record<string, unknown>;
    expect(decodeHeartbeat(forge(good), key)).toEqual(hb());
    const bad: [string, unknown][] = [
      ['acks', [{ node: 'node2', incarnation: '42x', seq: 9 }]],
      ['acks', [{ node: 'node2', incarnation: 42, seq: 9 }]],
      ['incarnation', '-1'],
      ['sentAtNs', '1e9'],
      ['table', ['x'.repeat(401)]],
      ['table', [7]],
      ['prev', 'AAAA'],
      ['view', ['node1', 3]],
      ['heard', [{ node: 'node2', ageMs: 1.5, state: 'UP', mutual: true, epoch: 3, tableDigest: 'd' }]],
      ['heard', [{ node: 'node2', ageMs: 1, state: 'UP', mutual: 'yes', epoch: 3, tableDigest: 'd' }]],
      ['powers', { version: 1, origin: 'node2', entries: [{ node: 'node2', group: 5, power: 0 }] }],
      ['holdings', { epoch: 1, held: ['x'.repeat(65)], connections: [] }],
      ['holdings', { epoch: 1, held: [], connections: [-1] }],
      ['leader', 7],
    ];
    for (const [field, value] of bad) {
      expect(() => decodeHeartbeat(forge({ ...good, [field]: value }), key), `${field} = ${JSON.stringify(value)}`)
        .toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_BAD_MESSAGE' }));
    }
  });
});

describe('replay window', () => {
  const ms = 1_000_000n;
  it('accepts increasing seqs, rejects a replayed or older seq and an older incarnation', () => {
    const g = new ReplayGuard(200n * ms);
    expect(g.check({ from: 'a', incarnation: 2n, seq: 1, sentAtNs: 0n }, 1000n * ms)).toMatchObject({ ok: true, newIncarnation: true });
    expect(g.check({ from: 'a', incarnation: 2n, seq: 2, sentAtNs: 50n * ms }, 1050n * ms)).toMatchObject({ ok: true });
    expect(g.check({ from: 'a', incarnation: 2n, seq: 2, sentAtNs: 50n * ms }, 1060n * ms)).toMatchObject({ ok: false });
    expect(g.check({ from: 'a', incarnation: 2n, seq: 1, sentAtNs: 0n }, 1060n * ms)).toMatchObject({ ok: false });
    expect(g.check({ from: 'a', incarnation: 1n, seq: 99, sentAtNs: 0n }, 1060n * ms)).toMatchObject({ ok: false, reason: 'older incarnation' });
    expect(g.check({ from: 'a', incarnation: 3n, seq: 1, sentAtNs: 7n }, 1070n * ms)).toMatchObject({ ok: true, newIncarnation: true });
  });

  it('rejects a heartbeat that arrives far later than the sender\'s others (queued during a pause)', () => {
    const g = new ReplayGuard(200n * ms);
    g.check({ from: 'a', incarnation: 1n, seq: 1, sentAtNs: 0n }, 1000n * ms);
    expect(g.check({ from: 'a', incarnation: 1n, seq: 2, sentAtNs: 50n * ms }, 2050n * ms)).toMatchObject({ ok: false });
    expect(g.check({ from: 'a', incarnation: 1n, seq: 3, sentAtNs: 2100n * ms }, 3100n * ms)).toMatchObject({ ok: true });
  });

  it('tolerates a bounded clock-rate difference over hours', () => {
    const g = new ReplayGuard(200n * ms);
    // The sender's clock runs 500 ppm slow: transit seems to grow 0.5 ms per second.
    for (let i = 0; i < 3600; i++) {
      const recv = BigInt(i) * 1000n * ms;
      const sent = recv - recv / 2000n;
      expect(g.check({ from: 'a', incarnation: 1n, seq: i + 1, sentAtNs: sent }, recv).ok).toBe(true);
    }
  });
});

describe('engine input checks', () => {
  const engine = () => new MembershipEngine({
    self: 'node1', nodes: ['node1', 'node2'], groups: [{ name: 'web', powers: new Map([['node1', 1]]) }], configDigest: 'x',
    timing: DEFAULT_TIMING, splitBrain: 'serve', incarnation: 1n, startNs: 0n,
  });

  it('refuses power changes for unknown nodes, unknown groups, non-hosts and bad values', () => {
    const e = engine();
    expect(() => e.setPower('node9', 1)).toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_UNKNOWN_NODE' }));
    expect(() => e.setPower('node1', 1, 'db')).toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_UNKNOWN_GROUP' }));
    expect(() => e.setPower('node2', 1, 'web')).toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_NOT_IN_GROUP' }));
    expect(() => e.setPower('node1', -1)).toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_BAD_POWER' }));
  });

  it('refuses a timing whose lease would lapse between heartbeats', () => {
    expect(() => new MembershipEngine({
      self: 'node1', nodes: ['node1'], groups: [], configDigest: 'x', timing: { ...DEFAULT_TIMING, leaseMs: 40 },
      splitBrain: 'serve', incarnation: 1n, startNs: 0n,
    })).toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_TIMING' }));
  });

  it('rejects heartbeats of another module, with its own name, or from a node outside cluster.xml', () => {
    const e = engine();
    for (const bad of [hb({ module: 'other', from: 'node2' }), hb({ from: 'node1' }), hb({ from: 'node7' })]) {
      expect(e.receive(bad, 10n).events[0]).toMatchObject({ type: 'rejected' });
    }
  });
});

describe('key file', () => {
  let dir: string;
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('loads a 0600 key (a trailing newline removed), refuses missing, short and world-readable keys, warns on group access', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'farmlb-key-'));
    const file = path.join(dir, 'farm.key');
    await writeFile(file, 'a'.repeat(32) + '\n', { mode: 0o600 });
    expect((await loadKey(file)).length).toBe(32);
    await expect(loadKey(path.join(dir, 'missing'))).rejects.toMatchObject({ code: 'FARMLB_E_MEMBERSHIP_KEY_MISSING' });
    await chmod(file, 0o604);
    await expect(loadKey(file)).rejects.toMatchObject({ code: 'FARMLB_E_MEMBERSHIP_KEY_PERMISSIONS' });
    await chmod(file, 0o640);
    const warnings: string[] = [];
    await loadKey(file, (w) => warnings.push(w));
    expect(warnings).toHaveLength(1);
    const short = path.join(dir, 'short.key');
    await writeFile(short, 'abc', { mode: 0o600 });
    await expect(loadKey(short)).rejects.toMatchObject({ code: 'FARMLB_E_MEMBERSHIP_KEY_SHORT' });
  });
});

describe('transports', () => {
  const log = pino({ level: 'silent' });

  it('derives bind addresses and peers from cluster.xml LANs, LAN by LAN', () => {
    const lans = [
      { name: 'a', nodes: [{ name: 'n1', addr: '10.0.0.1' }, { name: 'n2', addr: '10.0.0.2' }] },
      { name: 'b', nodes: [{ name: 'n1', addr: '10.1.0.1' }, { name: 'n3', addr: '10.1.0.3' }] },
    ];
    expect(addressesFromLans('n1', lans)).toEqual({
      bindAddrs: ['10.0.0.1', '10.1.0.1'],
      peers: [{ node: 'n2', addrs: ['10.0.0.2', undefined] }, { node: 'n3', addrs: [undefined, '10.1.0.3'] }],
    });
  });

  it('carries authenticated heartbeats over UDP on loopback and drops a wrong key', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const a = await createUdpTransport({ bindAddrs: ['127.0.0.1'], peers: [{ node: 'b', addrs: ['127.0.0.2'] }], port, key, log });
    const b = await createUdpTransport({ bindAddrs: ['127.0.0.2'], peers: [{ node: 'a', addrs: ['127.0.0.1'] }], port, key, log });
    const c = await createUdpTransport({ bindAddrs: ['127.0.0.3'], peers: [{ node: 'b', addrs: ['127.0.0.2'] }], port, key: Buffer.alloc(32, 9), log });
    try {
      const got = new Promise<Heartbeat>((resolve) => b.onReceive(resolve));
      const invalid = new Promise<string | undefined>((resolve) => b.onInvalid((from) => resolve(from)));
      a.send(hb());
      expect((await got).seq).toBe(1);
      c.send(hb());
      await invalid;
      expect(b.stats().badMac).toBe(1);
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  it('refuses to bind an address this host does not have', async () => {
    await expect(createUdpTransport({ bindAddrs: ['192.0.2.77'], peers: [], port: 4800, key, log })).rejects.toMatchObject({ code: 'FARMLB_E_MEMBERSHIP_BIND' });
  });

  it('memory network: delivers to every other node, honours cuts', async () => {
    const net = createMemoryNetwork(3);
    const a = net.transport('a', key);
    const b = net.transport('b', key);
    const c = net.transport('c', key);
    const seen: string[] = [];
    b.onReceive((m) => seen.push(`b<${m.from}`));
    c.onReceive((m) => seen.push(`c<${m.from}`));
    net.setLink('a', 'c', { up: false });
    a.send(hb({ from: 'a' }));
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(['b<a']);
  });
});
