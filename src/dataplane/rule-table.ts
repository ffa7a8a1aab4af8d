// The rule precedence of docs/datapath.md §4 (winningRule, src/balance/precedence.ts)
// expanded into the resolved table the XDP program reads: resolveRules() precomputes its
// answer for every (VIP, protocol, port) a rule names, plus one "any other port" entry per
// VIP and protocol, so that the program needs at most two
// hash lookups — (addr, proto, dport), then (addr, proto, *) — where walking the four keys
// took up to four (each ~30 ns on the reference VM). vipLayout() then lays the resolved
// table out for array lookups: a direct-mapped index over the VIP addresses and one
// descriptor per VIP with its entries inline, so that the common VIP packet needs no hash
// lookup at all (docs/datapath.md §7). Pure: data in, data out.

import type { VmacMode } from '../config/types.js';
import { VIP_INDEX_MANY, VIP_INDEX_NONE, VIP_INDEX_SIZE, VIP_INLINE_PORTS, vipIndexOf } from './abi.js';
import { PROTOS, ruleLookup, winningRule, type Proto } from '../balance/precedence.js';
import { CriterionId, PORT_ANY, VIP_ANY, type CompiledRule, type CompiledVip } from '../balance/tables.js';

export { PROTOS, ruleLookup, winningRule, type Proto, type RuleLookup } from '../balance/precedence.js';

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

// ---- the layout the program reads without hash lookups ------------------------------

/** One VIP's descriptor (farmlb_vip_desc): its resolved entries, as many as fit inline. */
export interface VipDescriptor {
  vip: CompiledVip;
  /** The first port entries (port ≠ PORT_ANY) in resolveRules() order, at most the inline bound. */
  ports: ResolvedRule[];
  /** The VIP's "any port" entry per protocol, when it has one. */
  anyPort: Partial<Record<Proto, ResolvedRule>>;
  /** Protocols some of whose port entries did not fit `ports`: the program asks farmlb_rules for them. */
  overflow: Partial<Record<Proto, true>>;
}

/** The kernel-side VIP layout of one slot. */
export interface VipLayout {
  /** VIP_INDEX_SIZE entries: VIP_INDEX_NONE, 1 + a descriptor's position, or VIP_INDEX_MANY. */
  index: Uint8Array;
  /** One per VIP, in the order of the VIPs given. */
  descriptors: VipDescriptor[];
}

/**
 * Lays `vips` and their resolved entries out as farmlb_vip_index and farmlb_vip_desc: an
 * index entry names the one VIP whose last two address bytes map to it, or says that several
 * do (VIP_INDEX_MANY: the program falls back to farmlb_vips and farmlb_rules for them).
 * `inlinePorts` is a parameter for tests only; the program's bound is VIP_INLINE_PORTS.
 */
export function vipLayout(vips: readonly CompiledVip[], resolved: readonly ResolvedRule[], inlinePorts = VIP_INLINE_PORTS): VipLayout {
  const index = new Uint8Array(VIP_INDEX_SIZE).fill(VIP_INDEX_NONE);
  const descriptors = vips.map((vip, k): VipDescriptor => {
    const at = vipIndexOf(vip.family, vip.addrBytes);
    index[at] = index[at] === VIP_INDEX_NONE ? k + 1 : VIP_INDEX_MANY;
    const own = resolved.filter((e) => e.vipId === vip.id);
    const portEntries = own.filter((e) => e.port !== PORT_ANY);
    const desc: VipDescriptor = { vip, ports: portEntries.slice(0, inlinePorts), anyPort: {}, overflow: {} };
    for (const e of portEntries.slice(inlinePorts)) desc.overflow[e.proto] = true;
    for (const e of own) if (e.port === PORT_ANY) desc.anyPort[e.proto] = e;
    return desc;
  });
  return { index, descriptors };
}

/** What the program's step 2 and 4 find for a destination and port, read the way it reads the maps. */
export interface ProgramLookup {
  /** The destination is a VIP of the slot. */
  isVip: boolean;
  rule: ResolvedRule | undefined;
  /** Hash-map lookups the program makes on the way (farmlb_vips only where its answer is needed). */
  hashLookups: number;
}

/**
 * The program's lookup on a VipLayout, with farmlb_rules as `hash`: the index, then the
 * descriptor's address, inline ports, overflow lookup and "any port" entry; or, for an entry
 * several VIPs share, the two farmlb_rules lookups and farmlb_vips. test/unit/rule-table.test.ts
 * holds it equal to winningRule() for collisions and overflows.
 */
export function programLookup(
  layout: VipLayout,
  hash: ResolvedLookup,
  family: 4 | 6,
  addrBytes: Uint8Array,
  proto: Proto,
  dport: number,
): ProgramLookup {
  const entry = layout.index[vipIndexOf(family, addrBytes)]!;
  const sameAddr = (v: CompiledVip): boolean =>
    v.family === family && Buffer.compare(Buffer.from(v.addrBytes.subarray(0, 16)), Buffer.from(addrBytes.subarray(0, 16))) === 0;
  if (entry === VIP_INDEX_NONE) return { isVip: false, rule: undefined, hashLookups: 0 };
  if (entry === VIP_INDEX_MANY) {
    const hit = hash(family, addrBytes, proto, dport);
    if (hit) return { isVip: true, rule: hit, hashLookups: 1 };
    const any = hash(family, addrBytes, proto, PORT_ANY);
    if (any) return { isVip: true, rule: any, hashLookups: 2 };
    return { isVip: layout.descriptors.some((d) => sameAddr(d.vip)), rule: undefined, hashLookups: 3 };
  }
  const desc = layout.descriptors[entry - 1]!;
  if (!sameAddr(desc.vip)) return { isVip: false, rule: undefined, hashLookups: 0 };
  const inline = desc.ports.find((e) => e.proto === proto && e.port === dport);
  if (inline) return { isVip: true, rule: inline, hashLookups: 0 };
  let hashLookups = 0;
  if (desc.overflow[proto]) {
    hashLookups++;
    const hit = hash(family, addrBytes, proto, dport);
    if (hit) return { isVip: true, rule: hit, hashLookups };
  }
  return { isVip: true, rule: desc.anyPort[proto], hashLookups };
}
