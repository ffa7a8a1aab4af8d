/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * farmlb_mac.h — compare and copy 6-byte MAC addresses, shaped by the verifier's rules on
 * aligned access. Used by both programs of farmlb.bpf.o (farmlb.bpf.c, farmlb_egress.bpf.c).
 */
#ifndef FARMLB_MAC_H
#define FARMLB_MAC_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/* Byte-wise: MACs sit at odd offsets in keys and frames, and the verifier refuses
 * misaligned stack access. */
static __always_inline int mac_equal(const __u8 *a, const __u8 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) | (a[5] ^ b[5])) == 0;
}

/* The same for a frame's MAC against one in a map value: neither is on the stack, and the
 * verifier lets packet and map-value loads be unaligned where the CPU allows it (x86-64,
 * arm64), so two loads per side replace six (every owned frame makes this check). */
static __always_inline int mac_equal_words(const __u8 *pkt, const __u8 *val)
{
	return ((*(const __u32 *)pkt ^ *(const __u32 *)val) | (*(const __u16 *)(pkt + 4) ^ *(const __u16 *)(val + 4))) == 0;
}

static __always_inline void mac_copy(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, 6);
}

#endif /* FARMLB_MAC_H */
