// The config digest every heartbeat carries (DESIGN.md, "Bucket assignment"): nodes whose
// digests differ stay in WAIT. It covers what decides which node serves which packet and how
// the farm talks, and leaves out what may differ per node without changing that: source
// positions, warnings, file paths, the Linux interface name (eth0 on one node, ens3 on
// another), the heartbeat key file path and the local health port.

import { createHash } from 'node:crypto';
import type { ClusterConfig, FarmConfig } from './types.js';

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The effective configuration the digest is computed over (exported for `farmlb validate --json` and tests). */
export function effectiveConfig(farm: FarmConfig, cluster?: ClusterConfig): unknown {
  return {
    version: 1,
    tcpreset: farm.tcpreset,
    scriptcontrol: farm.scriptcontrol,
    interfaces: farm.interfaces.map((i) => ({
      check: i.check, arpreroute: i.arpreroute, arpintervalMs: i.arpintervalMs, arpelapseMs: i.arpelapseMs,
      type: i.type, vmac: i.vmac,
      addrs: i.addrs.map((a) => ({ id: a.id, addr: a.addr, family: a.family, where: a.where, check: a.check, connections: a.connections, prefixLen: a.prefixLen })),
    })),
    groups: farm.groups.map((g) => ({
      name: g.name,
      index: g.index,
      hosts: g.hosts?.map((h) => ({ name: h.name, power: h.power })) ?? null,
      rules: g.rules.map((r) => ({ vip: r.vip, port: r.port, proto: r.proto, filter: r.filter })),
    })),
    farmlb: {
      module: farm.farmlb.module,
      hashSeed: farm.farmlb.hashSeed,
      membershipPort: farm.farmlb.membershipPort,
      splitBrain: farm.farmlb.splitBrain,
      handoverLimitMs: farm.farmlb.handoverLimitMs,
      // Only when not the default, so the digests of existing configurations do not change.
      ...(farm.farmlb.membership === 'corosync' ? { membership: farm.farmlb.membership } : {}),
    },
    farm: farm.farm ? {
      pulseMs: farm.farm.pulseMs, mlostCount: farm.farm.mlostCount, slostCount: farm.farm.slostCount, lans: farm.farm.lans,
    } : null,
    cluster: cluster ? {
      lans: cluster.lans.map((l) => ({ name: l.name, nodes: l.nodes.map((n) => ({ name: n.name, addr: n.addr })) })),
      nodes: cluster.nodes,
    } : null,
  };
}

/** sha256 (hex) of the canonical JSON of the effective configuration. */
export function configDigest(farm: FarmConfig, cluster?: ClusterConfig): string {
  return createHash('sha256').update(canonicalJson(effectiveConfig(farm, cluster))).digest('hex');
}
