// /proc/net/tcp and tcp6 parsing (src/net/tcp-sockets.ts): fixture lines in both byte
// orders, then the real table of this machine with sockets the test opens on 127.0.0.1
// and ::1 (loopback only), read from /proc and through sock_diag (the addon's tcpDiag,
// filtered in the kernel), which must agree.

import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatAddr } from '../../src/dataplane/abi.js';
import { loadNative } from '../../src/addon/native.js';
import {
  decodeDiagRecord,
  diagTcpSockets,
  encodeLocals,
  endpointText,
  lineStateNumber,
  listTcpSockets,
  parseProcEndpoint,
  parseTcpLine,
  scanTcpSockets,
  type TcpSocket,
} from '../../src/net/tcp-sockets.js';

const TAIL = ' 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 20 4 30 10 -1';
const line4 = (local: string, remote: string, st: string, sl = 0): string => `   ${sl}: ${local} ${remote} ${st}${TAIL}`;
const HEADER4 = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
const HEADER6 = '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';

const text = (s: TcpSocket | undefined) =>
  s && { family: s.family, local: endpointText(s.family, s.localAddr, s.localPort), remote: endpointText(s.family, s.remoteAddr, s.remotePort), state: s.state };

describe('parseTcpLine', () => {
  it('reads an IPv4 line printed by a little-endian host (words reversed, port in host order)', () => {
    // 10.0.0.100:80 ← 192.168.1.7:40000, ESTABLISHED
    expect(text(parseTcpLine(line4('6400000A:0050', '0701A8C0:9C40', '01'), true))).toEqual({
      family: 4, local: '10.0.0.100:80', remote: '192.168.1.7:40000', state: 'ESTABLISHED',
    });
  });

  it('reads the same socket as printed by a big-endian host', () => {
    expect(text(parseTcpLine(line4('0A000064:0050', 'C0A80107:9C40', '01'), false))).toEqual({
      family: 4, local: '10.0.0.100:80', remote: '192.168.1.7:40000', state: 'ESTABLISHED',
    });
  });

  it('reads an IPv6 line as four host-endian words', () => {
    // [2001:db8::100]:443 ← [2001:db8:1::7]:50000
    const l = line4('B80D0120000000000000000000010000:01BB', 'B80D0120000001000000000007000000:C350', '01');
    expect(text(parseTcpLine(l, true))).toEqual({
      family: 6, local: '[2001:db8::100]:443', remote: '[2001:db8:1::7]:50000', state: 'ESTABLISHED',
    });
    expect(parseTcpLine(l, true)!.localAddr).toEqual(Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]));
  });

  it('reports a v4-mapped tcp6 socket (a dual-stack listener\'s IPv4 connection) as IPv4', () => {
    const l = line4('0000000000000000FFFF00006400000A:0050', '0000000000000000FFFF00000701A8C0:9C40', '01');
    const s = parseTcpLine(l, true)!;
    expect(text(s)).toEqual({ family: 4, local: '10.0.0.100:80', remote: '192.168.1.7:40000', state: 'ESTABLISHED' });
    expect(s.localAddr).toHaveLength(4);
    expect(s.remoteAddr).toHaveLength(4);
  });

  it('maps the kernel state numbers (SYN_RECV is how a request socket is printed)', () => {
    const states = ['01', '02', '03', '04', '05', '06', '07', '08', '09', '0A', '0B'].map((st) =>
      parseTcpLine(line4('0100007F:1F90', '0100007F:9C40', st), true)!.state);
    expect(states).toEqual(['ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING']);
    expect(parseTcpLine(line4('0100007F:1F90', '00000000:0000', '0A'), true)!.stateNumber).toBe(10);
  });

  it('reads a timewait socket as TIME_WAIT whatever substate it prints (an orphan in FIN_WAIT2: timer 3)', () => {
    const tw = line4('0100007F:1F90', '0100007F:9C40', '05').replace(' 00:00000000 ', ' 03:00001770 ');
    expect(parseTcpLine(tw, true)).toMatchObject({ state: 'TIME_WAIT', stateNumber: 6 });
    expect(lineStateNumber(tw)).toBe(6);
    // A full socket in FIN_WAIT2 (its application may still read): FIN_WAIT2.
    expect(parseTcpLine(line4('0100007F:1F90', '0100007F:9C40', '05'), true)).toMatchObject({ state: 'FIN_WAIT2', stateNumber: 5 });
  });

  it('skips the header, malformed lines and unknown states', () => {
    expect(parseTcpLine(HEADER4)).toBeUndefined();
    expect(parseTcpLine(HEADER6)).toBeUndefined();
    expect(parseTcpLine('')).toBeUndefined();
    expect(parseTcpLine(line4('0100007F', '0100007F:9C40', '01'))).toBeUndefined();
    expect(parseTcpLine(line4('0100007G:1F90', '0100007F:9C40', '01'))).toBeUndefined();
    expect(parseTcpLine(line4('0100007F:1F90', '00000000000000000000000001000000:9C40', '01'))).toBeUndefined();
    expect(parseTcpLine(line4('0100007F:1F90', '0100007F:9C40', '2A'))).toBeUndefined();
  });

  it('reads an endpoint with its port', () => {
    expect(parseProcEndpoint('0100007F:1F90', true)).toEqual({ addr: Uint8Array.of(127, 0, 0, 1), port: 8080 });
    expect(parseProcEndpoint('0100007F:1F9', true)).toBeUndefined();
  });
});

describe('scanTcpSockets on fixture files', () => {
  let dir: string;
  // ~150 kB: more than one 64 kB read, so lines are cut across chunks.
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'farmlb-tcp-'));
    await mkdir(join(dir, 'net'));
    const lines = [HEADER4];
    for (let i = 0; i < 1000; i++) lines.push(line4('6400000A:0050', `0701A8C0:${(40000 + i).toString(16).toUpperCase()}`, i % 3 === 0 ? '06' : '01', i));
    lines.push(line4('00000000:0050', '00000000:0000', '0A', 1000));
    await writeFile(join(dir, 'net', 'tcp'), `${lines.join('\n')}\n`);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('visits every line across read chunks and treats a missing tcp6 as empty', async () => {
    const seen: TcpSocket[] = [];
    const r = await scanTcpSockets({ procDir: dir, visit: (s) => seen.push(s) });
    expect(r).toEqual({ lines: 1001, visited: 1001, truncated: false });
    expect(new Set(seen.map((s) => s.remotePort)).size).toBe(1001);
  });

  it('parses only the wanted states', async () => {
    const { sockets } = await listTcpSockets({ procDir: dir, states: new Set([1]) });
    expect(sockets).toHaveLength(666);
    expect(sockets.every((s) => s.state === 'ESTABLISHED')).toBe(true);
  });

  it('stops at the line cap and says the table was truncated', async () => {
    const r = await scanTcpSockets({ procDir: dir, maxLines: 50, visit: () => undefined });
    expect(r).toMatchObject({ lines: 50, truncated: true });
  });

  it('fails with FARMLB_E_NET_PROC when the table cannot be read', async () => {
    await expect(scanTcpSockets({ procDir: join(dir, 'nowhere'), visit: () => undefined })).rejects.toMatchObject({ code: 'FARMLB_E_NET_PROC' });
  });
});

// ---- the real table, with sockets this test opens on loopback -------------------------

interface Pair {
  server: Server;
  client: Socket;
  accepted: Socket;
  port: number;
}

async function openPair(listenHost: string, connectHost: string): Promise<Pair> {
  let resolveAccepted!: (s: Socket) => void;
  const acceptedP = new Promise<Socket>((r) => { resolveAccepted = r; });
  const server = createServer((s) => resolveAccepted(s));
  await new Promise<void>((r, j) => { server.once('error', j); server.listen({ host: listenHost, port: 0, ipv6Only: false }, () => r()); });
  const port = (server.address() as AddressInfo).port;
  const client = createConnection({ host: connectHost, port });
  await new Promise<void>((r, j) => { client.once('error', j); client.once('connect', () => r()); });
  return { server, client, accepted: await acceptedP, port };
}

async function closePair(p: Pair | undefined): Promise<void> {
  if (!p) return;
  p.client.destroy();
  p.accepted.destroy();
  await new Promise<void>((r) => p.server.close(() => r()));
}

function find(sockets: TcpSocket[], family: 4 | 6, local: string, localPort: number, remotePort?: number): TcpSocket[] {
  return sockets.filter((s) => s.family === family && formatAddr(family, s.localAddr) === local && s.localPort === localPort
    && (remotePort === undefined || s.remotePort === remotePort));
}

async function hasIpv6Loopback(): Promise<boolean> {
  const server = createServer();
  try {
    await new Promise<void>((r, j) => { server.once('error', j); server.listen({ host: '::1', port: 0 }, () => r()); });
    return true;
  } catch {
    return false;
  } finally {
    server.close();
  }
}

describe('scanTcpSockets on this machine', () => {
  it('finds a listener and both ends of an IPv4 loopback connection', async () => {
    let p: Pair | undefined;
    try {
      p = await openPair('127.0.0.1', '127.0.0.1');
      const { sockets } = await listTcpSockets();
      const clientPort = p.client.localPort!;
      expect(find(sockets, 4, '127.0.0.1', p.port).map((s) => s.state).sort()).toEqual(['ESTABLISHED', 'LISTEN']);
      const accepted = find(sockets, 4, '127.0.0.1', p.port, clientPort);
      expect(accepted).toHaveLength(1);
      expect(formatAddr(4, accepted[0]!.remoteAddr)).toBe('127.0.0.1');
      expect(find(sockets, 4, '127.0.0.1', clientPort, p.port).map((s) => s.state)).toEqual(['ESTABLISHED']);
    } finally {
      await closePair(p);
    }
  });

  it('finds an IPv6 loopback connection on ::1', async (ctx) => {
    if (!(await hasIpv6Loopback())) ctx.skip();
    let p: Pair | undefined;
    try {
      p = await openPair('::1', '::1');
      const { sockets } = await listTcpSockets();
      const accepted = find(sockets, 6, '::1', p.port, p.client.localPort!);
      expect(accepted.map((s) => s.state)).toEqual(['ESTABLISHED']);
      expect(formatAddr(6, accepted[0]!.remoteAddr)).toBe('::1');
    } finally {
      await closePair(p);
    }
  });

  it('reports the IPv4 connection of a dual-stack listener as IPv4 (v4-mapped in tcp6)', async (ctx) => {
    if (!(await hasIpv6Loopback())) ctx.skip();
    let p: Pair | undefined;
    try {
      p = await openPair('::', '127.0.0.1');
      const { sockets } = await listTcpSockets();
      const accepted = find(sockets, 4, '127.0.0.1', p.port, p.client.localPort!);
      expect(accepted.map((s) => s.state)).toEqual(['ESTABLISHED']);
      expect(formatAddr(4, accepted[0]!.remoteAddr)).toBe('127.0.0.1');
    } finally {
      await closePair(p);
    }
  });

  it('sees the side that closed first in TIME_WAIT', async () => {
    let p: Pair | undefined;
    try {
      p = await openPair('127.0.0.1', '127.0.0.1');
      const clientPort = p.client.localPort!;
      p.accepted.on('end', () => p!.accepted.end());
      p.client.end();
      let states: string[] = [];
      for (let i = 0; i < 40; i++) {
        const { sockets } = await listTcpSockets();
        states = find(sockets, 4, '127.0.0.1', clientPort, p.port).map((s) => s.state);
        if (states.includes('TIME_WAIT')) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(states).toEqual(['TIME_WAIT']);
    } finally {
      await closePair(p);
    }
  });
});

describe('an orphan in FIN_WAIT2 (the server closed first, the client has not yet)', () => {
  it('is TIME_WAIT for /proc and sock_diag alike, so a state filter without TIME_WAIT leaves it out', async () => {
    let p: Pair | undefined;
    try {
      p = await openPair('127.0.0.1', '127.0.0.1');
      const serverSide = (sockets: TcpSocket[]) => find(sockets, 4, '127.0.0.1', p!.port, p!.client.localPort!).map((s) => s.state);
      // The client keeps its end open (half-closed), so the server's end waits for its FIN.
      p.client.allowHalfOpen = true;
      p.client.on('end', () => undefined);
      p.accepted.end();
      await new Promise<void>((r) => p!.client.once('end', () => r()));
      // close(): no application behind it any more; the kernel keeps a timewait socket
      // whose substate is FIN_WAIT2 (ss prints it as FIN-WAIT-2, ino 0).
      p.accepted.destroy();
      let states: string[] = [];
      for (let i = 0; i < 40 && !states.includes('TIME_WAIT'); i++) {
        await new Promise((r) => setTimeout(r, 25));
        states = serverSide((await listTcpSockets()).sockets);
      }
      expect(states).toEqual(['TIME_WAIT']);
      const native = loadNative();
      const viaDiag: TcpSocket[] = [];
      await diagTcpSockets({ native, locals: [{ family: 4, addr: Uint8Array.of(127, 0, 0, 1) }], visit: (x) => viaDiag.push(x) });
      expect(serverSide(viaDiag)).toEqual(['TIME_WAIT']);
      // What holdings asks for (every state but LISTEN, TIME_WAIT, CLOSE): not there.
      const held = new Set([1, 2, 3, 4, 5, 8, 9, 11]);
      const heldDiag: TcpSocket[] = [];
      await diagTcpSockets({ native, locals: [{ family: 4, addr: Uint8Array.of(127, 0, 0, 1) }], states: held, visit: (x) => heldDiag.push(x) });
      expect(serverSide(heldDiag)).toEqual([]);
      expect(serverSide((await listTcpSockets({ states: held })).sockets)).toEqual([]);
    } finally {
      await closePair(p);
    }
  });
});

describe('sock_diag records', () => {
  it('encodes local addresses as 20-byte records and decodes a socket record (ports in network order)', () => {
    const locals = encodeLocals([{ family: 4, addr: Uint8Array.of(10, 0, 0, 100) }, { family: 6, addr: new Uint8Array(16).fill(0xfe) }]);
    expect(locals.length).toBe(40);
    expect([...locals.subarray(0, 8)]).toEqual([4, 0, 0, 0, 10, 0, 0, 100]);
    expect(locals[20]).toBe(6);
    expect(locals.subarray(24, 40).every((b) => b === 0xfe)).toBe(true);
    const rec = new Uint8Array(40);
    rec.set([4, 1, 0, 80, 0x9c, 0x40], 0);
    rec.set([10, 0, 0, 100], 8);
    rec.set([192, 168, 1, 7], 24);
    expect(text(decodeDiagRecord(rec))).toEqual({ family: 4, local: '10.0.0.100:80', remote: '192.168.1.7:40000', state: 'ESTABLISHED' });
    rec[1] = 99;
    expect(decodeDiagRecord(rec)).toBeUndefined();
  });
});

describe('diagTcpSockets on this machine (sock_diag, filtered in the kernel)', () => {
  const native = loadNative();
  const diag = async (locals: { family: 4 | 6; addr: Uint8Array }[], states?: ReadonlySet<number>) => {
    const sockets: TcpSocket[] = [];
    const r = await diagTcpSockets({ native, locals, visit: (x) => sockets.push(x), ...(states ? { states } : {}) });
    expect(r.visited).toBe(sockets.length);
    return sockets;
  };
  const LO = { family: 4 as const, addr: Uint8Array.of(127, 0, 0, 1) };
  const LO2 = { family: 4 as const, addr: Uint8Array.of(127, 0, 0, 2) };

  it('sends only the sockets of the local addresses asked for, as /proc shows them', async () => {
    let a: Pair | undefined;
    let b: Pair | undefined;
    try {
      a = await openPair('127.0.0.1', '127.0.0.1');
      b = await openPair('127.0.0.2', '127.0.0.2');
      const only2 = await diag([LO2]);
      // The listener and the accepted end (the client's end has 127.0.0.1, lo's source address).
      expect(only2.length).toBeGreaterThanOrEqual(2);
      expect(only2.every((s) => s.family === 4 && formatAddr(4, s.localAddr) === '127.0.0.2')).toBe(true);
      const proc = find((await listTcpSockets()).sockets, 4, '127.0.0.2', b.port);
      expect(find(only2, 4, '127.0.0.2', b.port).map(text).sort()).toEqual(proc.map(text).sort());
      expect(find(only2, 4, '127.0.0.2', b.port, b.client.localPort!).map((s) => s.state)).toEqual(['ESTABLISHED']);
      expect(find(only2, 4, '127.0.0.1', a.port)).toEqual([]);
      // Both addresses: both pairs; a state filter: no listener.
      const both = await diag([LO, LO2], new Set([1]));
      expect(find(both, 4, '127.0.0.1', a.port).map((s) => s.state)).toEqual(['ESTABLISHED']);
      expect(find(both, 4, '127.0.0.2', b.port).map((s) => s.state)).toEqual(['ESTABLISHED']);
    } finally {
      await closePair(a);
      await closePair(b);
    }
  });

  it('finds an IPv6 connection on ::1, and the IPv4 connection of a dual-stack listener as IPv4', async (ctx) => {
    if (!(await hasIpv6Loopback())) ctx.skip();
    let p6: Pair | undefined;
    let dual: Pair | undefined;
    try {
      p6 = await openPair('::1', '::1');
      dual = await openPair('::', '127.0.0.1');
      const v6 = await diag([{ family: 6, addr: Uint8Array.of(...new Array(15).fill(0), 1) }]);
      expect(find(v6, 6, '::1', p6.port, p6.client.localPort!).map((s) => s.state)).toEqual(['ESTABLISHED']);
      const v4 = await diag([LO]);
      const accepted = find(v4, 4, '127.0.0.1', dual.port, dual.client.localPort!);
      expect(accepted.map((s) => s.state)).toEqual(['ESTABLISHED']);
      expect(formatAddr(4, accepted[0]!.remoteAddr)).toBe('127.0.0.1');
    } finally {
      await closePair(p6);
      await closePair(dual);
    }
  });
});
