// Bounds on the values a peer (or a persisted record) hands the engine (docs/security.md,
// "Values from peers"). An authenticated heartbeat proves only that its sender holds the
// key: its numbers are still input. Each bound is far above anything a farm reaches and
// leaves room for the arithmetic done on it (epoch + 1, version + 1 stay safe integers).

import type { GroupPowers, Heartbeat, PowerOverrides } from './types.js';

/** Largest epoch accepted: 2^48, a table a millisecond for 8,900 years, far below 2^53. */
export const MAX_EPOCH = 2 ** 48;
/** Largest power-overrides version accepted (same reasoning). */
export const MAX_POWERS_VERSION = 2 ** 48;
/** Largest power (checkPowerChange's bound for `farmlb power`). */
export const MAX_POWER = 1_000_000;
/** Incarnations are 64-bit on every release's wire. */
export const MAX_INCARNATION = 2n ** 64n - 1n;

/**
 * What is wrong with power overrides for this configuration, or undefined when they are
 * valid: a version and origin in range, and entries naming nodes of cluster.xml and groups
 * of the farm (or none), with powers from 0 to MAX_POWER, each (node, group) once.
 */
export function overridesProblem(o: PowerOverrides, nodes: readonly string[], groups: readonly GroupPowers[]): string | undefined {
  if (!Number.isSafeInteger(o.version) || o.version < 0 || o.version > MAX_POWERS_VERSION) return 'powers version out of range';
  if (typeof o.origin !== 'string' || (o.origin !== '' && !nodes.includes(o.origin))) return 'powers origin is not a node of cluster.xml';
  if (!Array.isArray(o.entries) || o.entries.length > nodes.length * (groups.length + 1)) return 'too many power entries';
  const seen = new Set<string>();
  for (const e of o.entries) {
    if (typeof e !== 'object' || e === null) return 'a power entry is not an object';
    if (!nodes.includes(e.node)) return 'a power entry names a node outside cluster.xml';
    if (e.group !== null && !groups.some((g) => g.name === e.group)) return 'a power entry names an unknown group';
    if (!Number.isSafeInteger(e.power) || e.power < 0 || e.power > MAX_POWER) return `a power is not an integer from 0 to ${MAX_POWER}`;
    const key = `${e.node}\u0000${e.group ?? ''}`;
    if (seen.has(key)) return 'a power entry twice';
    seen.add(key);
  }
  return undefined;
}

/**
 * What is out of range in an authenticated heartbeat, or undefined. (The codec has checked
 * types and list lengths; this checks magnitudes. A table of another shape is not refused
 * here: a peer whose configuration differs is still heard, and its table ignored.)
 */
export function heartbeatProblem(hb: Heartbeat): string | undefined {
  if (hb.epoch > MAX_EPOCH) return 'epoch out of range';
  if (hb.incarnation > MAX_INCARNATION) return 'incarnation out of range';
  if (hb.powers.version > MAX_POWERS_VERSION) return 'powers version out of range';
  for (const h of hb.heard) if (h.epoch > MAX_EPOCH) return 'heard epoch out of range';
  if (hb.holdings !== undefined && hb.holdings.epoch > MAX_EPOCH) return 'holdings epoch out of range';
  return undefined;
}
