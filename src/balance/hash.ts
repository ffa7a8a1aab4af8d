// The bucket hash: the kernel's jhash() (include/linux/jhash.h, Bob Jenkins' lookup3)
// reduced with reciprocal_scale(h, 256). nftables computes exactly this for
// `jhash <field> mod 256 seed S` (net/netfilter/nft_hash.c), and so does the XDP program
// (bpf/farmlb_hash.h). The kernel reads 32-bit words with __get_unaligned_cpu32, i.e.
// little-endian on x86 and arm64; farmlb follows that order on every host so all nodes of a
// farm agree.

const JHASH_INITVAL = 0xdeadbeef;

function rol32(x: number, r: number): number {
  return ((x << r) | (x >>> (32 - r))) >>> 0;
}

/** jhash(key, key.length, initval) as the kernel computes it on a little-endian host. */
export function jhash(key: Uint8Array, initval: number): number {
  let length = key.length;
  let a = (JHASH_INITVAL + length + (initval >>> 0)) >>> 0;
  let b = a;
  let c = a;
  let k = 0;
  const word = (i: number): number =>
    (key[i]! | (key[i + 1]! << 8) | (key[i + 2]! << 16) | (key[i + 3]! << 24)) >>> 0;

  while (length > 12) {
    a = (a + word(k)) >>> 0;
    b = (b + word(k + 4)) >>> 0;
    c = (c + word(k + 8)) >>> 0;
    // __jhash_mix
    a = (a - c) >>> 0; a = (a ^ rol32(c, 4)) >>> 0; c = (c + b) >>> 0;
    b = (b - a) >>> 0; b = (b ^ rol32(a, 6)) >>> 0; a = (a + c) >>> 0;
    c = (c - b) >>> 0; c = (c ^ rol32(b, 8)) >>> 0; b = (b + a) >>> 0;
    a = (a - c) >>> 0; a = (a ^ rol32(c, 16)) >>> 0; c = (c + b) >>> 0;
    b = (b - a) >>> 0; b = (b ^ rol32(a, 19)) >>> 0; a = (a + c) >>> 0;
    c = (c - b) >>> 0; c = (c ^ rol32(b, 4)) >>> 0; b = (b + a) >>> 0;
    length -= 12;
    k += 12;
  }
  if (length === 0) return c;
  // The tail: bytes k..k+length-1 go into c (8..11), b (4..7), a (0..3), low byte first.
  const tail = (i: number): number => (i < length ? key[k + i]! : 0);
  a = (a + (tail(0) | (tail(1) << 8) | (tail(2) << 16) | (tail(3) << 24))) >>> 0;
  b = (b + (tail(4) | (tail(5) << 8) | (tail(6) << 16) | (tail(7) << 24))) >>> 0;
  c = (c + (tail(8) | (tail(9) << 8) | (tail(10) << 16) | (tail(11) << 24))) >>> 0;
  // __jhash_final
  c = (c ^ b) >>> 0; c = (c - rol32(b, 14)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rol32(c, 11)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rol32(a, 25)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rol32(b, 16)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rol32(c, 4)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rol32(a, 14)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rol32(b, 24)) >>> 0;
  return c;
}

/** reciprocal_scale(val, 256): the high byte of the 32-bit hash. */
export function reciprocalScale(val: number, range: number): number {
  return Number((BigInt(val >>> 0) * BigInt(range)) >> 32n);
}

/** The bucket (0..255) of a criterion's bytes (wire order) under a farm's seed. */
export function bucketOf(bytes: Uint8Array, seed: number): number {
  return jhash(bytes, seed) >>> 24;
}
