// `farmlb run --static`: the degenerate daemon of this slice. It serves the table computed
// from the configured powers as if every node were up (DESIGN.md) and renews the kernel
// lease from its own liveness. Membership (issue 5) replaces the table source, not this
// start/stop skeleton.
//
// Order matters for safety: the program is attached before the VIP alias is added and
// detached only after the alias is gone, so the kernel never holds the VIP without the
// filter in front of it (it would accept every flow).

import { mkdir, rm, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { ClusterConfig, FarmConfig } from '../config/types.js';
import { compileTables, staticTable } from '../balance/compile.js';
import { XdpDataplane } from '../dataplane/xdp.js';
import { loadNative } from '../dataplane/native.js';
import { FarmlbError } from '../errors.js';
import { addAlias, findInterfaceForVip, listAddrs, removeAlias } from '../net/ip.js';
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
}

export class StaticDaemon {
  private dp: XdpDataplane | undefined;
  private attached: string[] = [];
  private aliases: BoundVip[] = [];
  private renewTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;

  constructor(private readonly opts: StaticDaemonOptions) {}

  async start(): Promise<void> {
    const { farm, cluster, node, paths, log } = this.opts;
    if (!cluster.nodes.includes(node)) {
      throw new FarmlbError('FARMLB_E_RUN_NODE_UNKNOWN', { node, file: cluster.file, nodes: cluster.nodes.join(', ') });
    }
    const tables = compileTables(farm, cluster, staticTable(farm, cluster), node);
    const vips = await this.resolveInterfaces();

    try {
      this.dp = await XdpDataplane.open({ pinDir: paths.pinDir, reusePins: true, log: log.child({ room: 'dataplane' }) });
      await this.dp.apply(tables);
      await this.renewLease();
      for (const ifname of new Set(vips.map((v) => v.ifname))) {
        const mode = await this.dp.attach(ifname, this.opts.xdpMode);
        this.attached.push(ifname);
        log.info({ event: 'xdp_attached', iface: ifname, mode: mode.mode, fallbackReason: mode.fallbackReason }, 'XDP program attached');
      }
      for (const v of vips) {
        await addAlias(v.ifname, v.addr, v.prefixlen);
        this.aliases.push(v);
        log.info({ event: 'vip_added', iface: v.ifname, vip: `${v.addr}/${v.prefixlen}` }, 'VIP alias added');
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
    for (const v of this.aliases.reverse()) await attempt(`remove VIP ${v.addr}`, () => removeAlias(v.ifname, v.addr, v.prefixlen));
    this.aliases = [];
    if (this.dp) {
      const dp = this.dp;
      // With the aliases gone the kernel no longer accepts VIP traffic: the lease can end.
      await attempt('revoke lease', () => dp.setLease(0n));
      for (const ifname of this.attached.reverse()) await attempt(`detach from ${ifname}`, () => dp.detach(ifname));
      await attempt('unpin maps', async () => dp.unpin());
      await attempt('close', () => dp.close());
    }
    this.attached = [];
    this.dp = undefined;
    await attempt('remove run files', () => rm(namesFile(paths.runDir), { force: true }));
    log.info({ event: 'state', state: 'STOP', clean: problems.length === 0 }, 'stopped');
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
        bound.push({ ifname, addr: v.addr, prefixlen });
      }
    }
    return bound;
  }
}

function ownedCount(buckets: number[][], self: number): number {
  return buckets.reduce((n, row) => n + row.filter((o) => o === self).length, 0);
}
