// Smoke test of the bridged farm lab (test/lab/helpers/farm-lab.ts) that the VMAC-mode
// tests are built on: for each mode, three nodes (powers 1, 1, 2) come up on one bridge,
// every node runs farmlb with the same owner table, every node is reachable on its own
// address, and cleanup leaves nothing behind. What the VIP does (ARP answers, who serves a
// connection) is asserted by the VMAC-mode tests, not here.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, expect, it, type TestContext } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { FarmLab, NODE_IF, type Family, type VmacMode } from './helpers/farm-lab.js';
import { netnsPath, uniqueSuffix, waitFor } from './helpers/netns.js';
import { explainPacket } from '../../src/balance/explain.js';

const NODES = [
  { name: 'n1', power: 1 },
  { name: 'n2', power: 1 },
  { name: 'n3', power: 2 },
];
const EXPECTED_SHARES = { n1: 64, n2: 64, n3: 128 };

/** Print every daemon's log when a test fails: the assertion alone rarely says why. */
function logsOnFailure(ctx: TestContext, lab: () => FarmLab | undefined): void {
  ctx.onTestFailed(() => {
    const logs = lab()?.logs();
    if (logs) console.error(logs);
  });
}

for (const mode of ['vmac_invisible', 'vmac_directed'] as const satisfies readonly VmacMode[]) {
  describePrivileged(`lab: bridged farm of three nodes (powers 1, 1, 2) in ${mode}`, () => {
    const name = `${mode === 'vmac_invisible' ? 'fli' : 'fld'}${uniqueSuffix()}`;
    let lab: FarmLab | undefined;

    beforeAll(async () => {
      lab = await FarmLab.create({
        name,
        mode,
        nodes: NODES,
        clientAddrs4: 16,
        clientAddrs6: 16,
        arpRule: mode === 'vmac_directed',
      });
    }, 60_000);

    afterAll(async () => {
      // Normally the last test has cleaned up already; this is the path for a failure.
      if (lab) expect(await lab.cleanup()).toEqual([]);
    }, 30_000);

    it('runs farmlb on every node with the program attached and both VIPs as aliases', async (ctx) => {
      logsOnFailure(ctx, () => lab);
      for (const node of lab!.nodeNames()) {
        expect(lab!.daemonRunning(node), `${node}'s daemon`).toBe(true);
        const { stdout } = await lab!.inNode(node, 'ip', ['-d', 'addr', 'show', 'dev', NODE_IF]);
        expect(stdout, node).toMatch(/prog\/xdp id \d+/);
        expect(stdout, node).toContain(`inet ${lab!.vip4}/`);
        expect(stdout, node).toContain(`inet6 ${lab!.vip6}/`);
        expect(stdout, node).toContain(`inet ${lab!.nodeAddr(node, 4)}/`);
      }
    });

    it('gives every node the same owner table, split 64/64/128 by the powers', async (ctx) => {
      logsOnFailure(ctx, () => lab);
      const views = await Promise.all(lab!.nodeNames().map((node) => lab!.buckets(node)));
      const tables = views.map((v, i) => {
        expect(v.selfNode?.name, `selfNode of ${lab!.nodeNames()[i]}`).toBe(lab!.nodeNames()[i]);
        const web = v.groups.find((g) => g.name === 'web');
        expect(web, 'group web').toBeDefined();
        return web!.owners;
      });
      for (const t of tables.slice(1)) expect(t).toEqual(tables[0]);
      const shares: Record<string, number> = {};
      for (const owner of tables[0]!) shares[String(owner)] = (shares[String(owner)] ?? 0) + 1;
      expect(shares).toEqual(EXPECTED_SHARES);
    });

    it('reaches every node on its own IPv4 and IPv6 address from the client', async (ctx) => {
      logsOnFailure(ctx, () => lab);
      const failures: string[] = [];
      for (const family of [4, 6] as Family[]) {
        const src = family === 4 ? lab!.clientAddrs4[0]! : lab!.clientAddrs6[0]!;
        for (const node of lab!.nodeNames()) {
          const addr = lab!.nodeAddr(node, family);
          const url = family === 4 ? `http://${addr}:8080/` : `http://[${addr}]:8080/`;
          const r = await lab!.curlFrom(src, url);
          if (r.body !== node) failures.push(`${src} → ${url}: ${r.ok ? `answered ${JSON.stringify(r.body)}` : r.error}`);
        }
      }
      expect(failures).toEqual([]);
    });

    it('on SIGTERM (tcpreset on, the default) the node resets its VIP connections while it still holds the VIP, then removes it: the client gets a RST', async (ctx) => {
      logsOnFailure(ctx, () => lab);
      const c = await lab!.compiled();
      const src = lab!.clientAddrs4[0]!;
      const owner = explainPacket(c.farm, c.tables, { src, vip: lab!.vip4, vipPort: 8080, proto: 'tcp' }, { cluster: c.cluster }).owner!.name;
      // A connection the HTTP server holds open (no request sent): it ends only by a RST or a FIN.
      const hold = `const s = require('net').connect({ host: '${lab!.vip4}', port: 8080, localAddress: '${src}' });
        s.on('connect', () => console.log('connected')); s.on('error', (e) => { console.log(e.code); process.exit(0); });
        s.on('close', () => { console.log('closed'); process.exit(0); }); setTimeout(() => { console.log('no reset'); process.exit(0); }, 20000);`;
      const holder = spawn('nsenter', [`--net=${netnsPath(lab!.clientNs)}`, '--', 'node', '-e', hold], { stdio: ['ignore', 'pipe', 'pipe'] });
      let said = '';
      holder.stdout!.on('data', (d: Buffer) => { said += d.toString(); });
      try {
        await waitFor(() => said.includes('connected') || holder.exitCode !== null, { timeoutMs: 10_000, intervalMs: 50, what: 'the held connection' });
        expect(said).toContain('connected');
        const mark = lab!.logMark(owner);
        expect(await lab!.killNode(owner, 'SIGTERM')).toEqual({ code: 0, signal: null });
        await waitFor(() => holder.exitCode !== null, { timeoutMs: 25_000, intervalMs: 50, what: 'the held connection to end' });
        expect(said.trim().split('\n').at(-1), `the client of ${owner}`).toBe('ECONNRESET');
        const log = lab!.logSince(owner, mark);
        const reset = /"event":"tcpreset"[^\n]*"reset":(\d+)/.exec(log);
        expect(Number(reset?.[1] ?? 0), log).toBeGreaterThanOrEqual(1);
        expect(log.indexOf('"event":"tcpreset"'), 'tcpreset before the VIP is removed').toBeLessThan(log.indexOf('"event":"vip_removed"'));
      } finally {
        if (holder.exitCode === null) holder.kill('SIGKILL');
      }
    }, 60_000);

    it('leaves no namespace, pin, process or temp dir behind after cleanup', async (ctx) => {
      logsOnFailure(ctx, () => lab);
      const dir = lab!.dir;
      expect(await lab!.cleanup()).toEqual([]);
      expect(FarmLab.leftovers(name)).toEqual({ namespaces: [], pins: [], processes: [] });
      expect(existsSync(dir)).toBe(false);
    }, 30_000);
  });
}
