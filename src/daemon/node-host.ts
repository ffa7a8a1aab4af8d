// What every `farmlb run` does on its node, whatever decides the bucket table: the data
// plane (program, maps, lease) and the interface setup (sysctls, promiscuous mode, the tc
// egress guard, VIP aliases, arpreroute, node MACs), started and stopped in one order. The
// table source differs between the two modes (src/daemon/farm-daemon.ts): the static table
// of `--static`, or the membership engine.
//
// Order matters for safety (docs/net.md): the program is attached before the VIP alias is
// added and detached only after the alias is gone, so the kernel never holds the VIP
// without the filter in front of it (it would accept every flow).
//   start: node MACs resolved → tables applied, lease set, program attached → sysctls,
//          promiscuous mode → tc egress NS guard (IPv6) → VIP aliases → whatever a killed
//          run left and this config no longer wants, undone → arpreroute for the buckets
//          this node took.
//   stop:  arpreroute and MAC resolution stopped → lease revoked → (tcpreset, the VIPs
//          still configured, as SafeKit does) → aliases removed → tc egress guard detached →
//          sysctls, promiscuous mode restored → program detached → pins removed → the state
//          record removed.
// Every change is recorded in <run-dir>/netstate.json before it is made (src/net/setup.ts),
// so a restart after SIGKILL adopts what was left instead of leaking it.

import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { ClusterConfig, FarmConfig, VmacMode } from '../config/types.js';
import { bucketRows, compileTables } from '../balance/compile.js';
import type { BucketTable } from '../balance/assign.js';
import type { DataplaneTables } from '../dataplane/types.js';
import { FarmlbError } from '../errors.js';
import { ArpReroute, type ArpRerouteStats, type RerouteInterface } from '../net/arpreroute.js';
import { findInterfaceForVip } from '../net/ip.js';
import { NodeMacResolver, type NeighbourSystem } from '../net/neighbours.js';
import type { RecordedXdp } from '../net/netstate.js';
import { NetSetup, type InterfacePlan, type NetPlan } from '../net/setup.js';
import type { RequestedXdpMode, XdpModeDecision } from '../net/xdp-mode.js';
import { ensurePrivateDir, namesFile, type InstancePaths } from '../paths.js';
import { realHostPort, type HostDataplane, type HostPort } from './host-port.js';

export interface NodeHostOptions {
  farm: FarmConfig;
  cluster: ClusterConfig;
  node: string;
  paths: InstancePaths;
  xdpMode: RequestedXdpMode;
  log: Logger;
  /** For tests: how peers' MACs are found (overrides the port's). */
  neighbours?: NeighbourSystem;
  /** The kernel as NodeHost uses it (default: the node itself; unit tests: test/helpers/fake-host.ts). */
  port?: HostPort;
}

export interface HostStart {
  /** The first table to serve. */
  table: BucketTable;
  /** The first lease deadline (CLOCK_MONOTONIC ns); 0n = serve nothing until told. */
  leaseDeadlineNs: bigint;
  /** arpreroute for the buckets of `table` this node takes (static mode: it (re)joins now). */
  announce: boolean;
}

/** A VIP as bound to this node's interface. */
export interface BoundVip {
  ifname: string;
  addr: string;
  prefixlen: number;
  family: 4 | 6;
  mode: VmacMode;
}

/** The XDP program on one interface, as `farmlb status` shows it. */
export interface InterfaceXdp {
  ifname: string;
  vmacMode: VmacMode;
  /** --xdp-mode. */
  requested: RequestedXdpMode;
  /** The mode the program runs in. */
  xdpMode: 'native' | 'generic';
  /** Why this mode: the decision (src/net/xdp-mode.ts) or the kernel's reason for a fallback. */
  reason: string;
  /** A limit of this mode the operator must know about. */
  warning?: string;
}

export class NodeHost {
  private dp: HostDataplane | undefined;
  // Opened before the data plane: whatever start() did is in its record.
  private net: NetSetup | undefined;
  private stopping: Promise<void> | undefined;
  private farmConfig: FarmConfig;
  private plan: NetPlan | undefined;
  private boundVips: BoundVip[] = [];
  private xdpInterfaces: InterfaceXdp[] = [];
  private resolver: NodeMacResolver | undefined;
  private reroute: ArpReroute | undefined;
  private leaseDeadline = 0n;
  /** Table changes one at a time (reload, a node's MAC learnt, a new membership table). */
  private tableQueue: Promise<void> = Promise.resolve();

  private readonly port: HostPort;

  constructor(private readonly opts: NodeHostOptions) {
    this.farmConfig = opts.farm;
    this.port = opts.port ?? realHostPort;
  }

  get farm(): FarmConfig {
    return this.farmConfig;
  }

  /** The VIPs as bound to interfaces (known once start() resolved them). */
  vips(): readonly BoundVip[] {
    return this.boundVips;
  }

  /** Each interface's XDP mode and why (known once start() attached the program). */
  interfaces(): readonly InterfaceXdp[] {
    return this.xdpInterfaces;
  }

  /** Tables in force (node MACs filled in). */
  tables(): DataplaneTables | undefined {
    return this.dp?.tables();
  }

  /** The lease deadline last written (CLOCK_MONOTONIC ns; 0n = revoked). */
  leaseDeadlineNs(): bigint {
    return this.leaseDeadline;
  }

  arprerouteStats(): ArpRerouteStats {
    return this.reroute?.stats() ?? { rounds: 0, framesSent: 0, sendErrors: 0 };
  }

  /** DataplaneTables for a bucket table, with the node MACs currently known. */
  compile(table: BucketTable, farm: FarmConfig = this.farmConfig): DataplaneTables {
    const t = compileTables(farm, this.opts.cluster, table, this.opts.node);
    const macs = this.dp?.tables()?.nodeMacs ?? this.resolver?.macs();
    return macs ? withNodeMacs(t, macs) : t;
  }

  async start(first: HostStart): Promise<void> {
    const { cluster, node, paths, log } = this.opts;
    const farm = this.farmConfig;
    if (!cluster.nodes.includes(node)) {
      throw new FarmlbError('FARMLB_E_RUN_NODE_UNKNOWN', { node, file: cluster.file, nodes: cluster.nodes.join(', ') });
    }
    const bound = (this.boundVips = await resolveInterfaces(farm, this.port));
    const plan = (this.plan = planNetwork(bound));
    let tables = compileTables(farm, cluster, first.table, node);
    // Before anything is changed: a refused mode (native on a veth that cannot deliver
    // XDP_TX) must leave the node as it was.
    const decisions = new Map<string, XdpModeDecision>();
    for (const { ifname, mode: vmacMode } of plan.interfaces) {
      decisions.set(ifname, await this.port.chooseXdpMode(ifname, vmacMode, this.opts.xdpMode, log.child({ room: 'net', iface: ifname })));
    }
    try {
      // Before the first apply: a directed node forwards to its peers' MACs from the first packet.
      this.resolver = this.makeResolver(plan);
      if (this.resolver) {
        await this.resolver.resolve();
        tables = withNodeMacs(tables, this.resolver.macs());
      }
      // Before anything is read back from them (netstate.json, pins): ours alone (docs/security.md).
      await ensurePrivateDir(paths.runDir, 'run directory');
      if (existsSync(paths.pinDir)) await ensurePrivateDir(paths.pinDir, 'pin directory');
      const net = (this.net = await NetSetup.open({ runDir: paths.runDir, log: log.child({ room: 'net' }), system: this.port.net }));
      await net.recordPinDir(paths.pinDir);
      this.dp = await this.port.openDataplane({ pinDir: paths.pinDir, log: log.child({ room: 'dataplane' }) });
      // What a killed run left in the pinned maps: the buckets this node already served need no reroute.
      const adopted = this.dp.tables();
      // The lease first: a killed run's deadline may still be running, and the new table
      // must not be served on it unless this run says so.
      await this.setLease(first.leaseDeadlineNs);
      await this.dp.apply(tables);
      const progId = this.dp.programId();
      for (const { ifname, mode: vmacMode } of plan.interfaces) {
        const decision = decisions.get(ifname)!;
        // A program a killed run left on this interface is swapped atomically (XDP_FLAGS_REPLACE).
        await net.attaching(ifname, progId);
        const mode = await this.dp.attach(ifname, decision.mode);
        await net.attached(ifname, progId);
        const reason = mode.fallbackReason ? `native failed, generic instead: ${mode.fallbackReason}` : decision.reason;
        this.xdpInterfaces.push({ ifname, vmacMode, requested: this.opts.xdpMode, xdpMode: mode.mode, reason, ...(decision.warning ? { warning: decision.warning } : {}) });
        log.info({ event: 'xdp_attached', iface: ifname, mode: mode.mode, reason, fallbackReason: mode.fallbackReason }, 'XDP program attached');
      }
      await net.configureInterfaces(plan);
      // The IPv6 NS-source guard: before the VIPs exist, so no NS from a VIP leaves with
      // this node's MAC in it (docs/net.md).
      for (const ifname of egressInterfaces(plan)) {
        await net.attachingEgress(ifname);
        await this.dp.attachEgress(ifname);
        log.info({ event: 'egress_attached', iface: ifname }, 'tc egress NS guard attached');
      }
      await net.addAliases(plan);
      const stale = await net.removeStale(plan, { progIds: [progId], pinDir: paths.pinDir });
      for (const ifname of net.staleEgress(egressInterfaces(plan))) await this.detachEgress(ifname);
      for (const x of stale.xdp) await this.detachRecorded(x);
      for (const dir of stale.pinDirs) {
        this.port.unpinDir(dir);
        await net.forgetPinDir(dir);
      }
      await ensurePrivateDir(paths.runDir, 'run directory');
      await writeFile(namesFile(paths.runDir), JSON.stringify({
        node,
        nodes: cluster.nodes,
        groups: farm.groups.map((g) => g.name),
        vips: farm.vips.map((v) => v.addr),
        configFile: farm.file,
        clusterFile: cluster.file,
      }, null, 2));
      this.reroute = new ArpReroute({
        requesters: () => this.dp!.requesters(),
        openSocket: (ifname) => this.port.openRawSocket(ifname),
        log: log.child({ room: 'net', module: 'arpreroute' }),
      });
      this.reroute.configure(await this.rerouteInterfaces(farm, bound, tables));
      // After a killed run only the buckets the adopted table did not already give this node.
      if (first.announce) this.reroute.tablesChanged(adopted, tables);
      this.resolver?.start((macs) => {
        this.changeTables((current) => withNodeMacs(current, macs), 'node MAC changed').catch((err) =>
          log.error({ err, event: 'tables_apply_failed' }, 'could not apply the new node MACs'));
      });
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Writes the kernel lease deadline (CLOCK_MONOTONIC ns; 0n revokes it). */
  async setLease(deadlineNs: bigint): Promise<void> {
    if (!this.dp || this.stopping) return;
    await this.dp.setLease(deadlineNs);
    this.leaseDeadline = deadlineNs;
  }

  /**
   * Writes a lease renewal at once, ahead of a table change under way: the data plane's lease
   * write does not wait for an install (XdpDataplane.setLease). For renewals the membership
   * lets overtake its queued decisions (src/membership/lease-gate.ts). False when there is no
   * data plane or the host is stopping.
   */
  renewLease(deadlineNs: bigint): boolean {
    return this.writeLeaseAtOnce(deadlineNs, 'renewal');
  }

  /**
   * Revokes the lease at once, ahead of a table change under way: a lease of 0 holds for any
   * table the data plane has or gets. For a node whose own checks fail (farm-daemon.ts
   * pushLocalHealth). False when there is no data plane or the host is stopping.
   */
  revokeLeaseNow(): boolean {
    return this.writeLeaseAtOnce(0n, 'revocation');
  }

  private writeLeaseAtOnce(deadlineNs: bigint, what: 'renewal' | 'revocation'): boolean {
    if (!this.dp || this.stopping) return false;
    this.dp.setLease(deadlineNs).catch((err: unknown) =>
      this.opts.log.error({ err, event: 'lease_write_failed' }, `could not write the lease ${what}`));
    this.leaseDeadline = deadlineNs;
    return true;
  }

  /**
   * A membership decision: only who owns each bucket changes (Dataplane.applyBuckets, no
   * recompilation of the configuration), and arpreroute is told which buckets moved here.
   * Queued with changeTables: one change at a time.
   */
  changeBuckets(table: BucketTable, why: string): Promise<void> {
    return this.queueChange(why, async (dp) => {
      const rows = bucketRows(this.farmConfig, this.opts.cluster, table);
      await dp.applyBuckets(rows.buckets, rows.prevOwners);
    });
  }

  /**
   * Applies `make(current)` and tells arpreroute which buckets moved here: every table
   * change (reload, node MACs, a membership view change through changeBuckets, including one
   * that follows the crash of another node) goes through here. Serialised: one change at a time.
   */
  changeTables(make: (current: DataplaneTables) => DataplaneTables, why: string, beforeReroute?: (next: DataplaneTables) => Promise<void>): Promise<void> {
    return this.queueChange(why, (dp, prev) => dp.apply(make(prev)), beforeReroute);
  }

  /** One table change, after the ones queued before it: `write` changes the data plane's tables. */
  private queueChange(
    why: string,
    write: (dp: HostDataplane, prev: DataplaneTables) => Promise<void>,
    beforeReroute?: (next: DataplaneTables) => Promise<void>,
  ): Promise<void> {
    const step = this.tableQueue.then(async () => {
      const dp = this.dp;
      const prev = dp?.tables();
      if (!dp || !prev || this.stopping) return;
      await write(dp, prev);
      const next = dp.tables() ?? prev;
      this.opts.log.info({ event: 'tables_applied', why, buckets: ownedCount(next.buckets, next.selfNode) }, `tables applied (${why})`);
      await beforeReroute?.(next);
      this.reroute?.tablesChanged(prev, next);
    });
    this.tableQueue = step.catch(() => undefined);
    return step;
  }

  /**
   * Checks that a re-read configuration can be applied in place: same nodes, same
   * interfaces, VIPs and VMAC modes. Throws FARMLB_E_RUN_RELOAD_NEEDS_RESTART otherwise.
   */
  async checkReload(farm: FarmConfig, cluster: ClusterConfig | undefined): Promise<{ farm: FarmConfig; cluster: ClusterConfig; bound: BoundVip[] }> {
    if (!cluster || cluster.nodes.join('\n') !== this.opts.cluster.nodes.join('\n')) {
      throw new FarmlbError('FARMLB_E_RUN_RELOAD_NEEDS_RESTART', { detail: `the nodes of ${this.opts.cluster.file} changed` });
    }
    const bound = await resolveInterfaces(farm, this.port);
    if (JSON.stringify(planNetwork(bound)) !== JSON.stringify(this.plan)) {
      throw new FarmlbError('FARMLB_E_RUN_RELOAD_NEEDS_RESTART', { detail: 'interfaces, VIPs or VMAC modes changed' });
    }
    return { farm, cluster, bound };
  }

  /** Applies a reloaded configuration (checked by checkReload) with the table `table`. */
  async applyReload(checked: { farm: FarmConfig; bound: BoundVip[] }, table: BucketTable): Promise<void> {
    const fresh = compileTables(checked.farm, this.opts.cluster, table, this.opts.node);
    await this.changeTables((current) => withNodeMacs(fresh, current.nodeMacs), 'reload', async (next) => {
      this.farmConfig = checked.farm;
      this.reroute?.configure(await this.rerouteInterfaces(checked.farm, checked.bound, next));
    });
  }

  /** Adds the VIP aliases again (idempotent: `ip addr replace`), e.g. after one was removed by hand. */
  async ensureAliases(): Promise<void> {
    if (!this.net || !this.plan || this.stopping) return;
    await this.net.addAliases(this.plan);
  }

  /**
   * The one cleanup path: undoes start() in reverse order; idempotent. `beforeAliases` runs
   * once the lease is revoked and while the VIPs are still configured (tcpreset: SafeKit
   * resets the connections before it unconfigures the VIP, so the RSTs leave from an
   * address the node still holds).
   */
  stop(hooks: { beforeAliases?: () => Promise<void> } = {}): Promise<{ clean: boolean }> {
    this.stopping ??= this.doStop(hooks);
    return this.stopping.then(() => ({ clean: this.stopProblems === 0 }));
  }

  private stopProblems = 0;

  private async doStop(hooks: { beforeAliases?: () => Promise<void> }): Promise<void> {
    const { log, paths } = this.opts;
    this.resolver?.stop();
    this.reroute?.stop();
    // A table change in flight finishes first (it no-ops once stopping is set).
    await this.tableQueue;
    const attempt = async (what: string, fn: () => Promise<void>) => {
      try { await fn(); } catch (err) { this.stopProblems++; log.error({ err, event: 'stop_step_failed', step: what }, `stop: ${what} failed`); }
    };
    const net = this.net;
    const dp = this.dp;
    // The lease first: from here the program takes no VIP packet and answers no ARP/ND, so
    // no new connection lands here while the connections are reset and the aliases go.
    if (dp) await attempt('revoke lease', async () => { await dp.setLease(0n); this.leaseDeadline = 0n; });
    if (hooks.beforeAliases) await attempt('before the VIPs are removed', hooks.beforeAliases);
    // Then the aliases and, if that fails, nothing that filters them is undone: a VIP left
    // up must keep its program (and the record, for the next run to finish the job).
    let aliasesGone = true;
    if (net) await attempt('remove VIP aliases', async () => {
      try { await net.removeAliases(); } catch (err) { aliasesGone = false; throw err; }
    });
    if (net && aliasesGone) {
      for (const ifname of net.record().egress.reverse()) await attempt(`detach the egress guard from ${ifname}`, () => this.detachEgress(ifname));
    }
    if (net && aliasesGone) await attempt('restore sysctls and promiscuous mode', () => net.restoreInterfaces());
    if (net && aliasesGone) {
      // Every recorded program and pin directory: this run's and any a killed run left.
      for (const x of net.record().xdp.reverse()) await attempt(`detach from ${x.ifname}`, () => this.detachRecorded(x));
      for (const dir of net.record().pinDirs) await attempt(`unpin maps in ${dir}`, async () => { this.port.unpinDir(dir); await net.forgetPinDir(dir); });
    }
    if (dp) await attempt('close', () => dp.close());
    this.dp = undefined;
    await attempt('remove run files', () => rm(namesFile(paths.runDir), { force: true }));
    if (net) await attempt('update the interface state record', async () => {
      if (!(await net.finish())) log.warn({ event: 'netstate_kept', record: net.record() }, 'not everything was undone; the next run finishes it');
    });
  }

  /** Detaches a recorded program if it is still the one attached (a vanished interface took it with it). */
  private async detachRecorded(x: RecordedXdp): Promise<void> {
    let ifindex: number;
    try {
      ifindex = this.port.ifindex(x.ifname);
    } catch (err) {
      if ((err as FarmlbError).code !== 'FARMLB_E_XDP_NO_IFACE') throw err;
      await this.net?.forgetXdp(x);
      return;
    }
    if (await this.port.xdpDetach(ifindex, { expectedProgId: x.progId })) {
      this.opts.log.info({ event: 'xdp_detached', iface: x.ifname, progId: x.progId }, 'XDP program detached');
    }
    await this.net?.forgetXdp(x);
  }

  /** Detaches the tc egress guard from a recorded interface (a vanished interface took it with it). */
  private async detachEgress(ifname: string): Promise<void> {
    try {
      this.port.ifindex(ifname);
    } catch (err) {
      if ((err as FarmlbError).code !== 'FARMLB_E_XDP_NO_IFACE') throw err;
      await this.net?.forgetEgress(ifname);
      return;
    }
    if (!this.dp) throw new FarmlbError('FARMLB_E_INTERNAL', { detail: `no data plane to detach the egress guard from ${ifname}` });
    await this.dp.detachEgress(ifname);
    this.opts.log.info({ event: 'egress_detached', iface: ifname }, 'tc egress NS guard detached');
    await this.net?.forgetEgress(ifname);
  }

  /** Node MACs matter for vmac_directed forwarding: resolved on the first directed interface. */
  private makeResolver(plan: NetPlan): NodeMacResolver | undefined {
    const { cluster, node, log } = this.opts;
    const neighbours = this.opts.neighbours ?? this.port.neighbours;
    const directed = plan.interfaces.filter((i) => i.mode === 'vmac_directed');
    if (directed.length === 0) return undefined;
    if (directed.length > 1) {
      // farmlb_nodes holds one MAC per node: a second directed LAN would need its own.
      log.warn({ event: 'node_macs_one_lan', iface: directed[0]!.ifname, others: directed.slice(1).map((i) => i.ifname) },
        'forwarding to node MACs learnt on the first vmac_directed interface only');
    }
    return new NodeMacResolver({
      ifname: directed[0]!.ifname,
      nodes: cluster.nodes.map((name, id) => ({ id, name, addrs: cluster.lans.flatMap((l) => l.nodes.filter((n) => n.name === name).map((n) => n.addr)) })),
      selfId: cluster.nodes.indexOf(node),
      size: cluster.nodes.length,
      log: log.child({ room: 'net', module: 'neighbours' }),
      ...(neighbours ? { system: neighbours } : {}),
    });
  }

  /** vmac_directed interfaces with arpreroute on, with their MAC and the VIPs they hold. */
  private async rerouteInterfaces(farm: FarmConfig, bound: BoundVip[], tables: DataplaneTables): Promise<RerouteInterface[]> {
    const out: RerouteInterface[] = [];
    for (const intf of farm.interfaces) {
      if (intf.type !== 'vmac_directed' || !intf.arpreroute) continue;
      const ifname = bound.find((b) => intf.addrs.some((a) => a.addr === b.addr))?.ifname;
      if (!ifname) continue;
      const ids = new Set(intf.addrs.map((a) => a.id));
      const vips = tables.vips.filter((v) => ids.has(v.id)).map((v) => ({ id: v.id, addr: v.addr, family: v.family, arpGroup: v.arpGroup }));
      const existing = out.find((o) => o.ifname === ifname);
      if (existing) {
        existing.vips.push(...vips);
        continue;
      }
      out.push({ ifname, mac: await this.port.linkMac(ifname), intervalMs: intf.arpintervalMs, elapseMs: intf.arpelapseMs, vips });
    }
    return out;
  }
}

async function resolveInterfaces(farm: FarmConfig, port: HostPort): Promise<BoundVip[]> {
  const addrs = await port.listAddrs();
  const bound: BoundVip[] = [];
  for (const intf of farm.interfaces) {
    for (const v of intf.addrs) {
      const subnet = findInterfaceForVip(addrs.filter((a) => !intf.name || a.ifname === intf.name), v.addr, v.family);
      const ifname = intf.name ?? subnet?.ifname;
      if (!ifname) {
        throw new FarmlbError('FARMLB_E_NET_NO_INTERFACE', { vip: v.addr }, { location: { ...intf.src, attribute: 'name' } });
      }
      const prefixlen = v.prefixLen ?? subnet?.prefixlen ?? (v.family === 4 ? 32 : 128);
      bound.push({ ifname, addr: v.addr, prefixlen, family: v.family, mode: intf.type });
    }
  }
  return bound;
}

/** One entry per interface (its mode and VIP families) and the aliases, in config order. */
function planNetwork(vips: BoundVip[]): NetPlan {
  const interfaces: InterfacePlan[] = [];
  for (const v of vips) {
    const intf = interfaces.find((i) => i.ifname === v.ifname);
    if (!intf) {
      interfaces.push({ ifname: v.ifname, mode: v.mode, families: [v.family] });
      continue;
    }
    if (intf.mode !== v.mode) {
      throw new FarmlbError('FARMLB_E_NET_IFACE_MODE_CONFLICT', { iface: v.ifname, first: intf.mode, second: v.mode });
    }
    if (!intf.families.includes(v.family)) intf.families.push(v.family);
  }
  return { interfaces, aliases: vips.map((v) => ({ ifname: v.ifname, addr: v.addr, prefixlen: v.prefixlen })) };
}

/** Interfaces that need the tc egress NS guard: those holding an IPv6 VIP. */
function egressInterfaces(plan: NetPlan): string[] {
  return plan.interfaces.filter((i) => i.families.includes(6)).map((i) => i.ifname);
}

/** The tables with each node's MAC on the VIP LAN (null = unknown: frames it owns are not forwarded). */
export function withNodeMacs(tables: DataplaneTables, macs: readonly (string | null)[]): DataplaneTables {
  return { ...tables, nodeMacs: tables.nodeMacs.map((_, id) => macs[id] ?? null) };
}

export function ownedCount(buckets: number[][], self: number): number {
  return buckets.reduce((n, row) => n + row.filter((o) => o === self).length, 0);
}
