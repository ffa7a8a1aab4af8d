// `farmlb run --static`: the degenerate daemon of this slice. It serves the table computed
// from the configured powers as if every node were up (DESIGN.md) and renews the kernel
// lease from its own liveness. Membership (issue 5) replaces the table source, not this
// start/stop skeleton.
//
// Order matters for safety (docs/net.md): the program is attached before the VIP alias is
// added and detached only after the alias is gone, so the kernel never holds the VIP
// without the filter in front of it (it would accept every flow).
//   start: program attached (lease set) → sysctls, promiscuous mode → VIP aliases →
//          whatever a killed run left and this config no longer wants, undone.
//   stop:  aliases removed → lease revoked → sysctls, promiscuous mode restored →
//          program detached → pins removed → the state record removed.
// Every change is recorded in <run-dir>/netstate.json before it is made (src/net/setup.ts),
// so a restart after SIGKILL adopts what was left instead of leaking it.

import { mkdir, rm, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { ClusterConfig, FarmConfig, VmacMode } from '../config/types.js';
import { compileTables, staticTable } from '../balance/compile.js';
import { XdpDataplane, unpinDir } from '../dataplane/xdp.js';
import { loadNative } from '../dataplane/native.js';
import { FarmlbError } from '../errors.js';
import { findInterfaceForVip, listAddrs } from '../net/ip.js';
import type { RecordedXdp } from '../net/netstate.js';
import { NetSetup, type InterfacePlan, type NetPlan } from '../net/setup.js';
import { namesFile, type InstancePaths } from '../paths.js';

export interface StaticDaemonOptions {
  farm: FarmConfig;
  cluster: ClusterConfig;
  node: string;
  paths: InstancePaths;
  xdpMode: 'auto' | 'native' | 'generic';
  /** How long the kernel accepts VIP traffic without a renewal. */
  leaseMs: number;
  log: Logger;
}

interface BoundVip {
  ifname: string;
  addr: string;
  prefixlen: number;
  family: 4 | 6;
  mode: VmacMode;
}

export class StaticDaemon {
  private dp: XdpDataplane | undefined;
  // Opened before the data plane: whatever start() did is in its record.
  private net: NetSetup | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;

  constructor(private readonly opts: StaticDaemonOptions) {}

  async start(): Promise<void> {
    const { farm, cluster, node, paths, log } = this.opts;
    if (!cluster.nodes.includes(node)) {
      throw new FarmlbError('FARMLB_E_RUN_NODE_UNKNOWN', { node, file: cluster.file, nodes: cluster.nodes.join(', ') });
    }
    const tables = compileTables(farm, cluster, staticTable(farm, cluster), node);
    const plan = planNetwork(await this.resolveInterfaces());

    try {
      const net = (this.net = await NetSetup.open({ runDir: paths.runDir, log: log.child({ room: 'net' }) }));
      await net.recordPinDir(paths.pinDir);
      this.dp = await XdpDataplane.open({ pinDir: paths.pinDir, reusePins: true, log: log.child({ room: 'dataplane' }) });
      await this.dp.apply(tables);
      await this.renewLease();
      const progId = this.dp.programId();
      for (const { ifname } of plan.interfaces) {
        // A program a killed run left on this interface is swapped atomically (XDP_FLAGS_REPLACE).
        await net.attaching(ifname, progId);
        const mode = await this.dp.attach(ifname, this.opts.xdpMode);
        await net.attached(ifname, progId);
        log.info({ event: 'xdp_attached', iface: ifname, mode: mode.mode, fallbackReason: mode.fallbackReason }, 'XDP program attached');
      }
      await net.configureInterfaces(plan);
      // (The IPv6 NS-source guard, a tc egress program, goes here: before the VIPs exist.)
      await net.addAliases(plan);
      const stale = await net.removeStale(plan, { progIds: [progId], pinDir: paths.pinDir });
      for (const x of stale.xdp) await this.detachRecorded(x);
      for (const dir of stale.pinDirs) {
        unpinDir(dir);
        await net.forgetPinDir(dir);
      }
      await mkdir(paths.runDir, { recursive: true, mode: 0o700 });
      await writeFile(namesFile(paths.runDir), JSON.stringify({
        node,
        nodes: cluster.nodes,
        groups: farm.groups.map((g) => g.name),
        vips: farm.vips.map((v) => v.addr),
        configFile: farm.file,
        clusterFile: cluster.file,
      }, null, 2));
      const renewEveryMs = Math.max(50, Math.floor(this.opts.leaseMs / 3));
      this.renewTimer = setInterval(() => {
        this.renewLease().catch((err) => log.error({ err, event: 'lease_renew_failed' }, 'lease renewal failed'));
      }, renewEveryMs);
      log.info({ event: 'state', state: 'UP', node, module: paths.module, buckets: ownedCount(tables.buckets, tables.selfNode) },
        'serving the static table');
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** The one cleanup path: undoes start() in reverse order; idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const { log, paths } = this.opts;
    if (this.renewTimer) clearInterval(this.renewTimer);
    const problems: unknown[] = [];
    const attempt = async (what: string, fn: () => Promise<void>) => {
      try { await fn(); } catch (err) { problems.push(err); log.error({ err, event: 'stop_step_failed', step: what }, `stop: ${what} failed`); }
    };
    const net = this.net;
    const dp = this.dp;
    // The aliases go first and, if that fails, nothing that filters them is undone: a VIP
    // left up must keep its program (and the record, for the next run to finish the job).
    let aliasesGone = true;
    if (net) await attempt('remove VIP aliases', async () => {
      try { await net.removeAliases(); } catch (err) { aliasesGone = false; throw err; }
    });
    if (dp && aliasesGone) {
      // With the aliases gone the kernel no longer accepts VIP traffic: the lease can end.
      await attempt('revoke lease', () => dp.setLease(0n));
    }
    if (net && aliasesGone) await attempt('restore sysctls and promiscuous mode', () => net.restoreInterfaces());
    if (net && aliasesGone) {
      // Every recorded program and pin directory: this run's and any a killed run left.
      for (const x of net.record().xdp.reverse()) await attempt(`detach from ${x.ifname}`, () => this.detachRecorded(x));
      for (const dir of net.record().pinDirs) await attempt(`unpin maps in ${dir}`, async () => { unpinDir(dir); await net.forgetPinDir(dir); });
    }
    if (dp) await attempt('close', () => dp.close());
    this.dp = undefined;
    await attempt('remove run files', () => rm(namesFile(paths.runDir), { force: true }));
    if (net) await attempt('update the interface state record', async () => {
      if (!(await net.finish())) log.warn({ event: 'netstate_kept', record: net.record() }, 'not everything was undone; the next run finishes it');
    });
    log.info({ event: 'state', state: 'STOP', clean: problems.length === 0 }, 'stopped');
  }

  /** Detaches a recorded program if it is still the one attached (a vanished interface took it with it). */
  private async detachRecorded(x: RecordedXdp): Promise<void> {
    const native = loadNative();
    let ifindex: number;
    try {
      ifindex = native.ifindex(x.ifname);
    } catch (err) {
      if ((err as FarmlbError).code !== 'FARMLB_E_XDP_NO_IFACE') throw err;
      await this.net?.forgetXdp(x);
      return;
    }
    if (await native.xdpDetach(ifindex, { expectedProgId: x.progId })) {
      this.opts.log.info({ event: 'xdp_detached', iface: x.ifname, progId: x.progId }, 'XDP program detached');
    }
    await this.net?.forgetXdp(x);
  }

  private async renewLease(): Promise<void> {
    const deadline = loadNative().monotonicNs() + BigInt(this.opts.leaseMs) * 1_000_000n;
    await this.dp!.setLease(deadline);
  }

  private async resolveInterfaces(): Promise<BoundVip[]> {
    const addrs = await listAddrs();
    const bound: BoundVip[] = [];
    for (const intf of this.opts.farm.interfaces) {
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

function ownedCount(buckets: number[][], self: number): number {
  return buckets.reduce((n, row) => n + row.filter((o) => o === self).length, 0);
}
