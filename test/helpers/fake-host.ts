// A node without a kernel, for unit tests of NodeHost, FarmDaemon and the table sources: the
// HostPort (src/daemon/host-port.ts) on ModelDataplane and an in-memory network. Every
// operation is appended to `ops` in the order it happened, so a test reads the start/stop
// order from one list. The "pinned maps" outlive the data plane object as bpffs pins
// outlive a process: a host opened after a crash (no stop) on the same pin directory adopts
// the tables and lease the crashed one left, as XdpDataplane.open({ reusePins }) does. The
// counters /metrics reads come from those maps; the socket table is `sockets`.

import type { RawSocket, XdpMode } from '../../src/addon/native.js';
import type { VmacMode } from '../../src/config/types.js';
import { HELD_STATES, type SocketScan } from '../../src/daemon/holdings.js';
import type { CounterReader, HostDataplane, HostPort } from '../../src/daemon/host-port.js';
import { ModelDataplane } from '../../src/dataplane/model.js';
import type { BucketRows, DataplaneTables, Requester } from '../../src/dataplane/types.js';
import type { AttachResult } from '../../src/dataplane/xdp.js';
import { FarmlbError } from '../../src/errors.js';
import type { IfAddr } from '../../src/net/ip.js';
import type { NeighbourSystem } from '../../src/net/neighbours.js';
import type { NetSystem } from '../../src/net/setup.js';
import type { TcpSocket } from '../../src/net/tcp-sockets.js';
import type { RequestedXdpMode, XdpModeDecision } from '../../src/net/xdp-mode.js';

export interface FakeLink {
  ifname: string;
  mac: string;
  addrs: { family: 4 | 6; local: string; prefixlen: number }[];
}

/** One data plane object over the pinned maps of its pin directory (a ModelDataplane). */
class FakeDataplane implements HostDataplane {
  constructor(private readonly kernel: FakeKernel, readonly maps: ModelDataplane, private readonly progId: number) {}

  async apply(tables: DataplaneTables): Promise<void> {
    this.kernel.ops.push('apply');
    await this.maps.apply(tables);
  }

  async applyBuckets(buckets: BucketRows, prevOwners?: BucketRows): Promise<void> {
    this.kernel.ops.push('applyBuckets');
    // A loaded host's slow install (the lease is written meanwhile: setLease does not wait).
    this.kernel.installing++;
    this.kernel.installingBuckets = buckets;
    try {
      if (this.kernel.installDelayMs > 0) await new Promise((r) => setTimeout(r, this.kernel.installDelayMs));
      await this.maps.applyBuckets(buckets, prevOwners);
    } finally {
      this.kernel.installing--;
    }
  }

  async setLease(deadlineNs: bigint): Promise<void> {
    this.kernel.ops.push(deadlineNs === 0n ? 'lease revoked' : 'lease set');
    if (this.kernel.installing > 0) this.kernel.leaseWritesDuringInstall++;
    if (this.kernel.installing > 0 && deadlineNs === 0n) this.kernel.revocationsDuringInstall++;
    await this.maps.setLease(deadlineNs);
  }

  tables(): DataplaneTables | undefined {
    return this.maps.tables();
  }

  reasonCounters() {
    return this.maps.reasonCounters();
  }

  bucketCounters() {
    return this.maps.bucketCounters();
  }

  requesters(): Promise<Requester[]> {
    return this.maps.requesters();
  }

  programId(): number {
    return this.progId;
  }

  async attach(ifname: string, mode: XdpMode | 'auto'): Promise<AttachResult> {
    this.kernel.ifindex(ifname);
    this.kernel.ops.push(`xdp attach ${ifname}`);
    this.kernel.xdp.set(ifname, this.progId);
    return { mode: mode === 'auto' ? 'native' : mode };
  }

  async attachEgress(ifname: string): Promise<void> {
    this.kernel.ops.push(`egress attach ${ifname}`);
    this.kernel.egress.add(ifname);
  }

  async detachEgress(ifname: string): Promise<void> {
    this.kernel.ops.push(`egress detach ${ifname}`);
    this.kernel.egress.delete(ifname);
  }

  /** The process's handle goes; the pinned maps stay (bpffs). */
  async close(): Promise<void> {
    this.kernel.ops.push('close');
  }
}

export class FakeKernel implements HostPort {
  /** Every operation, in order ("alias add eth0 192.168.1.222/24", "xdp attach eth0", …). */
  readonly ops: string[] = [];
  /** Pinned maps by pin directory: what outlives a process. */
  readonly pins = new Map<string, ModelDataplane>();
  /** ifname → the program id attached. */
  readonly xdp = new Map<string, number>();
  readonly egress = new Set<string>();
  /** "ifname addr/prefixlen" of the aliases present. */
  readonly aliases = new Set<string>();
  readonly sysctls = new Map<string, string>();
  readonly promisc = new Set<string>();
  /** The `ss` argument lists tcpreset ran. */
  readonly ssCalls: string[][] = [];
  /** The data plane last opened. */
  dataplane: FakeDataplane | undefined;
  /** The node's TCP sockets (what sock_diag lists to the holdings sampler). */
  readonly sockets: TcpSocket[] = [];
  /** Reads of the socket table (socketScan). */
  socketScans = 0;
  /** How long applyBuckets (a membership table change) takes before it applies: a loaded host. */
  installDelayMs = 0;
  /** applyBuckets under way, and the lease writes made meanwhile. */
  installing = 0;
  /** The owner rows of the applyBuckets under way (the last one started). */
  installingBuckets: BucketRows | undefined;
  leaseWritesDuringInstall = 0;
  revocationsDuringInstall = 0;
  private nextProgId = 100;
  readonly neighbours: NeighbourSystem;

  constructor(readonly links: FakeLink[], private readonly peerMacs: Record<string, string> = {}) {
    this.neighbours = {
      linkMac: async (ifname) => this.link(ifname).mac,
      ifaceAddrs: async (ifname) => this.addrsOf(ifname),
      probe: async () => undefined,
      neighbourMac: async (_ifname, addr) => peerMacs[addr] ?? null,
    };
  }

  /** The maps of a pin directory (the lease and tables a running or crashed host left). */
  model(pinDir: string): ModelDataplane | undefined {
    return this.pins.get(pinDir);
  }

  /**
   * The node as a kill -9 leaves it: a new kernel holding what this one holds now (pinned
   * tables and lease, attached programs, aliases, sysctls, promiscuous mode). The process
   * that ran on this one can then be stopped without touching the copy.
   */
  async afterKill(): Promise<FakeKernel> {
    const k = new FakeKernel(this.links, this.peerMacs);
    for (const [dir, maps] of this.pins) {
      const copy = new ModelDataplane();
      const t = maps.tables();
      if (t) await copy.apply(structuredClone(t));
      await copy.setLease(maps.leaseDeadline());
      k.pins.set(dir, copy);
    }
    for (const [i, p] of this.xdp) k.xdp.set(i, p);
    for (const e of this.egress) k.egress.add(e);
    for (const a of this.aliases) k.aliases.add(a);
    for (const [key, v] of this.sysctls) k.sysctls.set(key, v);
    for (const i of this.promisc) k.promisc.add(i);
    k.nextProgId = this.nextProgId;
    return k;
  }

  /** MembershipSourceOptions.readPinnedTables: what the maps of pinDir hold (throws when nothing is pinned, as the real one does). */
  readonly readPinnedTables = (pinDir: string): DataplaneTables => {
    const t = this.pins.get(pinDir)?.tables();
    this.ops.push(t ? 'read pinned tables' : 'read pinned tables: none');
    if (!t) throw new Error(`no maps pinned in ${pinDir}`);
    return t;
  };

  // ---- HostPort ----------------------------------------------------------------------

  async openDataplane({ pinDir }: { pinDir: string }): Promise<HostDataplane> {
    let maps = this.pins.get(pinDir);
    if (!maps) this.pins.set(pinDir, (maps = new ModelDataplane()));
    this.ops.push('dataplane open');
    this.dataplane = new FakeDataplane(this, maps, this.nextProgId++);
    return this.dataplane;
  }

  unpinDir(pinDir: string): void {
    this.ops.push('unpin');
    this.pins.delete(pinDir);
  }

  ifindex(ifname: string): number {
    const i = this.links.findIndex((l) => l.ifname === ifname);
    if (i < 0) throw new FarmlbError('FARMLB_E_XDP_NO_IFACE', { detail: ifname });
    return i + 2;
  }

  async xdpDetach(ifindex: number, opts: { expectedProgId: number }): Promise<boolean> {
    const ifname = this.links[ifindex - 2]!.ifname;
    if (this.xdp.get(ifname) !== opts.expectedProgId) return false;
    this.ops.push(`xdp detach ${ifname}`);
    this.xdp.delete(ifname);
    return true;
  }

  readonly net: NetSystem = {
    readSysctl: async (key) => this.sysctls.get(key) ?? '0',
    writeSysctl: async (key, value) => {
      this.ops.push(`sysctl ${key}=${value}`);
      this.sysctls.set(key, value);
    },
    isPromisc: async (ifname) => this.promisc.has(ifname),
    setPromisc: async (ifname, on) => {
      this.ops.push(`promisc ${ifname} ${on ? 'on' : 'off'}`);
      if (on) this.promisc.add(ifname);
      else this.promisc.delete(ifname);
    },
    addAlias: async (ifname, addr, prefixlen) => {
      this.ops.push(`alias add ${ifname} ${addr}/${prefixlen}`);
      this.aliases.add(`${ifname} ${addr}/${prefixlen}`);
    },
    removeAlias: async (ifname, addr, prefixlen) => {
      this.ops.push(`alias del ${ifname} ${addr}/${prefixlen}`);
      this.aliases.delete(`${ifname} ${addr}/${prefixlen}`);
    },
  };

  async listAddrs(): Promise<IfAddr[]> {
    return this.links.flatMap((l) => this.addrsOf(l.ifname));
  }

  async linkMac(ifname: string): Promise<string> {
    return this.link(ifname).mac;
  }

  async chooseXdpMode(_ifname: string, _vmacMode: VmacMode, requested: RequestedXdpMode): Promise<XdpModeDecision> {
    return { mode: requested === 'auto' ? 'native' : requested, reason: 'fake kernel' };
  }

  openRawSocket(ifname: string): RawSocket {
    const ifindex = this.ifindex(ifname);
    return { ifname, ifindex, send: () => undefined, close: () => undefined };
  }

  readonly ss = async (args: string[]): Promise<string> => {
    this.ops.push(`ss ${args.join(' ')}`);
    this.ssCalls.push(args);
    return '';
  };

  readCounters(pinDir: string): CounterReader {
    const maps = this.pins.get(pinDir);
    this.ops.push(maps ? 'counters open' : 'counters open: none');
    if (!maps) throw new Error(`no maps pinned in ${pinDir}`);
    return {
      counters: async (groups) => ({ reasons: await maps.reasonCounters(), buckets: (await maps.bucketCounters()).slice(0, groups), requestersRefused: 0n }),
      close: () => { this.ops.push('counters close'); },
    };
  }

  /** The sockets of a held state whose local address is one of `vips`, as the sock_diag filter passes them. */
  socketScan(): SocketScan {
    return async (visit, vips) => {
      this.socketScans++;
      for (const s of this.sockets) {
        if (HELD_STATES.has(s.state) && vips.some((v) => v.family === s.family && Buffer.from(v.addr).equals(Buffer.from(s.localAddr)))) visit(s);
      }
      return { lines: this.sockets.length, truncated: false };
    };
  }

  private link(ifname: string): FakeLink {
    const l = this.links.find((x) => x.ifname === ifname);
    if (!l) throw new FarmlbError('FARMLB_E_XDP_NO_IFACE', { detail: ifname });
    return l;
  }

  private addrsOf(ifname: string): IfAddr[] {
    return this.link(ifname).addrs.map((a) => ({ ifname, ...a }));
  }
}
