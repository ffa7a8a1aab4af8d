// corosync.conf from cluster.xml, and the start-time check that the running corosync has
// that nodelist (src/membership/corosync/conf.ts).

import { describe, expect, it, vi } from 'vitest';
import { parseClusterConfig } from '../../src/config/cluster.js';
import { defaultFarmlbSettings } from '../../src/config/defaults.js';
import { corosyncConf, corosyncConfProblems, nodelistProblems, nodeNames } from '../../src/membership/corosync/conf.js';
import type { CorosyncRunningConfig } from '../../src/addon/native.js';
import { corosyncConfigBounded } from '../../src/daemon/membership-source.js';

const CLUSTER = parseClusterConfig(`<cluster><lans>
  <lan name="default"><node name="n1" addr="10.0.0.1"/><node name="n2" addr="10.0.0.2"/><node name="n3" addr="10.0.0.3"/></lan>
  <lan name="backup"><node name="n1" addr="10.1.0.1"/><node name="n2" addr="10.1.0.2"/><node name="n3" addr="10.1.0.3"/></lan>
</lans></cluster>`, 'cluster.xml');
const FARM = { farmlb: defaultFarmlbSettings('web'), farm: { pulseMs: 50, mlostCount: 7, slostCount: 5, lans: [] } };

function running(over: Partial<CorosyncRunningConfig> = {}): CorosyncRunningConfig {
  return {
    nodes: [
      { nodeid: 1, name: 'n1', ring0Addr: '10.0.0.1' }, { nodeid: 2, name: 'n2', ring0Addr: '10.0.0.2' }, { nodeid: 3, name: 'n3', ring0Addr: '10.0.0.3' },
    ],
    localNodePos: 1,
    totem: { transport: 'udpu', tokenMs: 200, consensusMs: 240 },
    quorum: { provider: 'corosync_votequorum' },
    ...over,
  };
}

describe('farmlb corosync-conf', () => {
  it('writes udpu with token 300, token_coefficient 0, 9 token resends, votequorum and the nodelist of cluster.xml in its order', () => {
    const text = corosyncConf({ farm: FARM, cluster: CLUSTER, transport: 'udpu' });
    expect(text).toMatch(/transport: udpu\n  token: 300\n/);
    expect(text).toMatch(/token_retransmits_before_loss_const: 9\n/);
    expect(text).toMatch(/token_coefficient: 0/);
    expect(text).toMatch(/cluster_name: farmlb-web/);
    expect(text).toMatch(/provider: corosync_votequorum/);
    expect(text).toMatch(/crypto_cipher: none/);
    expect([...text.matchAll(/nodeid: (\d+)\n    name: (\S+)\n    ring0_addr: (\S+)/g)].map((m) => [m[1], m[2], m[3]])).toEqual([
      ['1', 'n1', '10.0.0.1'], ['2', 'n2', '10.0.0.2'], ['3', 'n3', '10.0.0.3'],
    ]);
    expect(text).not.toMatch(/ring1_addr/);
  });

  it('knet: encrypted, a link per LAN, token 1000', () => {
    const text = corosyncConf({ farm: FARM, cluster: CLUSTER, transport: 'knet', authkeyFile: '/k' });
    expect(text).toMatch(/token: 1000/);
    expect(text).toMatch(/crypto_cipher: aes256\n  crypto_hash: sha256\n  keyfile: \/k/);
    expect(text).toMatch(/ring1_addr: 10\.1\.0\.2/);
  });

  it('two nodes: two_node without a witness, a qnetd device with one', () => {
    const two = parseClusterConfig('<cluster><lans><lan name="l"><node name="a" addr="10.0.0.1"/><node name="b" addr="10.0.0.2"/></lan></lans></cluster>', 'c.xml');
    expect(corosyncConf({ farm: FARM, cluster: two, transport: 'udpu' })).toMatch(/two_node: 1/);
    const witness = corosyncConf({ farm: FARM, cluster: two, transport: 'udpu', qnetdHost: '10.0.0.9' });
    expect(witness).not.toMatch(/two_node/);
    expect(witness).toMatch(/model: net[\s\S]*host: 10\.0\.0\.9[\s\S]*algorithm: ffsplit/);
    expect(corosyncConfProblems({ farm: FARM, cluster: CLUSTER, transport: 'udpu', qnetdHost: 'x' })[0]).toMatch(/two-node/);
  });

  it('refuses a node without an address on the ring LAN', () => {
    const c = parseClusterConfig('<cluster><lans><lan name="l"><node name="a" addr="10.0.0.1"/></lan><lan name="m"><node name="b" addr="10.0.0.2"/></lan></lans></cluster>', 'c.xml');
    expect(corosyncConfProblems({ farm: FARM, cluster: c, transport: 'udpu' })).toEqual(['node b has no address on LAN l, corosync\'s ring0']);
  });
});

describe('the running corosync against cluster.xml', () => {
  it('matches: no problem, node ids map to names', () => {
    expect(nodelistProblems(running(), CLUSTER, 'n2')).toEqual([]);
    expect([...nodeNames(running())]).toEqual([[1, 'n1'], [2, 'n2'], [3, 'n3']]);
  });

  it('names every difference', () => {
    const r = running({
      nodes: [{ nodeid: 1, name: 'n1', ring0Addr: '10.9.9.9' }, { nodeid: 2, name: 'n2', ring0Addr: '10.0.0.2' }, { nodeid: 4, name: 'n4', ring0Addr: '10.0.0.4' }],
      localNodePos: 0,
    });
    expect(nodelistProblems(r, CLUSTER, 'n2')).toEqual([
      'n1\'s ring0_addr 10.9.9.9 is none of its cluster.xml addresses (10.0.0.1, 10.1.0.1)',
      'corosync\'s node n4 (nodeid 4) is not in cluster.xml',
      'n3 is in cluster.xml but not in corosync\'s nodelist',
      'this node\'s corosync runs as n1, not as --node n2',
    ]);
    expect(nodelistProblems(running({ nodes: [] }), CLUSTER, 'n1')[0]).toMatch(/no nodelist/);
  });
});

describe('reading corosync\'s configuration at start (docs/membership.md, "When corosync hangs")', () => {
  it('a corosync that does not answer fails the start with FARMLB_E_COROSYNC_CONNECT and the reason, after the bound', async () => {
    vi.useFakeTimers();
    try {
      const never = { corosyncConfig: () => new Promise<CorosyncRunningConfig>(() => undefined) };
      const reading = corosyncConfigBounded(never, 10_000);
      const caught = reading.catch((err: unknown) => err);
      await vi.advanceTimersByTimeAsync(9_999);
      let settled = false;
      void caught.then(() => { settled = true; });
      await vi.advanceTimersByTimeAsync(0);
      expect(settled).toBe(false);
      await vi.advanceTimersByTimeAsync(2);
      const err = await caught as { code?: string; message?: string };
      expect(err.code).toBe('FARMLB_E_COROSYNC_CONNECT');
      expect(err.message).toMatch(/corosync does not answer \(cmap_get pending for over 10000 ms\)/);
    } finally {
      vi.useRealTimers();
    }
  });

  it('an answer within the bound is the configuration', async () => {
    const running: CorosyncRunningConfig = { nodes: [], totem: { tokenMs: 300 }, quorum: {} };
    await expect(corosyncConfigBounded({ corosyncConfig: async () => running }, 10_000)).resolves.toBe(running);
  });
});
