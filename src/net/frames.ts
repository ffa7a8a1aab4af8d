// A frame builder: Ethernet (+VLAN tags) / IPv4 / IPv6 (+extension
// headers) / TCP / UDP / ICMP / ICMPv6 / ARP frames from a small description, with a correct
// IPv4 header checksum and transport checksums, and every field a malformed packet needs
// overridable (version, IHL, lengths, EtherType, protocol). Plus helpers to truncate and
// corrupt frames. Describing packets as objects keeps test rows readable (Katran's
// PacketAttributes); hex is for printing failures only. src/net/announce.ts builds the
// gratuitous ARP and unsolicited NA farmlb sends with it; the tests and benchmarks build
// every packet they feed the data planes with it.

export const ETH_HLEN = 14;
export const ETH_P_IPV4 = 0x0800;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_ARP = 0x0806;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;

export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_AH = 51;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_NONE = 59;
export const IPPROTO_DSTOPTS = 60;

export interface VlanTag {
  /** 0x8100 (802.1Q, default) or 0x88a8 (802.1ad); any value for malformed frames. */
  tpid?: number;
  vid: number;
  pcp?: number;
}

export interface EthernetSpec {
  dst?: string;
  src?: string;
  vlans?: VlanTag[];
  /** EtherType after the tags; default from the L3 description. */
  etherType?: number;
}

export interface Ipv4Spec {
  family: 4;
  src: string;
  dst: string;
  id?: number;
  ttl?: number;
  tos?: number;
  /** Fragment offset in 8-byte units (13 bits). */
  fragOffset?: number;
  moreFragments?: boolean;
  dontFragment?: boolean;
  /** Protocol number; default from the L4 description (255 when there is none). */
  protocol?: number;
  /** IP options, zero-padded to a multiple of 4 bytes. */
  options?: Uint8Array;
  // Overrides for malformed packets:
  version?: number;
  /** Header length in 32-bit words; default 5 + options. */
  ihl?: number;
  totalLength?: number;
  checksum?: number;
}

export type Ipv6ExtSpec =
  /** Length (hdrlen + 1) × 8 bytes, hdrlen default 0; filled with PadN options. */
  | { type: 'hop-by-hop' | 'routing' | 'destination'; hdrlen?: number }
  /** Authentication header: length (hdrlen + 2) × 4 bytes, hdrlen default 1 (12 bytes). */
  | { type: 'auth'; hdrlen?: number }
  /** Fragment header; offset in 8-byte units. */
  | { type: 'fragment'; offset: number; more?: boolean; id?: number };

export interface Ipv6Spec {
  family: 6;
  src: string;
  dst: string;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  ext?: Ipv6ExtSpec[];
  /** Upper-layer protocol after the extension headers; default from the L4 description. */
  nextHeader?: number;
  version?: number;
  payloadLength?: number;
}

export interface ArpSpec {
  family: 'arp';
  /** 1 request (default), 2 reply. */
  op?: number;
  senderMac: string;
  senderIp: string;
  targetMac?: string;
  targetIp: string;
}

export interface RawL3Spec {
  family: 'raw';
  bytes: Uint8Array;
}

export type L3Spec = Ipv4Spec | Ipv6Spec | ArpSpec | RawL3Spec;

export type L4Spec =
  | { proto: 'tcp'; sport: number; dport: number; flags?: number; seq?: number; ack?: number; window?: number; checksum?: number }
  | { proto: 'udp'; sport: number; dport: number; checksum?: number }
  /** 8-byte header: type, code, checksum, identifier, sequence (the last 4 bytes are "rest of header"). */
  | { proto: 'icmp' | 'icmpv6'; type: number; code?: number; id?: number; seq?: number; checksum?: number }
  | { proto: 'raw'; number: number; bytes?: Uint8Array };

export interface FrameSpec {
  eth?: EthernetSpec;
  l3?: L3Spec;
  l4?: L4Spec;
  /** Payload bytes after L4, or a length of a deterministic filler. */
  payload?: Uint8Array | number;
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

const DEFAULT_DST_MAC = '02:00:00:00:00:02';
const DEFAULT_SRC_MAC = '02:00:00:00:00:01';

// --- addresses -----------------------------------------------------------------------

export function parseMac(mac: string): Uint8Array {
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new TypeError(`not a MAC address: ${mac}`);
  }
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

export function parseIpv4(addr: string): Uint8Array {
  const parts = addr.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new TypeError(`not an IPv4 address: ${addr}`);
  }
  return Uint8Array.from(parts.map(Number));
}

export function parseIpv6(addr: string): Uint8Array {
  const out = new Uint8Array(16);
  let text = addr;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = parseIpv4(v4[1]!);
    text = text.slice(0, v4.index) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) throw new TypeError(`not an IPv6 address: ${addr}`);
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if ((halves.length === 1 && fill !== 0) || fill < 0 || (halves.length === 2 && fill < 1)) {
    throw new TypeError(`not an IPv6 address: ${addr}`);
  }
  const all = [...head, ...Array<string>(halves.length === 2 ? fill : 0).fill('0'), ...tail];
  all.forEach((g, i) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new TypeError(`not an IPv6 address: ${addr}`);
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/** The address's bytes, network order: 4 for IPv4, 16 for IPv6. */
export function parseIp(addr: string): { family: 4 | 6; bytes: Uint8Array } {
  return addr.includes(':') ? { family: 6, bytes: parseIpv6(addr) } : { family: 4, bytes: parseIpv4(addr) };
}

/** 16 bytes as the VIP key stores them: IPv4 in the first 4, the rest zero. */
export function addrBytes16(addr: string): Uint8Array {
  const out = new Uint8Array(16);
  out.set(parseIp(addr).bytes);
  return out;
}

// --- frame helpers -------------------------------------------------------------------

export function toHex(frame: Uint8Array): string {
  return Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('hex');
}

export function fromHex(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex.replace(/\s+/g, ''), 'hex'));
}

/** A copy of the first `length` bytes. */
export function truncate(frame: Uint8Array, length: number): Uint8Array {
  return frame.slice(0, Math.max(0, Math.min(length, frame.length)));
}

/** A copy with byte `offset` replaced (a number) or transformed (a function). */
export function corrupt(frame: Uint8Array, offset: number, value: number | ((b: number) => number)): Uint8Array {
  const out = frame.slice();
  if (offset < 0 || offset >= out.length) throw new RangeError(`offset ${offset} outside a ${out.length}-byte frame`);
  out[offset] = (typeof value === 'function' ? value(out[offset]!) : value) & 0xff;
  return out;
}

/** Offset of the L3 header of a frame built from `spec` (after Ethernet and VLAN tags). */
export function l3Offset(spec: FrameSpec): number {
  return ETH_HLEN + 4 * (spec.eth?.vlans?.length ?? 0);
}

/** RFC 1071 one's-complement sum of `parts`, folded and inverted. */
export function inetChecksum(...parts: Uint8Array[]): number {
  let sum = 0;
  let odd: number | undefined;
  for (const p of parts) {
    for (let i = 0; i < p.length; i++) {
      if (odd === undefined) odd = p[i]!;
      else {
        sum += (odd << 8) | p[i]!;
        odd = undefined;
      }
    }
  }
  if (odd !== undefined) sum += odd << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

// --- building ------------------------------------------------------------------------

class Writer {
  private readonly bytes: number[] = [];
  u8(v: number): this {
    this.bytes.push(v & 0xff);
    return this;
  }
  u16(v: number): this {
    return this.u8(v >>> 8).u8(v);
  }
  u32(v: number): this {
    return this.u16(v >>> 16).u16(v & 0xffff);
  }
  raw(b: Uint8Array): this {
    for (const x of b) this.bytes.push(x);
    return this;
  }
  done(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

function l4ProtoNumber(l4: L4Spec | undefined): number {
  switch (l4?.proto) {
    case 'tcp':
      return IPPROTO_TCP;
    case 'udp':
      return IPPROTO_UDP;
    case 'icmp':
      return IPPROTO_ICMP;
    case 'icmpv6':
      return IPPROTO_ICMPV6;
    case 'raw':
      return l4.number;
    default:
      return 255;
  }
}

function payloadBytes(payload: FrameSpec['payload']): Uint8Array {
  if (payload === undefined) return new Uint8Array(0);
  if (typeof payload !== 'number') return payload;
  return Uint8Array.from({ length: payload }, (_, i) => (i * 7 + 1) & 0xff);
}

/** The L4 header (+payload) with its checksum left zero, and where that checksum goes. */
function buildL4(l4: L4Spec | undefined, payload: Uint8Array): { bytes: Uint8Array; csumAt?: number; csum?: number } {
  if (!l4) return { bytes: payload };
  const w = new Writer();
  switch (l4.proto) {
    case 'tcp':
      w.u16(l4.sport).u16(l4.dport).u32(l4.seq ?? 1).u32(l4.ack ?? 0);
      w.u8(5 << 4).u8(l4.flags ?? TCP_ACK).u16(l4.window ?? 65535).u16(0).u16(0);
      return { bytes: w.raw(payload).done(), csumAt: 16, ...(l4.checksum !== undefined && { csum: l4.checksum }) };
    case 'udp':
      w.u16(l4.sport).u16(l4.dport).u16(8 + payload.length).u16(0);
      return { bytes: w.raw(payload).done(), csumAt: 6, ...(l4.checksum !== undefined && { csum: l4.checksum }) };
    case 'icmp':
    case 'icmpv6':
      w.u8(l4.type).u8(l4.code ?? 0).u16(0).u16(l4.id ?? 0x1234).u16(l4.seq ?? 1);
      return { bytes: w.raw(payload).done(), csumAt: 2, ...(l4.checksum !== undefined && { csum: l4.checksum }) };
    case 'raw':
      return { bytes: w.raw(l4.bytes ?? new Uint8Array(0)).raw(payload).done() };
  }
}

function pseudoHeader(src: Uint8Array, dst: Uint8Array, proto: number, length: number): Uint8Array {
  const w = new Writer().raw(src).raw(dst);
  if (src.length === 4) w.u8(0).u8(proto).u16(length);
  else w.u32(length).u16(0).u8(0).u8(proto);
  return w.done();
}

function finishL4(
  built: { bytes: Uint8Array; csumAt?: number; csum?: number },
  l4: L4Spec | undefined,
  src: Uint8Array,
  dst: Uint8Array,
): Uint8Array {
  const { bytes, csumAt } = built;
  if (csumAt === undefined || bytes.length < csumAt + 2) return bytes;
  let csum = built.csum;
  if (csum === undefined) {
    const proto = l4ProtoNumber(l4);
    csum = l4?.proto === 'icmp' ? inetChecksum(bytes) : inetChecksum(pseudoHeader(src, dst, proto, bytes.length), bytes);
    // UDP sends a computed 0 as 0xffff (RFC 768).
    if (l4?.proto === 'udp' && csum === 0) csum = 0xffff;
  }
  bytes[csumAt] = csum >> 8;
  bytes[csumAt + 1] = csum & 0xff;
  return bytes;
}

function buildIpv4(ip: Ipv4Spec, l4: L4Spec | undefined, payload: Uint8Array): Uint8Array {
  const src = parseIpv4(ip.src);
  const dst = parseIpv4(ip.dst);
  const options = ip.options ?? new Uint8Array(0);
  const optLen = Math.ceil(options.length / 4) * 4;
  const paddedOptions = new Uint8Array(optLen);
  paddedOptions.set(options);
  const body = finishL4(buildL4(l4, payload), l4, src, dst);
  const ihl = ip.ihl ?? 5 + optLen / 4;
  const flags = (ip.dontFragment ? 0x4000 : 0) | (ip.moreFragments ? 0x2000 : 0);
  const w = new Writer()
    .u8(((ip.version ?? 4) << 4) | (ihl & 0x0f))
    .u8(ip.tos ?? 0)
    .u16(ip.totalLength ?? 20 + optLen + body.length)
    .u16(ip.id ?? 0)
    .u16(flags | ((ip.fragOffset ?? 0) & 0x1fff))
    .u8(ip.ttl ?? 64)
    .u8(ip.protocol ?? l4ProtoNumber(l4))
    .u16(0)
    .raw(src)
    .raw(dst)
    .raw(paddedOptions);
  const header = w.done();
  const csum = ip.checksum ?? inetChecksum(header);
  header[10] = csum >> 8;
  header[11] = csum & 0xff;
  const out = new Uint8Array(header.length + body.length);
  out.set(header);
  out.set(body, header.length);
  return out;
}

const EXT_TYPE: Record<Ipv6ExtSpec['type'], number> = {
  'hop-by-hop': IPPROTO_HOPOPTS,
  routing: IPPROTO_ROUTING,
  destination: IPPROTO_DSTOPTS,
  auth: IPPROTO_AH,
  fragment: IPPROTO_FRAGMENT,
};

function buildIpv6Ext(ext: Ipv6ExtSpec, nextHeader: number): Uint8Array {
  const w = new Writer().u8(nextHeader);
  switch (ext.type) {
    case 'fragment':
      w.u8(0).u16(((ext.offset & 0x1fff) << 3) | (ext.more ? 1 : 0)).u32(ext.id ?? 0x01020304);
      return w.done();
    case 'auth': {
      const hdrlen = ext.hdrlen ?? 1;
      const total = (hdrlen + 2) * 4;
      w.u8(hdrlen).u16(0).u32(0x100).u32(1);
      const head = w.done();
      const out = new Uint8Array(Math.max(total, 2));
      out.set(head.subarray(0, Math.min(head.length, out.length)));
      return out;
    }
    case 'routing': {
      const hdrlen = ext.hdrlen ?? 0;
      const out = new Uint8Array((hdrlen + 1) * 8);
      out[0] = nextHeader;
      out[1] = hdrlen;
      // routing type 4 (segment routing) with segments left 0: ignored by receivers.
      out[2] = 4;
      return out;
    }
    default: {
      const hdrlen = ext.hdrlen ?? 0;
      const out = new Uint8Array((hdrlen + 1) * 8);
      out[0] = nextHeader;
      out[1] = hdrlen;
      // PadN options (type 1) fill the rest; one PadN covers at most 257 bytes.
      let at = 2;
      while (at < out.length) {
        const room = out.length - at;
        if (room === 1) {
          out[at] = 0; // Pad1
          break;
        }
        const n = Math.min(room - 2, 255);
        out[at] = 1;
        out[at + 1] = n;
        at += 2 + n;
      }
      return out;
    }
  }
}

function buildIpv6(ip: Ipv6Spec, l4: L4Spec | undefined, payload: Uint8Array): Uint8Array {
  const src = parseIpv6(ip.src);
  const dst = parseIpv6(ip.dst);
  const exts = ip.ext ?? [];
  const upper = ip.nextHeader ?? l4ProtoNumber(l4);
  const body = finishL4(buildL4(l4, payload), l4, src, dst);
  const extBytes: Uint8Array[] = [];
  for (let i = exts.length - 1; i >= 0; i--) {
    const next = i === exts.length - 1 ? upper : EXT_TYPE[exts[i + 1]!.type];
    extBytes.unshift(buildIpv6Ext(exts[i]!, next));
  }
  const extLen = extBytes.reduce((n, b) => n + b.length, 0);
  const firstNext = exts.length > 0 ? EXT_TYPE[exts[0]!.type] : upper;
  const vtf = (((ip.version ?? 6) & 0xf) << 28) | (((ip.trafficClass ?? 0) & 0xff) << 20) | ((ip.flowLabel ?? 0) & 0xfffff);
  const w = new Writer()
    .u32(vtf >>> 0)
    .u16(ip.payloadLength ?? extLen + body.length)
    .u8(firstNext)
    .u8(ip.hopLimit ?? 64)
    .raw(src)
    .raw(dst);
  for (const b of extBytes) w.raw(b);
  return w.raw(body).done();
}

function buildArp(arp: ArpSpec): Uint8Array {
  return new Writer()
    .u16(1) // Ethernet
    .u16(ETH_P_IPV4)
    .u8(6)
    .u8(4)
    .u16(arp.op ?? 1)
    .raw(parseMac(arp.senderMac))
    .raw(parseIpv4(arp.senderIp))
    .raw(parseMac(arp.targetMac ?? '00:00:00:00:00:00'))
    .raw(parseIpv4(arp.targetIp))
    .done();
}

function defaultEtherType(l3: L3Spec | undefined): number {
  switch (l3?.family) {
    case 4:
      return ETH_P_IPV4;
    case 6:
      return ETH_P_IPV6;
    case 'arp':
      return ETH_P_ARP;
    default:
      return 0x88b5; // IEEE local experimental
  }
}

/** The frame described by `spec`, from the destination MAC to the last payload byte. */
export function buildFrame(spec: FrameSpec): Uint8Array {
  const payload = payloadBytes(spec.payload);
  const eth = spec.eth ?? {};
  const w = new Writer().raw(parseMac(eth.dst ?? DEFAULT_DST_MAC)).raw(parseMac(eth.src ?? DEFAULT_SRC_MAC));
  for (const tag of eth.vlans ?? []) {
    w.u16(tag.tpid ?? ETH_P_8021Q).u16((((tag.pcp ?? 0) & 7) << 13) | (tag.vid & 0x0fff));
  }
  w.u16(eth.etherType ?? defaultEtherType(spec.l3));
  const l3 = spec.l3;
  if (!l3) {
    // No L3: the L4 description (if any) and the payload follow the EtherType directly.
    const l4 = buildL4(spec.l4, payload);
    return w.raw(l4.bytes).done();
  }
  switch (l3.family) {
    case 4:
      w.raw(buildIpv4(l3, spec.l4, payload));
      break;
    case 6:
      w.raw(buildIpv6(l3, spec.l4, payload));
      break;
    case 'arp':
      w.raw(buildArp(l3)).raw(payload);
      break;
    case 'raw':
      w.raw(l3.bytes).raw(payload);
      break;
  }
  return w.done();
}

// --- neighbour discovery and ICMP errors (docs/datapath.md §8, §10) -------------------

export const ICMPV6_NEIGHBOUR_SOLICITATION = 135;
export const ICMPV6_NEIGHBOUR_ADVERTISEMENT = 136;

/** ff02::1:ffXX:XXXX of an IPv6 address (RFC 4291 §2.7.1). */
export function solicitedNodeAddr(addr: string): string {
  const b = parseIpv6(addr);
  return `ff02::1:ff${b[13]!.toString(16).padStart(2, '0')}:${((b[14]! << 8) | b[15]!).toString(16)}`;
}

/** 33:33 + the last four bytes of an IPv6 multicast address (RFC 2464 §7). */
export function ipv6MulticastMac(addr: string): string {
  const b = parseIpv6(addr);
  return ['33', '33', ...Array.from(b.subarray(12, 16), (x) => x.toString(16).padStart(2, '0'))].join(':');
}

export interface NeighbourSolicitationSpec {
  /** Requester address; '::' for duplicate address detection. */
  src: string;
  srcMac: string;
  target: string;
  /** Default: the target's solicited-node address. */
  dst?: string;
  /** Carry a source link-layer address option (default true; never with src '::'). */
  slla?: boolean;
  hopLimit?: number;
  code?: number;
  vlans?: VlanTag[];
}

/** A neighbour solicitation as a FrameSpec: 24-byte message, optionally the SLLA option. */
export function neighbourSolicitation(s: NeighbourSolicitationSpec): FrameSpec {
  const dst = s.dst ?? solicitedNodeAddr(s.target);
  const withSlla = s.slla ?? s.src !== '::';
  const body = new Uint8Array(16 + (withSlla ? 8 : 0));
  body.set(parseIpv6(s.target), 0);
  if (withSlla) {
    body[16] = 1;
    body[17] = 1;
    body.set(parseMac(s.srcMac), 18);
  }
  return {
    eth: { dst: dst.startsWith('ff') ? ipv6MulticastMac(dst) : '02:00:00:00:00:02', src: s.srcMac, ...(s.vlans && { vlans: s.vlans }) },
    l3: { family: 6, src: s.src, dst, hopLimit: s.hopLimit ?? 255 },
    l4: { proto: 'icmpv6', type: ICMPV6_NEIGHBOUR_SOLICITATION, code: s.code ?? 0, id: 0, seq: 0 },
    payload: body,
  };
}

export interface NeighbourAdvertisementSpec {
  /** The advertised address (the VIP): IPv6 source and target. */
  target: string;
  dst: string;
  ethDst: string;
  ethSrc: string;
  /** Target link-layer address option. */
  mac: string;
  /** First flag byte: 0x40 Solicited, 0x20 Override (default both). */
  flags?: number;
  vlans?: VlanTag[];
}

/** A neighbour advertisement with a target link-layer address option (32-byte ICMPv6 body). */
export function neighbourAdvertisement(s: NeighbourAdvertisementSpec): FrameSpec {
  const body = new Uint8Array(24);
  body.set(parseIpv6(s.target), 0);
  body[16] = 2;
  body[17] = 1;
  body.set(parseMac(s.mac), 18);
  return {
    eth: { dst: s.ethDst, src: s.ethSrc, ...(s.vlans && { vlans: s.vlans }) },
    l3: { family: 6, src: s.target, dst: s.dst, hopLimit: 255 },
    l4: { proto: 'icmpv6', type: ICMPV6_NEIGHBOUR_ADVERTISEMENT, code: 0, id: (s.flags ?? 0x60) << 8, seq: 0 },
    payload: body,
  };
}

/** The bytes of a packet from its IP header on: what an ICMP error quotes. */
export function quotedPacket(spec: FrameSpec, length?: number): Uint8Array {
  const bytes = buildFrame(spec).slice(l3Offset(spec));
  return length === undefined ? bytes : bytes.slice(0, length);
}
