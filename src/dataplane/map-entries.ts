// DataplaneTables → the key/value entries of the maps (and the checks a table passes before
// anything is written): what XdpDataplane writes, built with the encoders of abi.ts and the
// VIP layout of rule-table.ts. Kept apart from abi.ts so that the ABI mirror imports nothing
// from the rule tables (rule-table.ts imports the ABI's index constants). Pure.

import { FarmlbError } from '../errors.js';
import {
  CriterionId,
  GROUP_NONE,
  MAX_NODES,
  NBUCKETS,
  NODE_NONE,
  PORT_ANY,
  VIP_ANY,
  type BucketRows,
  type CompiledRule,
  type CompiledVip,
  type DataplaneTables,
} from '../balance/tables.js';
import {
  ABI_STRUCTS,
  MAX_GROUPS,
  MAX_RULES,
  MAX_VIPS,
  NODE_F_KNOWN,
  VIP_F_ANY_TCP,
  VIP_F_ANY_UDP,
  VIP_F_OVERFLOW_TCP,
  VIP_F_OVERFLOW_UDP,
  encodeIndexKey,
  encodeMacKey,
  encodeNode,
  encodeNodeRef,
  encodeRule,
  encodeRuleKey,
  encodeRuleSpecKey,
  encodeVip,
  encodeVipDesc,
  encodeVipKey,
  formatMac,
  modeId,
  nodeIndex,
  parseMac,
  vipDescIndex,
  type RuleValue,
  type VipDescValue,
} from './abi.js';
import type { ResolvedRule, VipDescriptor, VipLayout } from './rule-table.js';

function invalid(detail: string): FarmlbError {
  return new FarmlbError('FARMLB_E_DATAPLANE_TABLE_INVALID', { detail });
}

const isInt = (v: unknown, lo: number, hi: number): boolean => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;
const isNode = (v: unknown): boolean => isInt(v, 0, MAX_NODES - 1) || v === NODE_NONE;
const isGroupRef = (v: unknown): boolean => isInt(v, 0, MAX_GROUPS - 1) || v === GROUP_NONE;

/** The bucket rows of a table (what applyBuckets changes) against the ABI limits. */
export function validateBuckets(buckets: BucketRows, prevOwners?: BucketRows): void {
  if (buckets.length > MAX_GROUPS) throw invalid(`${buckets.length} groups, the data plane holds ${MAX_GROUPS}`);
  buckets.forEach((row, group) => {
    if (row.length !== NBUCKETS) throw invalid(`group ${group} has ${row.length} buckets, not ${NBUCKETS}`);
    row.forEach((owner, bucket) => {
      if (!isNode(owner)) throw invalid(`group ${group} bucket ${bucket}: owner ${owner} is neither < ${MAX_NODES} nor NODE_NONE`);
    });
  });
  if (prevOwners) {
    if (prevOwners.length !== buckets.length) throw invalid(`${prevOwners.length} rows of previous owners for ${buckets.length} groups`);
    prevOwners.forEach((row, group) => {
      if (row.length !== NBUCKETS) throw invalid(`group ${group} has ${row.length} previous owners, not ${NBUCKETS}`);
      row.forEach((prev, bucket) => {
        if (!isNode(prev)) throw invalid(`group ${group} bucket ${bucket}: previous owner ${prev} is neither < ${MAX_NODES} nor NODE_NONE`);
        // The program reads prev == owner as no handover; the membership never writes it.
        if (prev !== NODE_NONE && prev === buckets[group]![bucket]) {
          throw invalid(`group ${group} bucket ${bucket}: node ${prev} is both owner and previous owner`);
        }
      });
    });
  }
}

/**
 * Checks a table against the ABI limits before anything is written, so a rejected table
 * leaves the running maps untouched. Throws FARMLB_E_DATAPLANE_TABLE_INVALID.
 */
export function validateTables(t: DataplaneTables): void {
  if (!isInt(t.hashSeed, 0, 0xffffffff)) throw invalid(`hash seed ${t.hashSeed} is not a 32-bit unsigned integer`);
  if (!isNode(t.selfNode)) throw invalid(`self node ${t.selfNode} is neither < ${MAX_NODES} nor NODE_NONE`);
  try {
    parseMac(t.vmac);
  } catch {
    throw invalid(`vmac "${t.vmac}" is not aa:bb:cc:dd:ee:ff`);
  }
  validateBuckets(t.buckets, t.prevOwners);
  if (t.vips.length > MAX_VIPS) throw invalid(`${t.vips.length} VIPs, the data plane holds ${MAX_VIPS}`);
  const vipIds = new Set<number>();
  const vipAddrs = new Set<string>();
  for (const vip of t.vips) {
    if (!isInt(vip.id, 0, VIP_ANY - 1)) throw invalid(`VIP ${vip.addr}: id ${vip.id} out of range`);
    if (vipIds.has(vip.id)) throw invalid(`VIP id ${vip.id} appears twice`);
    vipIds.add(vip.id);
    if (vip.family !== 4 && vip.family !== 6) throw invalid(`VIP ${vip.addr}: family ${String(vip.family)}`);
    if (vip.addrBytes.length !== 16) throw invalid(`VIP ${vip.addr}: address has ${vip.addrBytes.length} bytes, not 16`);
    const addrKey = `${vip.family}/${Buffer.from(vip.addrBytes).toString('hex')}`;
    if (vipAddrs.has(addrKey)) throw invalid(`VIP ${vip.addr} appears twice`);
    vipAddrs.add(addrKey);
    if (!isGroupRef(vip.icmpGroup)) throw invalid(`VIP ${vip.addr}: icmp group ${vip.icmpGroup} out of range`);
    if (!isGroupRef(vip.arpGroup)) throw invalid(`VIP ${vip.addr}: arp group ${String(vip.arpGroup)} out of range`);
  }
  const nodeMacs = t.nodeMacs ?? [];
  if (nodeMacs.length > MAX_NODES) throw invalid(`${nodeMacs.length} node MACs, the data plane holds ${MAX_NODES}`);
  const seenMacs = new Map<string, number>();
  nodeMacs.forEach((mac, node) => {
    if (mac === null || mac === undefined) return;
    let bytes: Uint8Array;
    try {
      bytes = parseMac(mac);
    } catch {
      throw invalid(`node ${node}: MAC "${mac}" is not aa:bb:cc:dd:ee:ff`);
    }
    const text = formatMac(bytes);
    const other = seenMacs.get(text);
    if (other !== undefined) throw invalid(`nodes ${other} and ${node} have the same MAC ${text}`);
    seenMacs.set(text, node);
  });
  if (t.rules.length > MAX_RULES) throw invalid(`${t.rules.length} rules, the data plane holds ${MAX_RULES}`);
  const ruleKeys = new Set<string>();
  for (const rule of t.rules) {
    const name = `rule ${rule.proto}/${rule.vipId === VIP_ANY ? '*' : rule.vipId}:${rule.port === PORT_ANY ? '*' : rule.port}`;
    if (rule.proto !== 6 && rule.proto !== 17) throw invalid(`${name}: protocol ${String(rule.proto)} is not TCP or UDP`);
    if (!isInt(rule.port, 0, 0xffff)) throw invalid(`${name}: port out of range`);
    if (rule.vipId !== VIP_ANY && !vipIds.has(rule.vipId)) throw invalid(`${name}: no VIP with id ${rule.vipId}`);
    if (!isInt(rule.group, 0, MAX_GROUPS - 1)) throw invalid(`${name}: group ${rule.group} out of range`);
    if (!isInt(rule.criterion, 0, CriterionId.Ipid)) throw invalid(`${name}: criterion ${rule.criterion} unknown`);
    const key = `${rule.proto}/${rule.vipId}/${rule.port}`;
    if (ruleKeys.has(key)) throw invalid(`${name} appears twice`);
    ruleKeys.add(key);
  }
}

export function vipEntry(slot: number, vip: CompiledVip): { key: Buffer; value: Buffer } {
  return {
    key: encodeVipKey({ slot, family: vip.family, addr: vip.addrBytes }),
    value: encodeVip({ vipId: vip.id, icmpGroup: vip.icmpGroup, mode: modeId(vip.mode), arpGroup: vip.arpGroup }),
  };
}

/** farmlb_nodes entries of a slot: one per node id (unknown ones without FARMLB_NODE_F_KNOWN). */
export function nodeEntries(slot: number, nodeMacs: readonly (string | null)[]): { key: Buffer; value: Buffer }[] {
  return Array.from({ length: MAX_NODES }, (_, node) => {
    const mac = nodeMacs[node];
    return {
      key: encodeIndexKey(nodeIndex(slot, node)),
      value: mac ? encodeNode({ mac: parseMac(mac), flags: NODE_F_KNOWN }) : encodeNode({ mac: new Uint8Array(6), flags: 0 }),
    };
  });
}

/** farmlb_node_macs entries of a slot: each known node MAC → its node id. */
export function nodeMacEntries(slot: number, nodeMacs: readonly (string | null)[]): { key: Buffer; value: Buffer }[] {
  const out: { key: Buffer; value: Buffer }[] = [];
  nodeMacs.forEach((mac, node) => {
    if (mac) out.push({ key: encodeMacKey({ slot, mac: parseMac(mac) }), value: encodeNodeRef(node) });
  });
  return out;
}

/** farmlb_rule_specs entry: the rule as the config states it (read back, never by the program). */
export function ruleSpecEntry(slot: number, rule: CompiledRule): { key: Buffer; value: Buffer } {
  return {
    key: encodeRuleSpecKey({ slot, proto: rule.proto, port: rule.port, vipId: rule.vipId }),
    value: encodeRule({ group: rule.group, criterion: rule.criterion }),
  };
}

/** farmlb_rules entry: one resolved (VIP address, proto, port) → winning rule. */
export function resolvedRuleEntry(slot: number, entry: ResolvedRule): { key: Buffer; value: Buffer } {
  return {
    key: encodeRuleKey({ slot, family: entry.family, proto: entry.proto, port: entry.port, addr: entry.addrBytes }),
    value: encodeRule({ group: entry.group, criterion: entry.criterion, mode: modeId(entry.mode) }),
  };
}

const NO_RULE: RuleValue = { group: 0, criterion: 0, mode: 0 };

function inlineRule(e: ResolvedRule): RuleValue {
  return { group: e.group, criterion: e.criterion, mode: modeId(e.mode) };
}

/** The farmlb_vip_desc value of one descriptor of a VipLayout. */
export function vipDescValue(d: VipDescriptor): VipDescValue {
  const { vip } = d;
  const flags =
    (d.anyPort[6] ? VIP_F_ANY_TCP : 0) |
    (d.anyPort[17] ? VIP_F_ANY_UDP : 0) |
    (d.overflow[6] ? VIP_F_OVERFLOW_TCP : 0) |
    (d.overflow[17] ? VIP_F_OVERFLOW_UDP : 0);
  return {
    family: vip.family,
    addr: vip.addrBytes,
    flags,
    vip: { vipId: vip.id, icmpGroup: vip.icmpGroup, mode: modeId(vip.mode), arpGroup: vip.arpGroup },
    anyPort: [d.anyPort[6] ? inlineRule(d.anyPort[6]) : NO_RULE, d.anyPort[17] ? inlineRule(d.anyPort[17]) : NO_RULE],
    ports: d.ports.map((e) => ({ port: e.port, proto: e.proto, rule: inlineRule(e) })),
  };
}

/**
 * farmlb_vip_desc entries of a slot: every descriptor index of the slot, those beyond the
 * layout's VIPs zeroed (family 0), so no descriptor of an earlier table survives a flip.
 */
export function vipDescEntries(slot: number, layout: VipLayout): { key: Buffer; value: Buffer }[] {
  if (layout.descriptors.length > MAX_VIPS) throw invalid(`${layout.descriptors.length} VIPs, the data plane holds ${MAX_VIPS}`);
  return Array.from({ length: MAX_VIPS }, (_, k) => {
    const d = layout.descriptors[k];
    return {
      key: encodeIndexKey(vipDescIndex(slot, k)),
      value: d ? encodeVipDesc(vipDescValue(d)) : Buffer.alloc(ABI_STRUCTS.farmlb_vip_desc.size),
    };
  });
}
