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
// Bound to this node's own addresses from cluster.xml (what a cloud LB probes), or to
// <farmlb health_bind>, never to the wildcard address.
//
// It must not be able to hurt the farm (docs/security.md, "Health and metrics"): connections
// are handled in a worker thread (./health-worker.ts), so no HTTP load delays the
// heartbeat pulse on the daemon's event loop. /health and /metrics
// (the view, the leader, the config digest, each node's buckets) answer only the addresses
// of <farmlb health_detail> (default: this node itself), others get 403 and ready.txt;
// idle, slow and header-dribbling connections are closed within seconds (checked every
// 250 ms, not Node's 30 s); connections are capped per source and in total, the oldest
// evicted first so a probe always gets in; the status is computed at most every 100 ms and
// /metrics rendered at most once a second, whatever the request rate.

import { Worker } from 'node:worker_threads';
import type { Cidr } from '../config/cidr.js';
import { HEALTH_WORKER_SOURCE, type HealthWorkerData, type MainToWorker, type WorkerToMain } from './health-worker.js';
import type { Logger } from 'pino';
import { healthView, type DaemonStatus } from './status.js';

export interface HealthResponse {
  status: number;
  contentType: string;
  body: string;
  headers?: Record<string, string>;
}

/**
 * The answer to one request; pure, so unit tests need no server. `detail` says whether the
 * client may read /health (an address of <farmlb health_detail>).
 */
export function healthRoute(method: string | undefined, url: string | undefined, module: string, status: () => DaemonStatus, detail = true): HealthResponse {
  const pathname = (url ?? '/').split('?')[0]!;
  const known = pathname === '/health' || pathname === `/var/modules/${module}/ready.txt`;
  if (!known) return text(404, 'NOT FOUND');
  if (method !== 'GET' && method !== 'HEAD') return { ...text(405, 'METHOD NOT ALLOWED'), headers: { allow: 'GET, HEAD' } };
  if (pathname === '/health' && !detail) return FORBIDDEN;
  const s = status();
  if (pathname === '/health') return { status: 200, contentType: 'application/json', body: `${JSON.stringify(healthView(s))}\n` };
  return s.ready ? text(200, 'OK') : text(404, 'NOT FOUND');
}

/** GET /metrics, or undefined when the request is for another path (or metrics are off). */
export async function metricsRoute(method: string | undefined, url: string | undefined, metrics?: MetricsRenderer, detail = true): Promise<HealthResponse | undefined> {
  if (!metrics || (url ?? '/').split('?')[0] !== '/metrics') return undefined;
  if (method !== 'GET' && method !== 'HEAD') return { ...text(405, 'METHOD NOT ALLOWED'), headers: { allow: 'GET, HEAD' } };
  if (!detail) return FORBIDDEN;
  return { status: 200, contentType: metrics.contentType, body: await metrics.render() };
}

export interface MetricsRenderer {
  readonly contentType: string;
  render(): Promise<string>;
}

function text(status: number, body: string): HealthResponse {
  return { status, contentType: 'text/plain; charset=utf-8', body };
}

const FORBIDDEN = text(403, 'FORBIDDEN (only the addresses of <farmlb health_detail> may read it)');

export interface HealthLimits {
  maxConnections: number;
  maxPerSource: number;
  idleMs: number;
  headersMs: number;
  requestMs: number;
  checkMs: number;
  statusCacheMs: number;
  metricsMinIntervalMs: number;
  maxHeaderBytes: number;
}

/** Limits of the health server (docs/security.md, "Health and metrics"). */
export const HEALTH_LIMITS: Readonly<HealthLimits> = {
  /** Open connections in total; beyond, the oldest is closed for the new one. */
  maxConnections: 256,
  /** Open connections from one source address; beyond, the new one is closed. */
  maxPerSource: 16,
  /** A connection with no byte for this long is closed (Node's default never closes it). */
  idleMs: 2_000,
  /** Whole request line and headers within this (slow-header clients). */
  headersMs: 2_000,
  /** Whole request within this. */
  requestMs: 3_000,
  /** How often Node checks the two timeouts above (its default is 30 s). */
  checkMs: 250,
  /** Status computed at most this often (a probe flood costs one status per period). */
  statusCacheMs: 100,
  /** /metrics rendered at most this often; scrapes in between get the last rendering. */
  metricsMinIntervalMs: 1_000,
  /** Largest request header block accepted. */
  maxHeaderBytes: 4096,
};

/** `fn`'s value, computed again only once `ttlMs` passed (by the monotonic clock). */
export function cachedFor<T>(ttlMs: number, fn: () => T, nowMs: () => number = () => performance.now()): () => T {
  let at = -Infinity;
  let value: T;
  return () => {
    const now = nowMs();
    if (now - at >= ttlMs) {
      value = fn();
      at = now;
    }
    return value;
  };
}

/**
 * A renderer that renders at most once per `minIntervalMs`: concurrent scrapes share one
 * rendering in flight, and scrapes within the interval get the last one. One scrape of a big
 * farm is tens of ms on the event loop the heartbeats share; N scrapers must not be N times that.
 */
export function rateLimitedRenderer(inner: MetricsRenderer, minIntervalMs: number, nowMs: () => number = () => performance.now()): MetricsRenderer & { renders(): number } {
  let last: { at: number; body: Promise<string> } | undefined;
  let count = 0;
  return {
    contentType: inner.contentType,
    renders: () => count,
    render() {
      const now = nowMs();
      if (last && now - last.at < minIntervalMs) return last.body;
      count++;
      const body = inner.render();
      last = { at: now, body };
      // A failed rendering is not kept: the next scrape tries again.
      body.catch(() => { if (last?.body === body) last = undefined; });
      return body;
    },
  };
}

export interface HealthServer {
  /** host:port actually listening. */
  readonly bound: string[];
  /** Open connections, and those refused (per-source cap) or evicted (total cap) so far. */
  connections(): { open: number; refused: number; evicted: number };
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
  /**
   * Which other clients may read /health and /metrics (<farmlb health_detail>), besides
   * loopback and the addresses the server is bound to (this node itself), which always may.
   */
  detail?: readonly Cidr[] | 'any';
  limits?: Partial<HealthLimits>;
}): Promise<HealthServer> {
  const limits = { ...HEALTH_LIMITS, ...opts.limits };
  // The worker reuses answers; these bound the main thread's work again should it not.
  const status = cachedFor(limits.statusCacheMs, opts.status);
  const metrics = opts.metrics ? rateLimitedRenderer(opts.metrics, limits.metricsMinIntervalMs) : undefined;
  const data: HealthWorkerData = {
    addrs: [...opts.addrs], port: opts.port, module: opts.module, limits,
    detail: opts.detail === 'any' ? 'any' : (opts.detail ?? []).map((c) => ({ addr: c.addr.canonical, prefixLen: c.prefixLen, family: c.addr.family })),
  };
  const worker = new Worker(HEALTH_WORKER_SOURCE, { eval: true, workerData: data });
  let stats = { open: 0, refused: 0, evicted: 0 };
  const answer = async (m: Extract<WorkerToMain, { t: 'ask' }>): Promise<MainToWorker> => {
    let r: HealthResponse;
    try {
      const method = m.get ? 'GET' : 'POST';
      r = (await metricsRoute(method, m.path, metrics, m.detail)) ?? healthRoute(method, m.path, opts.module, status, m.detail);
    } catch (err) {
      opts.log.error({ err, event: 'health_error' }, 'health request failed');
      r = text(500, 'ERROR');
    }
    return { t: 'answer', id: m.id, status: r.status, contentType: r.contentType, body: r.body, ...(r.headers ? { headers: r.headers } : {}) };
  };
  const listening = new Promise<Extract<WorkerToMain, { t: 'bound' }>>((resolve, reject) => {
    worker.on('message', (m: WorkerToMain) => {
      if (m.t === 'bound') resolve(m);
      else if (m.t === 'stats') stats = { open: m.open, refused: m.refused, evicted: m.evicted };
      else if (m.t === 'ask') void answer(m).then((a) => worker.postMessage(a));
    });
    worker.once('error', reject);
    worker.once('exit', () => reject(new Error('the health worker exited while starting')));
  });
  worker.on('error', (err) => opts.log.error({ err, event: 'health_error' }, 'the health server worker failed'));
  let started: Extract<WorkerToMain, { t: 'bound' }>;
  try {
    started = await listening;
  } catch (err) {
    opts.log.error({ err, event: 'health_bind_failed', port: opts.port }, 'the health server could not start');
    await worker.terminate();
    return { bound: [], connections: () => stats, async close() {} };
  }
  for (const f of started.failed) {
    opts.log.error({ err: { message: f.message }, event: 'health_bind_failed', addr: f.addr, port: opts.port }, `cannot serve health on ${f.addr}:${opts.port}`);
  }
  if (started.bound.length > 0) opts.log.info({ event: 'health_listening', addrs: started.bound }, 'health check listening');
  let closing: Promise<void> | undefined;
  return {
    bound: started.bound,
    connections: () => ({ ...stats }),
    close() {
      closing ??= new Promise<void>((resolve) => {
        const bound = setTimeout(() => { void worker.terminate(); }, 2_000);
        worker.once('exit', () => { clearTimeout(bound); resolve(); });
        worker.postMessage({ t: 'close' } satisfies MainToWorker);
      });
      return closing;
    },
  };
}
