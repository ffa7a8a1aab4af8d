// The resolved rule table (src/dataplane/rule-table.ts) against the semantic precedence of
// docs/datapath.md §4: the program's two lookups on resolveRules()'s output must give, for
// every VIP, protocol and destination port, the rule winningRule() — which the TS model
// decides with — gives on the rules as the config states them. The same holds for the
// layout the program reads first (vipLayout: index + descriptors with inline ports), with its
// fallbacks to the hash maps for VIPs sharing an index entry and ports that do not fit inline.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_RULES, MAX_VIPS, RESOLVED_RULES_PER_SLOT } from '../../src/dataplane/abi.js';
import { addrBytes16, parseIp } from '../../src/net/frames.js';
import {
  lookupTwice,
  programLookup,
  resolveRules,
  vipLayout,
  resolvedLookup,
  ruleLookup,
  winningRule,
  type Proto,
} from '../../src/dataplane/rule-table.js';
import { CriterionId, PORT_ANY, VIP_ANY, type CompiledRule, type CompiledVip } from '../../src/dataplane/types.js';

function vip(id: number, addr: string): CompiledVip {
  return { id, family: parseIp(addr).family, addr, addrBytes: addrBytes16(addr), icmpGroup: 0, arpGroup: 0xff, mode: 'vmac_invisible' };
}

function rule(proto: Proto, port: number, vipId: number, group: number, criterion: CriterionId = CriterionId.Addr): CompiledRule {
  return { proto, port, vipId, group, criterion };
}

const V4 = vip(0, '10.0.0.100');
const V6 = vip(1, '2001:db8::100');
const V4B = vip(2, '10.0.0.101');

/** The group the program would use: two lookups on the resolved table, or undefined. */
function programGroup(vips: CompiledVip[], rules: CompiledRule[], v: CompiledVip, proto: Proto, dport: number): number | undefined {
  return lookupTwice(resolvedLookup(resolveRules(vips, rules)), v.family, v.addrBytes, proto, dport)?.group;
}

describe('resolved rule table: examples of docs/datapath.md §4', () => {
  it('lets an exact (vip, port) rule beat (vip, *), and (vip, *) beat (*, port) and (*, *)', () => {
    const rules = [rule(6, 80, 0, 1), rule(6, PORT_ANY, 0, 2), rule(6, 80, VIP_ANY, 3), rule(6, 443, VIP_ANY, 4), rule(6, PORT_ANY, VIP_ANY, 5)];
    expect(programGroup([V4, V4B], rules, V4, 6, 80)).toBe(1);
    expect(programGroup([V4, V4B], rules, V4, 6, 443)).toBe(2);
    expect(programGroup([V4, V4B], rules, V4, 6, 22)).toBe(2);
    expect(programGroup([V4, V4B], rules, V4B, 6, 80)).toBe(3);
    expect(programGroup([V4, V4B], rules, V4B, 6, 443)).toBe(4);
    expect(programGroup([V4, V4B], rules, V4B, 6, 22)).toBe(5);
  });

  it('skips on_ipid rules for an IPv6 VIP but applies them to an IPv4 VIP', () => {
    const rules = [rule(17, 53, VIP_ANY, 1, CriterionId.Ipid), rule(17, PORT_ANY, VIP_ANY, 2, CriterionId.Port)];
    expect(programGroup([V4, V6], rules, V4, 17, 53)).toBe(1);
    expect(programGroup([V4, V6], rules, V6, 17, 53)).toBe(2);
    expect(programGroup([V4, V6], [rule(17, 53, VIP_ANY, 1, CriterionId.Ipid)], V6, 17, 53)).toBeUndefined();
  });

  it('writes no entry where no rule applies, so both lookups miss (DROP_NO_RULE)', () => {
    const entries = resolveRules([V4, V6], [rule(6, 80, 0, 1)]);
    expect(entries.map((e) => [e.vipId, e.proto, e.port])).toEqual([[0, 6, 80]]);
    expect(programGroup([V4, V6], [rule(6, 80, 0, 1)], V4, 6, 81)).toBeUndefined();
    expect(programGroup([V4, V6], [rule(6, 80, 0, 1)], V4, 17, 80)).toBeUndefined();
  });

  it("gives a VIP no entry for a port only another VIP's rule names: its any-port entry answers", () => {
    const rules = [rule(6, 8080, 2, 1), rule(6, PORT_ANY, VIP_ANY, 2)];
    const ofV4 = resolveRules([V4, V4B], rules).filter((e) => e.vipId === 0);
    expect(ofV4.map((e) => e.port)).toEqual([PORT_ANY]);
    expect(programGroup([V4, V4B], rules, V4, 6, 8080)).toBe(2);
    expect(programGroup([V4, V4B], rules, V4B, 6, 8080)).toBe(1);
  });

  it('decides destination port 0 as a port no rule names', () => {
    const rules = [rule(6, 80, 0, 1), rule(6, PORT_ANY, VIP_ANY, 2)];
    expect(programGroup([V4], rules, V4, 6, 0)).toBe(2);
  });

  it('keeps one entry per VIP, protocol and port, the any-port entry last, each holding the winner', () => {
    const entries = resolveRules([V4], [rule(6, 443, VIP_ANY, 1), rule(6, 80, 0, 2), rule(6, PORT_ANY, 0, 3), rule(17, 53, 0, 4)]);
    expect(entries.map((e) => [e.proto, e.port, e.group])).toEqual([
      [6, 80, 2],
      [6, 443, 3], // (vip, *) beats (*, 443)
      [6, PORT_ANY, 3],
      [17, 53, 4],
    ]);
  });

  it('stays within the per-slot bound with the most VIPs and rules the data plane holds', () => {
    const vips = Array.from({ length: MAX_VIPS }, (_, i) => vip(i, i % 2 ? `2001:db8::${i.toString(16)}` : `10.0.${i}.1`));
    // Every rule names a distinct port for every VIP ("*" VIP): the worst case per VIP.
    const rules = Array.from({ length: MAX_RULES }, (_, i) =>
      rule(i % 2 ? 6 : 17, i === 0 ? PORT_ANY : 1000 + i, VIP_ANY, i % 16, CriterionId.Port),
    );
    const entries = resolveRules(vips, rules);
    expect(entries.length).toBe(MAX_VIPS * MAX_RULES);
    expect(entries.length).toBeLessThanOrEqual(RESOLVED_RULES_PER_SLOT);
  });
});

// ---- property -------------------------------------------------------------------------

const PORTS = [0, 1, 22, 53, 80, 443, 8080, 65535];
const V4_ADDRS = ['10.0.0.100', '10.0.0.101', '10.1.0.100', '192.0.2.1'];
const V6_ADDRS = ['2001:db8::100', '2001:db8::101', '2001:db8:1::100'];

const tablesArb = fc
  .record({
    addrs: fc.subarray([...V4_ADDRS, ...V6_ADDRS], { minLength: 1 }),
    rules: fc.array(
      fc.record({
        proto: fc.constantFrom<Proto>(6, 17),
        port: fc.constantFrom(...PORTS),
        vip: fc.option(fc.nat({ max: 6 }), { nil: undefined, freq: 3 }),
        group: fc.nat({ max: 15 }),
        criterion: fc.constantFrom(CriterionId.Addr, CriterionId.Port, CriterionId.Ipid),
      }),
      { maxLength: 24 },
    ),
  })
  .map(({ addrs, rules }) => {
    const vips = addrs.map((a, id) => vip(id, a));
    // One rule per (proto, port, vip): validateTables rejects duplicates.
    const byKey = new Map<string, CompiledRule>();
    for (const r of rules) {
      const vipId = r.vip === undefined ? VIP_ANY : r.vip % vips.length;
      byKey.set(`${r.proto}/${r.port}/${vipId}`, rule(r.proto, r.port, vipId, r.group, r.criterion));
    }
    return { vips, rules: [...byKey.values()] };
  });

describe('resolved rule table: property', () => {
  it('gives, for random rules, VIPs and ports, exactly the rule of the four-key precedence', () => {
    fc.assert(
      fc.property(tablesArb, fc.array(fc.constantFrom(...PORTS, 2, 8443), { minLength: 1, maxLength: 6 }), ({ vips, rules }, ports) => {
        const semantic = ruleLookup(rules);
        const resolved = resolvedLookup(resolveRules(vips, rules));
        for (const v of vips) {
          for (const proto of [6, 17] as const) {
            for (const dport of ports) {
              const want = winningRule(semantic, proto, v.id, v.family, dport);
              const got = lookupTwice(resolved, v.family, v.addrBytes, proto, dport);
              expect(got && { group: got.group, criterion: got.criterion }, `${v.addr} ${proto}/${dport}`).toEqual(
                want && { group: want.group, criterion: want.criterion },
              );
            }
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('never needs more than one entry per rule for a VIP (the bound the map is sized by)', () => {
    fc.assert(
      fc.property(tablesArb, ({ vips, rules }) => {
        const entries = resolveRules(vips, rules);
        for (const v of vips) expect(entries.filter((e) => e.vipId === v.id).length).toBeLessThanOrEqual(rules.length);
      }),
      { numRuns: 300 },
    );
  });
  it('carries each VIP\'s mode into its resolved entries, so the program knows whether to forward', () => {
    const vips = [vip(0, '10.0.0.1'), { ...vip(1, '10.0.0.2'), mode: 'vmac_directed' as const }];
    const entries = resolveRules(vips, [rule(6, PORT_ANY, VIP_ANY, 0)]);
    expect(entries.map((e) => [e.vipId, e.mode])).toEqual([
      [0, 'vmac_invisible'],
      [1, 'vmac_directed'],
    ]);
  });
});

// ---- the layout the program reads first ---------------------------------------------------

describe('VIP layout: index, descriptors, inline ports', () => {
  const rules = [rule(6, 80, 0, 1), rule(6, 443, VIP_ANY, 2), rule(6, PORT_ANY, VIP_ANY, 3), rule(17, 53, 0, 4)];

  it('decides a VIP alone on its index entry without any hash lookup', () => {
    const vips = [V4, V6, V4B];
    const resolved = resolveRules(vips, rules);
    const layout = vipLayout(vips, resolved);
    const hash = resolvedLookup(resolved);
    for (const [port, group] of [[80, 1], [443, 2], [22, 3]] as const) {
      const got = programLookup(layout, hash, 4, V4.addrBytes, 6, port);
      expect({ isVip: got.isVip, group: got.rule?.group, hashLookups: got.hashLookups }).toEqual({ isVip: true, group, hashLookups: 0 });
    }
    expect(programLookup(layout, hash, 4, V4.addrBytes, 17, 54)).toEqual({ isVip: true, rule: undefined, hashLookups: 0 });
  });

  it('declares an address that shares a lone VIP\'s entry, in either family, not a VIP by the descriptor\'s address', () => {
    const layout = vipLayout([V4], resolveRules([V4], rules));
    const hash = resolvedLookup([]);
    expect(programLookup(layout, hash, 4, addrBytes16('10.1.0.100'), 6, 80)).toEqual({ isVip: false, rule: undefined, hashLookups: 0 });
    expect(programLookup(layout, hash, 6, addrBytes16('::ffff:10.0.0.100'), 6, 80).isVip).toBe(false);
  });

  it('sends VIPs that share an index entry to the hash maps, and still finds each one\'s rule', () => {
    const twin = vip(3, '10.1.0.100'); // same last two bytes as V4
    const vips = [V4, twin, V6];
    const resolved = resolveRules(vips, [...rules, rule(6, 80, 3, 9)]);
    const layout = vipLayout(vips, resolved);
    const hash = resolvedLookup(resolved);
    const a = programLookup(layout, hash, 4, V4.addrBytes, 6, 80);
    const b = programLookup(layout, hash, 4, twin.addrBytes, 6, 80);
    expect([a.rule?.group, b.rule?.group]).toEqual([1, 9]);
    expect(a.hashLookups).toBeGreaterThan(0);
    expect(programLookup(layout, hash, 4, addrBytes16('10.2.0.100'), 6, 80)).toMatchObject({ isVip: false, rule: undefined });
  });

  it('keeps the first ports inline, flags the protocol that overflowed, and looks its other ports up in the hash map', () => {
    const many = Array.from({ length: 10 }, (_, i) => rule(6, 1000 + i, 0, i % 16));
    const resolved = resolveRules([V4], [...many, rule(17, 53, 0, 4), rule(6, PORT_ANY, 0, 7)]);
    const layout = vipLayout([V4], resolved);
    const d = layout.descriptors[0]!;
    expect(d.ports.map((e) => e.port)).toEqual([1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007]);
    // TCP's ten entries come first: two of them and UDP's one do not fit.
    expect(d.overflow).toEqual({ 6: true, 17: true });
    const hash = resolvedLookup(resolved);
    expect(programLookup(layout, hash, 4, V4.addrBytes, 6, 1003)).toMatchObject({ rule: { group: 3 }, hashLookups: 0 });
    expect(programLookup(layout, hash, 4, V4.addrBytes, 6, 1009)).toMatchObject({ rule: { group: 9 }, hashLookups: 1 });
    expect(programLookup(layout, hash, 4, V4.addrBytes, 6, 2000)).toMatchObject({ rule: { group: 7 }, hashLookups: 1 });
    expect(programLookup(layout, hash, 4, V4.addrBytes, 17, 53)).toMatchObject({ rule: { group: 4 }, hashLookups: 1 });
    // A protocol that did not overflow never asks the hash map.
    const fewer = vipLayout([V4], resolveRules([V4], [rule(6, 80, 0, 1), rule(17, PORT_ANY, 0, 2)]));
    expect(fewer.descriptors[0]!.overflow).toEqual({});
    expect(programLookup(fewer, hash, 4, V4.addrBytes, 17, 99)).toMatchObject({ rule: { group: 2 }, hashLookups: 0 });
  });

  it('gives, for random VIPs (colliding ones included), rules and inline bounds, the rule of the four-key precedence', () => {
    const others = ['10.2.0.100', '192.0.3.1', '::ffff:10.0.0.100', '2001:db8:2::100', '2001:db8::1'].map((a) => ({
      family: parseIp(a).family,
      addrBytes: addrBytes16(a),
    }));
    fc.assert(
      fc.property(
        tablesArb,
        fc.constantFrom(0, 1, 2, 3, 8),
        fc.array(fc.constantFrom(...PORTS, 2, 8443), { minLength: 1, maxLength: 6 }),
        ({ vips, rules }, inline, ports) => {
          const semantic = ruleLookup(rules);
          const resolved = resolveRules(vips, rules);
          const layout = vipLayout(vips, resolved, inline);
          const hash = resolvedLookup(resolved);
          for (const v of vips) {
            for (const proto of [6, 17] as const) {
              for (const dport of ports) {
                const want = winningRule(semantic, proto, v.id, v.family, dport);
                const got = programLookup(layout, hash, v.family, v.addrBytes, proto, dport);
                expect(got.isVip, v.addr).toBe(true);
                expect(got.rule && { group: got.rule.group, criterion: got.rule.criterion }, `${v.addr} ${proto}/${dport} inline ${inline}`).toEqual(
                  want && { group: want.group, criterion: want.criterion },
                );
              }
            }
          }
          for (const o of others) {
            if (vips.some((v) => v.family === o.family && Buffer.from(v.addrBytes).equals(Buffer.from(o.addrBytes)))) continue;
            expect(programLookup(layout, hash, o.family, o.addrBytes, 6, 80)).toMatchObject({ isVip: false, rule: undefined });
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
