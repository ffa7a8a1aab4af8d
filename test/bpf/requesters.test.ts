// farmlb_requesters under a flood of spoofed ARP requests (docs/security.md, "Bounded
// resources"): the program records at most REQUESTERS_NEW_PER_WINDOW new requesters per
// window, counts the others, and refreshes the requesters it already knows whatever the
// budget — so a flood from ever new addresses cannot push the real clients out of the LRU
// within seconds, as 16,384 spoofed requests did before.

import { afterAll, beforeAll, expect, it } from 'vitest';
import { REQUESTERS_NEW_PER_WINDOW } from '../../src/dataplane/abi.js';
import { bpfObjectPath } from '../../src/addon/native.js';
import { buildFrame } from '../../src/net/frames.js';
import { NBUCKETS, type DataplaneTables } from '../../src/dataplane/types.js';
import { XdpDataplane } from '../../src/dataplane/xdp.js';
import { describePrivileged } from '../helpers/privileged.js';
import { vip } from '../helpers/tables.js';

const VIP = '10.0.0.100';
const TABLES: DataplaneTables = {
  hashSeed: 0x6661726d, selfNode: 0, vmac: '5a:fe:0a:00:00:64', vips: [vip(0, VIP, 0, 'vmac_directed', 0)], rules: [],
  buckets: [new Array<number>(NBUCKETS).fill(0)], nodeMacs: ['02:00:00:00:00:01'],
};

function arpRequest(i: number, mac = `02:aa:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`): Uint8Array {
  return buildFrame({
    eth: { dst: 'ff:ff:ff:ff:ff:ff', src: mac },
    l3: { family: 'arp', senderMac: mac, senderIp: `10.${100 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}`, targetIp: VIP },
  });
}

describePrivileged('requester recording under a flood of new requesters (BPF_PROG_TEST_RUN)', () => {
  let xdp: XdpDataplane;
  beforeAll(async () => {
    xdp = await XdpDataplane.open({ objectPath: bpfObjectPath() });
    await xdp.apply(TABLES);
    await xdp.setLease(1n << 62n);
  });
  afterAll(async () => { await xdp?.close(); });

  it('records the first REQUESTERS_NEW_PER_WINDOW new ones of a window and counts the rest; known ones are refreshed whatever the budget', async () => {
    const real = 5;
    await xdp.testRunMany(Array.from({ length: real }, (_, i) => arpRequest(i)));
    const flood = 3 * REQUESTERS_NEW_PER_WINDOW;
    await xdp.testRunMany(Array.from({ length: flood }, (_, i) => arpRequest(1000 + i)));
    const recorded = await xdp.requesters();
    expect(recorded.length).toBe(REQUESTERS_NEW_PER_WINDOW);
    expect(xdp.requesterBudget().refused).toBe(BigInt(real + flood - REQUESTERS_NEW_PER_WINDOW));
    // The clients recorded before the flood are still there; one that asks again (from a new
    // NIC) is refreshed although the window's budget is spent.
    const addrs = new Set(recorded.map((r) => r.addr));
    for (let i = 0; i < real; i++) expect(addrs.has(`10.100.0.${i}`)).toBe(true);
    const before = recorded.find((r) => r.addr === '10.100.0.1')!;
    await xdp.testRunMany([arpRequest(1, '02:bb:00:00:00:01')]);
    const after = (await xdp.requesters()).find((r) => r.addr === '10.100.0.1')!;
    expect(after.mac).toBe('02:bb:00:00:00:01');
    expect(after.lastSeenNs).toBeGreaterThan(before.lastSeenNs);
    expect(xdp.requesterBudget().refused).toBe(BigInt(real + flood - REQUESTERS_NEW_PER_WINDOW));
  }, 60_000);
});
