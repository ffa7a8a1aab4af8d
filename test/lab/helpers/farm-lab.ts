// A bridged lab farm: one L2 segment (a Linux bridge in its own namespace), a client with
// many source addresses, and N farm nodes that all hold the same VIPs, each running a real
// `farmlb run --static` child process (or, with `membership: true`, `farmlb run` with the
// membership protocol) and an HTTP server that answers its node name.
//
//   flb-<name>-c  [flbc] ──── [p-c]  ┐
//   flb-<name>-n1 [flbn] ──── [p-n1] ├─ br0   (flb-<name>-sw)
//   flb-<name>-n2 [flbn] ──── [p-n2] ┘
//
// Every node's interface is called flbn inside its own namespace, so one userconfig.xml
// (`<interface name="flbn">`) serves the whole farm, as on a real farm of identical hosts.
//
// API (all waits bounded; all failures carry the daemon logs)
//   FarmLab.create(opts)              build the lab, write and validate the configs, start
//                                     servers and daemons, wait until every node has its
//                                     VIPs and the program attached; flush the client's
//                                     neighbour table. Cleans up and rethrows on failure.
//   lab.curlFrom(src, url, opts?)     one HTTP request from the client bound to `src`.
//   lab.connectMany(attempts, n)      many requests, at most n in flight: who served each.
//   lab.clientAttempts(family, opts?) one attempt per client address of a family.
//   lab.arping(vip, count, opts?)     ARP requests from the client; every reply (captured) with its MACs.
//   lab.solicit(vip6, opts?)          one neighbour solicitation (by a ping); captured NAs.
//   lab.capture(filter, during, opts?) tcpdump -e on the client while `during` runs.
//   lab.neigh(addr) / flushNeigh()    the client's neighbour entry for addr / empty the table.
//   lab.ping(dst, opts?)              ping from the client: replies and duplicates.
//   lab.farmlb(args, node?)           the CLI; with a node: in its namespace with its dirs.
//   lab.buckets(node)                 `farmlb buckets --json` of a node, parsed.
//   lab.status(node) / health(node, path)   `farmlb status --json` / an HTTP GET of the node's health server.
//   lab.reasonCounters(node)          packets per verdict reason, read from the node's pinned maps.
//   lab.killNode(name, signal?)       signal a node's daemon and wait for it to exit.
//   lab.startNode(name, { configFile? }) / signalNode(name, signal)   restart a daemon (with another config) / send it a signal.
//   lab.reloadNode(name)              SIGHUP a daemon and wait until it says it reloaded.
//   lab.logMark(name) / logSince(name, mark) / waitForLog(name, pattern, { from })   read or wait for daemon log lines.
//   lab.signalServer(name, sig) / restartServer(name)   kill, stop or continue a node's HTTP server (its application) / start it again.
//   lab.moduleDir(name) / nodeConfigFile(name)   with opts.app: a node's module directory (conf/, bin/) and its userconfig.xml.
//   lab.writeConfig(change?)          rewrite userconfig.xml (e.g. new powers) and validate; the
//                                     daemons see it when restarted (or signalled, once they reload).
//   lab.nodeMac(name), nodeAddr(name, family), nodeNs(name), pinDir(name), runDir(name),
//   lab.nodeByMac(mac), nodeNames(), daemonRunning(name), vipUrl(family), configArgs()
//   lab.inClient(cmd, args) / inNode(name, cmd, args) / neighTable()
//   lab.compiled()                    the static tables of the current config files (what every
//                                     `farmlb run --static` serves), with farm and cluster.
//   lab.arpOwner(compiled, vip, src)  the node that answers src's ARP request / NS for vip.
//   lab.logs(name?)                   daemon output (all nodes when no name).
//   lab.cleanup()                     SIGTERM daemons (SIGKILL after a bound), remove
//                                     namespaces, pins and temp files. Idempotent.
//   FarmLab.leftovers(name)           namespaces, pins and processes of a lab that remain.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { LabRegistry, inNetns, netnsPath, run, waitFor, type RunResult } from './netns.js';
import { CorosyncNodes } from './corosync-lab.js';
import { loadConfigs } from '../../../src/config/index.js';
import type { ClusterConfig, FarmConfig } from '../../../src/config/types.js';
import { compileTables, staticTable } from '../../../src/balance/compile.js';
import { addrBytes } from '../../../src/balance/addr.js';
import { bucketOf } from '../../../src/balance/hash.js';
import { GROUP_NONE, NODE_NONE, type DataplaneTables } from '../../../src/dataplane/types.js';
import { XdpDataplane, removeEmptyPinRoot } from '../../../src/dataplane/xdp.js';
import { PIN_ROOT } from '../../../src/paths.js';
import type { DaemonStatus } from '../../../src/api/status.js';

export const REPO = path.resolve(import.meta.dirname, '../../..');
const FARMLB_BIN = path.join(REPO, 'bin/farmlb.js');
/** The systemd unit's Nice= (0 when it sets none): the lab runs the daemons as the unit does. */
export const UNIT_NICE = Number(/^Nice=(-?\d+)$/m.exec(readFileSync(path.join(REPO, 'packaging/farmlb@.service'), 'utf8'))?.[1] ?? 0);

export const CLIENT_IF = 'flbc';
export const NODE_IF = 'flbn';
const BRIDGE = 'br0';
/** The nodes' interface on the second LAN (opts.secondLan) and its bridge; addresses 10.78.0.(11+i)/16. */
export const SECOND_LAN = { ifname: 'flbm', bridge: 'br1', node4: (i: number) => `10.78.0.${11 + i}` } as const;
export const HTTP_PORT = 8080;

/** Addressing of every lab: namespaces are isolated, so concurrent labs may share it. */
export const LAB_NET = {
  prefix4: 16,
  prefix6: 64,
  client4: '10.79.0.1',
  client6: 'fd79::1',
  vip4: '10.79.0.100',
  vip6: 'fd79::100',
  node4: (i: number) => `10.79.0.${11 + i}`,
  node6: (i: number) => `fd79::${(0x11 + i).toString(16)}`,
  /** Extra client sources: 10.79.1.1 … (250 per /24), fd79::1:1 … */
  clientExtra4: (i: number) => `10.79.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`,
  clientExtra6: (i: number) => `fd79::1:${(i + 1).toString(16)}`,
  /** Fixed MACs make captures readable: 02:79:00:00:00:01 is the client, …:1N node N. */
  clientMac: '02:79:00:00:00:01',
  nodeMac: (i: number) => `02:79:00:00:00:${(0x11 + i).toString(16).padStart(2, '0')}`,
} as const;

export type VmacMode = 'vmac_invisible' | 'vmac_directed';
export type Family = 4 | 6;

export interface FarmLabNode {
  name: string;
  /** Power in the default group. */
  power: number;
}

export interface FarmLabRule {
  proto: 'tcp' | 'udp' | 'arp';
  /** A VIP address or '*' (default '*'). */
  vip?: string;
  port?: number | '*';
  filter: 'on_addr' | 'on_port' | 'on_ipid';
}

export interface FarmLabGroup {
  name: string;
  /** Node name → power; null = no <cluster> (every node, power 1); default: the nodes' powers. */
  hosts?: Record<string, number> | null;
  rules: FarmLabRule[];
}

export interface FarmLabOptions {
  /** Short and unique per test process (include uniqueSuffix()); namespaces are flb-<name>-*. */
  name: string;
  nodes: FarmLabNode[];
  mode: VmacMode;
  clientAddrs4: number;
  clientAddrs6: number;
  /** Add `<rule proto="arp" filter="on_addr"/>` to the default group (vmac_directed only). */
  arpRule?: boolean;
  /** Replaces the default group `web` (TCP 8080 on_addr for both VIPs, plus the arp rule). */
  groups?: FarmLabGroup[];
  /** Extra attributes of <interface> (arpreroute, arpinterval, arpelapse). */
  interfaceAttrs?: Record<string, string>;
  /** `addr=` of <virtual_interface> (the VMAC); default: farmlb's own default. */
  vmac?: string;
  hashSeed?: number;
  /** Passed to every daemon (`--lease-ms`). */
  leaseMs?: number;
  /**
   * `--xdp-mode` of every daemon; default: none given, so farmlb's own `auto` decides, as
   * for a user (docs/net.md, "XDP mode": generic on these veths, whose bridge-side peers
   * run nothing).
   */
  xdpMode?: 'native' | 'generic';
  /** FARMLB_LOG_LEVEL of the daemons (default debug: the logs are only read on failure). */
  logLevel?: string;
  /**
   * `nice -n` of the daemons and web servers. Default: the daemons run at the systemd unit's
   * `Nice=` (packaging/farmlb@.service: the daemon is run as users run it), the web servers
   * inherit. On a lab host shared with other work, a daemon starved past its lease (200 ms)
   * is a stall of the host, not of the protocol.
   */
  nice?: number;
  /** Start the daemons (default true); false leaves the farm without farmlb. */
  startDaemons?: boolean;
  /**
   * Run the membership protocol (`farmlb run` without --static). A heartbeat key is written
   * to the lab directory and named in <farmlb key_file=…> (every node shares it).
   */
  membership?: boolean;
  /** `<farm pulse= mlost_count= slost_count=>` (heartbeat timing); default: farmlb's own. */
  farmTiming?: { pulse?: string; mlostCount?: number; slostCount?: number };
  /** `<farmlb split_brain=…>`; default serve. */
  splitBrain?: 'serve' | 'quorum';
  /** `<farmlb handover_limit=…>` (e.g. '120s', '0' = no handover); default farmlb's own. */
  handoverLimit?: string;
  /**
   * Run the membership on Corosync (`<farmlb membership="corosync">`, implies `membership`):
   * one corosync per node namespace, configured by `farmlb corosync-conf`, started before the
   * daemons and stopped after them (helpers/corosync-lab.ts; `lab.corosync`).
   */
  corosync?: boolean;
  /** corosync's totem token (ms) with `corosync`; default farmlb corosync-conf's (300). */
  corosyncTokenMs?: number;
  /** More `farmlb corosync-conf` options with `corosync` (e.g. ['--qnetd', addr]). */
  corosyncConfArgs?: string[];
  /**
   * A second LAN for the heartbeats: bridge br1, interface `flbm` (SECOND_LAN) on every
   * node, cluster.xml LAN "backup", `<farm><lan name="default"/><lan name="backup"/>`.
   */
  secondLan?: boolean;
  /**
   * The application (docs/application.md): each node gets its own module directory, SafeKit
   * style — <dir>/<node>/conf/userconfig.xml (the lab config plus `xml(node)` inside
   * <service>, `serviceAttrs` on it) and <dir>/<node>/bin/ with `scripts` (name → shell body,
   * written executable). The app sections are not in the config digest, so the nodes agree.
   */
  app?: { xml: (node: string) => string; serviceAttrs?: string; scripts?: Record<string, string> };
  /** A cloud farm (docs/application.md): no <vip>; the daemons run the membership and the application only. */
  cloud?: boolean;
  /** Attributes of <vip> (tcpreset, scriptcontrol). */
  vipAttrs?: Record<string, string>;
}

export interface CurlOptions {
  localPort?: number;
  connectTimeoutS?: number;
  maxTimeS?: number;
}

export interface CurlResult {
  ok: boolean;
  /** The response body, trimmed (the serving node's name for the lab servers). */
  body: string;
  error?: string;
}

export interface ConnectAttempt {
  src: string;
  /** Default: the lab's VIP of src's family, port 8080. */
  url?: string;
  localPort?: number;
}

export interface ConnectResult extends ConnectAttempt {
  url: string;
  /** The node that answered, or null when the connection failed. */
  servedBy: string | null;
  error?: string;
}

export interface ArpReply {
  /** The address the reply is for. */
  from: string;
  /** The MAC the reply gives for it (ARP sender hardware address). */
  mac: string;
  /** Ethernet source and destination of the reply frame. */
  ethSrc: string;
  ethDst: string;
}

export interface ArpingResult {
  sent: number;
  replies: ArpReply[];
  /** arping's own output, for failure messages (its reply count is not the truth). */
  output: string;
}

export interface CapturedFrame {
  srcMac: string;
  dstMac: string;
  /** The rest of tcpdump's line after the MAC header. */
  text: string;
  line: string;
}

export interface NeighEntry {
  dst: string;
  mac: string | null;
  state: string[];
}

export interface PingResult {
  transmitted: number;
  received: number;
  duplicates: number;
  output: string;
}

export interface CompiledLab {
  farm: FarmConfig;
  cluster: ClusterConfig;
  /** The static table (selfNode: none): who owns what on every node. */
  tables: DataplaneTables;
}

export interface BucketsView {
  selfNode: { id: number; name: string | null } | null;
  nodes: string[];
  groups: { index: number; name: string; owners: (string | number | null)[]; counters: { accepted: number[]; dropped: number[] } }[];
}

interface NodeState {
  spec: FarmLabNode;
  index: number;
  ns: string;
  mac: string;
  addr4: string;
  addr6: string;
  pinDir: string;
  runDir: string;
  daemon?: ChildProcess;
  server?: ChildProcess;
  log: string;
}

const LOG_LIMIT = 2 << 20;

// Large backlog: a burst of SYNs must never push the server into SYN cookies, which defeat
// the program's socket lookups (LAB-NOTES). One dual-stack socket serves IPv4 and IPv6.
const SERVER_JS = `
const [name] = process.argv.slice(1);
require('http').createServer((req, res) => res.end(name + '\\n'))
  .listen({ port: ${HTTP_PORT}, host: '::', backlog: 4096 });
`;

export class FarmLab {
  readonly name: string;
  readonly mode: VmacMode;
  readonly dir: string;
  readonly clientNs: string;
  readonly switchNs: string;
  readonly vip4 = LAB_NET.vip4;
  readonly vip6 = LAB_NET.vip6;
  readonly clientAddrs4: string[];
  readonly clientAddrs6: string[];
  readonly configFile: string;
  readonly clusterFile: string;
  /** The heartbeat key of the membership (written when opts.membership). */
  readonly keyFile: string;
  private readonly nodes: NodeState[];
  private readonly registry = new LabRegistry();
  private opts: FarmLabOptions;
  private cleaned = false;
  /** The corosyncs of a `corosync` lab. */
  corosync: CorosyncNodes | undefined;

  private constructor(opts: FarmLabOptions, dir: string) {
    this.opts = opts;
    this.name = opts.name;
    this.mode = opts.mode;
    this.dir = dir;
    this.clientNs = `flb-${opts.name}-c`;
    this.switchNs = `flb-${opts.name}-sw`;
    this.clientAddrs4 = Array.from({ length: opts.clientAddrs4 }, (_, i) => LAB_NET.clientExtra4(i));
    this.clientAddrs6 = Array.from({ length: opts.clientAddrs6 }, (_, i) => LAB_NET.clientExtra6(i));
    this.configFile = path.join(dir, 'userconfig.xml');
    this.clusterFile = path.join(dir, 'cluster.xml');
    this.keyFile = path.join(dir, 'heartbeat.key');
    this.nodes = opts.nodes.map((spec, index) => ({
      spec,
      index,
      ns: `flb-${opts.name}-n${index + 1}`,
      mac: LAB_NET.nodeMac(index),
      addr4: LAB_NET.node4(index),
      addr6: LAB_NET.node6(index),
      pinDir: `${PIN_ROOT}/flb-${opts.name}-n${index + 1}`,
      runDir: path.join(dir, spec.name, 'run'),
      log: '',
    }));
  }

  static async create(opts: FarmLabOptions): Promise<FarmLab> {
    if (!/^[a-z0-9-]{1,20}$/.test(opts.name)) throw new Error(`lab name ${opts.name}: use 1..20 of [a-z0-9-]`);
    if (opts.nodes.length < 1 || opts.nodes.length > 9) throw new Error('a lab farm has 1..9 nodes');
    if (opts.clientAddrs4 > 2000 || opts.clientAddrs6 > 2000) throw new Error('at most 2000 client addresses per family');
    if (!existsSync(path.join(REPO, 'dist/cli/main.js'))) throw new Error('dist/ is missing: run scripts/setup.sh');
    const dir = await mkdtemp(path.join(os.tmpdir(), `flb-${opts.name}-`));
    const lab = new FarmLab(opts, dir);
    try {
      await lab.build();
      return lab;
    } catch (err) {
      const logs = lab.logs();
      const failures = await lab.cleanup();
      const extra = [logs && `daemon logs:\n${logs}`, failures.length > 0 && `cleanup failures:\n${failures.join('\n')}`].filter(Boolean).join('\n');
      throw new Error(`FarmLab ${opts.name}: ${err instanceof Error ? err.message : String(err)}${extra ? `\n${extra}` : ''}`, { cause: err });
    }
  }

  private async build(): Promise<void> {
    const reg = this.registry;
    reg.onCleanup(`rm ${this.dir}`, () => rm(this.dir, { recursive: true, force: true }), () => rmSync(this.dir, { recursive: true, force: true }));
    for (const ns of [this.switchNs, this.clientNs, ...this.nodes.map((n) => n.ns)]) {
      await reg.netns(ns);
      await this.sysctls(ns);
    }
    for (const n of this.nodes) {
      // Pins outlive a SIGKILLed daemon; they are the lab's to remove.
      reg.onCleanup(`rm pins ${n.pinDir}`, async () => { await rm(n.pinDir, { recursive: true, force: true }); removeEmptyPinRoot(); },
        () => { rmSync(n.pinDir, { recursive: true, force: true }); removeEmptyPinRoot(); });
    }
    await this.buildSwitch();
    await this.buildClient();
    for (const n of this.nodes) await this.buildNode(n);

    // 0600 like a real key file; only its bytes matter to the HMAC.
    if (this.membershipMode()) await writeFile(this.keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    await this.writeConfig();
    if (this.opts.corosync) await this.startCorosyncs();
    reg.onCleanup('stop servers', () => this.stopServers(), () => this.killAllSync('server'));
    reg.onCleanup('stop daemons', () => this.stopDaemons(), () => this.killAllSync('daemon'));
    for (const n of this.nodes) this.startServer(n);
    if (this.opts.startDaemons ?? true) await Promise.all(this.nodes.map((n) => this.startNode(n.spec.name)));
    await Promise.all(this.nodes.map((n) => waitFor(async () => {
      const { stdout } = await inNetns(n.ns, 'ss', ['-Hltn', `sport = :${HTTP_PORT}`]);
      return stdout.includes(`:${HTTP_PORT}`);
    }, { timeoutMs: 15_000, what: `the HTTP server of ${n.spec.name}` })));
    await this.flushNeigh();
  }

  /** The daemons run a membership (built-in or Corosync), not --static. */
  private membershipMode(): boolean {
    return this.opts.membership === true || this.opts.corosync === true;
  }

  private async startCorosyncs(): Promise<void> {
    const c = new CorosyncNodes({
      dir: this.dir, nodes: this.nodes.map((n) => ({ name: n.spec.name, ns: n.ns })), farmlbBin: FARMLB_BIN, configArgs: this.configArgs(),
      ...(this.opts.corosyncTokenMs ? { tokenMs: this.opts.corosyncTokenMs } : {}),
      ...(this.opts.corosyncConfArgs ? { confArgs: this.opts.corosyncConfArgs } : {}),
    });
    this.corosync = c;
    // Registered before the daemons' cleanup: undone after them (newest first).
    this.registry.onCleanup('stop corosync', () => c.cleanup(), () => c.cleanupSync());
    await c.writeConf();
    await Promise.all(this.nodes.map((n) => c.start(n.spec.name)));
  }

  private async sysctls(ns: string): Promise<void> {
    // Set before the veths arrive so they inherit it: every address here is unique or
    // deliberately shared, and DAD would only delay (or, for a shared VIP, fail) them.
    await inNetns(ns, 'sysctl', ['-q', '-w', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0']);
  }

  private async buildSwitch(): Promise<void> {
    for (const br of [BRIDGE, ...(this.opts.secondLan ? [SECOND_LAN.bridge] : [])]) {
      await inNetns(this.switchNs, 'ip', ['link', 'add', br, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0']);
      await inNetns(this.switchNs, 'ip', ['link', 'set', br, 'up']);
    }
  }

  /**
   * A veth from the switch (port `port`) into `ns` (interface `ifname`). Nothing is attached
   * to the bridge side and no offload is changed: a plain bridge, as a user's containers or
   * test namespaces have, so the lab sees what they would (LAB-NOTES).
   */
  private async plug(port: string, ns: string, ifname: string, mac: string, bridge: string = BRIDGE): Promise<void> {
    // Created directly in both namespaces: no name in the root namespace, so concurrent
    // labs never collide.
    await run('ip', ['link', 'add', port, 'netns', this.switchNs, 'mtu', '1500', 'type', 'veth',
      'peer', 'name', ifname, 'netns', ns, 'mtu', '1500', 'address', mac]);
    await inNetns(this.switchNs, 'ip', ['link', 'set', port, 'master', bridge]);
    await inNetns(this.switchNs, 'ip', ['link', 'set', port, 'up']);
    await inNetns(ns, 'ip', ['link', 'set', ifname, 'up']);
  }

  private async buildClient(): Promise<void> {
    await this.plug('p-c', this.clientNs, CLIENT_IF, LAB_NET.clientMac);
    const lines = [
      `addr add ${LAB_NET.client4}/${LAB_NET.prefix4} dev ${CLIENT_IF}`,
      `addr add ${LAB_NET.client6}/${LAB_NET.prefix6} dev ${CLIENT_IF} nodad`,
      ...this.clientAddrs4.map((a) => `addr add ${a}/${LAB_NET.prefix4} dev ${CLIENT_IF}`),
      ...this.clientAddrs6.map((a) => `addr add ${a}/${LAB_NET.prefix6} dev ${CLIENT_IF} nodad`),
    ];
    await inNetns(this.clientNs, 'ip', ['-batch', '-'], { input: `${lines.join('\n')}\n`, timeoutMs: 60_000 });
  }

  private async buildNode(n: NodeState): Promise<void> {
    await this.plug(`p-n${n.index + 1}`, n.ns, NODE_IF, n.mac);
    await inNetns(n.ns, 'ip', ['addr', 'add', `${n.addr4}/${LAB_NET.prefix4}`, 'dev', NODE_IF]);
    await inNetns(n.ns, 'ip', ['addr', 'add', `${n.addr6}/${LAB_NET.prefix6}`, 'dev', NODE_IF, 'nodad']);
    if (this.opts.secondLan) {
      const mac = `02:78:00:00:00:${(0x11 + n.index).toString(16).padStart(2, '0')}`;
      await this.plug(`q-n${n.index + 1}`, n.ns, SECOND_LAN.ifname, mac, SECOND_LAN.bridge);
      await inNetns(n.ns, 'ip', ['addr', 'add', `${SECOND_LAN.node4(n.index)}/16`, 'dev', SECOND_LAN.ifname]);
    }
  }

  // ---- configuration ----------------------------------------------------------------

  /** (Re)write userconfig.xml and cluster.xml from the options, with `change` applied, and validate them. */
  async writeConfig(change: Partial<Pick<FarmLabOptions, 'nodes' | 'groups' | 'arpRule' | 'interfaceAttrs' | 'hashSeed'>> = {}): Promise<void> {
    if (change.nodes && change.nodes.map((n) => n.name).join() !== this.nodeNames().join()) {
      throw new Error('writeConfig changes powers, not the set of nodes: the namespaces are built once');
    }
    this.opts = { ...this.opts, ...change };
    await writeFile(this.clusterFile, this.clusterXml());
    await writeFile(this.configFile, this.userconfigXml());
    await run('node', [FARMLB_BIN, 'validate', this.configFile, '--cluster', this.clusterFile], { timeoutMs: 20_000 });
    await this.writeAppModules();
  }

  /** The module directory of a node with an application (opts.app): conf/ and bin/. */
  moduleDir(name: string): string {
    return path.join(this.dir, name, 'module');
  }

  /** The userconfig.xml a node's daemon reads: its own module's with an application, else the shared one. */
  nodeConfigFile(name: string): string {
    return this.opts.app ? path.join(this.moduleDir(name), 'conf', 'userconfig.xml') : this.configFile;
  }

  private async writeAppModules(): Promise<void> {
    const app = this.opts.app;
    if (!app) return;
    for (const n of this.nodes) {
      const dir = this.moduleDir(n.spec.name);
      await mkdir(path.join(dir, 'conf'), { recursive: true });
      await mkdir(path.join(dir, 'bin'), { recursive: true });
      const xml = this.userconfigXml()
        .replace(' <service mode="farm">', ` <service mode="farm"${app.serviceAttrs ? ` ${app.serviceAttrs}` : ''}>`)
        .replace(' </service>', `${app.xml(n.spec.name)}\n </service>`);
      const file = this.nodeConfigFile(n.spec.name);
      await writeFile(file, xml);
      for (const [name, body] of Object.entries(app.scripts ?? {})) {
        await writeFile(path.join(dir, 'bin', name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
      }
      await run('node', [FARMLB_BIN, 'validate', file, '--cluster', this.clusterFile], { timeoutMs: 20_000 });
    }
  }

  clusterXml(): string {
    const nodes = this.nodes.map((n) => `    <node name="${n.spec.name}" addr="${n.addr4}"/>`).join('\n');
    const backup = this.opts.secondLan
      ? `\n  <lan name="backup">\n${this.nodes.map((n) => `    <node name="${n.spec.name}" addr="${SECOND_LAN.node4(n.index)}"/>`).join('\n')}\n  </lan>` : '';
    return `<cluster>\n <lans>\n  <lan name="default">\n${nodes}\n  </lan>${backup}\n </lans>\n</cluster>\n`;
  }

  userconfigXml(): string {
    const o = this.opts;
    const powers = Object.fromEntries(o.nodes.map((n) => [n.name, n.power]));
    const groups: FarmLabGroup[] = o.groups ?? [{
      name: 'web',
      rules: [
        { proto: 'tcp', vip: this.vip4, port: HTTP_PORT, filter: 'on_addr' },
        { proto: 'tcp', vip: this.vip6, port: HTTP_PORT, filter: 'on_addr' },
        ...(o.arpRule ? [{ proto: 'arp', filter: 'on_addr' } as const] : []),
      ],
    }];
    const attrs = (a: Record<string, string | number | undefined>) =>
      Object.entries(a).filter(([, v]) => v !== undefined).map(([k, v]) => ` ${k}="${String(v)}"`).join('');
    const groupXml = groups.map((g) => {
      const hosts = g.hosts === null ? '' : Object.entries(g.hosts ?? powers)
        .map(([h, p]) => `<host name="${h}" power="${p}"/>`).join('');
      const rules = g.rules.map((r) => `     <rule${attrs({
        virtual_addr: r.proto === 'arp' && r.vip === undefined ? undefined : r.vip ?? '*',
        port: r.proto === 'arp' ? undefined : r.port ?? '*',
        proto: r.proto,
        filter: r.filter,
      })}/>`).join('\n');
      return `    <group name="${g.name}">\n${hosts ? `     <cluster>${hosts}</cluster>\n` : ''}${rules}\n    </group>`;
    }).join('\n');
    return `<safe>
 <service mode="farm">
  <farm${attrs({ pulse: o.farmTiming?.pulse, mlost_count: o.farmTiming?.mlostCount, slost_count: o.farmTiming?.slostCount })}><lan name="default"/>${o.secondLan ? '<lan name="backup"/>' : ''}</farm>
${o.cloud ? '' : `  <vip${attrs({ ...o.vipAttrs })}>
   <interface_list>
    <interface${attrs({ check: 'on', name: NODE_IF, ...o.interfaceAttrs })}>
     <virtual_interface${attrs({ type: o.mode, addr: o.vmac })}>
      <virtual_addr addr="${this.vip4}" where="alias"/>
      <virtual_addr addr="${this.vip6}" where="alias"/>
     </virtual_interface>
    </interface>
   </interface_list>
   <loadbalancing_list>
${groupXml}
   </loadbalancing_list>
  </vip>
`}  <farmlb${attrs({ module: `lab-${this.name}`.slice(0, 32), hash_seed: `0x${(o.hashSeed ?? 0x2545f491).toString(16)}`,
    key_file: this.membershipMode() ? this.keyFile : undefined, split_brain: o.splitBrain, handover_limit: o.handoverLimit,
    membership: o.corosync ? 'corosync' : undefined,
    // The client reads /health and /metrics in the lab (docs/security.md: detail is local by default).
    health_detail: `${LAB_NET.client4}/${LAB_NET.prefix4},${LAB_NET.client6}/${LAB_NET.prefix6}` })}/>
 </service>
</safe>
`;
  }

  /** `-c userconfig.xml --cluster cluster.xml`, for CLI commands that read the configuration. */
  configArgs(): string[] {
    return ['-c', this.configFile, '--cluster', this.clusterFile];
  }

  // ---- processes --------------------------------------------------------------------

  private node(name: string): NodeState {
    const n = this.nodes.find((x) => x.spec.name === name);
    if (!n) throw new Error(`no node ${name} in lab ${this.name} (nodes: ${this.nodeNames().join(', ')})`);
    return n;
  }

  nodeNames(): string[] {
    return this.nodes.map((n) => n.spec.name);
  }

  /** Signal a node's HTTP server (its application); SIGKILL/SIGTERM: wait (bounded) until it is gone. */
  async signalServer(name: string, signal: NodeJS.Signals): Promise<void> {
    const srv = this.node(name).server;
    if (!srv || srv.exitCode !== null || srv.signalCode !== null) throw new Error(`the server of ${name} is not running`);
    srv.kill(signal);
    if (signal === 'SIGKILL' || signal === 'SIGTERM') {
      await waitFor(() => srv.exitCode !== null || srv.signalCode !== null, { timeoutMs: 5_000, intervalMs: 20, what: `${name}'s server to exit` });
    }
  }

  /** (Re)start a node's HTTP server and wait until it listens. */
  async restartServer(name: string): Promise<void> {
    const n = this.node(name);
    if (n.server && n.server.exitCode === null && n.server.signalCode === null) throw new Error(`the server of ${name} is running`);
    this.startServer(n);
    await waitFor(async () => (await inNetns(n.ns, 'ss', ['-Hltn', `sport = :${HTTP_PORT}`])).stdout.includes(`:${HTTP_PORT}`),
      { timeoutMs: 10_000, what: `the HTTP server of ${name}` });
  }

  /** `nice -n N` before a web server's command when opts.nice is set (nice execs it: same pid). */
  private niced(): string[] {
    return this.opts.nice === undefined ? [] : ['nice', '-n', String(this.opts.nice)];
  }

  /** `nice -n N` before a daemon's command: opts.nice, else the unit's Nice=. */
  private nicedDaemon(): string[] {
    const nice = this.opts.nice ?? UNIT_NICE;
    return nice === 0 ? [] : ['nice', '-n', String(nice)];
  }

  private startServer(n: NodeState): void {
    n.server = spawn('nsenter', [`--net=${netnsPath(n.ns)}`, '--', ...this.niced(), 'node', '-e', SERVER_JS, n.spec.name, this.dir],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    n.server.stderr!.on('data', (d: Buffer) => this.appendLog(n, `[server] ${d.toString()}`));
  }

  private appendLog(n: NodeState, text: string): void {
    if (n.log.length < LOG_LIMIT) n.log += text;
  }

  /** Start (or restart) a node's daemon and wait until its VIPs are up and the program attached. */
  /**
   * `opts.expectUp: false` waits only for the daemon to have started (event started, VIPs,
   * program): for a node that must stay in WAIT, e.g. one with a wrong heartbeat key.
   */
  /** `configFile`: another userconfig.xml for this start only (a node whose configuration differs). */
  async startNode(name: string, opts: { timeoutMs?: number; expectUp?: boolean; configFile?: string } = {}): Promise<void> {
    const n = this.node(name);
    if (n.daemon && n.daemon.exitCode === null && n.daemon.signalCode === null) throw new Error(`the daemon of ${name} is running`);
    const args = ['run', ...(this.membershipMode() ? [] : ['--static']), '-c', opts.configFile ?? this.nodeConfigFile(name), '--cluster', this.clusterFile, '--node', name, '--pin-dir', n.pinDir, '--run-dir', n.runDir,
      ...(this.opts.xdpMode ? ['--xdp-mode', this.opts.xdpMode] : []), ...(this.opts.leaseMs ? ['--lease-ms', String(this.opts.leaseMs)] : [])];
    this.appendLog(n, `[lab] starting: farmlb ${args.join(' ')}\n`);
    // nsenter execs the command: the child's pid is the daemon's, so signals reach it directly.
    const daemon = spawn('nsenter', [`--net=${netnsPath(n.ns)}`, '--', ...this.nicedDaemon(), 'node', FARMLB_BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FARMLB_LOG_LEVEL: this.opts.logLevel ?? 'debug', NO_COLOR: '1' },
    });
    n.daemon = daemon;
    daemon.stdout!.on('data', (d: Buffer) => this.appendLog(n, d.toString()));
    daemon.stderr!.on('data', (d: Buffer) => this.appendLog(n, d.toString()));
    daemon.on('exit', (code, signal) => this.appendLog(n, `[lab] daemon exited: ${signal ?? `code ${code}`}\n`));
    // A daemon that exits while starting fails the wait at once, not at the deadline.
    let onExit: (() => void) | undefined;
    const exited = new Promise<never>((_, reject) => {
      onExit = () => reject(new Error(`farmlb run on ${name} exited (${daemon.signalCode ?? daemon.exitCode}) while starting`));
      daemon.once('exit', onExit);
    });
    const logFrom = n.log.length;
    const ready = waitFor(async () => {
      // The VIPs and the program alone do not prove this run is up: a SIGKILLed run leaves
      // both behind. The daemon says when it serves (pino event state=UP, or the CLI's line).
      const said = n.log.slice(logFrom);
      const up = opts.expectUp === false ? /"event":"started"/ : /"state":"UP"|: node \S+ serving/;
      if (!up.test(said)) return false;
      // A cloud farm holds no VIP and attaches no program.
      if (this.opts.cloud) return true;
      const addrs = await inNetns(n.ns, 'ip', ['-j', 'addr', 'show', 'dev', NODE_IF]);
      const link = await inNetns(n.ns, 'ip', ['-d', 'link', 'show', 'dev', NODE_IF]);
      return addrs.stdout.includes(`"${this.vip4}"`) && addrs.stdout.includes(`"${this.vip6}"`) && /prog\/xdp id \d+/.test(link.stdout);
    }, { timeoutMs: opts.timeoutMs ?? 30_000, intervalMs: 150, what: `${name}'s daemon to add the VIPs and attach the program` });
    try {
      await Promise.race([ready, exited]);
    } catch (err) {
      // Let the log catch up with the exit before quoting it.
      await new Promise((r) => setTimeout(r, 100));
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- ${name} log ---\n${n.log}`, { cause: err });
    } finally {
      daemon.off('exit', onExit!);
      exited.catch(() => undefined);
      ready.catch(() => undefined);
    }
  }

  /** Send a signal to a node's daemon without waiting (e.g. SIGHUP to reload). */
  signalNode(name: string, signal: NodeJS.Signals): void {
    const d = this.node(name).daemon;
    if (!d || d.exitCode !== null || d.signalCode !== null) throw new Error(`the daemon of ${name} is not running`);
    d.kill(signal);
  }

  /** Where a node's log ends now: pass it as `from` to waitForLog to see only what comes after. */
  logMark(name: string): number {
    return this.node(name).log.length;
  }

  /** A node's log from a mark on. */
  logSince(name: string, from: number): string {
    return this.node(name).log.slice(from);
  }

  /** Waits (bounded) until a node's log, from `from` on, matches `pattern`; returns that part of the log. */
  async waitForLog(name: string, pattern: RegExp, opts: { from?: number; timeoutMs?: number } = {}): Promise<string> {
    const n = this.node(name);
    const from = opts.from ?? 0;
    try {
      await waitFor(() => pattern.test(n.log.slice(from)), { timeoutMs: opts.timeoutMs ?? 10_000, intervalMs: 50, what: `${pattern} in ${name}'s log` });
    } catch (err) {
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- ${name} log since the mark ---\n${n.log.slice(from)}`, { cause: err });
    }
    return n.log.slice(from);
  }

  /** SIGHUP a daemon (it re-reads the config files) and wait until it has applied them; a refused reload throws. */
  async reloadNode(name: string, opts: { timeoutMs?: number } = {}): Promise<void> {
    const from = this.logMark(name);
    this.signalNode(name, 'SIGHUP');
    const said = await this.waitForLog(name, /"event":"(reloaded|reload_failed)"/, { from, timeoutMs: opts.timeoutMs ?? 10_000 });
    if (said.includes('"event":"reload_failed"')) throw new Error(`${name} refused the reload:\n${said}`);
  }

  /** Signal a node's daemon and wait (bounded) for it to exit; returns how it ended. */
  async killNode(name: string, signal: NodeJS.Signals = 'SIGKILL', opts: { timeoutMs?: number } = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const d = this.node(name).daemon;
    if (!d) throw new Error(`the daemon of ${name} was never started`);
    if (d.exitCode === null && d.signalCode === null) d.kill(signal);
    await waitFor(() => d.exitCode !== null || d.signalCode !== null,
      { timeoutMs: opts.timeoutMs ?? 15_000, intervalMs: 50, what: `${name}'s daemon to exit after ${signal}` });
    return { code: d.exitCode, signal: d.signalCode };
  }

  daemonRunning(name: string): boolean {
    const d = this.node(name).daemon;
    return d !== undefined && d.exitCode === null && d.signalCode === null;
  }

  private async stopDaemons(): Promise<void> {
    // SIGTERM lets each daemon undo its own work (aliases, program, pins), which is what a
    // test of a clean stop wants; SIGKILL after a bound so cleanup never hangs.
    await Promise.all(this.nodes.map(async (n) => {
      const d = n.daemon;
      if (!d || d.exitCode !== null || d.signalCode !== null) return;
      d.kill('SIGTERM');
      try {
        await waitFor(() => d.exitCode !== null || d.signalCode !== null, { timeoutMs: 8_000, intervalMs: 50, what: `${n.spec.name}'s daemon to stop` });
      } catch {
        d.kill('SIGKILL');
        await waitFor(() => d.exitCode !== null || d.signalCode !== null, { timeoutMs: 3_000, intervalMs: 50, what: `${n.spec.name}'s daemon to die` }).catch(() => undefined);
      }
    }));
  }

  private async stopServers(): Promise<void> {
    await Promise.all(this.nodes.map(async (n) => {
      const s = n.server;
      if (!s || s.exitCode !== null || s.signalCode !== null) return;
      s.kill('SIGKILL');
      await waitFor(() => s.exitCode !== null || s.signalCode !== null, { timeoutMs: 3_000, intervalMs: 50, what: `${n.spec.name}'s server to die` }).catch(() => undefined);
    }));
  }

  private killAllSync(which: 'daemon' | 'server'): void {
    for (const n of this.nodes) {
      const p = n[which];
      if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }
  }

  logs(name?: string): string {
    const nodes = name ? [this.node(name)] : this.nodes;
    return nodes.filter((n) => n.log).map((n) => `--- ${n.spec.name} (${n.ns}) ---\n${n.log}`).join('\n');
  }

  // ---- node facts -------------------------------------------------------------------

  nodeMac(name: string): string {
    return this.node(name).mac;
  }

  nodeAddr(name: string, family: Family = 4): string {
    const n = this.node(name);
    return family === 4 ? n.addr4 : n.addr6;
  }

  nodeNs(name: string): string {
    return this.node(name).ns;
  }

  pinDir(name: string): string {
    return this.node(name).pinDir;
  }

  runDir(name: string): string {
    return this.node(name).runDir;
  }

  /** The node whose MAC this is, if any. */
  nodeByMac(mac: string): string | undefined {
    return this.nodes.find((n) => n.mac === mac.toLowerCase())?.spec.name;
  }

  // ---- predictions ------------------------------------------------------------------

  /** The configs as written now, compiled to the static table every node serves. */
  async compiled(): Promise<CompiledLab> {
    const { farm, cluster } = await loadConfigs({ config: this.configFile, cluster: this.clusterFile });
    return { farm, cluster: cluster!, tables: compileTables(farm, cluster, staticTable(farm, cluster), '') };
  }

  /**
   * The node whose MAC answers `src`'s ARP request / NS for `vip` (docs/datapath.md): the
   * owner of hash(src) in the arp rule's group (vmac_directed) or in the VIP's first group
   * (vmac_invisible). null: nobody (invisible without a group) or everybody (directed
   * without an arp rule).
   */
  arpOwner(c: CompiledLab, vip: string, src: string): string | null {
    const v = c.tables.vips.find((x) => x.addr === vip);
    if (!v) throw new Error(`${vip} is not a VIP of the lab`);
    const group = this.mode === 'vmac_directed' ? v.arpGroup : v.icmpGroup;
    if (group === GROUP_NONE) return null;
    const owner = c.tables.buckets[group]![bucketOf(addrBytes(src)!, c.tables.hashSeed)]!;
    return owner === NODE_NONE ? null : c.cluster.nodes[owner]!;
  }

  // ---- CLI --------------------------------------------------------------------------

  /** The farmlb CLI. With a node: run in its namespace, with its --pin-dir and --run-dir appended. */
  farmlb(args: string[], node?: string, opts: { timeoutMs?: number } = {}): Promise<RunResult> {
    const timeoutMs = opts.timeoutMs ?? 20_000;
    if (!node) return run('node', [FARMLB_BIN, ...args], { timeoutMs });
    const n = this.node(node);
    return inNetns(n.ns, 'node', [FARMLB_BIN, ...args, '--pin-dir', n.pinDir, '--run-dir', n.runDir], { timeoutMs });
  }

  /** `farmlb status --json` of a node's running daemon (control socket), parsed. */
  async status(node: string): Promise<DaemonStatus> {
    const { stdout } = await this.farmlb(['status', '--json'], node);
    return JSON.parse(stdout) as DaemonStatus;
  }

  /** GET http://<node addr>:<port><urlPath> from inside the node's namespace (the health server). */
  async health(node: string, urlPath: string, port = 9010): Promise<{ status: number; body: string }> {
    const url = `http://${this.nodeAddr(node, 4)}:${port}${urlPath}`;
    const { stdout } = await this.inNode(node, 'curl', ['-sS', '--max-time', '3', '-w', '\\n%{http_code}', url], { timeoutMs: 8_000 });
    const nl = stdout.lastIndexOf('\n');
    return { status: Number(stdout.slice(nl + 1)), body: stdout.slice(0, nl) };
  }

  async buckets(node: string): Promise<BucketsView> {
    const { stdout } = await this.farmlb(['buckets', '--json'], node);
    return JSON.parse(stdout) as BucketsView;
  }

  /** Packets per verdict reason on a node (its pinned maps, read like the CLI does; 0 when absent). */
  reasonCounters(node: string): Record<string, number> {
    const pinned = XdpDataplane.readPinned(this.pinDir(node));
    try {
      return Object.fromEntries(Object.entries(pinned.reasonCounters()).map(([reason, c]) => [reason, Number(c.packets)]));
    } finally {
      pinned.close();
    }
  }

  // ---- client -----------------------------------------------------------------------

  vipUrl(family: Family, port = HTTP_PORT): string {
    return family === 4 ? `http://${this.vip4}:${port}/` : `http://[${this.vip6}]:${port}/`;
  }

  /** One HTTP request from the client, bound to source address `src`. Never throws. */
  async curlFrom(src: string, url: string, opts: CurlOptions = {}): Promise<CurlResult> {
    const connect = opts.connectTimeoutS ?? 2;
    const max = opts.maxTimeS ?? 4;
    const args = ['-sS', '--connect-timeout', String(connect), '--max-time', String(max), '--interface', src,
      ...(opts.localPort ? ['--local-port', String(opts.localPort)] : []), url];
    try {
      const { stdout } = await inNetns(this.clientNs, 'curl', args, { timeoutMs: (max + 5) * 1000 });
      return { ok: true, body: stdout.trim() };
    } catch (err) {
      return { ok: false, body: '', error: err instanceof Error ? err.message : String(err) };
    }
  }

  /** One attempt per client address of the family (to the VIP), optionally from fixed local ports. */
  clientAttempts(family: Family, opts: { count?: number; localPort?: (i: number) => number } = {}): ConnectAttempt[] {
    const srcs = family === 4 ? this.clientAddrs4 : this.clientAddrs6;
    return srcs.slice(0, opts.count ?? srcs.length).map((src, i) => ({ src, ...(opts.localPort ? { localPort: opts.localPort(i) } : {}) }));
  }

  /** Every attempt, at most `concurrency` in flight; who served each (null = failed). */
  async connectMany(attempts: ConnectAttempt[], concurrency = 16, opts: Omit<CurlOptions, 'localPort'> = {}): Promise<ConnectResult[]> {
    return pool(attempts, concurrency, async (a) => {
      const url = a.url ?? this.vipUrl(isIPv4(a.src) ? 4 : 6);
      const r = await this.curlFrom(a.src, url, { ...opts, localPort: a.localPort });
      const servedBy = r.ok && this.nodeNames().includes(r.body) ? r.body : null;
      return { ...a, url, servedBy, ...(servedBy ? {} : { error: r.error ?? `unexpected body ${JSON.stringify(r.body)}` }) };
    });
  }

  /**
   * `count` ARP requests for `vip` from the client (sender address `src`, default the
   * client's own), one per second, and every ARP reply that reached the client meanwhile.
   * Replies are taken from a capture, not from arping's report: arping stops counting at
   * `count` replies, and duplicates are exactly what a test wants to see.
   */
  async arping(vip: string, count = 1, opts: { src?: string } = {}): Promise<ArpingResult> {
    const args = ['-c', String(count), '-I', CLIENT_IF, '-s', opts.src ?? LAB_NET.client4, vip];
    let output = '';
    const frames = await this.capture('arp and arp[6:2] == 2', async () => {
      try {
        output = (await inNetns(this.clientNs, 'arping', args, { timeoutMs: (count + 5) * 1000 })).stdout;
      } catch (err) {
        // arping exits 1 when it counts fewer replies than requests: the capture decides.
        output = (err as { cause?: { stdout?: string } }).cause?.stdout ?? String(err);
      }
    }, { settleMs: 300 });
    return { sent: Number(/Sent (\d+) probe/.exec(output)?.[1] ?? count), replies: parseArpReplies(frames, vip), output };
  }

  /**
   * tcpdump -e on the client interface while `during()` runs; the frames matching `filter`.
   * Waits until tcpdump is listening before calling `during`, and a short settle time after.
   */
  async capture(filter: string, during: () => Promise<unknown>, opts: { settleMs?: number; timeoutMs?: number } = {}): Promise<CapturedFrame[]> {
    const tcpdump = spawn('nsenter', [`--net=${netnsPath(this.clientNs)}`, '--', 'tcpdump', '-i', CLIENT_IF, '-e', '-n', '-l', '-U', filter],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    tcpdump.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    tcpdump.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    const killer = setTimeout(() => tcpdump.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    try {
      await waitFor(() => {
        if (tcpdump.exitCode !== null) throw new Error(`tcpdump exited: ${err}`);
        return err.includes('listening on');
      }, { timeoutMs: 5_000, intervalMs: 20, what: 'tcpdump to start' });
      await during();
      await new Promise((r) => setTimeout(r, opts.settleMs ?? 300));
    } finally {
      tcpdump.kill('SIGINT');
      await waitFor(() => tcpdump.exitCode !== null || tcpdump.signalCode !== null, { timeoutMs: 3_000, intervalMs: 20, what: 'tcpdump to exit' })
        .catch(() => tcpdump.kill('SIGKILL'));
      clearTimeout(killer);
    }
    return out.split('\n').flatMap((line) => {
      const m = /^\S+\s+([0-9a-f:]{17}) > ([0-9a-f:]{17}), (.*)$/.exec(line.trim());
      return m ? [{ srcMac: m[1]!, dstMac: m[2]!, text: m[3]!, line }] : [];
    });
  }

  /**
   * Make the client solicit `vip6` once (forget the entry, then ping it from `src`) and
   * return the neighbour advertisements for it that reached the client.
   */
  async solicit(vip6: string, opts: { src?: string } = {}): Promise<CapturedFrame[]> {
    await inNetns(this.clientNs, 'ip', ['-6', 'neigh', 'flush', 'to', vip6, 'dev', CLIENT_IF]);
    const frames = await this.capture('icmp6 and ip6[40] == 136', async () => {
      await this.ping(vip6, { src: opts.src ?? LAB_NET.client6, count: 1 });
    }, { settleMs: 500 });
    return frames.filter((f) => f.text.includes(`tgt is ${vip6}`));
  }

  /** ping from the client; never throws (a lost reply is a result). */
  async ping(dst: string, opts: { src?: string; count?: number; intervalS?: number } = {}): Promise<PingResult> {
    const count = opts.count ?? 3;
    const interval = opts.intervalS ?? 0.2;
    const args = [isIPv4(dst) ? '-4' : '-6', '-n', '-c', String(count), '-i', String(interval), '-W', '1',
      ...(opts.src ? ['-I', opts.src] : []), dst];
    let output: string;
    try {
      output = (await inNetns(this.clientNs, 'ping', args, { timeoutMs: (count * interval + 5) * 1000 })).stdout;
    } catch (err) {
      output = (err as { cause?: { stdout?: string } }).cause?.stdout ?? '';
    }
    const stats = /(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?/.exec(output);
    return {
      transmitted: Number(stats?.[1] ?? 0),
      received: Number(stats?.[2] ?? 0),
      duplicates: Number(stats?.[3] ?? 0),
      output,
    };
  }

  /** The client's neighbour entry for `addr`, if any. */
  async neigh(addr: string): Promise<NeighEntry | undefined> {
    const { stdout } = await inNetns(this.clientNs, 'ip', ['-j', 'neigh', 'show', 'to', addr, 'dev', CLIENT_IF]);
    const entries = JSON.parse(stdout || '[]') as { dst: string; lladdr?: string; state?: string[] }[];
    const e = entries.find((x) => x.dst === addr);
    return e ? { dst: e.dst, mac: e.lladdr ?? null, state: e.state ?? [] } : undefined;
  }

  async neighTable(): Promise<NeighEntry[]> {
    const { stdout } = await inNetns(this.clientNs, 'ip', ['-j', 'neigh', 'show', 'dev', CLIENT_IF]);
    return (JSON.parse(stdout || '[]') as { dst: string; lladdr?: string; state?: string[] }[])
      .map((e) => ({ dst: e.dst, mac: e.lladdr ?? null, state: e.state ?? [] }));
  }

  async flushNeigh(): Promise<void> {
    await inNetns(this.clientNs, 'ip', ['-4', 'neigh', 'flush', 'dev', CLIENT_IF]);
    await inNetns(this.clientNs, 'ip', ['-6', 'neigh', 'flush', 'dev', CLIENT_IF]);
  }

  /** Run any command in the client's namespace. */
  inClient(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
    return inNetns(this.clientNs, cmd, args, opts);
  }

  /** Run any command in a node's namespace. */
  inNode(name: string, cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
    return inNetns(this.node(name).ns, cmd, args, opts);
  }

  // ---- cleanup ----------------------------------------------------------------------

  /** Stop everything and remove what the lab made. Never throws; returns what could not be undone. */
  async cleanup(): Promise<string[]> {
    if (this.cleaned) return [];
    this.cleaned = true;
    return this.registry.cleanup();
  }

  /** What a lab of this name left behind: namespaces, pin directories, processes. */
  static leftovers(name: string): { namespaces: string[]; pins: string[]; processes: string[] } {
    const prefix = `flb-${name}-`;
    const namespaces = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(prefix)) : [];
    const pins = existsSync(PIN_ROOT) ? readdirSync(PIN_ROOT).filter((n) => n.startsWith(prefix)) : [];
    const processes: string[] = [];
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
        // Daemons name their pin dir; servers and daemons name the lab's temp dir.
        if (cmdline.includes(`${PIN_ROOT}/${prefix}`) || cmdline.includes(`${os.tmpdir()}/${prefix}`)) processes.push(`${pid}: ${cmdline.trim()}`);
      } catch {
        // The process ended while we looked.
      }
    }
    return { namespaces, pins, processes };
  }
}

/** ARP replies for `addr` among captured frames: "Reply 10.0.0.1 is-at aa:bb:…". */
export function parseArpReplies(frames: CapturedFrame[], addr: string): ArpReply[] {
  return frames.flatMap((f) => {
    const m = /Reply (\S+) is-at ([0-9a-f:]{17})/.exec(f.text);
    return m && m[1] === addr ? [{ from: m[1], mac: m[2]!, ethSrc: f.srcMac, ethDst: f.dstMac }] : [];
  });
}

/** Run `fn` over `items` with at most `limit` in flight. */
export async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  }));
  return results;
}
