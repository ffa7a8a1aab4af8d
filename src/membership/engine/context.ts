// What every part of the membership engine reads (docs/membership.md): its configuration
// and timing, the installed table, the leader, the node's own eligibility and state, the
// power overrides, the lease deadline. One object, made by MembershipEngine and passed to
// each part (engine/*.ts), which owns the rest of its state itself.
//
// Invariants: none of its own — it holds the facts the parts' invariants speak of. The
// configuration digest a peer counts with (digestOf) is decided here because every part
// compares digests the same way.

import { emptyRows, NO_OVERRIDES, tableDigest } from '../table.js';
import type { Heartbeat, HoldingsSample, MembershipEngineOptions, NodeState, PowerOverrides, ViewTable } from '../types.js';

export const MS = 1_000_000n;

export function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export const maxBig = (a: bigint | undefined, b: bigint | undefined): bigint | undefined =>
  a === undefined ? b : b === undefined ? a : a > b ? a : b;

/** The WAIT cause of a node in its discovery grace; peers read it (smallerPeerDiscovering). */
export const DISCOVERING = 'discovering peers';

export class EngineContext {
  opts: MembershipEngineOptions;
  /** A configuration loaded by a reload, switched to once every node has it (stageConfig). */
  staged: { digest: string; groups: MembershipEngineOptions['groups'] } | undefined;
  readonly self: string;
  readonly module: string;
  readonly pulseNs: bigint;
  readonly leaseNs: bigint;
  /** The installed table (install(), setAsideOwnTable()). */
  table: ViewTable;
  maxEpochSeen = 0;
  overrides: PowerOverrides;
  /** The lease deadline this node last wrote (renew(), revoke()). */
  leaseNsValue = 0n;
  eligible = false;
  cause = 'starting';
  state: NodeState = 'WAIT';
  leader: string | null = null;
  referenceDigest: string;
  /** The daemon's latest count of the connections held as previous owner (setHoldings). */
  holdingsSample: HoldingsSample | undefined;
  /**
   * Samples tagged with an epoch up to this one say nothing: since a change of leader the
   * data plane may be on either of two tables of that epoch number, one per lineage
   * (tables.ts install(): a sample under our own earlier table, where we were owner, read
   * as "nothing held" under the new leader's table of the same epoch, which names us
   * previous owner, ended a handover while we still held connections and served them).
   */
  holdingsFloorEpoch = 0;

  constructor(opts: MembershipEngineOptions) {
    this.opts = opts;
    this.self = opts.self;
    this.module = opts.module ?? 'farm';
    this.pulseNs = BigInt(Math.round(opts.timing.pulseMs * 1e6));
    this.leaseNs = BigInt(Math.round(opts.timing.leaseMs * 1e6));
    const rows = opts.initialTable && opts.initialTable.length === opts.groups.length ? opts.initialTable.map((r) => [...r]) : emptyRows(opts.groups.length);
    // An adopted table is what the kernel may still serve; it is reported (so a leader waits
    // for it to be released) but it is no view's table: epoch 0, no leader. (Its previous
    // owners are not adopted: the lease starts revoked, so the kernel serves none of them.)
    const prev = emptyRows(opts.groups.length);
    this.table = { epoch: 0, leader: null, view: [], groups: rows, prev, digest: tableDigest(rows, prev) };
    this.overrides = opts.powerOverrides ?? NO_OVERRIDES;
    this.referenceDigest = opts.configDigest;
  }

  /** The configuration digest a peer's heartbeat counts with: ours when its active or staged one meets our active or staged one. */
  digestOf(hb: Heartbeat): string {
    const mine = this.opts.configDigest;
    if (hb.configDigest === mine) return mine;
    const staged = this.staged?.digest;
    if (staged !== undefined && (hb.configDigest === staged || hb.stagedDigest === staged)) return mine;
    if (hb.stagedDigest === mine) return mine;
    return hb.configDigest;
  }
}
