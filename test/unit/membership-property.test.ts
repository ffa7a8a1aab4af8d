// Property tests of the membership protocol (fast-check over the simulator): random
// sequences of crashes, restarts, SIGSTOP pauses, partitions, one-way cuts, loss, failing
// checks and power changes. Checked throughout: no bucket served by two nodes in contact
// (the simulator throws at the first violation). Checked at the end: once every fault is
// repaired, the farm converges to one table within a bounded number of pulses.
// With handover on (connection-preserving moves), also checked throughout: no packet of a
// bucket can be accepted by two nodes — at most one owner, a previous owner never owner in
// its own table, and no node takes every packet of a bucket while another still holds
// connections there as previous owner (unless the leader cut them at the limit); and at the
// end every handover has ended (drained, or the limit). Also checked: continuity — a node in
// loss-free contact with a majority of its view whose buckets the next table keeps never has
// its lease lapse (the simulator's `lapses`), whatever happens to the leader.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Simulator } from '../helpers/membership-sim.js';
import { DEFAULT_TIMING } from '../../src/membership/timing.js';
import type { SplitBrainPolicy } from '../../src/config/types.js';

const pulse = DEFAULT_TIMING.pulseMs;
const NODES = ['n1', 'n2', 'n3', 'n4', 'n5'];

type Op =
  | { kind: 'crash' | 'restart' | 'pause' | 'resume' | 'sick' | 'healthy'; node: number }
  | { kind: 'partition'; mask: number }
  | { kind: 'oneway'; from: number; to: number }
  | { kind: 'heal' }
  | { kind: 'loss'; loss: number }
  | { kind: 'power'; at: number; node: number; power: number };

const node = fc.integer({ min: 0, max: NODES.length - 1 });
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constantFrom('crash', 'restart', 'pause', 'resume', 'sick', 'healthy'), node }),
  fc.record({ kind: fc.constant('partition'), mask: fc.integer({ min: 1, max: 30 }) }),
  fc.record({ kind: fc.constant('oneway'), from: node, to: node }),
  fc.record({ kind: fc.constant('heal') }),
  fc.record({ kind: fc.constant('loss'), loss: fc.constantFrom(0, 0.1, 0.2, 0.5) }),
  fc.record({ kind: fc.constant('power'), at: node, node, power: fc.integer({ min: 0, max: 3 }) }),
) as fc.Arbitrary<Op>;
const step = fc.record({ op, waitMs: fc.integer({ min: 0, max: 800 }) });

function play(sim: Simulator, o: Op): void {
  const name = (i: number) => NODES[i]!;
  const n = 'node' in o ? sim.node(name(o.node)) : undefined;
  switch (o.kind) {
    case 'crash': if (n!.running) sim.crash(n!.name); break;
    case 'restart': if (!n!.running) sim.start(n!.name); break;
    case 'pause': if (n!.running) sim.pause(n!.name); break;
    case 'resume': if (n!.running && n!.paused) sim.resume(n!.name); break;
    case 'sick': sim.setHealth(n!.name, false); break;
    case 'healthy': sim.setHealth(n!.name, true); break;
    case 'partition': {
      const a = NODES.filter((_, i) => o.mask & (1 << i));
      sim.partition(a, NODES.filter((x) => !a.includes(x)));
      break;
    }
    case 'oneway': if (o.from !== o.to) sim.setLink(name(o.from), name(o.to), false); break;
    case 'heal': sim.healAll(); break;
    case 'loss': sim.setLoss(o.loss); break;
    case 'power': {
      const at = sim.node(name(o.at));
      if (at.running && !at.paused) sim.setPower(at.name, name(o.node), o.power);
      break;
    }
  }
}

function repairAll(sim: Simulator): void {
  sim.healAll();
  sim.setLoss(0);
  for (const name of NODES) {
    const n = sim.node(name);
    if (!n.running) sim.start(name);
    else if (n.paused) sim.resume(name);
    sim.setHealth(name, true);
  }
}

/**
 * Slow data plane installs (FARMLB_PROPERTY_INSTALL_MS=5,150: a range in ms; default instant):
 * decisions queue behind them, heartbeats and lease renewals leave ahead of the queue
 * (heartbeat-gate.ts, lease-gate.ts) — searched with the same scenarios.
 */
const INSTALL_MS = process.env.FARMLB_PROPERTY_INSTALL_MS?.split(',').map(Number) as [number, number] | undefined;

/** Handover runs: a short limit so that a scenario also sees handovers cut at the limit. */
const HANDOVER_LIMIT_MS = 1000;
/** How long a crashed or paused node's data plane may serve after a heal: its lease and the data plane's clock slack. */
const STOPPED_GRACE_MS = DEFAULT_TIMING.leaseMs + DEFAULT_TIMING.leaseClockSlackMs;
const DRAIN_MS: [number, number] = [50, 1500];

type Step = { op: Op; waitMs: number };

/** One scenario: start, play the steps, repair everything, converge (throws on a violation). */
function runScenario(policy: SplitBrainPolicy, handover: boolean, seed: number, steps: Step[], installMs = INSTALL_MS): void {
  const slowest = installMs?.[1] ?? 0;
  const sim = new Simulator({
    nodes: NODES,
    seed,
    splitBrain: policy,
    ...(handover ? { handoverLimitMs: HANDOVER_LIMIT_MS, connections: { drainMs: DRAIN_MS } } : {}),
    // quorum: a minority serves nothing, so the invariant holds between every pair.
    // serve: two sides of a partition both serve; they must stop within a few pulses of hearing each other.
    // (Slow installs: the side that yields stops once its install of the winner's table is done.)
    // A node crashed or hung at the heal hears nobody: its data plane stops when its lease lapses,
    // a lease and the clock slack after its last renewal (Simulator seed 674553 below).
    ...(policy === 'quorum' ? { strictGlobal: true } : { contactGraceMs: 4 * pulse + slowest, stoppedGraceMs: STOPPED_GRACE_MS + slowest }),
    ...(installMs ? { installMs } : {}),
  });
  sim.startAll();
  sim.run(1000);
  for (const s of steps) {
    play(sim, s.op);
    sim.run(s.waitMs);
  }
  repairAll(sim);
  // Bounded convergence: restarted nodes discover, the lost timeouts run, the 2-step moves finish.
  // With handover, the moves of the repair also wait for their previous owners (at most the limit).
  // Slow installs: the leader's tables wait for them, one after the other.
  const bound = (DEFAULT_TIMING.mlostCount + 30) * pulse + (handover ? HANDOVER_LIMIT_MS : 0) + 30 * slowest;
  const ok = sim.run(bound, () => sim.converged(NODES));
  expect(ok, `not converged ${bound} ms after the repair`).toBe(true);
  // Continuity: no node in clean contact with a majority of its view, keeping its buckets,
  // ever stopped serving them (docs/membership.md, "Survivors keep serving").
  // (Not with slow installs: across a change of leader a renewal waits for the new leader's
  // table to be installed — docs/membership.md, "Lease writes during an install".)
  if (!installMs) expect(sim.lapses, 'a node in contact with a majority of its view stopped serving the buckets it kept').toEqual([]);
}

function scenario(policy: SplitBrainPolicy, handover = false) {
  return fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.array(step, { minLength: 1, maxLength: 12 }),
    (seed, steps) => runScenario(policy, handover, seed, steps));
}

// A fixed seed keeps CI repeatable. Longer searches (FARMLB_PROPERTY_RUNS=300, and
// FARMLB_PROPERTY_SEED=random or another number) may still find rare interleavings: what
// remains open is listed in docs/membership.md; each one fixed is pinned below.
const runs = Number(process.env.FARMLB_PROPERTY_RUNS ?? 40);
const seedEnv = process.env.FARMLB_PROPERTY_SEED;
// A long search (300 runs with handover) takes minutes per property on a loaded machine;
// under `nice -n 19` beside other work it may take far longer (FARMLB_PROPERTY_TIMEOUT_MS).
const TIMEOUT_MS = Number(process.env.FARMLB_PROPERTY_TIMEOUT_MS ?? Math.max(60_000, runs * 2_000));
const params = { numRuns: runs, ...(seedEnv === 'random' ? {} : { seed: Number(seedEnv ?? 20240611) }) };

describe('membership properties', () => {
  it('serve policy: nodes in contact never serve the same bucket; after repair the farm converges', () => {
    fc.assert(scenario('serve'), params);
  }, TIMEOUT_MS);

  it('quorum policy: no bucket is ever served twice, anywhere; after repair the farm converges', () => {
    fc.assert(scenario('quorum'), params);
  }, TIMEOUT_MS);

  it('serve policy with handover: no packet accepted by two nodes in contact; after repair every handover has ended', () => {
    fc.assert(scenario('serve', true), params);
  }, TIMEOUT_MS);

  it('quorum policy with handover: no packet ever accepted by two nodes; after repair every handover has ended', () => {
    fc.assert(scenario('quorum', true), params);
  }, TIMEOUT_MS);
});

// Counterexamples found by long random runs, replayed exactly (Simulator seed, steps; node i
// = NODES[i]; a `resume` of a node that is not paused is a plain wait). The first three
// failed before the fence (docs/membership.md, "the fence"): a node renewed its lease from a
// peer's acknowledgement that the leader had not heard of, while the leader gave its buckets
// away. The handover ones failed before the leader counted every table it published since a
// member's last report as one the member may hold.
const wait = (waitMs: number): Step => ({ op: { kind: 'resume', node: 0 }, waitMs });
describe('membership counterexamples (fixed replays)', () => {
  // Search seed 13 (`serve`, handover off and on; Simulator seed 11), with the check at a
  // silence's deadline: under 50 % loss and a one-way cut from n4, n3 lost n5 after 250 ms
  // without a heartbeat of it and, alone in its view, took n5's buckets 34 ms later; n5 still
  // served them on a lease n4 (WAIT, unseen by n3) kept renewing. That is `serve` across a
  // partition made by loss — but the simulator marked the run of drops a cut only at n5's next
  // dropped heartbeat, which had not been sent yet: found at pulses, the loss came later than
  // that. Its contact now counts the cut from the moment the receiver lost the sender.
  // Search seed 9 (`serve` with handover; Simulator seed 411121), with the check at a silence's
  // deadline: n3, alone on its side of a partition, renewed its lease from its own liveness as
  // `serve` lets it; 16 ms after the heal n1 heard it so (UP, a view of its own) but counted its
  // lease from the last time it had been connected, 2 s before, and gave bucket 172 — n3's in
  // n3's table — to n4, n3's neighbour, resumed from a pause: n3 and n4 both served it at
  // 3301.0 ms. A peer heard UP alone in a view of its own now counts as serving when heard.
  it('serve: a lone node heard serving on its own counts as serving until its lease runs out', () => {
    for (const handover of [false, true]) {
      runScenario('serve', handover, 411121, [
        { op: { kind: 'pause', node: 1 }, waitMs: 0 }, { op: { kind: 'partition', mask: 19 }, waitMs: 134 },
        { op: { kind: 'pause', node: 3 }, waitMs: 453 }, { op: { kind: 'oneway', from: 0, to: 0 }, waitMs: 740 },
        { op: { kind: 'oneway', from: 4, to: 1 }, waitMs: 4 }, { op: { kind: 'loss', loss: 0.1 }, waitMs: 414 },
        { op: { kind: 'restart', node: 2 }, waitMs: 527 },
      ]);
    }
  });

  it('serve: a run of drops is a cut from the moment the receiver loses the sender (the simulator\'s contact)', () => {
    for (const handover of [false, true]) {
      runScenario('serve', handover, 11, [
        { op: { kind: 'loss', loss: 0.5 }, waitMs: 498 }, { op: { kind: 'oneway', from: 3, to: 2 }, waitMs: 749 },
        { op: { kind: 'healthy', node: 4 }, waitMs: 437 }, { op: { kind: 'partition', mask: 3 }, waitMs: 316 },
        { op: { kind: 'sick', node: 3 }, waitMs: 67 }, { op: { kind: 'restart', node: 0 }, waitMs: 474 },
        { op: { kind: 'oneway', from: 4, to: 0 }, waitMs: 243 }, { op: { kind: 'crash', node: 1 }, waitMs: 154 },
      ]);
    }
  });

  it('serve: a node cut one way from the leader under 50% loss keeps its buckets while a peer it reaches still acknowledges it', () => {
    // n3→n1 cut; n5 heard n3 after its last report that reached n1, and acknowledged it.
    runScenario('serve', false, 984342, [
      { op: { kind: 'loss', loss: 0.5 }, waitMs: 611 }, { op: { kind: 'heal' }, waitMs: 7 },
      { op: { kind: 'crash', node: 1 }, waitMs: 0 }, { op: { kind: 'power', at: 0, node: 0, power: 0 }, waitMs: 584 },
      { op: { kind: 'heal' }, waitMs: 543 }, { op: { kind: 'oneway', from: 2, to: 0 }, waitMs: 248 },
    ]);
  });

  it('serve: a WAIT node that follows the lost leader\'s table keeps that leader\'s buckets from being handed on', () => {
    // Sick n3 installed n2's table and acknowledged n2; n4 (new leader, cut from n2) had not heard of it.
    runScenario('serve', false, 458510, [
      { op: { kind: 'loss', loss: 0 }, waitMs: 318 }, { op: { kind: 'crash', node: 0 }, waitMs: 0 },
      { op: { kind: 'loss', loss: 0.5 }, waitMs: 417 }, { op: { kind: 'sick', node: 2 }, waitMs: 165 },
      { op: { kind: 'heal' }, waitMs: 2 }, wait(716), { op: { kind: 'oneway', from: 1, to: 3 }, waitMs: 0 }, wait(400),
    ]);
  });

  it('serve: a leader that loses its last members under 50% loss does not take their buckets while they renew each other', () => {
    runScenario('serve', false, 4, [
      { op: { kind: 'loss', loss: 0.5 }, waitMs: 383 }, { op: { kind: 'crash', node: 0 }, waitMs: 487 },
      { op: { kind: 'partition', mask: 1 }, waitMs: 0 }, { op: { kind: 'crash', node: 2 }, waitMs: 72 },
      { op: { kind: 'partition', mask: 1 }, waitMs: 264 }, { op: { kind: 'partition', mask: 1 }, waitMs: 464 },
      { op: { kind: 'loss', loss: 0 }, waitMs: 0 },
    ]);
  });

  // Found with handover on, after the fence: the fence completes as heartbeats arrive, so a
  // leader may publish several tables within one pulse, and a member may have installed any
  // of them — not only the one it last reported or the leader's latest.
  it('serve with handover: a bucket the leader gave a member two tables ago stays its own until the member reports a newer table', () => {
    // n4 paused; n1 gave n4's bucket 94 to n5 (e16), held it back the next instant (e17: n4's
    // lease not yet fenced again) and gave it to itself (e18) while n5, still reporting e15, served e16.
    runScenario('serve', true, 202381, [
      { op: { kind: 'restart', node: 2 }, waitMs: 796 }, { op: { kind: 'heal' }, waitMs: 796 },
      { op: { kind: 'power', at: 2, node: 4, power: 2 }, waitMs: 631 }, { op: { kind: 'pause', node: 3 }, waitMs: 6 },
      { op: { kind: 'power', at: 3, node: 1, power: 1 }, waitMs: 635 }, { op: { kind: 'pause', node: 2 }, waitMs: 771 },
      { op: { kind: 'loss', loss: 0.2 }, waitMs: 554 }, { op: { kind: 'sick', node: 0 }, waitMs: 8 },
      { op: { kind: 'heal' }, waitMs: 0 }, { op: { kind: 'loss', loss: 0 }, waitMs: 117 },
      { op: { kind: 'oneway', from: 4, to: 4 }, waitMs: 546 },
    ]);
  });

  it('quorum with handover: a member that may hold any table published since its last report keeps its buckets', () => {
    runScenario('quorum', true, 16, [
      { op: { kind: 'heal' }, waitMs: 683 }, { op: { kind: 'partition', mask: 19 }, waitMs: 100 },
      { op: { kind: 'oneway', from: 1, to: 4 }, waitMs: 521 }, { op: { kind: 'power', at: 0, node: 2, power: 2 }, waitMs: 157 },
      { op: { kind: 'heal' }, waitMs: 360 }, { op: { kind: 'crash', node: 0 }, waitMs: 707 },
      { op: { kind: 'loss', loss: 0.5 }, waitMs: 572 }, { op: { kind: 'partition', mask: 6 }, waitMs: 778 },
      { op: { kind: 'oneway', from: 3, to: 2 }, waitMs: 547 }, { op: { kind: 'partition', mask: 1 }, waitMs: 366 },
    ]);
  });

  // Found with handover on (seed 906762 of a wider search, shrunk): the two sides of a healed
  // `quorum` partition publish epochs that are not ordered by what they know. The minority's
  // leader kept the table it made before losing quorum; on the heal it was leader again and
  // the majority's nodes installed that table at once (higher epoch) and renewed each other on
  // it, while a node still on the majority's table owned the same bucket. A leader again now
  // sets its old table aside until it decides anew, and followers install only tables of
  // their leader's current leadership (docs/membership.md, "Leader again").
  it('quorum with handover: after a heal nobody goes back to the table a minority leader made before it lost quorum', () => {
    // n1 (power 0) and n4 cut off; n1 published e5 (b36 to n2), the majority's n2 then gave its
    // own b36 to n5 (e3); on the heal n2 installed n1's e5 and served b36 beside n5.
    runScenario('quorum', true, 906762, [
      { op: { kind: 'power', at: 2, node: 0, power: 0 }, waitMs: 31 }, { op: { kind: 'partition', mask: 22 }, waitMs: 252 },
    ]);
  });

  it('quorum: after a heal nobody goes back to the table a minority leader made before it lost quorum (handover off)', () => {
    // n1 published tables for n4's power changes up to e5 (b6 to n4) before it lost quorum; the
    // majority's n2 gave b6 to n5 (e3); on the heal n2 and n3 installed e5 and renewed n4's lease on it.
    runScenario('quorum', false, 7, [
      { op: { kind: 'partition', mask: 22 }, waitMs: 30 }, { op: { kind: 'power', at: 0, node: 3, power: 2 }, waitMs: 40 },
      { op: { kind: 'power', at: 0, node: 3, power: 3 }, waitMs: 40 }, { op: { kind: 'power', at: 0, node: 0, power: 0 }, waitMs: 150 },
    ]);
  });
  // Continuity (docs/membership.md, "Survivors keep serving"): found by the property's first
  // search. n1 (majority leader) published a table per pulse while handing buckets over; its
  // followers acknowledged each only at their next pulse, by when n1 was on the next one, so
  // under quorum no majority ever acknowledged n1's current table and its lease lapsed.
  it('quorum with handover: a leader publishing a table per pulse keeps its lease (followers acknowledge a new table at once)', () => {
    runScenario('quorum', true, 10, [
      { op: { kind: 'partition', mask: 6 }, waitMs: 148 }, { op: { kind: 'oneway', from: 0, to: 0 }, waitMs: 172 },
      { op: { kind: 'power', at: 0, node: 0, power: 2 }, waitMs: 356 },
    ]);
  });

  // docs/membership.md, "A follower that switches leaders": at the heal n2, leader of its side,
  // installs n1's table (which leaves n3 out: n1 does not hear it yet) and gains bucket 146
  // there, while n3 still serves 146 under n2's previous table. n2 served it with the lease
  // n3's acknowledgements of n2's own table had given it.
  it('serve: a leader that gives way at a heal serves what it gains in the other leader\'s table only after a renewal on it', () => {
    runScenario('serve', false, 1, [
      { op: { kind: 'partition', mask: 9 }, waitMs: 0 }, { op: { kind: 'oneway', from: 2, to: 4 }, waitMs: 409 },
      { op: { kind: 'heal' }, waitMs: 0 },
    ]);
  });
  // The old seed-6 failure (docs/membership.md): under 50% loss n4 installed the leader's e8
  // (bucket 176 to n4) by relay 90 ms late, its last report still e7; the leader n2 counted
  // for n4 only e7 and its own latest, and gave 176 to n3 in e10 while n4 served it. Closed by
  // counting every table published since a member's last report (engine commit 6829ff2;
  // before it this replay fails at 2979.3 ms: bucket 176 served by n3 and n4, in contact).
  it('serve: a member whose reports are lost under 50% loss may hold every table published since (old seed 6)', () => {
    runScenario('serve', false, 8, [
      { op: { kind: 'oneway', from: 0, to: 1 }, waitMs: 0 }, { op: { kind: 'loss', loss: 0.5 }, waitMs: 492 },
      { op: { kind: 'partition', mask: 17 }, waitMs: 303 }, { op: { kind: 'healthy', node: 0 }, waitMs: 633 },
      wait(439), { op: { kind: 'crash', node: 0 }, waitMs: 61 }, { op: { kind: 'loss', loss: 0 }, waitMs: 50 },
    ]);
  });

  // Search seed 22 (2026-12-07, second pass): n1, alone on its side of a partition under
  // `serve`, served its own table (bucket 0 to itself) and renewed its lease by itself; the
  // partition healed at 3034 ms and n1 crashed 1 ms later, its lease renewed ~5 ms before.
  // Crashed, it heard nobody; its data plane served bucket 0 until the lease and the clock
  // slack ran out (~3251 ms), beside n2, the other side's owner — 217 ms after the heal, past
  // the 4-pulse grace the check gave a pair in contact (it failed at 3238.8 ms). Nothing in
  // the protocol can stop a dead node's data plane sooner: the check now gives a pair with a
  // crashed or paused node its lease and slack (STOPPED_GRACE_MS); live pairs keep 4 pulses.
  it('serve: a node that crashes as its side\'s partition heals serves its table until its lease lapses, no longer', () => {
    runScenario('serve', false, 674553, [
      { op: { kind: 'partition', mask: 30 }, waitMs: 792 }, { op: { kind: 'power', at: 3, node: 3, power: 2 }, waitMs: 294 },
      { op: { kind: 'partition', mask: 1 }, waitMs: 788 }, { op: { kind: 'loss', loss: 0 }, waitMs: 160 },
      { op: { kind: 'oneway', from: 0, to: 2 }, waitMs: 0 }, { op: { kind: 'heal' }, waitMs: 1 },
      { op: { kind: 'crash', node: 0 }, waitMs: 690 }, { op: { kind: 'loss', loss: 0.1 }, waitMs: 176 },
      { op: { kind: 'power', at: 0, node: 0, power: 2 }, waitMs: 358 }, { op: { kind: 'power', at: 4, node: 1, power: 1 }, waitMs: 421 },
      { op: { kind: 'heal' }, waitMs: 3 },
    ]);
  });

  // Search seed 26 (`quorum`, handover off and on), Simulator seed 384: in the last partition
  // n3 led n3..n5 and gave n2's bucket 1 to n5; n1, cut from them for less than `slost`, still
  // led all five on its own tables, bucket 1 n2's. At the repair n4 took n1 for leader and
  // installed its table: its acknowledgements then renewed n2 (with n1's, a majority), while
  // those it had given n5 a few ms before on n3's tables still held n5's lease (with n3's).
  // Two majorities shared the node that switched: bucket 1 served by n2 and n5 at 4981.3 ms.
  // Fixed: a node that switches lineages acknowledges a bucket's new owner only once its
  // acknowledgements of the old owner have run out (InstalledTables.ackHolds).
  // Found by the search of the first version of that rule (search seed 11, all four
  // properties; Simulator seed 123869): it counted every table of the lineage left as
  // acknowledged until the switch. n4 and n5 followed n2, the new leader of their side, from
  // n1's epoch 4, which had freed bucket 209 (n4's in epochs 1–3) for n2's return; n2's own
  // table gave it to n2, so each withheld its acknowledgements of n2 from n4 — and n2, leading
  // n2, n4, n5 on its kept buckets, lapsed for 67 ms. Our acknowledgements on epoch 3 ended
  // when epoch 4 reached our data plane (an acknowledgement on a later table renews no peer
  // on an earlier one): they bound n4's lease on bucket 209 long before the switch. With
  // handover under `quorum` (the same search), n4 and n5 withheld theirs for buckets the other
  // held as previous owner in epoch 4 with no connection left, which n2's table released as
  // drained: a previous owner that reports nothing held in a bucket is no holder of it.
  it.each([['serve', false], ['quorum', true]] as const)('%s (handover %s): a node that switches lineages withholds nothing for a bucket it stopped acknowledging tables ago, or whose holder drained it', (policy, handover) => {
    runScenario(policy, handover, 123869, [
      { op: { kind: 'power', at: 4, node: 0, power: 1 }, waitMs: 484 }, { op: { kind: 'healthy', node: 0 }, waitMs: 475 },
      { op: { kind: 'partition', mask: 2 }, waitMs: 709 }, { op: { kind: 'oneway', from: 1, to: 0 }, waitMs: 370 },
      { op: { kind: 'healthy', node: 0 }, waitMs: 125 }, { op: { kind: 'heal' }, waitMs: 124 },
      { op: { kind: 'partition', mask: 5 }, waitMs: 507 }, { op: { kind: 'power', at: 0, node: 0, power: 0 }, waitMs: 596 },
      { op: { kind: 'healthy', node: 1 }, waitMs: 29 }, { op: { kind: 'oneway', from: 0, to: 4 }, waitMs: 475 },
    ]);
  });

  // A wider search after those (seed 22, `quorum`, handover off and on; Simulator seed
  // 619223): n2, leader, made epoch 6 freeing n5's bucket 238 (a power change), then failed
  // its check and followed n3, whose table gave bucket 238 to n3. n2's acknowledgements of n5
  // on epoch 5 ended when epoch 6 reached its data plane, but n5 had been heard since: n2
  // withheld its acknowledgements of n3, and n3, the new leader, lapsed 18 ms. n5 reported
  // epoch 6, where it has no role in bucket 238: a node never goes back to an earlier table of
  // its lineage, so our acknowledgements on epoch 5 renew it to serve nothing of that bucket.
  it.each([false, true])('quorum (handover %s): a holder already on a later table without the bucket is no holder at a switch', (handover) => {
    runScenario('quorum', handover, 619223, [
      { op: { kind: 'heal' }, waitMs: 621 }, { op: { kind: 'power', at: 1, node: 4, power: 3 }, waitMs: 97 },
      { op: { kind: 'heal' }, waitMs: 198 }, { op: { kind: 'partition', mask: 1 }, waitMs: 347 },
      { op: { kind: 'power', at: 0, node: 3, power: 1 }, waitMs: 138 }, { op: { kind: 'power', at: 4, node: 3, power: 2 }, waitMs: 105 },
      { op: { kind: 'sick', node: 1 }, waitMs: 619 }, { op: { kind: 'oneway', from: 1, to: 4 }, waitMs: 116 },
      { op: { kind: 'loss', loss: 0.1 }, waitMs: 116 },
    ]);
  });

  // The same search, once more (Simulator seed 999995, `quorum` with handover): n1, restarted
  // and leader again, published a table naming n2 previous owner of buckets n5 owned in n2's
  // epoch 13 — n2 had given them up tables before and held no connection there. n4, switching
  // to n1's table, withheld its acknowledgements of n2 for them, and n2 lapsed 32 ms on the
  // buckets it kept. A previous owner accepts only its own connections: one whose data plane
  // has no role in the bucket (its latest report) gains nothing.
  it('quorum with handover: a node named previous owner of a bucket its data plane has no role in gains nothing at a switch', () => {
    runScenario('quorum', true, 999995, [
      { op: { kind: 'oneway', from: 4, to: 0 }, waitMs: 449 }, { op: { kind: 'partition', mask: 3 }, waitMs: 732 },
      { op: { kind: 'oneway', from: 4, to: 4 }, waitMs: 254 }, { op: { kind: 'crash', node: 0 }, waitMs: 470 },
      { op: { kind: 'heal' }, waitMs: 45 }, { op: { kind: 'restart', node: 2 }, waitMs: 238 },
      { op: { kind: 'heal' }, waitMs: 398 }, { op: { kind: 'heal' }, waitMs: 60 },
      { op: { kind: 'power', at: 3, node: 2, power: 0 }, waitMs: 377 },
    ]);
  });

  for (const handover of [false, true]) {
    it(`quorum${handover ? ' with handover' : ''}: a node that switches to a rival lineage at a heal is not counted in two majorities`, () => {
      runScenario('quorum', handover, 384, [
        { op: { kind: 'resume', node: 2 }, waitMs: 615 }, { op: { kind: 'heal' }, waitMs: 361 },
        { op: { kind: 'power', at: 1, node: 4, power: 1 }, waitMs: 395 }, { op: { kind: 'loss', loss: 0 }, waitMs: 800 },
        { op: { kind: 'loss', loss: 0.1 }, waitMs: 41 }, { op: { kind: 'loss', loss: 0 }, waitMs: 482 },
        { op: { kind: 'power', at: 4, node: 2, power: 0 }, waitMs: 518 }, { op: { kind: 'heal' }, waitMs: 8 },
        { op: { kind: 'partition', mask: 1 }, waitMs: 459 }, { op: { kind: 'heal' }, waitMs: 5 },
        { op: { kind: 'partition', mask: 28 }, waitMs: 244 }, { op: { kind: 'heal' }, waitMs: 9 },
      ]);
    });
  }
});

// Found by the search of seeds 1–20 × 300 runs (docs/membership.md, "Property search").
describe('membership counterexamples of the seeds 1–20 search (fixed replays)', () => {
  // Search seed 3 with the revival check (2026-12-07): n2 paused, then n1 (the leader); at the
  // repair n2 read its backlog, n1's heartbeats from before n1's hang, and installed n1's
  // table of epoch 3 — news as old as its own hang, served by nobody (n2's lease had run
  // out). The check counts what the farm revives, not what a node catching up on its own
  // backlog reads: this stays a pass, under both policies.
  it('a node reading the backlog of its own hang installs a table of a leader that hung too: not a revival', () => {
    for (const policy of ['serve', 'quorum'] as const) {
      runScenario(policy, false, 1, [
        { op: { kind: 'pause', node: 1 }, waitMs: 0 }, { op: { kind: 'loss', loss: 0 }, waitMs: 253 },
        { op: { kind: 'pause', node: 0 }, waitMs: 0 }, { op: { kind: 'power', at: 0, node: 0, power: 0 }, waitMs: 401 },
      ]);
    }
  });

  // Search seed 9 (serve, handover off and on): n2 paused and n1 killed together. n3 led
  // n3..n5 and gave n1's and n2's buckets away; at the repair n2 resumed on n1's first table
  // (epoch 1) and n1 restarted, its start table having that very content under epoch 0. n3, n4
  // and n5, taking n1 as leader, installed n2's copy (epoch 1 ≥ n1's 0): n2, renewed on it,
  // served bucket 7 beside n3. A follower now installs a table naming its leader only once the
  // leader reports a table of its own making.
  it.each([false, true])('serve: a table of a restarted leader\'s earlier incarnation, relayed by a node back from a pause, is not installed (handover %s)', (handover) => {
    runScenario('serve', handover, 1, [{ op: { kind: 'pause', node: 1 }, waitMs: 0 }, { op: { kind: 'crash', node: 0 }, waitMs: 304 }]);
  });

  // n1, cut from n2, n4 and n5 until the heal at 1248 ms, gave n2's buckets to n3 4 ms after
  // it (n2's lease had surely run out as far as n1 knew) and was cut off alone again. n2,
  // renewed by n4 and n5 on n1's first table, refused n1's table because it left n2 out (the
  // survivors' rule) and served bucket 2 beside n3 for a whole lease. A follower now yields to
  // a leader's table that gives a bucket it serves to another node.
  it('serve with handover: a follower left out of its leader\'s table that gave its buckets away yields at once', () => {
    runScenario('serve', true, 1, [
      { op: { kind: 'partition', mask: 5 }, waitMs: 248 }, { op: { kind: 'heal' }, waitMs: 6 },
      { op: { kind: 'partition', mask: 1 }, waitMs: 0 }, { op: { kind: 'power', at: 0, node: 0, power: 0 }, waitMs: 123 },
      { op: { kind: 'partition', mask: 1 }, waitMs: 7 },
    ]);
  });

  // The same cause under 50% loss (search seed 2): n2, left out of the leader's table, kept
  // serving the buckets that table gave n3.
  it('serve: under 50% loss a follower left out of a table that gives its buckets away yields', () => {
    runScenario('serve', false, 7, [
      { op: { kind: 'loss', loss: 0.5 }, waitMs: 309 }, { op: { kind: 'oneway', from: 1, to: 0 }, waitMs: 681 },
      { op: { kind: 'heal' }, waitMs: 411 }, { op: { kind: 'heal' }, waitMs: 486 }, { op: { kind: 'heal' }, waitMs: 238 },
      { op: { kind: 'partition', mask: 10 }, waitMs: 313 }, { op: { kind: 'heal' }, waitMs: 0 },
      { op: { kind: 'power', at: 0, node: 0, power: 0 }, waitMs: 148 },
    ]);
  });

  // After a heal under 10% loss n2 became leader of n2..n5 while n3 still led n3..n5. A
  // heartbeat of n2 (its new table, which left n1 out) completed the fence n3 waited for, and
  // n3 decided at once, on the view of its last pulse: it gave itself bucket 96 0.5 ms before
  // n2 gave it to n5. A leader now decides between pulses only while no smaller-named peer
  // has become a member meanwhile.
  it('quorum: a leader does not decide between pulses once a smaller-named peer is a member (two leaders, one free bucket)', () => {
    runScenario('quorum', false, 999994, [
      { op: { kind: 'loss', loss: 0.1 }, waitMs: 48 }, { op: { kind: 'sick', node: 0 }, waitMs: 20 },
      { op: { kind: 'partition', mask: 13 }, waitMs: 490 }, { op: { kind: 'power', at: 0, node: 0, power: 0 }, waitMs: 32 },
      { op: { kind: 'oneway', from: 0, to: 2 }, waitMs: 524 }, { op: { kind: 'heal' }, waitMs: 0 },
      { op: { kind: 'loss', loss: 0.1 }, waitMs: 76 },
    ]);
  });

  // Search seeds 14 and 19: under `serve`, the sides of a partition both took the other
  // side's buckets. A node paused on one side (n2) was resumed at the heal; its first
  // heartbeats to the other side's leader n1 relayed what it had read from its queue: n5
  // alive, on a table (n3's) n1 had never seen. n1 counted n5 only by its last own heartbeat,
  // from before the partition, and gave n2 bucket 171 — which n3's table gave n5 — while n5,
  // in contact with n2, still served it. A node known only by relay to hold an unknown table
  // now blocks the leader's decision whether it is a member or not, until its table arrives.
  it('serve: a leader decides nothing while a node it has not released holds, by relay, a table it never saw', () => {
    runScenario('serve', false, 884850, [
      { op: { kind: 'partition', mask: 9 }, waitMs: 0 }, { op: { kind: 'pause', node: 1 }, waitMs: 412 },
    ]);
  });

  it('serve: the same with two paused nodes on the other side (search seed 19)', () => {
    runScenario('serve', false, 1, [
      { op: { kind: 'pause', node: 2 }, waitMs: 0 }, { op: { kind: 'pause', node: 1 }, waitMs: 0 },
      { op: { kind: 'partition', mask: 3 }, waitMs: 434 },
    ]);
  });

  // Search seed 14, again after that fix (serve, handover off and on): n2 paused on n3's side
  // of a partition n2,n3 | n1,n4,n5; n3, alone, led a view of one, took every bucket and
  // renewed its lease from its own liveness. At the repair (heal, n2 resumed) n2 relayed n3,
  // read from its queue, UP on n3's own table, which n1 had never seen; but n1 had released
  // n3 (lease wait from its last contact, fence complete) and gave n2 buckets 188 and 191,
  // which n3 still served — and n2, never cut from n3, was in contact with it. A node that a
  // relay shows alive and UP on a table since its last heartbeat is no longer released.
  it.each([
    [false, 884848, 0, 572],
    [true, 884740, 552, 433],
  ])('serve: a node alone on its side, relayed UP by a node back from a pause, keeps its buckets at the heal (handover %s)', (handover, seed, paused, waitMs) => {
    runScenario('serve', handover, seed, [
      { op: { kind: 'partition', mask: 6 }, waitMs: 0 }, { op: { kind: 'pause', node: 1 }, waitMs: paused }, wait(waitMs),
    ]);
  });

  // Search seed 18: after a heal under 50% loss n1 became leader of all five while n2, which
  // had not heard n1 as a member yet, still led n2..n5. They published tables 0.7 ms apart,
  // giving bucket 8 (unowned in both tables before) to n3 and to n2. A leader now gives no
  // owner to a bucket that another member still acting as leader leaves unowned, until that
  // member follows it.
  it('serve: a new leader does not give away a bucket a member still acting as leader leaves unowned', () => {
    runScenario('serve', false, 15, [
      { op: { kind: 'partition', mask: 23 }, waitMs: 1372 }, { op: { kind: 'partition', mask: 1 }, waitMs: 499 },
      { op: { kind: 'power', at: 0, node: 0, power: 1 }, waitMs: 196 }, { op: { kind: 'loss', loss: 0.1 }, waitMs: 53 },
      { op: { kind: 'heal' }, waitMs: 100 }, { op: { kind: 'loss', loss: 0.5 }, waitMs: 30 },
    ]);
  });

  // Search seed 11: n3, alone on its side, had taken every bucket (its own table, epoch 11);
  // after the heal n3 and n4 were cut off together from n2, whom both followed, and n4 on
  // n2's table (epoch 8) served bucket 2 beside n3 until their leases ran out. n3 refused
  // n2's table as older (the epochs of two sides are not ordered). A follower now yields to
  // its leader's table that gives a bucket it serves to another node whatever the epochs,
  // when its own table is another leader's.
  it('serve: after a heal a follower yields to its new leader\'s table even under a lower epoch', () => {
    runScenario('serve', false, 454492, [
      { op: { kind: 'partition', mask: 1 }, waitMs: 355 }, { op: { kind: 'heal' }, waitMs: 562 },
      { op: { kind: 'partition', mask: 5 }, waitMs: 590 }, { op: { kind: 'partition', mask: 1 }, waitMs: 449 },
      { op: { kind: 'heal' }, waitMs: 31 }, { op: { kind: 'partition', mask: 12 }, waitMs: 47 },
      { op: { kind: 'restart', node: 0 }, waitMs: 72 }, { op: { kind: 'partition', mask: 1 }, waitMs: 10 },
    ]);
  });

  // Search seed 11 again, after the rivals' rule: n1 and n2 both published epoch 8 after a
  // heal, every bucket unowned in both (one digest: a digest covers owners, not the view). n1
  // left n2's free buckets unowned while n2 acted as leader, so its table never changed, and
  // n2 and its followers never installed n1's same-epoch table: no table again, no bucket
  // served. A leader now republishes while a member is on another leader's table.
  it('serve: a leader republishes while a member is still on a rival\'s table (no deadlock on one digest)', () => {
    runScenario('serve', false, 454492, [
      { op: { kind: 'partition', mask: 1 }, waitMs: 437 }, { op: { kind: 'partition', mask: 6 }, waitMs: 449 },
      { op: { kind: 'heal' }, waitMs: 54 }, { op: { kind: 'partition', mask: 1 }, waitMs: 16 },
    ]);
  });

  // A lossy partition (search seed 1): under 50% loss n4 heard none of n1 and n3 for 5 pulses,
  // led a view of its own and, after the lease wait, took bucket 0, which n1 had meanwhile
  // given n3. Under `serve` that is a side of a partition serving (n4 cannot tell it from n1's
  // and n3's death); the simulator counts a run of lost datagrams after which the receiver
  // lost the sender as a cut link, and contact starts afresh when one gets through.
  it('serve: a node that lost its peers to 50% loss is a side of a partition, not in contact', () => {
    runScenario('serve', false, 644074, [
      { op: { kind: 'loss', loss: 0.5 }, waitMs: 0 }, { op: { kind: 'partition', mask: 4 }, waitMs: 299 },
      { op: { kind: 'heal' }, waitMs: 571 }, { op: { kind: 'power', at: 4, node: 0, power: 0 }, waitMs: 7 },
      { op: { kind: 'partition', mask: 18 }, waitMs: 770 }, { op: { kind: 'power', at: 2, node: 0, power: 0 }, waitMs: 9 },
      { op: { kind: 'sick', node: 1 }, waitMs: 250 },
    ]);
  });

  // Found with the new leader's immediate first table (Leadership.takesOverAtOnce), search
  // seed 3 under `quorum`: n2→n5, n3→n4 and n2→n4 cut one way, then n1 isolated. n2 took over
  // at once; n4, which hears neither n2 nor n3, took n3 for leader and stayed on n1's table,
  // so n5's acknowledgements (a majority: n3 and n4 on n2's lineage) fell short and its lease
  // lapsed. A new leader now takes over at once only when every member hears it.
  it('quorum: a new leader does not take over at once while a member does not hear it', () => {
    runScenario('quorum', false, 1, [
      { op: { kind: 'oneway', from: 1, to: 4 }, waitMs: 0 }, { op: { kind: 'oneway', from: 2, to: 3 }, waitMs: 0 },
      { op: { kind: 'oneway', from: 1, to: 3 }, waitMs: 0 }, { op: { kind: 'partition', mask: 1 }, waitMs: 359 },
    ]);
  });
});

// Found by the search with slow installs (FARMLB_PROPERTY_INSTALL_MS=5,150; docs/membership.md,
// "Property search").
describe('membership counterexamples with slow installs (fixed replays)', () => {
  // Slow-install search seed 1 (`serve`; Simulator seed 999994), with the check at a silence's
  // deadline: n1, leading its side of a partition, found n2 and then n3 lost by two checks
  // 10 ms apart — two tables (epochs 15 and 16, giving their buckets away) queued behind a
  // data plane already ~600 ms behind. They went out after the heal, when n2 had rejoined
  // and renewed on n1's earlier tables: n5 installed epoch 16 and served bucket 47 beside n2
  // at 3094.9 ms. Checks now run only while no table is being installed (a busy data plane is
  // left to the pulse, as before checks).
  // Slow-install search seed 6 (`serve`, handover off and on; Simulator seed 677357), with the
  // check at a silence's deadline: n2, leading n2 and n4 in a partition, decided at a heal
  // (4377.9 ms) a table (epoch 16) taking bucket 93, renewed on its own lineage, and took n1
  // for leader 42 ms later while that table was still being installed — its heartbeats still
  // named its installed table's leader, itself, so the lease gate saw no lineage left and
  // revoked nothing. Epoch 16 landed; n2 served bucket 93 on that renewal beside n4, which had
  // installed n1's epoch 19 giving it 93 (4564.0 ms). The gate now takes the leader a decision
  // takes (its `leader` event) as the lineage it follows.
  it('serve: a leader that gives way while its own table taking a bucket is on its way revokes at once', () => {
    for (const handover of [false, true]) {
      runScenario('serve', handover, 677357, [
        { op: { kind: 'partition', mask: 10 }, waitMs: 465 }, { op: { kind: 'partition', mask: 22 }, waitMs: 664 },
        { op: { kind: 'loss', loss: 0.1 }, waitMs: 585 }, { op: { kind: 'loss', loss: 0.5 }, waitMs: 488 },
        { op: { kind: 'heal' }, waitMs: 349 }, { op: { kind: 'loss', loss: 0.2 }, waitMs: 291 },
        { op: { kind: 'partition', mask: 10 }, waitMs: 530 }, { op: { kind: 'heal' }, waitMs: 266 }, { op: { kind: 'heal' }, waitMs: 275 },
      ], [5, 150]);
    }
  });

  it('serve: no check between pulses adds a table behind a data plane that is still installing', () => {
    runScenario('serve', false, 999994, [
      { op: { kind: 'oneway', from: 2, to: 4 }, waitMs: 59 }, { op: { kind: 'power', at: 0, node: 2, power: 2 }, waitMs: 646 },
      { op: { kind: 'partition', mask: 9 }, waitMs: 166 }, { op: { kind: 'partition', mask: 7 }, waitMs: 261 },
      { op: { kind: 'heal' }, waitMs: 80 }, { op: { kind: 'partition', mask: 25 }, waitMs: 431 }, { op: { kind: 'heal' }, waitMs: 26 },
    ], [5, 150]);
  });

  // Slow-install search seed 9 (`quorum` with handover; Simulator seed 119562): n2 reported
  // its own epoch 34 (made while it led its side, reported with no leader once it followed
  // n1) after it had installed n1's epoch 34 of n1's new leadership, which gave it bucket 203.
  // n1 counted, for n2, only its tables above the epoch n2 reported, so not that one, and gave
  // bucket 203 to itself: both served it at 5357.6 ms. Epochs order one leadership's tables
  // only: a peer reporting another leader's table may hold any table of ours.
  it('quorum with handover: a peer reporting a table of another lineage may hold any of our tables, whatever its epoch', () => {
    runScenario('quorum', true, 119562, [
      { op: { kind: 'power', at: 3, node: 1, power: 3 }, waitMs: 393 }, { op: { kind: 'crash', node: 1 }, waitMs: 797 },
      { op: { kind: 'oneway', from: 1, to: 4 }, waitMs: 792 }, { op: { kind: 'restart', node: 1 }, waitMs: 797 },
      { op: { kind: 'resume', node: 3 }, waitMs: 573 }, { op: { kind: 'oneway', from: 4, to: 3 }, waitMs: 11 },
      { op: { kind: 'loss', loss: 0.2 }, waitMs: 106 }, { op: { kind: 'partition', mask: 14 }, waitMs: 290 },
      { op: { kind: 'heal' }, waitMs: 5 }, { op: { kind: 'heal' }, waitMs: 237 }, { op: { kind: 'crash', node: 0 }, waitMs: 7 },
    ], [5, 150]);
  });

  // Search seeds 3 and 4 (quorum, handover; found again on the engine of main's
  // answersMissedAck as Simulator seed 19): a follower that led, or followed a rival, up to
  // some epoch and then followed a leader whose tables were at lower epochs, its data plane
  // behind: its holdings sample under its own earlier table of an epoch (owner there: nothing
  // held as previous owner) was read under the new leader's table of the same epoch (previous
  // owner), and the leader ended that handover as drained while it still held connections
  // and served them. Samples of an epoch two lineages used say nothing now (holdingsFloorEpoch).
  // Search seed 2 (every property; quorum without handover shown): n3, paused 2.1 s and
  // released meanwhile (its bucket 33 given to n5), resumed with its data plane on the table
  // it left with, n1's epoch 1 — of n1's lineage, like the tables queued behind it. A
  // renewal written early served bucket 33 from it beside n5. An early renewal now needs
  // the earlier tables to accept nothing its latest table does not (lease-gate.ts).
  it('quorum: a node back from a pause writes no early renewal over the table it left with', () => {
    runScenario('quorum', false, 945293, [
      { op: { kind: 'pause', node: 2 }, waitMs: 402 }, { op: { kind: 'resume', node: 4 }, waitMs: 355 },
      { op: { kind: 'oneway', from: 0, to: 0 }, waitMs: 471 }, { op: { kind: 'partition', mask: 8 }, waitMs: 181 },
      { op: { kind: 'loss', loss: 0 }, waitMs: 757 },
    ], [5, 150]);
  });

  it('quorum with handover: a holdings sample under an own earlier table of the same epoch does not end a handover', () => {
    runScenario('quorum', true, 19, [
      { op: { kind: 'heal' }, waitMs: 263 }, { op: { kind: 'power', at: 0, node: 3, power: 0 }, waitMs: 647 },
      { op: { kind: 'crash', node: 0 }, waitMs: 62 }, { op: { kind: 'heal' }, waitMs: 10 },
      { op: { kind: 'power', at: 1, node: 4, power: 0 }, waitMs: 560 }, { op: { kind: 'power', at: 2, node: 3, power: 0 }, waitMs: 163 },
      { op: { kind: 'pause', node: 2 }, waitMs: 295 },
    ], [5, 150]);
  });

  // Slow-install search seed 1 (serve, handover), on a gate that held back every early
  // heartbeat of a node whose data plane had a table of its own making it had left: such a
  // node went silent for as long as its queue of installs, and the farm took 7.9 s to
  // converge after the repair instead of 5.6 (past the bound). The gate now sends those
  // heartbeats, reporting that table with no leader.
  it('serve with handover: a node that left its own leadership keeps heartbeating through its queued installs', () => {
    runScenario('serve', true, 556390, [
      { op: { kind: 'crash', node: 0 }, waitMs: 485 }, { op: { kind: 'oneway', from: 0, to: 0 }, waitMs: 234 },
      { op: { kind: 'power', at: 1, node: 0, power: 0 }, waitMs: 322 }, { op: { kind: 'power', at: 0, node: 0, power: 0 }, waitMs: 503 },
      { op: { kind: 'sick', node: 3 }, waitMs: 435 }, { op: { kind: 'partition', mask: 11 }, waitMs: 694 },
      { op: { kind: 'heal' }, waitMs: 735 }, { op: { kind: 'crash', node: 4 }, waitMs: 611 },
      { op: { kind: 'oneway', from: 0, to: 0 }, waitMs: 286 }, { op: { kind: 'oneway', from: 2, to: 0 }, waitMs: 683 },
      { op: { kind: 'oneway', from: 1, to: 0 }, waitMs: 607 },
    ], [5, 150]);
  });

  // Slow-install search seed 3 (quorum, no handover; Simulator seed 19, the steps of the
  // handover replay above): n1 restarted at the repair with the table it had adopted (bucket 1
  // its own). n2, leading n2, n4, n5, had freed bucket 1 (n3 paused) and queued a table giving
  // it to itself behind slow installs; its heartbeats reported the table leaving it unowned.
  // n1, leader, kept bucket 1 from its adopted table — the rivals rule spared buckets our own
  // table already gives us — and n2's table then landed: bucket 1 served by n1 and n2
  // (3276.1 ms). A leaderless table of ours (adopted, set aside) is no such claim now.
  it('quorum: a restarted leader keeps no bucket of its adopted table that a rival leader left unowned', () => {
    runScenario('quorum', false, 19, [
      { op: { kind: 'heal' }, waitMs: 263 }, { op: { kind: 'power', at: 0, node: 3, power: 0 }, waitMs: 647 },
      { op: { kind: 'crash', node: 0 }, waitMs: 62 }, { op: { kind: 'heal' }, waitMs: 10 },
      { op: { kind: 'power', at: 1, node: 4, power: 0 }, waitMs: 560 }, { op: { kind: 'power', at: 2, node: 3, power: 0 }, waitMs: 163 },
      { op: { kind: 'pause', node: 2 }, waitMs: 295 },
    ], [5, 150]);
  });

  // Slow-install search, 2026-12-07 (FARMLB_PROPERTY_INSTALL_MS=5,150, seeds 1–16 × 60 runs
  // per property): a table of a lineage the engine had left landed after it, under a renewal
  // of that lineage. Simulator seed 660081 (serve): n4 was installing n2's table giving it
  // bucket 132 when it followed n1 back from a partition; n1, on n4's report of the table
  // before, gave bucket 132 to n5, and n4's install then landed — both served it at 4786.2
  // ms. Seed 5 (serve, handover): n2 lost n1 and led its side on a table taking bucket 152
  // while n1's tables still landed at n4, which kept to n1 (at 4459.9 ms). Seed 368250 (serve,
  // handover): the same with bucket 11, n1 and n2. A decision that leaves the lineage of a
  // table still on its way now revokes the lease at once, and no renewal of that lineage is
  // written after it (lease-gate.ts, leaves()).
  it('serve: a follower whose data plane still installs its former leader\'s table serves nothing of it', () => {
    runScenario('serve', false, 660081, [
      { op: { kind: 'loss', loss: 0.1 }, waitMs: 648 }, { op: { kind: 'loss', loss: 0 }, waitMs: 263 },
      { op: { kind: 'partition', mask: 14 }, waitMs: 120 }, { op: { kind: 'oneway', from: 0, to: 3 }, waitMs: 766 },
      { op: { kind: 'partition', mask: 16 }, waitMs: 334 }, { op: { kind: 'oneway', from: 3, to: 2 }, waitMs: 349 },
      { op: { kind: 'healthy', node: 3 }, waitMs: 110 }, { op: { kind: 'sick', node: 0 }, waitMs: 48 },
      { op: { kind: 'partition', mask: 24 }, waitMs: 552 }, { op: { kind: 'heal' }, waitMs: 348 },
    ], [5, 150]);
  });

  it('serve with handover: a node leading its side while its former leader\'s tables still land elsewhere', () => {
    runScenario('serve', true, 5, [
      { op: { kind: 'oneway', from: 1, to: 1 }, waitMs: 351 }, { op: { kind: 'heal' }, waitMs: 438 },
      { op: { kind: 'heal' }, waitMs: 2 }, { op: { kind: 'heal' }, waitMs: 727 },
      { op: { kind: 'partition', mask: 12 }, waitMs: 738 }, { op: { kind: 'power', at: 1, node: 0, power: 2 }, waitMs: 406 },
      { op: { kind: 'heal' }, waitMs: 434 }, { op: { kind: 'partition', mask: 1 }, waitMs: 33 },
      { op: { kind: 'oneway', from: 2, to: 1 }, waitMs: 269 },
    ], [5, 150]);
  });

  it('serve with handover: the same at a heal, bucket 11', () => {
    runScenario('serve', true, 368250, [
      { op: { kind: 'partition', mask: 8 }, waitMs: 451 }, { op: { kind: 'heal' }, waitMs: 587 },
      { op: { kind: 'loss', loss: 0.1 }, waitMs: 479 }, { op: { kind: 'partition', mask: 30 }, waitMs: 12 },
      { op: { kind: 'oneway', from: 2, to: 4 }, waitMs: 587 }, { op: { kind: 'power', at: 2, node: 2, power: 0 }, waitMs: 730 },
      { op: { kind: 'loss', loss: 0.5 }, waitMs: 275 }, { op: { kind: 'oneway', from: 4, to: 1 }, waitMs: 485 },
    ], [5, 150]);
  });

  // Slow-install search seed 12 (serve; Simulator seed 898248): n2, leader, back from a 545 ms
  // hang, decided tables out of turn while reading its backlog (the fence it had waited for,
  // complete in old news) and reported its table of before the hang under its lead while
  // they queued; n5, which had led alone meanwhile, installed that table — a revival. A node
  // away longer than a leader is lost after now leads again as a new leader (its table set
  // aside), and decides nothing out of turn while its own pulse is overdue.
  it('serve: a leader back from a long hang revives nothing while its new tables queue', () => {
    runScenario('serve', false, 898248, [
      { op: { kind: 'crash', node: 2 }, waitMs: 706 }, { op: { kind: 'power', at: 1, node: 3, power: 2 }, waitMs: 446 },
      { op: { kind: 'heal' }, waitMs: 340 }, { op: { kind: 'heal' }, waitMs: 320 },
      { op: { kind: 'partition', mask: 19 }, waitMs: 103 }, { op: { kind: 'partition', mask: 26 }, waitMs: 284 },
      { op: { kind: 'pause', node: 1 }, waitMs: 545 },
    ], [5, 150]);
  });

  // Slow-install search seed 13 (quorum; Simulator seed 254836): n2, n3 and n4, cut off on
  // n1's epoch 4 (bucket 8: n3), while n1 and n5 went on and n1 gave bucket 8 to n5 (its fence
  // counts live peers only, and it had lost n2 and n4). At the repair n3, leading the three,
  // renewed on epoch 4 from n2's and n4's acknowledgements and served bucket 8 beside n5,
  // though n1's own heartbeats showed epoch 7 and later, without n3. No renewal now on a table
  // whose leader has moved on without us (InstalledTables.leftBehind).
  it('quorum: nodes left behind on their former leader\'s table do not renew each other on it', () => {
    runScenario('quorum', false, 254836, [
      { op: { kind: 'power', at: 0, node: 2, power: 2 }, waitMs: 71 }, { op: { kind: 'oneway', from: 4, to: 2 }, waitMs: 553 },
      { op: { kind: 'oneway', from: 0, to: 2 }, waitMs: 74 }, { op: { kind: 'oneway', from: 3, to: 1 }, waitMs: 42 },
      { op: { kind: 'partition', mask: 10 }, waitMs: 324 }, { op: { kind: 'partition', mask: 6 }, waitMs: 386 },
      { op: { kind: 'pause', node: 0 }, waitMs: 168 },
    ], [5, 150]);
  });

  // Slow-install search seed 23 (serve, handover off and on; Simulator seed 18): n2, back from
  // an 863 ms hang and following n1, still reported its own pre-hang table (epoch 8) under its
  // name; n5, restarting and taking n2 for its leader, installed it — a revival. A node away
  // longer than a leader is lost after sets its own table aside at its first pulse, leading
  // or not.
  it('serve: a node back from a long hang that follows another reports its own old table with no leader', () => {
    runScenario('serve', false, 18, [
      { op: { kind: 'crash', node: 4 }, waitMs: 705 }, { op: { kind: 'power', at: 4, node: 4, power: 1 }, waitMs: 131 },
      { op: { kind: 'heal' }, waitMs: 580 }, { op: { kind: 'heal' }, waitMs: 383 },
      { op: { kind: 'partition', mask: 4 }, waitMs: 256 }, { op: { kind: 'power', at: 1, node: 0, power: 0 }, waitMs: 336 },
      { op: { kind: 'partition', mask: 1 }, waitMs: 789 }, { op: { kind: 'pause', node: 1 }, waitMs: 196 },
      { op: { kind: 'power', at: 2, node: 3, power: 3 }, waitMs: 312 }, { op: { kind: 'oneway', from: 4, to: 0 }, waitMs: 355 },
    ], [5, 150]);
  });

  // Simulator seed 836648 (serve, handover), found with early renewals on an earlier form of
  // the lease gate: at the repair n4 installed n1's table of epoch 1, reported by n1 back from
  // a 2.9 s pause, while n2 still served connections there as previous owner. The lease gate's
  // final rule kept n2 from serving beside it, but the revival itself remained: n1's early
  // heartbeats (heartbeat-gate.ts) reported the table its data plane still had, under leader
  // n1, while n1 already followed n4 — the simulator's revival check fails here without the
  // gate's rule for tables of our own making we have left (docs/membership.md, "Property search").
  it('serve with handover: a leader back from a 2.9 s pause, slow installs and early renewals', () => {
    runScenario('serve', true, 836648, [
      { op: { kind: 'pause', node: 0 }, waitMs: 332 }, { op: { kind: 'loss', loss: 0 }, waitMs: 432 },
      { op: { kind: 'power', at: 4, node: 4, power: 2 }, waitMs: 550 }, { op: { kind: 'resume', node: 2 }, waitMs: 92 },
      { op: { kind: 'oneway', from: 2, to: 1 }, waitMs: 148 }, { op: { kind: 'loss', loss: 0.2 }, waitMs: 375 },
      { op: { kind: 'loss', loss: 0.5 }, waitMs: 56 }, { op: { kind: 'partition', mask: 7 }, waitMs: 134 },
      { op: { kind: 'oneway', from: 2, to: 0 }, waitMs: 52 }, { op: { kind: 'oneway', from: 3, to: 2 }, waitMs: 176 },
      { op: { kind: 'power', at: 4, node: 3, power: 2 }, waitMs: 602 },
    ], [5, 150]);
  });

  // Slow-install search seed 1 (serve with handover, 60 runs, run 32): 8.0 s to converge after
  // the repair against the bound of 7.35 s. n1 (power 0) led; the followers' installs lagged up
  // to 950 ms behind its tables. A handover cut at the limit gave its bucket to the new owner
  // (the cut previous owner no longer counts); at the next table the previous owner's lagging
  // report, still on a table naming it previous owner, held the new owner back in place, and a
  // table later the bucket went back to it — 87 tables after the repair, each installed by
  // every node. That claim no longer holds the owner back (leadership.ts, releasedPrevs): 26
  // tables, 3.0 s. (docs/membership.md, "Property search", "With slow installs".)
  it('serve with handover: a previous owner cut at the limit, its installs lagging, does not hold the new owner back at the next table', () => {
    runScenario('serve', true, 556530, [
      { op: { kind: 'healthy', node: 4 }, waitMs: 487 }, { op: { kind: 'power', at: 0, node: 0, power: 3 }, waitMs: 595 },
      { op: { kind: 'oneway', from: 0, to: 4 }, waitMs: 234 }, { op: { kind: 'power', at: 1, node: 0, power: 0 }, waitMs: 322 },
      { op: { kind: 'power', at: 4, node: 1, power: 1 }, waitMs: 503 }, { op: { kind: 'sick', node: 3 }, waitMs: 435 },
      { op: { kind: 'partition', mask: 20 }, waitMs: 694 }, { op: { kind: 'heal' }, waitMs: 735 },
      { op: { kind: 'crash', node: 4 }, waitMs: 611 }, { op: { kind: 'oneway', from: 2, to: 2 }, waitMs: 286 },
      { op: { kind: 'oneway', from: 3, to: 0 }, waitMs: 683 }, { op: { kind: 'oneway', from: 1, to: 0 }, waitMs: 615 },
    ], [5, 150]);
  });

  // Simulator seed 999994 (search seed 1, run 20; serve with handover), the double serving
  // reported as past the contact grace. Traced on 3c88b3e, where it fails: n2 and n3, on the
  // same side and in contact throughout (the grace plays no part), served bucket 0 at 2887.4 ms.
  // n2, leading n2 and n3 before the heal, decided a table giving itself bucket 0 while its
  // data plane lagged (its early heartbeats reported the older tables, bucket 0 unowned);
  // after the heal n3 followed n1 and installed the table n1's lagging data plane reported
  // (made before the partition was seen, bucket 0 to n3), renewed on n1's tables; n2's queue
  // then landed its own table with a renewal decided on n3's acknowledgements. It passes
  // since e2a2d1f (the heartbeat gate's rule for a left own table), by a change of timing:
  // the hidden decided table is the open item of "Property search". Kept as a replay.
  it('serve with handover: seed 999994, a leader\'s decided table hidden by its early heartbeats at a heal (replay)', () => {
    runScenario('serve', true, 999994, [
      { op: { kind: 'oneway', from: 2, to: 4 }, waitMs: 59 }, { op: { kind: 'power', at: 0, node: 2, power: 2 }, waitMs: 646 },
      { op: { kind: 'partition', mask: 9 }, waitMs: 166 }, { op: { kind: 'partition', mask: 7 }, waitMs: 261 },
      { op: { kind: 'heal' }, waitMs: 80 }, { op: { kind: 'partition', mask: 25 }, waitMs: 431 },
      { op: { kind: 'heal' }, waitMs: 26 },
    ], [5, 150]);
  });
});
