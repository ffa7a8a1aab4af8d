import { describe, expect, it } from 'vitest';
import { leaseWriteNeeded } from '../../src/daemon/lease-write.js';

const MS = 1_000_000n;
const now = 1_000n * MS;
const step = 25n * MS;

describe('lease writes', () => {
  it('writes every change when the source sets no step (static mode)', () => {
    expect(leaseWriteNeeded(now + 201n * MS, now + 200n * MS, now)).toBe(true);
    expect(leaseWriteNeeded(now + 200n * MS, now + 200n * MS, now)).toBe(false);
  });

  it('always writes a revocation, a shorter deadline and the first lease after a revocation', () => {
    expect(leaseWriteNeeded(0n, now + 200n * MS, now, step)).toBe(true);
    expect(leaseWriteNeeded(now + 100n * MS, now + 200n * MS, now, step)).toBe(true);
    expect(leaseWriteNeeded(now + 200n * MS, 0n, now, step)).toBe(true);
  });

  it('skips renewals that extend the written lease by less than a step, writes the one that reaches it', () => {
    const written = now + 180n * MS;
    expect(leaseWriteNeeded(now + 190n * MS, written, now, step)).toBe(false);
    expect(leaseWriteNeeded(now + 204n * MS, written, now, step)).toBe(false);
    expect(leaseWriteNeeded(now + 205n * MS, written, now, step)).toBe(true);
  });

  it('writes any renewal once the written lease would run out within a step', () => {
    expect(leaseWriteNeeded(now + 30n * MS, now + 20n * MS, now, step)).toBe(true);
  });

  it('keeps the kernel lease within one step of the engine lease over a stream of small renewals, never ahead of it', () => {
    let written = 0n;
    let t = now;
    for (let i = 0; i < 1_000; i++) {
      t += 3n * MS; // an acknowledgement every 3 ms, each renewing to t + 200 ms
      const engine = t + 200n * MS;
      if (leaseWriteNeeded(engine, written, t, step)) written = engine;
      expect(written <= engine).toBe(true);
      expect(engine - written < step).toBe(true);
    }
  });
});
