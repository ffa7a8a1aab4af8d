// Checks that need every rule and every VIP at once: arp rules against the interface modes,
// and overlapping rules. The data path looks rules up by (proto, VIP or *, port or *), most
// specific first (DESIGN.md data path step 2, docs/datapath.md §4); two rules with the same
// key would make the winner depend on file order, so they are rejected — also across groups.

import type { Reader } from './reader.js';
import type { Group, Rule, SourceRef, VipInterface, VirtualAddr } from './types.js';

export function describeRule(rule: Rule): string {
  const parts = [`proto=${rule.proto}`, `virtual_addr=${rule.vip}`];
  if (rule.proto !== 'arp') parts.push(`port=${rule.port}`);
  return `(${parts.join(' ')})`;
}

function at(src: SourceRef) {
  return { file: src.file, line: src.line, column: src.column, element: src.element };
}

export interface RuleCheckContext {
  /** Interfaces whose type= or one of whose <virtual_addr> was rejected (already an error). */
  uncertain: ReadonlySet<VipInterface>;
}

export function checkRules(r: Reader, groups: Group[], interfaces: VipInterface[], vips: VirtualAddr[], ctx: RuleCheckContext = { uncertain: new Set() }): void {
  const interfaceOf = new Map<string, VipInterface>();
  for (const itf of interfaces) for (const a of itf.addrs) interfaceOf.set(a.addr, itf);

  const seen = new Map<string, { group: Group; rule: Rule }>();
  for (const group of groups) {
    for (const rule of group.rules) {
      if (rule.proto === 'arp') checkArpRule(r, rule, interfaces, interfaceOf, ctx);
      const key = `${rule.proto}|${rule.vip}|${rule.port}`;
      const first = seen.get(key);
      if (first) {
        r.diag.errorAt('FARMLB_E_CONFIG_RULE_OVERLAP', {
          rule: describeRule(rule), group: group.name, otherGroup: first.group.name, otherLine: first.rule.src.line,
        }, at(rule.src));
      } else {
        seen.set(key, { group, rule });
      }
    }
  }
  // Dead rules only make sense once the VIPs and rules are all known and sound.
  if (r.diag.errors.length === 0) checkDeadRules(r, groups, interfaces);
  checkArpreroute(r, groups, interfaces);
}

/**
 * An arp rule chooses which node answers ARP/ND for a VIP, which only means something in
 * vmac_directed (in vmac_invisible the VMAC answer comes from the first covering group).
 * An explicit VIP must sit on a vmac_directed interface; "*" needs at least one such
 * interface and applies to the vmac_directed VIPs only. Where an interface's type or VIPs
 * were rejected, its mode is unknown: the first error is the real one, and nothing is added.
 */
function checkArpRule(r: Reader, rule: Rule, interfaces: VipInterface[], interfaceOf: Map<string, VipInterface>, ctx: RuleCheckContext): void {
  if (rule.vip === '*') {
    if (!interfaces.some((i) => i.type === 'vmac_directed') && !interfaces.some((i) => ctx.uncertain.has(i))) {
      r.diag.errorAt('FARMLB_E_CONFIG_ARP_NEEDS_DIRECTED', {
        vips: 'virtual_addr="*"', why: 'no <virtual_interface> is type="vmac_directed"',
      }, at(rule.src));
    }
    return;
  }
  const itf = interfaceOf.get(rule.vip);
  if (itf && itf.type !== 'vmac_directed' && !ctx.uncertain.has(itf)) {
    r.diag.errorAt('FARMLB_E_CONFIG_ARP_NEEDS_DIRECTED', {
      vips: rule.vip, why: `the VIP is on a ${itf.type} interface (line ${itf.src.line})`,
    }, at(rule.src));
  }
}

/**
 * A "*" rule that can match no packet (docs/config.md, "Rules that match nothing"): the data
 * path picks an exact VIP over "*", then an exact port over "*" (docs/datapath.md §4), so
 * (proto, *, port) loses every VIP that has a (proto, VIP, port) or (proto, VIP, *) rule,
 * and (proto, *, *) every VIP with a (proto, VIP, *) rule; an on_ipid "*" rule covers IPv4
 * VIPs only, and an arp "*" rule vmac_directed VIPs only. A rule left with no VIP at all is
 * an error when another group took them (the traffic it was written for goes elsewhere), a
 * warning when its own group did (redundant, nothing changes).
 */
function checkDeadRules(r: Reader, groups: Group[], interfaces: VipInterface[]): void {
  const vipsOf = (rule: Rule): VirtualAddr[] => interfaces.flatMap((i) => i.addrs.map((a) => ({ a, i })))
    .filter(({ a, i }) => (rule.proto === 'arp' ? i.type === 'vmac_directed' : rule.filter === 'on_ipid' ? a.family === 4 : true))
    .map(({ a }) => a);
  const all = groups.flatMap((group) => group.rules.map((rule) => ({ group, rule })));
  for (const { group, rule } of all) {
    if (rule.vip !== '*') continue;
    const candidates = vipsOf(rule);
    if (candidates.length === 0) {
      const why = rule.proto === 'arp' ? 'no VIP is on a vmac_directed interface'
        : rule.filter === 'on_ipid' ? 'filter="on_ipid" applies to IPv4 VIPs only and every VIP is IPv6' : 'there is no VIP';
      const hint = rule.filter === 'on_ipid' ? 'IPv6 headers have no IP id: use filter="on_addr" or "on_port", or add an IPv4 VIP' : 'remove the rule or add a VIP it can serve';
      r.diag.errorAt('FARMLB_E_CONFIG_DEAD_RULE', { rule: describeRule(rule), group: group.name, why, hint }, at(rule.src));
      continue;
    }
    // Per VIP the rule that wins instead of this one: (VIP, port) before (VIP, *).
    const takers = candidates.map((v) => {
      const forVip = all.filter((o) => o.rule.proto === rule.proto && o.rule.vip === v.addr);
      return (rule.port === '*' ? undefined : forVip.find((o) => o.rule.port === rule.port)) ?? forVip.find((o) => o.rule.port === '*');
    });
    if (takers.some((t) => t === undefined)) continue;
    const others = [...new Set(takers.filter((t) => t!.group !== group).map((t) => `${describeRule(t!.rule)} of group ${t!.group.name} (line ${t!.rule.src.line})`))];
    if (others.length > 0) {
      r.diag.errorAt('FARMLB_E_CONFIG_DEAD_RULE', {
        rule: describeRule(rule), group: group.name,
        why: `more specific rules take every VIP it covers: ${others.join(', ')}`,
        hint: 'an exact VIP beats "*" and an exact port beats "*" (docs/datapath.md §4): remove this rule, or narrow the other rules if this group should get that traffic',
      }, at(rule.src));
    } else {
      r.diag.warnAt('FARMLB_W_CONFIG_REDUNDANT_RULE', `${describeRule(rule)} matches nothing: more specific rules of its own group ${group.name} take every VIP it covers; remove it`, rule.src);
    }
  }
}

/**
 * arpreroute announces the buckets of an arp rule's group that move to this node
 * (docs/net.md, "arpreroute"): on a vmac_invisible interface, or on vmac_directed VIPs no
 * arp rule covers, there is nothing to announce and the setting does nothing.
 */
function checkArpreroute(r: Reader, groups: Group[], interfaces: VipInterface[]): void {
  const arpRules = groups.flatMap((g) => g.rules.filter((x) => x.proto === 'arp'));
  for (const itf of interfaces) {
    if (!itf.arpreroute || itf.addrs.length === 0) continue;
    if (itf.type !== 'vmac_directed') {
      r.diag.warnAt('FARMLB_W_CONFIG_ARPREROUTE_NOOP', `arpreroute="on" does nothing on a ${itf.type} interface: every client resolves the VIP to the virtual MAC, there is no ARP spreading to redo`, itf.src);
    } else if (!itf.addrs.some((a) => arpRules.some((x) => x.vip === '*' || x.vip === a.addr))) {
      r.diag.warnAt('FARMLB_W_CONFIG_ARPREROUTE_NOOP', 'arpreroute="on" does nothing here: no proto="arp" rule covers these VIPs, so every node answers ARP and no bucket decides where a client resolves to', itf.src);
    }
  }
}
