// Corosync's configuration from what the operator already has (cluster.xml and the farm's
// <farm> LANs), and the check that the corosync a daemon talks to runs that configuration.
// Pure: `farmlb corosync-conf` writes the text, the daemon hands in what cmap reported.
//
// Node ids are cluster.xml's order + 1 (corosync reserves 0), names are cluster.xml's, ring0
// is the node's address on the farm's first LAN. Timing for sub-second failover on a LAN
// (LAB-NOTES, "Corosync 3 in network namespaces"): udpu with token_coefficient 0 detects a
// failure in ≈ 2.15 × token; the token is 300 ms (≈ 650 ms), the smallest that stays stable
// under 20% packet loss with the most token resends corosync allows; knet at ≤ 300 ms flaps,
// so knet gets 1000 ms (≈ 2.1 s) — with the encryption udpu cannot do.

import type { CorosyncRunningConfig } from '../../addon/native.js';
import type { ClusterConfig, FarmConfig } from '../../config/types.js';

export type CorosyncTransport = 'udpu' | 'knet';

export interface CorosyncConfOptions {
  farm: Pick<FarmConfig, 'farm' | 'farmlb'>;
  cluster: ClusterConfig;
  transport: CorosyncTransport;
  /** totem token, ms (default 200 for udpu, 1000 for knet). */
  tokenMs?: number;
  /** cluster_name (default farmlb-<module>). */
  clusterName?: string;
  /** A qnetd witness for a two-node farm: its address (corosync-qdevice, model net, ffsplit). */
  qnetdHost?: string;
  /** knet only: the authkey corosync reads (default /etc/corosync/authkey). */
  authkeyFile?: string;
}

/**
 * udpu 300 ms: the smallest token that stayed free of ring re-formations at 20% packet loss
 * here (200 re-formed the ring about every 25 s: docs/benchmarks.md); failure detection ≈ 2.15 × token.
 */
export const DEFAULT_TOKEN_MS: Record<CorosyncTransport, number> = { udpu: 300, knet: 1000 };
/**
 * token_retransmits_before_loss_const for a token (corosync's default is 4): as many resends
 * as corosync allows (each at least 30 ms apart: token / (n + 0.2) ≥ 30), at most 10. At 20%
 * packet loss a token is lost with probability 0.2^(n+1) per hop: 4 loses it every few
 * seconds, 6 (token 200) about every ten minutes, 9 (token 300) about once a day.
 */
export function tokenRetransmits(tokenMs: number): number {
  return Math.max(4, Math.min(10, Math.floor(tokenMs / 30 - 0.2)));
}

/** The LANs that carry the membership: <farm><lan> if given, else every LAN of cluster.xml. */
function membershipLans(farm: CorosyncConfOptions['farm'], cluster: ClusterConfig): ClusterConfig['lans'] {
  const names = farm.farm?.lans ?? [];
  return names.length > 0 ? cluster.lans.filter((l) => names.includes(l.name)) : cluster.lans;
}

/** Problems that make a corosync.conf impossible (empty: fine). */
export function corosyncConfProblems(opts: CorosyncConfOptions): string[] {
  const lans = membershipLans(opts.farm, opts.cluster);
  const problems: string[] = [];
  if (lans.length === 0) problems.push('cluster.xml has no LAN for the membership');
  const first = lans[0];
  if (first) {
    for (const n of opts.cluster.nodes) {
      if (!first.nodes.some((x) => x.name === n)) problems.push(`node ${n} has no address on LAN ${first.name}, corosync's ring0`);
    }
  }
  if (opts.qnetdHost !== undefined && opts.cluster.nodes.length !== 2) {
    problems.push(`a qnetd witness is for two-node farms (this one has ${opts.cluster.nodes.length}; votequorum's majority needs none)`);
  }
  const token = opts.tokenMs ?? DEFAULT_TOKEN_MS[opts.transport];
  if (!Number.isInteger(token) || token < 100 || token > 60_000) problems.push(`token ${token} ms: use 100..60000`);
  return problems;
}

/** corosync.conf for the farm (check corosyncConfProblems first). */
export function corosyncConf(opts: CorosyncConfOptions): string {
  const lans = membershipLans(opts.farm, opts.cluster);
  // udpu carries one ring; knet a link per LAN (corosync allows 8).
  const rings = opts.transport === 'udpu' ? lans.slice(0, 1) : lans.slice(0, 8);
  const token = opts.tokenMs ?? DEFAULT_TOKEN_MS[opts.transport];
  const name = opts.clusterName ?? `farmlb-${opts.farm.farmlb.module}`;
  const twoNode = opts.cluster.nodes.length === 2;
  const lines: string[] = [
    `# Written by farmlb corosync-conf from ${opts.cluster.file}: the same file on every node.`,
    '# farmlb checks at start that the running corosync has this nodelist (names, ids, ring0).',
    'totem {',
    '  version: 2',
    `  cluster_name: ${name}`,
    `  transport: ${opts.transport}`,
    `  token: ${token}`,
    '  # The token stays as written whatever the number of nodes (the default adds 650 ms per node beyond two).',
    '  token_coefficient: 0',
    '  # The token is resent every token / (this + 0.2) ms before it counts as lost: with the default',
    '  # 4, 20% packet loss loses it every few seconds and re-forms the ring (no delivery meanwhile).',
    '  # Failure detection does not change (token + consensus).',
    `  token_retransmits_before_loss_const: ${tokenRetransmits(token)}`,
  ];
  if (opts.transport === 'knet') {
    lines.push('  crypto_cipher: aes256', '  crypto_hash: sha256', `  keyfile: ${opts.authkeyFile ?? '/etc/corosync/authkey'}`);
  } else {
    lines.push('  # udpu cannot encrypt or authenticate (corosync 3 does that for knet only); farmlb signs its', '  # own messages with <farmlb key_file>, but totem itself is open to the LAN: see docs/membership.md.', '  crypto_cipher: none', '  crypto_hash: none');
  }
  lines.push('}', '', 'quorum {', '  provider: corosync_votequorum');
  if (twoNode && opts.qnetdHost !== undefined) {
    lines.push('  device {', '    model: net', '    votes: 1', '    net {', `      host: ${opts.qnetdHost}`, '      algorithm: ffsplit', '      tls: on', '    }', '  }');
  } else if (twoNode) {
    lines.push('  # Two nodes without a witness: both halves of a split stay quorate (split brain). Add a', '  # qnetd witness (--qnetd HOST) for <farmlb split_brain="quorum">.', '  two_node: 1');
  }
  lines.push('}', '', 'nodelist {');
  opts.cluster.nodes.forEach((n, i) => {
    lines.push('  node {', `    nodeid: ${i + 1}`, `    name: ${n}`);
    rings.forEach((lan, r) => {
      const addr = lan.nodes.find((x) => x.name === n)?.addr;
      if (addr !== undefined) lines.push(`    ring${r}_addr: ${addr}`);
    });
    lines.push('  }');
  });
  lines.push('}', '', 'logging {', '  to_syslog: yes', '  to_stderr: no', '  timestamp: on', '}', '');
  return lines.join('\n');
}

/**
 * What differs between the running corosync's nodelist and cluster.xml, one sentence per
 * difference (empty: they match). `self` is this daemon's --node.
 */
export function nodelistProblems(running: CorosyncRunningConfig, cluster: ClusterConfig, self: string): string[] {
  const problems: string[] = [];
  if (running.nodes.length === 0) return ['corosync has no nodelist (farmlb needs one: farmlb corosync-conf writes it)'];
  const addrs = new Map<string, string[]>();
  for (const lan of cluster.lans) for (const n of lan.nodes) addrs.set(n.name, [...(addrs.get(n.name) ?? []), n.addr]);
  const ids = new Set<number>();
  running.nodes.forEach((n, i) => {
    const label = n.name ?? `#${i} (${n.ring0Addr ?? 'no address'})`;
    if (n.name === undefined) problems.push(`corosync's node ${label} has no name`);
    else if (!cluster.nodes.includes(n.name)) problems.push(`corosync's node ${n.name} (nodeid ${n.nodeid ?? '?'}) is not in cluster.xml`);
    if (n.nodeid === undefined) problems.push(`corosync's node ${label} has no nodeid`);
    else if (ids.has(n.nodeid)) problems.push(`nodeid ${n.nodeid} twice in corosync's nodelist`);
    else ids.add(n.nodeid);
    if (n.name !== undefined && addrs.has(n.name) && n.ring0Addr !== undefined && !addrs.get(n.name)!.includes(n.ring0Addr)) {
      problems.push(`${n.name}'s ring0_addr ${n.ring0Addr} is none of its cluster.xml addresses (${addrs.get(n.name)!.join(', ')})`);
    }
  });
  for (const n of cluster.nodes) {
    if (!running.nodes.some((x) => x.name === n)) problems.push(`${n} is in cluster.xml but not in corosync's nodelist`);
  }
  const local = running.localNodePos !== undefined ? running.nodes[running.localNodePos] : undefined;
  if (!local) problems.push('corosync does not know which node of its nodelist it is');
  else if (local.name !== self) problems.push(`this node's corosync runs as ${local.name ?? '(no name)'}, not as --node ${self}`);
  return problems;
}

/** Corosync node id → node name, from the running nodelist. */
export function nodeNames(running: CorosyncRunningConfig): Map<number, string> {
  const out = new Map<number, string>();
  for (const n of running.nodes) if (n.nodeid !== undefined && n.name !== undefined) out.set(n.nodeid, n.name);
  return out;
}
