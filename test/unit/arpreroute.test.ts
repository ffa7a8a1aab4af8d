// arpreroute (src/net/arpreroute.ts): which buckets a table change gives this node, which
// requesters hear about it, and the campaign's timing (every interval, for elapse, cancelled
// on stop) — with fake timers and a fake raw socket.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { ArpReroute, bucketsTaken, rerouteFrames, type Requester, type RerouteInterface } from '../../src/net/arpreroute.js';
import { GROUP_NONE, NODE_NONE, type DataplaneTables } from '../../src/dataplane/types.js';
import { toHex } from '../../src/net/frames.js';

const log = pino({ level: 'silent' });
const SELF = 1;

function tables(owner: (bucket: number) => number, selfNode = SELF): DataplaneTables {
  // Only the fields arpreroute reads; the rest of the shape does not matter here.
  return { selfNode, buckets: [Array.from({ length: 256 }, (_, b) => owner(b))] } as unknown as DataplaneTables;
}

const IFACE: RerouteInterface = {
  ifname: 'eth0',
  mac: '02:00:00:00:00:01',
  intervalMs: 1_000,
  elapseMs: 3_000,
  vips: [
    { id: 0, addr: '10.0.0.100', family: 4, arpGroup: 0 },
    { id: 1, addr: 'fd00::100', family: 6, arpGroup: 0 },
  ],
};

function requester(addr: string, bucket: number, extra: Partial<Requester> = {}): Requester {
  return { family: addr.includes(':') ? 6 : 4, addr, mac: '02:00:00:00:00:aa', group: 0, bucket, vipId: addr.includes(':') ? 1 : 0, lastSeenNs: 0n, ...extra };
}

describe('arpreroute: buckets taken by a table change', () => {
  it('counts every owned bucket as taken when there is no previous table (a node starting or rejoining)', () => {
    const taken = bucketsTaken(undefined, tables((b) => (b < 10 ? SELF : 0)), [0]);
    expect([...taken.get(0)!]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('reports only the buckets that moved to this node, not those it kept or lost', () => {
    const prev = tables((b) => (b < 10 ? SELF : 0));
    const next = tables((b) => (b >= 5 && b < 20 ? SELF : 2));
    expect([...bucketsTaken(prev, next, [0]).get(0)!]).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
  });

  it('reports nothing for a group where nothing moved here', () => {
    const t = tables((b) => (b % 2 ? SELF : NODE_NONE));
    expect(bucketsTaken(t, t, [0]).size).toBe(0);
  });
});

describe('arpreroute: frames of one round', () => {
  const moved = new Map([[0, new Set([3, 4])]]);
  const owners = tables((b) => (b === 3 || b === 4 ? SELF : 0)).buckets;

  it('sends a unicast ARP reply with this node MAC to each IPv4 requester of a moved bucket only', () => {
    const frames = rerouteFrames(IFACE, moved, owners, SELF, [requester('10.0.0.7', 3), requester('10.0.0.8', 9)]);
    expect(frames.map((f) => f.requester.addr)).toEqual(['10.0.0.7']);
    // Ethernet dst = the client, src = this node; ARP reply, sender = VIP at this node's MAC.
    expect(toHex(frames[0]!.frame)).toBe('0200000000aa' + '020000000001' + '0806' + '0001080006040002' + '020000000001' + '0a000064' + '0200000000aa' + '0a000007');
  });

  it('sends an unsolicited neighbour advertisement with Override to each IPv6 requester of a moved bucket', () => {
    const [f] = rerouteFrames(IFACE, moved, owners, SELF, [requester('fd00::7', 4)]);
    expect(f!.vip.addr).toBe('fd00::100');
    const frame = f!.frame;
    expect(frame[54]).toBe(136); // ICMPv6 type: neighbour advertisement
    expect(frame[58]! & 0x20).toBe(0x20); // Override
    expect(frame[58]! & 0x40).toBe(0); // not Solicited
    expect(toHex(frame.slice(80, 86))).toBe('020000000001'); // target link-layer address = this node
  });

  it('skips a bucket that has moved on again, requesters of another group and VIPs of another interface', () => {
    const now = tables((b) => (b === 3 ? 2 : SELF)).buckets;
    expect(rerouteFrames(IFACE, moved, now, SELF, [requester('10.0.0.7', 3)])).toEqual([]);
    expect(rerouteFrames(IFACE, moved, owners, SELF, [requester('10.0.0.7', 3, { group: 1 })])).toEqual([]);
    expect(rerouteFrames(IFACE, moved, owners, SELF, [requester('10.0.0.7', 3, { vipId: 9 })])).toEqual([]);
  });
});

describe('arpreroute: campaign timing', () => {
  beforeEach(() => { vi.useFakeTimers(); });
  afterEach(() => { vi.useRealTimers(); });

  function setup(reqs: Requester[]) {
    const sent: Buffer[] = [];
    let opened = 0;
    let closed = 0;
    const reroute = new ArpReroute({
      requesters: async () => reqs,
      openSocket: () => {
        opened++;
        return { ifname: 'eth0', ifindex: 2, send: (f: Buffer) => { sent.push(f); }, close: () => { closed++; } };
      },
      log,
    });
    reroute.configure([IFACE]);
    return { reroute, sent, sockets: () => ({ opened, closed }) };
  }

  it('sends a round at once and then every arpinterval until arpelapse has passed, then closes its socket', async () => {
    const { reroute, sent, sockets } = setup([requester('10.0.0.7', 3)]);
    reroute.tablesChanged(tables(() => 0), tables((b) => (b === 3 ? SELF : 0)));
    await vi.advanceTimersByTimeAsync(10_000);
    // Rounds at 0, 1, 2 and 3 s (elapse 3 s).
    expect(sent.length).toBe(4);
    expect(reroute.stats()).toEqual({ rounds: 4, framesSent: 4, sendErrors: 0 });
    expect(reroute.active()).toEqual([]);
    expect(sockets()).toEqual({ opened: 1, closed: 1 });
  });

  it('with a long arpinterval, repeats once just after the ARP locktime (a client that just resolved ignores the first reply), then every arpinterval', async () => {
    const sent: number[] = [];
    const reroute = new ArpReroute({
      requesters: async () => [requester('10.0.0.7', 3)],
      openSocket: () => ({ ifname: 'eth0', ifindex: 2, send: () => { sent.push(Date.now()); }, close: () => {} }),
      log,
    });
    reroute.configure([{ ...IFACE, intervalMs: 60_000, elapseMs: 130_000 }]);
    const t0 = Date.now();
    reroute.tablesChanged(tables(() => 0), tables((b) => (b === 3 ? SELF : 0)));
    await vi.advanceTimersByTimeAsync(200_000);
    // Rounds at 0, 1.1 s (after the locktime), 60 s and 120 s; 180 s is past arpelapse.
    expect(sent.map((t) => t - t0)).toEqual([0, 1_100, 60_000, 120_000]);
  });

  it('stops sending when stopped mid-campaign', async () => {
    const { reroute, sent } = setup([requester('10.0.0.7', 3)]);
    reroute.tablesChanged(tables(() => 0), tables((b) => (b === 3 ? SELF : 0)));
    await vi.advanceTimersByTimeAsync(1_500);
    reroute.stop();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(sent.length).toBe(2);
    expect(reroute.active()).toEqual([]);
  });

  it('starts no campaign when no bucket moved here, and none for VIPs without an arp rule', async () => {
    const { reroute, sent } = setup([requester('10.0.0.7', 3)]);
    const t = tables((b) => (b === 3 ? SELF : 0));
    reroute.tablesChanged(t, t);
    expect(reroute.active()).toEqual([]);
    reroute.configure([{ ...IFACE, vips: IFACE.vips.map((v) => ({ ...v, arpGroup: GROUP_NONE })) }]);
    reroute.tablesChanged(undefined, t);
    expect(reroute.active()).toEqual([]);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(sent.length).toBe(0);
  });

  it('keeps announcing the buckets of a running campaign that a second change leaves with this node', async () => {
    const { reroute, sent } = setup([requester('10.0.0.7', 3), requester('10.0.0.8', 4)]);
    reroute.tablesChanged(tables(() => 0), tables((b) => (b === 3 ? SELF : 0)));
    await vi.advanceTimersByTimeAsync(10);
    reroute.tablesChanged(tables((b) => (b === 3 ? SELF : 0)), tables((b) => (b === 3 || b === 4 ? SELF : 0)));
    await vi.advanceTimersByTimeAsync(10);
    // First round: .7 only; the restarted campaign's first round: both.
    expect(sent.length).toBe(3);
    reroute.stop();
  });
});
