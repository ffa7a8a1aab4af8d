// Frames that tell one client where the VIP is (arpreroute, vmac_directed): a unicast ARP
// reply for IPv4 and an unsolicited neighbour advertisement for IPv6, each addressed to the
// client alone. A broadcast gratuitous ARP would pull every client of the segment to the
// sender and undo the ARP spreading (LAB-NOTES), so reroutes are always unicast. Sent through
// the addon's raw socket (Native.openRawSocket); pure byte builders here.

import { buildFrame, ETH_P_ARP, parseIpv6, parseMac } from './frames.js';

export const ARP_OP_REPLY = 2;
export const ICMPV6_NEIGHBOUR_ADVERT = 136;
export const ND_OPT_TARGET_LL_ADDR = 2;
// Neighbour advertisement flags, the first byte of the 32-bit word after the checksum (RFC 4861 §4.4).
export const NA_FLAG_ROUTER = 0x80;
export const NA_FLAG_SOLICITED = 0x40;
export const NA_FLAG_OVERRIDE = 0x20;
/** RFC 4861 §7.1.2: a receiver drops neighbour discovery with any other hop limit (it proves the sender is on-link). */
export const ND_HOP_LIMIT = 255;

export interface AnnounceSpec {
  vip: string;
  /** The MAC the client should use for the VIP (vmac_directed: the new owner's own MAC). */
  announcedMac: string;
  /** Source MAC of the frame: the sending interface's MAC. Default: announcedMac. */
  linkMac?: string;
  clientIp: string;
  clientMac: string;
}

/** ARP reply "vip is at announcedMac", unicast to the client (42 bytes; the NIC pads to the minimum). */
export function buildArpReply(spec: AnnounceSpec): Uint8Array {
  return buildFrame({
    eth: { dst: spec.clientMac, src: spec.linkMac ?? spec.announcedMac, etherType: ETH_P_ARP },
    l3: { family: 'arp', op: ARP_OP_REPLY, senderMac: spec.announcedMac, senderIp: spec.vip, targetMac: spec.clientMac, targetIp: spec.clientIp },
  });
}

/**
 * Unsolicited neighbour advertisement for the VIP with a target link-layer address option,
 * to the client's unicast address. Override (default on) makes the client replace the MAC
 * it has cached; Solicited is off, so the entry goes STALE and is re-confirmed on next use
 * (RFC 4861 §7.2.5). ICMPv6 checksum over the IPv6 pseudo-header.
 */
export function buildUnsolicitedNa(spec: AnnounceSpec & { override?: boolean }): Uint8Array {
  const flags = spec.override === false ? 0 : NA_FLAG_OVERRIDE;
  const body = new Uint8Array(16 + 8);
  body.set(parseIpv6(spec.vip), 0);
  body[16] = ND_OPT_TARGET_LL_ADDR;
  body[17] = 1; // option length in units of 8 bytes
  body.set(parseMac(spec.announcedMac), 18);
  return buildFrame({
    eth: { dst: spec.clientMac, src: spec.linkMac ?? spec.announcedMac },
    l3: { family: 6, src: spec.vip, dst: spec.clientIp, hopLimit: ND_HOP_LIMIT },
    // The 4 bytes after the checksum ("id" and "seq" of the echo layout) hold the flags and reserved bits.
    l4: { proto: 'icmpv6', type: ICMPV6_NEIGHBOUR_ADVERT, code: 0, id: flags << 8, seq: 0 },
    payload: body,
  });
}
