// The bucket hash must equal the kernel's jhash + reciprocal_scale bit for bit: nftables
// and the XDP program compute it in the kernel, the daemon computes it here, and a single
// differing bit would send a flow to two nodes or to none.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { bucketOf, jhash, reciprocalScale } from '../../src/balance/hash.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));

// Computed with test/fixtures/jhash_ref.c (the kernel's jhash.h compiled by gcc).
const KNOWN_ANSWERS: { seed: number; key: string; hash: number; bucket: number }[] = [
  { seed: 0, key: '', hash: 0xdeadbeef, bucket: 222 },
  { seed: 0, key: '0a000001', hash: 0x2fa5f781, bucket: 47 },
  { seed: 0x12345678, key: '0a000001', hash: 0x3eebb340, bucket: 62 },
  { seed: 0xdeadbeef, key: '00112233445566778899aabbccddeeff', hash: 0x269e58a4, bucket: 38 },
];

describe('jhash', () => {
  test.each(KNOWN_ANSWERS)('hashes $key with seed $seed to the kernel value', ({ seed, key, hash, bucket }) => {
    expect(jhash(hex(key), seed)).toBe(hash);
    expect(bucketOf(hex(key), seed)).toBe(bucket);
  });

  test('returns an unsigned 32-bit value', () => {
    for (let i = 0; i < 256; i++) {
      const h = jhash(Uint8Array.of(i, 255 - i, i ^ 0x5a), 0xffffffff - i);
      expect(Number.isInteger(h) && h >= 0 && h <= 0xffffffff).toBe(true);
    }
  });

  test('reciprocal_scale by 256 is the top byte of the hash', () => {
    for (const h of [0, 1, 0x00ffffff, 0x01000000, 0x7fffffff, 0x80000000, 0xfeffffff, 0xffffffff]) {
      expect(reciprocalScale(h, 256)).toBe(h >>> 24);
    }
  });
});

// The strong check: the same random keys through gcc-compiled kernel code and through TS.
const haveGcc = (() => {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!haveGcc)('jhash against the kernel code compiled with gcc', () => {
  const dir = mkdtempSync(join(tmpdir(), 'farmlb-jhash-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function referenceHashes(cases: { seed: number; key: Uint8Array }[]): { hash: number; bucket: number }[] {
    const source = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/jhash_ref.c');
    const binary = join(dir, 'jhash_ref');
    execFileSync('gcc', ['-O2', '-o', binary, source], { stdio: 'pipe' });
    const input = cases
      .map((c) => `${c.seed.toString(16)} ${c.key.length ? Buffer.from(c.key).toString('hex') : '-'}`)
      .join('\n');
    const out = execFileSync(binary, { input: `${input}\n`, encoding: 'utf8', maxBuffer: 16 << 20 });
    return out
      .trim()
      .split('\n')
      .map((line) => {
        const [h, b] = line.split(' ');
        return { hash: parseInt(h!, 16), bucket: Number(b) };
      });
  }

  // A fixed-seed generator so a failure reproduces.
  function xorshift32(state: number): () => number {
    let s = state >>> 0 || 1;
    return () => {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      return s;
    };
  }

  test('agrees on 2,000 random keys each of length 2, 4 and 16 with random seeds, and on every length 0..40', () => {
    const rnd = xorshift32(0x5eed1234);
    const cases: { seed: number; key: Uint8Array }[] = [];
    for (const len of [2, 4, 16]) {
      for (let i = 0; i < 2000; i++) {
        cases.push({ seed: i % 10 === 0 ? 0 : rnd(), key: Uint8Array.from({ length: len }, () => rnd() & 0xff) });
      }
    }
    // Lengths around the 12-byte block boundary exercise the mixing loop and every tail case.
    for (let len = 0; len <= 40; len++) {
      for (let i = 0; i < 20; i++) cases.push({ seed: rnd(), key: Uint8Array.from({ length: len }, () => rnd() & 0xff) });
    }
    const expected = referenceHashes(cases);
    expect(expected).toHaveLength(cases.length);
    const mismatches = cases
      .map((c, i) => ({ c, ts: jhash(c.key, c.seed), tsBucket: bucketOf(c.key, c.seed), ref: expected[i]! }))
      .filter((m) => m.ts !== m.ref.hash || m.tsBucket !== m.ref.bucket)
      .slice(0, 5)
      .map((m) => `seed ${m.c.seed.toString(16)} key ${Buffer.from(m.c.key).toString('hex')}: ts ${m.ts.toString(16)}/${m.tsBucket} c ${m.ref.hash.toString(16)}/${m.ref.bucket}`);
    expect(mismatches).toEqual([]);
  });
});
