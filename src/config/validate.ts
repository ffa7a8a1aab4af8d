// Cross-file checks: every <host> of a group and every <farm><lan> must exist in cluster.xml,
// and no VIP may be a node's address.
// Kept apart from parsing so `farmlb validate` without --cluster can still check one file.

import { FarmlbError } from '../errors.js';
import { aggregateConfigErrors } from './diagnostics.js';
import type { ClusterConfig, FarmConfig, SourceRef } from './types.js';

function at(src: SourceRef, attribute: string) {
  return { file: src.file, line: src.line, column: src.column, element: src.element, attribute };
}

/** Every cross-file problem, in file order (empty when the two files agree). */
export function crossCheckErrors(config: FarmConfig, cluster: ClusterConfig): FarmlbError[] {
  const errors: FarmlbError[] = [];
  const nodes = new Set(cluster.nodes);
  for (const group of config.groups) {
    for (const host of group.hosts ?? []) {
      if (nodes.has(host.name)) continue;
      errors.push(new FarmlbError('FARMLB_E_CONFIG_UNKNOWN_HOST', {
        host: host.name, group: group.name, clusterFile: cluster.file, nodes: cluster.nodes.join(', ') || 'none',
      }, { location: at(host.src, 'name') }));
    }
  }
  // farmlb adds a VIP on start and deletes it at stop: a VIP that is a node's own address
  // would delete that node's address (keepalived once shipped this bug).
  const nodeOf = new Map<string, string>();
  for (const lan of cluster.lans) for (const n of lan.nodes) nodeOf.set(n.addr, n.name);
  for (const vip of config.vips) {
    const node = nodeOf.get(vip.addr);
    if (node === undefined) continue;
    errors.push(new FarmlbError('FARMLB_E_CONFIG_VIP_IS_NODE_ADDR', { addr: vip.addr, node, clusterFile: cluster.file }, { location: at(vip.src, 'addr') }));
  }
  const lans = new Set(cluster.lans.map((l) => l.name));
  for (const lan of config.farm?.lanRefs ?? []) {
    if (lans.has(lan.name)) continue;
    errors.push(new FarmlbError('FARMLB_E_CONFIG_UNKNOWN_LAN', {
      lan: lan.name, clusterFile: cluster.file, lans: [...lans].join(', ') || 'none',
    }, { location: at(lan.src, 'name') }));
  }
  return errors;
}

/** Throws FARMLB_E_CONFIG_INVALID listing every host or LAN of userconfig.xml missing from cluster.xml. */
export function validateAgainstCluster(config: FarmConfig, cluster: ClusterConfig): void {
  const errors = crossCheckErrors(config, cluster);
  if (errors.length) throw aggregateConfigErrors(config.file, errors);
}
