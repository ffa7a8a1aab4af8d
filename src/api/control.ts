// The control socket: how `farmlb status|start|stop|power|drain|undrain` talk to the
// running daemon of a module. A Unix stream socket at <run-dir>/control.sock, JSON lines:
//
//   → {"id": 1, "cmd": "status"}
//   ← {"id": 1, "ok": true, "result": {…DaemonStatus…}}
//   → {"id": 2, "cmd": "power", "node": "node2", "power": 3, "group": "web"}
//   ← {"id": 2, "ok": false, "error": {"code": "FARMLB_E_API_UNKNOWN_NODE", "message": "…", "hint": "…"}}
//
// Commands: status; start / stop (the module leaves / enters an administrative WAIT);
// power {node, power, group?} (power null clears the override); drain {node} (= power 0,
// every group); undrain {node} (clears node's overrides); vip {action: open|close} (the
// module scripts, with <vip scriptcontrol="on">); reload (re-reads the configuration
// files as SIGHUP does, answering with the refusal when there is one). One response per request line,
// in order; several requests may share a connection, answered one at a time: unanswered input
// beyond MAX_PENDING_INPUT_BYTES is left unread and the next answer waits for the previous one
// to leave the socket buffer, so a pipelining client costs bounded memory.
//
// Root only: Node cannot read SO_PEERCRED without an addon, so access is by file mode: the
// socket is created under umask 077 (mode 0600, owned by the daemon's user, root) inside the
// run directory (mode 0700). Only root can connect, as with any root-owned 0600 socket.

import { existsSync } from 'node:fs';
import { chmod, unlink } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { FarmlbError, isFarmlbError } from '../errors.js';
import type { DaemonStatus } from './status.js';

export function controlSocketPath(runDir: string): string {
  return path.join(runDir, 'control.sock');
}

/** A request line longer than this closes the connection: nothing legitimate comes close. */
export const MAX_REQUEST_BYTES = 64 * 1024;

export type ControlRequest =
  | { id?: unknown; cmd: 'status' }
  | { id?: unknown; cmd: 'start' }
  | { id?: unknown; cmd: 'stop' }
  | { id?: unknown; cmd: 'power'; node: string; power: number | null; group?: string }
  | { id?: unknown; cmd: 'drain'; node: string }
  | { id?: unknown; cmd: 'undrain'; node: string }
  | { id?: unknown; cmd: 'reload' }
  | { id?: unknown; cmd: 'vip'; action: 'open' | 'close' };

export type ControlResponse =
  | { id?: unknown; ok: true; result: unknown }
  | { id?: unknown; ok: false; error: { code: string; message: string; hint?: string } };

export interface PowerChange {
  node: string;
  /** null clears the node's override (back to the configured power). */
  power: number | null;
  /** undefined: every group. */
  group?: string;
}

/** What the daemon does for each command. Errors thrown as FarmlbError reach the client with their code. */
export interface ControlHandler {
  status(): DaemonStatus;
  start(): Promise<DaemonStatus>;
  stop(): Promise<DaemonStatus>;
  power(change: PowerChange): Promise<DaemonStatus>;
  /** Re-reads the configuration files (as SIGHUP does); a refusal reaches the client as its error. Without it, reload is refused as unknown. */
  reload?(): Promise<DaemonStatus>;
  /** <vip scriptcontrol="on">: the module scripts open or close traffic to the VIPs (farmlb vip open|close). */
  vip?(action: 'open' | 'close'): Promise<DaemonStatus>;
}

const COMMANDS = new Set(['status', 'start', 'stop', 'power', 'drain', 'undrain', 'reload', 'vip']);

/** Parses and checks one request line. Throws FARMLB_E_API_BAD_REQUEST. */
export function parseRequest(line: string): ControlRequest {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    throw new FarmlbError('FARMLB_E_API_BAD_REQUEST', { detail: 'not a JSON object' });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FarmlbError('FARMLB_E_API_BAD_REQUEST', { detail: 'not a JSON object' });
  const r = raw as Record<string, unknown>;
  if (typeof r.cmd !== 'string' || !COMMANDS.has(r.cmd)) {
    throw new FarmlbError('FARMLB_E_API_BAD_REQUEST', { detail: `unknown command ${JSON.stringify(r.cmd)} (commands: ${[...COMMANDS].join(', ')})` });
  }
  const needNode = () => {
    if (typeof r.node !== 'string' || r.node === '') throw new FarmlbError('FARMLB_E_API_BAD_REQUEST', { detail: `${String(r.cmd)} needs "node"` });
    return r.node;
  };
  switch (r.cmd) {
    case 'power': {
      const node = needNode();
      if (r.power !== null && !(typeof r.power === 'number' && Number.isSafeInteger(r.power) && r.power >= 0)) {
        throw new FarmlbError('FARMLB_E_API_BAD_REQUEST', { detail: '"power" must be a non-negative integer, or null to clear' });
      }
      if (r.group !== undefined && typeof r.group !== 'string') throw new FarmlbError('FARMLB_E_API_BAD_REQUEST', { detail: '"group" must be a group name' });
      return { id: r.id, cmd: 'power', node, power: r.power as number | null, ...(r.group !== undefined ? { group: r.group as string } : {}) };
    }
    case 'drain':
    case 'undrain':
      return { id: r.id, cmd: r.cmd, node: needNode() };
    case 'vip':
      if (r.action !== 'open' && r.action !== 'close') throw new FarmlbError('FARMLB_E_API_BAD_REQUEST', { detail: 'vip needs "action": "open" or "close"' });
      return { id: r.id, cmd: 'vip', action: r.action };
    default:
      return { id: r.id, cmd: r.cmd as 'status' | 'start' | 'stop' | 'reload' };
  }
}

/** Runs one request line against the handler; never throws. */
export async function handleLine(line: string, handler: ControlHandler): Promise<ControlResponse> {
  let id: unknown;
  try {
    const req = parseRequest(line);
    id = req.id;
    const result = await dispatch(req, handler);
    return { ...(id !== undefined ? { id } : {}), ok: true, result };
  } catch (err) {
    if (id === undefined) id = idOf(line);
    const error = isFarmlbError(err)
      ? { code: err.code, message: err.message, hint: err.hint }
      : { code: 'FARMLB_E_INTERNAL', message: `internal error: ${err instanceof Error ? err.message : String(err)}` };
    return { ...(id !== undefined ? { id } : {}), ok: false, error };
  }
}

function idOf(line: string): unknown {
  try {
    return (JSON.parse(line) as { id?: unknown }).id;
  } catch {
    return undefined;
  }
}

async function dispatch(req: ControlRequest, h: ControlHandler): Promise<unknown> {
  switch (req.cmd) {
    case 'status': return h.status();
    case 'start': return h.start();
    case 'stop': return h.stop();
    case 'power': return h.power({ node: req.node, power: req.power, ...(req.group !== undefined ? { group: req.group } : {}) });
    case 'drain': return h.power({ node: req.node, power: 0 });
    case 'undrain': return h.power({ node: req.node, power: null });
    case 'reload':
      if (!h.reload) throw new FarmlbError('FARMLB_E_API_BAD_REQUEST', { detail: 'this daemon does not reload over the control socket' });
      return h.reload();
    case 'vip':
      if (!h.vip) throw new FarmlbError('FARMLB_E_API_BAD_REQUEST', { detail: 'this daemon does not take vip open/close' });
      return h.vip(req.action);
  }
}

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

/**
 * Listens on <runDir>/control.sock. A socket file left by a killed run is replaced; one a
 * live daemon answers on is not (FARMLB_E_API_SOCKET).
 */
export async function startControlServer(opts: { runDir: string; handler: ControlHandler; log: Logger }): Promise<ControlServer> {
  const sockPath = controlSocketPath(opts.runDir);
  if (existsSync(sockPath)) {
    if (await answers(sockPath)) throw new FarmlbError('FARMLB_E_API_SOCKET', { path: sockPath, detail: 'another daemon answers on it' });
    await unlink(sockPath).catch(() => undefined);
  }
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    serveConnection(sock, opts.handler);
  });
  // Created 0600 from the start: no window in which another user could connect.
  const oldMask = process.umask(0o077);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new FarmlbError('FARMLB_E_API_SOCKET', { path: sockPath, detail: err.message }, { cause: err })));
      server.listen(sockPath, () => resolve());
    });
  } finally {
    process.umask(oldMask);
  }
  await chmod(sockPath, 0o600);
  opts.log.info({ event: 'control_listening', socket: sockPath }, 'control socket listening');
  return {
    path: sockPath,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await unlink(sockPath).catch(() => undefined);
    },
  };
}

/**
 * Bounds on one connection (docs/security.md, "Local users"): unanswered input beyond this is
 * not read (the client's writes block), and an answer is written only once the previous one
 * left the socket buffer — a client that pipelines requests and never reads its answers
 * holds this much memory, not the 567 MiB an unbounded queue once grew to.
 */
export const MAX_PENDING_INPUT_BYTES = MAX_REQUEST_BYTES;

function serveConnection(sock: net.Socket, handler: ControlHandler): void {
  // Unanswered input: the text from `pos` on (consumed lines are skipped, not copied away).
  let buffered = '';
  let pos = 0;
  let serving = false;
  const pending = () => buffered.length - pos;
  const refuseLongLine = () => {
    sock.end(`${JSON.stringify({ ok: false, error: { code: 'FARMLB_E_API_BAD_REQUEST', message: `bad control request: a request line is longer than ${MAX_REQUEST_BYTES} bytes` } })}\n`);
    sock.destroySoon?.();
    buffered = '';
    pos = 0;
  };
  const drained = () => new Promise<void>((resolve) => {
    const done = () => {
      sock.off('drain', done);
      sock.off('close', done);
      resolve();
    };
    sock.on('drain', done);
    sock.on('close', done);
  });
  // Requests of one connection are answered one at a time, in order.
  const serve = async () => {
    if (serving) return;
    serving = true;
    try {
      let nl: number;
      while (!sock.destroyed && (nl = buffered.indexOf('\n', pos)) >= 0) {
        const line = buffered.slice(pos, nl).trim();
        pos = nl + 1;
        if (pos > 4096 && pos * 2 > buffered.length) {
          buffered = buffered.slice(pos);
          pos = 0;
        }
        if (line === '') continue;
        const res = await handleLine(line, handler);
        if (sock.destroyed) return;
        // Output backpressure: the next request waits until this answer left the buffer.
        if (!sock.write(`${JSON.stringify(res)}\n`)) await drained();
        if (pending() < MAX_PENDING_INPUT_BYTES && sock.isPaused()) sock.resume();
      }
    } finally {
      serving = false;
    }
    if (!sock.destroyed && sock.isPaused()) sock.resume();
  };
  sock.setEncoding('utf8');
  sock.on('data', (chunk: string) => {
    buffered += chunk;
    const partial = buffered.length - (buffered.lastIndexOf('\n') + 1);
    if (partial > MAX_REQUEST_BYTES) return refuseLongLine();
    // Input backpressure: stop reading until the queue is answered down.
    if (pending() >= MAX_PENDING_INPUT_BYTES) sock.pause();
    serve().catch(() => sock.destroy());
  });
}

/** Whether something accepts connections on the socket path. */
function answers(sockPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(sockPath);
    const done = (v: boolean) => { s.destroy(); resolve(v); };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    setTimeout(() => done(false), 1_000).unref();
  });
}

/**
 * One request to the daemon of the instance whose run directory is `runDir`. A daemon that
 * is not running is FARMLB_E_CLI_NOT_RUNNING; an error the daemon answers is rethrown as a
 * FarmlbError with its code.
 */
export async function controlRequest(runDir: string, req: Omit<ControlRequest, 'id'> & Record<string, unknown>, opts: { module?: string; timeoutMs?: number } = {}): Promise<unknown> {
  const sockPath = controlSocketPath(runDir);
  const module = opts.module ?? path.basename(runDir);
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const line = await new Promise<string>((resolve, reject) => {
    const sock = net.createConnection(sockPath);
    let buffered = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new FarmlbError('FARMLB_E_CLI_CONTROL_TIMEOUT', { socket: sockPath, ms: timeoutMs }));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(`${JSON.stringify({ id: 1, ...req })}\n`));
    sock.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.destroy();
      resolve(buffered.slice(0, nl));
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTDIR') {
        reject(new FarmlbError('FARMLB_E_CLI_NOT_RUNNING', { module, socket: sockPath, detail: err.code }, { cause: err }));
      } else {
        reject(new FarmlbError('FARMLB_E_CLI_CONTROL', { socket: sockPath, detail: err.message }, { cause: err }));
      }
    });
    sock.once('end', () => {
      clearTimeout(timer);
      if (!buffered.includes('\n')) reject(new FarmlbError('FARMLB_E_CLI_CONTROL', { socket: sockPath, detail: 'the daemon closed the connection without an answer' }));
    });
  });
  let res: ControlResponse;
  try {
    res = JSON.parse(line) as ControlResponse;
  } catch {
    throw new FarmlbError('FARMLB_E_CLI_CONTROL', { socket: sockPath, detail: 'the answer is not JSON' });
  }
  if (res.ok) return res.result;
  throw remoteError(res.error);
}

/** An error the daemon answered, with its code when it is one of ours. */
function remoteError(e: { code: string; message: string; hint?: string }): Error {
  const err = new FarmlbError('FARMLB_E_CLI_DAEMON_REFUSED', { detail: e.message });
  // Keep the daemon's own code and hint: callers match on the code.
  Object.defineProperty(err, 'code', { value: e.code, enumerable: true });
  Object.defineProperty(err, 'hint', { value: e.hint ?? '', enumerable: true });
  Object.defineProperty(err, 'message', { value: e.message, enumerable: false });
  return err;
}
