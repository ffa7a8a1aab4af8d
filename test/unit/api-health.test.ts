// The HTTP health check (src/api/health.ts): ready.txt for cloud load balancers, /health
// JSON for monitors, nothing else.

import { afterEach, describe, expect, it } from 'vitest';
import { healthRoute, startHealthServer, type HealthServer } from '../../src/api/health.js';
import type { DaemonStatus } from '../../src/api/status.js';
import { stateExitCode } from '../../src/api/status.js';
import { silentLogger } from '../../src/log.js';

function status(over: Partial<DaemonStatus> = {}): DaemonStatus {
  return {
    node: 'node1', module: 'farm', mode: 'membership', pid: 1, state: 'UP', stateCause: 'in the view', stateSince: 0,
    admin: 'started', ready: true, view: ['node1', 'node2'], epoch: 3, leader: 'node1', groups: ['web'], nodes: [],
    bucketsOwned: { web: 128 }, leaseRemainingMs: 120, splitBrain: false, splitBrainPolicy: 'serve',
    lastViewChange: { at: 1, epoch: 3, view: ['node1', 'node2'], cause: 'node3 lost', detectionMs: 250, installMs: 2, moved: 85 },
    checks: { ok: true, failures: [] }, configDigest: 'abc', ...over,
  };
}

describe('health routes', () => {
  it('answers ready.txt 200 OK when the module is UP with a valid lease', () => {
    expect(healthRoute('GET', '/var/modules/farm/ready.txt', 'farm', () => status())).toMatchObject({ status: 200, body: 'OK' });
  });

  it('answers ready.txt 404 NOT FOUND in WAIT, and when UP but the lease ran out', () => {
    expect(healthRoute('GET', '/var/modules/farm/ready.txt', 'farm', () => status({ state: 'WAIT', ready: false })))
      .toMatchObject({ status: 404, body: 'NOT FOUND' });
    expect(healthRoute('GET', '/var/modules/farm/ready.txt', 'farm', () => status({ ready: false, leaseRemainingMs: 0 })))
      .toMatchObject({ status: 404, body: 'NOT FOUND' });
  });

  it('answers 404 for another module\'s ready.txt and for every other path', () => {
    for (const url of ['/var/modules/other/ready.txt', '/', '/metrics', '/var/modules/farm/', '/health/x', '/../etc/passwd']) {
      expect(healthRoute('GET', url, 'farm', () => status()).status, url).toBe(404);
    }
  });

  it('refuses methods other than GET and HEAD', () => {
    for (const m of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      expect(healthRoute(m, '/health', 'farm', () => status())).toMatchObject({ status: 405, headers: { allow: 'GET, HEAD' } });
    }
    expect(healthRoute('HEAD', '/var/modules/farm/ready.txt', 'farm', () => status()).status).toBe(200);
  });

  it('answers /health with node, state and its cause, view, epoch, leader, buckets, lease and split brain', () => {
    const r = healthRoute('GET', '/health?x=1', 'farm', () => status({ splitBrain: true }));
    expect(r.status).toBe(200);
    expect(r.contentType).toBe('application/json');
    expect(JSON.parse(r.body)).toEqual({
      node: 'node1', module: 'farm', state: 'UP', stateCause: 'in the view', ready: true, view: ['node1', 'node2'], epoch: 3, leader: 'node1',
      bucketsOwned: { web: 128 }, leaseRemainingMs: 120, splitBrain: true,
      lastViewChange: { at: 1, epoch: 3, view: ['node1', 'node2'], cause: 'node3 lost', detectionMs: 250, installMs: 2, moved: 85 },
    });
  });

  it('maps module states to the exit codes of status -q: STOP 0, WAIT 1, UP 2', () => {
    expect([stateExitCode('STOP'), stateExitCode('WAIT'), stateExitCode('UP')]).toEqual([0, 1, 2]);
  });
});

describe('health server', () => {
  let server: HealthServer | undefined;
  afterEach(async () => { await server?.close(); server = undefined; });

  it('serves the routes over HTTP on the given address only', async () => {
    let s = status();
    server = await startHealthServer({ addrs: ['127.0.0.1'], port: 0, module: 'farm', status: () => s, log: silentLogger(), limits: { statusCacheMs: 0 } });
    expect(server.bound).toHaveLength(1);
    // port 0: read the one the kernel chose.
    const port = Number(server.bound[0]!.split(':').pop());
    expect(port).toBeGreaterThan(0);
    const base = `http://127.0.0.1:${port}`;
    let res = await fetch(`${base}/var/modules/farm/ready.txt`);
    expect([res.status, await res.text()]).toEqual([200, 'OK']);
    s = status({ state: 'WAIT', ready: false });
    res = await fetch(`${base}/var/modules/farm/ready.txt`);
    expect([res.status, await res.text()]).toEqual([404, 'NOT FOUND']);
    res = await fetch(`${base}/health`);
    expect(await res.json()).toMatchObject({ state: 'WAIT', epoch: 3 });
    res = await fetch(`${base}/health`, { method: 'POST' });
    expect(res.status).toBe(405);
  });

  it('skips an address it cannot bind instead of failing', async () => {
    server = await startHealthServer({ addrs: ['192.0.2.77'], port: 0, module: 'farm', status: () => status(), log: silentLogger() });
    expect(server.bound).toEqual([]);
  });
});
