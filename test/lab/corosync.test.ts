// The Corosync membership backend on the bridged lab (docs/membership.md, "Corosync
// backend"): three daemons with <farmlb membership="corosync">, one corosync per node
// namespace (helpers/corosync-lab.ts, configured by `farmlb corosync-conf`). A sampler reads
// every node's pinned table and lease every 20 ms: no bucket is ever served by two nodes.
// The failure matrix common to both backends runs in test/lab/failover.test.ts; here what is
// Corosync's own: the status it adds, kill -9 of corosync itself on a node (its daemon stops
// serving at once, the survivors never pause and take its buckets once the ring drops it),
// corosync restarted, and the two-node farm with and without a qnetd witness. A partition
// under `quorum` runs for both backends in test/lab/failover-quorum.test.ts. Every rejoin
// restores the quotas.

import { afterAll, beforeAll, expect, it, type TestContext } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { FarmLab } from './helpers/farm-lab.js';
import { uniqueSuffix, waitFor } from './helpers/netns.js';
import { OverlapSampler, coverage, readServed, type SamplerReport } from './helpers/overlap-sampler.js';
import { heal, partition } from './helpers/nft-faults.js';
import { QnetdWitness } from './helpers/qnetd-witness.js';
import { FAILOVER_NODES, FAILOVER_NODE_NAMES, FULL_QUOTAS, logsOnFailure, waitCoverage, waitNoHandover } from './helpers/failover-kit.js';

const ALL = FAILOVER_NODE_NAMES;
const others = (victim: string) => ALL.filter((n) => n !== victim);

function noOverlaps(r: SamplerReport): void {
  expect(r.samples, 'the sampler ran').toBeGreaterThan(10);
  expect(r.overlaps, `confirmed double serving (${r.overlapCount}; unconfirmed candidates ${r.unconfirmed})`).toEqual([]);
}

describePrivileged('lab: Corosync membership backend (CPG + votequorum): failover, corosync failures, quorum, no double serving', () => {
  const name = `cs${uniqueSuffix()}`;
  let lab: FarmLab | undefined;
  let sampler: OverlapSampler | undefined;

  beforeAll(async () => {
    lab = await FarmLab.create({
      name, mode: 'vmac_invisible', xdpMode: 'generic', nodes: FAILOVER_NODES, clientAddrs4: 0, clientAddrs6: 0,
      corosync: true, splitBrain: 'quorum',
    });
    await waitCoverage(lab, ALL, { quotas: FULL_QUOTAS, timeoutMs: 30_000 });
  }, 120_000);

  afterAll(async () => {
    await sampler?.stop();
    if (lab && process.env.FARMLB_LAB_DUMP) {
      const { writeFileSync } = await import('node:fs');
      for (const n of ALL) writeFileSync(`${process.env.FARMLB_LAB_DUMP}-${n}.log`, `${lab.logs(n)}\n--- corosync ---\n${lab.corosync?.log(n)}`);
    }
    if (lab) {
      for (const n of ALL) if (lab.daemonRunning(n)) lab.signalNode(n, 'SIGCONT');
      expect(await lab.cleanup()).toEqual([]);
    }
    expect(FarmLab.leftovers(name)).toEqual({ namespaces: [], pins: [], processes: [] });
  }, 60_000);

  function corosyncLogsOnFailure(ctx: TestContext): void {
    logsOnFailure(ctx, () => lab);
    ctx.onTestFailed(async () => {
      for (const n of ALL) console.error(`--- corosync ${n} ---\n${lab?.corosync?.log(n).split('\n').slice(-40).join('\n')}`);
      if (sampler) console.error(`overlap sampler so far: ${JSON.stringify(await sampler.stop())}`);
    });
  }

  /** The full farm at its quotas, then a fresh sampler. */
  async function begin(): Promise<{ l: FarmLab; before: number[] }> {
    const l = lab!;
    await sampler?.stop();
    await heal(l);
    for (const n of ALL) {
      if (!l.corosync!.running(n)) await l.corosync!.start(n);
      if (l.daemonRunning(n)) l.signalNode(n, 'SIGCONT');
      else await l.startNode(n, { timeoutMs: 30_000 });
    }
    await waitCoverage(l, ALL, { quotas: FULL_QUOTAS, timeoutMs: 20_000, what: 'the full farm at its quotas before the case' });
    await waitNoHandover(l, ALL);
    sampler = new OverlapSampler(l).start();
    return { l, before: readServed(l, 'n1')!.owners[0]! };
  }

  async function end(): Promise<SamplerReport> {
    const r = await sampler!.stop();
    sampler = undefined;
    return r;
  }

  function onlyVictimMoved(before: number[], after: number[], victim: string): void {
    const id = ALL.indexOf(victim);
    expect(before.flatMap((o, b) => (o !== id && after[b] !== o ? [b] : [])), 'buckets of surviving nodes that changed owner').toEqual([]);
  }

  it('agrees on one table with the quotas; status shows the backend, the ring, quorum and the CPG members', async (ctx) => {
    corosyncLogsOnFailure(ctx);
    const l = lab!;
    expect(coverage(l, ALL).counts).toEqual(FULL_QUOTAS);
    const statuses = await Promise.all(ALL.map((n) => l.status(n)));
    for (const s of statuses) {
      expect(s).toMatchObject({ backend: 'corosync', state: 'UP', ready: true, leader: null, view: ALL });
      expect(s.corosync).toMatchObject({ connected: true, quorate: true, syncing: false, transport: 'udpu', tokenMs: 300 });
      expect(s.corosync!.ringId).toMatch(/^[0-9a-f]+\.[0-9a-f]+$/);
      expect(s.corosync!.members.map((m) => m.node).sort()).toEqual(ALL);
      expect(s.corosync!.members.every((m) => m.state === 'UP' && m.pid > 0)).toBe(true);
    }
    expect(new Set(statuses.map((s) => s.epoch)).size).toBe(1);
    expect(new Set(statuses.map((s) => s.corosync!.ringId)).size).toBe(1);
    const text = await l.farmlb(['status'], 'n1');
    expect(text.stdout).toMatch(/corosync/);
  });

  it('kill -9 of corosync on a node: that node serves nothing at once, the others take its buckets when the ring drops it; corosync back, the quotas come back', async (ctx) => {
    corosyncLogsOnFailure(ctx);
    const { l, before } = await begin();
    await l.corosync!.kill('n3', 'SIGKILL');
    await waitFor(() => !readServed(l, 'n3')!.leaseValid, { timeoutMs: 2_000, intervalMs: 10, what: 'n3 to stop serving' });
    // The survivors' leases never lapse while the ring re-forms (the lease outlasts token + consensus).
    const lapses: string[] = [];
    await waitFor(() => {
      for (const n of others('n3')) if (!readServed(l, n)!.leaseValid) lapses.push(`${n} at ${Date.now()}`);
      return coverage(l, others('n3')).complete;
    }, { timeoutMs: 10_000, intervalMs: 5, what: 'n1 and n2 to serve every bucket' });
    expect(lapses, 'survivor lease lapses').toEqual([]);
    onlyVictimMoved(before, readServed(l, 'n1')!.owners[0]!, 'n3');
    expect((await l.status('n3')).corosync?.connected).toBe(false);
    await l.corosync!.start('n3');
    await waitCoverage(l, ALL, { quotas: FULL_QUOTAS, timeoutMs: 20_000 });
    noOverlaps(await end());
  }, 90_000);

  it('corosync restarted on a node (SIGTERM, started again at once, as systemctl restart does): its daemon serves nothing meanwhile, reconnects by itself and the quotas come back; the survivors never pause, no double serving', async (ctx) => {
    corosyncLogsOnFailure(ctx);
    const { l } = await begin();
    const lapses: string[] = [];
    const watch = setInterval(() => {
      for (const n of others('n3')) if (!readServed(l, n)!.leaseValid) lapses.push(`${n} at ${Date.now()}`);
    }, 5);
    try {
      await l.corosync!.kill('n3', 'SIGTERM');
      await waitFor(() => !readServed(l, 'n3')!.leaseValid || undefined, { timeoutMs: 2_000, intervalMs: 5, what: 'n3 to stop serving (its session is gone)' });
      await l.corosync!.start('n3');
      await waitCoverage(l, ALL, { quotas: FULL_QUOTAS, timeoutMs: 20_000, what: 'n3 back at its quota after reconnecting' });
    } finally {
      clearInterval(watch);
    }
    expect(lapses, 'survivor lease lapses').toEqual([]);
    const s = await l.status('n3');
    expect(s.corosync).toMatchObject({ connected: true, quorate: true });
    expect(s.corosync!.members.map((m) => m.node).sort()).toEqual(ALL);
    noOverlaps(await end());
  }, 90_000);

  // docs/membership.md, "When corosync hangs": a stopped corosync never stops its daemon's
  // event loop (the calls that wait for corosync run on the session's thread).
  it('corosync SIGSTOPped on a node for 3 s: its daemon keeps answering (health, control socket), says WAIT with the cause at once; the others take its buckets; after SIGCONT it returns, no double serving', async (ctx) => {
    corosyncLogsOnFailure(ctx);
    const { l, before } = await begin();
    const cpid = l.corosync!.pid('n3')!;
    const stoppedAt = Date.now();
    process.kill(cpid, 'SIGSTOP');
    try {
      // WAIT with the cause before the lease (860 ms) would have run out by itself, give or take a loaded host.
      const s = await waitFor(async () => {
        const st = await l.status('n3');
        return st.state === 'WAIT' && /corosync does not answer \(votequorum_getinfo pending/.test(st.stateCause) ? st : undefined;
      }, { timeoutMs: 3_000, intervalMs: 50, what: 'n3 to say WAIT: corosync does not answer' });
      expect(s.ready).toBe(false);
      expect(s.corosync?.hung?.call).toBe('votequorum_getinfo');
      expect(readServed(l, 'n3')!.leaseValid).toBe(false);
      // The health server answers at once (through the daemon's event loop: /health is its status).
      const t0 = Date.now();
      const h = await l.health('n3', '/health');
      expect(Date.now() - t0, 'GET /health answered within 1 s').toBeLessThan(1_000);
      expect(h.status).toBe(200);
      expect(h.body).toMatch(/corosync does not answer/);
      expect((await l.health('n3', `/var/modules/lab-${name}/ready.txt`)).status).toBe(404);
      await waitFor(() => coverage(l, others('n3')).complete, { timeoutMs: 5_000, intervalMs: 20, what: 'n1 and n2 to serve every bucket' });
      onlyVictimMoved(before, readServed(l, 'n1')!.owners[0]!, 'n3');
      const left = 3_000 - (Date.now() - stoppedAt);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
      expect((await l.status('n3')).state).toBe('WAIT');
    } finally {
      process.kill(cpid, 'SIGCONT');
    }
    await waitCoverage(l, ALL, { quotas: FULL_QUOTAS, timeoutMs: 20_000, what: 'n3 back at its quota after SIGCONT' });
    const back = await l.status('n3');
    expect(back.corosync?.hung).toBeUndefined();
    expect(back.corosync?.hangs).toBeGreaterThanOrEqual(1);
    noOverlaps(await end());
  }, 90_000);

  it('corosync restarted and SIGSTOPped before the daemon reconnects: the daemon keeps answering and says why; after SIGCONT it connects and returns', async (ctx) => {
    corosyncLogsOnFailure(ctx);
    const { l } = await begin();
    await l.corosync!.kill('n3', 'SIGKILL');
    await waitFor(async () => (await l.status('n3')).corosync?.connected === false, { timeoutMs: 5_000, intervalMs: 50, what: 'n3 to lose its session' });
    // Started again and stopped as soon as its IPC socket listens: the daemon's next attempt (every second) waits for it.
    const starting = l.corosync!.start('n3');
    const cpid = await waitFor(async () => {
      const pid = l.corosync!.pid('n3');
      if (pid === undefined) return undefined;
      const { stdout } = await l.inNode('n3', 'ss', ['-xlp']);
      return stdout.includes(`pid=${pid},`) && stdout.includes('cpg') ? pid : undefined;
    }, { timeoutMs: 10_000, intervalMs: 5, what: "the new corosync's IPC socket" });
    process.kill(cpid, 'SIGSTOP');
    try {
      await starting.catch(() => undefined);
      const s = await waitFor(async () => {
        const st = await l.status('n3');
        return /corosync does not answer \((connect|votequorum_getinfo) pending/.test(st.stateCause) ? st : undefined;
      }, { timeoutMs: 5_000, intervalMs: 100, what: 'n3 to say: corosync does not answer' });
      expect(s.state).toBe('WAIT');
      const t0 = Date.now();
      expect((await l.health('n3', '/health')).status).toBe(200);
      expect(Date.now() - t0, 'GET /health answered within 1 s').toBeLessThan(1_000);
    } finally {
      process.kill(cpid, 'SIGCONT');
    }
    await waitCoverage(l, ALL, { quotas: FULL_QUOTAS, timeoutMs: 20_000, what: 'n3 back at its quota after SIGCONT' });
    expect((await l.status('n3')).corosync).toMatchObject({ connected: true });
    noOverlaps(await end());
  }, 90_000);
});

// Two nodes under `quorum`: votequorum's two_node alone keeps both halves of a split quorate
// (both serve: split brain); a qnetd witness (corosync-qnetd in a third namespace, qdevice on
// both nodes, ffsplit) gives quorum to exactly one half — and that half only serves.
const TWO = [{ name: 'n1', power: 1 }, { name: 'n2', power: 1 }];
const TWO_QUOTAS = { n1: 128, n2: 128 };

for (const witness of [true, false]) {
  describePrivileged(`lab: two-node Corosync farm, split_brain="quorum", ${witness ? 'with a qnetd witness: exactly one half serves' : 'without a witness (two_node): both halves serve'}`, () => {
    const name = `c2${witness ? 'w' : 'n'}${uniqueSuffix()}`;
    let lab: FarmLab | undefined;
    let qnetd: QnetdWitness | undefined;
    let sampler: OverlapSampler | undefined;

    beforeAll(async () => {
      lab = await FarmLab.create({
        name, mode: 'vmac_invisible', xdpMode: 'generic', nodes: TWO, clientAddrs4: 0, clientAddrs6: 0,
        corosync: true, splitBrain: 'quorum', ...(witness ? { corosyncConfArgs: ['--qnetd', QnetdWitness.ADDR] } : {}),
      });
      if (witness) qnetd = await QnetdWitness.create(lab, `farmlb-${`lab-${name}`.slice(0, 32)}`);
      await waitCoverage(lab, ['n1', 'n2'], { quotas: TWO_QUOTAS, timeoutMs: 30_000 });
    }, 180_000);

    afterAll(async () => {
      await sampler?.stop();
      await qnetd?.cleanup();
      if (lab) expect(await lab.cleanup()).toEqual([]);
      expect(FarmLab.leftovers(name)).toEqual({ namespaces: [], pins: [], processes: [] });
    }, 60_000);

    it(witness ? 'a split between the two nodes: one half keeps quorum and serves every bucket, the other none, never both; healed, the quotas come back'
      : 'a split between the two nodes: both halves stay quorate and each serves every bucket (split brain, reported); healed, the quotas come back', async (ctx) => {
      logsOnFailure(ctx, () => lab);
      ctx.onTestFailed(() => {
        if (qnetd) console.error(qnetd.allLogs());
        for (const n of ['n1', 'n2']) console.error(`--- corosync ${n} ---\n${lab?.corosync?.log(n).split('\n').slice(-40).join('\n')}`);
      });
      const l = lab!;
      if (witness) await qnetd!.waitVoting();
      // With a witness, no bucket is served by both halves even across the split.
      sampler = new OverlapSampler(l).start();
      if (!witness) sampler.setDomains([['n1'], ['n2']]);
      await partition(l, [['n1'], ['n2']]);
      try {
        if (witness) {
          const winner = await waitFor(() => {
            const c = coverage(l, ['n1', 'n2']);
            return c.complete && (c.counts.n1 === 256 || c.counts.n2 === 256) ? (c.counts.n1 === 256 ? 'n1' : 'n2') : undefined;
          }, { timeoutMs: 20_000, intervalMs: 20, what: 'one half to serve every bucket' });
          const loser = winner === 'n1' ? 'n2' : 'n1';
          await waitFor(async () => (await l.status(loser)).corosync?.quorate === false, { timeoutMs: 20_000, intervalMs: 100, what: `${loser} to report no quorum` });
          expect(coverage(l, [loser]).counts[loser]).toBe(0);
          expect((await l.status(winner)).corosync?.quorate).toBe(true);
        } else {
          await waitCoverage(l, ['n1']);
          await waitCoverage(l, ['n2']);
          for (const n of ['n1', 'n2']) expect(await l.status(n)).toMatchObject({ splitBrain: true, corosync: { quorate: true } });
        }
      } finally {
        await heal(l);
      }
      await waitCoverage(l, ['n1', 'n2'], { quotas: TWO_QUOTAS, timeoutMs: 30_000 });
      sampler.setDomains([['n1', 'n2']]);
      await waitNoHandover(l, ['n1', 'n2']);
      noOverlaps(await sampler.stop());
      sampler = undefined;
    }, 120_000);
  });
}
