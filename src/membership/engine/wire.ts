// The engine's side of the wire format (docs/membership.md, "Heartbeats"): the heartbeat
// this node sends, and the table a peer's heartbeat carries. (Bytes, MAC and replay window
// are codec.ts; row encoding is table.ts.)
//
// Invariants guarded here:
// - A heartbeat reports the installed table (epoch, leader, view, digest, rows) and the
//   acknowledgements that let peers renew: only of peers heard within mlost pulses, none of a
//   peer withheld after a switch of lineage (tables.ts holdAcksAtSwitch), and of candidates
//   (a new incarnation) nothing but the acknowledgement — heartbeat.
// - While a peer that reads only v1 is alive the farm speaks v1 — wireVersion.
// - Without a sample under the installed table, every bucket we are previous owner of counts
//   as held — ownHoldings.
// - A peer's rows are decoded against cluster.xml's node list; a malformed row is no table —
//   decodeTable.

import { decodeRows, emptyRows, encodeBitmap, encodeRows, hasAny, type Rows, sameWireRows, type TableRows } from '../table.js';
import type { AckEntry, HeardEntry, Heartbeat, HeartbeatHoldings } from '../types.js';
import { type EngineContext, MS } from './context.js';
import { type Lease, SENT_RING } from './lease.js';
import type { Peer, PeerTable } from './peers.js';

export class OwnHeartbeat {
  private seq = 0;
  private readonly noPrevRows = new Map<number, Rows>();
  private wireRowsCache: { groups: Rows; prev: Rows; wire: { table: string[]; prev?: string[] } } | undefined;

  constructor(private readonly ctx: EngineContext, private readonly peers: PeerTable, private readonly lease: Lease) {}

  /**
   * The table a heartbeat carries; undefined when a row is malformed (prev absent = no
   * handover). The same wire rows as the peer's previous heartbeat give the same rows object
   * (decoding is a pure function of the strings and cluster.xml's node list): tables, like
   * every row array here, are never modified once made.
   */
  decodeTable(hb: Heartbeat, peer: Peer): TableRows | undefined {
    if (peer.rows !== undefined && sameWireRows(peer.wireTable, hb.table) && sameWireRows(peer.wirePrev, hb.prev)) return peer.rows;
    peer.wireTable = undefined;
    peer.wirePrev = undefined;
    const groups = decodeRows(hb.table, this.ctx.opts.nodes);
    if (!groups || groups.length !== this.ctx.opts.groups.length) return undefined;
    const prev = hb.prev === undefined ? this.noPrev(groups.length) : decodeRows(hb.prev, this.ctx.opts.nodes);
    if (!prev || prev.length !== groups.length) return undefined;
    peer.wireTable = hb.table;
    peer.wirePrev = hb.prev;
    return { groups, prev };
  }

  /** Empty previous-owner rows for `groups` groups: one shared (never modified) instance per count. */
  private noPrev(groups: number): Rows {
    let rows = this.noPrevRows.get(groups);
    if (!rows) {
      rows = emptyRows(groups);
      this.noPrevRows.set(groups, rows);
    }
    return rows;
  }

  heartbeat(nowNs: bigint): Heartbeat {
    this.seq++;
    this.lease.sent.set(this.seq, nowNs);
    this.lease.sent.delete(this.seq - SENT_RING);
    const windowNs = BigInt(this.ctx.opts.timing.mlostCount) * this.ctx.pulseNs;
    const slostMs = this.ctx.opts.timing.pulseMs * this.ctx.opts.timing.slostCount;
    const acks: AckEntry[] = [];
    const heard: HeardEntry[] = [];
    for (const p of this.peers.values()) {
      if (!p.hb || p.lastRecvNs === undefined || nowNs - p.lastRecvNs >= windowNs) continue;
      if (p.ackWithheldUntilNs === undefined || nowNs >= p.ackWithheldUntilNs) acks.push({ node: p.name, incarnation: p.hb.incarnation, seq: p.hb.seq });
      heard.push({
        node: p.name,
        ageMs: Number((nowNs - p.lastRecvNs) / MS),
        state: p.hb.state,
        mutual: p.hb.heard.some((h) => h.node === this.ctx.self && h.ageMs < slostMs),
        epoch: p.hb.epoch,
        tableDigest: p.hb.tableDigest,
      });
    }
    // Candidates (a new incarnation not accepted yet) get an acknowledgement and nothing
    // else: with it they prove they are live (acknowledgesUs on their side of the exchange).
    for (const p of this.peers.values()) {
      const c = p.candidate;
      if (c && nowNs - c.recvNs < windowNs) acks.push({ node: p.name, incarnation: c.incarnation, seq: c.seq });
    }
    const holdings = this.ownHoldings();
    const v = this.wireVersion(nowNs, windowNs);
    return {
      v,
      ...(v === 1 ? { readsV2: true as const } : {}),
      module: this.ctx.module,
      from: this.ctx.self,
      incarnation: this.ctx.opts.incarnation,
      seq: this.seq,
      sentAtNs: nowNs,
      state: this.ctx.eligible ? 'UP' : 'WAIT',
      cause: this.ctx.eligible ? '' : this.ctx.cause,
      configDigest: this.ctx.opts.configDigest,
      ...(this.ctx.staged ? { stagedDigest: this.ctx.staged.digest } : {}),
      epoch: this.ctx.table.epoch,
      leader: this.ctx.table.leader,
      view: this.ctx.table.view,
      tableDigest: this.ctx.table.digest,
      ...this.wireRows(),
      ...(holdings ? { holdings } : {}),
      powers: this.ctx.overrides,
      acks,
      heard,
    };
  }

  /**
   * The heartbeat body version to send: v2, unless a peer that reads only v1 (not upgraded
   * yet) was heard within the last `mlost` pulses. It refuses v2 bodies, so while one is alive
   * the farm speaks v1 and stays one membership; every node reads both. Our v1 bodies say
   * readsV2, so that they do not hold the farm on v1 after the last v1-only node is gone.
   */
  private wireVersion(nowNs: bigint, windowNs: bigint): 1 | 2 {
    for (const p of this.peers.values()) if (p.v1RecvNs !== undefined && nowNs - p.v1RecvNs < windowNs) return 1;
    return 2;
  }

  /** The installed table's rows as heartbeats carry them, encoded once per table (not per pulse). */
  private wireRows(): { table: string[]; prev?: string[] } {
    const { groups, prev } = this.ctx.table;
    const c = this.wireRowsCache;
    if (c && c.groups === groups && c.prev === prev) return c.wire;
    const wire = { table: encodeRows(groups, this.ctx.opts.nodes), ...(hasAny(prev) ? { prev: encodeRows(prev, this.ctx.opts.nodes) } : {}) };
    this.wireRowsCache = { groups, prev, wire };
    return wire;
  }

  /**
   * What this node reports holding as previous owner; undefined when it is previous owner
   * of nothing. Without a sample under the installed table every such bucket counts as
   * held: a sample from an older table says nothing about buckets that moved since.
   */
  ownHoldings(): HeartbeatHoldings | undefined {
    const prev = this.ctx.table.prev;
    if (!prev.some((row) => row.includes(this.ctx.self))) return undefined;
    const s = this.ctx.holdingsSample;
    // Not a sample of an epoch another lineage also used (context.ts holdingsFloorEpoch).
    const current = s !== undefined && s.epoch === this.ctx.table.epoch && s.epoch > this.ctx.holdingsFloorEpoch;
    return {
      epoch: s?.epoch ?? 0,
      held: prev.map((row, g) => encodeBitmap((b) => row[b] === this.ctx.self && (!current || (s.counts[g]?.[b] ?? 0) > 0))),
      connections: prev.map((row, g) => (s?.counts[g] ?? []).reduce((sum, c, b) => sum + (row[b] === this.ctx.self || !current ? c : 0), 0)),
    };
  }
}
