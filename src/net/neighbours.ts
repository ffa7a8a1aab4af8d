// The MAC of every farm node on the LAN of the VIP interface, for vmac_directed forwarding
// (the program rewrites a not-owned frame's destination to the owner's MAC and sends it
// back out; tables.nodeMacs). A peer's MAC is learnt the way the kernel learns any
// neighbour: this node sends it a datagram (the kernel resolves it with ARP / ND), then
// reads the entry with `ip -j neigh`. This node's own MAC comes from `ip link` (/sys/class/net
// would show the namespace /sys was mounted in, not the one the daemon runs in).
//
// A peer the kernel cannot resolve (down, not on this LAN) stays unknown: the program
// drops what it would forward to it. The resolver retries unknown peers and re-checks the
// known ones periodically (a replaced NIC), and reports every change so the daemon can
// re-apply the tables.

import { createSocket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import type { Logger } from 'pino';
import { ip, listAddrs, sameSubnet, type IfAddr } from './ip.js';

/** The discard service: nothing listens there, the datagram only makes the kernel resolve the peer. */
const DISCARD_PORT = 9;

export interface PeerNode {
  id: number;
  name: string;
  /** The node's addresses from cluster.xml (every LAN); the one on the interface's subnet is used. */
  addrs: string[];
}

/** The privileged operations, behind an interface so the logic is testable without root. */
export interface NeighbourSystem {
  linkMac(ifname: string): Promise<string>;
  ifaceAddrs(ifname: string): Promise<IfAddr[]>;
  /** Makes the kernel resolve addr (sends it a datagram); never throws. */
  probe(addr: string): Promise<void>;
  /** The link-layer address the kernel holds for addr on ifname, or null (none, incomplete, failed). */
  neighbourMac(ifname: string, addr: string): Promise<string | null>;
}

export async function linkMac(ifname: string): Promise<string> {
  const [link] = JSON.parse(await ip(['-j', 'link', 'show', 'dev', ifname])) as { address?: string }[];
  if (!link?.address) throw new Error(`interface ${ifname} has no link-layer address`);
  return link.address.toLowerCase();
}

export async function neighbourMac(ifname: string, addr: string): Promise<string | null> {
  const entries = JSON.parse((await ip(['-j', 'neigh', 'show', 'to', addr, 'dev', ifname])) || '[]') as { dst: string; lladdr?: string; state?: string[] }[];
  const e = entries.find((x) => x.dst === addr);
  if (!e?.lladdr || e.state?.some((s) => s === 'FAILED' || s === 'INCOMPLETE')) return null;
  return e.lladdr.toLowerCase();
}

export function probe(addr: string): Promise<void> {
  return new Promise((resolve) => {
    const sock = createSocket(isIPv4(addr) ? 'udp4' : 'udp6');
    const done = () => { try { sock.close(); } catch { /* already closed */ } resolve(); };
    sock.on('error', done);
    sock.send(Buffer.alloc(0), DISCARD_PORT, addr, done);
  });
}

export const realNeighbourSystem: NeighbourSystem = {
  linkMac,
  ifaceAddrs: async (ifname) => (await listAddrs()).filter((a) => a.ifname === ifname),
  probe,
  neighbourMac,
};

export interface NodeMacResolverOptions {
  ifname: string;
  nodes: PeerNode[];
  selfId: number;
  /** Length of the nodeMacs array (node ids index it). */
  size: number;
  log: Logger;
  system?: NeighbourSystem;
  /** How long one resolution of one peer may take. Default 1500 ms. */
  resolveTimeoutMs?: number;
  /** Retry period while a peer is unknown. Default 5 s. */
  retryMs?: number;
  /** Re-check period once every peer is known. Default 60 s. */
  refreshMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class NodeMacResolver {
  private current: (string | null)[];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<boolean> | undefined;
  private stopped = false;
  private readonly sys: NeighbourSystem;
  private readonly unresolvedLogged = new Set<number>();

  constructor(private readonly opts: NodeMacResolverOptions) {
    this.current = new Array<string | null>(opts.size).fill(null);
    this.sys = opts.system ?? realNeighbourSystem;
  }

  /** MAC of each node id (null = unknown); a copy. */
  macs(): (string | null)[] {
    return [...this.current];
  }

  /**
   * Resolves every node once (peers concurrently, each bounded); returns whether anything
   * changed. Concurrent calls share one pass.
   */
  resolve(): Promise<boolean> {
    this.running ??= this.pass().finally(() => { this.running = undefined; });
    return this.running;
  }

  /** Periodic re-resolution; onChange gets the new MACs whenever one changed. */
  start(onChange: (macs: (string | null)[]) => void): void {
    const schedule = () => {
      if (this.stopped) return;
      const unknown = this.opts.nodes.some((n) => this.current[n.id] === null);
      this.timer = setTimeout(() => {
        this.resolve()
          .then((changed) => { if (changed && !this.stopped) onChange(this.macs()); })
          .catch((err) => this.opts.log.warn({ err, event: 'node_mac_resolve_failed' }, 'node MAC resolution failed'))
          .finally(schedule);
      }, unknown ? this.opts.retryMs ?? 5_000 : this.opts.refreshMs ?? 60_000);
    };
    schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private async pass(): Promise<boolean> {
    const { ifname, nodes, selfId, log } = this.opts;
    const own = await this.sys.ifaceAddrs(ifname);
    const next = [...this.current];
    await Promise.all(nodes.map(async (node) => {
      try {
        if (node.id === selfId) {
          next[node.id] = await this.sys.linkMac(ifname);
          return;
        }
        const addr = onLinkAddr(node.addrs, own);
        next[node.id] = addr === undefined ? null : await this.resolveOne(addr);
        if (next[node.id] === null && !this.unresolvedLogged.has(node.id)) {
          this.unresolvedLogged.add(node.id);
          log.warn({ event: 'node_mac_unknown', peer: node.name, iface: ifname, addr: addr ?? null },
            addr === undefined
              ? `no address of node ${node.name} in cluster.xml is on ${ifname}'s subnets: frames it owns cannot be forwarded to it`
              : `node ${node.name} (${addr}) does not answer on ${ifname}: frames it owns are dropped until it does; retrying`);
        }
      } catch (err) {
        log.warn({ err, event: 'node_mac_resolve_failed', peer: node.name, iface: ifname }, 'node MAC resolution failed');
      }
    }));
    let changed = false;
    for (const node of nodes) {
      const before = this.current[node.id] ?? null;
      const after = next[node.id] ?? null;
      if (before === after) continue;
      changed = true;
      if (after !== null) this.unresolvedLogged.delete(node.id);
      log.info({ event: 'node_mac', peer: node.name, iface: ifname, mac: after, previous: before }, `node ${node.name} is at ${after ?? 'an unknown MAC'} on ${ifname}`);
    }
    this.current = next;
    return changed;
  }

  /** The kernel's entry if it has one; otherwise one probe and a bounded wait for the answer. */
  private async resolveOne(addr: string): Promise<string | null> {
    const { ifname } = this.opts;
    const known = await this.sys.neighbourMac(ifname, addr);
    if (known) return known;
    await this.sys.probe(addr);
    const deadline = Date.now() + (this.opts.resolveTimeoutMs ?? 1_500);
    for (let i = 0; i < 100 && Date.now() < deadline; i++) {
      await sleep(Math.min(20 * 2 ** i, 200));
      const mac = await this.sys.neighbourMac(ifname, addr);
      if (mac) return mac;
    }
    return null;
  }
}

/** The first address of a node on one of the interface's subnets (the LAN it is reachable on directly). */
export function onLinkAddr(nodeAddrs: string[], own: IfAddr[]): string | undefined {
  return nodeAddrs.find((addr) => {
    const family = isIPv4(addr) ? 4 : 6;
    return own.some((a) => a.family === family && a.local !== addr && sameSubnet(a.local, addr, family, a.prefixlen));
  });
}
