// Which configuration changes a running farm with the membership takes by a reload
// (docs/operations.md, "Changing the configuration"): the nodes switch to the new
// configuration one after the other within about a pulse of each other, once every node has
// it. During that moment some nodes run the old rules and some the new ones, so a change is
// live only when no packet is accepted by two nodes meanwhile: powers (they only steer the
// leader's next table, and buckets then move through the handover as with `farmlb power`),
// and rules that serve new traffic or stop serving some (traffic with a rule on one side and
// none on the other is taken by at most one node). A change that puts traffic already served
// under another group or criterion — it would change buckets — and anything else (VIPs,
// interfaces, timing, ports, the hash seed, nodes, groups) is a rolling restart.

import { effectiveConfig } from './digest.js';
import type { ClusterConfig, FarmConfig, Rule, RuleProto } from './types.js';

/** What makes `next` need a restart rather than a live switch from `current`; undefined when it can be switched to live. */
export function liveChangeProblem(current: FarmConfig, next: FarmConfig, cluster: ClusterConfig): string | undefined {
  const shape = (farm: FarmConfig): string => {
    const e = effectiveConfig(farm, cluster) as { groups: { name: string; index: number; hosts: { name: string }[] | null }[] };
    // Powers and rules are compared below; the rest must be equal.
    return JSON.stringify({ ...e, groups: e.groups.map((g) => ({ name: g.name, index: g.index, hosts: g.hosts?.map((h) => h.name) ?? null })) });
  };
  if (shape(current) !== shape(next)) {
    return 'only powers and rules change live (VIPs, interfaces, groups, hosts, timing, ports, the hash seed and other settings need a rolling restart)';
  }
  const ports = new Set<number | '*'>(['*']);
  for (const farm of [current, next]) for (const g of farm.groups) for (const r of g.rules) ports.add(r.port);
  for (const vip of current.vips) {
    for (const proto of ['tcp', 'udp', 'arp'] as RuleProto[]) {
      for (const port of proto === 'arp' ? ['*' as const] : ports) {
        const before = winning(current, vip.addr, port, proto);
        const after = winning(next, vip.addr, port, proto);
        if (before && after && (before.group !== after.group || before.rule.filter !== after.rule.filter)) {
          const what = proto === 'arp' ? `ARP for ${vip.addr}` : `${proto} to ${vip.addr}:${port === '*' ? 'other ports' : port}`;
          return `${what} moves from group ${before.group} (${before.rule.filter}) to ${after.group} (${after.rule.filter}): its connections would change buckets; change it by a rolling restart`;
        }
      }
    }
  }
  return undefined;
}

/** The rule the data path applies to (vip, port, proto): an exact VIP beats '*', then an exact port beats '*' (DESIGN.md). */
function winning(farm: FarmConfig, vip: string, port: number | '*', proto: RuleProto): { group: string; rule: Rule } | undefined {
  let best: { group: string; rule: Rule; score: number } | undefined;
  for (const g of farm.groups) {
    for (const r of g.rules) {
      if (r.proto !== proto || (r.vip !== '*' && r.vip !== vip) || (r.port !== '*' && r.port !== port)) continue;
      const score = (r.vip === '*' ? 0 : 2) + (r.port === '*' ? 0 : 1);
      if (!best || score > best.score) best = { group: g.name, rule: r, score };
    }
  }
  return best && { group: best.group, rule: best.rule };
}
