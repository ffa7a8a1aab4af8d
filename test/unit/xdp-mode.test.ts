// The XDP mode per interface (src/net/xdp-mode.ts, docs/net.md "XDP mode"): `auto` picks
// generic on a veth, whose peer drops native XDP_TX frames unless it runs native XDP itself;
// `--xdp-mode native` there is refused; other devices get native with the kernel's fallback.

import { describe, expect, it } from 'vitest';
import { decideXdpMode, type LinkXdpFacts } from '../../src/net/xdp-mode.js';
import { renderStatus } from '../../src/cli/commands/status.js';
import { makeOutput } from '../../src/cli/output.js';
import type { DaemonStatus } from '../../src/api/status.js';

const plainVeth: LinkXdpFacts = { kind: 'veth', peer: { ifname: 'p-n1', netns: 'sw', nativeXdp: false } };
const unknownPeer: LinkXdpFacts = { kind: 'veth', peer: { nativeXdp: null } };
const xdpPeer: LinkXdpFacts = { kind: 'veth', peer: { ifname: 'p-n1', netns: 'sw', nativeXdp: true } };

describe('decideXdpMode', () => {
  for (const vmac of ['vmac_directed', 'vmac_invisible'] as const) {
    it(`${vmac}: auto on a veth whose peer runs no native XDP is generic, with the reason`, () => {
      const d = decideXdpMode('eth0', vmac, 'auto', plainVeth);
      expect(d.mode).toBe('generic');
      expect(d.reason).toMatch(/^veth: /);
      expect(d.reason).toMatch(vmac === 'vmac_directed' ? /p-n1 \(netns sw\) runs no native XDP program.*XDP_TX/ : /PACKET_OTHERHOST/);
    });

    it(`${vmac}: --xdp-mode native on such a veth is refused with FARMLB_E_XDP_NATIVE_UNDELIVERABLE`, () => {
      expect(() => decideXdpMode('eth0', vmac, 'native', plainVeth)).toThrow(expect.objectContaining({ code: 'FARMLB_E_XDP_NATIVE_UNDELIVERABLE' }));
      expect(() => decideXdpMode('eth0', vmac, 'native', unknownPeer)).toThrow(expect.objectContaining({ code: 'FARMLB_E_XDP_NATIVE_UNDELIVERABLE' }));
    });

    it(`${vmac}: generic is taken as asked on any device`, () => {
      expect(decideXdpMode('eth0', vmac, 'generic', plainVeth).mode).toBe('generic');
      expect(decideXdpMode('eth0', vmac, 'generic', {}).mode).toBe('generic');
    });

    it(`${vmac}: a physical device or another virtual one gets native, falling back to generic (auto)`, () => {
      expect(decideXdpMode('eth0', vmac, 'auto', {}).mode).toBe('auto');
      for (const kind of ['bridge', 'macvlan', 'vlan', 'bond']) {
        const d = decideXdpMode('eth0', vmac, 'auto', { kind });
        expect(d).toMatchObject({ mode: 'auto' });
        expect(d.reason).toContain(kind);
      }
      expect(decideXdpMode('eth0', vmac, 'native', {}).mode).toBe('native');
    });
  }

  it('vmac_directed: native on a veth whose peer runs native XDP is allowed, with the checksum warning; auto stays generic', () => {
    const d = decideXdpMode('eth0', 'vmac_directed', 'native', xdpPeer);
    expect(d.mode).toBe('native');
    expect(d.warning).toMatch(/checksum/);
    expect(decideXdpMode('eth0', 'vmac_directed', 'auto', xdpPeer).mode).toBe('generic');
  });

  it('vmac_invisible: native on a veth is refused even when the peer runs native XDP (PACKET_OTHERHOST)', () => {
    expect(() => decideXdpMode('eth0', 'vmac_invisible', 'native', xdpPeer)).toThrow(/PACKET_OTHERHOST/);
  });
});

describe('farmlb status shows each interface\'s XDP mode and why', () => {
  const plain = makeOutput({ json: false, stream: { isTTY: false, write: () => true } as unknown as NodeJS.WriteStream });
  it('one line per interface, and the warning when there is one', () => {
    const s = {
      node: 'n1', module: 'farm', mode: 'static', pid: 1, state: 'UP', stateCause: 'static', stateSince: Date.now(), admin: 'started', ready: true,
      view: ['n1'], epoch: 0, leader: null, groups: ['web'], nodes: [], bucketsOwned: {}, leaseRemainingMs: 100, splitBrain: false,
      splitBrainPolicy: 'serve', lastViewChange: null, checks: { ok: true, failures: [] }, configDigest: 'x',
      interfaces: [
        { ifname: 'flbn', vmacMode: 'vmac_directed', requested: 'auto', xdpMode: 'generic', reason: 'veth: its peer runs no native XDP program' },
        { ifname: 'eth1', vmacMode: 'vmac_directed', requested: 'native', xdpMode: 'native', reason: 'native mode requested', warning: 'native XDP_TX on veth eth1: checksums' },
      ],
    } satisfies DaemonStatus;
    const text = renderStatus(plain, s);
    expect(text).toContain('interface flbn: vmac_directed, XDP generic — veth: its peer runs no native XDP program');
    expect(text).toContain('interface eth1: vmac_directed, XDP native (--xdp-mode native) — native mode requested');
    expect(text).toContain('WARNING: native XDP_TX on veth eth1: checksums');
  });
});
