/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * farmlb_parse.h — header parsers of the XDP program. Nothing here decides a verdict.
 *
 * Contract (the same for every parser, after xdp-tools' parsing_helpers.h):
 *   - a parser takes the cursor (struct hdr_cursor, the next unread byte) and data_end;
 *   - it checks that the bytes it reads are inside [cursor, data_end) before reading;
 *   - on success it stores a pointer to the header, advances the cursor past it and
 *     returns the next protocol (EtherType in network order, or an IP protocol number);
 *   - on a truncated or invalid header it returns a negative FARMLB_PARSE_* value and
 *     leaves the cursor where it was.
 *
 * The bounds below are part of the data path's semantics (docs/datapath.md), and the TS
 * model (src/dataplane/model.ts) mirrors them: they are not tunables.
 */
#ifndef FARMLB_PARSE_H
#define FARMLB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* VLAN tags skipped before the EtherType; the verifier needs a fixed bound for the
 * unrolled loop, and two covers 802.1Q and QinQ (802.1ad outer + 802.1Q inner). */
#define FARMLB_VLAN_MAX_DEPTH 2
/* IPv6 extension headers walked before the upper-layer protocol. Same reason: a fixed
 * bound for the verifier; real traffic carries one or two (a fragment header, maybe
 * hop-by-hop). A longer chain to a VIP is dropped as malformed. */
#define FARMLB_IPV6_EXT_MAX 6

/* Every IPv6 extension header is at least 8 bytes long (RFC 8200 §4, AH RFC 4302 §2). */
#define FARMLB_IPV6_EXT_MIN_LEN 8

enum farmlb_parse_err {
	FARMLB_PARSE_TRUNCATED = -1, /* the header does not fit before data_end */
	FARMLB_PARSE_INVALID = -2,   /* present but not a valid header (version, IHL, chain length) */
};

/* The protocol returned for an IPv6 non-first fragment: the bytes after its Fragment
 * header are the middle of a datagram, not a header. 0x100 is no IP protocol number. */
#define FARMLB_PROTO_FRAGMENT 0x100

struct hdr_cursor {
	void *pos;
};

struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

/* IPv6 Hop-by-Hop, Routing, Destination Options and Authentication headers all begin
 * with these two bytes; only the unit of hdrlen differs. */
struct ipv6_opt_hdr_start {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset in 8-byte units in bits 3..15, M flag in bit 0 */
	__be32 identification;
};

static __always_inline int proto_is_vlan(__u16 h_proto)
{
	return h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD);
}

/* Returns the EtherType after at most FARMLB_VLAN_MAX_DEPTH tags (network order). A
 * third tag is returned as is, so the caller sees a non-IP EtherType. */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end,
					struct ethhdr **ethhdr)
{
	struct ethhdr *eth = nh->pos;
	struct vlan_hdr *vlh;
	void *pos;
	__u16 h_proto;
	int i;

	if ((void *)(eth + 1) > data_end)
		return FARMLB_PARSE_TRUNCATED;
	pos = eth + 1;
	/* struct ethhdr is packed, so clang reads its members byte by byte; the EtherType is
	 * 2-aligned in every frame the stack hands XDP (and the verifier allows unaligned
	 * packet loads where the CPU does): one 2-byte load instead of two loads, a shift, an or. */
	h_proto = *(const __be16 *)((const void *)eth + __builtin_offsetof(struct ethhdr, h_proto));

#pragma unroll
	for (i = 0; i < FARMLB_VLAN_MAX_DEPTH; i++) {
		if (!proto_is_vlan(h_proto))
			break;
		vlh = pos;
		if ((void *)(vlh + 1) > data_end)
			return FARMLB_PARSE_TRUNCATED;
		h_proto = vlh->h_vlan_encapsulated_proto;
		pos = vlh + 1;
	}

	*ethhdr = eth;
	nh->pos = pos;
	return h_proto;
}

/* The fixed 20 bytes only: enough to read the destination for the VIP lookup. The
 * caller validates the rest (ipv4_validate) only for VIP traffic, so foreign packets
 * cost no more than this. */
static __always_inline int parse_iphdr_fixed(struct hdr_cursor *nh, void *data_end,
					     struct iphdr **iphdr)
{
	struct iphdr *iph = nh->pos;

	if ((void *)(iph + 1) > data_end)
		return FARMLB_PARSE_TRUNCATED;
	*iphdr = iph;
	return iph->protocol;
}

/* Version, IHL and the options; advances the cursor to the transport header. */
static __always_inline int ipv4_validate(struct hdr_cursor *nh, void *data_end,
					 struct iphdr *iph)
{
	__u32 hdrsize;

	if (iph->version != 4 || iph->ihl < 5)
		return FARMLB_PARSE_INVALID;
	hdrsize = iph->ihl * 4; /* 20..60: the 4-bit field bounds the pointer for the verifier */
	if ((void *)iph + hdrsize > data_end)
		return FARMLB_PARSE_TRUNCATED;
	nh->pos = (void *)iph + hdrsize;
	return iph->protocol;
}

static __always_inline int parse_ip6hdr_fixed(struct hdr_cursor *nh, void *data_end,
					      struct ipv6hdr **ip6hdr)
{
	struct ipv6hdr *ip6h = nh->pos;

	if ((void *)(ip6h + 1) > data_end)
		return FARMLB_PARSE_TRUNCATED;
	*ip6hdr = ip6h;
	return ip6h->nexthdr;
}

static __always_inline int ipv6_is_ext(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_AH ||
	       nexthdr == IPPROTO_FRAGMENT;
}

/* Walks the extension headers after the fixed IPv6 header. Returns the upper-layer
 * protocol with the cursor on its header, FARMLB_PROTO_FRAGMENT for a non-first
 * fragment (cursor after its Fragment header), or an error: a header that does not
 * fit, or more than FARMLB_IPV6_EXT_MAX of them. */
static __always_inline int ipv6_skip_ext(struct hdr_cursor *nh, void *data_end,
					 struct ipv6hdr *ip6h)
{
	void *pos = ip6h + 1;
	__u8 nexthdr = ip6h->nexthdr;
	int i;

	/* Unrolled rather than a bounded loop: each step moves a packet pointer by a
	 * variable length, and the unrolled form gives the verifier one linear path per
	 * depth instead of a state to re-verify on every iteration. */
#pragma unroll
	for (i = 0; i < FARMLB_IPV6_EXT_MAX; i++) {
		struct ipv6_opt_hdr_start *opt = pos;
		struct ipv6_frag_hdr *frag = pos;
		__u32 len;

		if (!ipv6_is_ext(nexthdr))
			break;
		if (pos + FARMLB_IPV6_EXT_MIN_LEN > data_end)
			return FARMLB_PARSE_TRUNCATED;

		if (nexthdr == IPPROTO_FRAGMENT) {
			if (frag->frag_off & bpf_htons(0xfff8)) {
				nh->pos = frag + 1;
				return FARMLB_PROTO_FRAGMENT;
			}
			nexthdr = frag->nexthdr;
			pos = frag + 1;
			continue;
		}
		if (nexthdr == IPPROTO_AH)
			len = ((__u32)opt->hdrlen + 2) * 4;
		else
			len = ((__u32)opt->hdrlen + 1) * 8;
		/* hdrlen is one byte, so len <= 2048 and the pointer stays inside the
		 * verifier's packet range after FARMLB_IPV6_EXT_MAX steps. */
		if (pos + len > data_end)
			return FARMLB_PARSE_TRUNCATED;
		nexthdr = opt->nexthdr;
		pos += len;
	}
	if (ipv6_is_ext(nexthdr))
		return FARMLB_PARSE_INVALID;

	nh->pos = pos;
	return nexthdr;
}

#endif /* FARMLB_PARSE_H */
