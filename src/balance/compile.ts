// FarmConfig + ClusterConfig + bucket table → DataplaneTables, the form both data planes
// (XDP maps and the TS model) consume. Semantics of every field: docs/datapath.md and
// bpf/farmlb_abi.h. Pure.

import type { ClusterConfig, Criterion, FarmConfig, Rule, VirtualAddr, VmacMode } from '../config/types.js';
import { FarmlbError } from '../errors.js';
import {
  CriterionId,
  GROUP_NONE,
  NBUCKETS,
  NODE_NONE,
  PORT_ANY,
  VIP_ANY,
  type CompiledRule,
  type CompiledVip,
  type BucketRows,
  type DataplaneTables,
} from './tables.js';
import { addrBytes16 } from './addr.js';
import { freshTable, nodeIds, ownersToIds, type BucketTable } from './assign.js';

export const CRITERION_IDS: Record<Criterion, CriterionId> = {
  on_addr: CriterionId.Addr,
  on_port: CriterionId.Port,
  on_ipid: CriterionId.Ipid,
};

/**
 * Does this rule balance traffic to this VIP? `*` covers every VIP, except that an on_ipid
 * rule never covers an IPv6 VIP (IPv6 has no identification field; docs/datapath.md §4).
 * ARP rules carry no traffic and cover nothing here.
 */
export function ruleCoversVip(rule: Rule, vip: VirtualAddr): boolean {
  if (rule.proto === 'arp') return false;
  if (vip.family === 6 && rule.filter === 'on_ipid') return false;
  return rule.vip === '*' || sameAddr(rule.vip, vip.addr);
}

function sameAddr(a: string, b: string): boolean {
  if (a === b) return true;
  const x = addrBytes16(a);
  const y = addrBytes16(b);
  return x !== undefined && y !== undefined && x.length === y.length && x.every((v, i) => v === y[i]);
}

/** The first group, file order, with a TCP/UDP rule covering the VIP; GROUP_NONE if none. */
export function icmpGroupOf(farm: FarmConfig, vip: VirtualAddr): number {
  const group = farm.groups.find((g) => g.rules.some((r) => ruleCoversVip(r, vip)));
  return group ? group.index : GROUP_NONE;
}

/**
 * The group of the proto="arp" rule covering the VIP: a rule naming the VIP beats a '*' one,
 * then the first in file order; GROUP_NONE when no arp rule covers it (vmac_directed: every
 * node answers ARP/NS for it).
 */
export function arpGroupOf(farm: FarmConfig, vip: VirtualAddr): number {
  let wildcard = GROUP_NONE;
  for (const group of farm.groups) {
    for (const rule of group.rules) {
      if (rule.proto !== 'arp') continue;
      if (rule.vip !== '*' && sameAddr(rule.vip, vip.addr)) return group.index;
      if (rule.vip === '*' && wildcard === GROUP_NONE) wildcard = group.index;
    }
  }
  return wildcard;
}

function vipMode(farm: FarmConfig, vip: VirtualAddr): VmacMode {
  const iface = farm.interfaces.find((i) => i.addrs.some((a) => a.id === vip.id));
  return iface?.type ?? 'vmac_invisible';
}

function compileVip(farm: FarmConfig, vip: VirtualAddr): CompiledVip {
  const bytes = addrBytes16(vip.addr);
  if (!bytes) throw new FarmlbError('FARMLB_E_INTERNAL', { detail: `VIP ${vip.addr} is not a literal address` });
  return {
    id: vip.id,
    family: vip.family,
    addr: vip.addr,
    addrBytes: bytes,
    icmpGroup: icmpGroupOf(farm, vip),
    arpGroup: arpGroupOf(farm, vip),
    mode: vipMode(farm, vip),
  };
}

function vipIdOf(farm: FarmConfig, rule: Rule): number {
  if (rule.vip === '*') return VIP_ANY;
  const vip = farm.vips.find((v) => sameAddr(v.addr, rule.vip));
  if (!vip) throw new FarmlbError('FARMLB_E_INTERNAL', { detail: `rule for ${rule.vip} names no configured VIP` });
  return vip.id;
}

/** The TCP/UDP rules of every group in file order; ARP rules are not in the rule map. */
export function compileRules(farm: FarmConfig): CompiledRule[] {
  const rules: CompiledRule[] = [];
  for (const group of farm.groups) {
    for (const rule of group.rules) {
      if (rule.proto === 'arp') continue;
      rules.push({
        proto: rule.proto === 'tcp' ? 6 : 17,
        port: rule.port === '*' ? PORT_ANY : rule.port,
        vipId: vipIdOf(farm, rule),
        group: group.index,
        criterion: CRITERION_IDS[rule.filter],
      });
    }
  }
  return rules;
}

/** Node id of a node name: its index in cluster.xml's node list, or NODE_NONE. */
export function nodeIdOf(cluster: ClusterConfig | undefined, name: string): number {
  const id = cluster?.nodes.indexOf(name) ?? -1;
  return id < 0 ? NODE_NONE : id;
}

/**
 * A bucket table (node names) as the data plane holds it (node ids, one row per configured
 * group): what compileTables puts in DataplaneTables.buckets / prevOwners, and all a
 * membership change gives the data plane (Dataplane.applyBuckets).
 */
export function bucketRows(
  farm: FarmConfig,
  cluster: ClusterConfig | undefined,
  table: BucketTable,
): { buckets: BucketRows; prevOwners: BucketRows } {
  // Names → ids once per table, not once per row.
  const ids = nodeIds(cluster?.nodes ?? []);
  const rows = (owners: readonly (readonly (string | null)[] | undefined)[] | undefined): BucketRows =>
    farm.groups.map((g) => {
      const row = owners?.[g.index];
      return row ? ownersToIds(row, ids) : new Array<number>(NBUCKETS).fill(NODE_NONE);
    });
  return { buckets: rows(table.groups), prevOwners: rows(table.prev) };
}

export function compileTables(
  farm: FarmConfig,
  cluster: ClusterConfig | undefined,
  table: BucketTable,
  selfNode: string,
): DataplaneTables {
  const nodes = cluster?.nodes ?? [];
  const { buckets, prevOwners } = bucketRows(farm, cluster, table);
  return {
    hashSeed: farm.farmlb.hashSeed >>> 0,
    selfNode: nodeIdOf(cluster, selfNode),
    vmac: farm.interfaces[0]?.vmac ?? '00:00:00:00:00:00',
    vips: farm.vips.map((v) => compileVip(farm, v)),
    rules: compileRules(farm),
    buckets,
    prevOwners,
    // Learnt on the LAN, not configured: the daemon fills them in before apply().
    nodeMacs: nodes.map(() => null),
  };
}

/**
 * Configured powers per group (indexed by Group.index). A group without <cluster> is every
 * cluster node with power 1 (SafeKit: the farm's nodes share it equally); without a
 * cluster.xml such a group has no nodes.
 */
export function groupPowers(farm: FarmConfig, cluster: ClusterConfig | undefined): Map<string, number>[] {
  const powers: Map<string, number>[] = [];
  for (const g of farm.groups) {
    powers[g.index] = g.hosts === null
      ? new Map((cluster?.nodes ?? []).map((n) => [n, 1]))
      : new Map(g.hosts.map((h) => [h.name, h.power]));
  }
  return powers;
}

/**
 * The table of `farmlb run --static`: configured powers as if every cluster node were up.
 * Hosts that are not cluster nodes have no node id and get nothing.
 */
export function staticTable(farm: FarmConfig, cluster: ClusterConfig | undefined): BucketTable {
  const members = new Set(cluster?.nodes ?? []);
  const groups = groupPowers(farm, cluster).map((powers) =>
    freshTable(new Map([...powers].filter(([name]) => members.has(name)))),
  );
  return { groups };
}
