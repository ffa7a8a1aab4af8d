// Lab: what `farmlb run --static` changes on a node's interface, in both VMAC modes, and
// how it comes back — after SIGTERM, and after SIGKILL followed by a new run that adopts
// what the killed one left (docs/net.md). Plus the addon's raw socket: an arpreroute frame
// built by src/net/announce.ts, sent on one end of a veth and captured on the other.

import { removeEmptyPinRoot } from '../../src/dataplane/xdp.js';
import { PIN_ROOT } from '../../src/paths.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { LabRegistry, addAddr, inNetns, linkMac, run, uniqueSuffix, waitFor } from './helpers/netns.js';
import { loadNative } from '../../src/addon/native.js';
import { buildArpReply, buildUnsolicitedNa } from '../../src/net/announce.js';
import { toHex } from '../../src/net/frames.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const FARMLB = path.join(REPO, 'bin/farmlb.js');
const sfx = uniqueSuffix();
const NS_NODE = `flb-net-n${sfx}`;
const NS_PEER = `flb-net-p${sfx}`;
const DIR = `/tmp/flb-net-${sfx}`;
const RUN_DIR = `${DIR}/run`;
const PIN = `${PIN_ROOT}/flb-net-${sfx}`;
const IF = 'flb-n';
const VIP4 = '10.79.0.100';
const VIP6 = 'fd79::100';

const CLUSTER_XML = `<cluster><lans><lan name="default">
  <node name="n1" addr="10.79.0.2"/>
  <node name="n2" addr="10.79.0.3"/>
</lan></lans></cluster>`;

const userconfig = (mode: 'vmac_invisible' | 'vmac_directed') => `<safe>
 <service mode="farm">
  <farm><lan name="default"/></farm>
  <vip>
   <interface_list>
    <interface check="on" name="${IF}">
     <virtual_interface type="${mode}">
      <virtual_addr addr="${VIP4}" where="alias"/>
      <virtual_addr addr="${VIP6}" where="alias"/>
     </virtual_interface>
    </interface>
   </interface_list>
   <loadbalancing_list>
    <group name="web">
     <cluster><host name="n1" power="1"/><host name="n2" power="1"/></cluster>
     <rule virtual_addr="*" port="8080" proto="tcp" filter="on_addr"/>
    </group>
   </loadbalancing_list>
  </vip>
 </service>
</safe>`;

// Non-default values on purpose: the final stop must bring back these, not the kernel defaults.
const ORIGINAL_SYSCTLS: Record<string, string> = {
  [`net/ipv4/conf/${IF}/arp_announce`]: '1',
  [`net/ipv4/conf/${IF}/arp_notify`]: '1',
  [`net/ipv6/conf/${IF}/ndisc_notify`]: '1',
};
const FARMLB_SYSCTLS: Record<string, string> = {
  [`net/ipv4/conf/${IF}/arp_announce`]: '2',
  [`net/ipv4/conf/${IF}/arp_notify`]: '0',
  [`net/ipv6/conf/${IF}/ndisc_notify`]: '0',
};

const lab = new LabRegistry();

interface Daemon {
  child: ChildProcess;
  log: () => string;
}

function startDaemon(mode: 'vmac_invisible' | 'vmac_directed', extra: string[] = []): Daemon {
  let out = '';
  const child = spawn('nsenter', [`--net=/run/netns/${NS_NODE}`, '--', 'node', FARMLB, 'run', '--static',
    '-c', `${DIR}/${mode}.xml`, '--cluster', `${DIR}/cluster.xml`, '--node', 'n1',
    '--pin-dir', PIN, '--run-dir', RUN_DIR, '--lease-ms', '1000', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  lab.onCleanup('kill daemon', () => { if (child.exitCode === null) child.kill('SIGKILL'); }, () => { if (child.exitCode === null) child.kill('SIGKILL'); });
  return { child, log: () => out };
}

async function waitUp(d: Daemon): Promise<void> {
  await waitFor(() => {
    if (d.child.exitCode !== null) throw new Error(`farmlb run exited ${d.child.exitCode}: ${d.log()}`);
    return /"state":"UP"/.test(d.log());
  }, { timeoutMs: 30_000, what: 'farmlb run to serve' });
}

async function waitExit(d: Daemon): Promise<number | null> {
  await waitFor(() => d.child.exitCode !== null || d.child.signalCode !== null, { timeoutMs: 20_000, what: 'farmlb run to exit' });
  return d.child.exitCode;
}

async function sysctls(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(ORIGINAL_SYSCTLS)) {
    out[key] = (await inNetns(NS_NODE, 'cat', [`/proc/sys/${key}`])).stdout.trim();
  }
  return out;
}

async function setSysctls(values: Record<string, string>): Promise<void> {
  for (const [key, value] of Object.entries(values)) await inNetns(NS_NODE, 'sh', ['-c', `echo ${value} > /proc/sys/${key}`]);
}

async function promisc(): Promise<boolean> {
  const { stdout } = await inNetns(NS_NODE, 'ip', ['-j', 'link', 'show', 'dev', IF]);
  return (JSON.parse(stdout) as { flags: string[] }[])[0]!.flags.includes('PROMISC');
}

async function xdpProgId(): Promise<number | undefined> {
  const { stdout } = await inNetns(NS_NODE, 'ip', ['-j', '-d', 'link', 'show', 'dev', IF]);
  const link = (JSON.parse(stdout) as { xdp?: { prog?: { id: number } } }[])[0]!;
  return link.xdp?.prog?.id;
}

async function vipsPresent(): Promise<{ v4: boolean; v6: boolean }> {
  const { stdout } = await inNetns(NS_NODE, 'ip', ['-j', 'addr', 'show', 'dev', IF]);
  return { v4: stdout.includes(`"${VIP4}"`), v6: stdout.includes(`"${VIP6}"`) };
}

async function expectAllUndone(): Promise<void> {
  expect(await sysctls()).toEqual(ORIGINAL_SYSCTLS);
  expect(await promisc()).toBe(false);
  expect(await vipsPresent()).toEqual({ v4: false, v6: false });
  expect(await xdpProgId()).toBeUndefined();
  expect(existsSync(PIN)).toBe(false);
  expect(existsSync(`${RUN_DIR}/netstate.json`)).toBe(false);
}

describePrivileged('lab: interface setup by farmlb run --static (sysctls, promiscuous mode, recovery after SIGKILL)', () => {
  beforeAll(async () => {
    expect(existsSync(path.join(REPO, 'dist/cli/main.js')), 'dist/ is built by scripts/setup.sh').toBe(true);
    await lab.netns(NS_NODE);
    await lab.netns(NS_PEER);
    await lab.veth({ a: { name: `flb-n${sfx}`, ns: NS_NODE }, b: { name: `flb-p${sfx}`, ns: NS_PEER } });
    await inNetns(NS_NODE, 'ip', ['link', 'set', `flb-n${sfx}`, 'down']);
    await inNetns(NS_NODE, 'ip', ['link', 'set', `flb-n${sfx}`, 'name', IF]);
    await inNetns(NS_NODE, 'ip', ['link', 'set', IF, 'up']);
    await addAddr(NS_NODE, IF, '10.79.0.2/24');
    await addAddr(NS_NODE, IF, 'fd79::2/64', { nodad: true });
    await setSysctls(ORIGINAL_SYSCTLS);
    await mkdir(DIR, { recursive: true });
    lab.onCleanup(`rm ${DIR}`, () => rm(DIR, { recursive: true, force: true }));
    lab.onCleanup(`rm ${PIN}`, async () => { await rm(PIN, { recursive: true, force: true }); removeEmptyPinRoot(); });
    await writeFile(`${DIR}/cluster.xml`, CLUSTER_XML);
    await writeFile(`${DIR}/vmac_invisible.xml`, userconfig('vmac_invisible'));
    await writeFile(`${DIR}/vmac_directed.xml`, userconfig('vmac_directed'));
  }, 60_000);

  afterAll(async () => {
    const failures = await lab.cleanup();
    expect(failures).toEqual([]);
  }, 60_000);

  for (const mode of ['vmac_invisible', 'vmac_directed'] as const) {
    it(`${mode}: sets the sysctls${mode === 'vmac_invisible' ? ' and promiscuous mode' : ' (promiscuous mode stays off)'} while running and restores the originals on SIGTERM`, async () => {
      const d = startDaemon(mode);
      await waitUp(d);
      expect(await sysctls(), d.log()).toEqual(FARMLB_SYSCTLS);
      expect(await promisc()).toBe(mode === 'vmac_invisible');
      expect(await vipsPresent()).toEqual({ v4: true, v6: true });
      expect(await xdpProgId()).toBeGreaterThan(0);
      const record = JSON.parse(await readFile(`${RUN_DIR}/netstate.json`, 'utf8')) as { aliases: unknown[]; promisc: string[] };
      expect(record.aliases).toHaveLength(2);
      expect(record.promisc).toEqual(mode === 'vmac_invisible' ? [IF] : []);
      d.child.kill('SIGTERM');
      expect(await waitExit(d), d.log()).toBe(0);
      await expectAllUndone();
    });
  }

  it('on a veth whose peer runs no XDP program: --xdp-mode native is refused before anything changes; auto runs generic and farmlb status says why', async () => {
    for (const mode of ['vmac_invisible', 'vmac_directed'] as const) {
      const refused = startDaemon(mode, ['--xdp-mode', 'native']);
      expect(await waitExit(refused), refused.log()).not.toBe(0);
      expect(refused.log()).toContain('FARMLB_E_XDP_NATIVE_UNDELIVERABLE');
      await expectAllUndone();
    }
    const d = startDaemon('vmac_directed');
    await waitUp(d);
    const { stdout: link } = await inNetns(NS_NODE, 'ip', ['-d', 'link', 'show', 'dev', IF]);
    expect(link).toMatch(/xdpgeneric/);
    const status = JSON.parse((await inNetns(NS_NODE, 'node', [FARMLB, 'status', '--json', '--run-dir', RUN_DIR])).stdout) as
      { interfaces: { ifname: string; xdpMode: string; reason: string }[] };
    expect(status.interfaces).toEqual([expect.objectContaining({ ifname: IF, xdpMode: 'generic', reason: expect.stringMatching(/^veth: its peer .* runs no native XDP program/) })]);
    const text = (await inNetns(NS_NODE, 'node', [FARMLB, 'status', '--run-dir', RUN_DIR], { })).stdout;
    expect(text).toContain(`interface ${IF}: vmac_directed, XDP generic — veth: its peer`);
    d.child.kill('SIGTERM');
    expect(await waitExit(d), d.log()).toBe(0);
    await expectAllUndone();
  });

  it('after SIGKILL the program and the VIP stay; a new run adopts them, replaces the program atomically and restores the true originals on stop', async () => {
    const first = startDaemon('vmac_invisible');
    await waitUp(first);
    const firstProg = await xdpProgId();
    first.child.kill('SIGKILL');
    await waitExit(first);
    // What the killed run left: the program outlives the daemon, and so do the VIP and settings.
    expect(await xdpProgId()).toBe(firstProg);
    expect(await vipsPresent()).toEqual({ v4: true, v6: true });
    expect(await sysctls()).toEqual(FARMLB_SYSCTLS);
    expect(await promisc()).toBe(true);
    expect(existsSync(`${RUN_DIR}/netstate.json`)).toBe(true);

    // While the second run starts, sample the interface: the VIPs never leave, and are
    // never up without a program.
    const second = startDaemon('vmac_invisible');
    const samples: { prog: number | undefined; v4: boolean; v6: boolean }[] = [];
    let sampling = true;
    const sampler = (async () => {
      for (let i = 0; sampling && i < 2000; i++) {
        const [prog, vips] = await Promise.all([xdpProgId(), vipsPresent()]);
        samples.push({ prog, ...vips });
      }
    })();
    try {
      await waitUp(second);
    } finally {
      sampling = false;
      await sampler;
    }
    expect(samples.length).toBeGreaterThan(3);
    expect(samples.filter((s) => !s.v4 || !s.v6), 'samples without the VIPs').toEqual([]);
    expect(samples.filter((s) => s.prog === undefined), 'samples without a program').toEqual([]);
    const secondProg = await xdpProgId();
    expect(secondProg).toBeGreaterThan(0);
    expect(secondProg).not.toBe(firstProg);
    expect(second.log()).toMatch(/"event":"netstate_adopted"/);
    expect(await sysctls()).toEqual(FARMLB_SYSCTLS);
    expect(await promisc()).toBe(true);

    second.child.kill('SIGTERM');
    expect(await waitExit(second), second.log()).toBe(0);
    // The originals from before the first run, not farmlb's values the second run found.
    await expectAllUndone();
  });

  it('after SIGKILL in vmac_invisible, a vmac_directed run turns promiscuous mode back off at once', async () => {
    const first = startDaemon('vmac_invisible');
    await waitUp(first);
    first.child.kill('SIGKILL');
    await waitExit(first);
    expect(await promisc()).toBe(true);
    const second = startDaemon('vmac_directed');
    await waitUp(second);
    expect(await promisc()).toBe(false);
    expect(await vipsPresent()).toEqual({ v4: true, v6: true });
    second.child.kill('SIGTERM');
    expect(await waitExit(second), second.log()).toBe(0);
    await expectAllUndone();
  });
});

// ---- raw socket --------------------------------------------------------------------

const NS_CAP = `flb-net-r${sfx}`;
const RAW_TX = `flb-rt${sfx}`;
const RAW_RX = `flb-rr${sfx}`;
const RAW_DIR = `/tmp/flb-net-raw-${sfx}`;
const labRaw = new LabRegistry();

/** The frames of a pcap file (little-endian host, as tcpdump writes it here). */
function pcapFrames(buf: Buffer): Buffer[] {
  const frames: Buffer[] = [];
  for (let at = 24; at + 16 <= buf.length;) {
    const len = buf.readUInt32LE(at + 8);
    frames.push(buf.subarray(at + 16, at + 16 + len));
    at += 16 + len;
  }
  return frames;
}

/** Starts tcpdump in the capture namespace, sends `frame` until one matching packet is captured, returns it. */
async function sendAndCapture(frame: Uint8Array, filter: string, file: string): Promise<Buffer> {
  const tcpdump = spawn('nsenter', [`--net=/run/netns/${NS_CAP}`, '--', 'timeout', '15', 'tcpdump', '-n', '-U', '-c', '1', '-i', RAW_RX, '-w', file, filter],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  tcpdump.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  labRaw.onCleanup('stop tcpdump', () => { if (tcpdump.exitCode === null) tcpdump.kill('SIGKILL'); });
  await waitFor(() => err.includes('listening on'), { timeoutMs: 10_000, what: `tcpdump on ${RAW_RX} ready (${err})` });
  const sock = loadNative().openRawSocket(RAW_TX);
  try {
    await waitFor(() => {
      if (tcpdump.exitCode !== null) return true;
      sock.send(Buffer.from(frame));
      return false;
    }, { timeoutMs: 10_000, intervalMs: 200, what: 'tcpdump to capture the frame' });
  } finally {
    sock.close();
  }
  expect(tcpdump.exitCode, err).toBe(0);
  const frames = pcapFrames(await readFile(file));
  expect(frames).toHaveLength(1);
  return frames[0]!;
}

describePrivileged('lab: raw socket sends announce.ts frames byte for byte', () => {
  let txMac: string;

  beforeAll(async () => {
    await labRaw.netns(NS_CAP);
    await labRaw.veth({ a: { name: RAW_TX }, b: { name: RAW_RX, ns: NS_CAP } });
    txMac = await linkMac(undefined, RAW_TX);
    await mkdir(RAW_DIR, { recursive: true });
    labRaw.onCleanup(`rm ${RAW_DIR}`, () => rm(RAW_DIR, { recursive: true, force: true }));
  }, 30_000);

  afterAll(async () => {
    const failures = await labRaw.cleanup();
    expect(failures).toEqual([]);
  }, 30_000);

  it('delivers a unicast ARP reply exactly as built', async () => {
    const rxMac = await linkMac(NS_CAP, RAW_RX);
    const frame = buildArpReply({ vip: VIP4, announcedMac: txMac, clientIp: '10.79.0.10', clientMac: rxMac });
    const got = await sendAndCapture(frame, 'arp', `${RAW_DIR}/arp.pcap`);
    expect(toHex(got)).toBe(toHex(frame));
  });

  it('delivers an unsolicited neighbour advertisement exactly as built, with a checksum tcpdump accepts', async () => {
    const rxMac = await linkMac(NS_CAP, RAW_RX);
    const frame = buildUnsolicitedNa({ vip: VIP6, announcedMac: txMac, clientIp: 'fd79::10', clientMac: rxMac });
    const file = `${RAW_DIR}/na.pcap`;
    const got = await sendAndCapture(frame, 'icmp6 and ip6[40] == 136', file);
    expect(toHex(got)).toBe(toHex(frame));
    const { stdout } = await run('tcpdump', ['-n', '-vv', '-r', file]);
    expect(stdout).toMatch(/neighbor advertisement, length 32, tgt is fd79::100, Flags \[override\]/);
    expect(stdout).not.toMatch(/bad/i);
  });

  it('fails with FARMLB_E_NET_RAW_SEND for an unknown interface and after close', () => {
    expect(() => loadNative().openRawSocket('flb-nosuchif')).toThrow(expect.objectContaining({ code: 'FARMLB_E_NET_RAW_SEND', syscall: 'if_nametoindex' }));
    const sock = loadNative().openRawSocket(RAW_TX);
    sock.close();
    sock.close();
    expect(() => sock.send(Buffer.alloc(60))).toThrow(expect.objectContaining({ code: 'FARMLB_E_NET_RAW_SEND', errno: 9 }));
  });
});
