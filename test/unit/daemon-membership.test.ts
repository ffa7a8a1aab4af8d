// FarmDaemon with the membership source, without a kernel: two daemons in this process, each
// on its own fake host (test/helpers/fake-host.ts), heartbeating over loopback (127.0.0.1 and
// 127.0.0.2). What the lab shows with namespaces, here in a second: they agree on one
// table, a drain is persisted (powers.json) and still in force after a restart, and a node
// killed and restarted adopts what it left.

import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadNative } from '../../src/addon/native.js';
import { controlRequest } from '../../src/api/control.js';
import { loadConfigs } from '../../src/config/index.js';
import { FarmDaemon } from '../../src/daemon/farm-daemon.js';
import { connectionBucket } from '../../src/daemon/holdings.js';
import { createMembershipSource, powersFile } from '../../src/daemon/membership-source.js';
import type { DataplaneTables } from '../../src/dataplane/types.js';
import type { TcpSocket } from '../../src/net/tcp-sockets.js';
import type { InstancePaths } from '../../src/paths.js';
import { FakeKernel } from '../helpers/fake-host.js';

const VIP = '192.168.1.222';
const NODES = ['node1', 'node2'] as const;
const log = pino({ level: 'silent' });
const nowNs = () => loadNative().monotonicNs();

let dir: string;
let port: number;
const running = new Map<string, FarmDaemon>();
const kernels = new Map<string, FakeKernel>();

function farmXml(keyFile: string): string {
  return `<safe><service mode="farm"><farm><lan name="default"/></farm><vip>
  <interface_list><interface check="off"><virtual_interface type="vmac_invisible">
    <virtual_addr addr="${VIP}" where="alias" check="off"/>
  </virtual_interface></interface></interface_list>
  <loadbalancing_list><group name="web"><rule port="80" proto="tcp" filter="on_port"/></group></loadbalancing_list>
</vip><farmlb key_file="${keyFile}" membership_port="${port}"/></service></safe>`;
}

const CLUSTER_XML = `<cluster><lans><lan name="default">
  <node name="node1" addr="127.0.0.1"/><node name="node2" addr="127.0.0.2"/>
</lan></lans></cluster>`;

function paths(node: string): InstancePaths {
  return { module: 'unit', pinDir: `/sys/fs/bpf/farmlb/unit-fake-${path.basename(dir)}-${node}`, runDir: path.join(dir, node, 'run') };
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'farmlb-daemon-membership-'));
  // A port of its own per test: a parallel test file may use the default one.
  port = 20_000 + Math.floor(Math.random() * 20_000);
  const keyFile = path.join(dir, 'heartbeat.key');
  await writeFile(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  await writeFile(path.join(dir, 'userconfig.xml'), farmXml(keyFile));
  await writeFile(path.join(dir, 'cluster.xml'), CLUSTER_XML);
  NODES.forEach((node, i) => kernels.set(node, new FakeKernel([
    { ifname: 'eth0', mac: `02:00:00:00:00:0${i + 1}`, addrs: [{ family: 4, local: `192.168.1.${i + 1}`, prefixlen: 24 }] },
  ])));
});

afterEach(async () => {
  await Promise.all([...running.values()].map((d) => d.stop()));
  running.clear();
  kernels.clear();
  await rm(dir, { recursive: true, force: true });
});

async function start(node: string): Promise<FarmDaemon> {
  const loaded = await loadConfigs({ config: path.join(dir, 'userconfig.xml'), cluster: path.join(dir, 'cluster.xml') });
  const farm = loaded.farm;
  const cluster = loaded.cluster!;
  const kernel = kernels.get(node)!;
  const p = paths(node);
  await mkdir(path.dirname(p.runDir), { recursive: true });
  const source = await createMembershipSource({ farm, cluster, node, paths: p, log, nowNs, readPinnedTables: kernel.readPinnedTables });
  const d = new FarmDaemon({ farm, cluster, node, paths: p, xdpMode: 'auto', log, source, healthPort: 0, reloadOnSighup: false, hostPort: kernel });
  running.set(node, d);
  await d.start();
  return d;
}

async function stop(node: string): Promise<void> {
  await running.get(node)!.stop();
  running.delete(node);
}

/** Buckets of group 0 the node's own data plane says it owns. */
function owned(node: string): number {
  const t: DataplaneTables | undefined = kernels.get(node)!.model(paths(node).pinDir)?.tables();
  return t ? t.buckets[0]!.filter((o) => o === t.selfNode).length : 0;
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The regular files of a directory (a kill -9 leaves them; the control socket is not one). */
async function files(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await readdir(dir, { withFileTypes: true })) if (e.isFile()) out.set(e.name, await readFile(path.join(dir, e.name)));
  return out;
}

const agreed = () => NODES.every((n) => running.get(n)?.status().state === 'UP') && owned('node1') + owned('node2') === 256 && owned('node1') > 0 && owned('node2') > 0;

describe('FarmDaemon with the membership on fake hosts', () => {
  it('two daemons agree on one table: both UP, every bucket served by exactly one of them, each with a lease', async () => {
    await Promise.all(NODES.map((n) => start(n)));
    await until('agreement', agreed);
    await until('a lease on both', () => NODES.every((n) => kernels.get(n)!.model(paths(n).pinDir)!.leaseDeadline() > nowNs()));
  });

  it('a slow install (250 ms, longer than the lease) on a follower: its lease never lapses meanwhile, renewed during the install', async () => {
    // docs/membership.md, "Lease writes during an install": a renewal on a table of the data
    // plane's lineage reaches the kernel at once instead of after the install it was queued
    // behind (before: written 250 ms late, after the 200 ms lease had run out).
    await Promise.all(NODES.map((n) => start(n)));
    await until('agreement', agreed);
    const kernel = kernels.get('node2')!;
    const maps = kernel.model(paths('node2').pinDir)!;
    await until('a lease on node2', () => maps.leaseDeadline() > nowNs());
    kernel.installDelayMs = 250;
    const ops = kernel.ops.length;
    let lapses = 0;
    // A lapse sampled within a lease (and a pulse) of a stall of this process (a loaded test
    // host starves every daemon in it alike: no heartbeat, no renewal) is not the install's.
    let lastSample = nowNs();
    let stalledAt = 0n;
    const watch = setInterval(() => {
      const now = nowNs();
      if (now - lastSample > 30_000_000n) stalledAt = now;
      lastSample = now;
      if (maps.leaseDeadline() <= now && (stalledAt === 0n || now - stalledAt > 250_000_000n)) lapses++;
    }, 5);
    try {
      // node2 (a follower) takes node1's buckets and keeps its own: one slow install or more.
      await controlRequest(paths('node1').runDir, { cmd: 'drain', node: 'node1' }, { module: 'unit', timeoutMs: 10_000 });
      await until('node1 drained', () => owned('node1') === 0 && owned('node2') === 256);
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      clearInterval(watch);
    }
    expect(kernel.ops.slice(ops)).toContain('applyBuckets');
    expect(lapses).toBe(0);
    expect(kernel.leaseWritesDuringInstall).toBeGreaterThan(0);
    expect(running.get('node2')!.status().state).toBe('UP');
  });

  it('a node stopped during a slow install (400 ms) serves nothing from that instant, and the install writes no renewal back', async () => {
    // WAIT serves nothing from the first instant: the revocation goes ahead of the decision
    // being installed (before: the lease stayed until the install ended, and that decision
    // then wrote its renewal).
    await Promise.all(NODES.map((n) => start(n)));
    await until('agreement', agreed);
    const kernel = kernels.get('node2')!;
    const maps = kernel.model(paths('node2').pinDir)!;
    await until('a lease on node2', () => maps.leaseDeadline() > nowNs());
    kernel.installDelayMs = 400;
    await controlRequest(paths('node1').runDir, { cmd: 'drain', node: 'node1' }, { module: 'unit', timeoutMs: 10_000 });
    await until('an install under way on node2', () => kernel.installing > 0, 5_000);
    const stopped = controlRequest(paths('node2').runDir, { cmd: 'stop' }, { module: 'unit', timeoutMs: 10_000 });
    await until('node2 revoked', () => maps.leaseDeadline() === 0n, 5_000);
    // Decisions apply one at a time: a revocation queued behind the install is written with
    // no install under way.
    expect(kernel.revocationsDuringInstall, 'revoked while the install was under way').toBe(1);
    await stopped;
    await until('node2 WAIT', () => running.get('node2')!.status().state === 'WAIT', 5_000);
    await until('every install done', () => kernel.installing === 0, 5_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(maps.leaseDeadline()).toBe(0n);
  });

  it('a follower whose leader leaves during a slow install (1.5 s) of a table gaining it buckets revokes at once', async () => {
    // The table being installed is the former leader's; node2 leads now, on tables node1's
    // never knew of. Served under a renewal of node1's lineage, the buckets it gains could be
    // ones a new lineage has already given away (src/membership/lease-gate.ts, leaves()).
    await Promise.all(NODES.map((n) => start(n)));
    await until('agreement', agreed);
    const kernel = kernels.get('node2')!;
    const maps = kernel.model(paths('node2').pinDir)!;
    await until('a lease on node2', () => maps.leaseDeadline() > nowNs());
    kernel.installDelayMs = 1500;
    await controlRequest(paths('node1').runDir, { cmd: 'drain', node: 'node1' }, { module: 'unit', timeoutMs: 10_000 });
    // The drain's step that gives node2 node1's buckets (the one before only frees them).
    const self = maps.tables()!.selfNode;
    await until('an install of node1\'s table gaining node2 buckets', () => kernel.installing > 0
      && (kernel.installingBuckets?.[0]?.filter((o) => o === self).length ?? 0) > owned('node2'), 5_000);
    // (Long enough for node1's stop and node2's first decision as leader to fall within it.)
    const leader = running.get('node1')!;
    running.delete('node1');
    await leader.stop();
    expect(kernel.installing, 'node2 still installing node1\'s table').toBeGreaterThan(0);
    await until('node2 revoked', () => maps.leaseDeadline() === 0n, 5_000);
    expect(kernel.revocationsDuringInstall, 'revoked while node1\'s table was being installed').toBe(1);
    // It serves again on its own lineage, once its table is in.
    kernel.installDelayMs = 0;
    await until('node2 serving alone', () => owned('node2') === 256 && maps.leaseDeadline() > nowNs(), 10_000);
  });

  it('a drain is saved in powers.json and still in force when the whole farm restarts', async () => {
    await Promise.all(NODES.map((n) => start(n)));
    await until('agreement', agreed);
    await controlRequest(paths('node1').runDir, { cmd: 'drain', node: 'node1' }, { module: 'unit', timeoutMs: 10_000 });
    await until('node1 drained', () => owned('node1') === 0 && owned('node2') === 256);
    // Both stop: only the saved record can carry the drain into the next run.
    await Promise.all(NODES.map((n) => stop(n)));
    const saved = JSON.parse(await readFile(powersFile(paths('node1').runDir), 'utf8')) as { entries: { node: string; power: number }[] };
    expect(saved.entries).toContainEqual(expect.objectContaining({ node: 'node1', power: 0 }));
    await Promise.all(NODES.map((n) => start(n)));
    await until('both UP with node2 serving every bucket', () =>
      NODES.every((n) => running.get(n)!.status().state === 'UP') && owned('node2') === 256);
    expect(owned('node1')).toBe(0);
    expect(running.get('node1')!.status().view).toEqual(['node1', 'node2']);
  });

  it('a node killed and restarted adopts what it left: the pinned table is read, the lease revoked first, the program replaced, the farm agrees again', async () => {
    await Promise.all(NODES.map((n) => start(n)));
    await until('agreement', agreed);
    const p = paths('node1');
    await until('node1 leased', () => kernels.get('node1')!.model(p.pinDir)!.leaseDeadline() > nowNs());
    // kill -9: the kernel and the run directory stay as they are.
    const left = await kernels.get('node1')!.afterKill();
    const runFiles = await files(p.runDir);
    await stop('node1');
    await rm(p.runDir, { recursive: true, force: true });
    await mkdir(p.runDir, { recursive: true, mode: 0o700 });
    for (const [name, content] of runFiles) await writeFile(path.join(p.runDir, name), content, { mode: 0o600 });
    kernels.set('node1', left);
    const leftTables = left.model(p.pinDir)!.tables()!;
    expect(leftTables.buckets[0]!.some((o) => o === leftTables.selfNode)).toBe(true);
    expect(left.model(p.pinDir)!.leaseDeadline()).toBeGreaterThan(0n);
    const oldProg = left.xdp.get('eth0')!;
    left.ops.length = 0;
    await start('node1');
    const ops = left.ops;
    // The membership starts from the table the killed run served; the host writes nothing
    // before it revoked the lease that run left running.
    expect(ops[0]).toBe('read pinned tables');
    expect(ops.indexOf('lease revoked')).toBe(ops.indexOf('dataplane open') + 1);
    expect(left.xdp.get('eth0')).not.toBe(oldProg);
    expect(left.xdp.get('eth0')).toBe(left.dataplane!.programId());
    expect([...left.aliases]).toEqual([`eth0 ${VIP}/24`]);
    await until('agreement again', agreed);
  });

  it('the holdings sampler reads the socket table through the host port: a drained node hands over a bucket until its connection closes', async () => {
    await Promise.all(NODES.map((n) => start(n)));
    await until('agreement', agreed);
    const k1 = kernels.get('node1')!;
    const tables = k1.model(paths('node1').pinDir)!.tables()!;
    const socket = (remotePort: number): TcpSocket => ({
      family: 4, localAddr: Uint8Array.of(192, 168, 1, 222), localPort: 80, remoteAddr: Uint8Array.of(192, 0, 2, 10), remotePort,
      state: 'ESTABLISHED', stateNumber: 1,
    });
    // A client port whose bucket node1 serves: the connection node1 keeps as previous owner.
    let clientPort = 40_000;
    for (;; clientPort++) {
      const b = connectionBucket(tables, socket(clientPort));
      if (b.kind === 'bucket' && tables.buckets[b.group]![b.bucket] === tables.selfNode) break;
    }
    k1.sockets.push(socket(clientPort));
    await controlRequest(paths('node1').runDir, { cmd: 'drain', node: 'node1' }, { module: 'unit', timeoutMs: 10_000 });
    const handover = () => running.get('node1')!.status().nodes.find((n) => n.self)?.handover;
    // Every bucket but the one with the connection ends its handover as drained.
    await until('node1 previous owner of the one bucket holding the connection', () => handover()?.prevBuckets === 1 && handover()?.connections === 1);
    expect(k1.socketScans).toBeGreaterThan(0);
    k1.sockets.length = 0;
    await until('the handover ended once the connection closed', () => handover()?.prevBuckets === 0 && owned('node2') === 256);
  });

  it('a refused reload (the VIP changed) keeps the running configuration and table, and stages nothing', async () => {
    await Promise.all(NODES.map((n) => start(n)));
    await until('agreement', agreed);
    const d = running.get('node1')!;
    const before = { digest: d.status().configDigest, table: d.tables() };
    const xml = await readFile(path.join(dir, 'userconfig.xml'), 'utf8');
    await writeFile(path.join(dir, 'userconfig.xml'), xml.replace(VIP, '192.168.1.223'));
    await expect(d.reload()).rejects.toMatchObject({ code: 'FARMLB_E_RUN_RELOAD_NEEDS_RESTART' });
    expect(d.status().configDigest).toBe(before.digest);
    expect(d.status().stagedDigest).toBeUndefined();
    expect(d.tables()).toEqual(before.table);
    expect(d.status().state).toBe('UP');
  });
});
