// What NodeHost asks of the kernel, as one port: the data plane (program, maps, lease), the
// network operations (addresses, sysctls, promiscuous mode, aliases, XDP detach, pins) and
// the raw sockets of arpreroute, and ss(8) for tcpreset; and what FarmDaemon reads of it: the
// pinned maps' counters for /metrics and the socket table for the holdings sampler.
// `realHostPort` is the node itself (XdpDataplane, ip(8), the addon, sock_diag); unit tests
// pass a fake network and ModelDataplane (test/helpers/fake-host.ts),
// so FarmDaemon, NodeHost and the table sources run without root or a kernel
// (docs/architecture.md).

import type { Logger } from 'pino';
import type { DataplaneCounters } from '../api/metrics.js';
import { loadNative, type RawSocket, type XdpMode } from '../addon/native.js';
import type { Dataplane, Requester } from '../dataplane/types.js';
import { XdpDataplane, unpinDir, type AttachResult } from '../dataplane/xdp.js';
import { listAddrs, type IfAddr } from '../net/ip.js';
import { linkMac, type NeighbourSystem } from '../net/neighbours.js';
import { realNetSystem, type NetSystem } from '../net/setup.js';
import { chooseXdpMode, type RequestedXdpMode, type XdpModeDecision } from '../net/xdp-mode.js';
import type { VmacMode } from '../config/types.js';
import { defaultSocketScan, type SocketScan } from './holdings.js';
import { runSs, type SsRunner } from './tcpreset.js';

/** The data plane as NodeHost drives it: the Dataplane tables and lease, plus the attachments. */
export interface HostDataplane extends Dataplane {
  /** The kernel id of the XDP program (what the interface state record names). */
  programId(): number;
  attach(ifname: string, mode: XdpMode | 'auto'): Promise<AttachResult>;
  attachEgress(ifname: string): Promise<void>;
  detachEgress(ifname: string): Promise<void>;
  /** Who asked for a VIP lately (arpreroute's targets). */
  requesters(): Promise<Requester[]>;
}

/** The kernel counters /metrics reads, from maps opened read-only once (like `farmlb buckets`). */
export interface CounterReader {
  /** Reason counters, the bucket counters of the first `groups` groups, the requesters refused. */
  counters(groups: number): Promise<DataplaneCounters>;
  close(): void;
}

export interface HostPort {
  /** Loads the program and opens its maps in pinDir, adopting the maps a killed run left there. */
  openDataplane(opts: { pinDir: string; log: Logger }): Promise<HostDataplane>;
  /** Removes a pin directory (a killed run's, or this run's at stop). */
  unpinDir(pinDir: string): void;
  /** The interface's index; throws FARMLB_E_XDP_NO_IFACE when it is gone. */
  ifindex(ifname: string): number;
  /** Detaches the XDP program from ifindex if it is still expectedProgId; false if it was not there. */
  xdpDetach(ifindex: number, opts: { expectedProgId: number }): Promise<boolean>;
  /** Sysctls, promiscuous mode, VIP aliases (recorded by NetSetup). */
  net: NetSystem;
  /** The node's addresses (to find the interface of each VIP). */
  listAddrs(): Promise<IfAddr[]>;
  linkMac(ifname: string): Promise<string>;
  chooseXdpMode(ifname: string, vmacMode: VmacMode, requested: RequestedXdpMode, log: Logger): Promise<XdpModeDecision>;
  /** arpreroute's sending socket. */
  openRawSocket(ifname: string): RawSocket;
  /** How `ss -K` runs (tcpreset, src/daemon/tcpreset.ts). */
  ss: SsRunner;
  /** How peers' MACs are found (default: the kernel's neighbour table). */
  neighbours?: NeighbourSystem;
  /** Opens the maps pinned in pinDir read-only for /metrics; throws when none are pinned. */
  readCounters(pinDir: string): CounterReader;
  /** How the holdings sampler reads the socket table (sock_diag; /proc/net/tcp after telling `onFallback`). */
  socketScan(onFallback: (err: unknown) => void): SocketScan;
}

/** The node itself: the XDP data plane, ip(8), sysfs and the addon. */
export const realHostPort: HostPort = {
  openDataplane: ({ pinDir, log }) => XdpDataplane.open({ pinDir, reusePins: true, log }),
  unpinDir,
  ifindex: (ifname) => loadNative().ifindex(ifname),
  xdpDetach: (ifindex, opts) => loadNative().xdpDetach(ifindex, opts),
  net: realNetSystem,
  listAddrs,
  linkMac,
  chooseXdpMode,
  openRawSocket: (ifname) => loadNative().openRawSocket(ifname),
  ss: runSs,
  readCounters: (pinDir) => {
    const pinned = XdpDataplane.readPinned(pinDir);
    return {
      counters: async (groups) => ({
        reasons: pinned.reasonCounters(), buckets: pinned.bucketCounters(groups), requestersRefused: pinned.requesterBudget().refused,
      }),
      close: () => pinned.close(),
    };
  },
  socketScan: defaultSocketScan,
};
