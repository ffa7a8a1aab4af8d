// The health server's connection handling, in a worker thread (docs/security.md, "Health and
// metrics"): accepting, parsing, timing out and capping HTTP connections costs the daemon's
// event loop nothing, so no HTTP load delays a heartbeat pulse. The worker answers what it
// can alone (unknown paths: 404) and asks the main thread for the three routes (healthRoute,
// metricsRoute of ./health.ts decide the answers); each answer is reused for a while
// (statusCacheMs, metricsMinIntervalMs), so a flood costs the main thread a few messages a
// second whatever its rate.
//
// Plain JavaScript run with `new Worker(source, { eval: true })`: it must load the same way
// from src/ under vitest and from dist/, and it needs nothing but node:http and node:net.

/** What the worker is started with. */
export interface HealthWorkerData {
  addrs: string[];
  port: number;
  module: string;
  limits: {
    maxConnections: number; maxPerSource: number; idleMs: number; headersMs: number; requestMs: number; checkMs: number;
    statusCacheMs: number; metricsMinIntervalMs: number; maxHeaderBytes: number;
  };
  /** Extra clients allowed to read /health and /metrics ('any', or prefixes); loopback and own addresses always. */
  detail: 'any' | { addr: string; prefixLen: number; family: 4 | 6 }[];
}

export type WorkerToMain =
  | { t: 'bound'; bound: string[]; failed: { addr: string; message: string }[] }
  | { t: 'ask'; id: number; path: string; get: boolean; detail: boolean }
  | { t: 'stats'; open: number; refused: number; evicted: number };

export type MainToWorker =
  | { t: 'answer'; id: number; status: number; contentType: string; body: string; headers?: Record<string, string> }
  | { t: 'close' };

export const HEALTH_WORKER_SOURCE = String.raw`
'use strict';
const http = require('node:http');
const net = require('node:net');
const { parentPort, workerData } = require('node:worker_threads');
const { addrs, port, module, limits, detail } = workerData;

// Who may read /health and /metrics: loopback, our own addresses, and <farmlb health_detail>.
const allowed = new net.BlockList();
allowed.addAddress('127.0.0.1', 'ipv4');
allowed.addAddress('::1', 'ipv6');
for (const a of addrs) allowed.addAddress(a, net.isIP(a) === 6 ? 'ipv6' : 'ipv4');
if (detail !== 'any') for (const c of detail) allowed.addSubnet(c.addr, c.prefixLen, c.family === 6 ? 'ipv6' : 'ipv4');
function detailFor(remote) {
  if (detail === 'any') return true;
  if (!remote) return false;
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remote);
  const a = m ? m[1] : remote;
  return allowed.check(a, net.isIP(a) === 6 ? 'ipv6' : 'ipv4');
}

// Connections: per source and in total; beyond the total, the oldest idle one makes room.
const open = new Map(); // socket -> request in flight, oldest first
const perSource = new Map();
const stats = { open: 0, refused: 0, evicted: 0 };
function forget(socket) {
  if (!open.delete(socket)) return;
  const src = socket.remoteAddress || '?';
  const n = (perSource.get(src) || 1) - 1;
  if (n <= 0) perSource.delete(src); else perSource.set(src, n);
}
function evictOldestIdle() {
  for (const [socket, busy] of open) {
    if (busy) continue;
    stats.evicted++;
    forget(socket);
    socket.destroy();
    return true;
  }
  return false;
}
function admit(socket) {
  const src = socket.remoteAddress || '?';
  const n = perSource.get(src) || 0;
  if (n >= limits.maxPerSource || (open.size >= limits.maxConnections && !evictOldestIdle())) {
    stats.refused++;
    socket.destroy();
    return false;
  }
  open.set(socket, false);
  perSource.set(src, n + 1);
  socket.once('close', () => forget(socket));
  return true;
}
function busy(socket, inFlight) {
  if (!open.has(socket)) return;
  open.delete(socket);
  open.set(socket, inFlight);
}
let lastStats = '';
const statsTimer = setInterval(() => {
  stats.open = open.size;
  const s = JSON.stringify(stats);
  if (s !== lastStats) { lastStats = s; parentPort.postMessage({ t: 'stats', ...stats }); }
}, 100);

// Answers of the main thread, reused for a while; one question in flight per key.
const known = new Set(['/health', '/metrics', '/var/modules/' + module + '/ready.txt']);
const cache = new Map(); // key -> { at, answer }
const pending = new Map(); // key -> Promise<answer>
const waiting = new Map(); // id -> resolve
let nextId = 1;
function ask(path, get, det) {
  const key = path + '|' + get + '|' + det;
  const ttl = path === '/metrics' ? limits.metricsMinIntervalMs : limits.statusCacheMs;
  const hit = cache.get(key);
  if (hit && performance.now() - hit.at < ttl) return Promise.resolve(hit.answer);
  let p = pending.get(key);
  if (!p) {
    const id = nextId++;
    p = new Promise((resolve) => waiting.set(id, resolve)).then((answer) => {
      pending.delete(key);
      if (answer.status !== 500) cache.set(key, { at: performance.now(), answer });
      return answer;
    });
    pending.set(key, p);
    parentPort.postMessage({ t: 'ask', id, path, get, detail: det });
  }
  return p;
}

const servers = [];
function handler(req, res) {
  busy(req.socket, true);
  res.once('close', () => busy(req.socket, false));
  const path = (req.url || '/').split('?')[0];
  const send = (a) => {
    res.writeHead(a.status, { 'content-type': a.contentType, 'content-length': Buffer.byteLength(a.body), 'cache-control': 'no-store', ...(a.headers || {}) });
    res.end(a.body);
  };
  if (!known.has(path)) return send({ status: 404, contentType: 'text/plain; charset=utf-8', body: 'NOT FOUND' });
  const get = req.method === 'GET' || req.method === 'HEAD';
  ask(path, get, detailFor(req.socket.remoteAddress)).then(send, () => send({ status: 500, contentType: 'text/plain; charset=utf-8', body: 'ERROR' }));
}

parentPort.on('message', (m) => {
  if (m.t === 'answer') {
    const resolve = waiting.get(m.id);
    waiting.delete(m.id);
    if (resolve) resolve(m);
  } else if (m.t === 'close') {
    clearInterval(statsTimer);
    Promise.all(servers.map((s) => new Promise((r) => { s.close(() => r()); s.closeAllConnections(); })))
      .then(() => process.exit(0));
  }
});

(async () => {
  const bound = [];
  const failed = [];
  for (const addr of addrs) {
    const server = http.createServer({
      connectionsCheckingInterval: limits.checkMs, headersTimeout: limits.headersMs, requestTimeout: limits.requestMs,
      keepAliveTimeout: limits.idleMs, maxHeaderSize: limits.maxHeaderBytes,
    }, handler);
    server.on('connection', (socket) => { if (admit(socket)) socket.setTimeout(limits.idleMs, () => socket.destroy()); });
    try {
      await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: addr, port }, () => { server.off('error', reject); resolve(); });
      });
      servers.push(server);
      const p = server.address().port;
      bound.push(addr.includes(':') ? '[' + addr + ']:' + p : addr + ':' + p);
    } catch (err) {
      failed.push({ addr, message: err && err.message ? err.message : String(err) });
    }
  }
  parentPort.postMessage({ t: 'bound', bound, failed });
})();
`;
