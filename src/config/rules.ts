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

export function checkRules(r: Reader, groups: Group[], interfaces: VipInterface[], vips: VirtualAddr[]): void {
  const interfaceOf = new Map<string, VipInterface>();
  for (const itf of interfaces) for (const a of itf.addrs) interfaceOf.set(a.addr, itf);
  const directedVips = vips.filter((v) => interfaceOf.get(v.addr)?.type === 'vmac_directed');

  const seen = new Map<string, { group: Group; rule: Rule }>();
  for (const group of groups) {
    for (const rule of group.rules) {
      if (rule.proto === 'arp') checkArpRule(r, rule, interfaceOf, directedVips);
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
}

/**
 * An arp rule chooses which node answers ARP/ND for a VIP, which only means something in
 * vmac_directed (in vmac_invisible the VMAC answer comes from the first covering group).
 * An explicit VIP must sit on a vmac_directed interface; "*" needs at least one such VIP and
 * applies to the vmac_directed VIPs only.
 */
function checkArpRule(r: Reader, rule: Rule, interfaceOf: Map<string, VipInterface>, directedVips: VirtualAddr[]): void {
  if (rule.vip === '*') {
    if (directedVips.length === 0) {
      r.diag.errorAt('FARMLB_E_CONFIG_ARP_NEEDS_DIRECTED', {
        vips: 'virtual_addr="*"', why: 'no <virtual_interface> is type="vmac_directed"',
      }, at(rule.src));
    }
    return;
  }
  const itf = interfaceOf.get(rule.vip);
  if (itf && itf.type !== 'vmac_directed') {
    r.diag.errorAt('FARMLB_E_CONFIG_ARP_NEEDS_DIRECTED', {
      vips: rule.vip, why: `the VIP is on a ${itf.type} interface (line ${itf.src.line})`,
    }, at(rule.src));
  }
}
