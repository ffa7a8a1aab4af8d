// The application room without root (docs/application.md): fall/rise counts, the probes
// against real local servers, a real custom checker program, real module scripts with their
// environment, timeouts and -force, and the actions: wait (leave while down), restart (the
// node stays), stopstart (leave, restart, return), and maxloop stopping the module.

import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Resource } from '../../src/checks/resource.js';
import { httpProbe, httpTarget, tcpProbe } from '../../src/checks/probes.js';
import { listProcesses, procResult, type ProcessInfo } from '../../src/checks/procs.js';
import { CustomRunner } from '../../src/checks/runner.js';
import { ModuleScripts } from '../../src/daemon/scripts.js';
import { Application } from '../../src/daemon/application.js';
import { GracefulLeave, leaveRule } from '../../src/daemon/leave.js';
import { existsSync } from 'node:fs';
import { defaultAppConfig } from '../../src/config/app.js';
import type { AppConfig, CheckerConfig, ProcConfig } from '../../src/config/types.js';
import { waitFor } from '../lab/helpers/netns.js';

const silent = pino({ level: 'silent' });
const SRC = { file: 'u.xml', line: 1, column: 1, element: 'x' };

let dir: string;
beforeAll(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'flb-app-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

async function script(name: string, body: string, where = dir): Promise<string> {
  const file = path.join(where, name);
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
  return file;
}

function listen(handler?: http.RequestListener): Promise<{ port: number; close: () => Promise<void>; server: http.Server }> {
  const server = http.createServer(handler ?? ((_req, res) => res.end('ok')));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: (server.address() as net.AddressInfo).port, server,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  })));
}

/** A port nothing listens on (bound then closed). */
async function deadPort(): Promise<number> {
  const s = await listen();
  await s.close();
  return s.port;
}

describe('a resource moves with fall and rise', () => {
  it('is up at the first success, down after fall failures, up again after rise successes', () => {
    const r = new Resource(2, 3);
    const ok = { ok: true, detail: 'ok' };
    const bad = { ok: false, detail: 'refused' };
    expect(r.record(bad, 1, 0)).toBeUndefined();
    expect(r.state).toBe('unknown');
    expect(r.record(ok, 2, 0)).toBe('up');
    expect(r.record(bad, 3, 0)).toBeUndefined();
    expect(r.record(ok, 4, 0)).toBeUndefined();
    expect(r.record(bad, 5, 0)).toBeUndefined();
    expect(r.record(bad, 6, 0)).toBe('down');
    expect(r.record(ok, 7, 0)).toBeUndefined();
    expect(r.record(ok, 8, 0)).toBeUndefined();
    expect(r.record(ok, 9, 0)).toBe('up');
    expect(r.snapshot()).toMatchObject({ probes: 9, failures: 4, changes: 3, lastChangeMs: 9, lastResult: { ok: true, atMs: 9 } });
  });
});

describe('probes', () => {
  it('tcp: connected, refused (marked), and a timeout', async () => {
    const s = await listen();
    try {
      expect(await tcpProbe('127.0.0.1', s.port, 500)).toEqual({ ok: true, detail: 'connected' });
    } finally {
      await s.close();
    }
    expect(await tcpProbe('127.0.0.1', await deadPort(), 500)).toEqual({ ok: false, detail: 'connection refused', refused: true });
  });

  it('http: the status decides; a server that never answers times out; refused is marked', async () => {
    let status = 200;
    const s = await listen((req, res) => {
      if (req.url === '/hang') return;
      res.statusCode = status;
      res.end('x');
    });
    try {
      const url = `http://127.0.0.1:${s.port}/health`;
      expect(await httpProbe(url, [200], false, 1000)).toEqual({ ok: true, detail: 'status 200' });
      status = 503;
      expect(await httpProbe(url, [200], false, 1000)).toEqual({ ok: false, detail: 'status 503' });
      expect(await httpProbe(url, [200, 503], false, 1000)).toMatchObject({ ok: true });
      expect(await httpProbe(`http://127.0.0.1:${s.port}/hang`, [200], false, 300)).toEqual({ ok: false, detail: 'no answer within 300 ms' });
    } finally {
      await s.close();
    }
    expect(await httpProbe(`http://127.0.0.1:${await deadPort()}/`, [200], false, 500)).toMatchObject({ ok: false, refused: true });
    expect(httpTarget('https://[::1]/x')).toEqual({ host: '::1', port: 443 });
  });

  it('proc: counts processes by name or regex and arguments, against atleast and atmost', () => {
    const list: ProcessInfo[] = [
      { pid: 1, name: 'nginx', argv0: 'nginx', args: '-g daemon off;' }, { pid: 2, name: 'nginx', argv0: 'nginx', args: '' },
      { pid: 3, name: 'java', argv0: 'java', args: '-jar tomcat.jar' }, { pid: 4, name: 'MainThread', argv0: 'node', args: 'app.js' },
    ];
    const p = (over: Partial<ProcConfig>): ProcConfig => ({ name: 'nginx', atleast: 1, atmost: -1, action: 'restart', when: 'both', resource: 'proc.nginx', src: SRC, ...over });
    expect(procResult(p({}), list)).toMatchObject({ ok: true, detail: '2 processes nginx running' });
    expect(procResult(p({ atmost: 1 }), list)).toMatchObject({ ok: false });
    expect(procResult(p({ name: 'httpd' }), list)).toMatchObject({ ok: false, refused: true });
    expect(procResult(p({ name: 'java', argRegex: 'tomcat' }), list)).toMatchObject({ ok: true });
    expect(procResult(p({ name: 'j', nameRegex: '^ja', argRegex: 'jetty' }), list)).toMatchObject({ ok: false });
    // A program that renamed its thread is still found by the name it was started as.
    expect(procResult(p({ name: 'node', argRegex: 'app' }), list)).toMatchObject({ ok: true });
  });

  it('proc: reads every process of /proc with its name and arguments; one that ended while read is not counted', async () => {
    const proc = path.join(dir, 'proc');
    await mkdir(path.join(proc, '42'), { recursive: true });
    await writeFile(path.join(proc, '42', 'comm'), 'MainThread\n');
    await writeFile(path.join(proc, '42', 'cmdline'), '/usr/bin/node\0app.js\0--port\x008080\0');
    await mkdir(path.join(proc, '43')); // ended: its files are gone
    await mkdir(path.join(proc, 'self'));
    expect(await listProcesses(proc)).toEqual([{ pid: 42, name: 'MainThread', argv0: 'node', args: 'app.js --port 8080' }]);
    await expect(listProcesses(path.join(dir, 'no-proc'))).rejects.toThrow(/ENOENT/);
    // The real one: this test's own process is there.
    const me = (await listProcesses()).find((x) => x.pid === process.pid);
    expect(me?.argv0).toBe(path.basename(process.argv0));
  });
});

describe('a custom checker program', () => {
  it('reports up and down lines, and its exit counts as a failure before it is started again', async () => {
    const flag = path.join(dir, 'custom-flag');
    await writeFile(flag, 'up');
    const exec = await script('custom-check', `n=0; while [ $n -lt 20 ]; do echo "$(cat ${flag}): from $SAFEMODULE"; n=$((n+1)); sleep 0.05; done; exit 3`);
    const results: { ok: boolean; detail: string }[] = [];
    const runner = new CustomRunner({ exec, args: [], env: { ...process.env, SAFEMODULE: 'm1' }, cwd: dir, intervalMs: 1000, log: silent }, (r) => results.push(r));
    runner.start();
    try {
      await waitFor(() => results.length >= 3, { timeoutMs: 5_000, intervalMs: 20, what: 'three reports' });
      expect(results[0]).toEqual({ ok: true, detail: 'from m1' });
      await writeFile(flag, 'down');
      await waitFor(() => results.some((r) => !r.ok && r.detail === 'from m1'), { timeoutMs: 5_000, intervalMs: 20, what: 'a down report' });
      await waitFor(() => results.some((r) => /exited \(code 3\)/.test(r.detail)), { timeoutMs: 5_000, intervalMs: 20, what: 'the exit' });
    } finally {
      runner.stop();
    }
  });
});

describe('module scripts', () => {
  it('run with SafeKit\'s environment and the <var> values; a missing script is no failure', async () => {
    const bin = await mkdtemp(path.join(dir, 'bin-'));
    const out = path.join(bin, 'out');
    await script('start_both', `echo "$SAFEMODULE $SAFEUSERBIN $SERVICES $1" > ${out}; echo started`, bin);
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => { lines.push(l); } });
    const s = new ModuleScripts({ dir: bin, env: { ...process.env, SAFEMODULE: 'web', SAFEUSERBIN: bin, SERVICES: 'nginx' }, niceTimeoutMs: 5_000, forceTimeoutMs: 5_000, logOutput: true, log });
    expect(await s.run('start_both')).toMatchObject({ ran: true, ok: true, code: 0 });
    expect((await readFile(out, 'utf8')).trim()).toBe(`web ${bin} nginx`);
    expect(lines.some((l) => /"event":"script_output".*"line":"started"/.test(l))).toBe(true);
    expect(await s.run('prestart')).toMatchObject({ ran: false, ok: true });
  });

  it('kill a stop script past nicestoptimeout and run it again with -force', async () => {
    const bin = await mkdtemp(path.join(dir, 'bin-'));
    const out = path.join(bin, 'out');
    await script('stop_both', `echo "run $1" >> ${out}; [ "$1" = "-force" ] && exit 0; sleep 30`, bin);
    await script('start_both', 'sleep 30', bin);
    const s = new ModuleScripts({ dir: bin, env: process.env, niceTimeoutMs: 300, forceTimeoutMs: 2_000, logOutput: false, log: silent });
    expect(await s.run('stop_both')).toMatchObject({ ran: true, ok: true, forced: true });
    expect((await readFile(out, 'utf8')).trim().split('\n').map((l) => l.trim())).toEqual(['run', 'run -force']);
    expect(await s.run('start_both')).toMatchObject({ ran: true, ok: false, timedOut: true, forced: false });
  });
});

describe('the application\'s actions', () => {
  function tcpChecker(port: number, action: CheckerConfig['action'], over: Partial<CheckerConfig> = {}): CheckerConfig {
    return { kind: 'tcp', addr: '127.0.0.1', port, ident: 'web', resource: 'tcp.web', when: 'both', action, intervalMs: 50, timeoutMs: 300, fall: 2, rise: 2, src: SRC, ...over } as CheckerConfig;
  }

  async function make(app: Partial<AppConfig>, withScripts: boolean, processes?: () => Promise<ProcessInfo[]>): Promise<{ a: Application; bin: string; order: () => Promise<string[]>; changes: string[] }> {
    const bin = await mkdtemp(path.join(dir, 'bin-'));
    const order = path.join(bin, 'order');
    for (const s of ['prestart', 'start_both', 'stop_both', 'poststop']) await script(s, `echo ${s} >> ${order}`, bin);
    const changes: string[] = [];
    const a = new Application({
      app: { ...defaultAppConfig(bin), ...app, ...(withScripts ? { scripts: { niceStopTimeoutMs: 5_000, forceStopTimeoutMs: 5_000, logOutput: false, vars: [], src: SRC } } : {}) },
      paths: { module: 'm', pinDir: '/nonexistent', runDir: bin }, node: 'n1', configFile: path.join(bin, 'u.xml'), log: silent,
      hooks: { changed: () => { changes.push(a.waitCause() ?? 'serving'); }, servingNothing: async () => undefined },
      ...(processes ? { processes } : {}),
    });
    return { a, bin, changes, order: async () => (await readFile(order, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean) };
  }

  it('wait: the node leaves while the application is down, naming the checker, and returns after rise successes', async () => {
    const s = await listen();
    const { a } = await make({ checkers: [tcpChecker(s.port, 'wait')] }, false);
    try {
      expect(await a.startBoth()).toBe(true);
      await waitFor(() => a.waitCause() === undefined, { timeoutMs: 3_000, intervalMs: 20, what: 'the first success' });
      await s.close();
      await waitFor(() => a.waitCause() !== undefined, { timeoutMs: 3_000, intervalMs: 20, what: 'the checker to fail twice' });
      expect(a.waitCause()).toBe('checker tcp.web down (connection refused)');
      expect(a.checkers()[0]).toMatchObject({ state: 'down', consecutiveFailed: 2 });
      s.server.listen(s.port, '127.0.0.1');
      await waitFor(() => a.waitCause() === undefined, { timeoutMs: 3_000, intervalMs: 20, what: 'rise successes' });
      expect(a.checkers()[0]!.consecutiveOk).toBeGreaterThanOrEqual(2);
    } finally {
      a.close();
      await s.close();
    }
  });

  it('restart without module scripts acts as wait', async () => {
    const port = await deadPort();
    const { a } = await make({ checkers: [tcpChecker(port, 'restart')] }, false);
    await a.startBoth();
    await waitFor(() => /down/.test(a.waitCause() ?? ''), { timeoutMs: 3_000, intervalMs: 20, what: 'the node to leave' });
    expect(a.checkers()[0]).toMatchObject({ action: 'restart', effectiveAction: 'wait' });
    a.close();
  });

  it('restart: stop_both then start_both, the node never leaving; past maxloop the module stops and stop_both runs', async () => {
    const port = await deadPort();
    const { a, order, changes } = await make({ checkers: [tcpChecker(port, 'restart', { fall: 1 })], maxloop: 2 }, true);
    await a.prestart();
    expect(await a.startBoth()).toBe(true);
    await waitFor(() => a.stopped !== undefined, { timeoutMs: 10_000, intervalMs: 20, what: 'maxloop to stop the module' });
    await a.idle();
    expect(await order()).toEqual(['prestart', 'start_both', 'stop_both', 'start_both', 'stop_both', 'start_both', 'stop_both']);
    // Between start_both and maxloop the node never had to leave.
    const leaves = changes.slice(changes.indexOf('serving')).filter((c) => c !== 'serving');
    expect(leaves.every((c) => /maxloop/.test(c))).toBe(true);
    expect(a.waitCause()).toMatch(/module stopped: tcp.web down again after 2 restart\(s\).*maxloop 2/);
    expect(a.status()).toMatchObject({ phase: 'stopped', loops: 2, maxloop: 2 });
    a.clearStop();
    a.close();
  });

  it('stopstart: the node leaves for the restart and comes back', async () => {
    const s = await listen();
    const { a, order, changes } = await make({ checkers: [tcpChecker(s.port, 'stopstart')] }, true);
    try {
      await a.startBoth();
      await waitFor(() => a.waitCause() === undefined, { timeoutMs: 3_000, intervalMs: 20, what: 'the first success' });
      await s.close();
      await waitFor(() => changes.some((c) => /^stopstart: tcp.web down/.test(c)), { timeoutMs: 3_000, intervalMs: 20, what: 'the stopstart' });
      s.server.listen(s.port, '127.0.0.1');
      await waitFor(async () => (await order()).length === 3 && a.waitCause() === undefined, { timeoutMs: 5_000, intervalMs: 20, what: 'the node to come back' });
      expect(await order()).toEqual(['start_both', 'stop_both', 'start_both']);
    } finally {
      a.close();
      await s.close();
    }
  });

  it('<errd>: a missing process restarts the application; the process list is read once per poll', async () => {
    let killed = false;
    let reads = 0;
    const proc: ProcConfig = { name: 'app', atleast: 1, atmost: -1, action: 'restart', when: 'both', resource: 'proc.app', src: SRC };
    // The process is gone from the kill until start_both has run again (as a real restart
    // would have it): a poll between the restart and the test seeing it must not count a
    // second death (a loaded machine made that race).
    let restarted: () => Promise<boolean> = async () => false;
    const { a, order, changes } = await make({ procs: [proc], procPollMs: 50 }, true, async () => {
      reads++;
      return killed && !(await restarted()) ? [] : [{ pid: 9, name: 'app', argv0: 'app', args: '' }];
    });
    restarted = async () => (await order()).filter((x) => x === 'start_both').length >= 2;
    await a.startBoth();
    await waitFor(() => reads > 2, { timeoutMs: 3_000, intervalMs: 20, what: 'polls' });
    killed = true;
    await waitFor(async () => (await order()).length >= 3, { timeoutMs: 5_000, intervalMs: 20, what: 'the restart' });
    await a.idle();
    expect((await order()).slice(0, 3)).toEqual(['start_both', 'stop_both', 'start_both']);
    expect(changes.filter((c) => c !== 'serving' && !/^application starting|^waiting/.test(c)), JSON.stringify(changes)).toEqual([]);
    a.close();
  });
});

describe('leaving the farm (docs/application.md)', () => {
  const tcpOk = async () => ({ ok: true, detail: 'connected' });
  const tcpRefused = async () => ({ ok: false, detail: 'connection refused', refused: true });
  const http = (over: Partial<{ result: { ok: boolean; detail: string; refused?: boolean } }> = {}) => ({ resource: 'http.web', kind: 'http', url: 'http://127.0.0.1:8080/health', result: { ok: false, detail: 'status 503' }, ...over });

  it('drains when every down resource is an HTTP checker whose port still accepts connections; else leaves at once', async () => {
    expect(await leaveRule([http()], tcpOk)).toEqual({ drain: true, why: 'the TCP port still accepts connections' });
    expect((await leaveRule([http()], tcpRefused)).drain).toBe(false);
    expect((await leaveRule([http({ result: { ok: false, detail: 'connection refused', refused: true } })], tcpOk)).drain).toBe(false);
    expect((await leaveRule([http(), { resource: 'tcp.db', kind: 'tcp' }], tcpOk)).drain).toBe(false);
    expect((await leaveRule([], tcpOk)).drain).toBe(false);
  });

  it('drains with a power override of 0, is held until the node serves nothing, and puts the earlier override back', async () => {
    const calls: string[] = [];
    let empty = false;
    let changes = 0;
    const runDir = await mkdtemp(path.join(dir, 'run-'));
    const leave = new GracefulLeave({
      membership: true, handoverLimitMs: 30_000, runDir, log: silent,
      selfOverrides: () => ({ web: 3 }),
      setSelfPower: async (p, g) => { calls.push(`${p}${g ? `@${g}` : ''}`); },
      servingNothing: () => empty,
      changed: () => { changes++; },
    }, tcpOk);
    expect(leave.mayDrain([http()])).toBe(true);
    const pending = leave.update([http()]);
    expect(leave.holding()).toBe(true);
    await pending;
    expect(leave.draining()).toBe(true);
    expect(calls).toEqual(['0']);
    expect(JSON.parse(await readFile(path.join(runDir, 'leave.json'), 'utf8'))).toEqual({ overrides: { web: 3 } });
    empty = true;
    await waitFor(() => !leave.holding(), { timeoutMs: 2_000, intervalMs: 20, what: 'the drain to end' });
    expect(changes).toBeGreaterThanOrEqual(2);
    await leave.update([]);
    expect(calls).toEqual(['0', '3@web']);
    expect(existsSync(path.join(runDir, 'leave.json'))).toBe(false);
    leave.close();
  });

  it('does not drain a --static node, nor with handover_limit 0', () => {
    const host = { runDir: dir, log: silent, selfOverrides: () => ({}), setSelfPower: async () => undefined, servingNothing: () => true, changed: () => undefined };
    expect(new GracefulLeave({ ...host, membership: false, handoverLimitMs: 30_000 }).mayDrain([http()])).toBe(false);
    expect(new GracefulLeave({ ...host, membership: true, handoverLimitMs: 0 }).mayDrain([http()])).toBe(false);
  });
});
