// Observability against real daemons (membership mode, bridged lab): GET /metrics parsed
// with a Prometheus text-format parser, `farmlb confinfo` agreeing with the digest the
// daemons carry, and after a kill -9 the failover seen three ways: the failover metrics,
// `farmlb events` (cause and durations) and `farmlb buckets --diff` (exactly the lost
// node's buckets moved, to the survivors).

import { createRequire } from 'node:module';
import { afterAll, beforeAll, expect, it, type TestContext } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { FarmLab } from './helpers/farm-lab.js';
import { uniqueSuffix, waitFor } from './helpers/netns.js';
import type { PeerHeartbeats } from '../../src/api/metrics.js';
import type { DaemonStatus } from '../../src/api/status.js';
import type { FarmEvent, ViewEvent } from '../../src/api/events-log.js';

interface Family { name: string; type: string; metrics: { labels?: Record<string, string>; value?: string }[] }
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];

const NODES = [
  { name: 'node1', power: 1 },
  { name: 'node2', power: 1 },
  { name: 'node3', power: 2 },
];
const QUOTAS: Record<string, number> = { node1: 64, node2: 64, node3: 128 };
const GROUP = 'web';

function value(families: Family[], name: string, labels: Record<string, string> = {}): number | undefined {
  const s = families.find((f) => f.name === name)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return s?.value === undefined ? undefined : Number(s.value);
}

function agreed(all: DaemonStatus[], expected: Record<string, number>): boolean {
  if (new Set(all.map((s) => s.epoch)).size !== 1 || all.some((s) => s.state !== 'UP' || !s.ready)) return false;
  return all.every((s) => (s.bucketsOwned[GROUP] ?? 0) === expected[s.node] && s.view.length === Object.keys(expected).length);
}

describePrivileged('lab: metrics, events, buckets --diff and confinfo on running daemons', () => {
  let lab: FarmLab | undefined;
  const logsOnFailure = (ctx: TestContext) => ctx.onTestFailed(() => { const l = lab?.logs(); if (l) console.error(l); });
  const statuses = async (nodes: string[]) => Promise.all(nodes.map((n) => lab!.status(n))).catch(() => undefined);
  const scrape = async (node: string) => {
    const r = await lab!.health(node, '/metrics');
    expect(r.status).toBe(200);
    return parsePrometheus(r.body);
  };

  beforeAll(async () => {
    lab = await FarmLab.create({
      name: `mtr${uniqueSuffix()}`, mode: 'vmac_invisible', xdpMode: 'generic', nodes: NODES, clientAddrs4: 0, clientAddrs6: 0, membership: true,
    });
    await waitFor(async () => {
      const s = await statuses(lab!.nodeNames());
      return s && agreed(s, QUOTAS) ? s : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250, what: 'the three nodes to agree on one table' });
  }, 120_000);

  afterAll(async () => {
    if (lab) expect(await lab.cleanup()).toEqual([]);
  }, 60_000);

  it('serves /metrics that a Prometheus parser reads: state UP, owned buckets, epoch, lease, verdict counters', async (ctx) => {
    logsOnFailure(ctx);
    for (const node of lab!.nodeNames()) {
      const s = await lab!.status(node);
      const m = await scrape(node);
      expect(value(m, 'farmlb_state', { state: 'UP' }), node).toBe(1);
      expect(value(m, 'farmlb_state', { state: 'WAIT' }), node).toBe(0);
      expect(value(m, 'farmlb_owned_buckets', { group: GROUP }), node).toBe(QUOTAS[node]);
      expect(value(m, 'farmlb_view_epoch'), node).toBe(s.epoch);
      expect(value(m, 'farmlb_lease_remaining_seconds'), node).toBeGreaterThan(0);
      expect(value(m, 'farmlb_info', { node, config_digest: s.configDigest }), node).toBe(1);
      // The verdict counters come from the pinned per-CPU map: every reason is there.
      expect(m.find((f) => f.name === 'farmlb_verdict_packets_total')?.metrics.length, node).toBeGreaterThanOrEqual(13);
      const peer = node === 'node1' ? 'node2' : 'node1';
      expect(value(m, 'farmlb_peer_up', { peer }), node).toBe(1);
      // Heartbeat counts reach the metrics through the daemon status (NodeStatus); where the
      // status carries them, the counters are there and count the peer's heartbeats.
      const heard = (s.nodes.find((n) => n.name === peer) as PeerHeartbeats | undefined)?.heartbeatsReceived;
      if (heard !== undefined) {
        expect(value(m, 'farmlb_heartbeats_received_total', { peer }), node).toBeGreaterThanOrEqual(heard);
        expect(value(m, 'farmlb_heartbeats_missed_total', { peer }), node).toBeGreaterThanOrEqual(0);
      }
      // The heartbeat path is metered in the daemon: a farm that has run for seconds spent some
      // CPU sending and receiving, and the status says the same.
      for (const part of ['send', 'receive', 'tick']) expect(value(m, 'farmlb_membership_cpu_seconds_total', { part }), `${node} ${part}`).toBeGreaterThan(0);
      expect(s.membershipCpu?.receiveSeconds, node).toBeGreaterThan(0);
    }
  });

  it('prints with farmlb confinfo the digest every daemon reports', async (ctx) => {
    logsOnFailure(ctx);
    const { stdout } = await lab!.farmlb(['confinfo', ...lab!.configArgs(), '--json']);
    const digest = (JSON.parse(stdout) as { digest: string }).digest;
    for (const node of lab!.nodeNames()) expect((await lab!.status(node)).configDigest).toBe(digest);
  });

  it('after kill -9 of a node: failover metrics, the view event with its durations, and exactly its buckets in buckets --diff', async (ctx) => {
    logsOnFailure(ctx);
    await lab!.killNode('node3', 'SIGKILL');
    await waitFor(async () => {
      const s = await statuses(['node1', 'node2']);
      return s && agreed(s, { node1: 128, node2: 128 }) ? s : undefined;
    }, { timeoutMs: 20_000, intervalMs: 100, what: 'node1 and node2 to own every bucket' });

    const m = await scrape('node1');
    expect(value(m, 'farmlb_failovers_total')).toBeGreaterThanOrEqual(1);
    expect(value(m, 'farmlb_last_failover_duration_seconds')).toBeGreaterThan(0);
    expect(value(m, 'farmlb_peer_up', { peer: 'node3' })).toBe(0);
    expect(value(m, 'farmlb_peer_losses_total', { peer: 'node3' })).toBeGreaterThanOrEqual(1);
    expect(value(m, 'farmlb_node_buckets', { group: GROUP, node: 'node3' })).toBe(0);

    const events = JSON.parse((await lab!.farmlb(['events', '--json'], 'node1')).stdout) as FarmEvent[];
    const lost = events.filter((e): e is ViewEvent => e.event === 'view' && /lost node3/.test(e.cause)).at(-1);
    expect(lost, JSON.stringify(events.map((e) => [e.event, 'cause' in e ? e.cause : '']))).toBeDefined();
    expect(lost!.detectionMs).toBeGreaterThan(0);
    expect(lost!.installMs).toBeGreaterThan(0);
    expect(events.some((e) => e.event === 'state' && e.state === 'UP')).toBe(true);
    expect((await lab!.farmlb(['events'], 'node1')).stdout).toMatch(/view\s+epoch \d+ \[node1,node2\]\s+lost node3: detection \d+ ms, install [\d.]+ ms, 128 buckets moved/);

    const diff = JSON.parse((await lab!.farmlb(['buckets', '--diff', '--json'], 'node1')).stdout) as
      { viewChange: { epoch: number }; groups: { name: string; moved: { bucket: number; from: string | null; to: string | null }[] }[] };
    const moved = diff.groups.find((g) => g.name === GROUP)!.moved;
    expect(moved).toHaveLength(QUOTAS.node3!);
    // The takeover may come in two tables (docs/membership.md, the fence: node3's buckets are
    // released first, then given out once every live peer reported a table without it); the
    // last change then moves them from nobody. Either way: node3's buckets, to the survivors.
    expect(moved.every((b) => (b.from === 'node3' || b.from === null) && (b.to === 'node1' || b.to === 'node2'))).toBe(true);
    // Colour off when stdout is not a terminal.
    const text = (await lab!.farmlb(['buckets', '--diff'], 'node1')).stdout;
    expect(text).toContain(`${QUOTAS.node3} buckets moved`);
    expect(text).not.toContain('\x1b[');
  });
});
