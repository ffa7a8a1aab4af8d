// farmlb_egress (tc, bpf/farmlb_egress.bpf.c) through BPF_PROG_TEST_RUN against the model's
// egressRewrite (src/dataplane/model.ts): the kernel's own NS/NA sent from a VIP, rewritten
// byte for byte as the model says, with a valid ICMPv6 checksum. Then the attachment on a
// real interface: XdpDataplane.attach/attachEgress/detachEgress/detach on a veth pair
// (this kernel has no dummy driver), created for the test and removed after it.
import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { encodeIndexKey, decodeIface, formatMac } from '../../src/dataplane/abi.js';
import { egressRewrite } from '../../src/dataplane/model.js';
import { bpfObjectPath, loadNative } from '../../src/addon/native.js';
import {
  addrBytes16,
  buildFrame,
  inetChecksum,
  neighbourAdvertisement,
  neighbourSolicitation,
  parseIp,
  toHex,
  truncate,
  type FrameSpec,
} from '../../src/net/frames.js';
import { CriterionId, GROUP_NONE, NBUCKETS, NODE_NONE, PORT_ANY, VIP_ANY, type CompiledVip, type DataplaneTables } from '../../src/dataplane/types.js';
import { XdpDataplane } from '../../src/dataplane/xdp.js';
import { describePrivileged } from '../helpers/privileged.js';

/** TC_ACT_UNSPEC (-1) as BPF_PROG_TEST_RUN reports it: the filter never ends the chain. */
const TC_ACT_UNSPEC = 0xffffffff;
const SELF = 1;
const VMAC = '5a:fe:0a:00:00:64';
const NODE_MAC = '02:00:00:00:00:11';
const OTHER_MAC = '02:00:00:00:00:12';
const CLIENT = '2001:db8:1::10';
const CLIENT_MAC = '02:00:00:00:00:c1';

function vip(id: number, addr: string, mode: CompiledVip['mode'], arpGroup = GROUP_NONE): CompiledVip {
  return { id, family: parseIp(addr).family, addr, addrBytes: addrBytes16(addr), icmpGroup: 0, arpGroup, mode };
}

const TABLES: DataplaneTables = {
  hashSeed: 0x1234abcd,
  selfNode: SELF,
  vmac: VMAC,
  vips: [
    vip(0, '2001:db8::100', 'vmac_invisible'),
    vip(1, '2001:db8::110', 'vmac_directed'), // no arp rule: each node announces itself
    vip(2, '2001:db8::111', 'vmac_directed', 1), // arp group 1: another node's buckets
    vip(3, '2001:db8::112', 'vmac_directed', 2), // arp group 2: nobody's
    vip(4, '2001:db8::113', 'vmac_directed', 3), // arp group 3: node 3, MAC unknown
    vip(5, '10.0.0.100', 'vmac_invisible'),
  ],
  rules: [{ proto: 6, port: PORT_ANY, vipId: VIP_ANY, group: 0, criterion: CriterionId.Addr }],
  buckets: [
    Array<number>(NBUCKETS).fill(SELF),
    Array<number>(NBUCKETS).fill(2),
    Array<number>(NBUCKETS).fill(NODE_NONE),
    Array<number>(NBUCKETS).fill(3),
  ],
  nodeMacs: ['02:00:00:00:00:10', NODE_MAC, OTHER_MAC, null],
};

/** What the kernel sends: NS for a client from the VIP, or NA from the VIP to a client, carrying the node's MAC. */
const kernelNs = (from: string, target = CLIENT, mac = NODE_MAC): FrameSpec => neighbourSolicitation({ src: from, srcMac: mac, target });
const kernelNa = (from: string, mac = NODE_MAC): FrameSpec =>
  neighbourAdvertisement({ target: from, dst: CLIENT, ethDst: CLIENT_MAC, ethSrc: mac, mac, flags: 0x60 });

interface Row {
  name: string;
  frame: Uint8Array;
  /** Whether the option must change. */
  rewritten: boolean;
}

const ROWS: Row[] = [
  { name: 'vmac_invisible: the NS from the VIP gets the VMAC in its source link-layer option', frame: buildFrame(kernelNs('2001:db8::100')), rewritten: true },
  { name: 'vmac_invisible: the NA from the VIP gets the VMAC in its target link-layer option', frame: buildFrame(kernelNa('2001:db8::100')), rewritten: true },
  { name: 'vmac_directed with an arp rule: the NS announces the arp-owner of the client', frame: buildFrame(kernelNs('2001:db8::111')), rewritten: true },
  { name: 'vmac_directed with an arp rule: the NA announces the arp-owner of its receiver', frame: buildFrame(kernelNa('2001:db8::111')), rewritten: true },
  { name: 'vmac_directed without an arp rule: the node\'s own MAC stays', frame: buildFrame(kernelNs('2001:db8::110')), rewritten: false },
  { name: 'vmac_directed: an arp bucket nobody owns leaves the option alone', frame: buildFrame(kernelNs('2001:db8::112')), rewritten: false },
  { name: 'vmac_directed: an owner whose MAC is unknown leaves the option alone', frame: buildFrame(kernelNs('2001:db8::113')), rewritten: false },
  { name: 'an NS from a non-VIP address is left alone', frame: buildFrame(kernelNs('2001:db8::5')), rewritten: false },
  { name: 'an NS that already carries the VMAC is left alone', frame: buildFrame(kernelNs('2001:db8::100', CLIENT, VMAC)), rewritten: false },
  { name: 'an NS without options is left alone', frame: buildFrame(neighbourSolicitation({ src: '2001:db8::100', srcMac: NODE_MAC, target: CLIENT, slla: false })), rewritten: false },
  { name: 'a truncated NS is left alone', frame: truncate(buildFrame(kernelNs('2001:db8::100')), 14 + 40 + 28), rewritten: false },
  { name: 'TCP from the VIP is left alone', frame: buildFrame({ l3: { family: 6, src: '2001:db8::100', dst: CLIENT }, l4: { proto: 'tcp', sport: 80, dport: 40000 }, payload: 40 }), rewritten: false },
  { name: 'an ICMPv6 echo reply from the VIP is left alone', frame: buildFrame({ l3: { family: 6, src: '2001:db8::100', dst: CLIENT }, l4: { proto: 'icmpv6', type: 129 }, payload: 40 }), rewritten: false },
  { name: 'IPv4 is left alone', frame: buildFrame({ l3: { family: 4, src: '10.0.0.100', dst: '192.0.2.1' }, l4: { proto: 'udp', sport: 53, dport: 40000 }, payload: 60 }), rewritten: false },
  { name: 'a minimal Ethernet frame is left alone', frame: new Uint8Array(14), rewritten: false },
];

function icmpv6ChecksumValid(f: Uint8Array): boolean {
  const pseudo = new Uint8Array(40);
  pseudo.set(f.subarray(14 + 8, 14 + 40), 0);
  const icmp = f.subarray(14 + 40);
  pseudo[34] = icmp.length >> 8;
  pseudo[35] = icmp.length & 0xff;
  pseudo[39] = 58;
  return inetChecksum(pseudo, icmp) === 0;
}

describePrivileged('tc egress program (farmlb_egress) vs the model, BPF_PROG_TEST_RUN', () => {
  let xdp: XdpDataplane;

  beforeAll(async () => {
    xdp = await XdpDataplane.open({ objectPath: bpfObjectPath('farmlb') });
    await xdp.apply(TABLES);
  });

  afterAll(async () => {
    await xdp?.close();
  });

  for (const row of ROWS) {
    it(row.name, async () => {
      const want = egressRewrite(row.frame, TABLES);
      const got = await xdp.testRunEgress(row.frame);
      expect(got.retval).toBe(TC_ACT_UNSPEC);
      expect(toHex(got.dataOut)).toBe(toHex(want));
      expect(want !== row.frame).toBe(row.rewritten);
      if (row.rewritten) expect(icmpv6ChecksumValid(got.dataOut)).toBe(true);
    });
  }

  it('follows the table slot: after a re-apply with the VIP in vmac_directed, the NS keeps the node MAC', async () => {
    const directed: DataplaneTables = { ...TABLES, vips: TABLES.vips.map((v) => (v.id === 0 ? { ...v, mode: 'vmac_directed' as const } : v)) };
    await xdp.apply(directed);
    try {
      const frame = buildFrame(kernelNs('2001:db8::100'));
      expect(toHex((await xdp.testRunEgress(frame)).dataOut)).toBe(toHex(frame));
    } finally {
      await xdp.apply(TABLES);
    }
  });
});

const DUMMY = `flbeg${process.pid % 100000}`;
const PEER = `flbep${process.pid % 100000}`;
const PIN_DIR = `/sys/fs/bpf/flb-egress-test-${process.pid}`;

describePrivileged('attaching on an interface: farmlb_ifaces, tc clsact egress (veth)', () => {
  let xdp: XdpDataplane;
  let dummyMac: string;

  beforeAll(async () => {
    spawnSync('ip', ['link', 'del', DUMMY]);
    execFileSync('ip', ['link', 'add', DUMMY, 'type', 'veth', 'peer', 'name', PEER]);
    execFileSync('ip', ['link', 'set', DUMMY, 'up']);
    dummyMac = execFileSync('cat', [`/sys/class/net/${DUMMY}/address`], { encoding: 'utf8' }).trim();
    xdp = await XdpDataplane.open({ objectPath: bpfObjectPath('farmlb'), pinDir: PIN_DIR });
  });

  afterAll(async () => {
    spawnSync('ip', ['link', 'del', DUMMY]);
    xdp?.unpin();
    await xdp?.close();
  });

  const ifaceEntry = (): string | null => {
    const map = loadNative().openPinnedMap(`${PIN_DIR}/farmlb_ifaces`, { readOnly: true });
    try {
      const v = map.lookup(encodeIndexKey(loadNative().ifindex(DUMMY)));
      return v ? formatMac(decodeIface(v)) : null;
    } finally {
      map.close();
    }
  };
  const egressFilters = (): string => execFileSync('tc', ['filter', 'show', 'dev', DUMMY, 'egress'], { encoding: 'utf8' });

  it('reads the interface MAC in this namespace as the kernel reports it', () => {
    expect(loadNative().ifaceMac(DUMMY)).toBe(dummyMac);
    expect(() => loadNative().ifaceMac('flb-no-such')).toThrow(expect.objectContaining({ code: 'FARMLB_E_XDP_NO_IFACE' }));
  });

  it('writes the interface MAC into farmlb_ifaces on attach and removes it on detach', async () => {
    expect(ifaceEntry()).toBeNull();
    await xdp.attach(DUMMY, 'generic');
    expect(ifaceEntry()).toBe(dummyMac);
    await xdp.detach(DUMMY);
    expect(ifaceEntry()).toBeNull();
  });

  it('attaches the egress filter once however often asked, and detaches only it, leaving the clsact qdisc', async () => {
    await xdp.attachEgress(DUMMY);
    await xdp.attachEgress(DUMMY);
    const shown = egressFilters();
    expect(shown.match(/handle 0x666c62 /g)?.length, shown).toBe(1);
    expect(shown).toMatch(/pref 26220 bpf .*name farmlb_egress/);
    await xdp.detachEgress(DUMMY);
    expect(egressFilters()).not.toMatch(/farmlb_egress/);
    expect(execFileSync('tc', ['qdisc', 'show', 'dev', DUMMY], { encoding: 'utf8' })).toMatch(/clsact/);
    await expect(xdp.detachEgress(DUMMY)).resolves.toBeUndefined();
  });

  it('leaves another tool\'s egress filter alone when it detaches', async () => {
    // Another BPF filter at another preference (this kernel has no matchall/u32 actions).
    execFileSync('tc', ['filter', 'add', 'dev', DUMMY, 'egress', 'pref', '7', 'bpf', 'da', 'obj', bpfObjectPath('nop'), 'sec', 'xdp']);
    await xdp.attachEgress(DUMMY);
    await xdp.detachEgress(DUMMY);
    const shown = egressFilters();
    expect(shown).toMatch(/pref 7 bpf .*name farmlb_nop/);
    expect(shown).not.toMatch(/farmlb_egress/);
  });
});
