// FarmDaemon and NodeHost without a kernel: the host port on ModelDataplane and a fake
// network (test/helpers/fake-host.ts). What the lab tests show on veths, here in
// milliseconds and in one list of operations: the start/stop order of docs/net.md, WAIT and
// UP with the lease, tcpreset only when the node itself leaves, a refused reload, and a
// restart that adopts what a killed run left.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/api/control.js';
import type { Metrics } from '../../src/api/metrics.js';
import { loadConfigs } from '../../src/config/index.js';
import type { ClusterConfig, FarmConfig } from '../../src/config/types.js';
import { staticTable } from '../../src/balance/compile.js';
import type { BucketTable } from '../../src/balance/assign.js';
import { FarmDaemon } from '../../src/daemon/farm-daemon.js';
import { NodeHost } from '../../src/daemon/node-host.js';
import { StaticSource } from '../../src/daemon/static-source.js';
import type { SourceSink, SourceView, TableSource } from '../../src/daemon/table-source.js';
import { buildFrame } from '../../src/net/frames.js';
import { netstateFile, readNetState } from '../../src/net/netstate.js';
import type { InstancePaths } from '../../src/paths.js';
import { FakeKernel } from '../helpers/fake-host.js';

const VIP = '192.168.1.222';
const log = pino({ level: 'silent' });
const nowNs = () => process.hrtime.bigint();

function farmXml(opts: { port?: number; vip?: string; type?: string } = {}): string {
  return `<safe><service mode="farm"><farm><lan name="default"/></farm><vip>
  <interface_list><interface check="off"><virtual_interface type="${opts.type ?? 'vmac_directed'}">
    <virtual_addr addr="${opts.vip ?? VIP}" where="alias" check="off"/>
  </virtual_interface></interface></interface_list>
  <loadbalancing_list><group name="web"><rule port="${opts.port ?? 80}" proto="tcp" filter="on_port"/></group></loadbalancing_list>
</vip></service></safe>`;
}

const CLUSTER_XML = `<cluster><lans><lan name="default">
  <node name="node1" addr="192.168.1.1"/><node name="node2" addr="192.168.1.2"/><node name="node3" addr="192.168.1.3"/>
</lan></lans></cluster>`;

let dir: string;
let kernel: FakeKernel;
let paths: InstancePaths;
const daemons: FarmDaemon[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'farmlb-daemon-host-'));
  // Never created (the fake kernel holds the maps), but a record naming a pin directory
  // outside bpffs is refused on adoption (src/net/netstate.ts).
  paths = { module: 'unit', pinDir: `/sys/fs/bpf/farmlb/unit-fake-${path.basename(dir)}`, runDir: path.join(dir, 'run') };
  kernel = new FakeKernel(
    [{ ifname: 'eth0', mac: '02:00:00:00:00:01', addrs: [{ family: 4, local: '192.168.1.1', prefixlen: 24 }] }],
    { '192.168.1.2': '02:00:00:00:00:02', '192.168.1.3': '02:00:00:00:00:03' },
  );
});

afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop();
  await rm(dir, { recursive: true, force: true });
});

async function configs(xml = farmXml()): Promise<{ farm: FarmConfig; cluster: ClusterConfig }> {
  await writeFile(path.join(dir, 'userconfig.xml'), xml);
  await writeFile(path.join(dir, 'cluster.xml'), CLUSTER_XML);
  const loaded = await loadConfigs({ config: path.join(dir, 'userconfig.xml'), cluster: path.join(dir, 'cluster.xml') });
  return { farm: loaded.farm, cluster: loaded.cluster! };
}

async function daemon(source: (c: { farm: FarmConfig; cluster: ClusterConfig }) => TableSource, xml?: string): Promise<FarmDaemon> {
  const c = await configs(xml);
  const d = new FarmDaemon({
    ...c, node: 'node1', paths, xdpMode: 'auto', log, source: source(c), healthPort: 0, reloadOnSighup: false, hostPort: kernel,
  });
  daemons.push(d);
  return d;
}

const staticSource = (c: { farm: FarmConfig; cluster: ClusterConfig }) =>
  new StaticSource({ ...c, node: 'node1', leaseMs: 3_000, nowNs });

/** Index of the first operation matching `re` (fails the test when there is none). */
function at(ops: readonly string[], re: RegExp): number {
  const i = ops.findIndex((o) => re.test(o));
  expect(i, `${re} in ${ops.join(' | ')}`).toBeGreaterThanOrEqual(0);
  return i;
}

async function until(what: string, ok: () => boolean, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('FarmDaemon on the fake host: start and stop (docs/net.md order)', () => {
  it('starts: lease, tables, program, then sysctls, then the VIP alias; serves the static table UP', async () => {
    const d = await daemon(staticSource);
    await d.start();
    const ops = kernel.ops;
    expect(at(ops, /^lease set/)).toBeLessThan(at(ops, /^apply$/));
    expect(at(ops, /^apply$/)).toBeLessThan(at(ops, /^xdp attach eth0/));
    expect(at(ops, /^xdp attach eth0/)).toBeLessThan(at(ops, /^sysctl /));
    expect(at(ops, /^sysctl /)).toBeLessThan(at(ops, /^alias add eth0 192\.168\.1\.222\/24/));
    expect([...kernel.aliases]).toEqual([`eth0 ${VIP}/24`]);
    expect(kernel.xdp.get('eth0')).toBe(kernel.dataplane!.programId());
    await until('UP', () => d.status().state === 'UP');
    expect(kernel.model(paths.pinDir)!.leaseDeadline()).toBeGreaterThan(nowNs());
    expect(existsSync(netstateFile(paths.runDir))).toBe(true);
  });

  it('stops: lease revoked, connections reset, alias removed, then sysctls restored, program detached, pins removed, record gone', async () => {
    kernel.sysctls.set('net/ipv4/conf/eth0/arp_announce', '7');
    const d = await daemon(staticSource);
    await d.start();
    const from = kernel.ops.length;
    await d.stop();
    const ops = kernel.ops.slice(from);
    expect(at(ops, /^lease revoked/)).toBeLessThan(at(ops, /^ss /));
    expect(at(ops, /^ss /)).toBeLessThan(at(ops, /^alias del eth0/));
    expect(at(ops, /^alias del eth0/)).toBeLessThan(at(ops, /^sysctl /));
    expect(at(ops, /^sysctl /)).toBeLessThan(at(ops, /^xdp detach eth0/));
    expect(at(ops, /^xdp detach eth0/)).toBeLessThan(at(ops, /^unpin/));
    expect(kernel.ssCalls).toEqual([['-H', '-K', '-t', 'src', VIP]]);
    expect(kernel.aliases.size).toBe(0);
    expect(kernel.xdp.size).toBe(0);
    expect(kernel.pins.size).toBe(0);
    // The original, not farmlb's own value.
    expect(kernel.sysctls.get('net/ipv4/conf/eth0/arp_announce')).toBe('7');
    expect(existsSync(netstateFile(paths.runDir))).toBe(false);
    expect(d.status().state).toBe('STOP');
  });

  it('a start that fails half-way undoes what it did (the VIP never stays without its program)', async () => {
    const d = await daemon(staticSource);
    kernel.net.addAlias = async () => { throw new Error('RTNETLINK answers: Operation not permitted'); };
    await expect(d.start()).rejects.toThrow(/Operation not permitted/);
    expect(kernel.xdp.size).toBe(0);
    expect(kernel.pins.size).toBe(0);
    expect(kernel.model(paths.pinDir)).toBeUndefined();
  });
});

describe('FarmDaemon on the fake host: WAIT and UP', () => {
  it('farmlb stop: WAIT, lease revoked, the VIP\'s connections reset once; farmlb start: UP with a lease again', async () => {
    const d = await daemon(staticSource);
    await d.start();
    const stopped = await controlRequest(paths.runDir, { cmd: 'stop' }, { module: paths.module }) as { state: string };
    expect(stopped.state).toBe('WAIT');
    expect(kernel.model(paths.pinDir)!.leaseDeadline()).toBe(0n);
    await until('tcpreset', () => kernel.ssCalls.length === 1);
    expect(kernel.ssCalls[0]).toEqual(['-H', '-K', '-t', 'src', VIP]);
    // The alias stays in WAIT: the revoked lease keeps the VIP off the wire.
    expect([...kernel.aliases]).toEqual([`eth0 ${VIP}/24`]);
    const started = await controlRequest(paths.runDir, { cmd: 'start' }, { module: paths.module }) as { state: string };
    expect(started.state).toBe('UP');
    expect(kernel.model(paths.pinDir)!.leaseDeadline()).toBeGreaterThan(nowNs());
    expect(kernel.ssCalls).toHaveLength(1);
  });

  it('tcpreset only for its own WAIT: a WAIT the membership causes resets nothing', async () => {
    let src: ScriptedSource | undefined;
    const d = await daemon((c) => (src = new ScriptedSource(staticTable(c.farm, c.cluster))));
    await d.start();
    await src!.sink!.decide({ state: 'UP', cause: 'serving', leaseDeadlineNs: nowNs() + 3_000_000_000n,
      table: { epoch: 1, table: src!.table, view: ['node1', 'node2', 'node3'], cause: 'first view' } });
    expect(d.status().state).toBe('UP');
    await src!.sink!.decide({ state: 'WAIT', cause: 'waiting for the new leader\'s table' });
    expect(d.status().state).toBe('WAIT');
    expect(kernel.model(paths.pinDir)!.leaseDeadline()).toBe(0n);
    await src!.sink!.decide({ state: 'UP', cause: 'serving', leaseDeadlineNs: nowNs() + 3_000_000_000n });
    expect(d.status().state).toBe('UP');
    await new Promise((r) => setTimeout(r, 20));
    expect(kernel.ssCalls).toEqual([]);
    // The node's own WAIT (farmlb stop) does reset.
    await controlRequest(paths.runDir, { cmd: 'stop' }, { module: paths.module });
    await until('tcpreset', () => kernel.ssCalls.length === 1);
  });
});

describe('FarmDaemon on the fake host: --static refuses runtime powers', () => {
  it('farmlb drain answers FARMLB_E_API_STATIC_MODE and changes nothing', async () => {
    const d = await daemon(staticSource);
    await d.start();
    await until('UP', () => d.status().state === 'UP');
    const before = d.tables();
    await expect(controlRequest(paths.runDir, { cmd: 'drain', node: 'node1' }, { module: paths.module }))
      .rejects.toMatchObject({ code: 'FARMLB_E_API_STATIC_MODE' });
    expect(d.tables()).toEqual(before);
    expect(d.status().state).toBe('UP');
  });
});

describe('FarmDaemon on the fake host: reload', () => {
  it('a refused reload (the VIP changed) keeps the running configuration, tables and state', async () => {
    const d = await daemon(staticSource);
    await d.start();
    const before = d.tables();
    const digest = d.status().configDigest;
    await writeFile(path.join(dir, 'userconfig.xml'), farmXml({ vip: '192.168.1.223' }));
    await expect(d.reload()).rejects.toMatchObject({ code: 'FARMLB_E_RUN_RELOAD_NEEDS_RESTART' });
    expect(d.tables()).toEqual(before);
    expect(d.status().configDigest).toBe(digest);
    expect(d.status().state).toBe('UP');
    expect([...kernel.aliases]).toEqual([`eth0 ${VIP}/24`]);
  });

  it('an accepted reload (a rule\'s port) is applied in place', async () => {
    const d = await daemon(staticSource);
    await d.start();
    const digest = d.status().configDigest;
    await writeFile(path.join(dir, 'userconfig.xml'), farmXml({ port: 8080 }));
    await d.reload();
    expect(JSON.stringify(d.tables()!.rules)).toContain('8080');
    expect(d.status().configDigest).not.toBe(digest);
    expect(d.status().state).toBe('UP');
  });
});

describe('NodeHost on the fake host: a restart after a killed run', () => {
  it('adopts the pinned tables and the record, replaces the program, and a clean stop then restores the originals', async () => {
    kernel.sysctls.set('net/ipv4/conf/eth0/arp_announce', '5');
    const c = await configs(farmXml({ type: 'vmac_invisible' }));
    const opts = { ...c, node: 'node1', paths, xdpMode: 'auto' as const, log, port: kernel };
    const first = { table: staticTable(c.farm, c.cluster), leaseDeadlineNs: nowNs() + 3_000_000_000n, announce: true };
    const killed = new NodeHost(opts);
    await killed.start(first);
    const oldProg = kernel.xdp.get('eth0')!;
    const adoptedTables = kernel.model(paths.pinDir)!.tables();
    expect(kernel.promisc.has('eth0')).toBe(true);
    // kill -9: nothing undone. The next run starts on what it left.
    const host = new NodeHost(opts);
    await host.start({ ...first, leaseDeadlineNs: 0n });
    expect(kernel.xdp.get('eth0')).not.toBe(oldProg);
    expect(kernel.xdp.get('eth0')).toBe(kernel.dataplane!.programId());
    expect(host.tables()).toEqual(adoptedTables);
    expect([...kernel.aliases]).toEqual([`eth0 ${VIP}/24`]);
    const record = await readNetState(paths.runDir);
    expect(record!.xdp.map((x) => x.progId)).toEqual([kernel.dataplane!.programId()]);
    // The originals the killed run recorded, not farmlb's settings.
    expect(record!.sysctls.find((s) => s.key === 'net/ipv4/conf/eth0/arp_announce')?.original).toBe('5');
    const { clean } = await host.stop();
    expect(clean).toBe(true);
    expect(kernel.sysctls.get('net/ipv4/conf/eth0/arp_announce')).toBe('5');
    expect(kernel.promisc.size).toBe(0);
    expect(kernel.aliases.size).toBe(0);
    expect(kernel.xdp.size).toBe(0);
    expect(kernel.pins.size).toBe(0);
    expect(existsSync(netstateFile(paths.runDir))).toBe(false);
  });
});

describe('FarmDaemon on the fake host: what it reads of the kernel goes through the host port', () => {
  it('/metrics reads the counters of the pinned maps, opened once, closed at stop', async () => {
    const d = await daemon(staticSource);
    await d.start();
    const maps = kernel.model(paths.pinDir)!;
    const decision = maps.process(buildFrame({ l3: { family: 4, src: '192.0.2.10', dst: VIP }, l4: { proto: 'tcp', sport: 40000, dport: 80 }, payload: 8 }), nowNs());
    // The scrape is the daemon's own (its Metrics), as the health server serves it.
    const metrics = (d as unknown as { metrics: Metrics }).metrics;
    const line = new RegExp(`^farmlb_verdict_packets_total\\{reason="${decision.reason}"[^}]*\\} 1$`, 'm');
    expect(await metrics.render()).toMatch(line);
    expect(await metrics.render()).toMatch(line);
    expect(kernel.ops.filter((o) => o === 'counters open')).toHaveLength(1);
    await d.stop();
    expect(kernel.ops).toContain('counters close');
  });
});

/** A membership stand-in: the test says what it decides. */
class ScriptedSource implements TableSource {
  readonly mode = 'membership' as const;
  sink: SourceSink | undefined;
  constructor(readonly table: BucketTable) {}
  initial() {
    return { table: this.table, leaseDeadlineNs: 0n, announce: false };
  }
  async start(sink: SourceSink): Promise<void> {
    this.sink = sink;
  }
  async stop(): Promise<void> {
    this.sink = undefined;
  }
  setLocalHealth(ok: boolean, cause: string): void {
    if (this.sink) void this.sink.decide(ok ? { state: 'UP', cause, leaseDeadlineNs: nowNs() + 3_000_000_000n } : { state: 'WAIT', cause });
  }
  async setPower(): Promise<void> {}
  reload(): 'staged' {
    return 'staged';
  }
  view(): SourceView {
    return { view: ['node1', 'node2', 'node3'], epoch: 1, leader: 'node1', splitBrain: false, peers: new Map(), lastViewChange: null };
  }
}
