// SYN cookie detection (src/net/syncookies.ts): /proc/net/netstat parsing from fixture
// text, the sysctl's modes, and the monitor's episodes (baseline, open once, close after a
// quiet period).

import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  parseNetstat,
  parseSynCookieMode,
  readSynCookies,
  synCookieCounters,
  SynCookieMonitor,
  type SynCookieSample,
} from '../../src/net/syncookies.js';

// Shape of kernel 6.x /proc/net/netstat (cut short), with SYN cookie counters set.
const NETSTAT = [
  'TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts PruneCalled TCPReqQFullDoCookies',
  'TcpExt: 1234 1200 7 0 0 1234',
  'IpExt: InNoRoutes InTruncatedPkts InMcastPkts',
  'IpExt: 0 0 42',
  'MPTcpExt: MPCapableSYNRX',
  'MPTcpExt: 0',
  '',
].join('\n');

describe('netstat parsing', () => {
  it('reads the values of each section by name', () => {
    const s = parseNetstat(NETSTAT);
    expect(s.get('TcpExt')?.get('EmbryonicRsts')).toBe(0);
    expect(s.get('IpExt')?.get('InMcastPkts')).toBe(42);
    expect([...s.keys()]).toEqual(['TcpExt', 'IpExt', 'MPTcpExt']);
  });

  it('reads SyncookiesSent, Recv and Failed', () => {
    expect(synCookieCounters(NETSTAT)).toEqual({ sent: 1234, recv: 1200, failed: 7 });
  });

  it('gives 0 for counters the text lacks, and skips lines that do not pair up', () => {
    expect(synCookieCounters('IpExt: A B\nIpExt: 1 2\n')).toEqual({ sent: 0, recv: 0, failed: 0 });
    expect(synCookieCounters('TcpExt: SyncookiesSent SyncookiesRecv\nTcpExt: 5\n')).toEqual({ sent: 0, recv: 0, failed: 0 });
    expect(synCookieCounters('garbage\nTcpExt: SyncookiesSent\nTcpExt: 9\n')).toEqual({ sent: 9, recv: 0, failed: 0 });
  });

  it('reads the tcp_syncookies mode (an unknown value is taken as the default, 1)', () => {
    expect(parseSynCookieMode('0\n')).toBe(0);
    expect(parseSynCookieMode('1\n')).toBe(1);
    expect(parseSynCookieMode('2\n')).toBe(2);
    expect(parseSynCookieMode('x')).toBe(1);
  });

  it('reads both files from a /proc tree', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'farmlb-syncookies-'));
    try {
      await mkdir(join(dir, 'net'));
      await mkdir(join(dir, 'sys/net/ipv4'), { recursive: true });
      await writeFile(join(dir, 'net/netstat'), NETSTAT);
      await writeFile(join(dir, 'sys/net/ipv4/tcp_syncookies'), '2\n');
      expect(await readSynCookies(dir)).toEqual({ mode: 2, sent: 1234, recv: 1200, failed: 7 });
      await expect(readSynCookies(join(dir, 'none'))).rejects.toMatchObject({ code: 'FARMLB_E_NET_PROC' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads this machine\'s counters', async () => {
    const s = await readSynCookies();
    expect([0, 1, 2]).toContain(s.mode);
    expect(s.sent).toBeGreaterThanOrEqual(0);
  });
});

describe('SynCookieMonitor', () => {
  function monitor(quietMs = 30_000) {
    let sent = 0;
    let now = 0;
    const m = new SynCookieMonitor({
      quietMs,
      nowMs: () => now,
      read: async (): Promise<SynCookieSample> => ({ mode: 1, sent, recv: 0, failed: 0 }),
    });
    return {
      m,
      at: async (ms: number, total: number) => {
        now = ms;
        sent = total;
        return m.check();
      },
    };
  }

  it('takes the first check as the baseline: cookies sent before it are history', async () => {
    const { m, at } = monitor();
    expect(m.status()).toBeUndefined();
    expect(await at(0, 500)).toMatchObject({ sentSinceLast: 0, started: false });
    expect(m.status()).toEqual({ mode: 1, sentRecently: false, sentTotal: 500 });
  });

  it('opens an episode once when cookies are sent, and keeps it open while they go on', async () => {
    const { m, at } = monitor();
    await at(0, 500);
    expect(await at(5_000, 520)).toMatchObject({ sentSinceLast: 20, started: true });
    expect(m.status()).toEqual({ mode: 1, sentRecently: true, sentTotal: 520 });
    expect(await at(10_000, 600)).toMatchObject({ sentSinceLast: 80, started: false });
    expect(await at(15_000, 600)).toMatchObject({ sentSinceLast: 0, started: false });
    expect(await at(20_000, 601)).toMatchObject({ sentSinceLast: 1, started: false });
    expect(m.status()!.sentRecently).toBe(true);
  });

  it('closes the episode after the quiet period with its total, and opens a new one on the next cookie', async () => {
    const { m, at } = monitor(30_000);
    await at(0, 0);
    await at(5_000, 10);
    await at(10_000, 15);
    expect((await at(35_000, 15)).ended).toBeUndefined();
    expect(await at(40_000, 15)).toMatchObject({ started: false, ended: { sent: 15, durationMs: 5_000 } });
    expect(m.status()).toEqual({ mode: 1, sentRecently: false, sentTotal: 15 });
    expect(await at(45_000, 16)).toMatchObject({ sentSinceLast: 1, started: true });
  });

  it('takes a counter that went back as a new baseline, not as cookies sent', async () => {
    const { at } = monitor();
    await at(0, 100);
    expect(await at(5_000, 3)).toMatchObject({ sentSinceLast: 0, started: false });
    expect(await at(10_000, 4)).toMatchObject({ sentSinceLast: 1, started: true });
  });

  it('keeps its state when a read fails', async () => {
    let fail = false;
    let sent = 0;
    const m = new SynCookieMonitor({
      nowMs: () => 0,
      read: async () => {
        if (fail) throw Object.assign(new Error('no /proc'), { code: 'FARMLB_E_NET_PROC' });
        return { mode: 1, sent, recv: 0, failed: 0 };
      },
    });
    await m.check();
    fail = true;
    sent = 5;
    await expect(m.check()).rejects.toMatchObject({ code: 'FARMLB_E_NET_PROC' });
    fail = false;
    expect(await m.check()).toMatchObject({ sentSinceLast: 5, started: true });
  });
});
