// One probe of each checker kind (docs/application.md, "Checkers"): a TCP connection, an
// HTTP(S) GET with its status, an ICMP echo, an interface's link, an address configured
// here. Each resolves (never rejects) within its timeout with what it saw; a refused
// connection is marked, since it tells a dead application from a hung one.

import { execFile } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import type { CheckerConfig } from '../config/types.js';
import { systemProbe, type CheckProbe } from './local-checks.js';
import type { ProbeResult } from './resource.js';

const REFUSED = new Set(['ECONNREFUSED']);

function errorDetail(err: NodeJS.ErrnoException): ProbeResult {
  const code = err.code ?? '';
  if (REFUSED.has(code)) return { ok: false, detail: 'connection refused', refused: true };
  if (code === 'ECONNRESET') return { ok: false, detail: 'connection reset' };
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return { ok: false, detail: 'unreachable' };
  return { ok: false, detail: code ? `${code}: ${err.message}` : err.message };
}

/** Connects to addr:port; success once the handshake completes. */
export function tcpProbe(addr: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: addr, port });
    const done = (r: ProbeResult) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, detail: `no connection within ${timeoutMs} ms` }), timeoutMs);
    sock.once('connect', () => done({ ok: true, detail: 'connected' }));
    sock.once('error', (err) => done(errorDetail(err)));
  });
}

/** GET url; success when the status is one of `statuses`. The whole answer must come within the timeout. */
export function httpProbe(url: string, statuses: readonly number[], verifyTls: boolean, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    let settled = false;
    const done = (r: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    // A fresh connection every probe (agent: false): a kept-alive socket would prove nothing
    // about the listener.
    const req = mod.request(u, { method: 'GET', agent: false, rejectUnauthorized: verifyTls, headers: { 'user-agent': 'farmlb-checker', connection: 'close' } }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      res.once('end', () => done(statuses.includes(status) ? { ok: true, detail: `status ${status}` } : { ok: false, detail: `status ${status}` }));
      res.once('error', (err) => done(errorDetail(err)));
    });
    const timer = setTimeout(() => done({ ok: false, detail: `no answer within ${timeoutMs} ms` }), timeoutMs);
    req.once('error', (err) => done(errorDetail(err)));
    req.end();
  });
}

/** The host and port an HTTP checker's URL connects to. */
export function httpTarget(url: string): { host: string; port: number } {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return { host, port: u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80 };
}

/** One ICMP echo with ping(8) (raw sockets need privileges Node does not have without an addon). */
export function pingProbe(addr: string, timeoutMs: number): Promise<ProbeResult> {
  const waitS = Math.max(0.2, timeoutMs / 1000).toFixed(1);
  return new Promise((resolve) => {
    execFile('ping', [net.isIPv6(addr) ? '-6' : '-4', '-n', '-q', '-c', '1', '-W', waitS, addr], { timeout: timeoutMs + 1_000 }, (err) => {
      resolve(err ? { ok: false, detail: `no echo reply within ${timeoutMs} ms` } : { ok: true, detail: 'echo reply' });
    });
  });
}

export async function intfProbe(ifname: string, probe: CheckProbe = systemProbe): Promise<ProbeResult> {
  if (probe.upInterfaces()[ifname]) return { ok: true, detail: 'link up' };
  const state = await probe.operState(ifname);
  if (state === 'UP' || state === 'UNKNOWN') return { ok: true, detail: 'link up' };
  return { ok: false, detail: state === undefined ? 'no such interface' : `link ${state.toLowerCase()}` };
}

export async function ipProbe(addr: string): Promise<ProbeResult> {
  const here = Object.values(os.networkInterfaces()).some((list) => (list ?? []).some((a) => a.address.toLowerCase() === addr));
  if (here) return { ok: true, detail: 'configured' };
  // os.networkInterfaces() lists only interfaces up and running: ask ip before failing.
  return new Promise((resolve) => {
    execFile('ip', ['-j', 'addr', 'show'], { timeout: 2_000 }, (err, stdout) => {
      let found = false;
      if (!err) {
        try {
          found = (JSON.parse(stdout) as { addr_info?: { local: string }[] }[]).some((l) => (l.addr_info ?? []).some((a) => a.local.toLowerCase() === addr));
        } catch {
          found = false;
        }
      }
      resolve(found ? { ok: true, detail: 'configured (link down)' } : { ok: false, detail: 'not configured on this node' });
    });
  });
}

/** The probe of a periodic checker (custom checkers report on their own: src/checks/custom.ts). */
export function probeFor(c: Exclude<CheckerConfig, { kind: 'custom' }>): () => Promise<ProbeResult> {
  switch (c.kind) {
    case 'tcp': return () => tcpProbe(c.addr, c.port, c.timeoutMs);
    case 'http': return () => httpProbe(c.url, c.status, c.verifyTls, c.timeoutMs);
    case 'ping': return () => pingProbe(c.addr, c.timeoutMs);
    case 'intf': return () => intfProbe(c.ifname);
    case 'ip': return () => ipProbe(c.addr);
  }
}

/** What a checker tests, in one short string for the status. */
export function checkerTarget(c: CheckerConfig): string {
  switch (c.kind) {
    case 'tcp': return net.isIPv6(c.addr) ? `[${c.addr}]:${c.port}` : `${c.addr}:${c.port}`;
    case 'http': return c.url;
    case 'ping': return c.addr;
    case 'intf': return c.ifname;
    case 'ip': return c.addr;
    case 'custom': return [c.exec, ...c.args].join(' ');
  }
}
