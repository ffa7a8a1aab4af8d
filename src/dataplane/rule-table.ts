// Which rule decides a TCP/UDP packet to a VIP: the semantic precedence of
// docs/datapath.md §4, and its expansion into the resolved table the XDP program reads.
//
// The semantics are stated once, in winningRule(): (vip, port) > (vip, *) > (*, port) >
// (*, *), the first applicable rule wins, and an on_ipid rule does not apply to an IPv6
// VIP (IPv6 has no identification field). The TS model decides packets with it directly;
// resolveRules() precomputes its answer for every (VIP, protocol, port) a rule names, plus
// one "any other port" entry per VIP and protocol, so that the program needs at most two
// hash lookups — (addr, proto, dport), then (addr, proto, *) — where walking the four keys
// took up to four (each ~30 ns on the reference VM). Pure: data in, data out.

import type { VmacMode } from '../config/types.js';
import { CriterionId, PORT_ANY, VIP_ANY, type CompiledRule, type CompiledVip } from './types.js';

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

/** One entry of the resolved table (farmlb_rules): the rule for packets to a VIP on a port. */
export interface ResolvedRule {
  vipId: number;
  family: 4 | 6;
  /** 16 bytes, network order; IPv4 in the first 4, the rest zero (the key's address). */
  addrBytes: Uint8Array;
  proto: Proto;
  /** Destination port (host order); PORT_ANY = every port without its own entry. */
  port: number;
  group: number;
  criterion: CriterionId;
  /** The VIP's mode, so the program knows whether to forward without a farmlb_vips lookup. */
  mode: VmacMode;
}

/**
 * The resolved table for `vips` and `rules`: for every VIP v and protocol p, an entry
 * (v, p, P) for each port P named by a rule (v, P) or (*, P), holding winningRule(v, P),
 * and an entry (v, p, *) holding winningRule(v, *). No winner, no entry. Ports named only
 * by other VIPs' rules get no entry of v: for them the (v, p, *) entry is the answer, which
 * is also what the four-key walk gives. Deterministic order: VIPs as given, TCP before UDP,
 * ports ascending, the "any port" entry last.
 */
export function resolveRules(vips: readonly CompiledVip[], rules: readonly CompiledRule[]): ResolvedRule[] {
  const lookup = ruleLookup(rules);
  const out: ResolvedRule[] = [];
  for (const vip of vips) {
    for (const proto of PROTOS) {
      const ports = new Set<number>();
      for (const r of rules)
        if (r.proto === proto && r.port !== PORT_ANY && (r.vipId === vip.id || r.vipId === VIP_ANY)) ports.add(r.port);
      for (const port of [...[...ports].sort((a, b) => a - b), PORT_ANY]) {
        const rule = winningRule(lookup, proto, vip.id, vip.family, port);
        if (!rule) continue;
        out.push({
          vipId: vip.id,
          family: vip.family,
          addrBytes: vip.addrBytes,
          proto,
          port,
          group: rule.group,
          criterion: rule.criterion,
          mode: vip.mode,
        });
      }
    }
  }
  return out;
}

/** The resolved table addressed as the program addresses it: by (family, address, proto, port). */
export type ResolvedLookup = (family: 4 | 6, addrBytes: Uint8Array, proto: Proto, port: number) => ResolvedRule | undefined;

export function resolvedLookup(entries: readonly ResolvedRule[]): ResolvedLookup {
  const key = (family: number, addr: Uint8Array, proto: number, port: number): string =>
    `${family}/${Buffer.from(addr.subarray(0, 16)).toString('hex')}/${proto}/${port}`;
  const byKey = new Map<string, ResolvedRule>();
  for (const e of entries) byKey.set(key(e.family, e.addrBytes, e.proto, e.port), e);
  return (family, addr, proto, port) => byKey.get(key(family, addr, proto, port));
}

/** The program's two lookups: the destination port's entry, else the VIP's "any port" entry. */
export function lookupTwice(
  lookup: ResolvedLookup,
  family: 4 | 6,
  addrBytes: Uint8Array,
  proto: Proto,
  dport: number,
): ResolvedRule | undefined {
  return lookup(family, addrBytes, proto, dport) ?? lookup(family, addrBytes, proto, PORT_ANY);
}
