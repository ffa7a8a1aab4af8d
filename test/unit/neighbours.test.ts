// Node MAC resolution for vmac_directed forwarding (src/net/neighbours.ts) against a fake
// system: own MAC from the link, peers through the kernel's neighbour table after a probe,
// only addresses on the interface's subnets, unknown peers reported and retried.

import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { NodeMacResolver, onLinkAddr, type NeighbourSystem } from '../../src/net/neighbours.js';
import type { IfAddr } from '../../src/net/ip.js';

const OWN: IfAddr[] = [{ ifname: 'eth0', family: 4, local: '10.0.0.11', prefixlen: 24 }];

function fakeSystem(answering: Record<string, string>): NeighbourSystem & { probes: string[] } {
  const table = new Map<string, string>();
  const probes: string[] = [];
  return {
    probes,
    linkMac: async () => '02:00:00:00:00:11',
    ifaceAddrs: async () => OWN,
    probe: async (addr) => {
      probes.push(addr);
      const mac = answering[addr];
      if (mac) table.set(addr, mac);
    },
    neighbourMac: async (_if, addr) => table.get(addr) ?? null,
  };
}

function records() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } });
  return { log, lines };
}

describe('node MAC resolution', () => {
  const nodes = [
    { id: 0, name: 'n1', addrs: ['10.0.0.11'] },
    { id: 1, name: 'n2', addrs: ['192.168.9.12', '10.0.0.12'] },
    { id: 2, name: 'n3', addrs: ['10.0.0.13'] },
  ];

  it('takes its own MAC from the link and each peer MAC from the neighbour table after a probe on the VIP LAN', async () => {
    const sys = fakeSystem({ '10.0.0.12': '02:00:00:00:00:12', '10.0.0.13': '02:00:00:00:00:13' });
    const r = new NodeMacResolver({ ifname: 'eth0', nodes, selfId: 0, size: 3, log: pino({ level: 'silent' }), system: sys });
    expect(await r.resolve()).toBe(true);
    expect(r.macs()).toEqual(['02:00:00:00:00:11', '02:00:00:00:00:12', '02:00:00:00:00:13']);
    expect(sys.probes.sort()).toEqual(['10.0.0.12', '10.0.0.13']);
    expect(await r.resolve()).toBe(false);
  });

  it('leaves a silent peer unknown, logs it once, and reports the change when it answers later', async () => {
    const answering: Record<string, string> = { '10.0.0.12': '02:00:00:00:00:12' };
    const { log, lines } = records();
    const r = new NodeMacResolver({ ifname: 'eth0', nodes, selfId: 0, size: 3, log, system: fakeSystem(answering), resolveTimeoutMs: 50 });
    await r.resolve();
    await r.resolve();
    expect(r.macs()[2]).toBeNull();
    expect(lines.filter((l) => l.event === 'node_mac_unknown' && l.peer === 'n3')).toHaveLength(1);
    answering['10.0.0.13'] = '02:00:00:00:00:13';
    expect(await r.resolve()).toBe(true);
    expect(r.macs()[2]).toBe('02:00:00:00:00:13');
  });

  it('picks the node address on one of the interface subnets', () => {
    expect(onLinkAddr(['192.168.9.12', '10.0.0.12'], OWN)).toBe('10.0.0.12');
    expect(onLinkAddr(['192.168.9.12'], OWN)).toBeUndefined();
  });
});
