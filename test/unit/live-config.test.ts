// Configuration changes a running membership farm takes by a reload (docs/operations.md,
// "Changing the configuration"): which changes are live (src/config/live-change.ts), and the
// engine's staged switch — advertised in every heartbeat, taken by every node once every
// node has it, with nobody dropping out of the view meanwhile (src/membership/engine.ts).

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseClusterConfig, parseFarmConfig } from '../../src/config/index.js';
import { liveChangeProblem } from '../../src/config/live-change.js';
import { decodeHeartbeat, encodeHeartbeat } from '../../src/membership/codec.js';
import { Simulator } from '../helpers/membership-sim.js';

const FIX = path.resolve(import.meta.dirname, '../fixtures/configs');

const farmXml = (groups: string, vip = '192.168.1.222') => `<safe><service mode="farm"><vip><interface_list><interface>
  <virtual_interface type="vmac_directed"><virtual_addr addr="${vip}" where="alias"/></virtual_interface>
  </interface></interface_list><loadbalancing_list>${groups}</loadbalancing_list></vip></service></safe>`;
const hosts = (p1: number) => `<cluster><host name="node1" power="${p1}"/><host name="node2" power="1"/><host name="node3" power="1"/></cluster>`;

describe('liveChangeProblem', async () => {
  const cluster = parseClusterConfig(await readFile(path.join(FIX, 'cluster.xml'), 'utf8'), 'cluster.xml');
  const farm = (xml: string) => parseFarmConfig(xml, 'userconfig.xml');
  const base = farm(farmXml(`<group name="web">${hosts(1)}<rule port="80" proto="tcp" filter="on_addr"/></group><group name="other"><rule port="53" proto="udp" filter="on_port"/></group>`));

  it('takes a power change and a rule for new traffic (a port no rule served)', () => {
    const next = farm(farmXml(`<group name="web">${hosts(3)}<rule port="80" proto="tcp" filter="on_addr"/><rule port="8080" proto="tcp" filter="on_port"/></group><group name="other"><rule port="53" proto="udp" filter="on_port"/></group>`));
    expect(liveChangeProblem(base, next, cluster)).toBeUndefined();
  });

  it('takes a rule removed (its traffic is served by one side only while the nodes switch)', () => {
    const next = farm(farmXml(`<group name="web">${hosts(1)}<rule port="80" proto="tcp" filter="on_addr"/></group><group name="other"><rule port="54" proto="udp" filter="on_port"/></group>`));
    expect(liveChangeProblem(base, next, cluster)).toBeUndefined();
  });

  it('refuses traffic moved to another criterion or group, also by a more specific rule', () => {
    const criterion = farm(farmXml(`<group name="web">${hosts(1)}<rule port="80" proto="tcp" filter="on_port"/></group><group name="other"><rule port="53" proto="udp" filter="on_port"/></group>`));
    expect(liveChangeProblem(base, criterion, cluster)).toMatch(/tcp to 192\.168\.1\.222:80 moves from group web \(on_addr\) to web \(on_port\)/);
    const wildcard = farm(farmXml(`<group name="web">${hosts(1)}<rule port="*" proto="tcp" filter="on_addr"/></group><group name="other"><rule port="53" proto="udp" filter="on_port"/></group>`));
    const shadowed = farm(farmXml(`<group name="web">${hosts(1)}<rule port="*" proto="tcp" filter="on_addr"/></group><group name="other"><rule port="53" proto="udp" filter="on_port"/><rule port="443" proto="tcp" filter="on_addr"/></group>`));
    expect(liveChangeProblem(wildcard, shadowed, cluster)).toMatch(/:443 moves from group web/);
  });

  it('refuses a VIP, group or timing change (a rolling restart)', () => {
    const vip = farm(farmXml(`<group name="web">${hosts(1)}<rule port="80" proto="tcp" filter="on_addr"/></group><group name="other"><rule port="53" proto="udp" filter="on_port"/></group>`, '192.168.1.223'));
    expect(liveChangeProblem(base, vip, cluster)).toMatch(/only powers and rules change live/);
    const groups = farm(farmXml(`<group name="web">${hosts(1)}<rule port="80" proto="tcp" filter="on_addr"/></group>`));
    expect(liveChangeProblem(base, groups, cluster)).toMatch(/rolling restart/);
  });
});

describe('staged configuration in the membership', () => {
  const nodes = ['node1', 'node2', 'node3'];
  const farmOf = (p1: number) => [{ name: 'g', powers: new Map([['node1', p1], ['node2', 1], ['node3', 1]]) }];

  function farm(): Simulator {
    const sim = new Simulator({ nodes, seed: 5 });
    sim.startAll();
    expect(sim.run(3000, () => sim.converged(nodes))).toBe(true);
    return sim;
  }

  it('carries the staged digest in v1 and v2 heartbeats', () => {
    const sim = farm();
    sim.engine('node2').stageConfig({ digest: 'digest-2', groups: farmOf(1) });
    sim.run(200);
    const hb = sim.engine('node2').status();
    expect(hb.stagedDigest).toBe('digest-2');
    const key = Buffer.alloc(32, 1);
    const made = { ...decodeHeartbeat(encodeHeartbeat({ v: 2, module: 'farm', from: 'a', incarnation: 1n, seq: 1, sentAtNs: 1n, state: 'UP', cause: '', configDigest: 'd1', stagedDigest: 'd2', epoch: 0, leader: null, view: [], tableDigest: '', table: [], powers: { version: 0, origin: '', entries: [] }, acks: [], heard: [] }, key), key) };
    expect(made.stagedDigest).toBe('d2');
  });

  it('switches every node once every node has staged it, without anyone leaving the view, then moves buckets to the new powers', () => {
    const sim = farm();
    const epochBefore = sim.engine('node1').status().epoch;
    sim.engine('node1').stageConfig({ digest: 'digest-2', groups: farmOf(2) });
    sim.engine('node2').stageConfig({ digest: 'digest-2', groups: farmOf(2) });
    sim.run(1000);
    // Two of three: nobody switches, nobody leaves the view.
    for (const n of nodes) expect(sim.engine(n).status().configDigest).toBe('digest-1');
    for (const n of nodes) expect(sim.eventsOf(n, 'config_mismatch')).toEqual([]);
    expect(sim.engine('node1').status().epoch).toBe(epochBefore);
    sim.engine('node3').stageConfig({ digest: 'digest-2', groups: farmOf(2) });
    expect(sim.run(1000, () => nodes.every((n) => sim.engine(n).status().configDigest === 'digest-2'))).toBe(true);
    for (const n of nodes) {
      expect(sim.eventsOf(n, 'config_switched').map((e) => e.event)).toEqual([{ type: 'config_switched', from: 'digest-1', to: 'digest-2' }]);
      expect(sim.eventsOf(n, 'config_mismatch')).toEqual([]);
      expect(sim.eventsOf(n, 'state').filter((e) => (e.event as { state: string }).state === 'WAIT').filter((e) => e.atMs > 0 && e.atMs > sim.nowMs - 2000)).toEqual([]);
    }
    // node1's power 2: half the buckets once the handover settles (the simulator checks no double serving throughout).
    expect(sim.run(5000, () => sim.servedCounts().get('node1') === 128)).toBe(true);
  });

  it('withdraws a staged configuration with null (the files were put back)', () => {
    const sim = farm();
    for (const n of ['node1', 'node2']) sim.engine(n).stageConfig({ digest: 'digest-2', groups: farmOf(2) });
    sim.engine('node1').stageConfig(null);
    sim.engine('node3').stageConfig({ digest: 'digest-2', groups: farmOf(2) });
    sim.run(1000);
    for (const n of nodes) expect(sim.engine(n).status().configDigest).toBe('digest-1');
  });
});
