// HTTP health for load balancers and monitors, on <farmlb health_port> (default 9010, the
// SafeKit web service port that cloud load balancers already probe; seed 001 §13.6.3):
//
//   GET /var/modules/<module>/ready.txt  → 200 "OK" when the module is UP and its kernel
//                                          lease is valid, else 404 "NOT FOUND"
//   GET /health                          → 200, JSON: node, module, state, view, epoch,
//                                          leader, buckets owned per group, lease remaining,
//                                          split brain, last view change
//   GET /metrics                         → Prometheus text format (src/api/metrics.ts),
//                                          when the daemon gives a metrics renderer
//
// Anything else is 404; methods other than GET (and HEAD, which Node answers as GET without
// a body) are 405. Nothing else is exposed. Two routes need no framework: node:http.
// Bound to this node's own addresses from cluster.xml (what a cloud LB probes), never to
// the wildcard address.

import http from 'node:http';
import type { Logger } from 'pino';
import { healthView, type DaemonStatus } from './status.js';

export interface HealthResponse {
  status: number;
  contentType: string;
  body: string;
  headers?: Record<string, string>;
}

/** The answer to one request; pure, so unit tests need no server. */
export function healthRoute(method: string | undefined, url: string | undefined, module: string, status: () => DaemonStatus): HealthResponse {
  const pathname = (url ?? '/').split('?')[0]!;
  const known = pathname === '/health' || pathname === `/var/modules/${module}/ready.txt`;
  if (!known) return text(404, 'NOT FOUND');
  if (method !== 'GET' && method !== 'HEAD') return { ...text(405, 'METHOD NOT ALLOWED'), headers: { allow: 'GET, HEAD' } };
  const s = status();
  if (pathname === '/health') return { status: 200, contentType: 'application/json', body: `${JSON.stringify(healthView(s))}\n` };
  return s.ready ? text(200, 'OK') : text(404, 'NOT FOUND');
}

/** GET /metrics, or undefined when the request is for another path (or metrics are off). */
export async function metricsRoute(method: string | undefined, url: string | undefined, metrics?: MetricsRenderer): Promise<HealthResponse | undefined> {
  if (!metrics || (url ?? '/').split('?')[0] !== '/metrics') return undefined;
  if (method !== 'GET' && method !== 'HEAD') return { ...text(405, 'METHOD NOT ALLOWED'), headers: { allow: 'GET, HEAD' } };
  return { status: 200, contentType: metrics.contentType, body: await metrics.render() };
}

export interface MetricsRenderer {
  readonly contentType: string;
  render(): Promise<string>;
}

function text(status: number, body: string): HealthResponse {
  return { status, contentType: 'text/plain; charset=utf-8', body };
}

export interface HealthServer {
  /** host:port actually listening. */
  readonly bound: string[];
  close(): Promise<void>;
}

/**
 * One listener per address. An address that cannot be bound is logged (health_bind_failed)
 * and skipped: health is for observers, the module runs without it.
 */
export async function startHealthServer(opts: {
  addrs: readonly string[];
  port: number;
  module: string;
  status: () => DaemonStatus;
  log: Logger;
  metrics?: MetricsRenderer;
}): Promise<HealthServer> {
  const servers: http.Server[] = [];
  const bound: string[] = [];
  for (const addr of opts.addrs) {
    const server = http.createServer(async (req, res) => {
      let r: HealthResponse;
      try {
        r = (await metricsRoute(req.method, req.url, opts.metrics)) ?? healthRoute(req.method, req.url, opts.module, opts.status);
      } catch (err) {
        opts.log.error({ err, event: 'health_error' }, 'health request failed');
        r = text(500, 'ERROR');
      }
      res.writeHead(r.status, { 'content-type': r.contentType, 'cache-control': 'no-store', ...r.headers });
      res.end(r.body);
    });
    // Probes are tiny: bound every wait so a slow or hostile client cannot hold sockets.
    server.requestTimeout = 5_000;
    server.headersTimeout = 5_000;
    server.keepAliveTimeout = 5_000;
    server.maxConnections = 256;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: addr, port: opts.port }, () => { server.off('error', reject); resolve(); });
      });
      servers.push(server);
      const port = (server.address() as { port: number }).port;
      bound.push(addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);
    } catch (err) {
      opts.log.error({ err, event: 'health_bind_failed', addr, port: opts.port }, `cannot serve health on ${addr}:${opts.port}`);
    }
  }
  if (bound.length > 0) opts.log.info({ event: 'health_listening', addrs: bound }, 'health check listening');
  return {
    bound,
    async close() {
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      })));
    },
  };
}
