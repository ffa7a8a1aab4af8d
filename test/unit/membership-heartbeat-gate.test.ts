// HeartbeatGate (src/membership/heartbeat-gate.ts): while a table is being installed, a
// heartbeat of a decision without a table leaves at once reporting the data plane's table;
// a decision's own heartbeat overtaken that way is replaced by a fresh one once applied.

import { describe, expect, it } from 'vitest';
import { HeartbeatGate } from '../../src/membership/heartbeat-gate.js';
import type { EngineOutput, Heartbeat, ViewTable } from '../../src/membership/types.js';

function hb(seq: number, epoch: number): Heartbeat {
  return {
    v: 2, module: 'farm', from: 'n1', incarnation: 1n, seq, sentAtNs: BigInt(seq), state: 'UP', cause: '', configDigest: 'd',
    epoch, leader: 'n1', view: ['n1', 'n2'], tableDigest: `t${epoch}`, table: [`rows${epoch}`],
    ...(epoch === 2 ? { prev: ['prev2'] } : {}),
    powers: { version: 0, origin: '', entries: [] }, acks: [{ node: 'n2', incarnation: 1n, seq: seq * 10 }], heard: [],
  };
}
const table = (epoch: number) => ({ epoch } as unknown as ViewTable);
const decision = (send?: Heartbeat, epoch?: number): EngineOutput =>
  ({ state: 'UP', cause: '', events: [], ...(send ? { send } : {}), ...(epoch !== undefined ? { table: table(epoch) } : {}) });

describe('HeartbeatGate', () => {
  it('sends in order when nothing is being installed', () => {
    const gate = new HeartbeatGate();
    const d = decision(hb(1, 1));
    expect(gate.early(d)).toEqual({ queued: d });
    expect(gate.applied(d, () => { throw new Error('no fresh heartbeat needed'); })).toBe(d.send);
  });

  it('lets a heartbeat leave during an install, reporting the installed table, and replaces the overtaken one', () => {
    const gate = new HeartbeatGate();
    const first = decision(hb(1, 1));
    gate.early(first);
    gate.applied(first, () => hb(99, 1));
    // A table decision (epoch 2) is queued; its heartbeat waits for the install.
    const install = decision(hb(2, 2), 2);
    expect(gate.early(install)).toEqual({ queued: install });
    // A tick meanwhile: its heartbeat leaves now with the table of epoch 1, acks and seq its own.
    const tick = decision(hb(3, 2));
    const { now, queued } = gate.early(tick);
    expect(now).toMatchObject({ seq: 3, epoch: 1, tableDigest: 't1', table: ['rows1'], acks: [{ seq: 30 }] });
    expect(now!.prev).toBeUndefined();
    expect(queued.send).toBeUndefined();
    // The install completes: its own heartbeat (seq 2) would be dropped as replayed; a fresh one goes instead.
    const fresh = hb(4, 2);
    expect(gate.applied(install, () => fresh)).toBe(fresh);
    // The tick's decision, queued without its heartbeat, sends nothing more.
    expect(gate.applied(queued, () => { throw new Error('none'); })).toBeUndefined();
    // Nothing pending: in order again.
    const next = decision(hb(5, 2));
    expect(gate.early(next).now).toBeUndefined();
    expect(gate.applied(next, () => hb(0, 0))).toBe(next.send);
  });

  // Simulator seed 836648 (serve, handover, slow installs): n1, leader before a 2.9 s hang,
  // resumed and followed n4 (the farm's leader meanwhile) while its data plane still had
  // its own table of epoch 1; its early heartbeats reported that table under leader n1, and
  // n4, taking n1 for leader again, installed it — a table from before the hang, revived.
  // Such a table is now reported with no leader (as a table set aside): rows and view as the
  // data plane has them, no claim to lead on them.
  it('an early heartbeat reports a table of our own making we have left with no leader', () => {
    const gate = new HeartbeatGate();
    const own = decision(hb(1, 1));
    gate.early(own);
    gate.applied(own, () => hb(99, 1));
    // Now following n4: its table (epoch 7) is being installed (its own heartbeat waits for it).
    const follow = decision({ ...hb(2, 7), leader: 'n4' }, 7);
    expect(gate.early(follow)).toEqual({ queued: follow });
    // A tick meanwhile leaves early: our old table, its rows and view, no leader — and no
    // acknowledgement: on the lineage the engine left it would renew what the engine has
    // stopped standing behind (engine/tables.ts holdAcksAtSwitch).
    const tick = decision({ ...hb(3, 7), leader: 'n4' });
    expect(gate.early(tick).now).toMatchObject({ seq: 3, epoch: 1, leader: null, tableDigest: 't1', table: ['rows1'], view: ['n1', 'n2'], acks: [] });
    // The same with our table set aside as leader again (leader none).
    expect(gate.early(decision({ ...hb(4, 8), leader: null })).now).toMatchObject({ seq: 4, epoch: 1, leader: null });
    // Once n4's table is installed, a heartbeat during the next install reports it as it is.
    expect(gate.applied(follow, () => ({ ...hb(5, 7), leader: 'n4' }))).toMatchObject({ seq: 5, leader: 'n4' });
    gate.early(decision({ ...hb(6, 8), leader: 'n4' }, 8));
    expect(gate.early(decision({ ...hb(7, 8), leader: 'n4' })).now).toMatchObject({ seq: 7, epoch: 7, leader: 'n4' });
  });

  it('as leader again, our old table is reported with no leader until a decision since is applied, even once the new lineage decides', () => {
    const gate = new HeartbeatGate();
    const own = decision(hb(1, 1));
    gate.early(own);
    gate.applied(own, () => hb(99, 1));
    // An install under way (a table of another leader that we then leave again: any table).
    const other = decision({ ...hb(2, 5), leader: 'n4' }, 5);
    gate.early(other);
    // Leader again: our table set aside (leader none), then our first table of the new lineage.
    expect(gate.early(decision({ ...hb(3, 6), leader: null })).now).toMatchObject({ epoch: 1, leader: null });
    expect(gate.early(decision(hb(4, 7), 7)).now).toMatchObject({ epoch: 1, leader: null });
    // n4's table installed: from then on the data plane's table is not one we left.
    expect(gate.applied(other, () => hb(5, 7))).toMatchObject({ seq: 5 });
    expect(gate.early(decision(hb(6, 7))).now).toMatchObject({ seq: 6, epoch: 5, leader: 'n4' });
  });

  it('an own table installed from a decision made before we left is reported with no leader, also by the fresh heartbeat', () => {
    const gate = new HeartbeatGate();
    const start = decision({ ...hb(1, 1), leader: 'n4' });
    gate.early(start);
    gate.applied(start, () => hb(99, 1));
    // Our own table (epoch 2) is being installed; meanwhile we follow n4 again (epoch 3):
    // that heartbeat leaves early with n4's table of epoch 1, the data plane's.
    const mine = decision(hb(2, 2), 2);
    gate.early(mine);
    const follow = decision({ ...hb(3, 3), leader: 'n4' }, 3);
    expect(gate.early(follow).now).toMatchObject({ seq: 3, epoch: 1, leader: 'n4' });
    // Our table lands first: the data plane has a table of ours we have already left. The
    // fresh heartbeat that replaces the overtaken one reports it with no leader, as does a tick's.
    expect(gate.applied(mine, () => ({ ...hb(4, 3), leader: 'n4' }))).toMatchObject({ seq: 4, epoch: 2, leader: null });
    expect(gate.early(decision({ ...hb(5, 3), leader: 'n4' })).now).toMatchObject({ seq: 5, epoch: 2, leader: null });
    // n4's table applied: reported as it is again.
    gate.applied(follow, () => ({ ...hb(6, 3), leader: 'n4' }));
    gate.early(decision({ ...hb(7, 4), leader: 'n4' }, 4));
    expect(gate.early(decision({ ...hb(8, 4), leader: 'n4' })).now).toMatchObject({ seq: 8, epoch: 3, leader: 'n4' });
  });

  it('reports the table just applied in a fresh heartbeat while another install is still pending', () => {
    const gate = new HeartbeatGate();
    const first = decision(hb(1, 1));
    gate.early(first);
    gate.applied(first, () => hb(99, 1));
    const a = decision(hb(2, 2), 2);
    const b = decision(hb(3, 3), 3);
    expect(gate.early(a).now).toBeUndefined();
    // A table queued behind another install (a leader's table per pulse): its heartbeat leaves
    // now with the installed table, and stays queued for a fresh one once its table is in.
    const bEarly = gate.early(b);
    expect(bEarly.now).toMatchObject({ seq: 3, epoch: 1 });
    expect(bEarly.queued).toBe(b);
    expect(gate.early(decision(hb(4, 3))).now!.epoch).toBe(1);
    const sent = gate.applied(a, () => hb(5, 3))!;
    expect(sent).toMatchObject({ seq: 5, epoch: 2, tableDigest: 't2', prev: ['prev2'] });
    expect(gate.applied(b, () => hb(6, 3))).toMatchObject({ seq: 6, epoch: 3, tableDigest: 't3' });
  });

  it('a failed install reports nothing new and does not keep the gate open', () => {
    const gate = new HeartbeatGate();
    const first = decision(hb(1, 1));
    gate.early(first);
    gate.applied(first, () => hb(99, 1));
    const install = decision(hb(2, 2), 2);
    gate.early(install);
    gate.failed(install);
    expect(gate.early(decision(hb(3, 2))).now).toBeUndefined();
  });
});
