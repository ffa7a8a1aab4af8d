// `farmlb explain`: why a given packet goes where it goes. Follows the rule precedence and
// bucket computation of docs/datapath.md (§4–§6) over the compiled tables, and maps the
// result back to the config (rule source line, group and node names). Pure.

import type { ClusterConfig, Criterion, FarmConfig, Family, Rule, SourceRef, VmacMode } from '../config/types.js';
import { FarmlbError } from '../errors.js';
import {
  CriterionId,
  GROUP_NONE,
  NBUCKETS,
  MAX_NODES,
  NODE_NONE,
  PORT_ANY,
  VIP_ANY,
  type CompiledRule,
  type DataplaneTables,
  type Reason,
} from './tables.js';
import { addrBytes, addrBytes16, bytesToHex } from './addr.js';
import { idsToOwners, rebalance } from './assign.js';
import { groupPowers } from './compile.js';
import { bucketOf } from './hash.js';
import { ruleLookup, winningRule } from './precedence.js';

export interface PacketQuery {
  /** Client (source) address. */
  src: string;
  srcPort?: number;
  /** Destination address; a VIP or not. */
  vip: string;
  vipPort?: number;
  /** 'icmp' = an echo request (ICMP or ICMPv6). */
  proto: 'tcp' | 'udp' | 'icmp';
  /** IPv4 identification, for on_ipid rules. */
  ipid?: number;
}

export interface NodeRef {
  id: number;
  /** Name from cluster.xml; `node<id>` when no cluster is known. */
  name: string;
}

export interface PacketExplanation {
  query: PacketQuery;
  vip?: { id: number; addr: string; family: Family; mode: VmacMode };
  /** The matching rule as configured; absent for ICMP echo (decided by the VIP's ICMP group). */
  rule?: { proto: 'tcp' | 'udp'; vip: string; port: number | '*'; filter: Criterion; src?: SourceRef };
  group?: { index: number; name: string };
  criterion?: Criterion;
  /** The hashed bytes, wire order, hex. */
  criterionBytes?: string;
  bucket?: number;
  /** Owner of the bucket; null = nobody serves it. */
  owner?: NodeRef | null;
  self: NodeRef | null;
  /**
   * The bucket's previous owner while it is handed over (docs/datapath.md §12), null when it
   * is not in handover; set with `bucket`.
   */
  prevOwner?: NodeRef | null;
  /** When the bucket is in handover: whether the handover rule applies to this packet, and what each node does. */
  handover?: HandoverExplanation;
  /**
   * What this node's data plane does with the packet as a client sent it, assuming its
   * lease is valid (else drop_lease). For a TCP packet of a bucket in handover: with a new
   * connection (a SYN); `handover` gives the verdict for a connection this node holds and
   * for any other packet. `tx` = sent on (vmac_directed: tx_forward to the owner).
   */
  reason: Reason;
  verdict: Verdict;
  /** vmac_directed: the node this node forwards the packet to (verdict tx). */
  forwardTo?: NodeRef;
  /** Owner of the bucket if the current owner failed (rebalance without it); needs the cluster. */
  ownerIfOwnerFails?: NodeRef | null;
  /** One sentence for a terminal. */
  summary: string;
}

export type Verdict = 'pass' | 'drop' | 'tx';

export interface HandoverVerdict {
  reason: Reason;
  verdict: Verdict;
  /** vmac_directed: where the packet is forwarded (verdict tx). */
  forwardTo?: NodeRef;
}

export interface HandoverExplanation {
  prevOwner: NodeRef;
  /** False for UDP, ICMP echo and on_ipid rules: they follow the owner at once (§12). */
  applies: boolean;
  /** This node's part in the handover. */
  role: 'prev_owner' | 'owner' | 'neither';
  /** On this node, per kind of packet (applies only): a SYN, a packet of a connection it holds (its socket table), anything else. */
  onThisNode?: { syn: HandoverVerdict; held: HandoverVerdict; other: HandoverVerdict };
  /** What the previous owner and the owner each do, in words. */
  rule: string;
}

export interface ExplainOptions {
  cluster?: ClusterConfig;
  /** Nodes considered up for the failover answer; default: every node owning a bucket in some group. */
  live?: Iterable<string>;
  /**
   * vmac_directed forwarding needs the owner's MAC. 'tables' (a running node's pinned maps):
   * a MAC missing from tables.nodeMacs means the packet is dropped, as the data path does.
   * 'learnt' (default; a table compiled from the config knows no MAC): assume the daemon
   * learnt every node's MAC (docs/net.md, "Node MACs").
   */
  nodeMacs?: 'tables' | 'learnt';
}

const CRITERION_NAMES: Record<number, Criterion> = {
  [CriterionId.Addr]: 'on_addr',
  [CriterionId.Port]: 'on_port',
  [CriterionId.Ipid]: 'on_ipid',
};

function missing(field: string, why: string): FarmlbError {
  return new FarmlbError('FARMLB_E_BALANCE_MISSING_FIELD', { field, why });
}

/** The config rule a compiled rule came from, for its source line. */
function configRule(farm: FarmConfig, compiled: CompiledRule): Rule | undefined {
  const group = farm.groups.find((g) => g.index === compiled.group);
  return group?.rules.find((r) => {
    if (r.proto !== (compiled.proto === 6 ? 'tcp' : 'udp')) return false;
    if ((r.port === '*' ? PORT_ANY : r.port) !== compiled.port) return false;
    if (compiled.vipId === VIP_ANY) return r.vip === '*';
    const vip = farm.vips[compiled.vipId];
    return r.vip !== '*' && vip !== undefined && bytesToHex(addrBytes16(r.vip) ?? new Uint8Array()) === bytesToHex(addrBytes16(vip.addr)!);
  });
}

function nodeRef(id: number, cluster: ClusterConfig | undefined): NodeRef | null {
  if (id === NODE_NONE) return null;
  return { id, name: cluster?.nodes[id] ?? `node${id}` };
}

export function explainPacket(
  farm: FarmConfig,
  tables: DataplaneTables,
  query: PacketQuery,
  opts: ExplainOptions = {},
): PacketExplanation {
  const { cluster } = opts;
  const self = nodeRef(tables.selfNode, cluster);
  const dst = addrBytes16(query.vip);
  if (!dst) throw missing('vip', `${query.vip} is not an IP address`);
  const src = addrBytes(query.src);
  if (!src) throw missing('src', `${query.src} is not an IP address`);

  const dstFamily: Family = addrBytes(query.vip)!.length === 4 ? 4 : 6;
  if ((src.length === 4 ? 4 : 6) !== dstFamily) throw missing('src', `${query.src} and ${query.vip} are not of the same IP family`);
  const vip = tables.vips.find((v) => v.family === dstFamily && bytesToHex(v.addrBytes) === bytesToHex(dst));
  if (!vip) {
    return { query, self, reason: 'pass_not_vip', verdict: 'pass', summary: `${query.vip} is not a VIP: passed to the kernel untouched` };
  }
  const base = { query, self, vip: { id: vip.id, addr: vip.addr, family: vip.family, mode: vip.mode } };

  let groupIndex: number;
  let criterion: Criterion;
  let rule: PacketExplanation['rule'];
  if (query.proto === 'icmp') {
    groupIndex = vip.icmpGroup;
    criterion = 'on_addr';
    if (groupIndex === GROUP_NONE) {
      return { ...base, reason: 'drop_no_rule', verdict: 'drop', summary: `no group covers ${vip.addr}: echo requests are dropped` };
    }
  } else {
    if (query.vipPort === undefined) throw missing('vipPort', 'TCP and UDP rules are chosen by destination port');
    // The same precedence code the model uses (docs/datapath.md §4), so explain cannot drift.
    const compiled = winningRule(ruleLookup(tables.rules), query.proto === 'tcp' ? 6 : 17, vip.id, vip.family, query.vipPort);
    if (!compiled) {
      return { ...base, reason: 'drop_no_rule', verdict: 'drop', summary: `no ${query.proto} rule covers ${vip.addr} port ${query.vipPort}: dropped (SafeKit denies it)` };
    }
    groupIndex = compiled.group;
    criterion = CRITERION_NAMES[compiled.criterion]!;
    const origin = configRule(farm, compiled);
    rule = {
      proto: query.proto,
      vip: compiled.vipId === VIP_ANY ? '*' : vip.addr,
      port: compiled.port === PORT_ANY ? '*' : compiled.port,
      filter: criterion,
      ...(origin ? { src: origin.src } : {}),
    };
  }

  let bytes: Uint8Array;
  if (criterion === 'on_addr') bytes = src;
  else if (criterion === 'on_port') {
    if (query.srcPort === undefined) throw missing('srcPort', 'the rule balances on_port');
    bytes = Uint8Array.of((query.srcPort >> 8) & 0xff, query.srcPort & 0xff);
  } else {
    if (query.ipid === undefined) throw missing('ipid', 'the rule balances on_ipid');
    bytes = Uint8Array.of((query.ipid >> 8) & 0xff, query.ipid & 0xff);
  }

  const bucket = bucketOf(bytes, tables.hashSeed);
  const row = tables.buckets[groupIndex] ?? [];
  const ownerId = row[bucket] ?? NODE_NONE;
  const owner = nodeRef(ownerId, cluster);
  const mine = ownerId !== NODE_NONE && ownerId === tables.selfNode;
  const groupName = farm.groups.find((g) => g.index === groupIndex)?.name ?? `group${groupIndex}`;

  let ownerIfOwnerFails: NodeRef | null | undefined;
  if (cluster && owner && row.length === NBUCKETS) {
    const rows = tables.buckets.map((r) => idsToOwners(r, cluster.nodes));
    const live = new Set(opts.live ?? rows.flat().filter((n): n is string => n !== null));
    live.delete(owner.name);
    const powers = groupPowers(farm, cluster)[groupIndex] ?? new Map<string, number>();
    const next = rebalance(rows[groupIndex] ?? [], powers, live)[bucket] ?? null;
    ownerIfOwnerFails = next === null ? null : { id: cluster.nodes.indexOf(next), name: next };
  }

  const prevId = tables.prevOwners?.[groupIndex]?.[bucket] ?? NODE_NONE;
  const prevOwner = prevId !== NODE_NONE && prevId !== ownerId ? nodeRef(prevId, cluster) : null;
  // The same steps as ModelDataplane (§9, §12), for a frame a client sent (a frame another
  // node forwarded is never forwarded again, except the one second hop of a handover).
  const forward = (to: number, secondHop: boolean, dropReason: Reason): HandoverVerdict => {
    const known = (opts.nodeMacs ?? 'learnt') === 'learnt' || Boolean(tables.nodeMacs?.[to]);
    if (vip.mode !== 'vmac_directed' || to === NODE_NONE || to >= MAX_NODES || !known) return { reason: dropReason, verdict: 'drop' };
    return { reason: secondHop ? 'tx_forward_prev' : 'tx_forward', verdict: 'tx', forwardTo: nodeRef(to, cluster)! };
  };
  const handover = prevOwner
    ? explainHandover(prevOwner, owner, tables.selfNode, query.proto === 'tcp' && criterion !== 'on_ipid', forward)
    : undefined;
  let decided: HandoverVerdict;
  if (handover?.onThisNode && handover.role !== 'neither') decided = handover.onThisNode.syn;
  else if (mine) decided = { reason: 'pass_owned', verdict: 'pass' };
  else decided = forward(ownerId === NODE_NONE && handover?.applies ? prevId : ownerId, false, 'drop_not_owned');
  const { reason, verdict } = decided;

  const who = owner ? owner.name : 'nobody';
  const fwd = (v: HandoverVerdict) => `forwards it to ${v.forwardTo?.name}${v.reason === 'tx_forward_prev' ? ' (the previous owner, second hop)' : ''}`;
  let doing = mine ? 'this node passes it (while its lease is valid)' : verdict === 'tx' ? `this node ${fwd(decided)} (vmac_directed)` : 'this node drops it';
  if (handover?.role === 'owner' && handover.applies) doing = 'this node takes new connections and its own, the previous owner its established ones';
  else if (handover?.role === 'prev_owner' && handover.applies) doing = 'this node keeps only its established connections and takes no new one';
  const summary =
    `${query.proto} ${query.src} → ${vip.addr}${query.vipPort !== undefined && query.proto !== 'icmp' ? `:${query.vipPort}` : ''}: ` +
    `group ${groupName}, ${criterion} bucket ${bucket}, owner ${who}` +
    (prevOwner ? ` (in handover from ${prevOwner.name})` : '') + `; ${doing}`;
  return {
    ...base,
    ...(rule ? { rule } : {}),
    group: { index: groupIndex, name: groupName },
    criterion,
    criterionBytes: bytesToHex(bytes),
    bucket,
    owner,
    prevOwner,
    ...(handover ? { handover } : {}),
    reason,
    verdict,
    ...(decided.forwardTo ? { forwardTo: decided.forwardTo } : {}),
    ...(ownerIfOwnerFails !== undefined ? { ownerIfOwnerFails } : {}),
    summary,
  };
}

/**
 * docs/datapath.md §12 for a bucket whose previous owner is `prev`: the previous owner passes
 * only the packets of connections it holds and never a SYN; the owner passes SYNs and its
 * own connections; neither takes the rest until the handover ends.
 */
function explainHandover(prev: NodeRef, owner: NodeRef | null, self: number, applies: boolean,
  forward: (to: number, secondHop: boolean, dropReason: Reason) => HandoverVerdict): HandoverExplanation {
  const role = self !== NODE_NONE && self === prev.id ? 'prev_owner' : self !== NODE_NONE && self === owner?.id ? 'owner' : 'neither';
  const to = owner?.name ?? 'nobody';
  if (!applies) {
    return { prevOwner: prev, applies, role, rule: `only TCP on_addr/on_port rules are handed over: this packet follows ${to} at once` };
  }
  const pass = (reason: Reason): HandoverVerdict => ({ reason, verdict: 'pass' });
  // What is not this node's goes on in vmac_directed: from the previous owner to the owner,
  // from the owner back to the previous owner (the second hop), from a third node to the
  // owner (to the previous owner while the bucket has no owner); else it is dropped.
  const ownerId = owner?.id ?? NODE_NONE;
  const onThisNode = role === 'prev_owner'
    ? { syn: forward(ownerId, false, 'drop_handover'), held: pass('pass_handover_prev'), other: forward(ownerId, false, 'drop_handover') }
    : role === 'owner'
      ? { syn: pass('pass_handover_new'), held: pass('pass_handover_new'), other: forward(prev.id, true, 'drop_handover') }
      : (() => {
        const v = forward(ownerId === NODE_NONE ? prev.id : ownerId, false, 'drop_not_owned');
        return { syn: v, held: v, other: v };
      })();
  return {
    prevOwner: prev, applies, role, onThisNode,
    rule: `${prev.name} (previous owner) keeps its established connections, ${to} (owner) takes SYNs and its own connections; any other packet is dropped until the handover ends`,
  };
}
