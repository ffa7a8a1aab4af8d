// arpreroute for vmac_directed (<interface arpreroute="on" arpinterval= arpelapse=>): when
// buckets of an arp rule's group move to this node, tell exactly the clients whose ARP /
// ND resolution of the VIP those buckets decide that the VIP is now at this node's MAC.
//
// SafeKit (seed 001 §13.6.7.3) broadcasts gratuitous ARPs for this. In a farm that spreads
// clients over the nodes by their ARP answers, a broadcast GARP repoints *every* client
// that has an entry to the sender, undoing the spreading (LAB-NOTES). Here every node's
// program records each ARP request / NS for a VIP it sees (they are broadcast or
// multicast, so every node sees them): the requester's address, MAC and bucket
// (farmlb_requesters). The new owner of a bucket sends a unicast ARP reply (IPv4) or an
// unsolicited neighbour advertisement with Override (IPv6) to the requesters of that
// bucket only, every arpinterval for arpelapse — repeated because a Linux client ignores a
// reply that comes within `locktime` (1 s) of its last update, and so that clients that
// ask during the campaign are caught too. See docs/net.md ("arpreroute").

import type { Logger } from 'pino';
import { GROUP_NONE, NBUCKETS, type DataplaneTables } from '../balance/tables.js';
import type { Requester } from '../dataplane/types.js';
import type { RawSocket } from '../addon/native.js';
import { buildArpReply, buildUnsolicitedNa } from './announce.js';

// One ARP requester / NS sender a node's program saw (XdpDataplane.requesters()).
export type { Requester } from '../dataplane/types.js';

export interface RerouteVip {
  id: number;
  addr: string;
  family: 4 | 6;
  /** Group of the arp rule covering the VIP; GROUP_NONE = every node answers, nothing to reroute. */
  arpGroup: number;
}

/** A vmac_directed interface with arpreroute on. */
export interface RerouteInterface {
  ifname: string;
  /** The MAC announced for the VIP and used as the frames' source: this interface's own. */
  mac: string;
  intervalMs: number;
  elapseMs: number;
  vips: RerouteVip[];
}

export interface ArpRerouteStats {
  /** Rounds run (over all campaigns and interfaces). */
  rounds: number;
  /** ARP replies and neighbour advertisements sent. */
  framesSent: number;
  sendErrors: number;
}

export interface ArpRerouteOptions {
  requesters: () => Promise<Requester[]>;
  openSocket: (ifname: string) => RawSocket;
  log: Logger;
}

interface Campaign {
  iface: RerouteInterface;
  /** group → buckets this node took and announces. */
  moved: Map<number, Set<number>>;
  startedMs: number;
  round: number;
  timer: NodeJS.Timeout | undefined;
  sock: RawSocket | undefined;
  running: boolean;
}

/** The buckets of each group that `next` gives to its own node and `prev` did not (all of them without prev). */
export function bucketsTaken(prev: DataplaneTables | undefined, next: DataplaneTables, groups: Iterable<number>): Map<number, Set<number>> {
  const out = new Map<number, Set<number>>();
  const self = next.selfNode;
  for (const g of groups) {
    const row = next.buckets[g];
    if (!row) continue;
    const before = prev && prev.selfNode === self ? prev.buckets[g] : undefined;
    const taken = new Set<number>();
    for (let b = 0; b < NBUCKETS; b++) if (row[b] === self && before?.[b] !== self) taken.add(b);
    if (taken.size > 0) out.set(g, taken);
  }
  return out;
}

/** The frames one round sends for these requesters: one per requester and VIP of its family in its arp group. */
export function rerouteFrames(iface: RerouteInterface, moved: Map<number, Set<number>>, owners: number[][], self: number, requesters: Requester[]): { requester: Requester; vip: RerouteVip; frame: Uint8Array }[] {
  const out: { requester: Requester; vip: RerouteVip; frame: Uint8Array }[] = [];
  // Only requesters this interface saw: the recorded VIP is one of its VIPs.
  const ids = new Set(iface.vips.map((v) => v.id));
  for (const r of requesters) {
    if (!ids.has(r.vipId)) continue;
    if (!moved.get(r.group)?.has(r.bucket)) continue;
    // The table may have moved the bucket on again since the campaign started.
    if (owners[r.group]?.[r.bucket] !== self) continue;
    for (const vip of iface.vips) {
      if (vip.family !== r.family || vip.arpGroup !== r.group) continue;
      const spec = { vip: vip.addr, announcedMac: iface.mac, linkMac: iface.mac, clientIp: r.addr, clientMac: r.mac };
      out.push({ requester: r, vip, frame: r.family === 4 ? buildArpReply(spec) : buildUnsolicitedNa(spec) });
    }
  }
  return out;
}

export class ArpReroute {
  private interfaces: RerouteInterface[] = [];
  private readonly campaigns = new Map<string, Campaign>();
  private tables: DataplaneTables | undefined;
  private stopped = false;
  private readonly counters: ArpRerouteStats = { rounds: 0, framesSent: 0, sendErrors: 0 };

  constructor(private readonly opts: ArpRerouteOptions) {}

  /** The interfaces (vmac_directed, arpreroute on) and their settings; applies to the next campaign. */
  configure(interfaces: RerouteInterface[]): void {
    this.interfaces = interfaces.map((i) => ({ ...i, vips: i.vips.filter((v) => v.arpGroup !== GROUP_NONE) })).filter((i) => i.vips.length > 0);
  }

  /**
   * The table changed from `prev` to `next` (prev undefined: this node just started or
   * rejoined and takes all its buckets). Starts — or restarts, keeping the buckets still
   * owned — a campaign on every interface whose arp groups gave this node buckets.
   * The membership layer calls this on every table change.
   */
  tablesChanged(prev: DataplaneTables | undefined, next: DataplaneTables): void {
    if (this.stopped) return;
    this.tables = next;
    for (const iface of this.interfaces) {
      const taken = bucketsTaken(prev, next, new Set(iface.vips.map((v) => v.arpGroup)));
      const old = this.campaigns.get(iface.ifname);
      if (old) {
        // Buckets of the running campaign this node still owns keep being announced.
        for (const [g, set] of old.moved) {
          for (const b of set) if (next.buckets[g]?.[b] === next.selfNode) (taken.get(g) ?? taken.set(g, new Set()).get(g)!).add(b);
        }
        this.end(old, 'superseded by a table change');
      }
      if (taken.size === 0) continue;
      const campaign: Campaign = { iface, moved: taken, startedMs: Date.now(), round: 0, timer: undefined, sock: undefined, running: false };
      this.campaigns.set(iface.ifname, campaign);
      this.opts.log.info({ event: 'arpreroute_start', iface: iface.ifname, buckets: [...taken.values()].reduce((n, s) => n + s.size, 0),
        intervalMs: iface.intervalMs, elapseMs: iface.elapseMs }, 'arpreroute: announcing the buckets this node took');
      this.schedule(campaign, 0);
    }
  }

  stats(): ArpRerouteStats {
    return { ...this.counters };
  }

  /** Campaigns running, by interface (for logs and tests). */
  active(): string[] {
    return [...this.campaigns.keys()];
  }

  stop(): void {
    this.stopped = true;
    for (const c of this.campaigns.values()) this.end(c, 'stopped');
  }

  private schedule(c: Campaign, delayMs: number): void {
    c.timer = setTimeout(() => {
      c.timer = undefined;
      this.round(c)
        .catch((err) => this.opts.log.warn({ err, event: 'arpreroute_failed', iface: c.iface.ifname }, 'arpreroute round failed'))
        .finally(() => {
          if (this.campaigns.get(c.iface.ifname) !== c) return;
          const next = nextRoundAt(c);
          if (c.iface.intervalMs <= 0 || next - c.startedMs > c.iface.elapseMs) {
            this.end(c, 'arpelapse over');
            return;
          }
          this.schedule(c, Math.max(0, next - Date.now()));
        });
    }, delayMs);
  }

  private async round(c: Campaign): Promise<void> {
    c.running = true;
    try {
      const tables = this.tables;
      if (!tables) return;
      const requesters = await this.opts.requesters();
      if (this.campaigns.get(c.iface.ifname) !== c) return;
      const frames = rerouteFrames(c.iface, c.moved, tables.buckets, tables.selfNode, requesters);
      let sent = 0;
      let firstError: unknown;
      if (frames.length > 0) {
        c.sock ??= this.opts.openSocket(c.iface.ifname);
        for (const f of frames) {
          try {
            c.sock.send(Buffer.from(f.frame));
            sent++;
          } catch (err) {
            firstError ??= err;
            this.counters.sendErrors++;
          }
        }
      }
      c.round++;
      this.counters.rounds++;
      this.counters.framesSent += sent;
      this.opts.log.info({ event: 'arpreroute', iface: c.iface.ifname, round: c.round, count: sent,
        clients: new Set(frames.map((f) => f.requester.addr)).size, ...(firstError ? { err: firstError } : {}) },
      `arpreroute: round ${c.round}, ${sent} frame(s) sent`);
    } finally {
      c.running = false;
    }
  }

  /** Every campaign that was started ends here, and says so: an operator (or a test)
   * reading the log sees each `arpreroute_start` closed by an `arpreroute_done`. */
  private end(c: Campaign, why: string): void {
    this.opts.log.info({ event: 'arpreroute_done', iface: c.iface.ifname, rounds: c.round, why }, `arpreroute: campaign over (${why})`);
    if (c.timer) clearTimeout(c.timer);
    c.timer = undefined;
    try { c.sock?.close(); } catch { /* close is idempotent; a failure leaves nothing to undo */ }
    c.sock = undefined;
    if (this.campaigns.get(c.iface.ifname) === c) this.campaigns.delete(c.iface.ifname);
  }
}

/**
 * Linux ignores an ARP reply that comes within `locktime` (1 s by default) of the entry's
 * last update, so a client that resolved the VIP just before the buckets moved ignores the
 * first round. A second round follows just after the locktime; then every `arpinterval`.
 */
const LOCKTIME_RETRY_MS = 1_100;

function nextRoundAt(c: { startedMs: number; round: number; iface: { intervalMs: number } }): number {
  const { intervalMs } = c.iface;
  if (intervalMs <= LOCKTIME_RETRY_MS) return c.startedMs + c.round * intervalMs;
  if (c.round === 1) return c.startedMs + LOCKTIME_RETRY_MS;
  return c.startedMs + (c.round - 1) * intervalMs;
}
