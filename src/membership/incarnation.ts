// This node's incarnation (docs/membership.md, "Replay protection"): a counter kept in the
// run directory, +1 at every start, so it never depends on the wall clock (a clock stepped
// back by NTP used to make a restarted node look older than its previous run to its peers).
// Peers accept a new incarnation only once it acknowledges theirs, so the value needs to be
// new, not greater; it still grows, for peers of releases that required a greater one. The
// first start (no counter yet) takes the wall clock in ns, above any incarnation those
// releases sent.

import { open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { ensurePrivateDir } from '../paths.js';
import { MAX_INCARNATION } from './bounds.js';

export function incarnationFile(runDir: string): string {
  return path.join(runDir, 'incarnation');
}

/** The counter's next value, persisted (written and synced, then renamed) before it is returned. */
export async function nextIncarnation(runDir: string, wallNs: () => bigint = () => BigInt(Date.now()) * 1_000_000n): Promise<bigint> {
  const file = incarnationFile(runDir);
  let next: bigint;
  try {
    const text = (await readFile(file, 'utf8')).trim();
    // Input like any other: a tampered or torn file starts a new count from the clock.
    next = /^[0-9]{1,20}$/.test(text) && BigInt(text) < MAX_INCARNATION ? BigInt(text) + 1n : wallNs();
  } catch {
    next = wallNs();
  }
  await ensurePrivateDir(runDir, 'run directory');
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(`${next}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  return next;
}
