// Heartbeats on the wire: "FLB1" ‖ HMAC-SHA256(key, "FLB1" ‖ json) ‖ json. JSON keeps the
// format readable in tcpdump and easy to extend; at 16 nodes and 20 pulses/s (300 bodies of
// ~2.9 KB a second) parsing and checking them is about half of the membership's CPU, which
// stays under 1% of a core (docs/membership.md, "CPU"). bigints travel as decimal strings.
//
// ReplayGuard rejects, per sender: an incarnation older than the newest accepted, a seq not
// above the last accepted one of the same incarnation, and a heartbeat that arrives much
// later than the sender's others did (a stale copy, or one queued while this daemon was
// stopped) — measured against the smallest transit-plus-clock-offset seen for that
// sender, which is allowed to grow by a bounded clock-rate drift.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { FarmlbError } from '../errors.js';
import type { AckEntry, Heartbeat, HeardEntry, HeartbeatHoldings, NodeState, PowerOverrides } from './types.js';

const MAGIC = Buffer.from('FLB1');
const MAC_LEN = 32;
/** Far above a heartbeat of 64 nodes and 16 groups (~12 KiB); anything bigger is refused unparsed. */
export const MAX_MESSAGE_BYTES = 60_000;

function mac(key: Buffer, body: Buffer): Buffer {
  return createHmac('sha256', key).update(MAGIC).update(body).digest();
}

export function encodeHeartbeat(hb: Heartbeat, key: Buffer): Buffer {
  const body = Buffer.from(JSON.stringify({
    ...hb,
    incarnation: hb.incarnation.toString(),
    sentAtNs: hb.sentAtNs.toString(),
    acks: hb.acks.map((a) => ({ ...a, incarnation: a.incarnation.toString() })),
  }));
  return Buffer.concat([MAGIC, mac(key, body), body]);
}

function bad(detail: string): FarmlbError {
  return new FarmlbError('FARMLB_E_MEMBERSHIP_BAD_MESSAGE', { detail });
}

/** Verifies and parses one datagram; throws FARMLB_E_MEMBERSHIP_BAD_MAC or _BAD_MESSAGE. */
export function decodeHeartbeat(buf: Buffer, key: Buffer): Heartbeat {
  if (buf.length > MAX_MESSAGE_BYTES) throw bad(`${buf.length} bytes`);
  if (buf.length < MAGIC.length + MAC_LEN + 2 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw bad('not a farmlb heartbeat');
  const body = buf.subarray(MAGIC.length + MAC_LEN);
  const expected = mac(key, body);
  if (!timingSafeEqual(expected, buf.subarray(MAGIC.length, MAGIC.length + MAC_LEN))) {
    throw new FarmlbError('FARMLB_E_MEMBERSHIP_BAD_MAC', {});
  }
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch {
    throw bad('body is not JSON');
  }
  return parse(raw);
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

export type ReplayVerdict = { ok: true; newIncarnation: boolean } | { ok: false; reason: string };

export class ReplayGuard {
  private readonly senders = new Map<string, SenderRecord>();

  /** @param windowNs how much later than its best transit a heartbeat may arrive */
  constructor(private readonly windowNs: bigint) {}

  check(hb: Pick<Heartbeat, 'from' | 'incarnation' | 'seq' | 'sentAtNs'>, recvNs: bigint): ReplayVerdict {
    const known = this.senders.get(hb.from);
    const observed = recvNs - hb.sentAtNs;
    if (known && hb.incarnation < known.incarnation) return { ok: false, reason: 'older incarnation' };
    if (!known || hb.incarnation > known.incarnation) {
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
