// Lab: one farm node on a veth pair, the real XDP program attached in native mode by a real
// `farmlb run --static` child process (vmac_directed: on a veth, native XDP cannot deliver
// frames sent to a virtual MAC — see decideXdpMode in src/net/xdp-mode.ts), real
// curl clients from many source addresses and ports. A connection must succeed exactly
// when the node owns the packet's bucket, and the per-bucket counters read through
// `farmlb buckets --json` must show exactly the buckets the traffic hit, on the side
// (accepted/dropped) the ownership predicts.

import { removeEmptyPinRoot } from '../../src/dataplane/xdp.js';
import { PIN_ROOT } from '../../src/paths.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { LabRegistry, addAddr, inNetns, run, uniqueSuffix, waitFor } from './helpers/netns.js';
import { parseClusterConfig, parseFarmConfig } from '../../src/config/index.js';
import { compileTables, staticTable } from '../../src/balance/compile.js';
import { explainPacket, type PacketQuery } from '../../src/balance/explain.js';
import type { DataplaneTables } from '../../src/dataplane/types.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const FARMLB = path.join(REPO, 'bin/farmlb.js');
const sfx = uniqueSuffix();
const NS_CLIENT = `flb-l3c-${sfx}`;
const NS_NODE = `flb-l3n-${sfx}`;
const DIR = `/tmp/flb-l3-${sfx}`;
const PIN = `${PIN_ROOT}/flb-l3-${sfx}`;
const VIP4 = '10.78.0.100';
const VIP6 = 'fd78::100';
const CLIENT4 = Array.from({ length: 64 }, (_, i) => `10.78.0.${10 + i}`);
const CLIENT6 = Array.from({ length: 32 }, (_, i) => `fd78::${(0x10 + i).toString(16)}`);
const PORTS = Array.from({ length: 64 }, (_, i) => 41000 + i * 7);

const CLUSTER_XML = `<cluster><lans><lan name="default">
  <node name="n1" addr="10.78.0.2"/>
  <node name="n2" addr="10.78.0.3"/>
</lan></lans></cluster>`;

const USERCONFIG_XML = `<safe>
 <service mode="farm">
  <farm><lan name="default"/></farm>
  <vip>
   <interface_list>
    <interface check="on" name="flb-n">
     <virtual_interface type="vmac_directed">
      <virtual_addr addr="${VIP4}" where="alias"/>
      <virtual_addr addr="${VIP6}" where="alias"/>
     </virtual_interface>
    </interface>
   </interface_list>
   <loadbalancing_list>
    <group name="web">
     <cluster><host name="n1" power="1"/><host name="n2" power="1"/></cluster>
     <rule virtual_addr="${VIP4}" port="8080" proto="tcp" filter="on_addr"/>
     <rule virtual_addr="${VIP6}" port="8080" proto="tcp" filter="on_addr"/>
    </group>
    <group name="api">
     <cluster><host name="n1" power="1"/><host name="n2" power="3"/></cluster>
     <rule virtual_addr="*" port="8081" proto="tcp" filter="on_port"/>
    </group>
   </loadbalancing_list>
  </vip>
  <farmlb hash_seed="0x2545f491"/>
 </service>
</safe>`;

// Large backlog: a burst of SYNs must never push the server into SYN cookies (LAB-NOTES).
const SERVER_JS = `
const http = require('http');
for (const port of [8080, 8081]) {
  http.createServer((req, res) => res.end('n1\\n')).listen({ port, host: '::', backlog: 4096 });
}
setTimeout(() => {}, 1 << 30);`;

interface Attempt {
  name: string;
  query: PacketQuery;
  curlArgs: string[];
}

const lab = new LabRegistry();
let daemon: ChildProcess | undefined;
let daemonLog = '';
let tables: DataplaneTables;
let farm: ReturnType<typeof parseFarmConfig>;
let cluster: ReturnType<typeof parseClusterConfig>;

function farmlb(args: string[], timeoutMs = 20_000) {
  return run('node', [FARMLB, ...args], { timeoutMs });
}

/** Run `fn` over `items` with at most `limit` in flight (bounded client concurrency). */
async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  }));
  return results;
}

async function connect(a: Attempt): Promise<boolean> {
  try {
    const { stdout } = await inNetns(NS_CLIENT, 'curl', ['-s', '--connect-timeout', '1', '--max-time', '3', ...a.curlArgs], { timeoutMs: 10_000 });
    return stdout.trim() === 'n1';
  } catch {
    return false;
  }
}

describePrivileged('lab: one node on veth, native XDP, static table', () => {
  beforeAll(async () => {
    expect(existsSync(path.join(REPO, 'dist/cli/main.js')), 'dist/ is built by scripts/setup.sh').toBe(true);
    await lab.netns(NS_CLIENT);
    await lab.netns(NS_NODE);
    await lab.veth({ a: { name: `flb-c${sfx}`, ns: NS_CLIENT }, b: { name: `flb-n${sfx}`, ns: NS_NODE } });
    await inNetns(NS_CLIENT, 'ip', ['link', 'set', `flb-c${sfx}`, 'name', 'flb-c']);
    await inNetns(NS_NODE, 'ip', ['link', 'set', `flb-n${sfx}`, 'down']);
    await inNetns(NS_NODE, 'ip', ['link', 'set', `flb-n${sfx}`, 'name', 'flb-n']);
    await inNetns(NS_NODE, 'ip', ['link', 'set', 'flb-n', 'up']);
    await inNetns(NS_CLIENT, 'ip', ['link', 'set', 'flb-c', 'up']);
    // The node answers ARP and NS for the VIP from XDP (XDP_TX). A veth delivers XDP_TX
    // frames only if its peer runs an XDP program too (LAB-NOTES): a no-op one.
    await inNetns(NS_CLIENT, 'ip', ['link', 'set', 'dev', 'flb-c', 'xdpdrv', 'obj', path.join(REPO, 'bpf/build/nop.bpf.o'), 'sec', 'xdp']);
    await addAddr(NS_NODE, 'flb-n', '10.78.0.2/24');
    await addAddr(NS_NODE, 'flb-n', 'fd78::2/64', { nodad: true });
    await addAddr(NS_CLIENT, 'flb-c', '10.78.0.1/24');
    await addAddr(NS_CLIENT, 'flb-c', 'fd78::1/64', { nodad: true });
    for (const a of CLIENT4) await addAddr(NS_CLIENT, 'flb-c', `${a}/24`);
    for (const a of CLIENT6) await addAddr(NS_CLIENT, 'flb-c', `${a}/64`, { nodad: true });

    await mkdir(DIR, { recursive: true });
    lab.onCleanup(`rm ${DIR}`, () => rm(DIR, { recursive: true, force: true }));
    await writeFile(`${DIR}/cluster.xml`, CLUSTER_XML);
    await writeFile(`${DIR}/userconfig.xml`, USERCONFIG_XML);
    farm = parseFarmConfig(USERCONFIG_XML, `${DIR}/userconfig.xml`);
    cluster = parseClusterConfig(CLUSTER_XML, `${DIR}/cluster.xml`);
    tables = compileTables(farm, cluster, staticTable(farm, cluster), 'n1');

    const server = spawn('nsenter', [`--net=/run/netns/${NS_NODE}`, '--', 'node', '-e', SERVER_JS], { stdio: 'ignore' });
    lab.onCleanup('stop http server', () => { server.kill('SIGKILL'); }, () => server.kill('SIGKILL'));

    daemon = spawn('nsenter', [`--net=/run/netns/${NS_NODE}`, '--', 'node', FARMLB, 'run', '--static',
      '-c', `${DIR}/userconfig.xml`, '--cluster', `${DIR}/cluster.xml`, '--node', 'n1',
      '--pin-dir', PIN, '--run-dir', `${DIR}/run`, '--xdp-mode', 'native'], { stdio: ['ignore', 'pipe', 'pipe'] });
    daemon.stdout!.on('data', (d: Buffer) => { daemonLog += d.toString(); });
    daemon.stderr!.on('data', (d: Buffer) => { daemonLog += d.toString(); });
    // If a test fails before the stop test runs, the daemon still goes, and with it the pins.
    lab.onCleanup('stop daemon', async () => {
      if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
      await rm(PIN, { recursive: true, force: true });
      removeEmptyPinRoot();
    });

    await waitFor(async () => {
      if (daemon!.exitCode !== null) throw new Error(`farmlb run exited ${daemon!.exitCode}: ${daemonLog}`);
      const { stdout } = await inNetns(NS_NODE, 'ip', ['-j', 'addr', 'show', 'dev', 'flb-n']);
      return stdout.includes(VIP4) && stdout.includes(VIP6);
    }, { timeoutMs: 20_000, what: 'the VIP aliases added by farmlb run' });
    await waitFor(async () => {
      const { stdout } = await inNetns(NS_NODE, 'ss', ['-Hltn']);
      return stdout.includes(':8080') && stdout.includes(':8081');
    }, { timeoutMs: 10_000, what: 'the HTTP servers listening' });
  }, 90_000);

  afterAll(async () => {
    const failures = await lab.cleanup();
    expect(failures).toEqual([]);
  }, 60_000);

  it('attaches the program in native mode to the node interface', async () => {
    const { stdout } = await inNetns(NS_NODE, 'ip', ['-d', 'link', 'show', 'dev', 'flb-n']);
    expect(stdout).toMatch(/prog\/xdp id \d+/);
    expect(stdout).not.toMatch(/xdpgeneric/);
  });

  it('serves exactly the connections whose bucket the node owns, by source address and by source port', async () => {
    const attempts: Attempt[] = [
      ...CLIENT4.map((src) => ({
        name: `v4 ${src} → ${VIP4}:8080`,
        query: { src, vip: VIP4, vipPort: 8080, proto: 'tcp' as const },
        curlArgs: ['--interface', src, `http://${VIP4}:8080/`],
      })),
      ...CLIENT6.map((src) => ({
        name: `v6 ${src} → ${VIP6}:8080`,
        query: { src, vip: VIP6, vipPort: 8080, proto: 'tcp' as const },
        curlArgs: ['--interface', src, `http://[${VIP6}]:8080/`],
      })),
      ...PORTS.map((port) => ({
        name: `v4 10.78.0.1:${port} → ${VIP4}:8081`,
        query: { src: '10.78.0.1', srcPort: port, vip: VIP4, vipPort: 8081, proto: 'tcp' as const },
        curlArgs: ['--interface', '10.78.0.1', '--local-port', String(port), `http://${VIP4}:8081/`],
      })),
    ];
    const expected = attempts.map((a) => explainPacket(farm, tables, a.query, { cluster }).verdict === 'pass');
    // Both outcomes must occur, or the test could not tell filtering from no filtering.
    expect(expected.filter(Boolean).length).toBeGreaterThan(20);
    expect(expected.filter((e) => !e).length).toBeGreaterThan(20);

    // The first connection to each VIP pays one-time costs — the client's ARP or NS for it
    // (answered from XDP with XDP_TX) and the HTTP server's first request — and once, in CI on
    // a loaded host, the burst's very first attempt (served) missed curl's 1 s connect timeout
    // while all the others were right. Which packets are served is what the burst checks:
    // connect to each VIP once from a source the node serves before it.
    for (const vip of [VIP4, VIP6]) {
      const owned = attempts.find((a, i) => expected[i] && a.query.vip === vip)!;
      await waitFor(() => connect(owned).then((ok) => ok || undefined), { timeoutMs: 10_000, intervalMs: 100, what: `${owned.name} served (the client resolving ${vip})` });
    }
    const got = await pool(attempts, 24, connect);
    const wrong = attempts.flatMap((a, i) => (got[i] === expected[i] ? [] : [`${a.name}: expected ${expected[i] ? 'served' : 'dropped'}`]));
    expect(wrong, daemonLog).toEqual([]);

    // The per-bucket counters: every bucket the traffic hit shows up on the predicted side,
    // and no other bucket of these groups saw a packet (nothing else talks to the VIPs).
    const { stdout } = await farmlb(['buckets', '--json', '--pin-dir', PIN, '--run-dir', `${DIR}/run`]);
    const view = JSON.parse(stdout) as { groups: { name: string; counters: { accepted: number[]; dropped: number[] } }[] };
    for (const groupName of ['web', 'api']) {
      const group = view.groups.find((g) => g.name === groupName)!;
      const hitOwned = new Set<number>();
      const hitForeign = new Set<number>();
      attempts.forEach((a) => {
        const e = explainPacket(farm, tables, a.query, { cluster });
        if (e.group?.name !== groupName || e.bucket === undefined) return;
        (e.verdict === 'pass' ? hitOwned : hitForeign).add(e.bucket);
      });
      const accepted = new Set(group.counters.accepted.flatMap((n, b) => (n > 0 ? [b] : [])));
      const dropped = new Set(group.counters.dropped.flatMap((n, b) => (n > 0 ? [b] : [])));
      expect([...accepted].sort((x, y) => x - y), `${groupName}: buckets with accepted packets`).toEqual([...hitOwned].sort((x, y) => x - y));
      expect([...dropped].sort((x, y) => x - y), `${groupName}: buckets with dropped packets`).toEqual([...hitForeign].sort((x, y) => x - y));
    }
  }, 120_000);

  it('explains a packet through the CLI the same way the data plane decided it', async () => {
    const src = CLIENT4[0]!;
    const { stdout } = await farmlb(['explain', `${src}:40000`, `${VIP4}:8080/tcp`, '--json',
      '-c', `${DIR}/userconfig.xml`, '--cluster', `${DIR}/cluster.xml`, '--pin-dir', PIN]);
    const cli = JSON.parse(stdout) as { bucket: number; owner: { name: string } | null; verdict: string; table: string };
    const model = explainPacket(farm, tables, { src, srcPort: 40000, vip: VIP4, vipPort: 8080, proto: 'tcp' }, { cluster });
    expect(cli.table).toBe('pinned');
    expect(cli.bucket).toBe(model.bucket);
    expect(cli.owner?.name ?? null).toBe(model.owner?.name ?? null);
    expect(cli.verdict).toBe(model.verdict);
  });

  it('on SIGTERM removes the VIPs, detaches the program and unpins the maps', async () => {
    daemon!.kill('SIGTERM');
    await waitFor(() => daemon!.exitCode !== null, { timeoutMs: 15_000, what: 'farmlb run to exit after SIGTERM' });
    expect(daemon!.exitCode, daemonLog).toBe(0);
    const { stdout } = await inNetns(NS_NODE, 'ip', ['-d', 'addr', 'show', 'dev', 'flb-n']);
    expect(stdout).not.toContain(VIP4);
    expect(stdout).not.toContain(VIP6);
    expect(stdout).not.toMatch(/prog\/xdp/);
    expect(existsSync(PIN)).toBe(false);
  });
});
