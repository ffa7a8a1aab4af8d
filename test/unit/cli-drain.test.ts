// `farmlb drain NODE --wait` (src/cli/drain-wait.ts, src/cli/commands/module-control.ts):
// the wait loop over a fake status source and a fake clock, and the whole command against a
// fake daemon on a real control socket whose status empties the node step by step.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startControlServer, type ControlHandler, type ControlServer, type PowerChange } from '../../src/api/control.js';
import type { DaemonStatus, NodeStatus } from '../../src/api/status.js';
import { reportDrain } from '../../src/cli/commands/module-control.js';
import { describeRemaining, drainRemaining, waitForDrain } from '../../src/cli/drain-wait.js';
import { runCli } from '../helpers/cli.js';
import { makeOutput } from '../../src/cli/output.js';
import { silentLogger } from '../../src/log.js';

function node(name: string, id: number, over: Partial<NodeStatus> = {}): NodeStatus {
  return { name, id, self: false, inView: true, state: 'UP', buckets: { web: 0, dns: 0 }, handingOver: { web: 0, dns: 0 },
    share: { web: 0, dns: 0 }, power: { web: 1, dns: 1 }, overridden: false, ...over };
}

/** node1 (this daemon) and node2, node2 owning `owned` and handing over `handing` buckets of web. */
function status(owned: number, handing: number, opts: { selfNode?: string; connections?: number; handingOver?: boolean } = {}): DaemonStatus {
  const self = opts.selfNode ?? 'node1';
  const node2: NodeStatus = node('node2', 1, { self: self === 'node2', buckets: { web: owned, dns: 0 }, handingOver: { web: handing, dns: 0 } });
  if (opts.handingOver === false) delete node2.handingOver;
  if (self === 'node2') node2.handover = { prevBuckets: handing, connections: opts.connections ?? 0, sampledAtMs: 0 };
  return {
    node: self, module: 'farm', mode: 'membership', pid: 1, state: 'UP', stateCause: 'in the view', stateSince: 0, admin: 'started', ready: true,
    view: ['node1', 'node2'], epoch: 3, leader: 'node1', groups: ['web', 'dns'],
    nodes: [node('node1', 0, { self: self === 'node1', buckets: { web: 256 - owned, dns: 256 } }), node2],
    bucketsOwned: {}, leaseRemainingMs: 100, splitBrain: false, splitBrainPolicy: 'serve', lastViewChange: null,
    checks: { ok: true, failures: [] }, configDigest: 'd',
  };
}

/** A clock that only the fake sleep moves. */
function fakeTime() {
  let t = 0;
  return { now: () => t, sleep: async (ms: number) => { t += ms; } };
}

describe('drain --wait: what is left on the node', () => {
  it('counts owned and handed-over buckets over every group, and the connections only from the node\'s own status', () => {
    const r = drainRemaining(status(10, 30, { selfNode: 'node2', connections: 37 }), 'node2');
    expect(r).toMatchObject({ totalBuckets: 10, totalHandingOver: 30, connections: 37, handoverKnown: true, buckets: { web: 10, dns: 0 } });
    expect(describeRemaining(r)).toBe('10 buckets owned, 30 handing over, 37 connections still open in them');
    expect(drainRemaining(status(10, 30), 'node2').connections).toBeUndefined();
  });

  it('refuses a node the status does not know, naming the nodes it has', () => {
    expect(() => drainRemaining(status(0, 0), 'node9')).toThrow(expect.objectContaining({ code: 'FARMLB_E_API_UNKNOWN_NODE', message: expect.stringContaining('node1, node2') }));
  });
});

describe('drain --wait: the polling loop', () => {
  it('ends drained once the node owns no bucket and hands none over, not before', async () => {
    const steps = [status(64, 0), status(0, 64), status(0, 12), status(0, 0)];
    const time = fakeTime();
    const seen: number[] = [];
    const r = await waitForDrain({
      node: 'node2', initial: status(64, 0), timeoutMs: 10_000, ...time,
      fetchStatus: async () => steps.shift()!,
      onProgress: (rem) => seen.push(rem.totalBuckets + rem.totalHandingOver),
    });
    expect(r.drained).toBe(true);
    expect(seen).toEqual([64, 64, 64, 12, 0]);
    expect(r.waitedMs).toBe(4 * 250);
    expect(r.remaining.totalHandingOver).toBe(0);
  });

  it('returns at once when the node is already empty (a lost node owns nothing)', async () => {
    const fetchStatus = vi.fn();
    const r = await waitForDrain({ node: 'node2', initial: status(0, 0), timeoutMs: 1_000, fetchStatus, ...fakeTime() });
    expect([r.drained, r.waitedMs, fetchStatus.mock.calls.length]).toEqual([true, 0, 0]);
  });

  it('gives up at the timeout with what is still there, polling last on the deadline', async () => {
    const time = fakeTime();
    const r = await waitForDrain({ node: 'node2', initial: status(0, 5, { selfNode: 'node2', connections: 3 }), timeoutMs: 1_100, ...time,
      fetchStatus: async () => status(0, 5, { selfNode: 'node2', connections: 3 }) });
    expect(r.drained).toBe(false);
    expect(r.waitedMs).toBe(1_100);
    expect(r.remaining).toMatchObject({ totalBuckets: 0, totalHandingOver: 5, connections: 3 });
  });

  it('waits for the buckets alone when the daemon does not report handovers', async () => {
    const r = await waitForDrain({ node: 'node2', initial: status(0, 0, { handingOver: false }), timeoutMs: 0, fetchStatus: vi.fn(), ...fakeTime() });
    expect([r.drained, r.remaining.handoverKnown]).toEqual([true, false]);
  });
});

describe('drain --wait: the result', () => {
  const sink = () => {
    const chunks: string[] = [];
    return { chunks, stream: { isTTY: false, write: (c: string) => { chunks.push(c); return true; } } as unknown as NodeJS.WriteStream };
  };

  it('prints the drained node and exits 0; with --json the final state', () => {
    const text = sink();
    const result = { node: 'node2', drained: true, waitedMs: 1234, remaining: drainRemaining(status(0, 0), 'node2'), status: status(0, 0) };
    expect(reportDrain(makeOutput({ json: false, stream: text.stream }), result, 300)).toBe(0);
    expect(text.chunks.join('')).toBe('node2 is drained: it owns no bucket and hands none over (waited 1.2 s)\n');
    const json = sink();
    expect(reportDrain(makeOutput({ json: true, stream: json.stream }), result, 300)).toBe(0);
    expect(JSON.parse(json.chunks.join(''))).toMatchObject({ node: 'node2', drained: true, waitedMs: 1234, remaining: { totalBuckets: 0 }, status: { node: 'node1' } });
  });

  it('at the timeout exits 124 with FARMLB_E_CLI_DRAIN_TIMEOUT saying what is left; --json adds the error to the final state', () => {
    const json = sink();
    const left = status(0, 5, { selfNode: 'node2', connections: 3 });
    const result = { node: 'node2', drained: false, waitedMs: 60_000, remaining: drainRemaining(left, 'node2'), status: left };
    expect(reportDrain(makeOutput({ json: true, stream: json.stream }), result, 60)).toBe(124);
    const out = JSON.parse(json.chunks.join('')) as { drained: boolean; error: { code: string; message: string; hint: string } };
    expect(out.drained).toBe(false);
    expect(out.error.code).toBe('FARMLB_E_CLI_DRAIN_TIMEOUT');
    expect(out.error.message).toBe('node node2 is not drained after 60 s: 0 buckets owned, 5 handing over, 3 connections still open in them');
    expect(out.error.hint).toContain('farmlb undrain node2');
  });
});

describe('farmlb drain --wait against a daemon on its control socket', () => {
  let dir: string;
  let server: ControlServer | undefined;
  beforeEach(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'flb-drain-')); });
  afterEach(async () => { await server?.close(); server = undefined; await rm(dir, { recursive: true, force: true }); });

  const cli = (args: string[]) => runCli([...args, '--run-dir', dir, '--module', 'farm']);

  /** A daemon whose node2 empties over the status requests that follow the drain. */
  async function daemon(after: DaemonStatus[], stuck?: DaemonStatus): Promise<PowerChange[]> {
    const changes: PowerChange[] = [];
    let current = status(128, 0);
    const handler: ControlHandler = {
      status: () => { current = after.shift() ?? stuck ?? current; return current; },
      start: async () => current,
      stop: async () => current,
      power: async (c) => { changes.push(c); return current; },
    };
    server = await startControlServer({ runDir: dir, handler, log: silentLogger() });
    return changes;
  }

  it('sends the drain, polls until node2 is empty and exits 0', async () => {
    const changes = await daemon([status(0, 128), status(0, 3), status(0, 0)]);
    const r = await cli(['drain', 'node2', '--wait', '--timeout', '10']);
    expect(r.code, r.stderr).toBe(0);
    expect(changes).toEqual([{ node: 'node2', power: 0 }]);
    expect(r.stdout).toMatch(/^node2: web power 1, 128 buckets; dns power 1, 0 buckets/);
    expect(r.stdout).toMatch(/\nnode2 is drained: it owns no bucket and hands none over \(waited \d+\.\d s\)\n$/);
    expect(r.stderr).toBe('');
  });

  it('exits 124 at --timeout with the error code and what is left on stderr', async () => {
    await daemon([], status(0, 7));
    const r = await cli(['drain', 'node2', '--wait', '--timeout', '0.3']);
    expect(r.code).toBe(124);
    expect(r.stderr).toMatch(/^farmlb: node node2 is not drained after 0\.3 s: 0 buckets owned, 7 handing over \(FARMLB_E_CLI_DRAIN_TIMEOUT\)\n {2}hint: /);
  });

  it('with --json prints only the final state, drained or not', async () => {
    await daemon([status(0, 0)]);
    const r = await cli(['drain', 'node2', '--wait', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ node: 'node2', drained: true, remaining: { totalBuckets: 0, totalHandingOver: 0 } });
  });

  it('refuses --timeout without --wait, and a timeout that is not a number of seconds (exit 1)', async () => {
    const lone = await cli(['drain', 'node2', '--timeout', '5']);
    expect(lone.code).toBe(1);
    expect(lone.stderr).toContain('FARMLB_E_CLI_BAD_OPTION');
    const bad = await cli(['drain', 'node2', '--wait', '--timeout', 'soon', '--json']);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ error: { code: 'FARMLB_E_CLI_BAD_OPTION' } });
  });
});
