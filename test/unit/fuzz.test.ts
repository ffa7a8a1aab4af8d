// Fuzzing of the two parsers that take input from outside (docs/security.md, "Fuzzing"):
// the heartbeat codec (datagrams from the LAN, and bodies a key holder signs) and the
// configuration parser (userconfig.xml / cluster.xml). Each property states what a hostile
// input may do: be refused with one of our error codes, or be accepted as a value the rest
// of the program handles — never an exception of another kind, never a crash of the engine.
//
// CI runs a fixed seed (repeatable). A longer random run before a release:
//   FARMLB_FUZZ_RUNS=20000 FARMLB_FUZZ_SEED=random npx vitest run test/unit/fuzz.test.ts
// A failure prints the seed and the shrunk input; FARMLB_FUZZ_SEED=<seed> replays it.

import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileTables, staticTable } from '../../src/balance/compile.js';
import { configDigest, crossCheckErrors, parseClusterConfig, parseFarmConfig } from '../../src/config/index.js';
import { isFarmlbError } from '../../src/errors.js';
import { Simulator } from '../helpers/membership-sim.js';
import { decodeHeartbeat, encodeHeartbeat, type Heartbeat } from '../../src/membership/index.js';
import { frameBody } from '../../src/membership/codec.js';
import { keyIdBytes } from '../../src/membership/key.js';
import { createHmac } from 'node:crypto';

const runs = Number(process.env.FARMLB_FUZZ_RUNS ?? 500);
const seedEnv = process.env.FARMLB_FUZZ_SEED;
const params = (salt: number) => ({ numRuns: runs, ...(seedEnv === 'random' ? {} : { seed: Number(seedEnv ?? 20261207) + salt }) });
const TIMEOUT_MS = Math.max(60_000, runs * 50);

/** The only way a parser may refuse: a FarmlbError whose code is one of `codes` (prefixes). */
function refusedWith(err: unknown, ...codes: string[]): boolean {
  return isFarmlbError(err) && codes.some((c) => err.code.startsWith(c));
}

// ---- heartbeats -------------------------------------------------------------------------

const key = Buffer.alloc(32, 9);
const MAGIC = Buffer.from('FLB1');

/** A frame carrying `body` under a valid MAC: what a key holder (or a bug) could send. */
function signed(body: Buffer): Buffer {
  return Buffer.concat([MAGIC, createHmac('sha256', key).update(MAGIC).update(body).digest(), body]);
}

function decodeOrRefuse(bytes: Buffer): Heartbeat | undefined {
  try {
    return decodeHeartbeat(bytes, key);
  } catch (err) {
    if (!refusedWith(err, 'FARMLB_E_MEMBERSHIP_BAD_MESSAGE', 'FARMLB_E_MEMBERSHIP_BAD_MAC', 'FARMLB_E_MEMBERSHIP_UNKNOWN_KEY')) throw err;
    return undefined;
  }
}

/** Values near every bound the codec and the engine check, and of every JSON type. */
const hostileValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(-1, 0, 1, 255, 256, 2 ** 31, 2 ** 32, 2 ** 48, 2 ** 48 + 1, 2 ** 53 - 1, 2 ** 53, 1e308, 0.5, -0,
    '', 'node1', 'node2', 'node3', 'nodeX', 'UP', 'WAIT', 'zz', '0', '1'.repeat(21), 'z'.repeat(14), 'AAAA',
    Buffer.alloc(256, 0).toString('base64'), Buffer.alloc(256, 254).toString('base64'), Buffer.alloc(300, 1).toString('base64'),
    'x'.repeat(201), null, true, [], {}, [0, 0, 0], [[0, '0', 0]]),
);

type Json = unknown;
/** Every path into a JSON value (objects by key, arrays by index), the root included. */
function paths(v: Json, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out));
  else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) paths(x, [...at, k], out);
  return out;
}

/** Numbers and strings a field of that type could carry: in range, on a bound, past it. */
const hostileNumber = fc.oneof(fc.integer({ min: -2, max: 300 }),
  fc.constantFrom(0, 1, 63, 64, 255, 256, 2 ** 31, 2 ** 32, 2 ** 48, 2 ** 48 + 1, 2 ** 53 - 1, 1e308, 0.5, -1));
const hostileString = fc.oneof(fc.string({ maxLength: 6 }),
  fc.constantFrom('', 'node1', 'node2', 'node3', 'nodeX', 'farm', 'web', 'UP', 'WAIT', '0', 'zz', '1'.repeat(20), '1'.repeat(21),
    'z'.repeat(13), 'z'.repeat(14), 'AAAA', Buffer.alloc(256, 0).toString('base64'), Buffer.alloc(256, 1).toString('base64'),
    Buffer.alloc(256, 2).toString('base64'), Buffer.alloc(256, 254).toString('base64'), Buffer.alloc(255, 0).toString('base64'),
    Buffer.alloc(32, 255).toString('base64'), 'x'.repeat(201)));

interface Mutation { where: number; kind: 'same-type' | 'replace' | 'delete' | 'insert'; value: Json; number: number; text: string; name: string }
const mutation: fc.Arbitrary<Mutation> = fc.record({
  where: fc.nat(),
  // Mostly a value of the same type: the codec refuses almost every other change, and the
  // engine is only reached by what the codec accepts.
  kind: fc.constantFrom('same-type', 'same-type', 'same-type', 'replace', 'delete', 'insert'),
  value: hostileValue,
  number: hostileNumber,
  text: hostileString,
  name: fc.constantFrom('v', 'x', 'readsV2', 'pr', 'ho', 'pw', 'a', 'h', 'prev', 'holdings', '__proto__', 'constructor'),
});

/** Applies one mutation at the where-th path (modulo their number); returns the new root. */
function mutate(root: Json, mutationValue: Mutation): Json {
  // fast-check reuses its values while shrinking: never mutate or share them.
  const m = { ...mutationValue, value: structuredClone(mutationValue.value) };
  const all = paths(root);
  const at = all[m.where % all.length]!;
  if (at.length === 0) return m.kind === 'replace' ? m.value : root;
  let parent = root as Record<string | number, Json>;
  for (const step of at.slice(0, -1)) parent = parent[step] as Record<string | number, Json>;
  const last = at[at.length - 1]!;
  const old = parent[last];
  if (m.kind === 'same-type') {
    if (typeof old === 'number') parent[last] = m.number;
    else if (typeof old === 'string') parent[last] = m.text;
    else if (Array.isArray(old) && old.length > 0) old.splice(m.where % old.length, 0, structuredClone(old[(m.number >>> 0) % old.length]));
    else parent[last] = m.value;
  } else if (m.kind === 'replace') parent[last] = m.value;
  else if (m.kind === 'delete') {
    if (Array.isArray(parent)) parent.splice(last as number, 1); else delete parent[last];
  } else if (Array.isArray(parent)) parent.splice(last as number, 0, m.value);
  else Object.defineProperty(parent, m.name, { value: m.value, enumerable: true, configurable: true, writable: true });
  return root;
}

/**
 * A converged 3-node farm (simulated, real codec) and node2's latest heartbeats to node1. A key
 * holder can make nodes serve a bucket twice (docs/security.md, "A compromised node"): the
 * simulator's safety checks are off, what is checked is that nothing throws.
 */
function farm(v1Only: boolean): { sim: Simulator; latest: () => Buffer } {
  const nodes = ['node1', 'node2', 'node3'];
  const sim = new Simulator({ nodes, seed: 5, key, throwOnViolation: false, throwOnLapse: false, ...(v1Only ? { v1Only: nodes } : {}) });
  sim.startAll();
  if (!sim.run(3000, () => sim.converged(nodes))) throw new Error('the simulated farm did not converge');
  return { sim, latest: () => sim.wire.filter((w) => w.from === 'node2' && w.to === 'node1').at(-1)!.bytes };
}

describe('fuzz: heartbeat codec', () => {
  it('random datagrams, with and without our magic, are refused with a codec error or decoded', () => {
    const datagram = fc.oneof(
      fc.uint8Array({ maxLength: 1600 }).map((b) => Buffer.from(b)),
      fc.uint8Array({ minLength: 30, maxLength: 1600 }).map((b) => Buffer.concat([MAGIC, Buffer.from(b)])),
      fc.uint8Array({ minLength: 30, maxLength: 1600 }).map((b) => Buffer.concat([Buffer.from('FLB2'), Buffer.from(b)])),
      fc.uint8Array({ minLength: 30, maxLength: 1600 }).map((b) => Buffer.concat([Buffer.from('FLB2'), keyIdBytes(key), Buffer.from(b)])),
      fc.uint8Array({ maxLength: 800 }).map((b) => signed(Buffer.from(b))),
      fc.jsonValue().map((j) => signed(Buffer.from(JSON.stringify(j) ?? 'null'))),
    );
    fc.assert(fc.property(datagram, (bytes) => { decodeOrRefuse(bytes); }), params(1));
  }, TIMEOUT_MS);

  it('any byte flipped in a real heartbeat fails authentication', () => {
    const { latest } = farm(false);
    const real = latest();
    fc.assert(fc.property(fc.nat({ max: real.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
      const bytes = Buffer.from(real);
      bytes[at]! ^= x;
      // The magic: not ours, or the other frame (whose MAC then fails); the key id: not our key.
      const code = at < 4 ? /BAD_MESSAGE|BAD_MAC/ : at < 8 ? /UNKNOWN_KEY/ : /BAD_MAC/;
      expect(() => decodeHeartbeat(bytes, key)).toThrow(expect.objectContaining({ code: expect.stringMatching(code) }));
    }), params(2));
  }, TIMEOUT_MS);

  for (const v1Only of [false, true]) {
    it(`re-signed ${v1Only ? 'v1' : 'v2'} bodies, mutated field by field, are refused or handled by the engine without an exception`, () => {
      const { sim, latest } = farm(v1Only);
      const engine = sim.engine('node1');
      fc.assert(fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.boolean(), (ms, newIncarnation) => {
        const real = latest();
        let body: Json = JSON.parse(frameBody(real).toString('utf8'));
        for (const m of ms) body = mutate(body, m);
        const hb = decodeOrRefuse(signed(Buffer.from(JSON.stringify(body) ?? 'null')));
        if (!hb) return;
        // Accepted by the codec: the engine must take it (or reject it) without throwing,
        // also as a new incarnation of its sender, and keep deciding afterwards.
        const now = sim.localNs('node1');
        engine.receive(newIncarnation ? { ...hb, incarnation: hb.incarnation + 1n } : hb, now);
        engine.tick(now + 1_000_000n);
        // And a heartbeat the codec accepts encodes again to something it accepts.
        expect(decodeOrRefuse(encodeHeartbeat(hb, key))).toBeDefined();
        sim.run(20);
      }), params(v1Only ? 3 : 4));
    }, TIMEOUT_MS);
  }

  it('re-signed bodies with bytes inserted, deleted or replaced are refused or decoded', () => {
    const { latest } = farm(false);
    const body = frameBody(latest());
    const edit = fc.record({ at: fc.nat(), del: fc.nat({ max: 8 }), ins: fc.uint8Array({ maxLength: 8 }) });
    fc.assert(fc.property(fc.array(edit, { minLength: 1, maxLength: 6 }), (edits) => {
      let b = Buffer.from(body);
      for (const e of edits) {
        const at = e.at % (b.length + 1);
        b = Buffer.concat([b.subarray(0, at), Buffer.from(e.ins), b.subarray(Math.min(b.length, at + e.del))]);
      }
      decodeOrRefuse(signed(b));
    }), params(5));
  }, TIMEOUT_MS);
});

// ---- configuration ----------------------------------------------------------------------

const fixtures = path.join(__dirname, '..', 'fixtures');
const goodConfigs = readdirSync(path.join(fixtures, 'configs')).filter((f) => f.endsWith('.xml') && f !== 'cluster.xml')
  .map((f) => readFileSync(path.join(fixtures, 'configs', f), 'utf8'));
const badConfigs = readdirSync(path.join(fixtures, 'bad-configs')).filter((f) => f.endsWith('.xml') && !f.startsWith('cluster'))
  .map((f) => readFileSync(path.join(fixtures, 'bad-configs', f), 'utf8'));
const clusterText = readFileSync(path.join(fixtures, 'configs', 'cluster.xml'), 'utf8');

/**
 * userconfig.xml (+ cluster.xml) through everything `farmlb validate` and a daemon's start do
 * with a configuration: parse, cross-check and, when nothing is refused, compile the tables
 * and the digest. Refusals are configuration errors; anything else thrown is a bug.
 */
function loadOrRefuse(farmText: string, clusterXml: string): void {
  try {
    const farm = parseFarmConfig(farmText, 'userconfig.xml');
    const cluster = parseClusterConfig(clusterXml, 'cluster.xml');
    if (crossCheckErrors(farm, cluster).length > 0) return;
    compileTables(farm, cluster, staticTable(farm, cluster), cluster.nodes[0]!);
    configDigest(farm, cluster);
  } catch (err) {
    if (!refusedWith(err, 'FARMLB_E_CONFIG_')) throw err;
  }
}

/** Attribute values that sit on the edges of what the validators accept. */
const hostileAttr = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('', ' ', '*', '0', '-1', '65535', '65536', '4294967295', '4294967296', '0x', '0xffffffff', '1e3', '1.5',
    'on', 'off', 'tcp', 'udp', 'arp', 'icmp', 'on_addr', 'on_port', 'on_ipid', 'vmac_directed', 'vmac_invisible',
    '10.0.0.100', '10.0.0.1', '10.0.0.0', '10.0.0.255', '0.0.0.0', '255.255.255.255', '224.0.0.1', '169.254.1.1',
    '::', '::1', 'fe80::1', '::ffff:10.0.0.100', '::10.0.0.100', 'fd00::100', 'fd00::3', '2001:db8::1%eth0',
    '24', '32', '33', '0', '255.255.255.0', '255.0.255.0', '/128', '1ms', '0s', '10m', '99999999d', 'h', '5x',
    'node1', 'node2', 'nodeX', 'web', 'all', '..', 'lo', 'eth0', 'a'.repeat(300), '&amp;', '${x}', '%macro%'),
);

describe('fuzz: configuration parser', () => {
  it('attribute values of the fixtures replaced by hostile ones: refused with a config error, or loaded and compiled', () => {
    const docs = [...goodConfigs, ...badConfigs];
    fc.assert(fc.property(fc.nat({ max: docs.length - 1 }), fc.array(fc.tuple(fc.nat(), hostileAttr), { minLength: 1, maxLength: 4 }), fc.boolean(),
      (which, edits, inCluster) => {
        let text = inCluster ? clusterText : docs[which]!;
        for (const [where, value] of edits) {
          const spots = [...text.matchAll(/="[^"]*"/g)];
          if (spots.length === 0) break;
          const s = spots[where % spots.length]!;
          const escaped = value.replace(/&(?!amp;)/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
          text = `${text.slice(0, s.index)}="${escaped}"${text.slice(s.index + s[0].length)}`;
        }
        if (inCluster) loadOrRefuse(docs[which]!, text); else loadOrRefuse(text, clusterText);
      }), params(11));
  }, TIMEOUT_MS);

  it('elements of the fixtures deleted, duplicated or moved: refused with a config error, or loaded and compiled', () => {
    fc.assert(fc.property(fc.nat({ max: goodConfigs.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.nat(), fc.constantFrom('delete', 'duplicate', 'move')), { minLength: 1, maxLength: 3 }),
      (which, edits) => {
        let lines = goodConfigs[which]!.split('\n');
        for (const [a, b, kind] of edits) {
          const i = a % lines.length;
          const line = lines[i]!;
          if (kind === 'delete') lines = lines.filter((_, j) => j !== i);
          else if (kind === 'duplicate') lines.splice(i, 0, line);
          else { lines.splice(i, 1); lines.splice(b % (lines.length + 1), 0, line); }
        }
        loadOrRefuse(lines.join('\n'), clusterText);
      }), params(12));
  }, TIMEOUT_MS);

  it('characters inserted, deleted or replaced anywhere: refused with a config error, or loaded and compiled', () => {
    const edit = fc.record({ at: fc.nat(), del: fc.nat({ max: 4 }), ins: fc.oneof(fc.string({ maxLength: 4 }), fc.constantFrom('<', '>', '"', '&', '<!--', ']]>', '<!DOCTYPE x [<!ENTITY e "x">]>', '&e;', '\u0000', '\uFFFF', '\uD800')) });
    fc.assert(fc.property(fc.nat({ max: goodConfigs.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 5 }), (which, edits) => {
      let text = goodConfigs[which]!;
      for (const e of edits) {
        const at = e.at % (text.length + 1);
        text = text.slice(0, at) + e.ins + text.slice(Math.min(text.length, at + e.del));
      }
      loadOrRefuse(text, clusterText);
    }), params(13));
  }, TIMEOUT_MS);

  it('expands no entity and fetches no DTD', () => {
    const doc = '<?xml version="1.0"?><!DOCTYPE safe [<!ENTITY x SYSTEM "file:///etc/passwd"><!ENTITY y "yy">]><safe><service mode="farm"><vip><interface_list/></vip><farmlb module="&y;"/></service></safe>';
    expect(() => parseFarmConfig(doc, 'u.xml')).toThrow(expect.objectContaining({ code: expect.stringMatching(/^FARMLB_E_CONFIG_/) }));
  });
});
