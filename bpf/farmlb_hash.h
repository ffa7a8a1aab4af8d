/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * farmlb_hash.h — the bucket hash: the kernel's jhash() (include/linux/jhash.h, Bob
 * Jenkins' lookup3) and reciprocal_scale(h, 256). Must equal src/balance/hash.ts and
 * nftables' `jhash <field> mod 256 seed S` bit for bit: 32-bit words are assembled
 * little-endian from bytes, as __get_unaligned_cpu32 reads them on x86 and arm64, so the
 * result does not depend on the host's byte order.
 */
#ifndef FARMLB_HASH_H
#define FARMLB_HASH_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "farmlb_abi.h"

#define FARMLB_JHASH_INITVAL 0xdeadbeefU
/* Longest criterion: an IPv6 source address. The hash is written for keys of at most
 * one 12-byte round plus a tail, which keeps it loop-free for the verifier. */
#define FARMLB_JHASH_MAX_LEN 16

static __always_inline __u32 farmlb_rol32(__u32 word, unsigned int shift)
{
	return (word << shift) | (word >> ((-shift) & 31));
}

#define farmlb_jhash_mix(a, b, c)                                                        \
	{                                                                                \
		a -= c; a ^= farmlb_rol32(c, 4);  c += b;                               \
		b -= a; b ^= farmlb_rol32(a, 6);  a += c;                               \
		c -= b; c ^= farmlb_rol32(b, 8);  b += a;                               \
		a -= c; a ^= farmlb_rol32(c, 16); c += b;                               \
		b -= a; b ^= farmlb_rol32(a, 19); a += c;                               \
		c -= b; c ^= farmlb_rol32(b, 4);  b += a;                               \
	}

#define farmlb_jhash_final(a, b, c)                                                      \
	{                                                                                \
		c ^= b; c -= farmlb_rol32(b, 14);                                        \
		a ^= c; a -= farmlb_rol32(c, 11);                                        \
		b ^= a; b -= farmlb_rol32(a, 25);                                        \
		c ^= b; c -= farmlb_rol32(b, 16);                                        \
		a ^= c; a -= farmlb_rol32(c, 4);                                         \
		b ^= a; b -= farmlb_rol32(a, 14);                                        \
		c ^= b; c -= farmlb_rol32(b, 24);                                        \
	}

/* The same two steps in BPF's 32-bit ALU instructions. clang 14 targets BPF v1 here, which has
 * none (-mcpu=v3 would give them, but the verifier then runs out of states on this program):
 * it keeps a, b, c in 64-bit registers and masks before every right shift, so a rotate costs
 * seven instructions where four do, and the hash is on every VIP packet's path. The asm
 * pins a, b, c to r1, r2, r3 (w1..w3 are their low halves; r4, r5 are scratch) and is
 * otherwise the macros above, step for step: test/bpf/differential.test.ts compares every
 * bucket with src/balance/hash.ts. */
#define FARMLB_ASM_ROL_TO_W4(y, k, rk) "w4 = w" #y "\n\tw4 <<= " #k "\n\tw5 = w" #y "\n\tw5 >>= " #rk "\n\tw4 |= w5\n\t"
/* x ^= y; x -= rol32(y, k)   (rk = 32 - k) */
#define FARMLB_ASM_FINAL_STEP(x, y, k, rk) "w" #x " ^= w" #y "\n\t" FARMLB_ASM_ROL_TO_W4(y, k, rk) "w" #x " -= w4\n\t"
/* x -= z; x ^= rol32(z, k); z += y */
#define FARMLB_ASM_MIX_STEP(x, z, y, k, rk) \
	"w" #x " -= w" #z "\n\t" FARMLB_ASM_ROL_TO_W4(z, k, rk) "w" #x " ^= w4\n\tw" #z " += w" #y "\n\t"

static __always_inline void farmlb_jhash_mix32(__u32 *a, __u32 *b, __u32 *c)
{
	asm(FARMLB_ASM_MIX_STEP(1, 3, 2, 4, 28)
	    FARMLB_ASM_MIX_STEP(2, 1, 3, 6, 26)
	    FARMLB_ASM_MIX_STEP(3, 2, 1, 8, 24)
	    FARMLB_ASM_MIX_STEP(1, 3, 2, 16, 16)
	    FARMLB_ASM_MIX_STEP(2, 1, 3, 19, 13)
	    FARMLB_ASM_MIX_STEP(3, 2, 1, 4, 28)
	    : "+{r1}"(*a), "+{r2}"(*b), "+{r3}"(*c)
	    :
	    : "r4", "r5");
}

static __always_inline void farmlb_jhash_final32(__u32 *a, __u32 *b, __u32 *c)
{
	asm(FARMLB_ASM_FINAL_STEP(3, 2, 14, 18)
	    FARMLB_ASM_FINAL_STEP(1, 3, 11, 21)
	    FARMLB_ASM_FINAL_STEP(2, 1, 25, 7)
	    FARMLB_ASM_FINAL_STEP(3, 2, 16, 16)
	    FARMLB_ASM_FINAL_STEP(1, 3, 4, 28)
	    FARMLB_ASM_FINAL_STEP(2, 1, 14, 18)
	    FARMLB_ASM_FINAL_STEP(3, 2, 24, 8)
	    : "+{r1}"(*a), "+{r2}"(*b), "+{r3}"(*c)
	    :
	    : "r4", "r5");
}

/* Key buffers are 4-byte aligned so that a word is one load rather than four byte loads,
 * three shifts and three ors (~3 ns per hash on the reference VM); the verifier also
 * requires stack loads to be aligned. */
#define FARMLB_JHASH_KEY_ALIGN __attribute__((aligned(4)))

/* The little-endian word at p (4-byte aligned). */
static __always_inline __u32 farmlb_le32(const __u8 *p)
{
	__u32 word = *(const __u32 *)p;

#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	word = __builtin_bswap32(word);
#endif
	return word;
}

/* jhash(key, length, initval) for 1 <= length <= FARMLB_JHASH_MAX_LEN. key is a stack
 * buffer of FARMLB_JHASH_MAX_LEN bytes, FARMLB_JHASH_KEY_ALIGN, whose bytes past length are
 * zero, so the tail can be read as whole words: the kernel's switch adds exactly those
 * bytes, and zeros add nothing. Words wholly past length are skipped rather than added as
 * zeros. Callers pass a constant length, so this folds to straight-line code. */
static __always_inline __u32 farmlb_jhash(const __u8 key[FARMLB_JHASH_MAX_LEN], __u32 length,
					  __u32 initval)
{
	__u32 a, b, c;
	const __u8 *k = key;

	a = b = c = FARMLB_JHASH_INITVAL + length + initval;
	if (length > 12) {
		a += farmlb_le32(k);
		b += farmlb_le32(k + 4);
		c += farmlb_le32(k + 8);
		farmlb_jhash_mix32(&a, &b, &c);
		length -= 12;
		k += 12;
		/* length <= 4 now: the tail is one word at most, and the buffer's last four
		 * bytes are k[0..3]. */
		a += farmlb_le32(k);
		farmlb_jhash_final32(&a, &b, &c);
		return c;
	}
	if (length == 0)
		return c;
	a += farmlb_le32(k);
	if (length > 4)
		b += farmlb_le32(k + 4);
	if (length > 8)
		c += farmlb_le32(k + 8);
	farmlb_jhash_final32(&a, &b, &c);
	return c;
}

/* reciprocal_scale(h, FARMLB_NBUCKETS): (h * 256) >> 32 is the top byte. */
static __always_inline __u32 farmlb_bucket_of(__u32 hash)
{
	return hash >> 24;
}

#endif /* FARMLB_HASH_H */
