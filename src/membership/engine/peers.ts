// Peers and liveness (docs/membership.md, "Evidence, views and the leader"): one record per
// peer of cluster.xml with the evidence heard of it, directly (its own authenticated
// heartbeats) or by relay (what its peers report, counted conservatively on our clock:
// arrival − reported age).
//
// Invariants guarded here:
// - A peer is alive only on fresh evidence: a heartbeat or a relay younger than slost pulses
//   (mlost for the leader) — timeoutNs, evidence.
// - Relayed evidence never claims more than was reported: its time is arrival − age, and a
//   relay makes a peer "connected" (able to receive acknowledgements) only when the reporter
//   said the contact was mutual — noteIndirect, connected.
// - Mutual contact is what makes a peer a member: connected.
// - A frame that fails the MAC changes nothing but a report (docs/security.md) — noteForeignKey.
// (The record's fields are written by MembershipEngine.receive and read by every part.)

import { bitmapHas, type TableRows } from '../table.js';
import type { HeardEntry, Heartbeat, NodeState } from '../types.js';
import { type EngineContext, maxBig, MS } from './context.js';

export interface Peer {
  name: string;
  hb?: Heartbeat;
  /** The table of `hb` (owners and previous owners); undefined when it did not decode. */
  rows?: TableRows;
  /**
   * The wire rows `rows` was decoded from: a peer sends the same table every pulse, so an
   * identical `table`/`prev` reuses `rows` instead of decoding it again (decodeTable).
   */
  wireTable?: readonly string[];
  wirePrev?: readonly string[];
  /** Heartbeats accepted (all incarnations) and seq gaps within an incarnation. */
  received: number;
  missed: number;
  lastSeq?: number;
  lastRecvNs?: bigint;
  /** Latest evidence reported by others (our clock, conservative: arrival − reported age). */
  indirectNs?: bigint;
  indirectState?: NodeState;
  /** The table digest and epoch that report says the peer had installed. */
  indirectDigest?: string;
  indirectEpoch?: number;
  /** Latest report (direct or relayed) that this peer hears someone: it can receive acks. */
  connectedNs?: bigint;
  /** Last time this peer could have been renewing a lease from acknowledgements. */
  servingNs?: bigint;
  /** Best lease deadline this peer's acknowledgements give us (our clock). */
  ackDeadlineNs?: bigint;
  /**
   * Our acknowledgements of this peer are left out of our heartbeats until then: we switched
   * lineages and it gains, in the new leader's table, a bucket a peer we acknowledged on the
   * old one may still serve on them (InstalledTables.holdAcksAtSwitch).
   */
  ackWithheldUntilNs?: bigint;
  alive: boolean;
  everHeard: boolean;
  /** Last time a v1 heartbeat of this peer was accepted (wireVersion()). */
  v1RecvNs?: bigint;
  /**
   * The latest heartbeat of an incarnation not (yet) accepted: acknowledged in ours so that
   * the peer can prove it is live (acceptsIncarnation), never used as evidence.
   */
  candidate?: { incarnation: bigint; seq: number; recvNs: bigint };
}

/** The peers of cluster.xml (all but this node), in cluster.xml order. */
export class PeerTable {
  private readonly peers = new Map<string, Peer>();
  /** Per peer, the last well-formed frame of its address that failed the MAC (noteForeignKey). */
  readonly foreignKeyNs = new Map<string, bigint>();
  /** Per peer, the key id its last foreign frame named (FLB2 frames only). */
  readonly foreignKeyIds = new Map<string, string>();
  readonly heardSinceStart = new Set<string>();
  /** Detection time of each peer lost, until a table leaves it out (the view event's detectionMs). */
  readonly lostAt = new Map<string, number>();

  constructor(private readonly ctx: EngineContext) {
    for (const n of ctx.opts.nodes) if (n !== ctx.self) this.peers.set(n, { name: n, alive: false, everHeard: false, received: 0, missed: 0 });
  }

  get(name: string): Peer | undefined {
    return this.peers.get(name);
  }

  has(name: string): boolean {
    return this.peers.has(name);
  }

  values(): IterableIterator<Peer> {
    return this.peers.values();
  }

  get size(): number {
    return this.peers.size;
  }

  /**
   * Does `node`'s latest heartbeat show it previous owner of b (group g) with no connection
   * held there, sampled under the table it reports, of epoch `sinceEpoch` or later?
   */
  reportsDrained(node: string, g: number, b: number, sinceEpoch = 0): boolean {
    const p = this.peers.get(node);
    const hb = p?.hb;
    const h = hb?.holdings;
    if (!hb || !h || !p.rows || h.epoch !== hb.epoch || hb.epoch < sinceEpoch) return false;
    return p.rows.prev[g]?.[b] === node && !bitmapHas(h.held[g], b);
  }

  /**
   * A well-formed frame from a configured address of `node` that failed the MAC: that node
   * probably uses another key. Reported only (status, docs/security.md): it changes no
   * eligibility, state or lease — a datagram without the key is no evidence anyone can act
   * on, and one that made a node leave the farm would be an outage anyone on the LAN causes.
   */
  noteForeignKey(node: string, nowNs: bigint, keyId?: string): void {
    if (!this.peers.has(node)) return;
    this.foreignKeyNs.set(node, nowNs);
    if (keyId !== undefined) this.foreignKeyIds.set(node, keyId); else this.foreignKeyIds.delete(node);
  }

  timeoutNs(node: string): bigint {
    const count = node === this.ctx.leader ? this.ctx.opts.timing.mlostCount : this.ctx.opts.timing.slostCount;
    return BigInt(count) * this.ctx.pulseNs;
  }

  evidence(p: Peer): bigint | undefined {
    return maxBig(p.lastRecvNs, p.indirectNs);
  }

  noteIndirect(h: HeardEntry, nowNs: bigint): void {
    if (h.node === this.ctx.self) return;
    const p = this.peers.get(h.node);
    if (!p) return;
    const at = nowNs - BigInt(h.ageMs) * MS;
    if (p.indirectNs === undefined || at > p.indirectNs) {
      p.indirectNs = at;
      p.indirectState = h.state;
      p.indirectDigest = h.tableDigest;
      p.indirectEpoch = h.epoch;
    }
    if (h.mutual) {
      p.connectedNs = maxBig(p.connectedNs, at);
      if (h.state === 'UP') p.servingNs = maxBig(p.servingNs, at);
    }
    p.everHeard = true;
    this.heardSinceStart.add(h.node);
  }

  /** The state a peer advertised most recently, directly or as reported by others. */
  peerState(p: Peer): NodeState | undefined {
    if (p.lastRecvNs !== undefined && (p.indirectNs === undefined || p.lastRecvNs >= p.indirectNs)) return p.hb?.state;
    return p.indirectState ?? p.hb?.state;
  }

  /** Mutual contact: a recent heartbeat (direct or relayed) says the peer hears us. */
  connected(p: Peer, nowNs: bigint, slostNs: bigint): boolean {
    return p.connectedNs !== undefined && nowNs - p.connectedNs < slostNs;
  }
}
