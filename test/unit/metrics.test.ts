// GET /metrics (src/api/metrics.ts): scraped from a fake daemon and read back with an
// independent Prometheus text-format parser, so the exposition is checked as Prometheus
// would read it, not as prom-client writes it.

import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { metricsRoute, startHealthServer, type HealthServer } from '../../src/api/health.js';
import { createMetrics, ViewHistory, type DataplaneCounters, type MetricsSource, type PeerHeartbeats } from '../../src/api/metrics.js';
import type { DaemonStatus, NodeStatus } from '../../src/api/status.js';
import { NBUCKETS, REASONS, type BucketCounter, type DataplaneTables, type Reason, type ReasonCounter } from '../../src/dataplane/types.js';
import { silentLogger } from '../../src/log.js';

interface Sample { labels?: Record<string, string>; value?: string }
interface Family { name: string; help: string; type: string; metrics: Sample[] }
// parse-prometheus-text-format ships no types; this is the shape its README documents.
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];

// PeerHeartbeats: the engine's heartbeat counts, carried in the status as optional fields.
function node(name: string, id: number, over: Partial<NodeStatus> & Partial<PeerHeartbeats> = {}): NodeStatus {
  return {
    name, id, self: false, inView: true, state: 'UP', buckets: { web: 0 }, share: { web: 0 }, power: { web: 1 }, overridden: false, ...over,
  };
}

function status(over: Partial<DaemonStatus> = {}): DaemonStatus {
  return {
    node: 'node1', module: 'farm', mode: 'membership', pid: 1, state: 'UP', stateCause: 'in the view', stateSince: 0,
    admin: 'started', ready: true, view: ['node1', 'node2'], epoch: 7, leader: 'node1', groups: ['web'],
    nodes: [
      node('node1', 0, { self: true, buckets: { web: 128 }, handingOver: { web: 12 }, handover: { prevBuckets: 12, connections: 37, sampledAtMs: 1_000 },
        synCookies: { mode: 1, sentRecently: true, sentTotal: 5 } }),
      node('node2', 1, { buckets: { web: 128 }, lastHeardMs: 40, heartbeatsReceived: 980, heartbeatsMissed: 20 }),
      node('node3', 2, { inView: false, state: 'lost', lastHeardMs: 5200, heartbeatsReceived: 50, heartbeatsMissed: 0 }),
    ],
    bucketsOwned: { web: 128 }, leaseRemainingMs: 180, splitBrain: true, splitBrainPolicy: 'serve',
    lastViewChange: null, checks: { ok: true, failures: [] }, configDigest: 'd1g3st', ...over,
  };
}

/** Buckets 0-127 owned by node1 (id 0), 128-255 by node2 (id 1); bucket b saw b packets. */
function fakeSource(over: Partial<MetricsSource> = {}): MetricsSource {
  const owners = Array.from({ length: NBUCKETS }, (_, b) => (b < 128 ? 0 : 1));
  const tables = { buckets: [owners], selfNode: 0 } as unknown as DataplaneTables;
  const reasons = Object.fromEntries(REASONS.map((r, i) => [r, { packets: BigInt(i * 10), bytes: BigInt(i * 1000) }])) as Record<Reason, ReasonCounter>;
  const buckets: BucketCounter[][] = [Array.from({ length: NBUCKETS }, (_, b) => (b < 128 ? { accepted: BigInt(b), dropped: 0n } : { accepted: 0n, dropped: BigInt(b) }))];
  const history = new ViewHistory();
  history.record({ at: 1_000, epoch: 6, view: ['node1', 'node2', 'node3'], cause: 'joined node3' }, ['node1', 'node2']);
  history.record({ at: 2_000, epoch: 7, view: ['node1', 'node2'], cause: 'lost node3', detectionMs: 250, installMs: 1.5, moved: 85 }, ['node1', 'node2', 'node3']);
  return {
    status: () => status(),
    dataplaneCounters: async (): Promise<DataplaneCounters> => ({ reasons, buckets, requestersRefused: 17n }),
    tables: () => tables,
    interfaces: () => ['eth0'],
    arpreroute: () => ({ rounds: 4, framesSent: 12, sendErrors: 0 }),
    history: () => history,
    ...over,
  };
}

async function scrape(source: MetricsSource): Promise<Map<string, Family>> {
  const text = await createMetrics(source).render();
  return new Map(parsePrometheus(text).map((f) => [f.name, f]));
}

function value(f: Family | undefined, labels: Record<string, string> = {}): number | undefined {
  const s = f?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return s?.value === undefined ? undefined : Number(s.value);
}

describe('Prometheus metrics', () => {
  it('exposes farmlb_* families (and prom-client\'s process_*/nodejs_* ones), each with help and a counter or gauge type', async () => {
    const all = await scrape(fakeSource());
    const families = new Map([...all].filter(([name]) => name.startsWith('farmlb_')));
    expect(families.size).toBeGreaterThan(15);
    for (const name of all.keys()) expect(name).toMatch(/^(farmlb|process|nodejs)_[a-z0-9_]+$/);
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_eventloop_lag_seconds']) expect(all.has(name), name).toBe(true);
    for (const f of families.values()) {
      expect(f.name).toMatch(/^farmlb_[a-z_]+$/);
      expect(f.help.length).toBeGreaterThan(10);
      expect(['COUNTER', 'GAUGE']).toContain(f.type);
      if (f.type === 'COUNTER') expect(f.name).toMatch(/_total$/);
    }
  });

  it('reports the state as one gauge per state, 1 for the current one', async () => {
    const f = await scrape(fakeSource({ status: () => status({ state: 'WAIT', ready: false }) }));
    expect(value(f.get('farmlb_state'), { state: 'WAIT' })).toBe(1);
    expect(value(f.get('farmlb_state'), { state: 'UP' })).toBe(0);
    expect(value(f.get('farmlb_state'), { state: 'STOP' })).toBe(0);
    expect(value(f.get('farmlb_ready'))).toBe(0);
  });

  it('reports epoch, lease remaining in seconds, split brain and owned buckets per group and per node', async () => {
    const f = await scrape(fakeSource());
    expect(value(f.get('farmlb_view_epoch'))).toBe(7);
    expect(value(f.get('farmlb_lease_remaining_seconds'))).toBeCloseTo(0.18);
    expect(value(f.get('farmlb_split_brain'))).toBe(1);
    expect(value(f.get('farmlb_owned_buckets'), { group: 'web' })).toBe(128);
    expect(value(f.get('farmlb_node_buckets'), { group: 'web', node: 'node2' })).toBe(128);
    expect(value(f.get('farmlb_node_buckets'), { group: 'web', node: 'node3' })).toBe(0);
    expect(value(f.get('farmlb_info'), { node: 'node1', module: 'farm', mode: 'membership', config_digest: 'd1g3st' })).toBe(1);
  });

  it('reads the verdict counters per reason at scrape time, labelled with the interface and verdict', async () => {
    const f = await scrape(fakeSource());
    const i = REASONS.indexOf('drop_not_owned');
    expect(value(f.get('farmlb_verdict_packets_total'), { reason: 'drop_not_owned', verdict: 'drop', interface: 'eth0' })).toBe(i * 10);
    expect(value(f.get('farmlb_verdict_bytes_total'), { reason: 'drop_not_owned' })).toBe(i * 1000);
    expect(f.get('farmlb_verdict_packets_total')!.metrics).toHaveLength(REASONS.length);
  });

  it('counts the new ARP / NS requesters the program refused to record (its budget per window spent)', async () => {
    const f = await scrape(fakeSource());
    expect(value(f.get('farmlb_arpreroute_requesters_refused_total'))).toBe(17);
  });

  it('counts packets per bucket and sums them per owner node of the table in force', async () => {
    const f = await scrape(fakeSource());
    expect(value(f.get('farmlb_bucket_packets_total'), { group: 'web', bucket: '5', result: 'accepted' })).toBe(5);
    expect(value(f.get('farmlb_bucket_packets_total'), { group: 'web', bucket: '200', result: 'not_accepted' })).toBe(200);
    const sum = (from: number, to: number) => (to - from + 1) * (from + to) / 2;
    expect(value(f.get('farmlb_owner_packets'), { group: 'web', owner: 'node1', result: 'accepted' })).toBe(sum(0, 127));
    expect(value(f.get('farmlb_owner_packets'), { group: 'web', owner: 'node2', result: 'not_accepted' })).toBe(sum(128, 255));
    // A gauge: it goes down when buckets move away, which a counter must not.
    expect(f.get('farmlb_owner_packets')?.type).toBe('GAUGE');
  });

  it('reads the kernel counters anew at every scrape', async () => {
    let packets = 1n;
    const src = fakeSource();
    const base = await src.dataplaneCounters();
    const metrics = createMetrics({ ...src, dataplaneCounters: async () => ({ ...base!, reasons: { ...base!.reasons, pass_owned: { packets, bytes: 0n } } }) });
    const read = async () => value(new Map(parsePrometheus(await metrics.render()).map((x) => [x.name, x])).get('farmlb_verdict_packets_total'), { reason: 'pass_owned' });
    expect(await read()).toBe(1);
    packets = 42n;
    expect(await read()).toBe(42);
  });

  it('still answers when the maps cannot be read, without the kernel counters', async () => {
    const f = await scrape(fakeSource({ dataplaneCounters: async () => { throw new Error('no maps'); } }));
    expect(f.get('farmlb_verdict_packets_total')?.metrics ?? []).toEqual([]);
    expect(value(f.get('farmlb_view_epoch'))).toBe(7);
  });

  it('counts failovers, keeps the last one\'s detection and install durations, and counts losses per peer', async () => {
    const f = await scrape(fakeSource());
    expect(value(f.get('farmlb_view_changes_total'))).toBe(2);
    expect(value(f.get('farmlb_failovers_total'))).toBe(1);
    expect(value(f.get('farmlb_last_failover_detection_seconds'))).toBeCloseTo(0.25);
    expect(value(f.get('farmlb_last_failover_install_seconds'))).toBeCloseTo(0.0015);
    expect(value(f.get('farmlb_last_failover_duration_seconds'))).toBeCloseTo(0.2515);
    expect(value(f.get('farmlb_peer_losses_total'), { peer: 'node3' })).toBe(1);
    expect(value(f.get('farmlb_peer_losses_total'), { peer: 'node2' })).toBe(0);
  });

  it('reports per peer whether it is heard and since when; the node itself is not a peer', async () => {
    const f = await scrape(fakeSource());
    expect(value(f.get('farmlb_peer_up'), { peer: 'node2' })).toBe(1);
    expect(value(f.get('farmlb_peer_up'), { peer: 'node3' })).toBe(0);
    expect(value(f.get('farmlb_peer_last_heard_seconds'), { peer: 'node3' })).toBeCloseTo(5.2);
    expect(f.get('farmlb_peer_up')!.metrics.some((m) => m.labels?.peer === 'node1')).toBe(false);
  });

  it('counts per peer the heartbeats received and missed, as counters rate() can use', async () => {
    const f = await scrape(fakeSource());
    expect(f.get('farmlb_heartbeats_received_total')?.type).toBe('COUNTER');
    expect(value(f.get('farmlb_heartbeats_received_total'), { peer: 'node2' })).toBe(980);
    expect(value(f.get('farmlb_heartbeats_missed_total'), { peer: 'node2' })).toBe(20);
    expect(value(f.get('farmlb_heartbeats_missed_total'), { peer: 'node3' })).toBe(0);
    expect(f.get('farmlb_heartbeats_received_total')!.metrics.some((m) => m.labels?.peer === 'node1')).toBe(false);
  });

  it('reports the CPU seconds of the heartbeat path per part, and nothing in static mode', async () => {
    const cpu = { sendSeconds: 1.25, receiveSeconds: 2.5, tickSeconds: 0.5 };
    const f = await scrape(fakeSource({ status: () => status({ membershipCpu: cpu }) }));
    expect(f.get('farmlb_membership_cpu_seconds_total')?.type).toBe('COUNTER');
    expect(value(f.get('farmlb_membership_cpu_seconds_total'), { part: 'send' })).toBe(1.25);
    expect(value(f.get('farmlb_membership_cpu_seconds_total'), { part: 'receive' })).toBe(2.5);
    expect(value(f.get('farmlb_membership_cpu_seconds_total'), { part: 'tick' })).toBe(0.5);
    const none = await scrape(fakeSource({ status: () => status({ mode: 'static' }) }));
    expect(none.get('farmlb_membership_cpu_seconds_total')?.metrics ?? []).toEqual([]);
  });

  it('counts the heartbeat port\'s datagrams: sent, failed sends, refused per reason — and nothing without them (static mode, Corosync)', async () => {
    const membershipDatagrams = {
      sent: 12_000, sendErrors: 3,
      dropped: { oversize: 1, not_farmlb: 40, bad_mac: 7, malformed: 0, wrong_source: 2 },
      droppedBySource: [{ source: '10.0.0.9', count: 47 }],
    };
    const f = await scrape(fakeSource({ status: () => status({ membershipDatagrams }) }));
    expect(f.get('farmlb_membership_datagrams_sent_total')?.type).toBe('COUNTER');
    expect(value(f.get('farmlb_membership_datagrams_sent_total'), {})).toBe(12_000);
    expect(value(f.get('farmlb_membership_send_errors_total'), {})).toBe(3);
    expect(f.get('farmlb_membership_dropped_total')?.type).toBe('COUNTER');
    for (const [reason, n] of Object.entries(membershipDatagrams.dropped)) expect(value(f.get('farmlb_membership_dropped_total'), { reason })).toBe(n);
    // Sources stay in the status: an address per series would let a flood of spoofed sources grow the scrape.
    expect(f.get('farmlb_membership_dropped_total')!.metrics.every((m) => Object.keys(m.labels ?? {}).join() === 'reason')).toBe(true);
    const none = await scrape(fakeSource({ status: () => status({ mode: 'static' }) }));
    for (const name of ['farmlb_membership_datagrams_sent_total', 'farmlb_membership_send_errors_total', 'farmlb_membership_dropped_total']) {
      expect(none.get(name)?.metrics ?? []).toEqual([]);
    }
  });

  it('leaves the heartbeat series out when the status does not carry the counts (static mode)', async () => {
    const f = await scrape(fakeSource({ status: () => status({ mode: 'static', nodes: [node('node1', 0, { self: true }), node('node2', 1)] }) }));
    expect(f.get('farmlb_heartbeats_received_total')?.metrics ?? []).toEqual([]);
    expect(f.get('farmlb_heartbeats_missed_total')?.metrics ?? []).toEqual([]);
  });

  it('reports the buckets this node hands over per group, the connections it still holds in them and whether SYN cookies were sent', async () => {
    const f = await scrape(fakeSource());
    expect(value(f.get('farmlb_handover_buckets'), { group: 'web' })).toBe(12);
    expect(value(f.get('farmlb_handover_connections'))).toBe(37);
    expect(value(f.get('farmlb_syncookies_sent_recently'))).toBe(1);
    expect(f.get('farmlb_syncookies_sent_total')?.type).toBe('COUNTER');
    expect(value(f.get('farmlb_syncookies_sent_total'))).toBe(5);
  });

  it('reports 0 handover buckets and connections after a handover, and leaves the series out when the status lacks them', async () => {
    const done = status({ nodes: [node('node1', 0, { self: true, buckets: { web: 256 }, handingOver: { web: 0 }, handover: { prevBuckets: 0, connections: 0 },
      synCookies: { mode: 1, sentRecently: false, sentTotal: 5 } })] });
    const f = await scrape(fakeSource({ status: () => done }));
    expect(value(f.get('farmlb_handover_buckets'), { group: 'web' })).toBe(0);
    expect(value(f.get('farmlb_handover_connections'))).toBe(0);
    expect(value(f.get('farmlb_syncookies_sent_recently'))).toBe(0);
    const old = await scrape(fakeSource({ status: () => status({ nodes: [node('node1', 0, { self: true })] }) }));
    for (const name of ['farmlb_handover_buckets', 'farmlb_handover_connections', 'farmlb_syncookies_sent_recently', 'farmlb_syncookies_sent_total']) {
      expect(old.get(name)?.metrics ?? [], name).toEqual([]);
    }
  });

  it('counts the handover verdicts of the data path through the per-reason counter', async () => {
    const f = await scrape(fakeSource());
    for (const reason of ['pass_handover_prev', 'pass_handover_new', 'drop_handover', 'tx_forward_prev'] as const) {
      expect(value(f.get('farmlb_verdict_packets_total'), { reason, verdict: reason.split('_')[0]! }), reason).toBe(REASONS.indexOf(reason) * 10);
    }
  });

  it('counts the arpreroute frames sent', async () => {
    const f = await scrape(fakeSource());
    expect(value(f.get('farmlb_arpreroute_frames_sent_total'))).toBe(12);
  });

  it('leaves the last-failover gauges out until a failover happened, rather than reporting 0', async () => {
    const f = await scrape(fakeSource({ history: () => new ViewHistory() }));
    for (const name of ['farmlb_last_failover_duration_seconds', 'farmlb_last_failover_detection_seconds', 'farmlb_last_failover_timestamp_seconds']) {
      expect(f.get(name)?.metrics ?? [], name).toEqual([]);
    }
    expect(value(f.get('farmlb_failovers_total'))).toBe(0);
  });

  it('a view change that only adds nodes, or carries no detection time, is not a failover', () => {
    const h = new ViewHistory();
    h.record({ at: 1, epoch: 1, view: ['a', 'b'], cause: 'joined b' }, ['a']);
    h.record({ at: 2, epoch: 2, view: ['a'], cause: 'rebalance' }, ['a', 'b']);
    expect(h.failovers).toBe(0);
    expect(h.viewChanges).toBe(2);
    expect(h.peerLosses.get('b')).toBe(1);
  });
});

describe('GET /metrics on the health server', () => {
  let server: HealthServer | undefined;
  afterEach(async () => { await server?.close(); server = undefined; });

  it('routes only /metrics, GET and HEAD, and only when metrics are on', async () => {
    const metrics = createMetrics(fakeSource());
    expect(await metricsRoute('GET', '/health', metrics)).toBeUndefined();
    expect(await metricsRoute('GET', '/metrics', undefined)).toBeUndefined();
    expect(await metricsRoute('POST', '/metrics', metrics)).toMatchObject({ status: 405 });
    const r = await metricsRoute('GET', '/metrics?x', metrics);
    expect(r?.status).toBe(200);
    expect(r?.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('serves the exposition over HTTP next to /health', async () => {
    server = await startHealthServer({ addrs: ['127.0.0.1'], port: 0, module: 'farm', status: () => status(), log: silentLogger(), metrics: createMetrics(fakeSource()) });
    const res = await fetch(`http://${server.bound[0]}/metrics`);
    expect(res.status).toBe(200);
    const families = parsePrometheus(await res.text());
    expect(families.find((f) => f.name === 'farmlb_view_epoch')?.metrics[0]?.value).toBe('7');
    expect((await fetch(`http://${server.bound[0]}/health`)).status).toBe(200);
  });
});

describe('build info and reloads', () => {
  it('says the farmlb and Node versions, and counts reloads applied and refused', async () => {
    const metrics = createMetrics(fakeSource(), { version: '9.8.7', node: 'v24.0.0' });
    const read = async () => new Map(parsePrometheus(await metrics.render()).map((f) => [f.name, f]));
    let f = await read();
    expect(value(f.get('farmlb_build_info'), { version: '9.8.7', nodejs_version: 'v24.0.0' })).toBe(1);
    expect(value(f.get('farmlb_config_reloads_total'), { result: 'refused' })).toBe(0);
    expect(value(f.get('farmlb_config_last_reload_successful'))).toBe(1);
    expect(f.get('farmlb_config_last_reload_timestamp_seconds')?.metrics ?? []).toEqual([]);
    metrics.reloaded(true, 1_000_000);
    metrics.reloaded(false, 2_000_000);
    f = await read();
    expect(value(f.get('farmlb_config_reloads_total'), { result: 'applied' })).toBe(1);
    expect(value(f.get('farmlb_config_reloads_total'), { result: 'refused' })).toBe(1);
    expect(value(f.get('farmlb_config_last_reload_successful'))).toBe(0);
    expect(value(f.get('farmlb_config_last_reload_timestamp_seconds'))).toBe(2000);
  });
});

describe('Grafana dashboard (docs/grafana-farmlb.json)', () => {
  it('has datasource, module and instance variables that every query uses, and declares the Grafana version of its schema', async () => {
    const { readFile } = await import('node:fs/promises');
    const dash = JSON.parse(await readFile(new URL('../../docs/grafana-farmlb.json', import.meta.url), 'utf8')) as {
      schemaVersion: number; __requires: { id: string; version: string }[];
      templating: { list: { name: string; type: string }[] };
      panels: { title: string; datasource: { uid: string }; targets: { expr: string; datasource: { uid: string } }[] }[];
    };
    expect(dash.templating.list.map((v) => `${v.name}:${v.type}`)).toEqual(['datasource:datasource', 'module:query', 'instance:query']);
    for (const p of dash.panels) {
      expect(p.datasource.uid, p.title).toBe('${datasource}');
      for (const t of p.targets) {
        expect(t.datasource.uid, p.title).toBe('${datasource}');
        // Every selector of a farmlb metric is narrowed to the chosen instances.
        for (const sel of t.expr.match(/farmlb_[a-z_]+(\{[^}]*\})?/g) ?? []) expect(sel, `${p.title}: ${sel}`).toContain('instance=~"$instance"');
      }
    }
    // Dashboard JSON schema 39 is what Grafana 10.4 writes (and reads); older Grafana cannot import it.
    const minGrafana: Record<number, string> = { 36: '9.0.0', 37: '9.4.0', 38: '10.0.0', 39: '10.4.0' };
    expect(dash.__requires.find((r) => r.id === 'grafana')?.version).toBe(minGrafana[dash.schemaVersion]);
  });

  it('is importable JSON whose panels query only metrics farmlb exposes, with the five required views', async () => {
    const { readFile } = await import('node:fs/promises');
    const dash = JSON.parse(await readFile(new URL('../../docs/grafana-farmlb.json', import.meta.url), 'utf8')) as
      { uid: string; panels: { title: string; targets: { expr: string }[] }[] };
    const exposed = new Set((await scrape(fakeSource())).keys());
    for (const p of dash.panels) for (const t of p.targets) {
      for (const name of t.expr.match(/farmlb_[a-z_]+/g) ?? []) expect(exposed, `${p.title}: ${name}`).toContain(name);
    }
    const titles = dash.panels.map((p) => p.title.toLowerCase()).join('|');
    for (const want of ['state', 'owned buckets', 'verdict', 'failover duration', 'lease']) expect(titles).toContain(want);
  });
});

describe('metrics documentation (docs/metrics.md)', () => {
  it('documents every exposed metric and no other', async () => {
    const { readFile } = await import('node:fs/promises');
    const doc = await readFile(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
    const documented = new Set([...doc.matchAll(/^\| `(farmlb_[a-z_]+)` \|/gm)].map((m) => m[1]!));
    expect([...documented].sort()).toEqual([...(await scrape(fakeSource())).keys()].filter((n) => n.startsWith('farmlb_')).sort());
  });
});
