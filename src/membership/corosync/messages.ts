// What the members of a Corosync farm multicast to each other in their CPG group (agreed
// order, docs/membership.md "Corosync backend"), and its wire form:
//   "FLC1" ‖ HMAC-SHA256(key, "FLC1" ‖ module ‖ 0x00 ‖ body) ‖ body,   body = JSON.
// The key is the farm's heartbeat key (<farmlb key_file>): with `transport: udpu` totem
// itself is not authenticated (corosync 3 encrypts knet only), so a message farmlb acts upon
// must prove it comes from a node holding the key. Decoding checks every field and bound;
// anything else is refused with a reason, and every member refuses the same messages
// (same key, same checks), so the farm's state stays one.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { NBUCKETS } from '../../balance/tables.js';
import type { PowerOverrides } from '../types.js';
import { MAX_EPOCH, MAX_POWER, MAX_POWERS_VERSION } from '../bounds.js';

const MAGIC = Buffer.from('FLC1');
const MAC_LEN = 32;
/** Far above a sync of 64 nodes and 16 groups; CPG itself carries up to ~1 MiB. */
export const MAX_CPG_MESSAGE_BYTES = 200_000;
const MAX_TEXT = 512;
const MAX_NAME = 64;
const MAX_GROUPS = 64;
const MAX_ENTRIES = 4096;

/** A member's replicated table, as it travels in its sync (rows as in heartbeats: base64, 255 = none). */
export interface TableSnapshot {
  epoch: number;
  owners: string[];
  prev: string[];
  /** [group, bucket, epoch]: the bucket is given out once every serving member applied `epoch`. */
  fence: [number, number, number][];
  /** [group, bucket, epoch]: the handover of the bucket began with table `epoch`. */
  handover: [number, number, number][];
}

/** What a previous owner still holds (as in heartbeats: per group a 32-byte bitmap, base64). */
export interface HoldingsReport {
  epoch: number;
  held: string[];
  connections: number[];
}

export type FarmMessage =
  /** Sent by every member at every configuration change: its state, for the farm to merge. */
  | {
    t: 'sync';
    /** The configuration it answers: members as "nodeid:pid", sorted. */
    view: string;
    node: string;
    digest: string;
    ok: boolean;
    cause: string;
    applied: number;
    holdings?: HoldingsReport;
    powers: PowerOverrides;
    /** null: it has no state yet (it just started). */
    state: TableSnapshot | null;
  }
  /** Every pulse and after every table applied: liveness, the applied epoch, and (self-delivered) the lease. */
  | { t: 'beat'; seq: number; at: string; applied: number }
  /** Its eligibility changed (checks, farmlb stop/start), or its facts in the farm's state are out of date. */
  | { t: 'health'; ok: boolean; cause: string; digest: string }
  | { t: 'power'; node: string; group: string | null; power: number | null }
  | ({ t: 'holdings' } & HoldingsReport)
  /** `proc` ("nodeid:pid") sent nothing after its beat `seq` for longer than its lease could last. */
  | { t: 'suspect'; proc: string; seq: number }
  /** The handovers that began with table `epoch` or before have run for handover_limit. */
  | { t: 'limit'; epoch: number };

function mac(key: Buffer, module: string, body: Buffer): Buffer {
  return createHmac('sha256', key).update(MAGIC).update(module).update('\0').update(body).digest();
}

export function encodeMessage(msg: FarmMessage, key: Buffer, module: string): Buffer {
  const body = Buffer.from(JSON.stringify(msg));
  return Buffer.concat([MAGIC, mac(key, module, body), body]);
}

export type Decoded = { ok: true; msg: FarmMessage } | { ok: false; reason: string; foreignKey?: boolean };

/** The message, or why it is refused (never throws). */
export function decodeMessage(buf: Buffer, key: Buffer, module: string): Decoded {
  if (buf.length > MAX_CPG_MESSAGE_BYTES) return { ok: false, reason: `${buf.length} bytes (at most ${MAX_CPG_MESSAGE_BYTES})` };
  if (buf.length < MAGIC.length + MAC_LEN + 2 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return { ok: false, reason: 'not a farmlb message' };
  const body = buf.subarray(MAGIC.length + MAC_LEN);
  const expected = mac(key, module, body);
  if (!timingSafeEqual(expected, buf.subarray(MAGIC.length, MAGIC.length + MAC_LEN))) {
    return { ok: false, reason: 'authentication failed (another key file, or another module)', foreignKey: true };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch {
    return { ok: false, reason: 'body is not JSON' };
  }
  try {
    return { ok: true, msg: check(raw) };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}

// ---- validation -------------------------------------------------------------------------

class Bad extends Error {}

function obj(v: unknown, what: string, keys: readonly string[], optional: readonly string[] = []): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Bad(`${what}: not an object`);
  for (const k of Object.keys(v)) if (!keys.includes(k) && !optional.includes(k)) throw new Bad(`${what}: unknown field ${k}`);
  for (const k of keys) if (!(k in v)) throw new Bad(`${what}: no ${k}`);
  return v as Record<string, unknown>;
}

function int(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw new Bad(`${what}: not an integer in ${min}..${max}`);
  return v;
}

function str(v: unknown, what: string, max = MAX_TEXT): string {
  if (typeof v !== 'string' || v.length > max) throw new Bad(`${what}: not a string of at most ${max} characters`);
  return v;
}

function bool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw new Bad(`${what}: not a boolean`);
  return v;
}

function list<T>(v: unknown, what: string, max: number, item: (x: unknown, i: number) => T): T[] {
  if (!Array.isArray(v) || v.length > max) throw new Bad(`${what}: not a list of at most ${max}`);
  return v.map(item);
}

function row(v: unknown, what: string): string {
  const s = str(v, what, 400);
  if (Buffer.from(s, 'base64').length !== NBUCKETS) throw new Bad(`${what}: not ${NBUCKETS} bytes of base64`);
  return s;
}

function bitmap(v: unknown, what: string): string {
  const s = str(v, what, 64);
  if (Buffer.from(s, 'base64').length !== NBUCKETS / 8) throw new Bad(`${what}: not ${NBUCKETS / 8} bytes of base64`);
  return s;
}

function triple(v: unknown, what: string, groups: number): [number, number, number] {
  const t = list(v, what, 3, (x, i) => int(x, `${what}[${i}]`, 0, i === 0 ? groups - 1 : i === 1 ? NBUCKETS - 1 : MAX_EPOCH));
  if (t.length !== 3) throw new Bad(`${what}: not [group, bucket, epoch]`);
  return t as [number, number, number];
}

function holdings(v: unknown, what: string, extra: readonly string[] = []): HoldingsReport {
  const o = obj(v, what, ['epoch', 'held', 'connections', ...extra]);
  const held = list(o.held, `${what}.held`, MAX_GROUPS, (x, i) => bitmap(x, `${what}.held[${i}]`));
  const connections = list(o.connections, `${what}.connections`, MAX_GROUPS, (x, i) => int(x, `${what}.connections[${i}]`, 0, 1e9));
  if (held.length !== connections.length) throw new Bad(`${what}: held and connections differ in length`);
  return { epoch: int(o.epoch, `${what}.epoch`, 0, MAX_EPOCH), held, connections };
}

function powers(v: unknown, what: string): PowerOverrides {
  const o = obj(v, what, ['version', 'origin', 'entries']);
  return {
    version: int(o.version, `${what}.version`, 0, MAX_POWERS_VERSION),
    origin: str(o.origin, `${what}.origin`, MAX_NAME),
    entries: list(o.entries, `${what}.entries`, MAX_ENTRIES, (x, i) => {
      const e = obj(x, `${what}.entries[${i}]`, ['node', 'group', 'power']);
      return {
        node: str(e.node, `${what}.entries[${i}].node`, MAX_NAME),
        group: e.group === null ? null : str(e.group, `${what}.entries[${i}].group`, MAX_NAME),
        power: int(e.power, `${what}.entries[${i}].power`, 0, MAX_POWER),
      };
    }),
  };
}

function snapshot(v: unknown): TableSnapshot | null {
  if (v === null) return null;
  const o = obj(v, 'state', ['epoch', 'owners', 'prev', 'fence', 'handover']);
  const owners = list(o.owners, 'state.owners', MAX_GROUPS, (x, i) => row(x, `state.owners[${i}]`));
  const prev = list(o.prev, 'state.prev', MAX_GROUPS, (x, i) => row(x, `state.prev[${i}]`));
  if (prev.length !== owners.length) throw new Bad('state: owners and prev differ in length');
  const g = owners.length;
  return {
    epoch: int(o.epoch, 'state.epoch', 0, MAX_EPOCH),
    owners,
    prev,
    fence: list(o.fence, 'state.fence', g * NBUCKETS, (x, i) => triple(x, `state.fence[${i}]`, g)),
    handover: list(o.handover, 'state.handover', g * NBUCKETS, (x, i) => triple(x, `state.handover[${i}]`, g)),
  };
}

const PROC = /^\d{1,10}:\d{1,10}$/;

function check(raw: unknown): FarmMessage {
  const t = typeof raw === 'object' && raw !== null ? (raw as { t?: unknown }).t : undefined;
  switch (t) {
    case 'sync': {
      const o = obj(raw, 'sync', ['t', 'view', 'node', 'digest', 'ok', 'cause', 'applied', 'powers', 'state'], ['holdings']);
      return {
        t, view: str(o.view, 'sync.view', 128 * 24), node: str(o.node, 'sync.node', MAX_NAME), digest: str(o.digest, 'sync.digest', 128),
        ok: bool(o.ok, 'sync.ok'), cause: str(o.cause, 'sync.cause'), applied: int(o.applied, 'sync.applied', 0, MAX_EPOCH),
        ...(o.holdings !== undefined ? { holdings: holdings(o.holdings, 'sync.holdings') } : {}),
        powers: powers(o.powers, 'sync.powers'), state: snapshot(o.state),
      };
    }
    case 'beat': {
      const o = obj(raw, 'beat', ['t', 'seq', 'at', 'applied']);
      const at = str(o.at, 'beat.at', 24);
      if (!/^\d{1,20}$/.test(at)) throw new Bad('beat.at: not a decimal');
      return { t, seq: int(o.seq, 'beat.seq', 1, Number.MAX_SAFE_INTEGER), at, applied: int(o.applied, 'beat.applied', 0, MAX_EPOCH) };
    }
    case 'health': {
      const o = obj(raw, 'health', ['t', 'ok', 'cause', 'digest']);
      return { t, ok: bool(o.ok, 'health.ok'), cause: str(o.cause, 'health.cause'), digest: str(o.digest, 'health.digest', 128) };
    }
    case 'power': {
      const o = obj(raw, 'power', ['t', 'node', 'group', 'power']);
      return {
        t, node: str(o.node, 'power.node', MAX_NAME), group: o.group === null ? null : str(o.group, 'power.group', MAX_NAME),
        power: o.power === null ? null : int(o.power, 'power.power', 0, MAX_POWER),
      };
    }
    case 'holdings':
      return { t, ...holdings(raw, 'holdings', ['t']) };
    case 'suspect': {
      const o = obj(raw, 'suspect', ['t', 'proc', 'seq']);
      const proc = str(o.proc, 'suspect.proc', 24);
      if (!PROC.test(proc)) throw new Bad('suspect.proc: not nodeid:pid');
      return { t, proc, seq: int(o.seq, 'suspect.seq', 0, Number.MAX_SAFE_INTEGER) };
    }
    case 'limit': {
      const o = obj(raw, 'limit', ['t', 'epoch']);
      return { t, epoch: int(o.epoch, 'limit.epoch', 0, MAX_EPOCH) };
    }
    default:
      throw new Bad(`unknown message type ${JSON.stringify(t)?.slice(0, 20)}`);
  }
}
