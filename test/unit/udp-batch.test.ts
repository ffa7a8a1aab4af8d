// The addon's heartbeat socket (native/udpbatch.cc) on a real loopback socket: batches in
// arrival order with the kernel's arrival times, oversize datagrams flagged, the two ways of
// reading (drain by the pulse, watch on arrival), errors as FarmlbError.

import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { type BatchDatagram, loadNative, type UdpBatchSocket } from '../../src/addon/native.js';
import { FarmlbError } from '../../src/errors.js';

const native = loadNative();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const open: UdpBatchSocket[] = [];
const clients: dgram.Socket[] = [];

afterEach(() => {
  for (const s of open.splice(0)) s.close();
  for (const c of clients.splice(0)) c.close();
});

async function setup(maxBytes = 1000): Promise<{ sock: UdpBatchSocket; port: number; send: (b: Buffer) => Promise<void> }> {
  let sock: UdpBatchSocket | undefined;
  let port = 0;
  for (let attempt = 0; !sock; attempt++) {
    port = 20000 + Math.floor(Math.random() * 20000);
    try {
      sock = native.openUdpBatchSocket('127.0.0.1', port, maxBytes);
    } catch (err) {
      if (attempt > 5) throw err;
    }
  }
  open.push(sock);
  const client = dgram.createSocket('udp4');
  clients.push(client);
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
  const send = (b: Buffer) => new Promise<void>((resolve, reject) => client.send(b, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
  return { sock, port, send };
}

/** Polls until `cond` or the deadline (no timed assertion). */
async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(2);
}

describe('native heartbeat socket (openUdpBatchSocket)', () => {
  it('drain() returns what arrived, in order, each with its kernel arrival time (CLOCK_MONOTONIC)', async () => {
    const { sock, send } = await setup();
    // The kernel enables receive timestamps a moment after the first socket asks (a deferred
    // static key): until then it stamps a datagram when it is read — later, never earlier.
    await send(Buffer.from('warm-up'));
    await until(() => sock.drain().length > 0, 2000);
    await sleep(20);
    const sentAt: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      sentAt.push(process.hrtime.bigint());
      await send(Buffer.from(`datagram ${i}`));
      await sleep(20);
    }
    const batch = sock.drain();
    const drainedAt = process.hrtime.bigint();
    expect(batch.map((d) => d.data.toString())).toEqual(['datagram 0', 'datagram 1', 'datagram 2']);
    for (const [i, d] of batch.entries()) {
      expect(d.from).toBe('127.0.0.1');
      expect(d.truncated).toBe(false);
      // Never before its send (the conversion errs late, never early), never after the drain.
      expect(d.atNs).toBeGreaterThanOrEqual(sentAt[i]!);
      expect(d.atNs).toBeLessThanOrEqual(drainedAt);
    }
    // Each its own arrival, not the drain's time: the kernel's stamps are ~20 ms apart.
    expect(batch[1]!.atNs - batch[0]!.atNs).toBeGreaterThanOrEqual(15_000_000n);
    expect(sock.drain()).toEqual([]);
  });

  it('flags a datagram longer than maxBytes (the transport drops it as oversize)', async () => {
    const { sock, send } = await setup(100);
    await send(Buffer.alloc(101, 7));
    await send(Buffer.alloc(100, 8));
    let batch: BatchDatagram[] = [];
    await until(() => (batch = [...batch, ...sock.drain()]).length >= 2, 2000);
    expect(batch.map((d) => [d.truncated, d.data.length])).toEqual([[true, 101], [false, 100]]);
  });

  it('watch() reads on arrival; after unwatch() datagrams wait for drain()', async () => {
    const { sock, send } = await setup();
    const seen: string[] = [];
    sock.watch((batch) => seen.push(...batch.map((d) => d.data.toString())));
    await send(Buffer.from('one'));
    await until(() => seen.length === 1, 2000);
    expect(seen).toEqual(['one']);
    sock.unwatch();
    await send(Buffer.from('two'));
    await sleep(30);
    expect(seen).toEqual(['one']);
    expect(sock.drain().map((d) => d.data.toString())).toEqual(['two']);
  });

  it('send() returns 0 or an errno, and a closed socket throws FARMLB_E_MEMBERSHIP_SOCKET', async () => {
    const { sock, port } = await setup();
    expect(sock.send(Buffer.from('to self'), '127.0.0.1', port)).toBe(0);
    expect(sock.send(Buffer.from('x'), '::1', port)).not.toBe(0);
    sock.close();
    expect(() => sock.drain()).toThrow(FarmlbError);
    try {
      sock.drain();
    } catch (err) {
      expect((err as FarmlbError).code).toBe('FARMLB_E_MEMBERSHIP_SOCKET');
    }
  });

  it('a port in use is FARMLB_E_MEMBERSHIP_BIND', async () => {
    const { port } = await setup();
    let caught: unknown;
    try {
      open.push(native.openUdpBatchSocket('127.0.0.1', port, 1000));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FarmlbError);
    expect((caught as FarmlbError).code).toBe('FARMLB_E_MEMBERSHIP_BIND');
    expect((caught as FarmlbError).errno).toBe(98);
  });
});
