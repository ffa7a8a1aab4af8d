// BuiltinMembership with a slow data plane (docs/membership.md, "Slow installs during a
// return"): while a table is being installed, heartbeats keep leaving at the pulse, each
// reporting the table the data plane has, never one it lacks; once installed, a heartbeat
// reports the new table; seqs only grow (peers drop a lower one as replayed). And a renewal
// on a table of the data plane's lineage goes to the kernel at once, ahead of the install
// (lease-gate.ts), or through its decision when the daemon does not write it.

import { describe, expect, it } from 'vitest';
import { BuiltinMembership, createMemoryNetwork, DEFAULT_TIMING, MembershipEngine, type EngineOutput, type Heartbeat } from '../../src/membership/index.js';

const key = Buffer.alloc(32, 7);
const nowNs = () => process.hrtime.bigint();
const nodes = ['n1', 'n2'];
const groups = [{ name: 'g', powers: new Map([['n1', 1], ['n2', 1]]) }];

function member(net: ReturnType<typeof createMemoryNetwork>, self: string, installMs: number) {
  const engine = new MembershipEngine({ self, nodes, groups, configDigest: 'cfg', timing: DEFAULT_TIMING, splitBrain: 'serve', incarnation: 1n, startNs: nowNs() });
  const transport = net.transport(self, key);
  let appliedEpoch = 0;
  let installing = false;
  const sent: { hb: Heartbeat; appliedEpoch: number; installing: boolean }[] = [];
  const send = transport.send.bind(transport);
  transport.send = (hb) => { sent.push({ hb, appliedEpoch, installing }); send(hb); };
  const m = new BuiltinMembership({ engine, transport, pulseMs: DEFAULT_TIMING.pulseMs, nowNs });
  m.start(async (out: EngineOutput) => {
    if (!out.table) return;
    installing = true;
    await new Promise((r) => setTimeout(r, installMs));
    appliedEpoch = out.table.epoch;
    installing = false;
  });
  return { m, engine, sent, applied: () => appliedEpoch };
}

describe('BuiltinMembership: heartbeats during a slow install', () => {
  it('leave at the pulse with the installed table, then report the new one; seqs only grow', async () => {
    const net = createMemoryNetwork(1);
    // n1 leads (smallest name): its first table takes 250 ms (five pulses) to install.
    const n1 = member(net, 'n1', 250);
    const n2 = member(net, 'n2', 5);
    try {
      for (let i = 0; i < 300 && n1.applied() === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(n1.applied()).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 120));
      // Never a table the data plane lacks.
      for (const s of n1.sent) expect(s.hb.epoch).toBeLessThanOrEqual(s.appliedEpoch);
      // Heartbeats left during the install (at the pulse), with the table installed before it.
      const during = n1.sent.filter((s) => s.installing);
      expect(during.length).toBeGreaterThanOrEqual(2);
      // Then the new table, at once.
      expect(n1.sent.some((s) => s.hb.epoch === n1.applied())).toBe(true);
      const seqs = n1.sent.map((s) => s.hb.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(new Set(seqs).size).toBe(seqs.length);
    } finally {
      await n1.m.stop();
      await n2.m.stop();
    }
  });
});

describe('BuiltinMembership: lease renewals during a slow install', () => {
  /** n1 with a data plane whose installs take `slowMs` once `slow` is set, and a renew callback. */
  function renewing(net: ReturnType<typeof createMemoryNetwork>, self: string, write: () => boolean) {
    const engine = new MembershipEngine({ self, nodes, groups, configDigest: 'cfg', timing: DEFAULT_TIMING, splitBrain: 'serve', incarnation: 1n, startNs: nowNs() });
    const state = { slow: false, installing: false, appliedEpoch: 0, early: [] as { deadline: bigint; installing: boolean }[], applied: [] as bigint[] };
    const m = new BuiltinMembership({ engine, transport: net.transport(self, key), pulseMs: DEFAULT_TIMING.pulseMs, nowNs });
    m.start(async (out: EngineOutput) => {
      if (out.table) {
        state.installing = true;
        await new Promise((r) => setTimeout(r, state.slow ? 250 : 5));
        state.appliedEpoch = out.table.epoch;
        state.installing = false;
      }
      if (out.leaseDeadlineNs !== undefined) state.applied.push(out.leaseDeadlineNs);
    }, {
      renew: (deadline) => {
        if (!write()) return false;
        state.early.push({ deadline, installing: state.installing });
        return true;
      },
      revoke: () => { throw new Error('no change of leader here'); },
    });
    return { m, state };
  }

  async function slowChange(write: () => boolean) {
    const net = createMemoryNetwork(1);
    const n1 = renewing(net, 'n1', write);
    const n2 = member(net, 'n2', 5);
    try {
      for (let i = 0; i < 300 && !(n1.state.appliedEpoch > 0 && n2.applied() === n1.state.appliedEpoch); i++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 100));
      const before = n1.state.appliedEpoch;
      expect(before).toBeGreaterThan(0);
      // A power change: the leader's next table (same lineage, giving it more buckets) takes
      // 250 ms to install.
      n1.state.slow = true;
      const early = n1.state.early.length;
      const applied = n1.state.applied.length;
      n1.m.setPower('n1', 3);
      for (let i = 0; i < 300 && n1.state.appliedEpoch === before; i++) await new Promise((r) => setTimeout(r, 10));
      expect(n1.state.appliedEpoch).toBeGreaterThan(before);
      // The decisions queued behind the install apply right after it.
      await new Promise((r) => setTimeout(r, 30));
      return { early: n1.state.early.slice(early), applied: n1.state.applied.slice(applied) };
    } finally {
      await n1.m.stop();
      await n2.m.stop();
    }
  }

  it('are written at once while the table of the same leader installs, and not again through their decisions', async () => {
    const { early, applied } = await slowChange(() => true);
    expect(early.filter((e) => e.installing).length).toBeGreaterThan(0);
    // Nothing the callback wrote comes back through a decision.
    const written = new Set(early.map((e) => e.deadline));
    expect(applied.filter((d) => written.has(d))).toEqual([]);
  });

  it('go through their decisions, in order after the install, when the daemon does not write them', async () => {
    const { early, applied } = await slowChange(() => false);
    expect(early).toEqual([]);
    expect(applied.filter((d) => d > 0n).length).toBeGreaterThan(0);
  });
});

