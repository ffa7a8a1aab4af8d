// Which rule decides a TCP/UDP packet to a VIP: the semantic precedence of
// docs/datapath.md §4, stated once, in winningRule(): (vip, port) > (vip, *) > (*, port) >
// (*, *), the first applicable rule wins, and an on_ipid rule does not apply to an IPv6 VIP
// (IPv6 has no identification field). The model and `farmlb explain` decide with it
// directly; src/dataplane/rule-table.ts precomputes its answers for the XDP program. Pure.

import { CriterionId, PORT_ANY, VIP_ANY, type CompiledRule } from './tables.js';

export type Proto = CompiledRule['proto'];
export const PROTOS: readonly Proto[] = [6, 17];

/** A rule table as the semantics address it: by (proto, port or PORT_ANY, VIP id or VIP_ANY). */
export type RuleLookup = (proto: Proto, port: number, vipId: number) => CompiledRule | undefined;

/** A RuleLookup over a list of rules (as DataplaneTables.rules holds them). */
export function ruleLookup(rules: readonly CompiledRule[]): RuleLookup {
  const byKey = new Map<string, CompiledRule>();
  for (const rule of rules) byKey.set(`${rule.proto}/${rule.port}/${rule.vipId}`, rule);
  return (proto, port, vipId) => byKey.get(`${proto}/${port}/${vipId}`);
}

/**
 * docs/datapath.md §4: the rule deciding a `proto` packet to VIP `vipId` (of `family`) on
 * destination port `dport`, or undefined when none applies (DROP_NO_RULE). dport PORT_ANY
 * asks for the rule of a port no rule names, i.e. the winner of (vip, *) > (*, *).
 */
export function winningRule(
  lookup: RuleLookup,
  proto: Proto,
  vipId: number,
  family: 4 | 6,
  dport: number,
): CompiledRule | undefined {
  const keys: readonly (readonly [number, number])[] = [
    [dport, vipId],
    [PORT_ANY, vipId],
    [dport, VIP_ANY],
    [PORT_ANY, VIP_ANY],
  ];
  for (const [port, vip] of keys) {
    const hit = lookup(proto, port, vip);
    // on_ipid has no field in IPv6: such a rule does not apply, keep looking.
    if (hit && !(family === 6 && hit.criterion === CriterionId.Ipid)) return hit;
  }
  return undefined;
}
