// The handover decision (docs/datapath.md §12) of the XDP program against the TS model, with
// real sockets. A namespace holds a server on the VIPs (IPv4 and IPv6) and real client
// connections to it: established ones, and ones the server closed first (TIME_WAIT on the
// server side). BPF_PROG_TEST_RUN runs in that namespace (its loopback is the ingress device
// and bpf_skc_lookup_tcp searches its sockets); the model is told which flows the server
// holds. For every generated packet — SYNs, ACKs, FINs, RSTs and ICMP errors of held, closed
// and unknown flows, from a client or from a farm node, in both VMAC modes, from the owner's,
// the previous owner's and a bystander's point of view — verdict, reason and output frame must
// be equal.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decide, MAX_GROUPS, type ConnectionTable } from '../../src/dataplane/model.js';
import { bpfObjectPath } from '../../src/addon/native.js';
import { buildFrame, parseIpv4, parseIpv6, quotedPacket, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, toHex, type FrameSpec } from '../../src/net/frames.js';
import { XdpDataplane } from '../../src/dataplane/xdp.js';
import { CriterionId, NBUCKETS, NODE_NONE, REASONS, VIP_ANY, type DataplaneTables, type Reason } from '../../src/dataplane/types.js';
import { rule, vip } from '../helpers/tables.js';
import { describePrivileged } from '../helpers/privileged.js';
import { createNetns, deleteNetns, inNetns, netnsPath, uniqueSuffix, waitFor } from '../lab/helpers/netns.js';

const NS = `flb-hov-${uniqueSuffix()}`;
const VIP4 = '10.0.0.100';
const VIP6 = '2001:db8::100';
const CLIENT4 = '192.0.2.10';
const CLIENT6 = '2001:db8:c::10';
const PORT_BY_PORT = 80; // on_port rule: the client's source port picks the bucket
const PORT_BY_ADDR = 81; // on_addr rule: the client's address picks the bucket
const CONNS_PER_PORT = 24; // per family and VIP port
const CLOSED_PER_PORT = 6; // of those, closed by the server first: TIME_WAIT on its side
const LEASE_VALID = 2n ** 64n - 1n;

const SELF = 1;
const OTHER = 2;
const IFACE_MAC = '02:00:00:00:00:aa';
const CLIENT_MAC = '02:00:00:00:00:c1';
const NODE_MACS = ['02:00:00:00:00:10', '02:00:00:00:00:11', '02:00:00:00:00:12'];

// Plain CommonJS for `node -e` in the namespace: a server on both VIPs and ports with a large
// backlog (no SYN cookies), then the client connections. Prints one JSON line describing the
// flows, then holds them until stdin closes.
const SOCKETS_JS = String.raw`
const net = require('net');
const { vips, ports, clients, perPort, closedPerPort } = JSON.parse(process.argv[1]);
const servers = [];
const held = [];
const closed = [];
const accepted = new Map();
async function main() {
  for (const host of vips) for (const port of ports) {
    const s = net.createServer((sock) => {
      const key = sock.remoteAddress.replace(/^::ffff:/, '') + '/' + sock.remotePort + '/' + port;
      accepted.set(key, sock);
      sock.on('error', () => {});
    });
    await new Promise((res, rej) => { s.once('error', rej); s.listen({ host, port, backlog: 4096 }, res); });
    servers.push(s);
  }
  const conns = [];
  for (let i = 0; i < vips.length; i++) for (const port of ports) for (let n = 0; n < perPort; n++) {
    const c = net.connect({ host: vips[i], port, localAddress: clients[i] });
    c.on('error', () => {});
    await new Promise((res, rej) => { c.once('connect', res); c.once('error', rej); });
    conns.push({ c, family: i === 0 ? 4 : 6, client: clients[i], clientPort: c.localPort, vipPort: port, close: n < closedPerPort });
  }
  const deadline = Date.now() + 5000;
  while (accepted.size < conns.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  for (const k of conns) {
    const key = k.client + '/' + k.clientPort + '/' + k.vipPort;
    const sock = accepted.get(key);
    if (!sock) throw new Error('server never saw ' + key);
    const flow = { family: k.family, client: k.client, clientPort: k.clientPort, vipPort: k.vipPort };
    if (k.close) {
      // The server closes first; once the client closes too, the server side is TIME_WAIT.
      k.c.on('end', () => k.c.end());
      sock.end();
      closed.push(flow);
    } else {
      held.push(flow);
    }
  }
  await new Promise((r) => setTimeout(r, 300));
  process.stdout.write(JSON.stringify({ held, closed }) + '\n');
}
main().catch((e) => { process.stderr.write(String(e.stack || e) + '\n'); process.exit(1); });
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

interface Flow {
  family: 4 | 6;
  client: string;
  clientPort: number;
  vipPort: number;
}

const flowKey = (family: number, client: string, clientPort: number, vipPort: number): string => `${family}/${client}/${clientPort}/${vipPort}`;

/** The model's view of the namespace's sockets: the flows the server holds. */
function connectionTable(held: readonly Flow[]): ConnectionTable {
  const hex = (family: 4 | 6, addr: string): string => Buffer.from(family === 4 ? parseIpv4(addr) : parseIpv6(addr)).toString('hex');
  const keys = new Set(held.map((f) => flowKey(f.family, hex(f.family, f.client), f.clientPort, f.vipPort)));
  return {
    holds(family, client, clientPort, _vip, vipPort) {
      return keys.has(flowKey(family, Buffer.from(client.subarray(0, family === 4 ? 4 : 16)).toString('hex'), clientPort, vipPort));
    },
  };
}

const fill = (owner: number): number[] => Array<number>(NBUCKETS).fill(owner);
const rows = (...given: number[][]): number[][] => Array.from({ length: MAX_GROUPS }, (_, g) => given[g] ?? fill(NODE_NONE));
const mixed = (a: number, b: number): number[] => Array.from({ length: NBUCKETS }, (_, i) => (i % 3 === 0 ? a : b));

/** Point of view × VMAC mode: group 0 is the on_port group, group 1 the on_addr group. */
function setups(): { name: string; tables: DataplaneTables }[] {
  const base = (mode: 'vmac_invisible' | 'vmac_directed', buckets: number[][], prevOwners: number[][]): DataplaneTables => ({
    hashSeed: 0x6661726d,
    selfNode: SELF,
    vmac: '5a:fe:0a:00:00:64',
    vips: [vip(0, VIP4, 0, mode), vip(1, VIP6, 0, mode)],
    rules: [rule(6, PORT_BY_PORT, VIP_ANY, 0, CriterionId.Port), rule(6, PORT_BY_ADDR, VIP_ANY, 1, CriterionId.Addr)],
    buckets,
    prevOwners,
    nodeMacs: NODE_MACS,
  });
  const out: { name: string; tables: DataplaneTables }[] = [];
  for (const mode of ['vmac_invisible', 'vmac_directed'] as const) {
    out.push({ name: `${mode}: previous owner`, tables: base(mode, rows(fill(OTHER), fill(OTHER)), rows(fill(SELF), fill(SELF))) });
    out.push({ name: `${mode}: owner`, tables: base(mode, rows(fill(SELF), fill(SELF)), rows(fill(OTHER), fill(OTHER))) });
    out.push({ name: `${mode}: previous owner, no owner yet`, tables: base(mode, rows(fill(NODE_NONE), fill(NODE_NONE)), rows(fill(SELF), fill(SELF))) });
    out.push({ name: `${mode}: bystander`, tables: base(mode, rows(mixed(OTHER, NODE_NONE), fill(OTHER)), rows(mixed(0, 0), fill(0))) });
    out.push({ name: `${mode}: mixed`, tables: base(mode, rows(mixed(SELF, OTHER), mixed(OTHER, SELF)), rows(mixed(OTHER, SELF), mixed(SELF, NODE_NONE))) });
  }
  return out;
}

/** Every packet kind for one flow, from the client and (directed) from each farm node. */
function framesFor(f: Flow): Uint8Array[] {
  const vipAddr = f.family === 4 ? VIP4 : VIP6;
  const l3 = f.family === 4 ? ({ family: 4, src: f.client, dst: vipAddr } as const) : ({ family: 6, src: f.client, dst: vipAddr } as const);
  const out: Uint8Array[] = [];
  for (const src of [CLIENT_MAC, ...NODE_MACS]) {
    const eth = { src, dst: IFACE_MAC };
    for (const flags of [TCP_SYN, TCP_ACK, TCP_ACK | TCP_PSH, TCP_FIN | TCP_ACK, TCP_RST, TCP_SYN | TCP_ACK]) {
      const spec: FrameSpec = { eth, l3, l4: { proto: 'tcp', sport: f.clientPort, dport: f.vipPort, flags }, payload: 8 };
      out.push(buildFrame(spec));
    }
    // An ICMP error (fragmentation needed / packet too big) quoting a packet the VIP sent.
    const quoteL3 = f.family === 4 ? ({ family: 4, src: vipAddr, dst: f.client } as const) : ({ family: 6, src: vipAddr, dst: f.client } as const);
    const quote = quotedPacket({ l3: quoteL3, l4: { proto: 'tcp', sport: f.vipPort, dport: f.clientPort, flags: TCP_ACK } });
    out.push(
      buildFrame({
        eth,
        l3,
        l4: f.family === 4 ? { proto: 'icmp', type: 3, code: 4, seq: 1400 } : { proto: 'icmpv6', type: 2, code: 0, seq: 1280 },
        payload: quote,
      }),
    );
  }
  return out;
}

describePrivileged('handover decisions with real sockets (program vs model, BPF_PROG_TEST_RUN in a namespace)', () => {
  let xdp: XdpDataplane;
  let child: ChildProcess | undefined;
  let held: Flow[] = [];
  let closed: Flow[] = [];

  beforeAll(async () => {
    await createNetns(NS);
    await inNetns(NS, 'ip', ['addr', 'add', `${VIP4}/32`, 'dev', 'lo']);
    await inNetns(NS, 'ip', ['addr', 'add', `${CLIENT4}/32`, 'dev', 'lo']);
    await inNetns(NS, 'ip', ['addr', 'add', `${VIP6}/128`, 'dev', 'lo', 'nodad']);
    await inNetns(NS, 'ip', ['addr', 'add', `${CLIENT6}/128`, 'dev', 'lo', 'nodad']);
    const args = { vips: [VIP4, VIP6], ports: [PORT_BY_PORT, PORT_BY_ADDR], clients: [CLIENT4, CLIENT6], perPort: CONNS_PER_PORT, closedPerPort: CLOSED_PER_PORT };
    child = spawn('nsenter', [`--net=${netnsPath(NS)}`, '--', process.execPath, '-e', SOCKETS_JS, JSON.stringify(args)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += String(d)));
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`socket holder gave no report in 20 s: ${stderr}`)), 20_000);
      createInterface({ input: child!.stdout! }).once('line', (l) => {
        clearTimeout(timer);
        resolve(l);
      });
      child!.once('exit', (code) => reject(new Error(`socket holder exited (${code}): ${stderr}`)));
    });
    ({ held, closed } = JSON.parse(line) as { held: Flow[]; closed: Flow[] });
    // The closed flows must really be in TIME_WAIT on the server side before packets are decided.
    await waitFor(
      async () => {
        const ss = await inNetns(NS, 'ss', ['-Htn', 'state', 'time-wait']);
        return ss.stdout.trim().split('\n').filter(Boolean).length >= closed.length;
      },
      { timeoutMs: 10_000, what: 'server-side TIME_WAIT sockets' },
    );
    xdp = await XdpDataplane.open({ objectPath: bpfObjectPath() });
    await xdp.setLease(LEASE_VALID);
    xdp.setInterfaceMac(1, IFACE_MAC);
  }, 60_000);

  afterAll(async () => {
    child?.stdin?.end();
    child?.kill('SIGKILL');
    await xdp?.close();
    await deleteNetns(NS);
  });

  it('the namespace holds established and TIME_WAIT server sockets for the flows', () => {
    expect(held.length).toBe(2 * 2 * (CONNS_PER_PORT - CLOSED_PER_PORT));
    expect(closed.length).toBe(2 * 2 * CLOSED_PER_PORT);
  });

  it('decides every packet of held, closed and unknown flows exactly as the model, in every role and both modes', async () => {
    const sockets = connectionTable(held);
    const unknown: Flow[] = held.slice(0, 16).map((f, i) => ({ ...f, clientPort: (f.clientPort + 7919 * (i + 1)) % 60000 + 1024 }));
    const flows = [...held, ...closed, ...unknown];
    const frames = flows.flatMap(framesFor);
    const seen = Object.fromEntries(REASONS.map((r) => [r, 0])) as Record<Reason, number>;
    const failures: string[] = [];
    for (const setup of setups()) {
      await xdp.apply(setup.tables);
      const results = await xdp.testRunMany(frames, { netns: netnsPath(NS) });
      for (let i = 0; i < frames.length && failures.length < 10; i++) {
        const want = decide(frames[i]!, setup.tables, LEASE_VALID, 0n, { ifaceMac: Uint8Array.from(IFACE_MAC.split(':').map((h) => parseInt(h, 16))) }, sockets);
        const got = results[i]!;
        seen[want.reason]++;
        if (got.retval !== want.action || toHex(got.dataOut) !== toHex(want.frame)) {
          failures.push(`${setup.name}: frame ${toHex(frames[i]!)}: program ${got.retval}, model ${want.action} (${want.reason})`);
        }
      }
    }
    expect(failures).toEqual([]);
    // The roles this test exists for were all reached, the socket-held ones included.
    for (const r of ['pass_handover_prev', 'pass_handover_new', 'drop_handover', 'tx_forward_prev', 'tx_forward', 'drop_not_owned'] as const) {
      expect(seen[r], r).toBeGreaterThan(0);
    }
  }, 60_000);

  it('a TIME_WAIT socket is not a connection (neither node takes its ACK); an established one is taken by the node holding it, in either role', async () => {
    const [asPrev, asOwner] = setups();
    const ack = (f: Flow): Uint8Array => buildFrame({
      eth: { src: CLIENT_MAC, dst: IFACE_MAC },
      l3: { family: f.family, src: f.client, dst: f.family === 4 ? VIP4 : VIP6 } as FrameSpec['l3'],
      l4: { proto: 'tcp', sport: f.clientPort, dport: f.vipPort, flags: TCP_ACK },
    });
    const verdict = async (tables: DataplaneTables, frame: Uint8Array): Promise<number> => {
      await xdp.apply(tables);
      return (await xdp.testRunMany([frame], { netns: netnsPath(NS) }))[0]!.retval;
    };
    const XDP_DROP = 1;
    const XDP_PASS = 2;
    expect([await verdict(asPrev!.tables, ack(closed[0]!)), await verdict(asOwner!.tables, ack(closed[0]!))]).toEqual([XDP_DROP, XDP_DROP]);
    // One namespace plays both roles: whichever it plays, the established connection is its own.
    expect([await verdict(asPrev!.tables, ack(held[0]!)), await verdict(asOwner!.tables, ack(held[0]!))]).toEqual([XDP_PASS, XDP_PASS]);
  });
});
