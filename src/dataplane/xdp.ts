// XdpDataplane: the Dataplane whose tables live in the BPF maps of bpf/build/farmlb.bpf.o
// (layouts: bpf/farmlb_abi.h, mirrored in ./abi.ts). Tables are double-buffered: apply()
// writes the inactive slot completely, then flips farmlb_ctl.active_slot, so a packet sees
// the old tables or the new ones, never a mix (docs/datapath.md, section 0). The rules are
// written three times: resolved per VIP address (farmlb_rules, rule-table.ts), laid out for
// array lookups (farmlb_vip_index and the per-VIP descriptors of farmlb_vip_desc, which the
// program reads first and which fall back to farmlb_vips / farmlb_rules for colliding VIPs
// and ports that do not fit inline), and as the config states them (farmlb_rule_specs), from
// which the tables are read back.
//
// The program must outlive the daemon (DESIGN.md, kernel lease): close() releases this
// process's handles only; detach() and unpin() are separate, explicit calls.

import { existsSync, readdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { FarmlbError } from '../errors.js';
import { PIN_ROOT } from '../paths.js';
import { abiMismatches } from './abi-check.js';
import { hotTables, type ArrayTable, type HotTableName } from './hot-tables.js';
import {
  MAP_NAMES,
  MAX_GROUPS,
  NBUCKETS,
  NODE_NONE,
  GROUP_NONE,
  ABI_STRUCTS,
  bucketIndex,
  bucketStatsIndex,
  decodeBucket,
  decodeCtl,
  decodeNode,
  decodeMacKey,
  decodeRequester,
  decodeRequesterBudget,
  type RequesterBudget,
  decodeRequesterKey,
  encodeIface,
  MAX_NODES,
  nodeIndex,
  NODE_F_KNOWN,
  TC_HANDLE,
  TC_PRIORITY,
  decodeRule,
  decodeRuleKey,
  decodeRuleSpecKey,
  decodeSlotCfg,
  decodeVip,
  decodeVipKey,
  encodeBucket,
  encodeCtl,
  encodeIndexKey,
  encodeSlotCfg,
  encodeVipIndex,
  formatAddr,
  formatMac,
  mapShapeMismatch,
  modeName,
  parseMac,
  RESOLVED_RULES_PER_SLOT,
  sumPerCpuBucketCounter,
  sumPerCpuCounter,
  type Ctl,
  type MapName,
} from './abi.js';
import { nodeEntries, nodeMacEntries, resolvedRuleEntry, ruleSpecEntry, validateBuckets, validateTables, vipDescEntries, vipEntry } from './map-entries.js';
import { resolveRules, vipLayout, type ResolvedRule, type VipLayout } from './rule-table.js';
import { bpfObjectPath, loadNative, type Native, type NativeMap, type NativeObject, type TestRunResult, type XdpMode } from '../addon/native.js';
import {
  REASONS,
  type BucketCounter,
  type BucketRows,
  type CompiledRule,
  type CompiledVip,
  type CriterionId,
  type Dataplane,
  type DataplaneTables,
  type Reason,
  type ReasonCounter,
  type Requester,
} from './types.js';

/** The XDP entry point in farmlb.bpf.o. */
export const PROGRAM_NAME = 'farmlb_xdp';
/** The tc egress program in the same object (docs/datapath.md §11). */
export const EGRESS_PROGRAM_NAME = 'farmlb_egress';

/** The maps, and the hot tables inside farmlb_hot by their former map names (hot-tables.ts). */
type Maps = Record<MapName, NativeMap> & Record<HotTableName, ArrayTable>;

export interface XdpOpenOptions {
  /** Default: bpfObjectPath(), i.e. <repo>/bpf/build/farmlb.bpf.o. */
  objectPath?: string;
  /** bpffs directory to pin the maps in (DESIGN.md: /sys/fs/bpf/farmlb/<module>/). */
  pinDir?: string;
  /** Adopt maps already pinned in pinDir with the same shape (a restarted daemon keeps its lease and tables). */
  reusePins?: boolean;
  log?: Logger;
  /** Default: loadNative(). */
  native?: Native;
}

export interface AttachResult {
  mode: XdpMode;
  /** Why the program is not in native mode although 'auto' asked for it. */
  fallbackReason?: string;
}

export interface LeaseState {
  deadlineNs: bigint;
  nowNs: bigint;
  valid: boolean;
  activeSlot: number;
}

// ---- reading maps (shared by the daemon side and the CLI reader) ----------------------

function openMaps(open: (name: MapName) => NativeMap, onMismatch: (name: MapName, mismatch: string) => Error): Maps {
  const maps: Partial<Record<MapName, NativeMap>> = {};
  try {
    for (const name of MAP_NAMES) {
      const map = open(name);
      maps[name] = map;
      const mismatch = mapShapeMismatch(name, map);
      if (mismatch) throw onMismatch(name, mismatch);
    }
    const all = maps as Record<MapName, NativeMap>;
    return { ...all, ...hotTables(all.farmlb_hot) };
  } catch (err) {
    closeMaps(maps);
    throw err;
  }
}

function closeMaps(maps: Partial<Record<MapName, NativeMap>>): void {
  for (const name of MAP_NAMES) maps[name]?.close();
}

function readCtl(maps: Maps): Ctl {
  const value = maps.farmlb_ctl.lookup(encodeIndexKey(0));
  // An ARRAY map always has its entries; null would mean this is not our map.
  if (!value) throw new FarmlbError('FARMLB_E_INTERNAL', { detail: 'farmlb_ctl[0] is missing' });
  return decodeCtl(value);
}

/** docs/datapath.md: an active_slot other than 0 or 1 is treated as 0. */
function activeSlotOf(ctl: Ctl): number {
  return ctl.activeSlot === 1 ? 1 : 0;
}

/**
 * Per reason, summed over CPUs. PASS_OWNED and DROP_NOT_OWNED of a bucket are counted in the
 * bucket's counter only (one update per packet, bpf/farmlb_abi.h): they are added from every
 * bucket here.
 */
function readReasonCounters(maps: Maps, cpus: number): Record<Reason, ReasonCounter> {
  const out = {} as Record<Reason, ReasonCounter>;
  REASONS.forEach((reason, index) => {
    const value = maps.farmlb_stats.lookup(encodeIndexKey(index));
    out[reason] = value ? sumPerCpuCounter(value, cpus) : { packets: 0n, bytes: 0n };
  });
  const add = (into: ReasonCounter, c: ReasonCounter): void => {
    into.packets += c.packets;
    into.bytes += c.bytes;
  };
  for (const row of readBucketCounterRows(maps, cpus, MAX_GROUPS))
    for (const b of row) {
      add(out.pass_owned, b.owned);
      add(out.drop_not_owned, b.notOwned);
    }
  return out;
}

function readBucketCounterRows(maps: Maps, cpus: number, groups: number): ReturnType<typeof sumPerCpuBucketCounter>[][] {
  const rows: ReturnType<typeof sumPerCpuBucketCounter>[][] = [];
  const zero = (): ReturnType<typeof sumPerCpuBucketCounter> => ({
    accepted: 0n,
    dropped: 0n,
    owned: { packets: 0n, bytes: 0n },
    notOwned: { packets: 0n, bytes: 0n },
  });
  for (let group = 0; group < groups; group++) {
    const row: ReturnType<typeof sumPerCpuBucketCounter>[] = [];
    for (let bucket = 0; bucket < NBUCKETS; bucket++) {
      const value = maps.farmlb_bucket_stats.lookup(encodeIndexKey(bucketStatsIndex(group, bucket)));
      row.push(value ? sumPerCpuBucketCounter(value, cpus) : zero());
    }
    rows.push(row);
  }
  return rows;
}

function readBucketCounters(maps: Maps, cpus: number, groups: number): BucketCounter[][] {
  return readBucketCounterRows(maps, cpus, groups).map((row) => row.map(({ accepted, dropped }) => ({ accepted, dropped })));
}

/** One group's owners and previous owners in `slot` (NODE_NONE where an entry is missing). */
function readBucketRow(maps: Maps, slot: number, group: number): { owners: number[]; prevOwners: number[]; handover: boolean } {
  const owners: number[] = [];
  const prevOwners: number[] = [];
  let handover = false;
  // One read for the row (a read-only reader pays one syscall, not 256).
  const row = maps.farmlb_buckets.lookupRange(bucketIndex(slot, group, 0), NBUCKETS);
  for (let bucket = 0; bucket < NBUCKETS; bucket++) {
    const b = decodeBucket(row, bucket * ABI_STRUCTS.farmlb_bucket.size);
    owners.push(b.owner);
    prevOwners.push(b.prevOwner);
    if (b.prevOwner !== NODE_NONE) handover = true;
  }
  return { owners, prevOwners, handover };
}

/**
 * The active slot decoded back into tables. Bucket rows are returned for groups 0..g,
 * g being the highest group a rule or a VIP's ICMP group names (the maps do not record
 * how many groups the config had).
 */
function readActiveTables(maps: Maps): DataplaneTables {
  const slot = activeSlotOf(readCtl(maps));
  const cfgValue = maps.farmlb_slot_cfg.lookup(encodeIndexKey(slot));
  if (!cfgValue) throw new FarmlbError('FARMLB_E_INTERNAL', { detail: `farmlb_slot_cfg[${slot}] is missing` });
  const cfg = decodeSlotCfg(cfgValue);

  const vips: CompiledVip[] = [];
  for (const key of maps.farmlb_vips.keys()) {
    const k = decodeVipKey(key);
    if (k.slot !== slot) continue;
    const value = maps.farmlb_vips.lookup(key);
    if (!value) continue; // deleted meanwhile
    const v = decodeVip(value);
    vips.push({
      id: v.vipId,
      family: k.family,
      addr: formatAddr(k.family, k.addr),
      addrBytes: k.addr,
      icmpGroup: v.icmpGroup,
      arpGroup: v.arpGroup,
      mode: modeName(v.mode),
    });
  }
  vips.sort((a, b) => a.id - b.id);

  // The rules as the config stated them: the resolved table in farmlb_rules cannot be
  // inverted (a rule shadowed for every VIP leaves no entry there).
  const rules: CompiledRule[] = [];
  for (const key of maps.farmlb_rule_specs.keys()) {
    const k = decodeRuleSpecKey(key);
    if (k.slot !== slot) continue;
    const value = maps.farmlb_rule_specs.lookup(key);
    if (!value) continue;
    const r = decodeRule(value);
    rules.push({ proto: k.proto as 6 | 17, port: k.port, vipId: k.vipId, group: r.group, criterion: r.criterion as CriterionId });
  }
  rules.sort((a, b) => a.group - b.group || a.vipId - b.vipId || a.port - b.port || a.proto - b.proto);

  let groups = 0;
  for (const r of rules) groups = Math.max(groups, r.group + 1);
  for (const v of vips) if (v.icmpGroup !== GROUP_NONE) groups = Math.max(groups, v.icmpGroup + 1);
  for (const v of vips) if (v.arpGroup !== GROUP_NONE) groups = Math.max(groups, v.arpGroup + 1);
  groups = Math.min(groups, MAX_GROUPS);
  const buckets: number[][] = [];
  const prevOwners: number[][] = [];
  let handover = false;
  for (let group = 0; group < groups; group++) {
    const row = readBucketRow(maps, slot, group);
    buckets.push(row.owners);
    prevOwners.push(row.prevOwners);
    if (row.handover) handover = true;
  }
  const nodeMacs: (string | null)[] = [];
  for (let node = 0; node < MAX_NODES; node++) {
    const value = maps.farmlb_nodes.lookup(encodeIndexKey(nodeIndex(slot, node)));
    const n = value ? decodeNode(value) : undefined;
    nodeMacs.push(n && n.flags & NODE_F_KNOWN ? formatMac(n.mac) : null);
  }
  // Trailing unknown nodes carry nothing: the table had at most as many entries as nodes.
  while (nodeMacs.length > 0 && nodeMacs[nodeMacs.length - 1] === null) nodeMacs.pop();
  return {
    hashSeed: cfg.hashSeed,
    selfNode: cfg.selfNode,
    vmac: formatMac(cfg.vmac),
    vips,
    rules,
    buckets,
    ...(handover ? { prevOwners } : {}),
    nodeMacs,
  };
}

function readRequesterBudget(maps: Maps): RequesterBudget {
  const value = maps.farmlb_requester_budget.lookup(encodeIndexKey(0));
  if (!value) throw new FarmlbError('FARMLB_E_INTERNAL', { detail: 'farmlb_requester_budget[0] is missing' });
  return decodeRequesterBudget(value);
}

function readRequesters(maps: Maps): Requester[] {
  const out: Requester[] = [];
  for (const key of maps.farmlb_requesters.keys()) {
    const value = maps.farmlb_requesters.lookup(key);
    if (!value) continue; // evicted meanwhile
    const k = decodeRequesterKey(key);
    const v = decodeRequester(value);
    out.push({
      family: k.family,
      addr: formatAddr(k.family, k.addr),
      mac: formatMac(v.mac),
      group: v.group,
      bucket: v.bucket,
      vipId: v.vipId,
      lastSeenNs: v.lastSeenNs,
    });
  }
  return out;
}

function cloneTables(t: DataplaneTables): DataplaneTables {
  return {
    hashSeed: t.hashSeed,
    selfNode: t.selfNode,
    vmac: t.vmac,
    vips: t.vips.map((v) => ({ ...v, addrBytes: Uint8Array.from(v.addrBytes) })),
    rules: t.rules.map((r) => ({ ...r })),
    buckets: t.buckets.map((row) => [...row]),
    ...(t.prevOwners ? { prevOwners: t.prevOwners.map((row) => [...row]) } : {}),
    nodeMacs: [...(t.nodeMacs ?? [])],
  };
}

/** Maps earlier versions of the object pinned: removed with ours, or the directory would stay. */
const RETIRED_MAP_NAMES = ['farmlb_vip_filter', 'farmlb_ctl', 'farmlb_slot_cfg', 'farmlb_vip_index', 'farmlb_vip_desc', 'farmlb_buckets'];

/** Removes farmlb's pins in pinDir (absent ones are fine) and the directory if it is then empty. */
export function unpinDir(pinDir: string): void {
  for (const name of [...MAP_NAMES, ...RETIRED_MAP_NAMES]) rmSync(join(pinDir, name), { force: true });
  if (existsSync(pinDir) && readdirSync(pinDir).length === 0) rmdirSync(pinDir);
  if (dirname(pinDir) === PIN_ROOT) removeEmptyPinRoot();
}

/**
 * Removes farmlb's shared pin root once no instance directory is left in it. Another
 * instance pinning at the same moment keeps it (ENOTEMPTY), or recreates it: the addon's
 * mkdir -p starts over when a parent vanishes under it.
 */
export function removeEmptyPinRoot(): void {
  try {
    rmdirSync(PIN_ROOT);
  } catch {
    // ENOTEMPTY (other instances), ENOENT (already gone): both fine.
  }
}

// ---- the data plane ----------------------------------------------------------------

export class XdpDataplane implements Dataplane {
  private current: DataplaneTables | undefined;
  // apply() and applyBuckets() write the inactive slot, then flip it: one at a time. The
  // writes of farmlb_ctl (flip(), setLease(), setInterfaceMac()) are synchronous
  // read-modify-writes of one field each (hot-tables.ts), so they never interleave.
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /**
   * What this process wrote to each slot (unknown after open: the first write of a slot is
   * a full one). The key covers everything but the buckets.
   */
  /**
   * What each slot holds: the tables, and the generation of everything but the buckets
   * (bumped by every apply()). applyBuckets rewrites only the bucket entries of a slot whose
   * generation is current; undefined while a write is under way or after one failed.
   */
  private readonly written: ({ gen: number; tables: DataplaneTables } | undefined)[] = [undefined, undefined];
  private configGen = 0;

  private constructor(
    private readonly native: Native,
    private readonly obj: NativeObject,
    private readonly maps: Maps,
    readonly pinDir: string | undefined,
    private readonly log: Logger | undefined,
  ) {}

  /** Maps adopted from the pin directory at open (empty when nothing was reused). */
  get reusedMaps(): readonly string[] {
    return this.obj.reusedMaps;
  }

  static async open(opts: XdpOpenOptions = {}): Promise<XdpDataplane> {
    const native = opts.native ?? loadNative();
    const objectPath = opts.objectPath ?? bpfObjectPath();
    const log = opts.log;
    const reuse = opts.reusePins === true && opts.pinDir !== undefined;
    // The encoders below write the layouts of abi.ts: an object built from another header
    // (or with other FARMLB_MAX_* sizes) is refused before anything is loaded or pinned.
    const mismatches = abiMismatches(native.btfLayout(objectPath));
    if (mismatches.length > 0)
      throw new FarmlbError('FARMLB_E_BPF_ABI_MISMATCH', { object: objectPath, count: mismatches.length, first: mismatches[0]!, mismatches: mismatches.join('; ') });
    const obj = await native.openObject(objectPath, reuse ? { reusePinDir: opts.pinDir } : {});
    let maps: Maps | undefined;
    try {
      maps = openMaps(
        (name) => obj.map(name),
        (name, mismatch) =>
          new FarmlbError('FARMLB_E_DATAPLANE_PIN_MISMATCH', { map: name, pinDir: objectPath, mismatch }),
      );
      if (obj.reuseMismatches.length > 0)
        log?.warn({ event: 'pins_replaced', mismatches: obj.reuseMismatches }, 'pinned maps of another shape are replaced');
      if (opts.pinDir !== undefined) obj.pinMaps(opts.pinDir);
      const dp = new XdpDataplane(native, obj, maps, opts.pinDir, log);
      const tableMaps: MapName[] = [
        'farmlb_hot',
        'farmlb_vips',
        'farmlb_rules',
        'farmlb_rule_specs',
        'farmlb_nodes',
        'farmlb_node_macs',
      ];
      if (tableMaps.every((m) => obj.reusedMaps.includes(m))) dp.current = readActiveTables(maps);
      log?.info(
        { event: 'dataplane_loaded', object: objectPath, pinDir: opts.pinDir, reused: obj.reusedMaps },
        'XDP data plane loaded',
      );
      return dp;
    } catch (err) {
      if (maps) closeMaps(maps);
      obj.close();
      throw err;
    }
  }

  /**
   * Opens the maps pinned in pinDir read-only (for the CLI, like bpftool), after checking
   * each one's shape against the ABI.
   */
  static readPinned(pinDir: string, opts: { native?: Native } = {}): PinnedDataplane {
    const native = opts.native ?? loadNative();
    checkPinAccess(pinDir, pinDir);
    const maps = openMaps(
      (name) => {
        const path = join(pinDir, name);
        checkPinAccess(path, pinDir);
        try {
          return native.openPinnedMap(path, { readOnly: true });
        } catch (err) {
          const errno = (err as { errno?: number }).errno;
          // bpf_obj_get without CAP_BPF (or on a root-only pin): not "nothing pinned".
          if (errno === 1 || errno === 13) throw new FarmlbError('FARMLB_E_DATAPLANE_PIN_ACCESS', { path, detail: 'permission denied' }, { cause: err });
          throw err;
        }
      },
      (name, mismatch) => new FarmlbError('FARMLB_E_DATAPLANE_PIN_MISMATCH', { map: name, pinDir, mismatch }),
    );
    return new PinnedDataplane(native, maps);
  }

  async apply(tables: DataplaneTables): Promise<void> {
    // Before any write: a rejected table leaves the running slot and the inactive one as they were.
    validateTables(tables);
    const snapshot = cloneTables(tables);
    const resolved = resolveRules(snapshot.vips, snapshot.rules);
    // Cannot exceed the bound for a table validateTables accepted (at most MAX_RULES entries
    // per VIP), but a full map would fail halfway through the slot: refuse here instead.
    if (resolved.length > RESOLVED_RULES_PER_SLOT)
      throw new FarmlbError('FARMLB_E_DATAPLANE_TABLE_INVALID', {
        detail: `${resolved.length} resolved rule entries, the data plane holds ${RESOLVED_RULES_PER_SLOT} per slot`,
      });
    const layout = vipLayout(snapshot.vips, resolved);
    await this.serialize(async () => {
      this.assertOpen();
      const slot = 1 - activeSlotOf(readCtl(this.maps));
      const gen = ++this.configGen;
      // Unknown until this write completes: one that fails halfway is followed by a full one.
      this.written[slot] = undefined;
      await this.writeSlot(slot, snapshot, resolved, layout);
      this.written[slot] = { gen, tables: snapshot };
      this.flip(slot, snapshot);
    });
  }

  async applyBuckets(buckets: BucketRows, prevOwners?: BucketRows): Promise<void> {
    await this.serialize(async () => {
      this.assertOpen();
      const current = this.current;
      if (!current) throw new FarmlbError('FARMLB_E_DATAPLANE_TABLE_INVALID', { detail: 'buckets applied before any table' });
      validateBuckets(buckets, prevOwners);
      // Only the rows are new: the rest is the current snapshot, shared (never mutated).
      const { prevOwners: _old, ...rest } = current;
      const next: DataplaneTables = {
        ...rest,
        buckets: buckets.map((row) => [...row]),
        ...(prevOwners ? { prevOwners: prevOwners.map((row) => [...row]) } : {}),
      };
      const slot = 1 - activeSlotOf(readCtl(this.maps));
      const before = this.written[slot];
      this.written[slot] = undefined;
      // The inactive slot holds the current configuration (it was written by a bucket change
      // since the last apply): rewrite only the bucket entries that differ from it, a handful
      // instead of 4,096 plus every other map. Otherwise (the slot still holds the
      // configuration before the last apply, or nothing known) the whole slot.
      if (before && before.gen === this.configGen) {
        await this.writeBuckets(slot, next, before.tables);
      } else {
        const resolved = resolveRules(next.vips, next.rules);
        await this.writeSlot(slot, next, resolved, vipLayout(next.vips, resolved));
      }
      this.written[slot] = { gen: this.configGen, tables: next };
      this.flip(slot, next);
    });
  }

  /** Makes `slot` the one the program reads, with `tables` in it. */
  private flip(slot: number, tables: DataplaneTables): void {
    // Re-read: the lease (or iface_gen) may have been changed by another writer of the pinned map.
    const ctl = readCtl(this.maps);
    this.maps.farmlb_ctl.update(encodeIndexKey(0), encodeCtl({ ...ctl, activeSlot: slot }));
    this.current = tables;
    this.log?.debug({ event: 'tables_applied', slot }, 'data plane tables applied');
  }

  /**
   * Every bucket entry of `slot` (all groups, NODE_NONE past the table's), or only those that
   * differ from `was`, what the slot holds.
   */
  private async writeBuckets(slot: number, t: DataplaneTables, was?: DataplaneTables): Promise<void> {
    const entries: { index: number; owner: number; prevOwner: number }[] = [];
    for (let group = 0; group < MAX_GROUPS; group++) {
      for (let bucket = 0; bucket < NBUCKETS; bucket++) {
        const owner = t.buckets[group]?.[bucket] ?? NODE_NONE;
        const prevOwner = t.prevOwners?.[group]?.[bucket] ?? NODE_NONE;
        if (was && owner === (was.buckets[group]?.[bucket] ?? NODE_NONE) && prevOwner === (was.prevOwners?.[group]?.[bucket] ?? NODE_NONE)) continue;
        entries.push({ index: bucketIndex(slot, group, bucket), owner, prevOwner });
      }
    }
    if (entries.length === 0) return;
    const size = ABI_STRUCTS.farmlb_bucket.size;
    const keys = Buffer.alloc(entries.length * 4);
    const values = Buffer.alloc(entries.length * size);
    entries.forEach((e, i) => {
      encodeIndexKey(e.index).copy(keys, i * 4);
      encodeBucket({ owner: e.owner, prevOwner: e.prevOwner, flags: 0 }, values, i * size);
    });
    await this.maps.farmlb_buckets.updateBatch(keys, values, entries.length);
  }

  private async writeSlot(slot: number, t: DataplaneTables, resolved: ResolvedRule[], layout: VipLayout): Promise<void> {
    const {
      farmlb_vips: vips,
      farmlb_rules: rules,
      farmlb_rule_specs: ruleSpecs,
      farmlb_vip_index: vipIndex,
      farmlb_vip_desc: vipDesc,
      farmlb_slot_cfg: slotCfg,
      farmlb_nodes: nodes,
      farmlb_node_macs: nodeMacs,
    } = this.maps;
    // Everything but the active slot is stale (including keys of a slot number the
    // program never uses): clear it so capacity is SLOTS × MAX per map.
    const active = 1 - slot;
    for (const key of vips.keys()) if (decodeVipKey(key).slot !== active) vips.delete(key);
    for (const key of rules.keys()) if (decodeRuleKey(key).slot !== active) rules.delete(key);
    for (const key of ruleSpecs.keys()) if (decodeRuleSpecKey(key).slot !== active) ruleSpecs.delete(key);
    for (const key of nodeMacs.keys()) if (decodeMacKey(key).slot !== active) nodeMacs.delete(key);

    slotCfg.update(
      encodeIndexKey(slot),
      encodeSlotCfg({ hashSeed: t.hashSeed, selfNode: t.selfNode, vmac: parseMac(t.vmac) }),
    );
    // The hash maps first, then the descriptors and the index that send packets to them (the
    // slot is inactive, so the order only matters for readability).
    await batch(vips, t.vips.map((v) => vipEntry(slot, v)));
    await batch(ruleSpecs, t.rules.map((r) => ruleSpecEntry(slot, r)));
    await batch(rules, resolved.map((e) => resolvedRuleEntry(slot, e)));
    await batch(vipDesc, vipDescEntries(slot, layout));
    vipIndex.update(encodeIndexKey(slot), encodeVipIndex(layout.index));
    await batch(nodes, nodeEntries(slot, t.nodeMacs ?? []));
    await batch(nodeMacs, nodeMacEntries(slot, t.nodeMacs ?? []));

    await this.writeBuckets(slot, t);
  }

  /**
   * At once, also while apply() or applyBuckets() is under way (a lease renewal must not
   * wait for an install: docs/membership.md, "Lease writes during an install"): a synchronous
   * read-modify-write of farmlb_ctl that stores the deadline alone (one 8-byte store), as
   * flip() stores the slot alone, re-reading the record first. Packets see the old table
   * until the flip and the new one after, under whichever deadline is current: the caller
   * writes during an install only a renewal that holds for both (src/membership/lease-gate.ts).
   */
  async setLease(deadlineNs: bigint): Promise<void> {
    this.assertOpen();
    const ctl = readCtl(this.maps);
    this.maps.farmlb_ctl.update(encodeIndexKey(0), encodeCtl({ ...ctl, leaseDeadlineNs: deadlineNs }));
  }

  tables(): DataplaneTables | undefined {
    return this.current;
  }

  activeSlot(): number {
    this.assertOpen();
    return activeSlotOf(readCtl(this.maps));
  }

  async reasonCounters(): Promise<Record<Reason, ReasonCounter>> {
    this.assertOpen();
    return readReasonCounters(this.maps, this.native.numPossibleCpus());
  }

  /** Rows for the groups of the current tables (every group the map holds when none). */
  async bucketCounters(): Promise<BucketCounter[][]> {
    this.assertOpen();
    return readBucketCounters(this.maps, this.native.numPossibleCpus(), this.current?.buckets.length ?? MAX_GROUPS);
  }

  programFd(): number {
    this.assertOpen();
    return this.obj.programFd(PROGRAM_NAME);
  }

  programId(): number {
    this.assertOpen();
    return this.obj.programId(PROGRAM_NAME);
  }

  /**
   * Attaches farmlb_xdp to ifname (netlink: it stays when this process exits). A program
   * already there is swapped atomically in its own mode — there is never a moment with the
   * VIP up and no program, so switching between native and generic is refused. The
   * interface's MAC goes into farmlb_ifaces first: the program answers ARP/NS and forwards
   * from it, and cannot read it itself.
   */
  async attach(ifname: string, mode: XdpMode | 'auto' = 'auto'): Promise<AttachResult> {
    this.assertOpen();
    const ifindex = this.native.ifindex(ifname);
    try {
      this.setInterfaceMac(ifindex, this.native.ifaceMac(ifname));
    } catch (err) {
      // Not Ethernet (loopback, a tunnel): nothing to answer ARP from; the program drops
      // what it would have to send (DROP_NO_IFACE) and passes the rest.
      this.log?.warn({ event: 'iface_mac_unknown', iface: ifname, err }, 'interface MAC unknown: no ARP/ND answers, no forwarding');
    }
    const progId = this.programId();
    const current = this.native.xdpQuery(ifindex);
    if (current.progId === progId && current.mode !== 'none') return { mode: current.mode };
    let result: AttachResult;
    if (current.mode !== 'none') {
      if (mode !== 'auto' && mode !== current.mode)
        throw new FarmlbError('FARMLB_E_XDP_MODE_CONFLICT', { iface: ifname, attached: current.mode, requested: mode });
      result = await this.native.xdpAttach(ifindex, this.programFd(), { mode: current.mode, replaceProgId: current.progId });
      if (mode === 'auto' && current.mode === 'generic')
        result.fallbackReason = `program ${current.progId} was attached in generic mode; replaced in place`;
      this.log?.info({ event: 'xdp_replaced', iface: ifname, mode: result.mode, oldProgId: current.progId }, 'XDP program replaced');
    } else {
      result = await this.native.xdpAttach(ifindex, this.programFd(), { mode });
      this.log?.info({ event: 'xdp_attached', iface: ifname, mode: result.mode }, 'XDP program attached');
    }
    if (result.fallbackReason)
      this.log?.warn({ event: 'xdp_generic_fallback', iface: ifname, reason: result.fallbackReason }, 'XDP runs in generic mode');
    return result;
  }

  /**
   * Detaches farmlb_xdp from ifname if it is this object's program (another program is left
   * alone), then forgets the interface's MAC.
   */
  async detach(ifname: string): Promise<void> {
    this.assertOpen();
    const ifindex = this.native.ifindex(ifname);
    const detached = await this.native.xdpDetach(ifindex, { expectedProgId: this.programId() });
    if (detached) this.log?.info({ event: 'xdp_detached', iface: ifname }, 'XDP program detached');
    else this.log?.warn({ event: 'xdp_not_ours', iface: ifname }, 'XDP program not detached: another program is attached');
    this.setInterfaceMac(ifindex, null);
  }

  /**
   * farmlb_ifaces[ifindex] = mac (null removes it). attach() does this; tests that run the
   * program through BPF_PROG_TEST_RUN (ingress = the loopback device, ifindex 1) set it here.
   * Then farmlb_ctl.iface_gen is bumped, which makes every CPU's farmlb_iface_cache entry
   * stale: the map is written first, so a CPU that sees the new gen reads the new map.
   */
  setInterfaceMac(ifindex: number, mac: string | null): void {
    this.assertOpen();
    const key = encodeIndexKey(ifindex);
    if (mac === null) this.maps.farmlb_ifaces.delete(key);
    else this.maps.farmlb_ifaces.update(key, encodeIface(parseMac(mac)));
    const ctl = readCtl(this.maps);
    this.maps.farmlb_ctl.update(encodeIndexKey(0), encodeCtl({ ...ctl, ifaceGen: (ctl.ifaceGen + 1) >>> 0 }));
  }

  /**
   * Attaches farmlb_egress as a tc clsact egress filter on ifname (IPv6 VIPs: it fixes the
   * link-layer option of the kernel's own NS/NA sent from a VIP). Idempotent: a fixed handle
   * and priority, replaced in place. Like the XDP program it stays when this process exits.
   */
  async attachEgress(ifname: string): Promise<void> {
    this.assertOpen();
    const ifindex = this.native.ifindex(ifname);
    await this.native.tcAttachEgress(ifindex, this.obj.programFd(EGRESS_PROGRAM_NAME), {
      handle: TC_HANDLE,
      priority: TC_PRIORITY,
    });
    this.log?.info({ event: 'tc_egress_attached', iface: ifname }, 'tc egress program attached');
  }

  /**
   * Removes farmlb's egress filter (its handle and priority) from ifname; absent is fine. The
   * clsact qdisc stays: other tools' filters may hang off it, and an empty one costs nothing.
   */
  async detachEgress(ifname: string): Promise<void> {
    this.assertOpen();
    const ifindex = this.native.ifindex(ifname);
    const detached = await this.native.tcDetachEgress(ifindex, { handle: TC_HANDLE, priority: TC_PRIORITY });
    if (detached) this.log?.info({ event: 'tc_egress_detached', iface: ifname }, 'tc egress program detached');
  }

  /** farmlb_requesters: every client that asked for a VIP (ARP request / NS) and is still remembered. */
  async requesters(): Promise<Requester[]> {
    this.assertOpen();
    return readRequesters(this.maps);
  }

  /** How many new requesters the program recorded in its current window and could not record since it was loaded. */
  requesterBudget(): RequesterBudget {
    this.assertOpen();
    return readRequesterBudget(this.maps);
  }

  /** Runs farmlb_egress (tc) on one frame through BPF_PROG_TEST_RUN. */
  testRunEgress(frame: Uint8Array): Promise<TestRunResult> {
    this.assertOpen();
    return this.obj.testRun(EGRESS_PROGRAM_NAME, Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength));
  }

  /** One frame, `repeat` times; `netns` as for testRunMany. */
  testRun(frame: Uint8Array, repeat = 1, opts: { netns?: string } = {}): Promise<TestRunResult> {
    this.assertOpen();
    return this.obj.testRun(PROGRAM_NAME, Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength), repeat, opts.netns);
  }

  /**
   * One BPF_PROG_TEST_RUN per frame. `netns` (a path such as /run/netns/flb-x) runs them in
   * that namespace: its loopback is the ingress device and its sockets are what the handover
   * decision (§12) looks up.
   */
  testRunMany(frames: Uint8Array[], opts: { netns?: string } = {}): Promise<{ retval: number; dataOut: Buffer }[]> {
    this.assertOpen();
    return this.obj.testRunMany(
      PROGRAM_NAME,
      frames.map((f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength)),
      opts.netns,
    );
  }

  /** Removes the pins (the maps live on while the program or another process holds them). */
  unpin(): void {
    if (this.pinDir !== undefined) unpinDir(this.pinDir);
  }

  /** Releases this process's handles. Does not detach the program nor remove the pins. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.catch(() => undefined);
    closeMaps(this.maps);
    this.obj.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new FarmlbError('FARMLB_E_DATAPLANE_CLOSED');
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

async function batch(map: Pick<NativeMap, 'updateBatch'>, entries: { key: Buffer; value: Buffer }[]): Promise<void> {
  if (entries.length === 0) return;
  await map.updateBatch(
    Buffer.concat(entries.map((e) => e.key)),
    Buffer.concat(entries.map((e) => e.value)),
    entries.length,
  );
}

/** Read-only view of a pinned data plane, for the CLI; works while the daemon is down. */
export class PinnedDataplane {
  private closed = false;

  constructor(
    private readonly native: Native,
    private readonly maps: Maps,
  ) {}

  activeTables(): DataplaneTables {
    this.assertOpen();
    return readActiveTables(this.maps);
  }

  lease(): LeaseState {
    this.assertOpen();
    const ctl = readCtl(this.maps);
    const nowNs = this.native.monotonicNs();
    return { deadlineNs: ctl.leaseDeadlineNs, nowNs, valid: nowNs < ctl.leaseDeadlineNs, activeSlot: activeSlotOf(ctl) };
  }

  /**
   * The owners of one group's buckets in the active slot, whether any is in handover, and
   * the lease — 257 lookups
   * instead of activeTables()'s full read, for pollers that watch a table change.
   */
  ownersAndLease(group = 0): { owners: number[]; handover: boolean; lease: LeaseState } {
    this.assertOpen();
    const ctl = readCtl(this.maps);
    const slot = activeSlotOf(ctl);
    const { owners, handover } = readBucketRow(this.maps, slot, group);
    const nowNs = this.native.monotonicNs();
    return { owners, handover, lease: { deadlineNs: ctl.leaseDeadlineNs, nowNs, valid: nowNs < ctl.leaseDeadlineNs, activeSlot: slot } };
  }

  reasonCounters(): Record<Reason, ReasonCounter> {
    this.assertOpen();
    return readReasonCounters(this.maps, this.native.numPossibleCpus());
  }

  /** [group][bucket] for `groups` groups (default: every group the map holds). */
  bucketCounters(groups = MAX_GROUPS): BucketCounter[][] {
    this.assertOpen();
    return readBucketCounters(this.maps, this.native.numPossibleCpus(), Math.min(groups, MAX_GROUPS));
  }

  requesterBudget(): RequesterBudget {
    this.assertOpen();
    return readRequesterBudget(this.maps);
  }

  requesters(): Requester[] {
    this.assertOpen();
    return readRequesters(this.maps);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeMaps(this.maps);
  }

  private assertOpen(): void {
    if (this.closed) throw new FarmlbError('FARMLB_E_DATAPLANE_CLOSED');
  }
}

/**
 * A pin path that is missing is FARMLB_E_DATAPLANE_NOT_PINNED; one that exists but cannot be
 * looked at (the CLI without root: bpffs pins and their directory are root-only) is
 * FARMLB_E_DATAPLANE_PIN_ACCESS, which says to run as root rather than "nothing is pinned".
 */
function checkPinAccess(path: string, pinDir: string): void {
  try {
    statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw new FarmlbError('FARMLB_E_DATAPLANE_PIN_ACCESS', { path, detail: 'permission denied' }, { cause: err });
    const what = path === pinDir ? 'the directory does not exist' : `${path.slice(pinDir.length + 1)} is missing`;
    throw new FarmlbError('FARMLB_E_DATAPLANE_NOT_PINNED', { pinDir, detail: what }, { cause: err });
  }
}
