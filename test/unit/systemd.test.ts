// systemd integration (docs/cli.md "systemd"): the sd_notify datagrams as a real Unix
// datagram socket receives them (python3 as the receiving end: Node has no Unix datagram
// sockets), the watchdog period, journald priorities, the default file locations, exit 78,
// and packaging/farmlb@.service checked by systemd-analyze.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { applyDefaultPaths } from '../../src/cli/default-paths.js';
import { systemdNotifier, watchdogInterval } from '../../src/daemon/systemd.js';
import { loadNative } from '../../src/addon/native.js';
import { journalPriority, logLevel, stdoutIsJournal, withJournalPriority } from '../../src/log.js';
import { runCli } from '../helpers/cli.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');

// Binds a datagram socket at argv[1] (a leading '@': abstract), prints "bound", then one
// line per datagram (JSON string) until killed.
const RECEIVER = `
import socket, sys, json
p = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0' + p[1:] if p.startswith('@') else p)
print('bound', flush=True)
while True:
    print(json.dumps(s.recv(4096).decode()), flush=True)
`;

class Receiver {
  readonly messages: string[] = [];
  private waiters: (() => void)[] = [];
  private constructor(private readonly child: ChildProcess) {}

  static async start(socketPath: string): Promise<Receiver> {
    const child = spawn('python3', ['-c', RECEIVER, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    const r = new Receiver(child);
    let buf = '';
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line === 'bound') resolve();
          else { r.messages.push(JSON.parse(line) as string); for (const w of r.waiters.splice(0)) w(); }
        }
      });
    });
    return r;
  }

  /** Waits (deadline 5 s) until `count` datagrams arrived. */
  async waitFor(count: number): Promise<string[]> {
    const deadline = Date.now() + 5000;
    while (this.messages.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`got ${this.messages.length} of ${count} datagrams: ${JSON.stringify(this.messages)}`);
      await new Promise<void>((resolve) => { const t = setTimeout(resolve, left); this.waiters.push(() => { clearTimeout(t); resolve(); }); });
    }
    return this.messages;
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }
}

const transport = { send: (p: string, m: string) => loadNative().unixDatagramSend(p, m) };

describe('sd_notify through the addon', () => {
  let receiver: Receiver | undefined;
  let dir: string | undefined;
  afterEach(() => {
    receiver?.stop();
    receiver = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('sends READY=1 with a status, RELOADING=1 and STOPPING=1 to a path socket', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'flb-notify-'));
    const sock = path.join(dir, 'notify');
    receiver = await Receiver.start(sock);
    const n = systemdNotifier(transport, { NOTIFY_SOCKET: sock });
    expect(n.active).toBe(true);
    n.ready('node n1 running\nsecond line');
    n.reloading();
    n.stopping();
    const got = await receiver.waitFor(3);
    expect(got[0]).toBe('READY=1\nSTATUS=node n1 running second line');
    expect(got[1]).toMatch(/^RELOADING=1\nMONOTONIC_USEC=\d+$/);
    expect(got[2]).toBe('STOPPING=1');
  });

  it('sends WATCHDOG=1 at half of WATCHDOG_USEC to an abstract socket, and stops', async () => {
    const sock = `@flb-notify-${process.pid}-${Date.now()}`;
    receiver = await Receiver.start(sock);
    const n = systemdNotifier(transport, { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '100000', WATCHDOG_PID: String(process.pid) });
    expect(n.watchdogIntervalMs).toBe(50);
    n.startWatchdog();
    // The keep-alives come from a timer on this event loop: several arrive while it runs.
    const got = await receiver.waitFor(3);
    n.stopWatchdog();
    expect(got.slice(0, 3)).toEqual(['WATCHDOG=1', 'WATCHDOG=1', 'WATCHDOG=1']);
  });

  it('does nothing outside systemd, and refuses a socket nobody listens on with FARMLB_E_RUN_NOTIFY', () => {
    const off = systemdNotifier(transport, {});
    expect(off.active).toBe(false);
    off.ready();
    off.startWatchdog();
    const broken = systemdNotifier(transport, { NOTIFY_SOCKET: path.join(tmpdir(), `flb-none-${process.pid}`) });
    expect(() => broken.ready()).toThrow(expect.objectContaining({ code: 'FARMLB_E_RUN_NOTIFY' }));
  });

  it('applies WATCHDOG_USEC only to the process WATCHDOG_PID names', () => {
    expect(watchdogInterval({ WATCHDOG_USEC: '10000000' }, 42)).toBe(5000);
    expect(watchdogInterval({ WATCHDOG_USEC: '10000000', WATCHDOG_PID: '42' }, 42)).toBe(5000);
    expect(watchdogInterval({ WATCHDOG_USEC: '10000000', WATCHDOG_PID: '43' }, 42)).toBeUndefined();
    expect(watchdogInterval({ WATCHDOG_USEC: 'junk' }, 42)).toBeUndefined();
    expect(watchdogInterval({}, 42)).toBeUndefined();
  });
});

describe('journald priorities', () => {
  it('maps pino levels to syslog priorities and prefixes the JSON line with <N>', () => {
    expect([60, 50, 40, 30, 20, 10].map(journalPriority)).toEqual([2, 3, 4, 6, 7, 7]);
    expect(withJournalPriority('{"level":40,"msg":"x"}\n')).toBe('<4>{"level":40,"msg":"x"}\n');
    expect(withJournalPriority('{"level":50,"msg":"x"}\n')).toBe('<3>{"level":50,"msg":"x"}\n');
    expect(withJournalPriority('not json\n')).toBe('not json\n');
  });

  it('prefixes only when stdout is the stream JOURNAL_STREAM names', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'flb-journal-'));
    const fd = openSync(path.join(dir, 'out'), 'w');
    try {
      const st = fstatSync(fd);
      expect(stdoutIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd)).toBe(true);
      expect(stdoutIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1}` }, fd)).toBe(false);
      expect(stdoutIsJournal({}, fd)).toBe(false);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes --log-level over FARMLB_LOG_LEVEL over info, and refuses an unknown level', () => {
    expect(logLevel(undefined, {})).toBe('info');
    expect(logLevel(undefined, { FARMLB_LOG_LEVEL: 'debug' })).toBe('debug');
    expect(logLevel('warn', { FARMLB_LOG_LEVEL: 'debug' })).toBe('warn');
    expect(() => logLevel('loud', {})).toThrow(expect.objectContaining({ code: 'FARMLB_E_CLI_BAD_OPTION' }));
    expect(() => logLevel(undefined, { FARMLB_LOG_LEVEL: 'loud' })).toThrow(/FARMLB_LOG_LEVEL/);
  });
});

describe('files and exit codes', () => {
  it('finds userconfig.xml and cluster.xml in /etc/farmlb when not given', () => {
    const etc = mkdtempSync(path.join(tmpdir(), 'flb-etc-'));
    try {
      const opts: Record<string, unknown> = { config: 'userconfig.xml', module: 'web' };
      applyDefaultPaths(opts, true, true, etc);
      expect(opts).toEqual({ config: path.join(etc, 'web/userconfig.xml'), module: 'web' });
      writeFileSync(path.join(etc, 'cluster.xml'), '<cluster/>');
      const given: Record<string, unknown> = { config: 'mine.xml' };
      applyDefaultPaths(given, false, true, etc);
      expect(given).toEqual({ config: 'mine.xml', cluster: path.join(etc, 'cluster.xml') });
    } finally {
      rmSync(etc, { recursive: true, force: true });
    }
  });

  it('exits 78 (EX_CONFIG) on an invalid configuration', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'flb-bad-'));
    try {
      const bad = path.join(dir, 'bad.xml');
      writeFileSync(bad, '<safe><service mode="farm"><farm><lan name="default"/></farm></service>');
      expect((await runCli(['validate', bad])).code).toBe(78);
      expect((await runCli(['confinfo', '-c', bad])).code).toBe(78);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('packaging/farmlb@.service', () => {
  const unitText = readFileSync(path.join(root, 'packaging/farmlb@.service'), 'utf8');
  const settings = new Map<string, string[]>();
  for (const line of unitText.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) settings.set(m[1]!, [...(settings.get(m[1]!) ?? []), m[2]!]);
  }
  const one = (k: string) => settings.get(k)?.[0];

  it('is Type=notify with a watchdog, validates first, reloads through farmlb reload and does not restart on exit 78', () => {
    expect(one('Type')).toBe('notify');
    expect(one('NotifyAccess')).toBe('main');
    expect(one('WatchdogSec')).toBe('10s');
    expect(one('RestartPreventExitStatus')).toBe('78');
    expect(one('ExecStartPre')).toMatch(/^\/usr\/bin\/farmlb validate /);
    expect(one('ExecReload')).toBe('/usr/bin/farmlb reload --module %i');
    expect(one('ExecStart')).toContain('$FARMLB_OPTS');
    expect(settings.get('EnvironmentFile')).toEqual(['-/etc/default/farmlb', '-/etc/farmlb/%i/farmlb.env']);
  });

  it('passes systemd-analyze verify (but for /usr/bin/farmlb, absent here) and scores 4.5 or better in systemd-analyze security', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'flb-unit-'));
    try {
      mkdirSync(dir, { recursive: true });
      const unit = path.join(dir, 'farmlb@farm.service');
      writeFileSync(unit, unitText);
      let verify = '';
      try {
        verify = execFileSync('systemd-analyze', ['verify', '--man=no', unit], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (err) {
        verify = String((err as { stderr?: string }).stderr ?? '') + String((err as { stdout?: string }).stdout ?? '');
      }
      const problems = verify.split('\n').filter((l) => l.trim() !== '' && !l.includes('Command /usr/bin/farmlb is not executable'));
      expect(problems).toEqual([]);
      const security = execFileSync('systemd-analyze', ['security', '--offline=yes', unit], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      const score = Number(/Overall exposure level for [^:]+: ([\d.]+)/.exec(security)?.[1]);
      expect(score).toBeLessThanOrEqual(4.5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
