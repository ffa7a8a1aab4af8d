// How heartbeats travel: authenticated datagrams (codec.ts) to every peer on every LAN. A
// real UDP implementation (one socket per own LAN address, never 0.0.0.0, so heartbeats
// leave on the LAN they belong to) and an in-memory one for tests with loss and cuts.
// Each peer gets the frame it reads (FrameChooser, codec.ts): FLB2 with the key id, FLB1 for a
// release before key ids. Received frames are verified against the keys this node accepts
// (its own and, during a rotation, one more: setKeys).
// Replay protection is the engine's (it needs the receive time); the transport drops what
// does not authenticate, or comes from an address that is not its sender's, and counts it
// per source (docs/security.md, "Unauthenticated datagrams"): such a datagram never reaches
// the engine nor the daemon's decision queue, so it changes no state and costs no decision.
// The daemon's sockets are the addon's (native/udpbatch.cc): read in batches, each datagram
// with its kernel arrival time, either on every wake-up (watch) or only when the pulse drains
// them (setBatched: no wake-up per datagram while the farm is at rest; receive-cadence.ts).

import dgram from 'node:dgram';
import dns from 'node:dns';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { type BatchDatagram, loadNative, type Native, type UdpBatchSocket } from '../addon/native.js';
import { FarmlbError } from '../errors.js';
import { MAX_MESSAGE_BYTES, encodeHeartbeat, frameOf, looksLikeHeartbeat, openFrame, type OpenedFrame } from './codec.js';
import { keyId } from './key.js';
import type { Heartbeat } from './types.js';

export interface TransportStats {
  sent: number;
  received: number;
  /** Dropped: wrong key / forged (bad MAC). */
  badMac: number;
  /** Dropped: not a farmlb heartbeat. */
  malformed: number;
  /** Dropped: authenticated, but `from` names a node the source address is not an address of. */
  wrongSource: number;
  sendErrors: number;
  /**
   * CPU time (user + system, µs) of the heartbeat path in this process: sending (encode,
   * HMAC, one sendmsg per peer and LAN) and receiving (authenticate, decode, the engine's
   * handling). process.cpuUsage() around each: ~1 µs each, a few hundred times a second.
   */
  sendCpuUs: number;
  receiveCpuUs: number;
}

/** Runs `fn` and hands the CPU time it took (user + system, µs) to `add`. */
export function metered<T>(add: (us: number) => void, fn: () => T): T {
  const t0 = process.cpuUsage();
  try {
    return fn();
  } finally {
    const d = process.cpuUsage(t0);
    add(d.user + d.system);
  }
}

/**
 * dgram's lookup for the IP literals of cluster.xml, answered at once: the default goes
 * through dns.lookup and a tick, so the sendmsg would run outside send() (and outside the
 * CPU it is metered by). Anything else still goes to dns.lookup.
 */
function literalLookup(host: string, options: unknown, callback: (err: Error | null, address: string, family: number) => void): void {
  const family = isIP(host);
  if (family !== 0) callback(null, host, family);
  else dns.lookup(host, options as dns.LookupOneOptions, (err, address, fam) => callback(err, address, fam));
}

export interface Transport {
  /** To every peer on every LAN. Never throws (errors are counted and logged). */
  send(hb: Heartbeat): void;
  /**
   * One handler; called for every heartbeat that authenticates, with its arrival time
   * (CLOCK_MONOTONIC ns) when the transport knows it (the kernel's: a datagram read in a
   * batch arrived before it is handled).
   */
  onReceive(handler: (hb: Heartbeat, arrivalNs?: bigint) => void): void;
  /** Hands every datagram queued now to the handler (a transport that reads on arrival has none). */
  drain?(): void;
  /**
   * true: datagrams wait for drain() (no wake-up of their own); false: each wake-up reads
   * them at once. Starts false.
   */
  setBatched?(batched: boolean): void;
  /**
   * The key to sign with and the other keys to accept (one, during a rotation: docs/security.md,
   * "Rotating the key"); from the next datagram on.
   */
  setKeys(key: Buffer, accept?: readonly Buffer[]): void;
  /**
   * The only evidence of "a peer uses another key" farmlb believes: a well-formed frame (our
   * magic, a plausible size) that fails the MAC, from a configured address of `node`. It is
   * reported (engine.noteForeignKey), never acted upon: any sender can make junk, and a node
   * that left the farm on junk would be an outage anyone on the LAN can cause. `keyId` is the
   * id the frame names (FLB2), absent for an FLB1 frame (releases before key ids).
   */
  onForeignKey(handler: (node: string, keyId?: string) => void): void;
  stats(): TransportStats;
  /** Dropped datagrams per source address (bounded: the busiest first, the rest as "other"). */
  drops(): DropCounts;
  /** Dropped datagrams per reason, every reason present (0 when none). */
  dropReasons(): Record<DropReason, number>;
  close(): Promise<void>;
}

/**
 * Either explicit addresses (bindAddrs + peers, in the same LAN order: peers[].addrs[i] is
 * reached from bindAddrs[i]) or cluster.xml's LANs and this node's name (the heartbeat LANs
 * only), from which both are derived.
 */
export interface UdpTransportOptions {
  bindAddrs?: string[];
  peers?: { node: string; addrs: (string | undefined)[] }[];
  self?: string;
  lans?: { name: string; nodes: { name: string; addr: string }[] }[];
  port: number;
  /** The key heartbeats are signed with. */
  key: Buffer;
  /** Other keys accepted on receive (the next or the previous key of a rotation). */
  acceptKeys?: readonly Buffer[];
  log: Logger;
  /** Accepted for symmetry with the engine; not used by the transport. */
  module?: string;
  /**
   * 'native' (default when the addon loads): the addon's batch sockets; 'dgram': Node's
   * sockets, one wake-up per datagram, no arrival times, no batching.
   */
  sockets?: 'native' | 'dgram';
  nodes?: string[];
}

/** bindAddrs and peers from cluster.xml LANs: a LAN without this node carries no heartbeat. */
export function addressesFromLans(self: string, lans: NonNullable<UdpTransportOptions['lans']>): { bindAddrs: string[]; peers: { node: string; addrs: (string | undefined)[] }[] } {
  const mine = lans.filter((l) => l.nodes.some((n) => n.name === self));
  const bindAddrs = mine.map((l) => l.nodes.find((n) => n.name === self)!.addr);
  const names = [...new Set(mine.flatMap((l) => l.nodes.map((n) => n.name)))].filter((n) => n !== self);
  const peers = names.map((node) => ({ node, addrs: mine.map((l) => l.nodes.find((n) => n.name === node)?.addr) }));
  return { bindAddrs, peers };
}

function newStats(): TransportStats {
  return { sent: 0, received: 0, badMac: 0, malformed: 0, wrongSource: 0, sendErrors: 0, sendCpuUs: 0, receiveCpuUs: 0 };
}

/** Why a datagram was dropped; fixed strings (log keys and labels never carry sizes or content). */
export type DropReason = 'oversize' | 'not_farmlb' | 'bad_mac' | 'malformed' | 'wrong_source';
export const DROP_REASONS: readonly DropReason[] = ['oversize', 'not_farmlb', 'bad_mac', 'malformed', 'wrong_source'];

export type DropCounts = Map<string, number>;

/** Source addresses tracked one by one; a flood from more sources is counted under "other". */
export const MAX_DROP_SOURCES = 256;
/** At most one warning per reason in this long (a flood of 10,000 datagrams is one line). */
export const DROP_LOG_EVERY_MS = 10_000;

/**
 * The receive side's accounting of dropped datagrams: per source (bounded) and per reason,
 * with one warning per reason every DROP_LOG_EVERY_MS that says how many were dropped since.
 */
export class DropAccounting {
  private readonly bySource: DropCounts = new Map();
  private readonly byReason = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  private readonly lastLogMs = new Map<DropReason, number>();
  private readonly sinceLog = new Map<DropReason, number>();

  constructor(private readonly stats: TransportStats, private readonly log: Logger | undefined, private readonly nowMs: () => number = Date.now) {}

  drop(reason: DropReason, source: string): void {
    if (reason === 'bad_mac') this.stats.badMac++;
    else if (reason === 'wrong_source') this.stats.wrongSource++;
    else this.stats.malformed++;
    this.byReason[reason]++;
    const key = this.bySource.has(source) || this.bySource.size < MAX_DROP_SOURCES ? source : 'other';
    this.bySource.set(key, (this.bySource.get(key) ?? 0) + 1);
    this.sinceLog.set(reason, (this.sinceLog.get(reason) ?? 0) + 1);
    const now = this.nowMs();
    const last = this.lastLogMs.get(reason);
    if (last !== undefined && now - last < DROP_LOG_EVERY_MS) return;
    this.lastLogMs.set(reason, now);
    const dropped = this.sinceLog.get(reason)!;
    this.sinceLog.set(reason, 0);
    this.log?.warn({ event: 'heartbeat_dropped', reason, from: source, dropped }, `dropped ${dropped} datagram(s) on the membership port: ${reason} (last from ${source})`);
  }

  counts(): DropCounts {
    return new Map(this.bySource);
  }

  reasons(): Record<DropReason, number> {
    return { ...this.byReason };
  }
}

/** How long after an unmarked FLB1 frame from a peer (an older release) it gets FLB1 frames. */
export const LEGACY_FRAME_HOLD_MS = 10_000;

/**
 * Which frame each peer gets (codec.ts): FLB2, unless that peer sent an unmarked FLB1 frame
 * within LEGACY_FRAME_HOLD_MS — a release before key ids, which drops FLB2 frames. A peer
 * heard in FLB2 reads it. Frames of this release's FLB1 are marked, so two upgraded nodes
 * never keep each other in FLB1; a node upgraded in place gets FLB2 within the hold.
 */
export class FrameChooser {
  private readonly legacyUntil = new Map<string, number>();

  constructor(private readonly nowMs: () => number = () => performance.now(), private readonly holdMs = LEGACY_FRAME_HOLD_MS) {}

  heard(node: string, opened: Pick<OpenedFrame, 'frame' | 'marked'>): void {
    if (opened.frame === 1 && !opened.marked) this.legacyUntil.set(node, this.nowMs() + this.holdMs);
    else this.legacyUntil.delete(node);
  }

  frameFor(node: string): 1 | 2 {
    const until = this.legacyUntil.get(node);
    return until !== undefined && until > this.nowMs() ? 1 : 2;
  }
}

/** Encodes `hb` at most once per frame for one send to every peer. */
function framesOf(hb: Heartbeat, key: Buffer, legacySender: boolean): (frame: 1 | 2) => Buffer {
  const made: Partial<Record<1 | 2, Buffer>> = {};
  return (frame) => (made[frame] ??= legacySender ? encodeHeartbeat(hb, key, { frame: 1, mark: false }) : encodeHeartbeat(hb, key, { frame }));
}

/** The methods a transport writes itself: how datagrams leave, closing, and batching where it batches. */
type TransportOwnMethods = Pick<Transport, 'send' | 'close' | 'drain' | 'setBatched'>;

export interface TransportStateOptions {
  /** Other keys accepted on receive (the next or the previous key of a rotation). */
  acceptKeys?: readonly Buffer[];
  /** Where dropped datagrams and foreign keys are warned about; none: they are only counted and reported. */
  log?: Logger;
  /** The frame chooser's clock (ms), for tests of the legacy hold. */
  nowMs?: () => number;
  /** Behave as a release before key ids (tests): send unmarked FLB1 frames, drop FLB2 ones. */
  legacy?: boolean;
}

/**
 * What every transport holds the same way: the signing key and the keys it accepts, the
 * receive and foreign-key handlers, the counters and the drop accounting, which frame each
 * peer gets, and the receive path over them. A transport keeps only its own: how datagrams
 * leave and arrive (sockets and batching; links and loss), and hands them to receive().
 */
class TransportState {
  /** The counters stats() copies; the transport adds what it sends and the CPU it meters. */
  readonly counters = newStats();
  readonly accounting: DropAccounting;
  readonly frames: FrameChooser;
  private signKey: Buffer;
  private keys: Buffer[];
  private handler: ((hb: Heartbeat, arrivalNs?: bigint) => void) | undefined;
  private foreignKeyHandler: ((node: string, keyId?: string) => void) | undefined;
  /** Per node, when its foreign key was last warned about. */
  private readonly foreignLoggedAt = new Map<string, number>();
  private readonly log: Logger | undefined;
  private readonly legacy: boolean;

  constructor(key: Buffer, opts: TransportStateOptions = {}) {
    this.log = opts.log;
    this.legacy = opts.legacy === true;
    this.accounting = new DropAccounting(this.counters, opts.log);
    this.frames = new FrameChooser(opts.nowMs);
    this.signKey = key;
    this.keys = keyRing(key, opts.acceptKeys);
  }

  // The Transport methods over this state (arrow functions: transport() hands them on unbound).
  readonly onReceive: Transport['onReceive'] = (h) => {
    this.handler = h;
  };

  readonly setKeys: Transport['setKeys'] = (key, accept) => {
    this.signKey = key;
    this.keys = keyRing(key, accept);
  };

  readonly onForeignKey: Transport['onForeignKey'] = (h) => {
    this.foreignKeyHandler = h;
  };

  readonly stats: Transport['stats'] = () => ({ ...this.counters });

  readonly drops: Transport['drops'] = () => this.accounting.counts();

  readonly dropReasons: Transport['dropReasons'] = () => this.accounting.reasons();

  /** The Transport: the transport's own methods and the ones over this state. */
  transport(own: TransportOwnMethods): Transport {
    const { onReceive, setKeys, onForeignKey, stats, drops, dropReasons } = this;
    return { ...own, onReceive, setKeys, onForeignKey, stats, drops, dropReasons };
  }

  /** `hb` in the frame a peer gets, signed with the current key (framesOf: one encoding per frame). */
  framesOf(hb: Heartbeat): (frame: 1 | 2) => Buffer {
    return framesOf(hb, this.signKey, this.legacy);
  }

  /**
   * One received datagram: dropped (and counted) unless it authenticates, decodes and names as
   * its sender the node the source address belongs to. `sourceNode` is the configured node of
   * the source address (undefined: not a node address; a memory network passes names).
   */
  receive(msg: Buffer, source: string, sourceNode: string | undefined, arrivalNs?: bigint): void {
    const { accounting } = this;
    // Cheap checks first: no HMAC, no copy for what cannot be a heartbeat.
    if (msg.length > MAX_MESSAGE_BYTES) return accounting.drop('oversize', source);
    if (!looksLikeHeartbeat(msg) || (this.legacy && frameOf(msg) === 2)) return accounting.drop('not_farmlb', source);
    let opened: OpenedFrame;
    try {
      opened = openFrame(msg, this.keys);
    } catch (err) {
      const code = (err as FarmlbError).code;
      if (code === 'FARMLB_E_MEMBERSHIP_BAD_MAC' || code === 'FARMLB_E_MEMBERSHIP_UNKNOWN_KEY') {
        accounting.drop('bad_mac', source);
        // Another key: an FLB2 frame naming a key id we lack, or an FLB1 frame no key verifies.
        // (An FLB2 frame naming one of our ids with a wrong MAC is forged or corrupt: no report.)
        const foreign = code === 'FARMLB_E_MEMBERSHIP_UNKNOWN_KEY' || frameOf(msg) === 1;
        const id = code === 'FARMLB_E_MEMBERSHIP_UNKNOWN_KEY' ? String((err as FarmlbError).details?.keyId ?? '') : undefined;
        if (foreign && sourceNode !== undefined) this.foreignKey(sourceNode, id || undefined);
      } else {
        accounting.drop('malformed', source);
      }
      return;
    }
    const hb = opened.hb;
    // keepalived's check_unicast_src: a heartbeat names the node its source address is of.
    if (sourceNode === undefined || hb.from !== sourceNode) return accounting.drop('wrong_source', source);
    this.frames.heard(sourceNode, opened);
    this.counters.received++;
    this.handler?.(hb, arrivalNs);
  }

  /** Reported to the handler; with a log, one warning per node every DROP_LOG_EVERY_MS: which key id it signs with, which we accept. */
  private foreignKey(node: string, id?: string): void {
    this.foreignKeyHandler?.(node, id);
    if (!this.log) return;
    const now = Date.now();
    const last = this.foreignLoggedAt.get(node);
    if (last !== undefined && now - last < DROP_LOG_EVERY_MS) return;
    this.foreignLoggedAt.set(node, now);
    const accepted = this.keys.map(keyId);
    this.log.warn({ event: 'heartbeat_foreign_key', peer: node, keyId: id ?? null, accepted },
      `heartbeats from ${node} are signed with ${id ? `key id ${id}` : 'a key (of a release without key ids)'} this node does not accept (it accepts ${accepted.join(', ')}): give every node the same key`);
  }
}

/** The keys to verify with, the signing key first. */
function keyRing(key: Buffer, accept: readonly Buffer[] | undefined): Buffer[] {
  return [key, ...(accept ?? []).filter((k) => !k.equals(key))];
}

/** The addon, or undefined where it is not built (then Node's sockets serve). */
function nativeOrNone(): Native | undefined {
  try {
    return loadNative();
  } catch {
    return undefined;
  }
}

export async function createUdpTransport(opts: UdpTransportOptions): Promise<Transport> {
  const derived = opts.lans && opts.self !== undefined ? addressesFromLans(opts.self, opts.lans) : undefined;
  const bindAddrs = opts.bindAddrs ?? derived?.bindAddrs ?? [];
  const peers = opts.peers ?? derived?.peers ?? [];
  if (bindAddrs.length === 0) {
    throw new FarmlbError('FARMLB_E_MEMBERSHIP_BIND', { addr: '(none)', port: opts.port, detail: 'this node has no address on any heartbeat LAN of cluster.xml' });
  }
  const state = new TransportState(opts.key, { acceptKeys: opts.acceptKeys, log: opts.log });
  const stats = state.counters;
  const peerByAddr = new Map<string, string>();
  for (const p of peers) for (const a of p.addrs) if (a) peerByAddr.set(a, p.node);
  /** `hb` to every peer on each of the first `lans` LANs, one datagram each (`sendOn`), metered as the send path. */
  const sendToPeers = (hb: Heartbeat, lans: number, sendOn: (lan: number, bytes: Buffer, to: string) => void): void => {
    metered((us) => { stats.sendCpuUs += us; }, () => {
      const frame = state.framesOf(hb);
      for (let lan = 0; lan < lans; lan++) {
        for (const peer of peers) {
          const to = peer.addrs[lan];
          if (to) sendOn(lan, frame(state.frames.frameFor(peer.node)), to);
        }
      }
    });
  };
  // A scoped IPv6 address (fe80::1%eth0) stays with Node's sockets, which know the scope.
  const scoped = [...bindAddrs, ...peerByAddr.keys()].some((a) => a.includes('%'));
  const native = opts.sockets === 'dgram' || scoped ? undefined : nativeOrNone();
  if (native) {
    const batchSockets = openBatchSockets(native, bindAddrs, opts.port);
    // One meter per batch, not per datagram: the meter's two getrusage calls were ~2 % of a
    // daemon's CPU when each datagram had its own (docs/benchmarks.md).
    const onBatch = (batch: BatchDatagram[]) => metered((us) => { stats.receiveCpuUs += us; }, () => {
      for (const d of batch) {
        if (d.truncated) state.accounting.drop('oversize', d.from);
        else state.receive(d.data, d.from, peerByAddr.get(d.from), d.atNs);
      }
    });
    let batched = true;
    const setBatched = (on: boolean) => {
      if (on === batched) return;
      batched = on;
      for (const s of batchSockets) if (on) s.unwatch(); else s.watch(onBatch);
    };
    setBatched(false);
    return state.transport({
      send(hb) {
        sendToPeers(hb, batchSockets.length, (lan, bytes, to) => {
          if (batchSockets[lan]!.send(bytes, to, opts.port) === 0) stats.sent++;
          else stats.sendErrors++;
        });
      },
      drain() {
        for (const s of batchSockets) {
          const batch = s.drain();
          if (batch.length > 0) onBatch(batch);
        }
      },
      setBatched,
      async close() {
        for (const s of batchSockets) s.close();
        batchSockets.length = 0;
      },
    });
  }
  const sockets: dgram.Socket[] = [];
  const onDatagram = (msg: Buffer, rinfo: dgram.RemoteInfo) => metered((us) => { stats.receiveCpuUs += us; }, () => {
    state.receive(msg, rinfo.address, peerByAddr.get(rinfo.address));
  });
  try {
    for (const addr of bindAddrs) {
      const socket = dgram.createSocket({ type: isIP(addr) === 6 ? 'udp6' : 'udp4', lookup: literalLookup as unknown as dgram.SocketOptions['lookup'] });
      sockets.push(socket);
      socket.on('message', onDatagram);
      socket.on('error', (err) => opts.log.error({ err, event: 'membership_socket_error', addr }, 'membership socket error'));
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(opts.port, addr, () => {
          socket.off('error', reject);
          resolve();
        });
      }).catch((err: Error) => {
        throw new FarmlbError('FARMLB_E_MEMBERSHIP_BIND', { addr, port: opts.port, detail: err.message }, { cause: err });
      });
    }
  } catch (err) {
    for (const s of sockets) s.close();
    throw err;
  }
  return state.transport({
    send(hb) {
      sendToPeers(hb, sockets.length, (lan, bytes, to) => {
        sockets[lan]!.send(bytes, opts.port, to, (err) => {
          if (err) stats.sendErrors++;
          else stats.sent++;
        });
      });
    },
    async close() {
      await Promise.all(sockets.map((s) => new Promise<void>((resolve) => {
        try { s.close(() => resolve()); } catch { resolve(); }
      })));
      sockets.length = 0;
    },
  });
}

/** One addon socket per own LAN address; none left open if one fails. */
function openBatchSockets(native: Native, bindAddrs: string[], port: number): UdpBatchSocket[] {
  const out: UdpBatchSocket[] = [];
  for (const addr of bindAddrs) {
    try {
      out.push(native.openUdpBatchSocket(addr, port, MAX_MESSAGE_BYTES));
    } catch (err) {
      for (const s of out) s.close();
      throw new FarmlbError('FARMLB_E_MEMBERSHIP_BIND', { addr, port, detail: (err as Error).message }, { cause: err });
    }
  }
  return out;
}

export interface MemoryLink {
  /** Probability a datagram is lost (0..1). */
  loss?: number;
  /** false = cut (this direction only). */
  up?: boolean;
}

/** A memory transport's state takes no log: its drops and foreign keys are counted and reported, never warned about. */
export type MemoryTransportOptions = Omit<TransportStateOptions, 'log'>;

export interface MemoryNetwork {
  /** A transport for `node`, signing with `key` (a wrong key is a test of its own). */
  transport(node: string, key: Buffer, opts?: MemoryTransportOptions): Transport;
  /** Sets the link from → to (one direction). */
  setLink(from: string, to: string, link: MemoryLink): void;
  /** Cuts (or restores) both directions between two sets of nodes. */
  partition(sideA: string[], sideB: string[], cut?: boolean): void;
  /**
   * Delivers raw bytes to `to` as if received from the network (forged/replayed datagrams),
   * from the address of node `as` (a replay with a spoofed source) or of no node.
   */
  inject(to: string, bytes: Buffer, as?: string): void;
  /** Every datagram sent, for replay tests. */
  readonly log: { from: string; to: string; bytes: Buffer }[];
}

/**
 * In-memory network: delivery on the next macrotask (setImmediate), loss from a seeded
 * generator so a test is repeatable.
 */
export function createMemoryNetwork(seed = 1): MemoryNetwork {
  let rnd = seed >>> 0 || 1;
  const random = () => {
    rnd ^= rnd << 13; rnd >>>= 0;
    rnd ^= rnd >>> 17;
    rnd ^= rnd << 5; rnd >>>= 0;
    return rnd / 0x1_0000_0000;
  };
  const receivers = new Map<string, (bytes: Buffer, from: string | undefined) => void>();
  const links = new Map<string, MemoryLink>();
  const log: { from: string; to: string; bytes: Buffer }[] = [];
  const linkOf = (from: string, to: string) => links.get(`${from}>${to}`) ?? {};
  return {
    log,
    transport(node, key, topts = {}) {
      const state = new TransportState(key, topts);
      let closed = false;
      receivers.set(node, (bytes, from) => {
        if (closed) return;
        state.receive(bytes, from ?? '(injected)', from);
      });
      return state.transport({
        send(hb) {
          if (closed) return;
          const frame = state.framesOf(hb);
          for (const to of receivers.keys()) {
            if (to === node) continue;
            const bytes = frame(state.frames.frameFor(to));
            const link = linkOf(node, to);
            log.push({ from: node, to, bytes });
            if (log.length > 10_000) log.splice(0, 5_000);
            state.counters.sent++;
            if (link.up === false || random() < (link.loss ?? 0)) continue;
            setImmediate(() => receivers.get(to)?.(bytes, node));
          }
        },
        async close() {
          closed = true;
          receivers.delete(node);
        },
      });
    },
    setLink(from, to, link) {
      links.set(`${from}>${to}`, { ...linkOf(from, to), ...link });
    },
    partition(sideA, sideB, cut = true) {
      for (const a of sideA) for (const b of sideB) {
        links.set(`${a}>${b}`, { ...linkOf(a, b), up: !cut });
        links.set(`${b}>${a}`, { ...linkOf(b, a), up: !cut });
      }
    },
    inject(to, bytes, as) {
      setImmediate(() => receivers.get(to)?.(bytes, as));
    },
  };
}
