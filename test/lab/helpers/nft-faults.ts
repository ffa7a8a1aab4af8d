// Network faults for the membership lab tests, made with nftables (this kernel has no netem,
// LAB-NOTES): a partition drops every IP packet between two sets of node addresses; heartbeat
// loss drops a random share of the membership's UDP datagrams. Rules live in a table of their
// own (inet flb_fault) in each node's namespace, so healing is one `delete table` and the
// namespace's removal takes them with it.
//
// API
//   partition(lab, sides)              sides: node names per side; every node drops traffic
//                                      from and to the nodes of the other sides.
//   heartbeatLoss(lab, percent, opts?) every node drops `percent`% of incoming membership
//                                      datagrams (numgen random), independently per receiver.
//   heal(lab, nodes?)                  remove the fault table from the nodes (default all).

import type { FarmLab } from './farm-lab.js';

const TABLE = 'flb_fault';
export const MEMBERSHIP_PORT = 4800;
/** corosync's totem over udpu (mcastport 5405, the default). */
export const COROSYNC_PORT = 5405;

function addrsOf(lab: FarmLab, nodes: string[]): { v4: string[]; v6: string[] } {
  return { v4: nodes.map((n) => lab.nodeAddr(n, 4)), v6: nodes.map((n) => lab.nodeAddr(n, 6)) };
}

async function load(lab: FarmLab, node: string, rules: string): Promise<void> {
  // Replace, never stack: delete the table if it exists, then add it whole, in one transaction.
  const script = `table inet ${TABLE}\ndelete table inet ${TABLE}\n${rules}\n`;
  await lab.inNode(node, 'nft', ['-f', '-'], { input: script });
}

/** Every node drops IP packets from and to every node of the other sides. */
export async function partition(lab: FarmLab, sides: string[][]): Promise<void> {
  for (const [i, side] of sides.entries()) {
    const others = addrsOf(lab, sides.filter((_, j) => j !== i).flat());
    for (const node of side) {
      await load(lab, node, `table inet ${TABLE} {
  chain in { type filter hook input priority -10; policy accept;
    ip saddr { ${others.v4.join(', ')} } drop
    ip6 saddr { ${others.v6.join(', ')} } drop
  }
  chain out { type filter hook output priority -10; policy accept;
    ip daddr { ${others.v4.join(', ')} } drop
    ip6 daddr { ${others.v6.join(', ')} } drop
  }
}`);
    }
  }
}

/** Every node (or `opts.nodes`) drops `percent`% of the membership datagrams it receives. */
export async function heartbeatLoss(lab: FarmLab, percent: number, opts: { nodes?: string[]; port?: number } = {}): Promise<void> {
  if (!(percent > 0 && percent < 100)) throw new Error(`loss ${percent}%: use 1..99`);
  for (const node of opts.nodes ?? lab.nodeNames()) {
    await load(lab, node, `table inet ${TABLE} {
  chain in { type filter hook input priority -10; policy accept;
    udp dport ${opts.port ?? MEMBERSHIP_PORT} numgen random mod 100 < ${percent} counter drop
  }
}`);
  }
}

/** Packets the loss rule of a node dropped so far (to show the fault was really there). */
export async function droppedByFault(lab: FarmLab, node: string): Promise<number> {
  const { stdout } = await lab.inNode(node, 'nft', ['list', 'chain', 'inet', TABLE, 'in']);
  return [...stdout.matchAll(/counter packets (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
}

export async function heal(lab: FarmLab, nodes: string[] = lab.nodeNames()): Promise<void> {
  for (const node of nodes) {
    await lab.inNode(node, 'nft', ['-f', '-'], { input: `table inet ${TABLE}\ndelete table inet ${TABLE}\n` });
  }
}
