/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * farmlb_nd.h — wire formats of ARP (RFC 826, Ethernet/IPv4 only) and of the neighbour
 * discovery messages farmlb answers or fixes (RFC 4861), plus the ICMPv6 checksum of the
 * advertisement it builds. Layouts only; no verdicts here.
 */
#ifndef FARMLB_ND_H
#define FARMLB_ND_H

#include <linux/types.h>

#define FARMLB_ARP_HTYPE_ETHER 1
#define FARMLB_ARP_OP_REQUEST 1
#define FARMLB_ARP_OP_REPLY 2
#ifndef ETH_P_ARP
#define ETH_P_ARP 0x0806
#endif

/* The only ARP farmlb reads: hardware Ethernet (6 bytes), protocol IPv4 (4 bytes). */
struct farmlb_arp {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[6]; /* sender hardware address */
	__u8 spa[4]; /* sender protocol address */
	__u8 tha[6]; /* target hardware address */
	__u8 tpa[4]; /* target protocol address */
} __attribute__((packed));

/* RFC 4861 §7.1: a node accepts neighbour discovery only with hop limit 255, which proves
 * the sender is on the link. */
#define FARMLB_ND_HOP_LIMIT 255
#define FARMLB_ND_OPT_SLLA 1 /* source link-layer address (in a solicitation) */
#define FARMLB_ND_OPT_TLLA 2 /* target link-layer address (in an advertisement) */
/* Flags of an advertisement, first byte after the checksum: Router 0x80, Solicited 0x40,
 * Override 0x20. farmlb answers with Solicited + Override: the requester replaces what it
 * had cached and marks the entry REACHABLE. */
#define FARMLB_NA_FLAGS_SO 0x60

/* ICMPv6 types of neighbour discovery (RFC 4861 §4). Defined here because no uapi header
 * has them: the kernel's names (NDISC_NEIGHBOUR_SOLICITATION, …) are in include/net/ndisc.h,
 * kernel-internal; <linux/icmpv6.h> has the error and echo types only, and is included for
 * those (farmlb.bpf.c). */
#define FARMLB_ND_ROUTER_SOLICIT 133   /* the first ND type */
#define FARMLB_ND_NEIGHBOUR_SOLICIT 135
#define FARMLB_ND_NEIGHBOUR_ADVERT 136
#define FARMLB_ND_REDIRECT 137         /* the last ND type */

/* Neighbour solicitation and advertisement share this layout (24 bytes); options follow. */
struct farmlb_nd_msg {
	__u8 type;
	__u8 code;
	__be16 checksum;
	__u8 flags[4]; /* NS: reserved; NA: R/S/O flags in flags[0] */
	__u8 target[16];
};

/* A link-layer address option on Ethernet: type, length in units of 8 bytes (1), MAC. */
struct farmlb_nd_opt_lladdr {
	__u8 type;
	__u8 len;
	__u8 mac[6];
};

/* The advertisement farmlb sends: message and its target link-layer address option. */
struct farmlb_na {
	struct farmlb_nd_msg msg;
	struct farmlb_nd_opt_lladdr opt;
};
#define FARMLB_NA_LEN 32

/* What the ICMPv6 checksum covers (RFC 4443 §2.3, RFC 8200 §8.1): the pseudo-header, then
 * the advertisement. Summed from the stack so the packet is written once, checksum included. */
struct farmlb_na_csum {
	__u8 saddr[16];
	__u8 daddr[16];
	__be32 len;
	__u8 zero[3];
	__u8 nexthdr;
	struct farmlb_na na;
};
#define FARMLB_NA_CSUM_WORDS (sizeof(struct farmlb_na_csum) / 2)

/* RFC 1071 over the buffer, in 16-bit words loaded in host order: the one's-complement sum
 * does not depend on byte order, so storing the result back in host order gives the
 * network-order checksum. */
static __always_inline __u16 farmlb_na_checksum(const struct farmlb_na_csum *buf)
{
	const __u16 *w = (const __u16 *)buf;
	__u32 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < (int)FARMLB_NA_CSUM_WORDS; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

_Static_assert(sizeof(struct farmlb_arp) == 28, "farmlb_arp layout");
_Static_assert(sizeof(struct farmlb_nd_msg) == 24, "farmlb_nd_msg layout");
_Static_assert(sizeof(struct farmlb_na) == FARMLB_NA_LEN, "farmlb_na layout");
_Static_assert(sizeof(struct farmlb_na_csum) == 72, "farmlb_na_csum layout");

#endif /* FARMLB_ND_H */
