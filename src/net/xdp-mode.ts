// Which XDP mode (native or generic) the program is attached in, per interface: decided
// from what the interface can deliver, not only from what was asked for (docs/net.md, "XDP
// mode"). Every VMAC mode transmits from XDP (XDP_TX: ARP replies and neighbour
// advertisements in both modes, directed forwarding in vmac_directed), so a device that
// runs native XDP but cannot carry native XDP_TX frames breaks farmlb silently.
//
// The one such device is the veth: a frame sent with native XDP_TX is handed to the peer,
// which drops it unless the peer itself runs a native XDP program (LAB-NOTES; GRO on the
// peer alone leaves the frames in its queue). Generic (skb) mode transmits through the
// normal stack and works on any device. Other virtual devices (bridge, macvlan, ipvlan,
// VLAN, bond over virtual slaves) have no native XDP of their own: libbpf's native attach
// fails and `auto` falls back to generic with the kernel's reason.
//
// decideXdpMode is pure (facts in, decision out); linkXdpFacts gathers the facts with
// iproute2 in the daemon's network namespace.

import type { Logger } from 'pino';
import type { VmacMode } from '../config/types.js';
import { FarmlbError } from '../errors.js';
import { ip } from './ip.js';

export type RequestedXdpMode = 'auto' | 'native' | 'generic';

/** What the interface is, as far as the XDP mode is concerned. */
export interface LinkXdpFacts {
  /** linkinfo kind ("veth", "bridge", …); undefined for a physical device. */
  kind?: string;
  /**
   * veth only: its peer. `nativeXdp` is whether the peer runs a native (driver mode) XDP
   * program; null when the peer could not be looked at (another network namespace with
   * no name in /run/netns, as the host side of a container usually is).
   */
  peer?: { ifname?: string; netns?: string; nativeXdp: boolean | null };
}

export interface XdpModeDecision {
  /** What to ask the kernel for: `auto` = native, falling back to generic with the reason. */
  mode: RequestedXdpMode;
  /** Why, in words, for the log and `farmlb status`. */
  reason: string;
  /** Set when the mode works with a limit the operator must know about (logged as a warning). */
  warning?: string;
}

const PACKET_OTHERHOST = 'native XDP on a veth runs after the frame was classified: a frame sent to the virtual MAC stays PACKET_OTHERHOST and IP drops it even after the program rewrote its destination';

function peerName(facts: LinkXdpFacts): string {
  const p = facts.peer;
  if (!p?.ifname) return 'its peer';
  return p.netns ? `its peer ${p.ifname} (netns ${p.netns})` : `its peer ${p.ifname}`;
}

/** Why native XDP_TX from this veth is not delivered, or undefined when it is. */
function vethTxProblem(facts: LinkXdpFacts): string | undefined {
  const peer = facts.peer?.nativeXdp;
  if (peer === true) return undefined;
  if (peer === false) return `${peerName(facts)} runs no native XDP program, so it drops every frame sent with native XDP_TX (ARP/ND answers, directed forwarding)`;
  return `${peerName(facts)} could not be looked at (another network namespace); a veth peer without a native XDP program drops every frame sent with native XDP_TX (ARP/ND answers, directed forwarding)`;
}

/**
 * The XDP mode for one interface. `requested` is `--xdp-mode`. Throws
 * FARMLB_E_XDP_NATIVE_UNDELIVERABLE when native is asked for where it cannot deliver what
 * the VMAC mode needs: refusing is better than a farm that answers no ARP.
 */
export function decideXdpMode(ifname: string, vmacMode: VmacMode, requested: RequestedXdpMode, facts: LinkXdpFacts): XdpModeDecision {
  if (requested === 'generic') return { mode: 'generic', reason: 'generic mode requested (--xdp-mode generic)' };
  if (facts.kind !== 'veth') {
    return requested === 'native'
      ? { mode: 'native', reason: 'native mode requested (--xdp-mode native)' }
      : { mode: 'auto', reason: facts.kind ? `${facts.kind} device: native if its driver supports it, else generic` : 'native XDP in the driver' };
  }
  const problem = vmacMode === 'vmac_invisible' ? PACKET_OTHERHOST : vethTxProblem(facts);
  if (problem !== undefined) {
    if (requested === 'native') {
      throw new FarmlbError('FARMLB_E_XDP_NATIVE_UNDELIVERABLE', { iface: ifname, vmacMode, detail: problem });
    }
    return { mode: 'generic', reason: `veth: ${problem}` };
  }
  // A veth whose peer runs native XDP delivers native XDP_TX, but the frames lose the
  // skb's checksum state: a segment a local sender left to checksum offload (another veth
  // on this host) arrives with a bad checksum after a directed forward (LAB-NOTES).
  const warning = `native XDP_TX on veth ${ifname}: forwarded frames lose their checksum-offload state; senders on this host must send full checksums (ethtool -K IFACE tx off)`;
  if (requested === 'native') return { mode: 'native', reason: `native mode requested; ${peerName(facts)} runs native XDP`, warning };
  return { mode: 'generic', reason: `veth: generic is the safe default (native XDP_TX from a veth loses checksum-offload state even though ${peerName(facts)} runs native XDP); use --xdp-mode native to override` };
}

interface IpLink {
  ifindex: number;
  ifname: string;
  link?: string;
  link_index?: number;
  link_netnsid?: number;
  linkinfo?: { info_kind?: string };
  xdp?: { mode?: number; attached?: { mode?: number }[] };
}

/** XDP_ATTACHED_DRV in `ip -j -d link` (1 = driver/native, 2 = skb/generic, 3 = hw, 4 = several). */
const XDP_ATTACHED_DRV = 1;

function hasNativeXdp(l: IpLink): boolean {
  const x = l.xdp;
  if (!x) return false;
  return x.mode === XDP_ATTACHED_DRV || (x.attached ?? []).some((a) => a.mode === XDP_ATTACHED_DRV);
}

/** The facts decideXdpMode needs, from `ip -d -j link` (and, for a veth, its peer's namespace). */
export async function linkXdpFacts(ifname: string): Promise<LinkXdpFacts> {
  const link = (JSON.parse(await ip(['-d', '-j', 'link', 'show', 'dev', ifname])) as IpLink[])[0];
  const kind = link?.linkinfo?.info_kind;
  if (!link || kind !== 'veth') return kind ? { kind } : {};
  if (link.link_netnsid === undefined) {
    // Same namespace: `link` names the peer.
    const peer = link.link ? (JSON.parse(await ip(['-d', '-j', 'link', 'show', 'dev', link.link])) as IpLink[])[0] : undefined;
    return { kind, peer: { ...(link.link ? { ifname: link.link } : {}), nativeXdp: peer ? hasNativeXdp(peer) : null } };
  }
  const netns = await netnsName(link.link_netnsid);
  if (!netns || link.link_index === undefined) return { kind, peer: { nativeXdp: null } };
  try {
    const peers = JSON.parse(await ip(['-n', netns, '-d', '-j', 'link', 'show'])) as IpLink[];
    const peer = peers.find((p) => p.ifindex === link.link_index);
    return { kind, peer: peer ? { ifname: peer.ifname, netns, nativeXdp: hasNativeXdp(peer) } : { netns, nativeXdp: null } };
  } catch {
    return { kind, peer: { netns, nativeXdp: null } };
  }
}

/** The /run/netns name of a namespace id seen from here (`ip netns list-id`), if it has one. */
async function netnsName(nsid: number): Promise<string | undefined> {
  try {
    const out = await ip(['netns', 'list-id']);
    for (const line of out.split('\n')) {
      const m = /^nsid (\d+) \(iproute2 netns name: (\S+)\)/.exec(line.trim());
      if (m && Number(m[1]) === nsid) return m[2];
    }
  } catch {
    // No netns support in this iproute2, or not allowed: the peer stays unknown.
  }
  return undefined;
}

/** Gathers the facts, decides and logs the decision (`xdp_mode_choice`; a warning as `xdp_mode_warning`). */
export async function chooseXdpMode(ifname: string, vmacMode: VmacMode, requested: RequestedXdpMode, log: Logger): Promise<XdpModeDecision> {
  const facts = await linkXdpFacts(ifname);
  const decision = decideXdpMode(ifname, vmacMode, requested, facts);
  log.info({ event: 'xdp_mode_choice', iface: ifname, requested, mode: decision.mode, reason: decision.reason }, `XDP mode on ${ifname}: ${decision.mode} (${decision.reason})`);
  if (decision.warning) log.warn({ event: 'xdp_mode_warning', iface: ifname, mode: decision.mode }, decision.warning);
  return decision;
}
