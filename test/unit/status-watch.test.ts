// `farmlb status --watch` (src/cli/commands/status.ts): one status per interval from the
// control socket, redrawn in place on a terminal, appended otherwise, NDJSON with --json,
// and a daemon that goes away shown as STOP instead of ending the watch.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startControlServer, type ControlServer } from '../../src/api/control.js';
import type { DaemonStatus } from '../../src/api/status.js';
import { watchStatus } from '../../src/cli/commands/status.js';
import { makeOutput } from '../../src/cli/output.js';
import { silentLogger } from '../../src/log.js';
import { instancePaths } from '../../src/paths.js';

let epoch = 3;
function status(): DaemonStatus {
  return {
    node: 'node1', module: 'farm', mode: 'membership', pid: 1, state: 'UP', stateCause: 'in the view', stateSince: Date.now(),
    admin: 'started', ready: true, view: ['node1', 'node2'], epoch: epoch++, leader: 'node1', groups: ['web'], nodes: [],
    bucketsOwned: { web: 128 }, leaseRemainingMs: 120, splitBrain: false, splitBrainPolicy: 'serve', lastViewChange: null,
    checks: { ok: true, failures: [] }, configDigest: 'abc',
  };
}

/** A stand-in for stdout that records what is written. */
function sink(isTTY: boolean): NodeJS.WriteStream & { text: () => string } {
  const chunks: string[] = [];
  return { isTTY, write: (c: string) => { chunks.push(c); return true; }, text: () => chunks.join('') } as unknown as NodeJS.WriteStream & { text: () => string };
}

let dir: string;
let server: ControlServer | undefined;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'flb-watch-'));
  epoch = 3;
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function serve(): Promise<void> {
  const fail = async (): Promise<DaemonStatus> => { throw new Error('not in this test'); };
  server = await startControlServer({ runDir: dir, log: silentLogger(), handler: { status, start: fail, stop: fail, power: fail } });
}

describe('farmlb status --watch', () => {
  it('prints one status per interval, one after the other, when stdout is not a terminal', async () => {
    await serve();
    const out = sink(false);
    const t0 = Date.now();
    const code = await watchStatus(makeOutput({ json: false, stream: out }), instancePaths({ runDir: dir }), { interval: '100', count: '3' }, out);
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    const text = out.text();
    expect(text.match(/module farm on node1: UP/g)).toHaveLength(3);
    expect(text).toMatch(/epoch 3 [\s\S]*epoch 4 [\s\S]*epoch 5 /);
    expect(text).not.toContain('\x1b[');
  });

  it('redraws in place on a terminal', async () => {
    await serve();
    const out = sink(true);
    await watchStatus(makeOutput({ json: false, stream: out }), instancePaths({ runDir: dir }), { interval: '100', count: '2' }, out);
    expect(out.text().split('\x1b[H')).toHaveLength(3);
    expect(out.text()).toContain('\x1b[J');
  });

  it('prints one JSON status per line with --json', async () => {
    await serve();
    const out = sink(false);
    await watchStatus(makeOutput({ json: true, stream: out }), instancePaths({ runDir: dir }), { interval: '100', count: '2' }, out);
    const lines = out.text().trim().split('\n').map((l) => JSON.parse(l) as DaemonStatus);
    expect(lines.map((s) => s.epoch)).toEqual([3, 4]);
  });

  it('shows STOP and keeps watching while no daemon answers', async () => {
    const out = sink(false);
    await watchStatus(makeOutput({ json: false, stream: out }), instancePaths({ runDir: path.join(dir, 'none') }), { interval: '100', count: '2' }, out);
    expect(out.text().match(/module farm: STOP/g)).toHaveLength(2);
  });

  it('refuses an interval under 100 ms', async () => {
    const out = sink(false);
    await expect(watchStatus(makeOutput({ json: false, stream: out }), instancePaths({ runDir: dir }), { interval: '5' }, out))
      .rejects.toMatchObject({ code: 'FARMLB_E_CLI_BAD_OPTION' });
  });
});
