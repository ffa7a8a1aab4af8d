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
    membership: 'builtin',
  };
}

/**
 * farmlb's heartbeat defaults. SafeKit's (100 ms pulse, a follower lost after 10, a leader
 * after 20: 1–2 s) are slower than farmlb aims for; these give a p50 failover under 300 ms
 * and, with the indirect evidence of the other nodes' `heard` reports, no false failover
 * under 20% loss (docs/membership.md, "Timing"). A SafeKit file that sets the attributes
 * keeps its own values.
 */
export function defaultFarmTopology(): FarmTopology {
  return { pulseMs: 50, mlostCount: 7, slostCount: 5, lans: [], lanRefs: [] };
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
