// Hostile-network lab (docs/security.md): a lone node — the last survivor, or a node started
// alone — keeps serving under junk UDP on its heartbeat port, and under an HTTP flood of its
// health port (looping scrapers of /metrics and /health, hundreds of idle connections), with
// no lapse of its kernel lease (sampled from the pinned maps every 20 ms) and every client
// connection served. Before the hardening, four junk datagrams a second took a lone node to
// WAIT, and eight scrapers delayed the pulse beyond the lease.

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it, type TestContext } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { encodeHeartbeat } from '../../src/membership/codec.js';
import type { Heartbeat } from '../../src/membership/types.js';
import { FarmLab } from './helpers/farm-lab.js';
import { uniqueSuffix, waitFor } from './helpers/netns.js';
import { readServed } from './helpers/overlap-sampler.js';
import { logsOnFailure, readyPath, sendDatagrams } from './helpers/failover-kit.js';

const NODES = [{ name: 'n1', power: 1 }, { name: 'n2', power: 1 }];
const CLIENTS = 40;

/** Samples n1's lease from its pinned maps every 20 ms until stopped: how many samples, how many invalid. */
function leaseSampler(lab: FarmLab, node: string): { stop(): { samples: number; invalid: number } } {
  let samples = 0;
  let invalid = 0;
  const timer = setInterval(() => {
    const r = readServed(lab, node);
    samples++;
    if (!r?.leaseValid) invalid++;
  }, 20);
  return { stop: () => { clearInterval(timer); return { samples, invalid }; } };
}

// argv: JSON { host, port, paths, scrapers, idle, sources, seconds, readyPath }: `scrapers`
// loops GETting `paths`, `idle` connections spread over `sources` local addresses that send
// nothing (re-opened when the server closes them), and one ready.txt probe every 100 ms; prints
// JSON { scrapes, probes, probeFailures }.
const FLOOD_JS = String.raw`
const http = require('http');
const net = require('net');
const { host, port, paths, scrapers, idle, sources, seconds, readyPath } = JSON.parse(process.argv[1]);
const end = Date.now() + seconds * 1000;
let scrapes = 0, probes = 0, probeFailures = 0;
const agent = new http.Agent({ keepAlive: true, maxSockets: scrapers });
function scrape(i) {
  if (Date.now() > end) return;
  const req = http.get({ host, port, path: paths[i % paths.length], agent }, (res) => {
    res.resume();
    res.on('end', () => { scrapes++; scrape(i + 1); });
  });
  req.on('error', () => setTimeout(() => scrape(i + 1), 10));
}
for (let i = 0; i < scrapers; i++) scrape(i);
function hold(k) {
  if (Date.now() > end) return;
  const s = net.connect({ host, port, localAddress: sources[k % sources.length] });
  s.on('error', () => {});
  s.on('close', () => setTimeout(() => hold(k), 20));
}
for (let k = 0; k < idle; k++) hold(k);
const probe = setInterval(() => {
  if (Date.now() > end) { clearInterval(probe); return; }
  probes++;
  const req = http.get({ host, port, path: readyPath, agent: false, timeout: 1000 }, (res) => {
    let body = '';
    res.on('data', (d) => { body += d; });
    res.on('end', () => { if (res.statusCode !== 200 || body !== 'OK') probeFailures++; });
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => { probeFailures++; console.error('probe: ' + e.message); });
}, 100);
setTimeout(() => { console.log(JSON.stringify({ scrapes, probes, probeFailures })); process.exit(0); }, seconds * 1000 + 1500);
`;

describePrivileged('lab: hostile network (a lone node keeps serving under junk UDP and an HTTP flood)', () => {
  let lab: FarmLab | undefined;

  beforeAll(async () => {
    lab = await FarmLab.create({
      name: `hn${uniqueSuffix()}`, mode: 'vmac_invisible', xdpMode: 'generic', nodes: NODES,
      clientAddrs4: CLIENTS, clientAddrs6: 0, membership: true, startDaemons: false,
    });
    // n2 never starts: n1 is alone, as the last survivor or a node starting alone would be.
    await lab.startNode('n1', { timeoutMs: 30_000 });
    await waitFor(() => readServed(lab!, 'n1')?.leaseValid === true, { timeoutMs: 10_000, intervalMs: 50, what: 'n1 to serve alone' });
  }, 120_000);

  afterAll(async () => {
    if (lab) expect(await lab.cleanup()).toEqual([]);
  }, 60_000);

  function served(ctx: TestContext): () => Promise<void> {
    logsOnFailure(ctx, () => lab);
    return async () => {
      const results = await lab!.connectMany(lab!.clientAttempts(4, { count: 8 }), 8);
      expect(results.map((r) => r.servedBy)).toEqual(new Array(8).fill('n1'));
    };
  }

  it('junk, oversize and wrong-key datagrams on the heartbeat port change nothing: served throughout, no lease lapse', async (ctx) => {
    const check = served(ctx);
    const l = lab!;
    const mark = l.logMark('n1');
    const wrongKey = encodeHeartbeat({
      v: 2, module: 'x', from: 'n2', incarnation: 1n, seq: 1, sentAtNs: 1n, state: 'UP', cause: '', configDigest: 'x', epoch: 1,
      leader: 'n2', view: ['n2'], tableDigest: 'x', table: [], powers: { version: 0, origin: '', entries: [] }, acks: [], heard: [],
    } satisfies Heartbeat, randomBytes(32));
    const sampler = leaseSampler(l, 'n1');
    // 3 s at 20 rounds a second of 4 kinds: 60 times the rate that used to stop the node.
    const flood = sendDatagrams(l, [Buffer.from('junk\n'), wrongKey, randomBytes(1200), Buffer.alloc(61_000, 7)], ['n1'], { rounds: 60, intervalMs: 50 });
    await check();
    await flood;
    await check();
    const s = sampler.stop();
    expect(s.samples).toBeGreaterThan(50);
    expect(s.invalid, 'samples with n1\'s lease not valid').toBe(0);
    const st = await l.status('n1');
    expect(st.state).toBe('UP');
    // Counted where an operator looks: the status (per reason, the busiest sources) and /metrics.
    const d = st.membershipDatagrams!;
    expect(d.dropped.not_farmlb, 'junk and random bytes').toBeGreaterThan(0);
    expect(d.dropped.bad_mac, 'another key').toBeGreaterThan(0);
    expect(d.dropped.oversize, '61,000 bytes').toBeGreaterThan(0);
    expect(d.droppedBySource.length).toBeGreaterThan(0);
    expect(d.sent).toBeGreaterThan(0);
    const metrics = await l.health('n1', '/metrics');
    expect(metrics.body).toMatch(/^farmlb_membership_dropped_total\{reason="bad_mac"\} [1-9]\d*$/m);
    // One warning per reason per 10 s, not one per datagram.
    const warnings = l.logSince('n1', mark).split('\n').filter((x) => x.includes('"event":"heartbeat_dropped"'));
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings.length).toBeLessThanOrEqual(4);
  }, 60_000);

  it('8 looping scrapers of /metrics and /health and 500 idle connections: ready.txt answers, no lease lapse', async (ctx) => {
    const check = served(ctx);
    const l = lab!;
    const sampler = leaseSampler(l, 'n1');
    const flood = l.inClient('node', ['-e', FLOOD_JS, JSON.stringify({
      host: l.nodeAddr('n1', 4), port: 9010, paths: ['/metrics', '/health'], scrapers: 8, idle: 500,
      sources: l.clientAddrs4, seconds: 5, readyPath: readyPath(l),
    })], { timeoutMs: 30_000 });
    await check();
    const out = await flood;
    const report = JSON.parse(out.stdout) as { scrapes: number; probes: number; probeFailures: number };
    // Why each failed probe failed (timeout, reset, refused), for the assertion's message.
    const probeErrors = out.stderr.split('\n').filter((x) => x.startsWith('probe: ')).slice(0, 5).join('; ');
    await check();
    const s = sampler.stop();
    console.log(`health flood: ${JSON.stringify(report)}, lease samples ${JSON.stringify(s)}`);
    expect(report.scrapes).toBeGreaterThan(100);
    expect(report.probes).toBeGreaterThan(20);
    expect(report.probeFailures, `ready.txt probes that failed during the flood (${probeErrors || 'answered, not 200 OK'})`).toBe(0);
    expect(s.invalid, 'samples with n1\'s lease not valid').toBe(0);
    expect((await l.status('n1')).state).toBe('UP');
  }, 60_000);
});
