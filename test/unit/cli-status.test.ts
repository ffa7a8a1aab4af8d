// `farmlb status` text (src/cli/commands/status.ts renderStatus): the per-node table gains a
// HEARTBEATS column when the status carries the engine's heartbeat counts (membership
// mode), and has none when it does not (static mode); buckets in handover, this node's
// remaining connections in them and SYN cookies show when there are any.

import { describe, expect, it } from 'vitest';
import type { PeerHeartbeats } from '../../src/api/metrics.js';
import type { DaemonStatus, NodeStatus } from '../../src/api/status.js';
import { renderStatus, SYN_COOKIE_WARNING } from '../../src/cli/commands/status.js';
import { makeOutput } from '../../src/cli/output.js';

function node(name: string, id: number, over: Partial<NodeStatus> & Partial<PeerHeartbeats> = {}): NodeStatus {
  return { name, id, self: false, inView: true, state: 'UP', buckets: { web: 128 }, share: { web: 0.5 }, power: { web: 1 }, overridden: false, ...over };
}

function status(nodes: NodeStatus[]): DaemonStatus {
  return {
    node: 'node1', module: 'farm', mode: 'membership', pid: 1, state: 'UP', stateCause: 'in the view', stateSince: Date.now(),
    admin: 'started', ready: true, view: ['node1', 'node2'], epoch: 4, leader: 'node1', groups: ['web'], nodes,
    bucketsOwned: { web: 128 }, leaseRemainingMs: 150, splitBrain: false, splitBrainPolicy: 'serve', lastViewChange: null,
    checks: { ok: true, failures: [] }, configDigest: 'abc',
  };
}

const plain = makeOutput({ json: false, stream: { isTTY: false, write: () => true } as unknown as NodeJS.WriteStream });

describe('farmlb status text', () => {
  it('shows per peer the heartbeats received and missed when the membership reports them', () => {
    const text = renderStatus(plain, status([node('node1', 0, { self: true }), node('node2', 1, { heartbeatsReceived: 980, heartbeatsMissed: 3 })]));
    expect(text).toMatch(/^NODE\s+STATE\s+VIEW\s+web BUCKETS\s+SHARE\s+POWER\s+HEARTBEATS$/m);
    expect(text).toMatch(/^node1\*\s+UP\s+yes\s+128\s+50\.0%\s+1\s+-$/m);
    expect(text).toMatch(/^node2\s+UP\s+yes\s+128\s+50\.0%\s+1\s+980 \(3 missed\)$/m);
  });

  it('says how many datagrams the heartbeat port refused, why and from where — and nothing when none was', () => {
    const base = status([node('node1', 0, { self: true }), node('node2', 1)]);
    const zero = { oversize: 0, not_farmlb: 0, bad_mac: 0, malformed: 0, wrong_source: 0 };
    const quiet = renderStatus(plain, { ...base, membershipDatagrams: { sent: 900, sendErrors: 0, dropped: zero, droppedBySource: [] } });
    expect(quiet).not.toContain('heartbeat port');
    const flooded = renderStatus(plain, { ...base, membershipDatagrams: {
      sent: 900, sendErrors: 0, dropped: { ...zero, not_farmlb: 40, bad_mac: 7 },
      droppedBySource: [{ source: '10.0.0.9', count: 40 }, { source: '10.0.0.12', count: 7 }],
    } });
    expect(flooded).toContain('heartbeat port: 47 datagrams refused since start (not_farmlb 40, bad_mac 7); busiest sources 10.0.0.9 (40), 10.0.0.12 (7)');
  });

  it('has no heartbeat column when the status carries no counts (static mode)', () => {
    const text = renderStatus(plain, status([node('node1', 0, { self: true }), node('node2', 1)]));
    expect(text).not.toContain('HEARTBEATS');
    expect(text).not.toContain('\x1b[');
  });

  it('shows the buckets a node hands over next to those it owns, and this node\'s connections still held in them', () => {
    const text = renderStatus(plain, status([
      node('node1', 0, { self: true, buckets: { web: 0 }, share: { web: 0 }, handingOver: { web: 128 },
        handover: { prevBuckets: 128, connections: 37, sampledAtMs: Date.now() } }),
      node('node2', 1, { buckets: { web: 256 }, share: { web: 1 }, handingOver: { web: 0 } }),
    ]));
    expect(text).toMatch(/^node1\*\s+UP\s+yes\s+0 \(handing over 128\)\s+0\.0%\s+1$/m);
    expect(text).toMatch(/^node2\s+UP\s+yes\s+256\s+100\.0%\s+1$/m);
    expect(text).toMatch(/^handover: node1 hands over 128 buckets and still holds 37 connections in them \(counted \d+ s ago\)$/m);
  });

  it('says nothing of handovers when none is under way', () => {
    const text = renderStatus(plain, status([
      node('node1', 0, { self: true, handingOver: { web: 0 }, handover: { prevBuckets: 0, connections: 0 }, synCookies: { mode: 1, sentRecently: false, sentTotal: 4 } }),
      node('node2', 1, { handingOver: { web: 0 } }),
    ]));
    expect(text).not.toMatch(/handing over|handover|SYN cookie/i);
  });

  it('warns when this node sent SYN cookies recently, or sends one for every handshake', () => {
    const recent = renderStatus(plain, status([node('node1', 0, { self: true, synCookies: { mode: 1, sentRecently: true, sentTotal: 9 } }), node('node2', 1)]));
    expect(recent).toContain(`WARNING: ${SYN_COOKIE_WARNING}`);
    expect(SYN_COOKIE_WARNING).toBe('SYN cookies in use: connections moved during a handover may be reset — raise the listen backlog / net.core.somaxconn');
    const always = renderStatus(plain, status([node('node1', 0, { self: true, synCookies: { mode: 2, sentRecently: false, sentTotal: 0 } }), node('node2', 1)]));
    expect(always).toMatch(/^WARNING: net\.ipv4\.tcp_syncookies=2 /m);
  });
});
