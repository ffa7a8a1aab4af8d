// Heartbeats on the wire, in one of two frames (docs/membership.md, "Wire format"):
//
//   FLB2: "FLB2" ‖ key id (4 bytes) ‖ HMAC-SHA256(key, "FLB2" ‖ key id ‖ json) ‖ json
//   FLB1: "FLB1" ‖ HMAC-SHA256(key, "FLB1" ‖ json) ‖ json            (releases before key ids)
//
// The key id (key.ts) lets a node accept two keys — the one it signs with and one more, for a
// rotation without an outage — and pick the right one without trying each, and names the key
// a node with another one signs with. FLB2 is sent by default; FLB1 only to a peer heard
// sending FLB1 unmarked (an older release, which drops FLB2 frames: the transport decides).
// This release marks the FLB1 frames it sends with a blank after the JSON (which every
// release's JSON.parse ignores), so that two upgraded nodes never hold each other in FLB1.
//
// JSON keeps the format readable in tcpdump and easy to extend. Two body versions
// (docs/membership.md, "Heartbeats"): v1 names every node and field in full (~150 bytes per
// peer, two IP fragments at 16 nodes); v2 carries the node names once, in `n`, and refers to
// them by index, with positional rows for acks and heard entries (~50 bytes per peer: one
// datagram up to ~20 nodes). Both decode into the same Heartbeat (its `v` says which one
// came); encodeHeartbeat writes the version the Heartbeat's `v` names (the engine chooses: v1
// while a peer that speaks only v1 is alive). bigints travel as decimal strings.
//
// v2 carries its own name list rather than indexes into the receiver's cluster.xml: a peer
// whose cluster.xml differs (a rolling configuration change) must still be heard as it is
// (config_mismatch, liveness), not with its peers renamed by another node order.
//
// ReplayGuard rejects, per sender: an incarnation older than the newest accepted, a seq not
// above the last accepted one of the same incarnation, and a heartbeat that arrives much
// later than the sender's others did (a stale copy, or one queued while this daemon was
// stopped) — measured against the smallest transit-plus-clock-offset seen for that
// sender, which is allowed to grow by a bounded clock-rate drift.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { FarmlbError } from '../errors.js';
import { keyId, keyIdBytes } from './key.js';
import type { AckEntry, Heartbeat, HeardEntry, HeartbeatHoldings, NodeState, PowerOverrides } from './types.js';

const MAGIC = Buffer.from('FLB1');
const MAGIC2 = Buffer.from('FLB2');
const KEY_ID_LEN = 4;
const MAC_LEN = 32;
/** The byte after the JSON of an FLB1 frame sent by a release that reads FLB2. */
const READS_FLB2_MARK = 0x20;
/** Far above a heartbeat of 64 nodes and 16 groups (~12 KiB); anything bigger is refused unparsed. */
export const MAX_MESSAGE_BYTES = 60_000;

/** Which frame to write: 2 (key id, the default) or 1 (for a peer of an older release). */
export interface FrameOptions {
  frame?: 1 | 2;
  /**
   * FLB1 only: mark the frame as sent by a release that reads FLB2 (default true; false is
   * what releases before key ids send, for tests of a mixed farm).
   */
  mark?: boolean;
}

/** The keys a node accepts: the first signs, any other (one, during a rotation) is accepted too. */
export type AcceptedKeys = Buffer | readonly Buffer[];

function keyList(keys: AcceptedKeys): readonly Buffer[] {
  return Buffer.isBuffer(keys) ? [keys] : keys;
}

/** Encodes `hb` in the body version its `v` names, signed with `key`, in the frame `opts` names. */
export function encodeHeartbeat(hb: Heartbeat, key: Buffer, opts: FrameOptions = {}): Buffer {
  const json = hb.v === 2 ? encodeV2(hb) : JSON.stringify({
    ...hb,
    incarnation: hb.incarnation.toString(),
    sentAtNs: hb.sentAtNs.toString(),
    acks: hb.acks.map((a) => ({ ...a, incarnation: a.incarnation.toString() })),
  });
  if (opts.frame === 1) {
    const body = Buffer.from(opts.mark === false ? json : `${json} `);
    return Buffer.concat([MAGIC, createHmac('sha256', key).update(MAGIC).update(body).digest(), body]);
  }
  const body = Buffer.from(json);
  const id = keyIdBytes(key);
  return Buffer.concat([MAGIC2, id, createHmac('sha256', key).update(MAGIC2).update(id).update(body).digest(), body]);
}

/** Wire states of v2. */
const UP = 1;
const WAIT = 0;

/** v2 bigints: base 36 (an incarnation is 12 characters, not 19 digits: it is in every ack). */
const b36 = (x: bigint): string => x.toString(36);

/**
 * The v2 body (docs/membership.md, "Heartbeats"). Every node name the heartbeat mentions is
 * in `n` once, the view's members first and in view order (so `vw` is their count); `f`,
 * `l` and node columns are indexes into `n`. A peer the sender acknowledges and reports is
 * one row of `p`; its epoch and table digest are left out when they are the sender's own
 * (a farm on one table). Empty cause and no power overrides are left out.
 */
function encodeV2(hb: Heartbeat): string {
  const names: string[] = [];
  const ids = new Map<string, number>();
  const id = (name: string): number => {
    let i = ids.get(name);
    if (i === undefined) {
      i = names.length;
      names.push(name);
      ids.set(name, i);
    }
    return i;
  };
  const viewIds = hb.view.map(id);
  // A view naming a node twice (never made by the engine) cannot be a prefix of `n`.
  const view: number | number[] = names.length === hb.view.length ? names.length : viewIds;
  const body: Record<string, unknown> = {
    v: 2, m: hb.module, n: names, f: id(hb.from), i: b36(hb.incarnation), s: hb.seq, t: b36(hb.sentAtNs),
    st: hb.state === 'UP' ? UP : WAIT,
  };
  if (hb.cause !== '') body.c = hb.cause;
  body.cd = hb.configDigest;
  if (hb.stagedDigest !== undefined) body.sd = hb.stagedDigest;
  body.e = hb.epoch;
  body.l = hb.leader === null ? null : id(hb.leader);
  body.vw = view;
  body.td = hb.tableDigest;
  body.tb = hb.table;
  if (hb.prev !== undefined) body.pr = hb.prev;
  if (hb.holdings !== undefined) body.ho = [hb.holdings.epoch, hb.holdings.held, hb.holdings.connections];
  const pw = hb.powers;
  if (pw.version !== 0 || pw.origin !== '' || pw.entries.length > 0) {
    body.pw = [pw.version, pw.origin, pw.entries.map((e) => [id(e.node), e.group, e.power])];
  }
  // The heard tail: state, mutual, then epoch and digest only where they differ from ours.
  const heardTail = (h: HeardEntry, row: unknown[]): unknown[] => {
    row.push(h.state === 'UP' ? UP : WAIT, h.mutual ? 1 : 0);
    if (h.tableDigest !== hb.tableDigest) row.push(h.epoch, h.tableDigest);
    else if (h.epoch !== hb.epoch) row.push(h.epoch);
    return row;
  };
  // The engine acknowledges and reports the same peers in the same order: one row each.
  const peers: unknown[] = [];
  const acks: unknown[] = [];
  const heard: unknown[] = [];
  const both = Math.min(hb.acks.length, hb.heard.length);
  for (let i = 0; i < Math.max(hb.acks.length, hb.heard.length); i++) {
    const a = hb.acks[i];
    const h = hb.heard[i];
    if (i < both && a!.node === h!.node) {
      peers.push(heardTail(h!, [id(a!.node), b36(a!.incarnation), a!.seq, h!.ageMs]));
      continue;
    }
    if (a) acks.push([id(a.node), b36(a.incarnation), a.seq]);
    if (h) heard.push(heardTail(h, [id(h.node), h.ageMs]));
  }
  body.p = peers;
  if (acks.length) body.a = acks;
  if (heard.length) body.h = heard;
  return JSON.stringify(body);
}

function bad(detail: string): FarmlbError {
  return new FarmlbError('FARMLB_E_MEMBERSHIP_BAD_MESSAGE', { detail });
}

/** Which frame `buf` starts with: 1, 2, or 0 (not a farmlb heartbeat). */
export function frameOf(buf: Buffer): 0 | 1 | 2 {
  if (buf.length < 4 || buf[0] !== MAGIC[0] || buf[1] !== MAGIC[1] || buf[2] !== MAGIC[2]) return 0;
  return buf[3] === MAGIC[3] ? 1 : buf[3] === MAGIC2[3] ? 2 : 0;
}

/**
 * Could `buf` be a heartbeat (our magic, room for a MAC and a body, not oversize)? No
 * allocation: the receive path drops what fails this before any HMAC.
 */
export function looksLikeHeartbeat(buf: Buffer): boolean {
  const frame = frameOf(buf);
  const header = frame === 2 ? MAGIC2.length + KEY_ID_LEN + MAC_LEN : MAGIC.length + MAC_LEN;
  return frame !== 0 && buf.length >= header + 2 && buf.length <= MAX_MESSAGE_BYTES;
}

/** The JSON body of a frame (unverified: for tests and tools that look inside). */
export function frameBody(buf: Buffer): Buffer {
  return buf.subarray(frameOf(buf) === 2 ? MAGIC2.length + KEY_ID_LEN + MAC_LEN : MAGIC.length + MAC_LEN);
}

/** An authenticated frame: its body, and what the transport needs to know of the sender. */
export interface OpenedFrame {
  hb: Heartbeat;
  frame: 1 | 2;
  /** FLB1 only: marked by a release that reads FLB2. */
  marked: boolean;
  /** The key that verified it (index into the accepted keys). */
  keyIndex: number;
}

/** FARMLB_E_MEMBERSHIP_UNKNOWN_KEY for a frame signed with a key id none of `keys` has. */
function unknownKey(id: Buffer, keys: readonly Buffer[]): FarmlbError {
  return new FarmlbError('FARMLB_E_MEMBERSHIP_UNKNOWN_KEY', { keyId: id.toString('hex'), accepted: keys.map(keyId).join(', ') });
}

/**
 * Verifies and parses one datagram against the accepted keys; throws
 * FARMLB_E_MEMBERSHIP_BAD_MESSAGE, _BAD_MAC or _UNKNOWN_KEY (an FLB2 frame whose key id is
 * none of ours: another key; its `keyId` detail names it).
 */
export function openFrame(buf: Buffer, keys: AcceptedKeys): OpenedFrame {
  // A fixed detail: the reason is a log key, and a size in it would defeat the rate limit.
  if (buf.length > MAX_MESSAGE_BYTES) throw bad('larger than the largest heartbeat');
  if (!looksLikeHeartbeat(buf)) throw bad('not a farmlb heartbeat');
  const list = keyList(keys);
  let body: Buffer;
  let keyIndex = -1;
  const frame = frameOf(buf) as 1 | 2;
  if (frame === 2) {
    const id = buf.subarray(MAGIC2.length, MAGIC2.length + KEY_ID_LEN);
    const macAt = MAGIC2.length + KEY_ID_LEN;
    body = buf.subarray(macAt + MAC_LEN);
    let known = false;
    for (let i = 0; i < list.length && keyIndex < 0; i++) {
      if (!keyIdBytes(list[i]!).equals(id)) continue;
      known = true;
      const expected = createHmac('sha256', list[i]!).update(MAGIC2).update(id).update(body).digest();
      if (timingSafeEqual(expected, buf.subarray(macAt, macAt + MAC_LEN))) keyIndex = i;
    }
    if (!known) throw unknownKey(id, list);
  } else {
    body = buf.subarray(MAGIC.length + MAC_LEN);
    const got = buf.subarray(MAGIC.length, MAGIC.length + MAC_LEN);
    for (let i = 0; i < list.length && keyIndex < 0; i++) {
      if (timingSafeEqual(createHmac('sha256', list[i]!).update(MAGIC).update(body).digest(), got)) keyIndex = i;
    }
  }
  if (keyIndex < 0) throw new FarmlbError('FARMLB_E_MEMBERSHIP_BAD_MAC', {});
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch {
    throw bad('body is not JSON');
  }
  return { hb: parse(raw), frame, marked: frame === 1 && body[body.length - 1] === READS_FLB2_MARK, keyIndex };
}

/** Verifies and parses one datagram; throws FARMLB_E_MEMBERSHIP_BAD_MAC, _UNKNOWN_KEY or _BAD_MESSAGE. */
export function decodeHeartbeat(buf: Buffer, keys: AcceptedKeys): Heartbeat {
  return openFrame(buf, keys).hb;
}

// The checks below run on every heartbeat (300 a second per node in a 16-node farm), so they
// are plain loops over the parsed JSON: no closure or intermediate array per field.
const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const str = (x: unknown, what: string): string => {
  if (typeof x !== 'string' || x.length > 200) throw bad(`${what} is not a string`);
  return x;
};
const int = (x: unknown, what: string): number => {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw bad(`${what} is not a non-negative integer`);
  return x;
};
const DECIMAL = /^[0-9]{1,20}$/;
/**
 * Incarnations repeat in every heartbeat (one per ack): the last few parsed are kept, by their
 * decimal string. Only strings that passed the check are ever stored.
 */
const bigCache = new Map<string, bigint>();
const BIG_CACHE_MAX = 512;
const big = (x: unknown, what: string): bigint => {
  if (typeof x !== 'string') throw bad(`${what} is not a decimal integer`);
  const known = bigCache.get(x);
  if (known !== undefined) return known;
  if (!DECIMAL.test(x)) throw bad(`${what} is not a decimal integer`);
  return BigInt(x);
};
const bigCached = (x: unknown, what: string): bigint => {
  const v = big(x, what);
  if (bigCache.size >= BIG_CACHE_MAX && !bigCache.has(x as string)) bigCache.clear();
  bigCache.set(x as string, v);
  return v;
};
const state = (x: unknown): NodeState => {
  if (x !== 'UP' && x !== 'WAIT') throw bad('state is not UP or WAIT');
  return x;
};
const arr = (x: unknown, what: string, max: number): unknown[] => {
  if (!Array.isArray(x) || x.length > max) throw bad(`${what} is not a list`);
  return x;
};
/** A list of strings of at most `maxLen` characters each. */
const strings = (x: unknown, what: string, max: number, maxLen: number, rowWhat: string): string[] => {
  const list = arr(x, what, max);
  const out = new Array<string>(list.length);
  for (let i = 0; i < list.length; i++) {
    const r = list[i];
    if (typeof r !== 'string' || r.length > maxLen) throw bad(rowWhat);
    out[i] = r;
  }
  return out;
};

function parse(raw: unknown): Heartbeat {
  if (!isObj(raw)) throw bad('body is not an object');
  if (raw.v === 2) return parseV2(raw);
  if (raw.v !== 1) throw bad(`version ${String(raw.v)}`);
  const powersRaw = raw.powers;
  if (!isObj(powersRaw)) throw bad('powers missing');
  const entriesRaw = arr(powersRaw.entries, 'powers.entries', 4096);
  const entries: PowerOverrides['entries'] = new Array(entriesRaw.length);
  for (let i = 0; i < entriesRaw.length; i++) {
    const e = entriesRaw[i];
    if (!isObj(e)) throw bad('power entry');
    entries[i] = { node: str(e.node, 'power node'), group: e.group === null ? null : str(e.group, 'power group'), power: int(e.power, 'power') };
  }
  const powers: PowerOverrides = {
    version: int(powersRaw.version, 'powers.version'),
    origin: str(powersRaw.origin, 'powers.origin'),
    entries,
  };
  const acksRaw = arr(raw.acks, 'acks', 256);
  const acks: AckEntry[] = new Array(acksRaw.length);
  for (let i = 0; i < acksRaw.length; i++) {
    const a = acksRaw[i];
    if (!isObj(a)) throw bad('ack');
    acks[i] = { node: str(a.node, 'ack node'), incarnation: bigCached(a.incarnation, 'ack incarnation'), seq: int(a.seq, 'ack seq') };
  }
  const heardRaw = arr(raw.heard, 'heard', 256);
  const heard: HeardEntry[] = new Array(heardRaw.length);
  for (let i = 0; i < heardRaw.length; i++) {
    const h = heardRaw[i];
    if (!isObj(h)) throw bad('heard');
    if (typeof h.mutual !== 'boolean') throw bad('heard.mutual');
    heard[i] = {
      node: str(h.node, 'heard node'), ageMs: int(h.ageMs, 'heard age'), state: state(h.state), mutual: h.mutual,
      epoch: int(h.epoch, 'heard epoch'), tableDigest: str(h.tableDigest, 'heard tableDigest'),
    };
  }
  // Optional fields (handover): absent = no bucket in handover, nothing held.
  let holdings: HeartbeatHoldings | undefined;
  if (raw.holdings !== undefined) {
    const h = raw.holdings;
    if (!isObj(h)) throw bad('holdings');
    const connectionsRaw = arr(h.connections, 'holdings.connections', 64);
    const connections = new Array<number>(connectionsRaw.length);
    for (let i = 0; i < connectionsRaw.length; i++) connections[i] = int(connectionsRaw[i], 'holdings.connections');
    holdings = {
      epoch: int(h.epoch, 'holdings.epoch'),
      held: strings(h.held, 'holdings.held', 64, 64, 'holdings.held row'),
      connections,
    };
  }
  const hb: Heartbeat = {
    v: 1,
    module: str(raw.module, 'module'),
    from: str(raw.from, 'from'),
    incarnation: bigCached(raw.incarnation, 'incarnation'),
    seq: int(raw.seq, 'seq'),
    sentAtNs: big(raw.sentAtNs, 'sentAtNs'),
    state: state(raw.state),
    cause: str(raw.cause, 'cause'),
    configDigest: str(raw.configDigest, 'configDigest'),
    epoch: int(raw.epoch, 'epoch'),
    leader: raw.leader === null ? null : str(raw.leader, 'leader'),
    view: strings(raw.view, 'view', 256, 200, 'view node is not a string'),
    tableDigest: str(raw.tableDigest, 'tableDigest'),
    table: strings(raw.table, 'table', 64, 400, 'table row'),
    powers,
    acks,
    heard,
  };
  if (raw.prev !== undefined) hb.prev = strings(raw.prev, 'prev', 64, 400, 'prev row');
  if (holdings) hb.holdings = holdings;
  if (raw.stagedDigest !== undefined) hb.stagedDigest = str(raw.stagedDigest, 'stagedDigest');
  if (raw.readsV2 !== undefined) {
    if (raw.readsV2 !== true) throw bad('readsV2 is not true');
    hb.readsV2 = true;
  }
  return hb;
}

// --- v2 ---------------------------------------------------------------------------------------

/** Every key a v2 body may have; any other is refused (a later format is another `v`). */
const V2_KEYS = new Set(['v', 'm', 'n', 'f', 'i', 's', 't', 'st', 'c', 'cd', 'sd', 'e', 'l', 'vw', 'td', 'tb', 'pr', 'ho', 'pw', 'p', 'a', 'h']);
/** Names one v2 heartbeat may carry: as many as v1's longest list (nodes are < 64). */
const V2_MAX_NAMES = 256;
/** Base 36, at most 13 digits (above 2^64, like v1's 20 decimal digits). */
const BASE36 = /^[0-9a-z]{1,13}$/;
const B36_LOW = 36 ** 10;
/** Like bigCache, for base-36 strings (a string can be valid in both bases, with two values). */
const big36Cache = new Map<string, bigint>();

/** A v2 bigint; incarnations (repeated in every ack) are cached like v1's. */
const big36 = (x: unknown, what: string, cache: boolean): bigint => {
  if (typeof x !== 'string') throw bad(`${what} is not a base-36 integer`);
  const known = big36Cache.get(x);
  if (known !== undefined) return known;
  if (!BASE36.test(x)) throw bad(`${what} is not a base-36 integer`);
  // Two chunks of at most 10 digits, each exact as a double (36^10 < 2^53).
  const split = Math.max(0, x.length - 10);
  const v = split === 0 ? BigInt(parseInt(x, 36)) : BigInt(parseInt(x.slice(0, split), 36)) * BigInt(B36_LOW) + BigInt(parseInt(x.slice(split), 36));
  if (cache) {
    if (big36Cache.size >= BIG_CACHE_MAX) big36Cache.clear();
    big36Cache.set(x, v);
  }
  return v;
};
const flag = (x: unknown, what: string): boolean => {
  if (x !== 0 && x !== 1) throw bad(`${what} is not 0 or 1`);
  return x === 1;
};
const state01 = (x: unknown): NodeState => (flag(x, 'state') ? 'UP' : 'WAIT');
/** A row of `min`..`max` elements. */
const row = (x: unknown, what: string, min: number, max: number): unknown[] => {
  if (!Array.isArray(x) || x.length < min || x.length > max) throw bad(`${what} is not a row of ${min === max ? min : `${min}-${max}`}`);
  return x;
};

/** Is a name in `names` twice? Pairwise for a farm's few names (no Set per heartbeat). */
function hasDuplicate(names: readonly string[]): boolean {
  if (names.length > 64) return new Set(names).size !== names.length;
  for (let i = 1; i < names.length; i++) {
    const n = names[i];
    for (let j = 0; j < i; j++) if (names[j] === n) return true;
  }
  return false;
}

/** A v2 node index: the name it is in `names`. */
function nodeAt(names: readonly string[], x: unknown, what: string): string {
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= names.length) throw bad(`${what} is not an index of n`);
  return names[x]!;
}

/** A v2 heard entry from `at` on: state, mutual, then epoch and digest (absent = the sender's). */
function heardAt(h: unknown[], at: number, name: string, ageMs: number, epoch: number, tableDigest: string): HeardEntry {
  return {
    node: name, ageMs, state: state01(h[at]), mutual: flag(h[at + 1], 'heard mutual'),
    epoch: h.length > at + 2 ? int(h[at + 2], 'heard epoch') : epoch,
    tableDigest: h.length > at + 3 ? str(h[at + 3], 'heard tableDigest') : tableDigest,
  };
}

// parseV2 runs on every received heartbeat: plain functions, no closure per call.
function parseV2(raw: Record<string, unknown>): Heartbeat {
  for (const k in raw) if (!V2_KEYS.has(k)) throw bad(`unknown field ${k.slice(0, 20)}`);
  const names = strings(raw.n, 'n', V2_MAX_NAMES, 200, 'n: a node name is not a string');
  // A name twice would let two indexes mean one node: refused, as the sender never does it.
  if (hasDuplicate(names)) throw bad('n: a node name twice');
  let view: string[];
  if (typeof raw.vw === 'number') {
    if (!Number.isInteger(raw.vw) || raw.vw < 0 || raw.vw > names.length) throw bad('vw is not a count of n');
    view = names.slice(0, raw.vw);
  } else {
    const viewRaw = arr(raw.vw, 'vw', 256);
    view = new Array<string>(viewRaw.length);
    for (let i = 0; i < viewRaw.length; i++) view[i] = nodeAt(names, viewRaw[i], 'view node');
  }
  const epoch = int(raw.e, 'epoch');
  const tableDigest = str(raw.td, 'tableDigest');

  let powers: PowerOverrides = { version: 0, origin: '', entries: [] };
  if (raw.pw !== undefined) {
    const pw = row(raw.pw, 'powers', 3, 3);
    const entriesRaw = arr(pw[2], 'powers entries', 4096);
    const entries: PowerOverrides['entries'] = new Array(entriesRaw.length);
    for (let i = 0; i < entriesRaw.length; i++) {
      const e = row(entriesRaw[i], 'power entry', 3, 3);
      entries[i] = { node: nodeAt(names, e[0], 'power node'), group: e[1] === null ? null : str(e[1], 'power group'), power: int(e[2], 'power') };
    }
    powers = { version: int(pw[0], 'powers version'), origin: str(pw[1], 'powers origin'), entries };
  }

  const peersRaw = arr(raw.p, 'peers', 256);
  const acksRaw = raw.a === undefined ? [] : arr(raw.a, 'acks', 256);
  const heardRaw = raw.h === undefined ? [] : arr(raw.h, 'heard', 256);
  if (peersRaw.length + acksRaw.length > 256 || peersRaw.length + heardRaw.length > 256) throw bad('too many peers');
  const acks: AckEntry[] = new Array(peersRaw.length + acksRaw.length);
  const heard: HeardEntry[] = new Array(peersRaw.length + heardRaw.length);
  for (let i = 0; i < peersRaw.length; i++) {
    const p = row(peersRaw[i], 'peer', 6, 8);
    const name = nodeAt(names, p[0], 'peer node');
    acks[i] = { node: name, incarnation: big36(p[1], 'ack incarnation', true), seq: int(p[2], 'ack seq') };
    heard[i] = heardAt(p, 4, name, int(p[3], 'heard age'), epoch, tableDigest);
  }
  for (let i = 0; i < acksRaw.length; i++) {
    const a = row(acksRaw[i], 'ack', 3, 3);
    acks[peersRaw.length + i] = { node: nodeAt(names, a[0], 'ack node'), incarnation: big36(a[1], 'ack incarnation', true), seq: int(a[2], 'ack seq') };
  }
  for (let i = 0; i < heardRaw.length; i++) {
    const h = row(heardRaw[i], 'heard', 4, 6);
    heard[peersRaw.length + i] = heardAt(h, 2, nodeAt(names, h[0], 'heard node'), int(h[1], 'heard age'), epoch, tableDigest);
  }

  let holdings: HeartbeatHoldings | undefined;
  if (raw.ho !== undefined) {
    const ho = row(raw.ho, 'holdings', 3, 3);
    const connectionsRaw = arr(ho[2], 'holdings connections', 64);
    const connections = new Array<number>(connectionsRaw.length);
    for (let i = 0; i < connectionsRaw.length; i++) connections[i] = int(connectionsRaw[i], 'holdings connections');
    holdings = { epoch: int(ho[0], 'holdings epoch'), held: strings(ho[1], 'holdings held', 64, 64, 'holdings held row'), connections };
  }
  const hb: Heartbeat = {
    v: 2,
    module: str(raw.m, 'module'),
    from: nodeAt(names, raw.f, 'from'),
    incarnation: big36(raw.i, 'incarnation', true),
    seq: int(raw.s, 'seq'),
    sentAtNs: big36(raw.t, 'sentAtNs', false),
    state: state01(raw.st),
    cause: raw.c === undefined ? '' : str(raw.c, 'cause'),
    configDigest: str(raw.cd, 'configDigest'),
    epoch,
    leader: raw.l === null ? null : nodeAt(names, raw.l, 'leader'),
    view,
    tableDigest,
    table: strings(raw.tb, 'table', 64, 400, 'table row'),
    powers,
    acks,
    heard,
  };
  if (raw.pr !== undefined) hb.prev = strings(raw.pr, 'prev', 64, 400, 'prev row');
  if (holdings) hb.holdings = holdings;
  if (raw.sd !== undefined) hb.stagedDigest = str(raw.sd, 'stagedDigest');
  return hb;
}

interface SenderRecord {
  incarnation: bigint;
  seq: number;
  /** Smallest (receive time − send time) seen, allowed to drift upwards. */
  offsetNs: bigint;
  lastRecvNs: bigint;
}

/** Accepted clock-rate difference between two nodes' monotonic clocks: 1000 ppm. */
const DRIFT_PPM = 1000n;

export type ReplayVerdict = { ok: true; newIncarnation: boolean } | { ok: false; reason: string; candidate?: true };

export class ReplayGuard {
  private readonly senders = new Map<string, SenderRecord>();

  /** @param windowNs how much later than its best transit a heartbeat may arrive */
  constructor(private readonly windowNs: bigint) {}

  /**
   * @param proven whether the heartbeat acknowledges a recent heartbeat of our current
   *   incarnation (the engine's nonce check, docs/membership.md "Replay protection"). With it,
   *   any other incarnation than the known one — older too (a clock stepped back) — starts
   *   anew; without it (false) none does: the heartbeat is a candidate, to acknowledge and
   *   wait for. Omitted: the rule of releases before it (a greater incarnation starts anew).
   */
  check(hb: Pick<Heartbeat, 'from' | 'incarnation' | 'seq' | 'sentAtNs'>, recvNs: bigint, proven?: boolean): ReplayVerdict {
    const known = this.senders.get(hb.from);
    const observed = recvNs - hb.sentAtNs;
    const other = !known || hb.incarnation !== known.incarnation;
    if (proven === false && other) return { ok: false, reason: 'new incarnation not yet acknowledging ours', candidate: true };
    if (proven === undefined && known && hb.incarnation < known.incarnation) return { ok: false, reason: 'older incarnation' };
    if (other) {
      this.senders.set(hb.from, { incarnation: hb.incarnation, seq: hb.seq, offsetNs: observed, lastRecvNs: recvNs });
      return { ok: true, newIncarnation: true };
    }
    if (hb.seq <= known.seq) return { ok: false, reason: 'replayed or reordered (seq not above the last accepted)' };
    const elapsed = recvNs > known.lastRecvNs ? recvNs - known.lastRecvNs : 0n;
    const allowed = known.offsetNs + (elapsed * DRIFT_PPM) / 1_000_000n;
    if (observed - allowed > this.windowNs) return { ok: false, reason: 'stale (arrived too long after it was sent)' };
    known.seq = hb.seq;
    known.offsetNs = observed < allowed ? observed : allowed;
    known.lastRecvNs = recvNs;
    return { ok: true, newIncarnation: false };
  }

  forget(node: string): void {
    this.senders.delete(node);
  }
}
