// The hot tables (bpf/farmlb_abi.h, struct farmlb_hot): farmlb_ctl, farmlb_slot_cfg,
// farmlb_vip_index, farmlb_vip_desc and farmlb_buckets are members of the program's global
// data, one map (pinned as farmlb_hot) that the program reads by direct loads. This module
// gives each member the array-map interface the rest of the data plane used when they were
// maps of their own (lookup / update / updateBatch by __u32 index), over a shared mapping of
// farmlb_hot. What the ABI promises about the writes (docs/datapath.md §13) is kept here:
//   - table entries are plain copies; the caller writes them to the inactive slot only;
//   - farmlb_ctl is written field by field, each changed field with one store: the lease
//     deadline with one aligned 8-byte store, active_slot and iface_gen with one 4-byte
//     release store after a full fence, which publishes every table write before it.

import { FarmlbError } from '../errors.js';
import { ABI_STRUCTS, BUCKET_ENTRIES, SLOTS, VIP_DESC_ENTRIES, decodeCtl } from './abi.js';
import type { NativeMap } from '../addon/native.js';

export type HotTableName = 'farmlb_ctl' | 'farmlb_slot_cfg' | 'farmlb_vip_index' | 'farmlb_vip_desc' | 'farmlb_buckets';

/** The part of NativeMap the data plane uses on an array table, and a read of consecutive entries. */
export interface ArrayTable extends Pick<NativeMap, 'name' | 'lookup' | 'update' | 'updateBatch'> {
  /** Entries first..first + count - 1, back to back, in one read. */
  lookupRange(first: number, count: number): Buffer;
}

const HOT = ABI_STRUCTS.farmlb_hot.fields;
const CTL = ABI_STRUCTS.farmlb_ctl.fields;

/** Where each member starts in farmlb_hot, its element size and count. */
const LAYOUT: Record<HotTableName, { offset: number; size: number; entries: number }> = {
  farmlb_ctl: { offset: HOT.ctl.offset, size: ABI_STRUCTS.farmlb_ctl.size, entries: 1 },
  farmlb_slot_cfg: { offset: HOT.slot_cfg.offset, size: ABI_STRUCTS.farmlb_slot_cfg.size, entries: SLOTS },
  farmlb_vip_index: { offset: HOT.vip_index.offset, size: ABI_STRUCTS.farmlb_vip_index.size, entries: SLOTS },
  farmlb_vip_desc: { offset: HOT.vip_desc.offset, size: ABI_STRUCTS.farmlb_vip_desc.size, entries: VIP_DESC_ENTRIES },
  farmlb_buckets: { offset: HOT.buckets.offset, size: ABI_STRUCTS.farmlb_bucket.size, entries: BUCKET_ENTRIES },
};

class HotTable implements ArrayTable {
  constructor(
    private readonly hot: NativeMap,
    readonly name: HotTableName,
  ) {}

  protected offsetOf(key: Buffer): number {
    const { offset, size, entries } = LAYOUT[this.name];
    const index = key.length === 4 ? key.readUInt32LE(0) : -1;
    if (index < 0 || index >= entries)
      throw new FarmlbError('FARMLB_E_INTERNAL', { detail: `${this.name}: index ${index} outside 0..${entries - 1}` });
    return offset + index * size;
  }

  lookup(key: Buffer): Buffer {
    return this.hot.readAt(this.offsetOf(key), LAYOUT[this.name].size);
  }

  lookupRange(first: number, count: number): Buffer {
    const key = (i: number): Buffer => Buffer.from(Uint32Array.of(i).buffer);
    this.offsetOf(key(first + count - 1)); // the last entry is in range too
    return this.hot.readAt(this.offsetOf(key(first)), LAYOUT[this.name].size * count);
  }

  update(key: Buffer, value: Buffer): void {
    this.checkValue(value, 1);
    this.hot.writeAt(this.offsetOf(key), value);
  }

  /** Runs of consecutive indexes (a full slot is one run) are copied with one writeAt each. */
  updateBatch(keys: Buffer, values: Buffer, count: number): Promise<void> {
    const { size } = LAYOUT[this.name];
    this.checkValue(values, count);
    let start = 0;
    for (let i = 1; i <= count; i++) {
      if (i < count && keys.readUInt32LE(i * 4) === keys.readUInt32LE((i - 1) * 4) + 1) continue;
      this.offsetOf(keys.subarray((i - 1) * 4, i * 4)); // the run's last index is in range too
      this.hot.writeAt(this.offsetOf(keys.subarray(start * 4, start * 4 + 4)), values.subarray(start * size, i * size));
      start = i;
    }
    return Promise.resolve();
  }

  private checkValue(value: Buffer, count: number): void {
    const want = LAYOUT[this.name].size * count;
    if (value.length !== want)
      throw new FarmlbError('FARMLB_E_INTERNAL', { detail: `${this.name}: ${value.length} value bytes, expected ${want}` });
  }
}

/** farmlb_ctl: each field that changes is written with its one store (see the header). */
class HotCtl extends HotTable {
  constructor(private readonly map: NativeMap) {
    super(map, 'farmlb_ctl');
  }

  override update(key: Buffer, value: Buffer): void {
    const base = this.offsetOf(key);
    const was = decodeCtl(this.lookup(key));
    const next = decodeCtl(value);
    if (next.leaseDeadlineNs !== was.leaseDeadlineNs) this.map.storeU64(base + CTL.lease_deadline_ns.offset, next.leaseDeadlineNs);
    if (next.ifaceGen !== was.ifaceGen) this.map.storeU32Release(base + CTL.iface_gen.offset, next.ifaceGen);
    // Last: the flip publishes the slot's tables, written before this call.
    if (next.activeSlot !== was.activeSlot) this.map.storeU32Release(base + CTL.active_slot.offset, next.activeSlot);
  }
}

/** The five tables of farmlb_hot as array tables. `hot` stays owned by the caller. */
export function hotTables(hot: NativeMap): Record<HotTableName, ArrayTable> {
  return {
    farmlb_ctl: new HotCtl(hot),
    farmlb_slot_cfg: new HotTable(hot, 'farmlb_slot_cfg'),
    farmlb_vip_index: new HotTable(hot, 'farmlb_vip_index'),
    farmlb_vip_desc: new HotTable(hot, 'farmlb_vip_desc'),
    farmlb_buckets: new HotTable(hot, 'farmlb_buckets'),
  };
}
