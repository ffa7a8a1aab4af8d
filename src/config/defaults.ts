// Defaults and limits of the configuration. The limits mirror bpf/farmlb_abi.h (the map
// sizes); test/unit/config.test.ts checks they agree with the header.

import type { FarmlbSettings, FarmTopology } from './types.js';

export const LIMITS = {
  /** FARMLB_MAX_GROUPS */
  groups: 16,
  /** FARMLB_MAX_VIPS */
  vips: 64,
  /** FARMLB_MAX_RULES */
  rules: 256,
  /** FARMLB_MAX_NODES */
  nodes: 64,
  /** Upper bound of <host power=>: powers are relative, this only keeps sums exact. */
  power: 1_000_000,
} as const;

/** FARMLB_DEFAULT_HASH_SEED: "farm" in ASCII. */
export const DEFAULT_HASH_SEED = 0x6661726d;

export const DEFAULT_MODULE = 'farm';

/** <farmlb> defaults; keyFile depends on the module name. */
export function defaultFarmlbSettings(module: string = DEFAULT_MODULE): FarmlbSettings {
  return {
    module,
    hashSeed: DEFAULT_HASH_SEED,
    keyFile: `/etc/farmlb/${module}.key`,
    membershipPort: 4800,
    // SafeKit's web service port: cloud load balancers already probe
    // /var/modules/<module>/ready.txt there (seed 001 §13.6.3).
    healthPort: 9010,
    splitBrain: 'serve',
    handoverLimitMs: 30_000,
  };
}

/** SafeKit farm heartbeat defaults (DESIGN.md, "Membership"). */
export function defaultFarmTopology(): FarmTopology {
  return { pulseMs: 100, mlostCount: 20, slostCount: 10, lans: [], lanRefs: [] };
}

/** <interface> defaults, seed 001 §13.6.5. */
export const INTERFACE_DEFAULTS = {
  check: true,
  arpreroute: false,
  arpintervalMs: 60_000,
  arpelapseMs: 1_200_000,
  /** SafeKit writes no default; farmlb picks the mode that needs no ARP rule (docs/config.md). */
  type: 'vmac_invisible',
} as const;
