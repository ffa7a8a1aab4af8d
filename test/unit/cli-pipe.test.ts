// The CLI as a shell pipeline sees it (docs/cli.md): `farmlb … | head -1` and a reader that
// is gone before the first write (`| true`, EPIPE for sure) end quietly — exit 0, nothing on
// stderr, no stack trace; usage errors under --json are {"error"} on stdout; validate takes
// -c/--config like every command and `-` for stdin. Runs bin/farmlb.js (dist/) as a child.

import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/commands/index.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const FARMLB = path.join(REPO, 'bin/farmlb.js');
const CONFIG = path.join(REPO, 'test/fixtures/configs/multi-group.xml');
const CLUSTER = path.join(REPO, 'test/fixtures/configs/cluster.xml');
// No warnings (multi-group.xml has one, printed on stderr by validate).
const QUIET_CONFIG = path.join(REPO, 'test/fixtures/configs/ipv6.xml');
const NO_PINS = ['--pin-dir', '/nonexistent/farmlb-pipe-test'];

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** `farmlb ARGS | READER` in bash: farmlb's own exit status (PIPESTATUS[0]) and its stderr. */
function piped(args: string[], reader: string): { code: number; stderr: string; out: string } {
  const script = `node ${q(FARMLB)} ${args.map(q).join(' ')} 2>"$ERR" | ${reader}; echo "farmlb=\${PIPESTATUS[0]}" >&2; cat "$ERR" >&2`;
  const r = spawnSync('bash', ['-c', `ERR=$(mktemp); ${script}; rm -f "$ERR"`], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 30_000 });
  const m = /^farmlb=(\d+)\n([\s\S]*)$/.exec(r.stderr);
  if (!m) throw new Error(`unexpected: ${r.stderr}`);
  return { code: Number(m[1]), stderr: m[2]!, out: r.stdout };
}

// Every command that runs without a daemon or root, and every command's --help.
const RUNS: string[][] = [
  ['--help'],
  ...COMMANDS.map((c) => [c.name, '--help']),
  ['validate', QUIET_CONFIG, '--cluster', CLUSTER],
  ['validate', '-c', QUIET_CONFIG, '--cluster', CLUSTER, '--json'],
  ['confinfo', '-c', CONFIG, '--cluster', CLUSTER],
  ['confinfo', '-c', CONFIG, '--cluster', CLUSTER, '--json'],
  ['explain', '192.0.2.7:40000', '10.0.0.100:80/tcp', '-c', CONFIG, '--cluster', CLUSTER, ...NO_PINS],
  ['explain', '192.0.2.7:40000', '10.0.0.100:80/tcp', '-c', CONFIG, '--cluster', CLUSTER, ...NO_PINS, '--json'],
];

describe('farmlb in a pipeline', () => {
  it.each(RUNS.map((a) => [a.join(' ').replace(REPO, '.'), a]))('farmlb %s | head -1: exit 0, one line, empty stderr', (_, args) => {
    const r = piped(args as string[], 'head -1');
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.out.split('\n').filter(Boolean)).toHaveLength(1);
  });

  it.each(RUNS.slice(-6).map((a) => [a.join(' ').replace(REPO, '.'), a]))('farmlb %s | true (the reader gone before the first write): exit 0, no EPIPE trace', (_, args) => {
    expect(piped(args as string[], 'true')).toMatchObject({ code: 0, stderr: '' });
  });
});

describe('farmlb usage errors and validate input', () => {
  const run = (args: string[], input?: string) => spawnSync('node', [FARMLB, ...args], { encoding: 'utf8', input, env: { ...process.env, NO_COLOR: '1' }, timeout: 30_000 });

  it('a usage error under --json is {"error": {code: FARMLB_E_CLI_USAGE, …}} on stdout, exit 2, nothing on stderr', () => {
    for (const args of [['frobnicate', '--json'], ['status', '--no-such-option', '--json'], ['explain', '10.0.0.1', '--json']]) {
      const r = run(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toBe('');
      const e = JSON.parse(r.stdout) as { error: { code: string; message: string; hint: string } };
      expect(e.error.code).toBe('FARMLB_E_CLI_USAGE');
      expect(e.error.message).not.toMatch(/^error:/);
      expect(e.error.hint).toMatch(/--help/);
    }
    // Without --json: commander's text on stderr, as before.
    const t = run(['frobnicate']);
    expect([t.status, t.stdout]).toEqual([2, '']);
    expect(t.stderr).toMatch(/unknown command 'frobnicate'/);
  });

  it('validate takes the file as the argument, with -c/--config, or from stdin with -', () => {
    const text = readFileSync(CONFIG, 'utf8');
    expect(run(['validate', '-c', CONFIG]).stdout).toMatch(/multi-group\.xml: valid \(2 VIP\(s\), 3 group\(s\)\)/);
    expect(run(['validate', '--config', CONFIG]).status).toBe(0);
    const stdin = run(['validate', '-', '--cluster', CLUSTER], text);
    expect([stdin.status, stdin.stdout]).toEqual([0, '<stdin>: valid (2 VIP(s), 3 group(s), 3 node(s) in ' + CLUSTER + ')\n']);
    expect(run(['validate', '-c', '-', '--json'], text).status).toBe(0);
    const broken = run(['validate', '-c', '-'], text.replace('filter="on_addr"', 'filter="on_moon"'));
    expect(broken.status).toBe(78);
    expect(broken.stderr).toMatch(/^<stdin>:\d+:\d+: FARMLB_E_CONFIG_/m);
    const both = run(['validate', CONFIG, '-c', CLUSTER]);
    expect(both.status).toBe(1);
    expect(both.stderr).toContain('FARMLB_E_CLI_BAD_OPTION');
  });

  it('a pin directory the user may not read says to run as root, not that nothing is pinned', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'flb-pins-'));
    try {
      mkdirSync(path.join(dir, 'farm'));
      // Root reads anything: then the CLI runs as nobody; else the directory is made unreadable.
      const root = process.getuid?.() === 0;
      if (root) chmodSync(dir, 0o700);
      else chmodSync(dir, 0o000);
      const argv = ['buckets', '--pin-dir', path.join(dir, 'farm')];
      const r = root
        ? spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, FARMLB, ...argv], { encoding: 'utf8', timeout: 30_000 })
        : run(argv);
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toContain('(FARMLB_E_DATAPLANE_PIN_ACCESS)');
      expect(r.stderr).toMatch(/hint: run as root/);
      expect(r.stderr).not.toContain('no farmlb data plane is pinned');
    } finally {
      chmodSync(dir, 0o700);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
