// The health server cannot hurt the farm (docs/security.md, "Health and metrics"): detail
// only for the node itself and <farmlb health_detail>; idle and slow connections closed
// promptly; connections capped per source and in total with the oldest evicted, so a probe
// always gets in; /metrics rendered at most once per interval whatever the scrapers do.

import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { rateLimitedRenderer, startHealthServer, type HealthServer } from '../../src/api/health.js';
import { cidrContains, parseCidr } from '../../src/config/cidr.js';
import type { DaemonStatus } from '../../src/api/status.js';
import { silentLogger } from '../../src/log.js';

const status = (): DaemonStatus => ({
  node: 'node1', module: 'farm', mode: 'membership', pid: 1, state: 'UP', stateCause: '', stateSince: 0,
  admin: 'started', ready: true, view: ['node1'], epoch: 3, leader: 'node1', groups: ['web'], nodes: [],
  bucketsOwned: { web: 256 }, leaseRemainingMs: 120, splitBrain: false, splitBrainPolicy: 'serve',
  lastViewChange: null, checks: { ok: true, failures: [] }, configDigest: 'abc',
} as unknown as DaemonStatus);

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end && !cond()) await new Promise((r) => setTimeout(r, 10));
  return cond();
}

/** An HTTP GET from a chosen local address (loopback has all of 127/8). */
function get(port: number, path: string, localAddress = '127.0.0.1'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress }, () => s.write(`GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`));
    let data = '';
    s.on('data', (d) => { data += d.toString(); });
    s.on('end', () => {
      const [head, body = ''] = data.split('\r\n\r\n');
      resolve({ status: Number(head!.split(' ')[1]), body });
    });
    s.on('error', reject);
  });
}

describe('health server limits', () => {
  let server: HealthServer | undefined;
  const sockets: net.Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await server?.close();
    server = undefined;
  });

  async function start(detail?: ReturnType<typeof parseCidr>[]): Promise<number> {
    const metrics = { contentType: 'text/plain', render: async () => 'farmlb_up 1\n' };
    server = await startHealthServer({
      addrs: ['127.0.0.1'], port: 0, module: 'farm', status, log: silentLogger(), metrics,
      ...(detail ? { detail: detail.map((c) => c!) } : {}), limits: { idleMs: 300 },
    });
    return Number(server.bound[0]!.split(':').pop());
  }

  it('gives /health and /metrics only to the node itself and health_detail; ready.txt to anyone', async () => {
    const port = await start([parseCidr('127.0.9.0/24')]);
    expect((await get(port, '/health', '127.0.0.1')).status).toBe(200);
    expect((await get(port, '/health', '127.0.9.9')).status).toBe(200);
    expect((await get(port, '/health', '127.0.5.5')).status).toBe(403);
    expect((await get(port, '/metrics', '127.0.5.5')).status).toBe(403);
    expect(await get(port, '/var/modules/farm/ready.txt', '127.0.5.5')).toEqual({ status: 200, body: 'OK' });
  });

  it('closes idle connections promptly (not after Node\'s 30 s), caps each source, evicts the oldest: a probe still gets in', async () => {
    const port = await start();
    // 30 sources × 10 idle connections: more than the total cap (256).
    for (let src = 1; src <= 30; src++) {
      for (let i = 0; i < 10; i++) {
        const s = net.connect({ host: '127.0.0.1', port, localAddress: `127.0.1.${src}` });
        s.on('error', () => {});
        sockets.push(s);
      }
    }
    // Beyond the per-source cap (16): refused.
    for (let i = 0; i < 20; i++) {
      const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.2.1' });
      s.on('error', () => {});
      sockets.push(s);
    }
    expect(await until(() => server!.connections().refused >= 4, 5000)).toBe(true);
    expect(await until(() => server!.connections().evicted > 0, 5000)).toBe(true);
    expect(server!.connections().open).toBeLessThanOrEqual(256);
    expect(await get(port, '/var/modules/farm/ready.txt')).toEqual({ status: 200, body: 'OK' });
    // Idle: closed by the server within a few idle periods.
    expect(await until(() => server!.connections().open === 0, 5000)).toBe(true);
  });

  it('closes a client that dribbles its headers', async () => {
    server = await startHealthServer({ addrs: ['127.0.0.1'], port: 0, module: 'farm', status, log: silentLogger(), limits: { headersMs: 300, requestMs: 400, idleMs: 10_000 } });
    const port = Number(server.bound[0]!.split(':').pop());
    const s = net.connect({ host: '127.0.0.1', port });
    sockets.push(s);
    let closed = false;
    s.on('close', () => { closed = true; });
    s.on('error', () => {});
    const drip = setInterval(() => { if (!closed) s.write('x-a: b\r\n'); }, 50);
    s.write('GET /health HTTP/1.1\r\n');
    try {
      expect(await until(() => closed, 5000)).toBe(true);
    } finally {
      clearInterval(drip);
    }
  });

  it('renders /metrics at most once per interval: concurrent and repeated scrapes share a rendering', async () => {
    let now = 0;
    let renders = 0;
    const inner = { contentType: 'text/plain', render: async () => `n ${++renders}\n` };
    const limited = rateLimitedRenderer(inner, 1000, () => now);
    const bodies = await Promise.all(Array.from({ length: 8 }, () => limited.render()));
    expect(new Set(bodies).size).toBe(1);
    for (let i = 0; i < 50; i++) { now += 10; await limited.render(); }
    expect(renders).toBe(1);
    now += 1000;
    expect(await limited.render()).toBe('n 2\n');
  });

  it('matches addresses against prefixes, IPv4-mapped included', () => {
    expect(cidrContains(parseCidr('10.0.0.0/8')!, '10.9.8.7')).toBe(true);
    expect(cidrContains(parseCidr('10.0.0.0/8')!, '::ffff:10.9.8.7')).toBe(true);
    expect(cidrContains(parseCidr('10.0.0.0/8')!, '11.0.0.1')).toBe(false);
    expect(cidrContains(parseCidr('fd00::/8')!, 'fd12::1')).toBe(true);
    expect(cidrContains(parseCidr('fd00::/8')!, '10.0.0.1')).toBe(false);
    expect(parseCidr('10.0.0.0/33')).toBeUndefined();
  });
});
