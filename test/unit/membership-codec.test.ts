// Heartbeat encoding, authentication, replay protection, the key file and the UDP
// transport on loopback.

import { createHmac } from 'node:crypto';
import dgram from 'node:dgram';
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
import { frameBody } from '../../src/membership/codec.js';
import { keyId } from '../../src/membership/key.js';

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

  it('rejects a heartbeat signed with another key: by its key id (FLB2), by its MAC (FLB1)', () => {
    const other = Buffer.alloc(32, 2);
    expect(() => decodeHeartbeat(encodeHeartbeat(hb(), other), key)).toThrow(expect.objectContaining({
      code: 'FARMLB_E_MEMBERSHIP_UNKNOWN_KEY', details: expect.objectContaining({ keyId: keyId(other), accepted: keyId(key) }),
    }));
    expect(() => decodeHeartbeat(encodeHeartbeat(hb(), other, { frame: 1 }), key)).toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_BAD_MAC' }));
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

describe('heartbeat codec v2 (compact body)', () => {
  const forge = (json: string) => {
    const body = Buffer.from(json);
    const mac = createHmac('sha256', key).update('FLB1').update(body).digest();
    return Buffer.concat([Buffer.from('FLB1'), mac, body]);
  };
  const bodyOf = (bytes: Buffer) => JSON.parse(frameBody(bytes).toString()) as Record<string, unknown>;
  /** A node's heartbeat in a farm of `n` on one table, with 19-digit incarnations as the daemon makes them. */
  const farmHb = (n: number): Heartbeat => {
    const names = Array.from({ length: n }, (_, i) => `n${String(i + 1).padStart(2, '0')}`);
    const peers = names.filter((x) => x !== 'n02');
    const rows = [Array.from({ length: 256 }, (_, b) => names[b % n]!)];
    const digest = tableDigest(rows);
    return hb({
      v: 2, from: 'n02', incarnation: 1_761_000_000_123_456_789n, seq: 1_728_123, sentAtNs: 864_123_456_789_012n,
      configDigest: 'c'.repeat(64), epoch: 7, leader: 'n01', view: names, tableDigest: digest, table: encodeRows(rows, names),
      powers: { version: 0, origin: '', entries: [] },
      acks: peers.map((node, i) => ({ node, incarnation: 1_761_000_000_123_456_789n + BigInt(i * 7919), seq: 1_728_100 + i })),
      heard: peers.map((node, i) => ({ node, ageMs: 40 + i, state: 'UP' as const, mutual: true, epoch: 7, tableDigest: digest })),
    });
  };

  it('round-trips every field: prev rows, holdings, powers, bigints, peers on other tables, unpaired acks and reports', () => {
    const full = hb({
      v: 2, incarnation: 18_446_744_073_709_551_615n, sentAtNs: 0n, state: 'WAIT', cause: 'waiting for the table of leader node1',
      leader: null, view: ['node2', 'node1'], prev: [Buffer.alloc(256, 255).toString('base64'), Buffer.alloc(256, 1).toString('base64')],
      table: [Buffer.alloc(256, 0).toString('base64'), Buffer.alloc(256, 1).toString('base64')],
      holdings: { epoch: 3, held: [encodeBitmap((b) => b === 0 || b === 255), encodeBitmap(() => false)], connections: [12, 0] },
      powers: { version: 4, origin: 'node3', entries: [{ node: 'node2', group: null, power: 0 }, { node: 'node4', group: 'web', power: 7 }] },
      acks: [{ node: 'node2', incarnation: 42n, seq: 9 }, { node: 'node3', incarnation: 1_700_000_000_000_000_001n, seq: 1 }, { node: 'node5', incarnation: 1n, seq: 2 }],
      heard: [
        { node: 'node2', ageMs: 12, state: 'UP', mutual: true, epoch: 3, tableDigest: 'd' },
        { node: 'node3', ageMs: 0, state: 'WAIT', mutual: false, epoch: 2, tableDigest: 'd' },
        { node: 'node6', ageMs: 99, state: 'UP', mutual: false, epoch: 1, tableDigest: 'other' },
      ],
    });
    const back = decodeHeartbeat(encodeHeartbeat(full, key), key);
    expect(back).toEqual(full);
    expect(bodyOf(encodeHeartbeat(full, key))).toMatchObject({ v: 2, a: [[expect.any(Number), '1', 2]], h: [[expect.any(Number), 99, 1, 0, 1, 'other']] });
    // The defaults left out of the body come back as they were.
    const plain = hb({ v: 2, powers: { version: 0, origin: '', entries: [] } });
    const body = bodyOf(encodeHeartbeat(plain, key));
    expect(body).not.toHaveProperty('c');
    expect(body).not.toHaveProperty('pw');
    expect(body).not.toHaveProperty('pr');
    expect(decodeHeartbeat(encodeHeartbeat(plain, key), key)).toEqual(plain);
    // A view naming a node twice (the engine never sends one) still round-trips, as indexes.
    const twice = hb({ v: 2, view: ['node1', 'node2', 'node1'] });
    expect(decodeHeartbeat(encodeHeartbeat(twice, key), key)).toEqual(twice);
  });

  it('decodes v1 and v2 into the same heartbeat, each marked with its version', () => {
    const one = farmHb(4);
    const v1 = decodeHeartbeat(encodeHeartbeat({ ...one, v: 1 }, key), key);
    const v2 = decodeHeartbeat(encodeHeartbeat(one, key), key);
    expect(v1.v).toBe(1);
    expect(v2.v).toBe(2);
    expect({ ...v1, v: 2 }).toEqual(v2);
    // A v1 body of a node that reads v2 says so (older releases ignore the extra field).
    const marked = decodeHeartbeat(encodeHeartbeat({ ...one, v: 1, readsV2: true }, key), key);
    expect(marked.readsV2).toBe(true);
    const body = { ...JSON.parse(frameBody(encodeHeartbeat({ ...one, v: 1 }, key)).toString()), readsV2: 1 };
    expect(() => decodeHeartbeat(forge(JSON.stringify(body)), key)).toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_BAD_MESSAGE' }));
  });

  it('fits one datagram: ≤ 1,300 bytes at 16 nodes, under the IPv6 payload of a 1500-byte MTU at 20', () => {
    const at16 = encodeHeartbeat(farmHb(16), key);
    expect(at16.length).toBeLessThanOrEqual(1300);
    expect(encodeHeartbeat({ ...farmHb(16), v: 1 }, key).length).toBeGreaterThan(3000);
    expect(encodeHeartbeat(farmHb(20), key).length).toBeLessThanOrEqual(1500 - 40 - 8);
    expect(decodeHeartbeat(at16, key)).toEqual(farmHb(16));
  });

  it('rejects a v2 heartbeat with a tampered MAC or body', () => {
    const bytes = encodeHeartbeat(farmHb(3), key);
    for (const i of [10, 60, bytes.length - 3]) {
      const forged = Buffer.from(bytes);
      forged[i] = forged[i]! ^ 1;
      expect(() => decodeHeartbeat(forged, key)).toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_BAD_MAC' }));
    }
    expect(() => decodeHeartbeat(encodeHeartbeat(farmHb(3), Buffer.alloc(32, 2)), key)).toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_UNKNOWN_KEY' }));
  });

  it('refuses malformed v2 bodies: bad indexes, wrong arity, values out of range, unknown fields, garbage', () => {
    const sample = hb({
      v: 2, holdings: { epoch: 3, held: [encodeBitmap(() => true)], connections: [1] },
      acks: [{ node: 'node2', incarnation: 42n, seq: 9 }, { node: 'node3', incarnation: 5n, seq: 1 }],
      heard: [{ node: 'node2', ageMs: 12, state: 'UP', mutual: true, epoch: 3, tableDigest: 'd' }],
    });
    const good = bodyOf(encodeHeartbeat(sample, key));
    expect(decodeHeartbeat(forge(JSON.stringify(good)), key)).toEqual(sample);
    const names = good.n as string[];
    const bad: [string, unknown][] = [
      ['f', names.length], ['f', -1], ['f', 0.5], ['f', '0'], ['l', 99], ['l', -1],
      ['vw', names.length + 1], ['vw', -1], ['vw', [0, names.length]], ['vw', 'all'],
      ['n', ['node1', 'node1', 'node2', 'node3']], ['n', ['node1', 7]], ['n', 'node1'], ['n', ['x'.repeat(201)]],
      ['p', [[1, '16', 9, 12, 1]]], ['p', [[1, '16', 9, 12, 1, 1, 3, 'd', 'x']]], ['p', [[9, '16', 9, 12, 1, 1]]],
      ['p', [[1, '16', 9, 12, 2, 1]]], ['p', [[1, '16', 9, 12, 1, true]]], ['p', [[1, '16', 9, -3, 1, 1]]],
      ['p', [[1, 'G', 9, 12, 1, 1]]], ['p', [[1, '1'.repeat(14), 9, 12, 1, 1]]], ['p', [[1, 16, 9, 12, 1, 1]]],
      ['p', [[1, '16', 9, 12, 1, 1, -1]]], ['p', [[1, '16', 9, 12, 1, 1, 3, 4]]], ['p', {}],
      ['a', [[2, '5']]], ['a', [[2, '5', 1, 0]]], ['a', [[7, '5', 1]]], ['h', [[1, 12, 1]]], ['h', [[1, 12, 1, 1, 3, 'd', 0]]],
      ['i', '-1'], ['i', 'ABC'], ['t', '1.5'], ['t', 5], ['s', -1], ['st', 2], ['st', 'UP'], ['e', 1.5], ['c', 5], ['m', null],
      ['cd', 3], ['td', ['d']], ['tb', ['x'.repeat(401)]], ['tb', [7]], ['pr', 'AAAA'],
      ['pw', [1, 'node2']], ['pw', [1, 'node2', [[1, null]]]], ['pw', [1, 'node2', [[9, null, 0]]]], ['pw', [1, 'node2', [[1, 5, 0]]]],
      ['ho', [1, []]], ['ho', [1, ['x'.repeat(65)], []]], ['ho', [1, [], [-1]]],
      ['extra', 1], ['v', 3],
    ];
    for (const [field, value] of bad) {
      expect(() => decodeHeartbeat(forge(JSON.stringify({ ...good, [field]: value })), key), `${field} = ${JSON.stringify(value)}`)
        .toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_BAD_MESSAGE' }));
    }
    for (const field of ['n', 'f', 'i', 's', 't', 'st', 'cd', 'e', 'l', 'vw', 'td', 'tb', 'p', 'm']) {
      const { [field]: _, ...without } = good;
      expect(() => decodeHeartbeat(forge(JSON.stringify(without)), key), `without ${field}`)
        .toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_BAD_MESSAGE' }));
    }
    for (const garbage of [`${JSON.stringify(good)} x`, `${JSON.stringify(good)}{}`, JSON.stringify([good]), '']) {
      expect(() => decodeHeartbeat(forge(garbage), key), garbage.slice(-10)).toThrow(expect.objectContaining({ code: 'FARMLB_E_MEMBERSHIP_BAD_MESSAGE' }));
    }
  });

  it('keeps decimal (v1) and base-36 (v2) incarnations apart: one string, two values', () => {
    const v1 = decodeHeartbeat(encodeHeartbeat(hb({ acks: [{ node: 'node2', incarnation: 1001n, seq: 1 }] }), key), key);
    expect(v1.acks[0]!.incarnation).toBe(1001n);
    const body = { ...bodyOf(encodeHeartbeat(hb({ v: 2 }), key)), p: [[1, '1001', 1, 5, 1, 1]] };
    expect(decodeHeartbeat(forge(JSON.stringify(body)), key).acks[0]!.incarnation).toBe(BigInt(parseInt('1001', 36)));
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
    // It acknowledges node2's first heartbeat (sent at 0): the proof a new incarnation needs.
    tableDigest: tableDigest(rows), table: wire ?? encodeRows(rows, nodes), acks: [{ node: 'node2', incarnation: 1n, seq: 1 }], powers: { version: 0, origin: '', entries: [] },
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
    const good = JSON.parse(frameBody(encodeHeartbeat(hb(), key)).toString()) as Record<string, unknown>;
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

  it('gives every rejection a fixed reason (the log\'s rate-limit key): what the sender wrote goes to detail', () => {
    const e = engine();
    const reasons = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const ev = e.receive(hb({ module: `m${i}`, from: 'node2' }), 10n).events[0];
      expect(ev).toMatchObject({ type: 'rejected', reason: 'another module', detail: `module "m${i}", not farm` });
      if (ev?.type === 'rejected') reasons.add(ev.reason);
    }
    expect(reasons.size).toBe(1);
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
      a.send(hb({ from: 'a' }));
      expect((await got).seq).toBe(1);
      c.send(hb({ from: 'c' }));
      for (let i = 0; i < 200 && b.stats().badMac === 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(b.stats().badMac).toBe(1);
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  it('batched (the addon\'s sockets): heartbeats wait for drain() and come with their kernel arrival time; Node\'s sockets on request', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const a = await createUdpTransport({ bindAddrs: ['127.0.0.1'], peers: [{ node: 'b', addrs: ['127.0.0.2'] }], port, key, log });
    const b = await createUdpTransport({ bindAddrs: ['127.0.0.2'], peers: [{ node: 'a', addrs: ['127.0.0.1'] }], port, key, log });
    const d = await createUdpTransport({ bindAddrs: ['127.0.0.4'], peers: [{ node: 'a', addrs: ['127.0.0.1'] }], port, key, log, sockets: 'dgram' });
    try {
      expect(b.drain).toBeTypeOf('function');
      expect(d.drain).toBeUndefined();
      const got: { seq: number; arrivalNs?: bigint }[] = [];
      b.onReceive((h, arrivalNs) => got.push({ seq: h.seq, ...(arrivalNs !== undefined ? { arrivalNs } : {}) }));
      b.setBatched!(true);
      // A first datagram: the kernel's receive timestamps start a moment after the first socket
      // asks for them (test/unit/udp-batch.test.ts).
      a.send(hb({ from: 'a', seq: 6 }));
      for (let i = 0; i < 200 && got.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 5));
        b.drain!();
      }
      got.length = 0;
      await new Promise((r) => setTimeout(r, 20));
      const sentNs = process.hrtime.bigint();
      a.send(hb({ from: 'a', seq: 7 }));
      await new Promise((r) => setTimeout(r, 30));
      expect(got).toEqual([]);
      const drainNs = process.hrtime.bigint();
      b.drain!();
      expect(got.map((g) => g.seq)).toEqual([7]);
      // Its arrival, not the drain's time (30 ms later).
      expect(got[0]!.arrivalNs! >= sentNs && got[0]!.arrivalNs! < drainNs - 20_000_000n).toBe(true);
      b.setBatched!(false);
      a.send(hb({ from: 'a', seq: 8 }));
      for (let i = 0; i < 200 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
      expect(got.map((g) => g.seq)).toEqual([7, 8]);
      expect(b.stats().received).toBe(3);
    } finally {
      await Promise.all([a.close(), b.close(), d.close()]);
    }
  });

  it('one pulse over the addon\'s sockets: each peer gets one datagram in its frame (FLB1 for a peer heard in unmarked FLB1, FLB2 for the others)', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const peers = [{ node: 'b', addrs: ['127.0.0.2'] }, { node: 'c', addrs: ['127.0.0.3'] }, { node: 'd', addrs: ['127.0.0.4'] }];
    const a = await createUdpTransport({ bindAddrs: ['127.0.0.1'], peers, port, key, log });
    // The peers are plain sockets: what reaches each, byte for byte.
    const got = new Map<string, Buffer[]>();
    const socks = await Promise.all(['127.0.0.2', '127.0.0.3', '127.0.0.4'].map(async (addr) => {
      const s = dgram.createSocket('udp4');
      got.set(addr, []);
      s.on('message', (m) => got.get(addr)!.push(m));
      await new Promise<void>((r) => s.bind(port, addr, () => r()));
      return s;
    }));
    try {
      // c speaks as a release before key ids (an unmarked FLB1 frame): a sends it FLB1 from now on.
      const heardFromC = new Promise<void>((resolve) => a.onReceive(() => resolve()));
      socks[1]!.send(encodeHeartbeat(hb({ from: 'c', v: 1 }), key, { frame: 1, mark: false }), port, '127.0.0.1');
      await heardFromC;
      a.send(hb({ from: 'a', v: 2 }));
      for (let i = 0; i < 400 && [...got.values()].some((l) => l.length === 0); i++) await new Promise((r) => setTimeout(r, 5));
      expect([...got.entries()].map(([addr, l]) => [addr, l.map((m) => m.subarray(0, 4).toString())])).toEqual([
        ['127.0.0.2', ['FLB2']], ['127.0.0.3', ['FLB1']], ['127.0.0.4', ['FLB2']],
      ]);
      for (const l of got.values()) expect(decodeHeartbeat(l[0]!, key).from).toBe('a');
      expect(a.stats()).toMatchObject({ sent: 3, sendErrors: 0 });
    } finally {
      await a.close();
      for (const s of socks) s.close();
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
