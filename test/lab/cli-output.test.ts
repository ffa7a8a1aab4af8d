// Every command of the CLI table run as a real child process against a running two-node
// farm (membership mode), the way an operator or a script runs it: in text mode with
// NO_COLOR=1 and stdout a pipe there is no escape sequence at all and the expected content
// is there; with --json the output parses and has the keys docs/cli.md lists; the exit
// codes are the documented ones. Colour appears only on a terminal (under script(1)) or
// with FORCE_COLOR, and never in --json.

import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it, type TestContext } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { FarmLab, REPO } from './helpers/farm-lab.js';
import { inNetns, uniqueSuffix, waitFor } from './helpers/netns.js';
import type { DaemonStatus } from '../../src/api/status.js';

const FARMLB = path.join(REPO, 'bin/farmlb.js');
const GROUP = 'web';
// Any CSI sequence (colour, cursor): none may appear in plain text output.
const ESC = /\x1b/;

interface CliRun { code: number; stdout: string; stderr: string }

interface CliOptions {
  /** Append this node's --pin-dir and --run-dir. */
  node?: string;
  /** Changes to the environment; undefined removes a variable. Default: NO_COLOR=1, no FORCE_COLOR. */
  env?: Record<string, string | undefined>;
  /** Run under script(1): stdout is a pseudo-terminal. */
  tty?: boolean;
  timeoutMs?: number;
}

const STATUS_KEYS = ['node', 'module', 'mode', 'pid', 'state', 'stateCause', 'stateSince', 'admin', 'ready', 'view', 'epoch', 'leader',
  'groups', 'nodes', 'bucketsOwned', 'leaseRemainingMs', 'splitBrain', 'splitBrainPolicy', 'lastViewChange', 'checks', 'configDigest'];
const NODE_KEYS = ['name', 'id', 'self', 'inView', 'state', 'buckets', 'share', 'power', 'overridden'];

describePrivileged('lab: every farmlb command as a child process — text without colour, --json, exit codes', () => {
  let lab: FarmLab | undefined;
  const logsOnFailure = (ctx: TestContext) => ctx.onTestFailed(() => { const l = lab?.logs(); if (l) console.error(l); });

  /** The CLI as a separate process; never throws on a non-zero exit (the code is the result). */
  function farmlb(args: string[], opts: CliOptions = {}): Promise<CliRun> {
    const argv = [FARMLB, ...args, ...(opts.node ? ['--pin-dir', lab!.pinDir(opts.node), '--run-dir', lab!.runDir(opts.node)] : [])];
    // A terminal that can show colours, unless a test says otherwise.
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...(opts.tty ? { TERM: 'xterm-256color' } : {}) };
    delete env.FORCE_COLOR;
    for (const [k, v] of Object.entries(opts.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const [cmd, cmdArgs] = opts.tty
      ? ['script', ['-qefc', ['node', ...argv].map(quote).join(' '), '/dev/null']]
      : ['node', argv];
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, cmdArgs as string[], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
      child.on('error', (err) => { clearTimeout(timer); reject(err); });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (signal) reject(new Error(`farmlb ${args.join(' ')}: killed by ${signal}\n${stderr}`));
        // A pty turns \n into \r\n.
        else resolve({ code: code ?? -1, stdout: opts.tty ? stdout.replace(/\r\n/g, '\n') : stdout, stderr });
      });
    });
  }

  /** Text mode: exit code as expected and not one escape byte on stdout or stderr. */
  async function text(args: string[], opts: CliOptions = {}, code = 0): Promise<string> {
    const r = await farmlb(args, opts);
    const what = `farmlb ${args.join(' ')}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
    expect(r.code, what).toBe(code);
    expect(r.stdout, what).not.toMatch(ESC);
    expect(r.stderr, what).not.toMatch(ESC);
    return r.stdout;
  }

  /** --json mode: exit code as expected, output that parses, no escape byte. */
  async function json<T = Record<string, unknown>>(args: string[], opts: CliOptions = {}, code = 0): Promise<T> {
    const r = await farmlb([...args, '--json'], opts);
    const what = `farmlb ${args.join(' ')} --json\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
    expect(r.code, what).toBe(code);
    expect(r.stdout, what).not.toMatch(ESC);
    return JSON.parse(r.stdout) as T;
  }

  const statuses = async () => Promise.all(['node1', 'node2'].map((n) => lab!.status(n))).catch(() => undefined);
  const balanced = (all: DaemonStatus[] | undefined, quotas: Record<string, number>) =>
    all !== undefined && new Set(all.map((s) => s.epoch)).size === 1 && all.every((s) => s.state === 'UP' && s.ready)
    && all.every((s) => s.nodes.every((n) => (n.buckets[GROUP] ?? 0) === quotas[n.name]));
  const waitBalanced = (quotas: Record<string, number>, what: string) =>
    waitFor(async () => { const s = await statuses(); return balanced(s, quotas) ? s : undefined; }, { timeoutMs: 20_000, intervalMs: 200, what });

  beforeAll(async () => {
    lab = await FarmLab.create({
      name: `cli${uniqueSuffix()}`, mode: 'vmac_invisible', xdpMode: 'generic', membership: true,
      nodes: [{ name: 'node1', power: 1 }, { name: 'node2', power: 1 }], clientAddrs4: 16, clientAddrs6: 0,
    });
    await waitBalanced({ node1: 128, node2: 128 }, 'both nodes UP on one table, 128 buckets each');
  }, 120_000);

  afterAll(async () => {
    if (lab) expect(await lab.cleanup()).toEqual([]);
  }, 60_000);

  it('status: the module, view and nodes as text; -q exits 2 for UP; --json has the documented keys', async (ctx) => {
    logsOnFailure(ctx);
    const out = await text(['status'], { node: 'node1' });
    expect(out).toMatch(/^module lab-cli\S* on node1: UP/);
    expect(out).toMatch(/mode membership · epoch \d+ · leader node\d · view node1, node2/);
    expect(out).toMatch(/lease \d+ ms left · ready/);
    expect(out).toMatch(/^NODE\s+STATE\s+VIEW\s+web BUCKETS\s+SHARE\s+POWER/m);
    expect(out).toMatch(/^node1\*\s+UP\s+yes\s+128\s+50\.0%\s+1/m);
    expect(out).toMatch(/^node2\s+UP\s+yes\s+128\s+50\.0%\s+1/m);

    const q = await farmlb(['status', '-q'], { node: 'node1' });
    expect([q.code, q.stdout, q.stderr]).toEqual([2, '', '']);

    const s = await json<DaemonStatus>(['status'], { node: 'node1' });
    expect(Object.keys(s)).toEqual(expect.arrayContaining(STATUS_KEYS));
    for (const n of s.nodes) expect(Object.keys(n)).toEqual(expect.arrayContaining(NODE_KEYS));
    expect(s.nodes.find((n) => n.name === 'node2')?.lastHeardMs).toBeTypeOf('number');
  });

  it('status --watch off a terminal: one status per interval under a "---" line; with --json one object per line', async (ctx) => {
    logsOnFailure(ctx);
    const out = await text(['status', '--watch', '--count', '2', '--interval', '100'], { node: 'node2' });
    expect(out.match(/^--- \d{4}-\d\d-\d\dT/gm)).toHaveLength(2);
    expect(out.match(/^module \S+ on node2: UP/gm)).toHaveLength(2);
    const nd = await farmlb(['status', '--watch', '--count', '2', '--interval', '100', '--json'], { node: 'node2' });
    expect(nd.code).toBe(0);
    const lines = nd.stdout.trim().split('\n').map((l) => JSON.parse(l) as DaemonStatus);
    expect(lines.map((l) => l.node)).toEqual(['node2', 'node2']);
  });

  it('buckets: the 16×16 owner grid in letters with its legend; --json: owners and counters of 256 buckets', async (ctx) => {
    logsOnFailure(ctx);
    const out = await text(['buckets'], { node: 'node1' });
    const rows = out.split('\n').filter((l) => /^ {2}[0-9a-f]{2}: /.test(l));
    expect(rows).toHaveLength(16);
    for (const r of rows) expect(r.slice(6)).toMatch(/^[AB](?: [AB]){15}$/);
    expect(out).toMatch(/A node1\s+128 buckets\s+50\.0% \(this node\)/);
    expect(out).toMatch(/B node2\s+128 buckets\s+50\.0%/);

    const b = await json<{ module: string; pinDir: string; selfNode: { name: string }; nodes: string[];
      groups: { index: number; name: string; owners: string[]; ownerIds: number[]; legend: unknown[]; counters: { accepted: number[]; dropped: number[] } }[] }>(['buckets'], { node: 'node1' });
    expect(Object.keys(b)).toEqual(expect.arrayContaining(['module', 'pinDir', 'selfNode', 'nodes', 'groups']));
    expect(b.selfNode.name).toBe('node1');
    expect(b.nodes).toEqual(['node1', 'node2']);
    const g = b.groups[0]!;
    expect(Object.keys(g)).toEqual(expect.arrayContaining(['index', 'name', 'owners', 'ownerIds', 'legend', 'counters']));
    expect([g.name, g.owners.length, g.ownerIds.length, g.counters.accepted.length, g.counters.dropped.length]).toEqual([GROUP, 256, 256, 256, 256]);
  });

  it('buckets --diff: the last recorded view change as a grid of moved buckets; --json: viewChange and groups', async (ctx) => {
    logsOnFailure(ctx);
    const out = await text(['buckets', '--diff'], { node: 'node1' });
    expect(out).toMatch(/view change at epoch \d+|no view change recorded/);
    const d = await json<{ viewChange: { epoch: number } | null; groups: { name: string; moved: unknown[] }[] }>(['buckets', '--diff'], { node: 'node1' });
    expect(Object.keys(d).sort()).toEqual(['groups', 'viewChange']);
    if (d.viewChange) expect(d.viewChange.epoch).toBeTypeOf('number');
  });

  it('buckets --rate under client traffic: a heat grid of ramp characters with scale and owner totals; --json: rates only in the node\'s own buckets', async (ctx) => {
    logsOnFailure(ctx);
    // Traffic until the rate reads are done (each CLI may take a while to start on a busy
    // machine), bounded at 20 s.
    const until = Date.now() + 20_000;
    let reading = true;
    let served = 0;
    const traffic = (async () => {
      while (reading && Date.now() < until) served += (await lab!.connectMany(lab!.clientAttempts(4), 8)).filter((r) => r.servedBy).length;
    })();
    try {
      await sleep(300);
      type Rate = { intervalS: number; selfNode: { name: string }; groups: { name: string; owners: string[]; rates: { accepted: number[]; notAccepted: number[] };
        maxAccepted: number; totals: { node: string | null; buckets: number; accepted: number }[]; total: { accepted: number; notAccepted: number } }[] };
      const [r1, r2, heat] = await Promise.all([
        json<Rate>(['buckets', '--rate', '--interval', '1.5'], { node: 'node1' }),
        json<Rate>(['buckets', '--rate', '--interval', '1.5'], { node: 'node2' }),
        text(['buckets', '--rate', '--interval', '1'], { node: 'node1' }),
      ]).finally(() => { reading = false; });
      for (const r of [r1, r2]) {
        expect(r.intervalS).toBeGreaterThanOrEqual(1.5);
        const g = r.groups[0]!;
        expect([g.name, g.rates.accepted.length, g.rates.notAccepted.length]).toEqual([GROUP, 256, 256]);
        // Each node accepts only in the buckets it owns; it sees the others' and leaves them.
        g.rates.accepted.forEach((rate, b) => { if (rate > 0) expect(g.owners[b], `bucket ${b}`).toBe(r.selfNode.name); });
        expect(g.totals.map((t) => [t.node, t.buckets])).toEqual([['node1', 128], ['node2', 128]]);
        expect(g.maxAccepted).toBe(Math.max(...g.rates.accepted));
      }
      expect(r1.groups[0]!.total.accepted + r2.groups[0]!.total.accepted, 'packets accepted by the farm').toBeGreaterThan(0);

      const rows = heat.split('\n').filter((l) => /^ {2}[0-9a-f]{2}: /.test(l));
      expect(rows).toHaveLength(16);
      for (const row of rows) expect(row.slice(6)).toMatch(/^[.:\-=+*#%@](?: [.:\-=+*#%@]){15}$/);
      expect(heat).toMatch(/packets\/s accepted by node1 per bucket, over 1\.\d s/);
      expect(heat).toMatch(/scale \(pkt\/s\): \. 0/);
      expect(heat).toMatch(/^\s+OWNER\s+BUCKETS\s+ACCEPTED\/S\s+NOT ACCEPTED\/S\s+SHARE$/m);
      expect(heat).toMatch(/^\s+A node1 \*\s+128\s/m);
      expect(heat).toMatch(/^\s+total\s+256\s/m);
    } finally {
      await traffic;
    }
    expect(served, 'client requests served during the rate reads').toBeGreaterThan(0);
  });

  it('explain: rule, criterion, bucket, owner, verdict and the failover owner from the running table; --json has them', async (ctx) => {
    logsOnFailure(ctx);
    const args = ['explain', `${lab!.clientAddrs4[0]}:40000`, `${lab!.vip4}:8080/tcp`, ...lab!.configArgs()];
    const out = await text(args, { node: 'node1' });
    for (const want of [/^\s+rule:\s+tcp virtual_addr=\S+ port=8080 filter=on_addr \(.*userconfig\.xml:\d+\)/m, /^\s+criterion: on_addr = [0-9a-f]+/m,
      /^\s+bucket:\s+\d+ \(0x[0-9a-f]{2}\)/m, /^\s+owner:\s+node[12] \(#[01]\)/m, /^\s+verdict:\s+(pass|drop) \(\w+\) on node1/m,
      /^\s+if node[12] fails: node[12] takes bucket \d+/m, /^\s+table:\s+running \(/m]) expect(out).toMatch(want);
    const e = await json<{ table: string; bucket: number; owner: { name: string }; verdict: string; reason: string; summary: string; ownerIfOwnerFails: { name: string } }>(args, { node: 'node1' });
    expect(Object.keys(e)).toEqual(expect.arrayContaining(['query', 'rule', 'group', 'criterion', 'criterionBytes', 'bucket', 'owner', 'self', 'verdict', 'reason', 'ownerIfOwnerFails', 'summary', 'table']));
    expect(e.table).toBe('pinned');
    expect(e.verdict).toBe(e.owner.name === 'node1' ? 'pass' : 'drop');
    expect(e.ownerIfOwnerFails.name).not.toBe(e.owner.name);
    // A malformed endpoint is a failed command (1), not a usage error.
    expect((await farmlb(['explain', 'nonsense', `${lab!.vip4}/tcp`, ...lab!.configArgs()], { node: 'node1' })).code).toBe(1);
  });

  it('events: state and view transitions with causes as text lines; --json: an array of events', async (ctx) => {
    logsOnFailure(ctx);
    const out = await text(['events'], { node: 'node1' });
    expect(out).toMatch(/^\d{4}-\d\d-\d\d \S+Z {2}state {2}\S+ → UP {2}/m);
    expect(out).toMatch(/^\d{4}-\d\d-\d\d \S+Z {2}view {3}epoch \d+ \[[^\]]+\] {2}.+: .*buckets moved$/m);
    const events = await json<{ event: string; time: string; node: string; module: string }[]>(['events'], { node: 'node1' });
    expect(events.length).toBeGreaterThanOrEqual(2);
    for (const e of events) expect(Object.keys(e)).toEqual(expect.arrayContaining(['event', 'time', 'node', 'module']));
    expect(await json<unknown[]>(['events', '-n', '1'], { node: 'node1' })).toHaveLength(1);
  });

  it('validate and confinfo: exit 0 and the digest for the lab config; exit 78 (EX_CONFIG) with file:line errors for a broken one', async (ctx) => {
    logsOnFailure(ctx);
    expect(await text(['validate', lab!.configFile, '--cluster', lab!.clusterFile])).toMatch(/: valid \(2 VIP\(s\), 1 group\(s\), 2 node\(s\) in /);
    const v = await json<{ valid: boolean; errors: unknown[]; warnings: unknown[]; digest: string }>(['validate', lab!.configFile, '--cluster', lab!.clusterFile]);
    expect(v).toMatchObject({ valid: true, errors: [] });
    expect(v.digest).toMatch(/^[0-9a-f]{64}$/);

    const broken = path.join(lab!.dir, 'broken.xml');
    await writeFile(broken, (await import('node:fs')).readFileSync(lab!.configFile, 'utf8').replace('filter="on_addr"', 'filter="on_moon"'));
    const bad = await farmlb(['validate', broken, '--cluster', lab!.clusterFile]);
    expect(bad.code).toBe(78);
    expect(bad.stderr).toMatch(new RegExp(`${broken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: FARMLB_E_\\w+`));
    expect(bad.stderr).not.toMatch(ESC);
    const badJson = await json<{ valid: boolean; errors: { code: string; line: number }[] }>(['validate', broken, '--cluster', lab!.clusterFile], {}, 78);
    expect(badJson.valid).toBe(false);
    expect(badJson.errors[0]).toMatchObject({ code: expect.stringMatching(/^FARMLB_E_/), line: expect.any(Number) });

    const info = await text(['confinfo', ...lab!.configArgs()]);
    expect(info).toMatch(/^digest {2}[0-9a-f]{64}$/m);
    const c = await json<{ digest: string; config: string; cluster: string; effective: unknown }>(['confinfo', ...lab!.configArgs()]);
    expect(Object.keys(c).sort()).toEqual(['cluster', 'config', 'digest', 'effective']);
    expect(c.digest).toBe(v.digest);
    expect(c.digest).toBe((await lab!.status('node1')).configDigest);
  });

  it('power, drain (--wait) and undrain: exit 0, the resulting powers as text or the status as --json; the table follows', async (ctx) => {
    logsOnFailure(ctx);
    expect(await text(['power', 'node2', '3'], { node: 'node1' })).toMatch(/^node2: web power 3, \d+ buckets \(runtime override\)/);
    await waitBalanced({ node1: 64, node2: 192 }, 'the table to follow power 3 for node2');
    const cleared = await json<DaemonStatus>(['power', 'node2', 'clear'], { node: 'node1' });
    expect(Object.keys(cleared)).toEqual(expect.arrayContaining(STATUS_KEYS));
    await waitBalanced({ node1: 128, node2: 128 }, 'the configured powers back');

    // drain --wait returns once node2 owns nothing and hands nothing over (no long-lived connections here).
    const drained = await farmlb(['drain', 'node2', '--wait', '--timeout', '30'], { node: 'node1', timeoutMs: 40_000 });
    expect(drained.code, drained.stderr).toBe(0);
    expect(drained.stdout).toMatch(/^node2: web power 0/);
    expect(drained.stdout).toMatch(/^node2 is drained: it owns no bucket and hands none over \(waited \d+\.\d s\)$/m);
    await waitBalanced({ node1: 256, node2: 0 }, 'node2 drained');
    const again = await json<{ drained: boolean; remaining: { totalBuckets: number; totalHandingOver: number } }>(['drain', 'node2', '--wait', '--timeout', '0'], { node: 'node1' });
    expect(again).toMatchObject({ drained: true, remaining: { totalBuckets: 0, totalHandingOver: 0 } });
    const undrained = await json<DaemonStatus>(['undrain', 'node2'], { node: 'node1' });
    expect(undrained.nodes.find((n) => n.name === 'node2')?.overridden).toBe(false);
    await waitBalanced({ node1: 128, node2: 128 }, 'node2 undrained');
    // A bad power is a failed command; a missing one a usage error.
    expect((await farmlb(['power', 'node2', 'lots'], { node: 'node1' })).code).toBe(1);
    expect((await farmlb(['power', 'node2'], { node: 'node1' })).code).toBe(2);
  });

  it('stop and start: WAIT (status -q exits 1), then UP again (exit 2)', async (ctx) => {
    logsOnFailure(ctx);
    expect(await text(['stop'], { node: 'node2' })).toMatch(/^module \S+ on node2: WAIT/);
    expect((await farmlb(['status', '-q'], { node: 'node2' })).code).toBe(1);
    const started = await json<DaemonStatus>(['start'], { node: 'node2' });
    expect(started.admin).toBe('started');
    await waitFor(async () => (await farmlb(['status', '-q'], { node: 'node2' })).code === 2,
      { timeoutMs: 20_000, intervalMs: 250, what: 'node2 UP again after farmlb start' });
  });

  it('shows colour only on a terminal or with FORCE_COLOR, never with NO_COLOR on a terminal, never in --json', async (ctx) => {
    logsOnFailure(ctx);
    const colour = /\x1b\[(?:38;5;\d+|1|2)m/;
    const tty = await farmlb(['buckets'], { node: 'node1', tty: true, env: { NO_COLOR: undefined } });
    expect(tty.code).toBe(0);
    expect(tty.stdout).toMatch(colour);
    const ttyNoColor = await farmlb(['buckets'], { node: 'node1', tty: true });
    expect(ttyNoColor.stdout).toMatch(/^ {2}00: [AB]/m);
    expect(ttyNoColor.stdout).not.toMatch(ESC);
    const ttyStatus = await farmlb(['status'], { node: 'node1', tty: true });
    expect(ttyStatus.stdout).not.toMatch(ESC);
    const pipe = await farmlb(['buckets'], { node: 'node1', env: { NO_COLOR: undefined } });
    expect(pipe.stdout).not.toMatch(ESC);
    const forced = await farmlb(['buckets', '--rate', '--interval', '0.2'], { node: 'node1', env: { NO_COLOR: undefined, FORCE_COLOR: '1' } });
    expect(forced.stdout).toMatch(colour);
    const forcedJson = await farmlb(['status', '--json'], { node: 'node1', tty: true, env: { NO_COLOR: undefined, FORCE_COLOR: '1' } });
    expect(forcedJson.stdout).not.toMatch(ESC);
    expect((JSON.parse(forcedJson.stdout) as DaemonStatus).node).toBe('node1');
  });

  it('every command piped into head -1 against a running daemon: its usual exit status, one line, nothing on stderr (no EPIPE trace)', async (ctx) => {
    logsOnFailure(ctx);
    const cfg = lab!.configArgs();
    const src = `${lab!.clientAddrs4[0]}:40000`;
    // [args, farmlb's own exit status]; stop/start and power/undrain leave the farm as it was.
    const runs: [string[], number][] = [
      [['status'], 0], [['status', '--json'], 0], [['status', '-q'], 2],
      // --watch keeps writing after head has gone: the next write meets EPIPE.
      [['status', '--watch', '--interval', '100', '--count', '50'], 0], [['status', '--watch', '--json', '--interval', '100', '--count', '50'], 0],
      [['buckets'], 0], [['buckets', '--json'], 0], [['buckets', '--diff'], 0], [['buckets', '--rate', '--interval', '0.2'], 0],
      [['explain', src, `${lab!.vip4}:8080/tcp`, ...cfg], 0], [['explain', src, `${lab!.vip4}:8080/tcp`, ...cfg, '--json'], 0],
      [['events'], 0], [['events', '--json'], 0], [['validate', '-c', lab!.configFile, '--cluster', lab!.clusterFile], 0],
      [['confinfo', ...cfg], 0], [['reload'], 0], [['power', 'node2', '1'], 0], [['power', 'node2', 'clear'], 0],
      [['undrain', 'node2'], 0], [['stop'], 0], [['start'], 0], [['run', '--help'], 0], [['drain', '--help'], 0],
    ];
    const n = lab!.nodeNames()[0]!;
    const dirs = ['--pin-dir', lab!.pinDir(n), '--run-dir', lab!.runDir(n)];
    const q = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;
    for (const [args, code] of runs) {
      const argv = [FARMLB, ...args, ...(args.includes('--help') || args[0] === 'validate' || args[0] === 'confinfo' ? [] : dirs)];
      const script = `node ${argv.map(q).join(' ')} 2>"$E" | head -1; echo "farmlb=\${PIPESTATUS[0]}"; cat "$E" >&2`;
      const r = await inNetns(lab!.nodeNs(n), 'bash', ['-c', `E=$(mktemp); ${script}; rm -f "$E"`], { timeoutMs: 30_000 });
      const lines = r.stdout.split('\n').filter(Boolean);
      const what = `farmlb ${args.join(' ')} | head -1\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
      expect(lines.at(-1), what).toBe(`farmlb=${code}`);
      expect(lines.length - 1, what).toBe(args.includes('-q') ? 0 : 1);
      expect(r.stderr, what).toBe('');
    }
    await waitFor(async () => (await farmlb(['status', '-q'], { node: n })).code === 2,
      { timeoutMs: 20_000, intervalMs: 250, what: `${n} UP again after stop/start` });
    await waitBalanced({ node1: 128, node2: 128 }, 'the configured powers back');
  });

  it('exit codes: 2 for usage errors; 1 with the error code (text on stderr, {"error"} with --json) when no daemon answers', async (ctx) => {
    logsOnFailure(ctx);
    expect((await farmlb(['frobnicate'])).code).toBe(2);
    expect((await farmlb(['buckets', '--frobnicate'], { node: 'node1' })).code).toBe(2);
    const nowhere = ['--run-dir', path.join(lab!.dir, 'no-such-run-dir')];
    const down = await farmlb(['status', ...nowhere]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^farmlb: no farmlb daemon answers .*\(FARMLB_E_CLI_NOT_RUNNING\)\n {2}hint: /);
    expect(down.stderr).not.toMatch(ESC);
    const downJson = await json<{ error: { code: string; message: string; hint: string } }>(['status', ...nowhere], {}, 1);
    expect(Object.keys(downJson.error).sort()).toEqual(['code', 'hint', 'message']);
    expect(downJson.error.code).toBe('FARMLB_E_CLI_NOT_RUNNING');
    expect((await farmlb(['status', '-q', ...nowhere])).code).toBe(0);
    expect((await farmlb(['buckets', '--rate', '--diff'], { node: 'node1' })).code).toBe(1);
  });

  it('with a daemon killed (-9): status -q exits 0 (STOP), status 1, and buckets, buckets --rate and events still read what it left', async (ctx) => {
    logsOnFailure(ctx);
    await lab!.killNode('node2', 'SIGKILL');
    expect((await farmlb(['status', '-q'], { node: 'node2' })).code).toBe(0);
    expect((await farmlb(['status'], { node: 'node2' })).code).toBe(1);
    const grid = await text(['buckets'], { node: 'node2' });
    expect(grid.split('\n').filter((l) => /^ {2}[0-9a-f]{2}: /.test(l))).toHaveLength(16);
    const rate = await json<{ groups: { total: { accepted: number } }[] }>(['buckets', '--rate', '--interval', '0.3'], { node: 'node2' });
    expect(rate.groups[0]!.total.accepted).toBe(0);
    expect(await text(['buckets', '--rate', '--interval', '0.2'], { node: 'node2' })).toContain('no packet accepted in 0.2 s');
    expect(await text(['events'], { node: 'node2' })).toMatch(/→ UP/);
  });
});
