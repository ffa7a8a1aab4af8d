// The membership table source of `farmlb run` (no --static): drives the membership engine
// (src/membership/) — tick() every pulse, receive() for every heartbeat — and hands its
// decisions to the daemon: tables (installed with changeTables, so arpreroute runs for the
// buckets that move here, also after another node crashed), lease deadlines (exactly what
// the engine says: the daemon never extends a lease on its own, so a stale view cannot be
// served), and the module state. Runtime power overrides are persisted in
// <run-dir>/powers.json whenever they change (locally or from a peer) and handed back to
// the engine at the next start, until cleared. With `<farmlb handover_limit>` > 0 a moving
// bucket also names its previous owner (BucketTable.prev), and the daemon's connection
// samples (setHoldings) tell the farm when this node is done with the buckets it hands over.

import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { BucketTable } from '../balance/assign.js';
import { groupPowers } from '../balance/compile.js';
import { configDigest } from '../config/digest.js';
import { liveChangeProblem } from '../config/live-change.js';
import type { ClusterConfig, FarmConfig, FarmlbSettings } from '../config/types.js';
import { LEASE_CLOCK_SLACK_NS } from '../dataplane/abi.js';
import { XdpDataplane } from '../dataplane/xdp.js';
import { NODE_NONE, type DataplaneTables } from '../dataplane/types.js';
import { FarmlbError } from '../errors.js';
import type { InstancePaths } from '../paths.js';
import type { PowerChange } from '../api/control.js';
import type { NodeStatus } from '../api/status.js';
import {
  BuiltinMembership, DEFAULT_TIMING, MembershipEngine, createUdpTransport, loadKey, timingFromTopology,
  type EngineOutput, type GroupHandover, type Membership, type MembershipEvent, type MembershipStatus, type PowerOverrides,
  type ViewTable,
} from '../membership/index.js';
import { overridesProblem } from '../membership/bounds.js';
import { nextIncarnation } from '../membership/incarnation.js';
import { keyId } from '../membership/key.js';
import type { GroupPowers, MembershipTiming } from '../membership/types.js';
import { CorosyncMembership, corosyncLeaseMs, cpgGroupName } from '../membership/corosync/corosync-membership.js';
import { nodelistProblems } from '../membership/corosync/conf.js';
import { loadNative, type CorosyncRunningConfig, type Native } from '../addon/native.js';
import type { Holdings, SourceSink, SourceView, TableSource } from './table-source.js';

/** view() of the membership source: the common view plus what only the membership knows. */
export interface MembershipSourceView extends SourceView {
  /** Buckets in handover per group of the installed table, and each previous owner's report. */
  handover: GroupHandover[];
  /** Per peer: heartbeats received and missed (seq gaps within an incarnation). */
  heartbeats: Map<string, { received: number; missed: number }>;
}

/** The data plane's table: previous owners only when some bucket is in handover (absent = none). */
export function bucketTable(t: Pick<ViewTable, 'groups' | 'prev'>): BucketTable {
  return t.prev.some((row) => row.some((p) => p !== null)) ? { groups: t.groups, prev: t.prev } : { groups: t.groups };
}

export interface MembershipSourceOptions {
  farm: FarmConfig;
  cluster: ClusterConfig;
  node: string;
  paths: InstancePaths;
  log: Logger;
  nowNs: () => bigint;
  /** Kernel lease length (default: the membership's own, from the pulse). */
  leaseMs?: number;
  /** For tests: the tables in a pin directory's maps (default: XdpDataplane.readPinned; throws when none are pinned). */
  readPinnedTables?: (pinDir: string) => DataplaneTables;
}

/** The active tables of the maps pinned in pinDir (read-only; throws when there are none). */
function readPinnedTables(pinDir: string): DataplaneTables {
  const pinned = XdpDataplane.readPinned(pinDir);
  try {
    return pinned.activeTables();
  } finally {
    pinned.close();
  }
}

export function powersFile(runDir: string): string {
  return path.join(runDir, 'powers.json');
}

/**
 * powers.json, validated like a peer's overrides (docs/security.md, "Persisted state"): a
 * record that is not valid for this configuration is ignored with a warning, never handed
 * to the engine (an override of 2^50 once made every next leader's rebalance throw).
 */
export async function readPowers(runDir: string, log: Logger, nodes: readonly string[], groups: readonly GroupPowers[]): Promise<PowerOverrides | undefined> {
  try {
    const raw = JSON.parse(await readFile(powersFile(runDir), 'utf8')) as PowerOverrides;
    if (typeof raw !== 'object' || raw === null || typeof raw.version !== 'number' || !Array.isArray(raw.entries)) throw new Error('not a powers record');
    const problem = overridesProblem(raw, nodes, groups);
    if (problem) throw new Error(problem);
    return { version: raw.version, origin: raw.origin, entries: raw.entries.map((e) => ({ node: e.node, group: e.group, power: e.power })) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ err, event: 'powers_unreadable', file: powersFile(runDir) }, 'ignoring an unreadable powers.json');
    return undefined;
  }
}

/** The table a killed run left in the pinned maps (adopted by the engine, never served on its own). */
function pinnedTable(read: (pinDir: string) => DataplaneTables, pinDir: string, nodes: readonly string[], groups: number): (string | null)[][] | undefined {
  try {
    const t = read(pinDir);
    return Array.from({ length: groups }, (_, g) => (t.buckets[g] ?? []).map((o) => (o === NODE_NONE ? null : nodes[o] ?? null)));
  } catch {
    return undefined;
  }
}

/** The heartbeat keys of <farmlb key_file> (signs) and <farmlb accept_key_file> (accepted too). */
export interface HeartbeatKeys {
  key: Buffer;
  accept: Buffer[];
}

/** Reads and checks both key files (src/membership/key.ts); logs their ids, never the keys. */
export async function readHeartbeatKeys(farmlb: Pick<FarmlbSettings, 'keyFile' | 'acceptKeyFile'>, log: Logger): Promise<HeartbeatKeys> {
  const key = await loadKey(farmlb.keyFile);
  const accept = farmlb.acceptKeyFile !== undefined ? [await loadKey(farmlb.acceptKeyFile)] : [];
  log.info({ event: 'membership_keys', keyFile: farmlb.keyFile, keyId: keyId(key), acceptKeyFile: farmlb.acceptKeyFile ?? null, acceptKeyIds: accept.map(keyId) },
    `heartbeats signed with key id ${keyId(key)}${accept.length ? `, key id ${accept.map(keyId).join(', ')} accepted too` : ''}`);
  return { key, accept };
}

/** Builds the source: reads the keys (a missing, unreadable or unsafe key is a startup error), powers.json and a pinned table. */
export async function createMembershipSource(opts: MembershipSourceOptions): Promise<MembershipSource> {
  const { farm, cluster, node, paths, log } = opts;
  const { key, accept } = await readHeartbeatKeys(farm.farmlb, log);
  const topo = farm.farm ?? { ...DEFAULT_TIMING, lans: [] };
  // --lease-ms overrides the lease derived from the pulse; the engine refuses one that cannot work.
  // The data plane's lease clock slack: how long past a deadline it may still serve.
  const slackMs = LEASE_CLOCK_SLACK_NS / 1e6;
  const timing = { ...timingFromTopology(topo, slackMs), ...(opts.leaseMs !== undefined ? { leaseMs: opts.leaseMs } : {}) };
  const groups = groupPowers(farm, cluster).map((powers, i) => ({ name: farm.groups[i]!.name, powers }));
  const powerOverrides = await readPowers(paths.runDir, log, cluster.nodes, groups);
  if (farm.farmlb.membership === 'corosync') {
    // Renewals come once a pulse (a delivered beat), not per acknowledgement: each is written,
    // so the kernel's lease is the one that outlasts a ring's re-formation, not a step shorter.
    const { membership } = await corosyncMembership(opts, key, timing, groups, powerOverrides);
    return new MembershipSource({ ...opts, membership });
  }
  const initialTable = pinnedTable(opts.readPinnedTables ?? readPinnedTables, paths.pinDir, cluster.nodes, farm.groups.length);
  const startNs = opts.nowNs();
  const engine = new MembershipEngine({
    module: paths.module,
    self: node,
    nodes: cluster.nodes,
    groups,
    configDigest: configDigest(farm, cluster),
    timing,
    splitBrain: farm.farmlb.splitBrain,
    // New at every start, from a persisted counter (not the wall clock): src/membership/incarnation.ts.
    incarnation: await nextIncarnation(paths.runDir),
    startNs,
    ...(initialTable ? { initialTable } : {}),
    ...(powerOverrides ? { powerOverrides } : {}),
    handoverLimitMs: farm.farmlb.handoverLimitMs,
  });
  const lans = topo.lans.length > 0 ? cluster.lans.filter((l) => topo.lans.includes(l.name)) : cluster.lans;
  const transport = await createUdpTransport({
    self: node,
    key,
    acceptKeys: accept,
    port: farm.farmlb.membershipPort,
    lans: lans.map((l) => ({ name: l.name, nodes: l.nodes.map((n) => ({ name: n.name, addr: n.addr })) })),
    log,
  });
  log.info({ event: 'membership_config', ...timing,
    port: farm.farmlb.membershipPort, lans: lans.map((l) => l.name), splitBrain: farm.farmlb.splitBrain,
    handoverLimitMs: farm.farmlb.handoverLimitMs,
    powersRestored: powerOverrides?.entries.length ?? 0 }, 'membership configured');
  const membership = new BuiltinMembership({
    engine, transport, pulseMs: timing.pulseMs, nowNs: opts.nowNs, lostPulses: timing.mlostCount,
    onError: (err) => log.error({ err, event: 'membership_apply_failed' }, 'a membership decision could not be applied; the next pulse decides again'),
  });
  return new MembershipSource({ ...opts, membership }, BigInt(timing.leaseMs) * 1_000_000n / LEASE_WRITE_FRACTION);
}

/**
 * How long a starting daemon waits for corosync's configuration: a corosync that is starting
 * answers within its TRY_AGAIN retries (2 s); one stopped or wedged (docs/membership.md, "When
 * corosync hangs") makes the start fail with the reason, and systemd try again.
 */
const COROSYNC_CONFIG_WAIT_MS = 10_000;

export async function corosyncConfigBounded(native: Pick<Native, 'corosyncConfig'>, waitMs = COROSYNC_CONFIG_WAIT_MS): Promise<CorosyncRunningConfig> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FarmlbError('FARMLB_E_COROSYNC_CONNECT', {
      detail: `corosync does not answer (cmap_get pending for over ${waitMs} ms): is it stopped (SIGSTOP, state T in ps) or wedged?`,
    })), waitMs);
  });
  try {
    return await Promise.race([native.corosyncConfig(), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The Corosync backend (docs/membership.md, "Corosync backend"): refuses to start when the
 * corosync of this node does not answer or runs another nodelist than cluster.xml.
 */
async function corosyncMembership(opts: MembershipSourceOptions, key: Buffer, topoTiming: MembershipTiming, groups: GroupPowers[], powerOverrides: PowerOverrides | undefined): Promise<{ membership: CorosyncMembership }> {
  const { farm, cluster, node, paths, log } = opts;
  const native = loadNative();
  const running = await corosyncConfigBounded(native);
  const problems = nodelistProblems(running, cluster, node);
  if (problems.length > 0) throw new FarmlbError('FARMLB_E_COROSYNC_NODELIST', { detail: problems.join('; ') });
  // The lease follows corosync's failure detection, not the pulse (unless --lease-ms says).
  const timing = { ...topoTiming, leaseMs: opts.leaseMs ?? corosyncLeaseMs(running, topoTiming.pulseMs) };
  log.info({ event: 'membership_config', backend: 'corosync', ...timing, splitBrain: farm.farmlb.splitBrain, handoverLimitMs: farm.farmlb.handoverLimitMs,
    group: cpgGroupName(paths.module), transport: running.totem.transport, tokenMs: running.totem.tokenMs, consensusMs: running.totem.consensusMs, holdMs: running.totem.holdMs,
    twoNode: running.quorum.twoNode === 1, quorumDevice: running.quorum.deviceModel, powersRestored: powerOverrides?.entries.length ?? 0 },
  'membership configured (corosync)');
  const membership = new CorosyncMembership({
    native, module: paths.module, self: node, nodes: cluster.nodes, groups, configDigest: configDigest(farm, cluster), timing,
    splitBrain: farm.farmlb.splitBrain, handoverLimitMs: farm.farmlb.handoverLimitMs, key, running, nowNs: opts.nowNs,
    ...(powerOverrides ? { powerOverrides } : {}),
    onWarning: (message, fields) => log.warn(fields, message),
    onDebug: (message, fields) => log.debug(fields, message),
    onError: (err) => log.error({ err, event: 'membership_apply_failed' }, 'a membership decision could not be applied'),
  });
  return { membership };
}

const REJECT_LOG_EVERY_MS = 10_000;
/** A renewal is written once it extends the kernel's lease by an eighth of the lease (25 ms by default). */
const LEASE_WRITE_FRACTION = 8n;

export class MembershipSource implements TableSource {
  readonly mode = 'membership' as const;
  private sink: SourceSink | undefined;
  private lastSaved: string;
  private savingPowers: Promise<void> = Promise.resolve();
  private digest: string;
  /** A reloaded configuration waiting for every node (reload()). */
  private staged: { digest: string; farm: FarmConfig } | undefined;

  constructor(private opts: MembershipSourceOptions & { membership: Membership }, readonly leaseWriteStepNs?: bigint) {
    this.digest = configDigest(opts.farm, opts.cluster);
    this.lastSaved = JSON.stringify(opts.membership.powerOverrides());
  }

  initial() {
    // Nothing is served until the membership says so: no table, lease revoked.
    return { table: { groups: this.opts.farm.groups.map(() => new Array<string | null>(256).fill(null)) }, leaseDeadlineNs: 0n, announce: false };
  }

  async start(sink: SourceSink): Promise<void> {
    this.sink = sink;
    // Membership applies decisions one at a time and transmits a decision's heartbeat only
    // once apply() resolved: peers take a bucket from us as soon as our heartbeat says we
    // installed the table that moves it.
    // A renewal on a table of the data plane's lineage may go ahead of the queued decisions
    // (src/membership/lease-gate.ts): the daemon writes it at once if it serves. So does a
    // revocation when the membership leaves the lineage of a table still being installed.
    this.opts.membership.start((out) => this.apply(out), {
      renew: (deadlineNs) => this.sink?.renewLease?.(deadlineNs) ?? false,
      revoke: (cause) => this.sink?.revokeLease?.(cause),
    });
  }

  async stop(): Promise<void> {
    await this.opts.membership.stop();
    this.sink = undefined;
    await this.savingPowers;
  }

  setLocalHealth(ok: boolean, cause: string): void {
    // Before start() (the first check result) the engine just records it.
    this.opts.membership.setLocalHealth(ok, cause);
  }

  setHoldings(h: Holdings): void {
    this.opts.membership.setHoldings(h);
  }

  /** The membership's full status (handover, per-peer counters included). */
  status(): MembershipStatus {
    return this.opts.membership.status();
  }

  async setPower(change: PowerChange): Promise<void> {
    const { node, power, group } = change;
    if (power === null) this.opts.membership.clearPower(node, group);
    else this.opts.membership.setPower(node, power, group);
    await this.savePowersIfChanged();
  }

  /**
   * Unchanged digest: nothing to do but read the key files again (a key rotation is a reload
   * on every node: docs/security.md, "Rotating the key"; a staged configuration is withdrawn).
   * A change that can be switched to live (src/config/live-change.ts) is staged: every
   * heartbeat advertises it, and once every node of cluster.xml has it the engine switches
   * (config_switched) and the daemon applies it (SourceSink.configSwitched). Anything else
   * needs a rolling restart. A key file that fails its checks refuses the reload and the keys
   * in use stay.
   */
  async reload(farm: FarmConfig, cluster: ClusterConfig): Promise<BucketTable | 'staged'> {
    const digest = configDigest(farm, cluster);
    const problem = digest === this.digest ? undefined : liveChangeProblem(this.opts.farm, farm, cluster);
    if (problem) throw new FarmlbError('FARMLB_E_RUN_RELOAD_NEEDS_RESTART', { detail: problem });
    const keys = await readHeartbeatKeys(farm.farmlb, this.opts.log);
    this.opts.membership.setKeys?.(keys.key, keys.accept);
    if (digest === this.digest) {
      if (this.staged) this.opts.log.info({ event: 'config_unstaged', digest: this.staged.digest }, 'the staged configuration is withdrawn: the files are the running configuration again');
      this.staged = undefined;
      this.opts.membership.stageConfig(null);
      return bucketTable(this.opts.membership.status().table);
    }
    const groups = groupPowers(farm, cluster).map((powers, i) => ({ name: farm.groups[i]!.name, powers }));
    this.opts.membership.stageConfig({ digest, groups });
    this.staged = { digest, farm };
    this.opts.log.info({ event: 'config_staged', digest, running: this.digest },
      `configuration ${digest.slice(0, 12)} staged: applied on every node once every node has it (farmlb reload on each)`);
    return 'staged';
  }

  /** The configuration a reload staged, until every node has it. */
  stagedDigest(): string | undefined {
    return this.staged?.digest;
  }

  view(): MembershipSourceView {
    const s: MembershipStatus = this.opts.membership.status();
    const overrides = new Map<string, Record<string, number>>();
    // Whole-node entries first, then per-group ones (the engine's precedence).
    for (const pass of [true, false]) {
      for (const e of s.powers.entries) {
        if ((e.group === null) !== pass) continue;
        const per = overrides.get(e.node) ?? {};
        for (const g of this.opts.farm.groups) if (e.group === null || e.group === g.name) per[g.name] = e.power;
        overrides.set(e.node, per);
      }
    }
    const peers: SourceView['peers'] = new Map();
    for (const name of this.opts.cluster.nodes) {
      const p = s.peers.find((x) => x.node === name);
      const state: NodeStatus['state'] = name === this.opts.node ? s.state
        : !p || p.lastHeardMs === undefined ? 'unknown' : !p.alive ? 'lost' : (p.state ?? 'unknown');
      peers.set(name, {
        state,
        ...(p?.lastHeardMs !== undefined ? { lastHeardMs: p.lastHeardMs } : {}),
        ...(p?.heartbeatsReceived !== undefined ? { heartbeatsReceived: p.heartbeatsReceived, heartbeatsMissed: p.heartbeatsMissed ?? 0 } : {}),
        ...(p?.foreignKeyMs !== undefined ? { foreignKeyMs: p.foreignKeyMs } : {}),
        ...(p?.foreignKeyId !== undefined ? { foreignKeyId: p.foreignKeyId } : {}),
        ...(overrides.has(name) ? { overrides: overrides.get(name)! } : {}),
      });
    }
    const heartbeats = new Map(s.peers.map((p) => [p.node, { received: p.heartbeatsReceived ?? 0, missed: p.heartbeatsMissed ?? 0 }]));
    return { view: s.view, epoch: s.epoch, leader: s.leader, splitBrain: s.splitBrain, peers, lastViewChange: null, handover: s.handover, heartbeats,
      membershipCpu: this.opts.membership.cpu(), ...(this.opts.membership.datagrams ? { membershipDatagrams: this.opts.membership.datagrams() } : {}), backend: s.backend ?? 'builtin', ...(s.corosync ? { corosync: s.corosync } : {}) };
  }

  /** One engine decision: to the daemon (table, lease, state, in that order, awaited), then its events to the log. */
  private async apply(out: EngineOutput): Promise<void> {
    const sink = this.sink;
    if (!sink) return;
    const viewEvent = out.events.find((e): e is Extract<MembershipEvent, { type: 'view' }> => e.type === 'view');
    for (const e of out.events) this.logEvent(e);
    const switched = out.events.find((e): e is Extract<MembershipEvent, { type: 'config_switched' }> => e.type === 'config_switched');
    if (switched && this.staged?.digest === switched.to) {
      // Applied before this decision's heartbeat (the first to carry the new digest) leaves.
      const { farm } = this.staged;
      this.staged = undefined;
      this.digest = switched.to;
      this.opts = { ...this.opts, farm };
      await sink.configSwitched?.(switched.to, bucketTable(this.opts.membership.status().table));
    }
    await sink.decide({
      state: out.state,
      cause: out.cause,
      ...(out.table ? { table: {
        epoch: out.table.epoch,
        table: bucketTable(out.table),
        view: out.table.view,
        cause: viewEvent?.cause ?? `table of ${out.table.leader ?? 'no leader'}`,
        ...(viewEvent?.detectionMs !== undefined ? { detectionMs: viewEvent.detectionMs } : {}),
        ...(out.completesTable ? { completes: true } : {}),
      } } : {}),
      ...(out.leaseDeadlineNs !== undefined ? { leaseDeadlineNs: out.leaseDeadlineNs } : {}),
    });
  }

  private logEvent(e: MembershipEvent): void {
    const log = this.opts.log;
    switch (e.type) {
      case 'view': return; // logged by the daemon once installed, with its install time
      case 'state': return; // the daemon logs the module state
      case 'split_brain':
        log.warn({ event: 'split_brain', view: e.view, missing: e.missing, policy: this.opts.farm.farmlb.splitBrain },
          `split brain: the view lacks ${e.missing.join(', ')}`);
        return;
      case 'config_switched':
        log.info({ event: 'config_switched', from: e.from, to: e.to }, `every node has configuration ${e.to.slice(0, 12)}: switched to it`);
        return;
      case 'split_brain_healed':
        log.info({ event: 'split_brain_healed', view: e.view }, 'split brain healed');
        return;
      case 'config_mismatch':
        log.error({ event: 'config_mismatch', peer: e.node, ours: e.ours, theirs: e.theirs, reference: e.reference },
          `the configuration of ${e.node} differs from this node's (config digests ${e.ours.slice(0, 12)} ≠ ${e.theirs.slice(0, 12)})`);
        return;
      case 'powers':
        log.info({ event: 'powers', origin: e.origin, version: e.overrides.version, entries: e.overrides.entries }, 'power overrides changed');
        void this.savePowersIfChanged();
        return;
      case 'rejected':
        // A duplicate (one copy per LAN) or a reordered heartbeat is routine; anything else —
        // another module's name, a bad MAC, an unknown sender — is a misconfiguration or an
        // attack an operator must see, once per sender and reason every REJECT_LOG_EVERY_MS.
        if (/^replayed or reordered/.test(e.reason) || !this.shouldLogRejection(e.from, e.reason)) {
          log.debug({ event: 'heartbeat_rejected', from: e.from, reason: e.reason, detail: e.detail }, 'heartbeat rejected');
        } else {
          log.warn({ event: 'heartbeat_rejected', from: e.from, reason: e.reason, detail: e.detail },
            `heartbeat from ${e.from} rejected: ${e.reason}${e.detail !== undefined ? ` (${e.detail})` : ''}`);
        }
        return;
      case 'peer_lost':
        log.warn({ event: 'peer_lost', peer: e.node, detectionMs: e.detectionMs }, `${e.node} lost`);
        return;
      case 'peer_joined':
        log.info({ event: 'peer_joined', peer: e.node, incarnation: e.incarnation }, `${e.node} joined`);
        return;
      case 'leader':
        log.info({ event: 'leader', leader: e.leader }, `leader: ${e.leader ?? 'none'}`);
        return;
      case 'quorum_lost':
        log.warn({ event: 'quorum_lost', alive: e.alive, needed: e.needed }, `no quorum: ${e.alive} of ${e.needed} needed`);
        return;
      case 'handover_started':
        log.info({ event: 'handover_started', group: e.group, from: e.from, to: e.to, buckets: e.buckets.length },
          `${e.buckets.length} bucket(s) of ${e.group} handing over from ${e.from} to ${e.to ?? '(none yet)'}`);
        return;
      case 'handover_ended': {
        const fields = { event: 'handover_ended', group: e.group, from: e.from, reason: e.reason, buckets: e.buckets.length,
          ...(e.connectionsLeft !== undefined ? { connectionsLeft: e.connectionsLeft } : {}) };
        const cut = (e.connectionsLeft ?? 0) > 0;
        const msg = `${e.from} handed over ${e.buckets.length} bucket(s) of ${e.group}: ${e.reason}${cut ? `, ${e.connectionsLeft} connection(s) cut` : ''}`;
        if (cut) log.warn(fields, msg);
        else log.info(fields, msg);
        return;
      }
    }
  }

  private readonly rejectionLoggedAt = new Map<string, number>();

  /** True at most once per sender and reason every REJECT_LOG_EVERY_MS. */
  private shouldLogRejection(from: string, reason: string): boolean {
    const key = `${from}\u0000${reason}`;
    const now = Date.now();
    const last = this.rejectionLoggedAt.get(key);
    if (last !== undefined && now - last < REJECT_LOG_EVERY_MS) return false;
    // Bounded: a flood of forged senders cannot grow the map without limit.
    if (this.rejectionLoggedAt.size >= 1024) this.rejectionLoggedAt.clear();
    this.rejectionLoggedAt.set(key, now);
    return true;
  }

  private savePowersIfChanged(): Promise<void> {
    this.savingPowers = this.savingPowers.then(async () => {
      const powers = this.opts.membership.powerOverrides();
      const json = JSON.stringify(powers);
      if (json === this.lastSaved) return;
      const file = powersFile(this.opts.paths.runDir);
      // Atomic replace: a crash mid-write never leaves a torn record.
      await writeFile(`${file}.tmp`, `${JSON.stringify(powers, null, 2)}\n`, { mode: 0o600 });
      await rename(`${file}.tmp`, file);
      this.lastSaved = json;
    }).catch((err) => this.opts.log.error({ err, event: 'powers_save_failed' }, 'could not save powers.json'));
    return this.savingPowers;
  }
}
