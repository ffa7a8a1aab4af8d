// Key ids and key rotation (docs/security.md, "Rotating the key"; codec.ts, "frames"): every
// heartbeat names the id of the key it is signed with; a node accepts its own key and one
// more, so a farm changes its key node by node without a moment in which two nodes cannot
// hear each other; a node with another key is reported with that key's id. Releases before
// key ids (FLB1 only) keep hearing and being heard in a half-upgraded farm.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { parseClusterConfig, parseFarmConfig } from '../../src/config/index.js';
import { createMembershipSource } from '../../src/daemon/membership-source.js';
import { frameOf } from '../../src/membership/codec.js';
import { keyId } from '../../src/membership/key.js';
import {
  BuiltinMembership, DEFAULT_TIMING, MembershipEngine, createMemoryNetwork, type Heartbeat, type Transport,
} from '../../src/membership/index.js';
import { LEGACY_FRAME_HOLD_MS } from '../../src/membership/transport.js';

const keyA = Buffer.from('a1'.repeat(16) + '0f1e2d3c4b5a69788796a5b4c3d2e1f0');
const keyB = Buffer.from('b2'.repeat(16) + 'f0e1d2c3b4a5968778695a4b3c2d1e0f');
const nowNs = () => process.hrtime.bigint();
const tick = () => new Promise((r) => setImmediate(r));

function hb(from: string, seq = 1): Heartbeat {
  return {
    v: 2, module: 'farm', from, incarnation: 5n, seq, sentAtNs: nowNs(), state: 'UP', cause: '', configDigest: 'cfg',
    epoch: 0, leader: null, view: [], tableDigest: 'd', table: [], powers: { version: 0, origin: '', entries: [] }, acks: [], heard: [],
  };
}

/** What each receiver got, and which frames went where. */
function listen(ts: Record<string, Transport>): { got: string[]; foreign: string[] } {
  const got: string[] = [];
  const foreign: string[] = [];
  for (const [name, t] of Object.entries(ts)) {
    t.onReceive((m) => got.push(`${name}<${m.from}`));
    t.onForeignKey((node, id) => foreign.push(`${name}:${node}:${id ?? '-'}`));
  }
  return { got, foreign };
}

describe('key ids on the wire', () => {
  it('every heartbeat names its key id; a node with another key is dropped and reported with that id', async () => {
    const net = createMemoryNetwork(1);
    const ts = { n1: net.transport('n1', keyA), n2: net.transport('n2', keyA), n3: net.transport('n3', keyB) };
    const { got, foreign } = listen(ts);
    ts.n1.send(hb('n1'));
    ts.n3.send(hb('n3'));
    await tick();
    expect(net.log.every((w) => frameOf(w.bytes) === 2)).toBe(true);
    expect(net.log.find((w) => w.from === 'n1')!.bytes.subarray(4, 8).toString('hex')).toBe(keyId(keyA));
    expect(got.sort()).toEqual(['n2<n1']);
    expect(foreign.sort()).toEqual([`n1:n3:${keyId(keyB)}`, `n2:n3:${keyId(keyB)}`, `n3:n1:${keyId(keyA)}`]);
    expect(ts.n2.stats().badMac).toBe(1);
  });

  it('a node accepts its own key and the other one it is given; it signs with its own', async () => {
    const net = createMemoryNetwork(1);
    const ts = { n1: net.transport('n1', keyA, { acceptKeys: [keyB] }), n2: net.transport('n2', keyB), n3: net.transport('n3', keyA) };
    const { got } = listen(ts);
    ts.n2.send(hb('n2'));
    ts.n3.send(hb('n3'));
    ts.n1.send(hb('n1'));
    await tick();
    // n1 hears both keys; its own heartbeats (key A) reach n3 only — n2 accepts B alone.
    expect(got.sort()).toEqual(['n1<n2', 'n1<n3', 'n3<n1']);
    ts.n2.setKeys(keyB, [keyA]);
    ts.n1.send(hb('n1', 2));
    await tick();
    expect(got).toContain('n2<n1');
  });
});

describe('frames in a half-upgraded farm', () => {
  it('an older release (FLB1 only) is answered in FLB1 once heard, and two upgraded nodes stay on FLB2', async () => {
    const net = createMemoryNetwork(1);
    const ts = { n1: net.transport('n1', keyA), n2: net.transport('n2', keyA), old: net.transport('old', keyA, { legacy: true }) };
    const { got } = listen(ts);
    ts.n1.send(hb('n1'));
    await tick();
    // Before n1 hears it, the old node drops n1's FLB2 (as that release does), n2 takes it.
    expect(got).toEqual(['n2<n1']);
    expect(ts.old.stats().malformed).toBe(1);
    ts.old.send(hb('old'));
    await tick();
    ts.n1.send(hb('n1', 2));
    ts.n2.send(hb('n2'));
    await tick();
    expect(got.filter((g) => g.startsWith('old<')).sort()).toEqual(['old<n1', 'old<n2']);
    const latest = (from: string, to: string) => frameOf(net.log.filter((w) => w.from === from && w.to === to).at(-1)!.bytes);
    expect(latest('n1', 'old')).toBe(1);
    expect(latest('n1', 'n2')).toBe(2);
    expect(latest('n2', 'n1')).toBe(2);
    // n2 sent n1 nothing but FLB2, and got nothing but FLB2 from n1 (marked FLB1 never sticks).
    expect(net.log.filter((w) => (w.from === 'n1' && w.to === 'n2') || (w.from === 'n2' && w.to === 'n1')).every((w) => frameOf(w.bytes) === 2)).toBe(true);
  });

  it('the old node upgraded in place gets FLB2 from its first FLB2 heartbeat; silence ends the hold too', async () => {
    let now = 0;
    const net = createMemoryNetwork(1);
    const n1 = net.transport('n1', keyA, { nowMs: () => now });
    let old = net.transport('old', keyA, { legacy: true });
    old.send(hb('old'));
    await tick();
    n1.send(hb('n1'));
    expect(frameOf(net.log.at(-1)!.bytes)).toBe(1);
    // Upgraded: the same node, this release.
    await old.close();
    old = net.transport('old', keyA);
    old.send(hb('old', 2));
    await tick();
    n1.send(hb('n1', 2));
    expect(frameOf(net.log.at(-1)!.bytes)).toBe(2);
    // A node heard in FLB1 unmarked, then not at all, gets FLB2 again after the hold.
    const net2 = createMemoryNetwork(2);
    const m1 = net2.transport('m1', keyA, { nowMs: () => now });
    net2.transport('m2', keyA, { legacy: true }).send(hb('m2'));
    await tick();
    m1.send(hb('m1'));
    expect(frameOf(net2.log.at(-1)!.bytes)).toBe(1);
    now += LEGACY_FRAME_HOLD_MS + 1;
    m1.send(hb('m1', 2));
    expect(frameOf(net2.log.at(-1)!.bytes)).toBe(2);
  });
});

describe('rotating the key of a running farm', () => {
  const nodes = ['n1', 'n2', 'n3'];
  // Real timers in one process: at twice the default pulse and lease, a loaded test machine
  // that stalls this process for 250 ms (seen at load 24 on 2 cores) does not revoke a lease.
  const timing = { ...DEFAULT_TIMING, pulseMs: 100, leaseMs: 400 };

  async function farm(): Promise<{ ms: Record<string, BuiltinMembership>; views: () => string[][]; revoked: () => number; stop: () => Promise<void>; ts: Record<string, Transport> }> {
    const net = createMemoryNetwork(7);
    const ms: Record<string, BuiltinMembership> = {};
    const ts: Record<string, Transport> = {};
    let revocations = 0;
    let up = false;
    for (const self of nodes) {
      const engine = new MembershipEngine({
        self, nodes, groups: [{ name: 'g', powers: new Map(nodes.map((n) => [n, 1])) }], configDigest: 'cfg', timing,
        splitBrain: 'serve', incarnation: 1n, startNs: nowNs(),
      });
      ts[self] = net.transport(self, keyA);
      ms[self] = new BuiltinMembership({ engine, transport: ts[self]!, pulseMs: timing.pulseMs, nowNs });
      ms[self]!.start((out) => { if (up && out.leaseDeadlineNs === 0n) revocations++; });
    }
    const views = () => nodes.map((n) => ms[n]!.status().view);
    const end = Date.now() + 10_000;
    while (Date.now() < end && !views().every((v) => v.length === 3)) await new Promise((r) => setTimeout(r, 10));
    expect(views()).toEqual([nodes, nodes, nodes]);
    up = true;
    return { ms, ts, views, revoked: () => revocations, stop: async () => { for (const m of Object.values(ms)) await m.stop(); } };
  }

  /** Watches the views for `ms`: every node must keep all three in its view throughout. */
  async function holdsTogether(f: { views: () => string[][] }, ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      expect(f.views()).toEqual([nodes, nodes, nodes]);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  it('accept the new key everywhere, sign with it node by node, drop the old one: one view and no lease revoked throughout', async () => {
    const f = await farm();
    try {
      const settle = timing.pulseMs * 4;
      // After each phase, longer than a leader is kept without heartbeats: a step that cut a
      // node off would show as a view without it.
      const lost = timing.pulseMs * (timing.mlostCount + 3);
      // 1. Every node accepts B beside A (signs with A).
      for (const n of nodes) { f.ms[n]!.setKeys(keyA, [keyB]); await holdsTogether(f, settle); }
      await holdsTogether(f, lost);
      // 2. Node by node: sign with B, still accept A.
      for (const n of nodes) { f.ms[n]!.setKeys(keyB, [keyA]); await holdsTogether(f, settle); }
      await holdsTogether(f, lost);
      // 3. Every node drops A.
      for (const n of nodes) { f.ms[n]!.setKeys(keyB, []); await holdsTogether(f, settle); }
      await holdsTogether(f, lost);
      expect(f.revoked()).toBe(0);
      expect(nodes.map((n) => f.ts[n]!.stats().badMac)).toEqual([0, 0, 0]);
    } finally {
      await f.stop();
    }
  }, 30_000);

  it('without the first step, the node that changes its key leaves the others\' view (the outage the steps avoid)', async () => {
    const f = await farm();
    try {
      f.ms.n1!.setKeys(keyB, []);
      const end = Date.now() + 5_000;
      while (Date.now() < end && f.ms.n2!.status().view.includes('n1')) await new Promise((r) => setTimeout(r, 10));
      expect(f.ms.n2!.status().view).toEqual(['n2', 'n3']);
      expect(f.ms.n2!.status().peers.find((p) => p.node === 'n1')).toMatchObject({ foreignKeyId: keyId(keyB) });
    } finally {
      await f.stop();
    }
  }, 30_000);
});

describe('the daemon\'s keys: <farmlb key_file> and accept_key_file, read again at reload', () => {
  const farmXml = (attrs: string) => `<safe><service mode="farm"><farm><lan name="default"/></farm><vip><interface_list><interface>
    <virtual_interface type="vmac_invisible"><virtual_addr addr="192.0.2.10"/></virtual_interface></interface></interface_list>
    <loadbalancing_list><group name="g"><rule port="80" proto="tcp" filter="on_addr"/></group></loadbalancing_list></vip>
    <farmlb ${attrs}/></service></safe>`;
  const clusterXml = '<cluster><lans><lan name="default"><node name="n1" addr="127.0.0.1"/><node name="n2" addr="127.0.0.2"/></lan></lans></cluster>';

  it('logs the ids (never the keys) it signs with and accepts, takes a new accept_key_file at reload, and refuses a reload with an unsafe key', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'flb-keys-'));
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => { lines.push(JSON.parse(l) as Record<string, unknown>); } });
    try {
      await writeFile(path.join(dir, 'a.key'), keyA, { mode: 0o600 });
      await writeFile(path.join(dir, 'b.key'), keyB, { mode: 0o600 });
      await writeFile(path.join(dir, 'weak.key'), 'x'.repeat(32), { mode: 0o600 });
      const cluster = parseClusterConfig(clusterXml, path.join(dir, 'cluster.xml'));
      const farm = (attrs: string) => parseFarmConfig(farmXml(`key_file="a.key" membership_port="${30000 + (process.pid % 20000)}" ${attrs}`), path.join(dir, 'userconfig.xml'));
      const source = await createMembershipSource({
        farm: farm(''), cluster, node: 'n1', paths: { module: 'farm', runDir: dir, pinDir: path.join(dir, 'no-pins') }, log, nowNs,
      });
      try {
        const keyEvents = () => lines.filter((l) => l.event === 'membership_keys');
        expect(keyEvents()).toEqual([expect.objectContaining({ keyId: keyId(keyA), acceptKeyIds: [] })]);
        await source.reload(farm('accept_key_file="b.key"'), cluster);
        expect(keyEvents().at(-1)).toMatchObject({ keyId: keyId(keyA), acceptKeyIds: [keyId(keyB)], acceptKeyFile: path.join(dir, 'b.key') });
        await expect(source.reload(farm('accept_key_file="weak.key"'), cluster)).rejects.toMatchObject({ code: 'FARMLB_E_MEMBERSHIP_KEY_WEAK' });
        expect(JSON.stringify(lines)).not.toContain(keyA.toString());
        expect(JSON.stringify(lines)).not.toContain(keyB.toString());
      } finally {
        await source.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
