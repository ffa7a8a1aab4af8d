// `farmlb status` text (src/cli/commands/status.ts renderStatus): the per-node table gains a
// HEARTBEATS column when the status carries the engine's heartbeat counts (membership
// mode), and has none when it does not (static mode).

import { describe, expect, it } from 'vitest';
import type { PeerHeartbeats } from '../../src/api/metrics.js';
import type { DaemonStatus, NodeStatus } from '../../src/api/status.js';
import { renderStatus } from '../../src/cli/commands/status.js';
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

  it('has no heartbeat column when the status carries no counts (static mode)', () => {
    const text = renderStatus(plain, status([node('node1', 0, { self: true }), node('node2', 1)]));
    expect(text).not.toContain('HEARTBEATS');
    expect(text).not.toContain('\x1b[');
  });
});
