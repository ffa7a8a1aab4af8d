// The control socket protocol (src/api/control.ts): JSON lines over a Unix socket, one
// answer per request, errors carried with their code, a root-only socket file.

import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { controlRequest, controlSocketPath, handleLine, parseRequest, startControlServer, type ControlHandler, type ControlServer, type PowerChange } from '../../src/api/control.js';
import type { DaemonStatus } from '../../src/api/status.js';
import { FarmlbError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';

function fakeStatus(over: Partial<DaemonStatus> = {}): DaemonStatus {
  return {
    node: 'node1', module: 'farm', mode: 'membership', pid: 1, state: 'UP', stateCause: 'in the view', stateSince: 0,
    admin: 'started', ready: true, view: ['node1', 'node2'], epoch: 3, leader: 'node1', groups: ['web'], nodes: [],
    bucketsOwned: { web: 128 }, leaseRemainingMs: 120, splitBrain: false, splitBrainPolicy: 'serve', lastViewChange: null,
    checks: { ok: true, failures: [] }, configDigest: 'abc', ...over,
  };
}

class FakeHandler implements ControlHandler {
  state: DaemonStatus['state'] = 'UP';
  powers: PowerChange[] = [];
  status() { return fakeStatus({ state: this.state }); }
  async start() { this.state = 'UP'; return this.status(); }
  async stop() { this.state = 'WAIT'; return this.status(); }
  async power(c: PowerChange) {
    if (c.node === 'nope') throw new FarmlbError('FARMLB_E_API_UNKNOWN_NODE', { node: c.node, nodes: 'node1, node2' });
    this.powers.push(c);
    return this.status();
  }
}

describe('control request parsing', () => {
  it('accepts every command with its arguments', () => {
    expect(parseRequest('{"cmd":"status","id":7}')).toEqual({ cmd: 'status', id: 7 });
    expect(parseRequest('{"cmd":"power","node":"n2","power":3,"group":"web"}')).toEqual({ cmd: 'power', node: 'n2', power: 3, group: 'web', id: undefined });
    expect(parseRequest('{"cmd":"power","node":"n2","power":null}')).toMatchObject({ cmd: 'power', power: null });
    expect(parseRequest('{"cmd":"drain","node":"n2"}')).toMatchObject({ cmd: 'drain', node: 'n2' });
    expect(parseRequest('{"cmd":"vip","action":"close"}')).toMatchObject({ cmd: 'vip', action: 'close' });
    expect(() => parseRequest('{"cmd":"vip","action":"toggle"}')).toThrow(expect.objectContaining({ code: 'FARMLB_E_API_BAD_REQUEST' }));
  });

  it('rejects malformed requests with FARMLB_E_API_BAD_REQUEST', () => {
    for (const bad of ['not json', '[]', '{"cmd":"reboot"}', '{"cmd":"power","node":"n2","power":-1}', '{"cmd":"power","node":"n2","power":1.5}', '{"cmd":"drain"}', '{"cmd":"power","node":"n","power":1,"group":3}']) {
      expect(() => parseRequest(bad), bad).toThrow(expect.objectContaining({ code: 'FARMLB_E_API_BAD_REQUEST' }));
    }
  });

  it('answers a handler error with its code and echoes the request id', async () => {
    const res = await handleLine('{"id":"x","cmd":"power","node":"nope","power":1}', new FakeHandler());
    expect(res).toMatchObject({ id: 'x', ok: false, error: { code: 'FARMLB_E_API_UNKNOWN_NODE' } });
  });

  it('maps drain to power 0 and undrain to a cleared override', async () => {
    const h = new FakeHandler();
    await handleLine('{"cmd":"drain","node":"node2"}', h);
    await handleLine('{"cmd":"undrain","node":"node2"}', h);
    expect(h.powers).toEqual([{ node: 'node2', power: 0 }, { node: 'node2', power: null }]);
  });
});

describe('control socket', () => {
  let dir: string;
  let server: ControlServer | undefined;
  let handler: FakeHandler;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'flb-api-'));
    handler = new FakeHandler();
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the socket with mode 0600 and answers status, stop and start', async () => {
    server = await startControlServer({ runDir: dir, handler, log: silentLogger() });
    expect((await stat(controlSocketPath(dir))).mode & 0o777).toBe(0o600);
    expect(await controlRequest(dir, { cmd: 'status' })).toMatchObject({ state: 'UP', epoch: 3 });
    expect(await controlRequest(dir, { cmd: 'stop' })).toMatchObject({ state: 'WAIT' });
    expect(await controlRequest(dir, { cmd: 'start' })).toMatchObject({ state: 'UP' });
  });

  it('rethrows a daemon error with the daemon\'s code', async () => {
    server = await startControlServer({ runDir: dir, handler, log: silentLogger() });
    await expect(controlRequest(dir, { cmd: 'power', node: 'nope', power: 1 })).rejects.toMatchObject({ code: 'FARMLB_E_API_UNKNOWN_NODE' });
  });

  it('answers several requests on one connection in order', async () => {
    server = await startControlServer({ runDir: dir, handler, log: silentLogger() });
    const answers = await new Promise<string[]>((resolve, reject) => {
      const s = net.createConnection(controlSocketPath(dir));
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString();
        const lines = buf.split('\n').filter(Boolean);
        if (lines.length === 3) { s.destroy(); resolve(lines); }
      });
      s.on('error', reject);
      s.write('{"id":1,"cmd":"stop"}\n{"id":2,"cmd":"status"}\ngarbage\n');
    });
    const parsed = answers.map((l) => JSON.parse(l) as { id?: number; ok: boolean; result?: DaemonStatus; error?: { code: string } });
    expect(parsed[0]).toMatchObject({ id: 1, ok: true });
    expect(parsed[1]).toMatchObject({ id: 2, ok: true, result: { state: 'WAIT' } });
    expect(parsed[2]).toMatchObject({ ok: false, error: { code: 'FARMLB_E_API_BAD_REQUEST' } });
  });

  it('serves a client that pipelines requests and reads nothing only as fast as it reads: handled requests and memory stay bounded', async () => {
    let handled = 0;
    const counting: ControlHandler = { ...handler, status: () => { handled++; return fakeStatus(); }, start: () => handler.start(), stop: () => handler.stop(), power: (c) => handler.power(c) };
    server = await startControlServer({ runDir: dir, handler: counting, log: silentLogger() });
    const total = 20_000;
    const s = net.createConnection(controlSocketPath(dir));
    await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
    s.pause();
    const line = '{"cmd":"status"}\n';
    s.write(line.repeat(total));
    // Give the server time to run ahead if it could: it stops once its answers fill the socket.
    let before = -1;
    const deadline = Date.now() + 5_000;
    while (handled !== before && Date.now() < deadline) {
      before = handled;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(handled).toBeGreaterThan(0);
    expect(handled).toBeLessThan(total / 4);
    // Reading resumes the server: every request is answered, in order.
    let answers = 0;
    let buf = '';
    await new Promise<void>((resolve, reject) => {
      s.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          buf = buf.slice(nl + 1);
          if (++answers === total) resolve();
        }
      });
      s.on('error', reject);
      s.resume();
    });
    s.destroy();
    expect(handled).toBe(total);
  }, 30_000);

  it('says FARMLB_E_CLI_NOT_RUNNING with the module and socket path when no daemon listens', async () => {
    const err = await controlRequest(dir, { cmd: 'status' }, { module: 'web' }).catch((e: unknown) => e) as FarmlbError;
    expect(err.code).toBe('FARMLB_E_CLI_NOT_RUNNING');
    expect(err.message).toContain('web');
    expect(err.hint).toContain(controlSocketPath(dir));
  });

  it('replaces a socket file a killed daemon left, but refuses to take over a live one', async () => {
    await writeFile(controlSocketPath(dir), '');
    server = await startControlServer({ runDir: dir, handler, log: silentLogger() });
    await expect(startControlServer({ runDir: dir, handler, log: silentLogger() })).rejects.toMatchObject({ code: 'FARMLB_E_API_SOCKET' });
    expect(await controlRequest(dir, { cmd: 'status' })).toMatchObject({ state: 'UP' });
  });

  it('removes the socket file on close', async () => {
    server = await startControlServer({ runDir: dir, handler, log: silentLogger() });
    await server.close();
    server = undefined;
    await expect(stat(controlSocketPath(dir))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
