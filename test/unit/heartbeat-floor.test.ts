// The heartbeat floor of the failover bench (src/bench/heartbeat-floor.ts) as the bench runs
// it, a child speaking "ready" / "start" / "stop" → one JSON line: on loopback, what the child
// sends is echoed back by the test, and the child verifies and parses it; bad usage exits 2.

import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import path from 'node:path';
import readline from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';

const SCRIPT = path.resolve(__dirname, '../../dist/bench/heartbeat-floor.js');
const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

function start(args: string[]): { child: ChildProcess; lines: AsyncIterator<string> } {
  const child = spawn(process.execPath, [SCRIPT, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  return { child, lines: readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]() };
}

async function next(lines: AsyncIterator<string>): Promise<string> {
  const r = await lines.next();
  if (r.done) throw new Error('the child closed its output');
  return r.value;
}

describe('heartbeat floor (bench child)', () => {
  it('datagrams: signs and sends a pulse\'s datagrams, and drains, verifies and parses what comes back', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    // The peer is this test (127.0.0.2): it echoes what the child sends, signed by the child.
    const peer = dgram.createSocket('udp4');
    const echoed: number[] = [];
    peer.on('message', (m) => peer.send(m, port, '127.0.0.1', () => echoed.push(m.length)));
    await new Promise<void>((r) => peer.bind(port, '127.0.0.2', () => r()));
    try {
      const { child, lines } = start(['datagrams', '10', '127.0.0.1', '127.0.0.2', '3', '800', String(port)]);
      expect(await next(lines)).toBe('ready');
      child.stdin!.write('start\n');
      // Two pulses' datagrams echoed back (a loopback send is queued at the receiver once it returns).
      const deadline = Date.now() + 10_000;
      while (echoed.length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(echoed.length).toBeGreaterThanOrEqual(6);
      child.stdin!.write('stop\n');
      const sample = JSON.parse(await next(lines)) as { cpuUs: number; sent: number; received: number; bad: number };
      expect(sample.sent).toBeGreaterThanOrEqual(6);
      expect(sample.received).toBeGreaterThanOrEqual(6);
      expect(sample.bad).toBe(0);
      // Every datagram of the body size asked (800 bytes: MAC + JSON).
      expect(new Set(echoed)).toEqual(new Set([800]));
      expect(sample.cpuUs).toBeGreaterThan(0);
    } finally {
      peer.close();
    }
  });

  it('timer: reports a window with nothing sent', async () => {
    const { child, lines } = start(['timer', '10']);
    expect(await next(lines)).toBe('ready');
    child.stdin!.write('start\n');
    child.stdin!.write('stop\n');
    expect(JSON.parse(await next(lines))).toMatchObject({ sent: 0, received: 0, bad: 0 });
  });

  it('bad usage: exit 2 with a usage line', async () => {
    const { child } = start(['nonsense']);
    let err = '';
    child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(code).toBe(2);
    expect(err).toMatch(/^usage: heartbeat-floor\.js/);
  });
});
