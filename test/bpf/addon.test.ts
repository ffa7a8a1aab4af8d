// The native addon and XdpDataplane against the real kernel: the compiled
// bpf/build/farmlb.bpf.o loaded through libbpf, its maps read and written, pins on bpffs,
// BPF_PROG_TEST_RUN, the verifier log of a refused object, the double-buffered apply(),
// and XDP attach/swap/detach on loopback and a veth inside a flb-* network namespace.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  ABI_STRUCTS,
  LEASE_CLOCK_SLACK_NS,
  MAP_SHAPES,
  decodeRuleKey,
  decodeVipKey,
  encodeIndexKey,
  encodeVip,
  encodeVipKey,
  type MapName,
} from '../../src/dataplane/abi.js';
import { bpfObjectPath, loadNative, repoRoot, type Native, type NativeObject } from '../../src/addon/native.js';
import { NODE_NONE, XDP_DROP, XDP_PASS, type DataplaneTables } from '../../src/dataplane/types.js';
import { XdpDataplane } from '../../src/dataplane/xdp.js';
import { describePrivileged } from '../helpers/privileged.js';

const PIN_ROOT = `/sys/fs/bpf/flb-addon-test-${process.pid}`;
const NETNS = 'flb-addon-test';

function ensureBpffs(): void {
  const mounts = execFileSync('findmnt', ['-n', '-o', 'FSTYPE', '/sys/fs/bpf'], { encoding: 'utf8' }).trim();
  if (mounts.split('\n').includes('bpf')) return;
  execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
}

/** Ethernet + IPv4 + TCP SYN from 192.0.2.7:40000 to dst:dport. */
function tcpFrame(dst: [number, number, number, number], dport: number): Buffer {
  const f = Buffer.alloc(14 + 20 + 20);
  f.set([0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2], 0);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(40, 16);
  f[22] = 64;
  f[23] = 6;
  f.set([192, 0, 2, 7], 26);
  f.set(dst, 30);
  f.writeUInt16BE(40000, 34);
  f.writeUInt16BE(dport, 36);
  f[46] = 0x50;
  f[47] = 0x02;
  return f;
}

function vipBytes(a: number, b: number, c: number, d: number): Uint8Array {
  const out = new Uint8Array(16);
  out.set([a, b, c, d]);
  return out;
}

function tables(owner: number, seed = 7): DataplaneTables {
  return {
    hashSeed: seed,
    selfNode: 0,
    vmac: '5a:fe:0a:00:00:01',
    vips: [{ id: 0, family: 4, addr: '10.0.0.1', addrBytes: vipBytes(10, 0, 0, 1), icmpGroup: 0, arpGroup: 0xff, mode: 'vmac_invisible' }],
    rules: [{ proto: 6, port: 80, vipId: 0, group: 0, criterion: 0 }],
    buckets: [new Array<number>(256).fill(owner)],
    nodeMacs: [],
  };
}

describePrivileged('native addon over libbpf (root)', () => {
  let native: Native;
  let obj: NativeObject;
  let work: string;
  const objectPath = bpfObjectPath('farmlb');

  beforeAll(async () => {
    native = loadNative();
    if (!existsSync(objectPath)) throw new Error(`${objectPath} is missing: run make -s -C ${join(repoRoot(), 'bpf')}`);
    ensureBpffs();
    work = mkdtempSync(join(tmpdir(), 'flb-addon-'));
    obj = await native.openObject(objectPath);
  });

  afterAll(() => {
    obj?.close();
    native?.setLogCallback(null);
    rmSync(PIN_ROOT, { recursive: true, force: true });
    if (work) rmSync(work, { recursive: true, force: true });
    spawnSync('ip', ['netns', 'del', NETNS]);
  });

  it('loads farmlb.bpf.o with every ABI map in its ABI shape and the farmlb_xdp program', () => {
    expect(obj.mapNames().sort()).toEqual(Object.keys(MAP_SHAPES).sort());
    for (const [name, shape] of Object.entries(MAP_SHAPES)) {
      const map = obj.map(name);
      expect({ type: map.type, keySize: map.keySize, valueSize: map.valueSize, maxEntries: map.maxEntries }, name).toEqual(
        shape,
      );
      map.close();
    }
    expect(obj.programFd('farmlb_xdp')).toBeGreaterThan(0);
    expect(obj.programId('farmlb_xdp')).toBeGreaterThan(0);
  });

  it('sizes per-CPU values as roundup(value size, 8) for every possible CPU', () => {
    const stats = obj.map('farmlb_stats');
    expect(stats.perCpu).toBe(true);
    expect(stats.lookup(encodeIndexKey(0))!.length).toBe(native.numPossibleCpus() * 16);
    stats.close();
  });

  it('looks up, updates, deletes and lists keys of a hash map', () => {
    const vips = obj.map('farmlb_vips');
    const key = encodeVipKey({ slot: 1, family: 4, addr: vipBytes(10, 9, 9, 9) });
    expect(vips.lookup(key)).toBeNull();
    vips.update(key, encodeVip({ vipId: 3, icmpGroup: 0, mode: 1, arpGroup: 2 }));
    expect(vips.lookup(key)).toEqual(encodeVip({ vipId: 3, icmpGroup: 0, mode: 1, arpGroup: 2 }));
    expect(vips.keys()).toContainEqual(key);
    expect(vips.delete(key)).toBe(true);
    expect(vips.delete(key)).toBe(false);
    expect(() => vips.lookup(Buffer.alloc(3))).toThrow(expect.objectContaining({ code: 'FARMLB_E_BPF_ARG' }));
    vips.close();
    expect(() => vips.lookup(key)).toThrow(expect.objectContaining({ code: 'FARMLB_E_BPF_CLOSED' }));
  });

  it('writes many array entries in one batch update', async () => {
    const nodes = obj.map('farmlb_nodes');
    const count = 40;
    const keys = Buffer.alloc(count * 4);
    const values = Buffer.alloc(count * 8);
    for (let i = 0; i < count; i++) {
      keys.writeUInt32LE(i * 3, i * 4);
      values.writeUInt32LE(i, i * 8);
    }
    await nodes.updateBatch(keys, values, count);
    expect(nodes.lookup(encodeIndexKey(3 * 30))!.readUInt32LE(0)).toBe(30);
    await expect(nodes.updateBatch(keys, values, count + 1)).rejects.toMatchObject({ code: 'FARMLB_E_BPF_ARG' });
    nodes.close();
  });

  it('reports a kernel error with code, errno and syscall', () => {
    const nodes = obj.map('farmlb_nodes');
    // Array elements cannot be deleted: EINVAL from the kernel.
    expect(() => nodes.delete(encodeIndexKey(0))).toThrow(
      expect.objectContaining({ code: 'FARMLB_E_BPF_MAP', errno: 22, syscall: 'bpf_map_delete_elem' }),
    );
    nodes.close();
  });

  it('reads and writes the hot tables (global data) through a shared mapping, and a read-only pin through lookups', () => {
    const hot = obj.map('farmlb_hot');
    expect(hot.valueSize).toBe(ABI_STRUCTS.farmlb_hot.size);
    hot.writeAt(100, Buffer.from([1, 2, 3]));
    hot.storeU64(0, 0x1122334455667788n);
    hot.storeU32Release(8, 1);
    expect(hot.readAt(100, 3)).toEqual(Buffer.from([1, 2, 3]));
    // The kernel's copy of the value is the same memory.
    const whole = hot.lookup(encodeIndexKey(0))!;
    expect(whole.readBigUInt64LE(0)).toBe(0x1122334455667788n);
    expect(whole.readUInt32LE(8)).toBe(1);
    expect(() => hot.readAt(ABI_STRUCTS.farmlb_hot.size + 8, 1)).toThrow(expect.objectContaining({ code: 'FARMLB_E_BPF_ARG' }));
    expect(() => hot.storeU64(4, 1n)).toThrow(expect.objectContaining({ code: 'FARMLB_E_BPF_ARG' }));
    // Not mmapable: refused, not attempted.
    const nodes = obj.map('farmlb_nodes');
    expect(() => nodes.readAt(0, 8)).toThrow(expect.objectContaining({ code: 'FARMLB_E_BPF_ARG' }));
    nodes.close();

    const dir = join(PIN_ROOT, 'hot');
    obj.pinMaps(dir);
    try {
      const ro = native.openPinnedMap(join(dir, 'farmlb_hot'), { readOnly: true });
      expect(ro.readAt(100, 3)).toEqual(Buffer.from([1, 2, 3]));
      expect(ro.readAt(0, 8).readBigUInt64LE(0)).toBe(0x1122334455667788n);
      expect(() => ro.writeAt(100, Buffer.from([9]))).toThrow(expect.objectContaining({ code: 'FARMLB_E_BPF_MAP', errno: 1 }));
      ro.close();
    } finally {
      obj.unpinMaps(dir);
    }
    hot.writeAt(0, Buffer.alloc(16));
    hot.writeAt(100, Buffer.alloc(3));
    hot.close();
  });

  it('pins every map, replaces existing pins, adopts them on the next load and unpins', async () => {
    const dir = join(PIN_ROOT, 'pins');
    obj.pinMaps(dir);
    obj.pinMaps(dir); // existing pins are replaced, not an error
    expect(readdirSync(dir).sort()).toEqual(Object.keys(MAP_SHAPES).sort());

    const pinned = native.openPinnedMap(join(dir, 'farmlb_bucket_stats'));
    expect(pinned.name).toBe('farmlb_bucket_stats'); // the full name, not the kernel's 15 characters
    expect(pinned.maxEntries).toBe(MAP_SHAPES.farmlb_bucket_stats.maxEntries);
    pinned.close();

    // The hot tables are global data (not in .maps), pinned and adopted like the maps.
    const hot = obj.map('farmlb_hot');
    hot.storeU64(0, 123456789n);
    hot.close();
    const again = await native.openObject(objectPath, { reusePinDir: dir });
    try {
      expect([...again.reusedMaps].sort()).toEqual(Object.keys(MAP_SHAPES).sort());
      const hot2 = again.map('farmlb_hot');
      expect(hot2.readAt(0, 8).readBigUInt64LE(0)).toBe(123456789n);
      hot2.storeU64(0, 0n);
      hot2.close();
    } finally {
      again.close();
    }

    obj.unpinMaps(dir);
    obj.unpinMaps(dir); // absent pins are not an error
    expect(existsSync(dir)).toBe(false);
    expect(() => native.openPinnedMap(join(dir, 'farmlb_hot'))).toThrow(
      expect.objectContaining({ code: 'FARMLB_E_BPF_PIN', errno: 2 }),
    );
  });

  it('runs the program through BPF_PROG_TEST_RUN and reports a verdict and a duration', async () => {
    const frame = tcpFrame([198, 51, 100, 1], 80); // not a VIP
    const run = await obj.testRun('farmlb_xdp', frame, 1000);
    expect(run.retval).toBe(XDP_PASS);
    expect(run.durationNs).toBeGreaterThan(0);
    expect(run.dataOut).toEqual(frame);
    const many = await obj.testRunMany('farmlb_xdp', [frame, frame, tcpFrame([198, 51, 100, 2], 22)]);
    expect(many.map((r) => r.retval)).toEqual([XDP_PASS, XDP_PASS, XDP_PASS]);
    await expect(obj.testRun('farmlb_xdp', Buffer.alloc(5))).rejects.toMatchObject({
      code: 'FARMLB_E_BPF_TEST_RUN',
      errno: 22,
    });
  });

  it('throws a refused object with code, errno and the verifier log in the message', async () => {
    const src = join(work, 'oob.bpf.c');
    writeFileSync(
      src,
      `#include <linux/bpf.h>
#define SEC(n) __attribute__((section(n), used))
SEC("xdp") int oob(struct xdp_md *ctx)
{
	unsigned char *data = (unsigned char *)(long)ctx->data;
	return data[100]; /* never checked against data_end */
}
char LICENSE[] SEC("license") = "GPL";
`,
    );
    const arch = execFileSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).trim();
    const out = join(work, 'oob.bpf.o');
    execFileSync('clang', ['-O2', '-g', '-target', 'bpf', `-I/usr/include/${arch}`, '-c', src, '-o', out]);
    const err = await native.openObject(out).then(
      () => undefined,
      (e: unknown) => e as { code: string; errno: number; syscall: string; message: string },
    );
    expect(err).toMatchObject({ code: 'FARMLB_E_BPF_LOAD', errno: 13, syscall: 'bpf_object__load' });
    expect(err!.message).toContain('Permission denied');
    expect(err!.message).toContain('BEGIN PROG LOAD LOG');
    expect(err!.message).toMatch(/invalid access to packet/);
  });

  it('throws a missing object file as FARMLB_E_BPF_OPEN with ENOENT', async () => {
    await expect(native.openObject(join(work, 'absent.bpf.o'))).rejects.toMatchObject({
      code: 'FARMLB_E_BPF_OPEN',
      errno: 2,
    });
  });

  it('hands libbpf messages to the registered log callback on the JS thread', async () => {
    const lines: string[] = [];
    native.setLogCallback((_level, msg) => lines.push(msg));
    const o = await native.openObject(objectPath);
    o.close();
    await new Promise((r) => setTimeout(r, 20));
    native.setLogCallback(null);
    expect(lines.join('')).toContain('farmlb');
  });

  it('throws an unknown interface name as FARMLB_E_XDP_NO_IFACE', () => {
    expect(() => native.ifindex('flbnope0')).toThrow(expect.objectContaining({ code: 'FARMLB_E_XDP_NO_IFACE' }));
  });

  it('reads CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns', () => {
    const a = native.monotonicNs();
    const b = native.monotonicNs();
    expect(typeof a).toBe('bigint');
    expect(b >= a).toBe(true);
  });

  it('attaches natively to a veth, falls back to generic on loopback, and detaches only its own program', () => {
    spawnSync('ip', ['netns', 'del', NETNS]);
    execFileSync('ip', ['netns', 'add', NETNS]);
    execFileSync('ip', ['-n', NETNS, 'link', 'add', 'flbv0', 'type', 'veth', 'peer', 'name', 'flbv1']);
    for (const dev of ['lo', 'flbv0', 'flbv1']) execFileSync('ip', ['-n', NETNS, 'link', 'set', dev, 'up']);
    // A child in the namespace: nsenter --net keeps the host's bpffs and /sys (LAB-NOTES).
    const child = join(work, 'attach-child.cjs');
    writeFileSync(
      child,
      `const n = require(${JSON.stringify(join(repoRoot(), 'build/Release/farmlb_native.node'))});
(async () => {
  const a = await n.openObject(${JSON.stringify(objectPath)});
  const b = await n.openObject(${JSON.stringify(objectPath)});
  const idA = a.programId('farmlb_xdp'), idB = b.programId('farmlb_xdp');
  const lo = n.ifindex('lo'), veth = n.ifindex('flbv0');
  const out = { idA, idB };
  out.lo = await n.xdpAttach(lo, a.programFd('farmlb_xdp'), { mode: 'auto' });
  out.loQuery = n.xdpQuery(lo);
  try { await n.xdpAttach(lo, a.programFd('farmlb_xdp'), { mode: 'native' }); } catch (e) { out.loNativeErr = { code: e.code, errno: e.errno }; }
  out.loNotOurs = await n.xdpDetach(lo, { expectedProgId: idB });
  out.loOurs = await n.xdpDetach(lo, { expectedProgId: idA });
  out.loAfter = n.xdpQuery(lo);
  out.veth = await n.xdpAttach(veth, a.programFd('farmlb_xdp'), { mode: 'auto' });
  try { await n.xdpAttach(veth, b.programFd('farmlb_xdp'), { mode: 'native', replaceProgId: idB }); } catch (e) { out.staleSwapErr = { code: e.code, errno: e.errno }; }
  out.swap = await n.xdpAttach(veth, b.programFd('farmlb_xdp'), { mode: 'native', replaceProgId: idA });
  out.vethQuery = n.xdpQuery(veth);
  out.vethDetach = await n.xdpDetach(veth);
  out.vethAfter = n.xdpQuery(veth);
  a.close(); b.close();
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { process.stderr.write(String((e && e.stack) || e)); process.exit(1); });
`,
    );
    const res = spawnSync('nsenter', [`--net=/run/netns/${NETNS}`, process.execPath, child], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(res.status, res.stderr).toBe(0);
    const r = JSON.parse(res.stdout) as Record<string, unknown> & { idA: number; idB: number };
    // Loopback has no native XDP: 'auto' lands in generic mode and says why.
    expect(r.lo).toMatchObject({ mode: 'generic', fallbackReason: expect.stringMatching(/native mode failed/) });
    expect(r.loQuery).toEqual({ progId: r.idA, mode: 'generic' });
    expect(r.loNativeErr).toMatchObject({ code: 'FARMLB_E_XDP_ATTACH' });
    expect(r.loNotOurs).toBe(false);
    expect(r.loOurs).toBe(true);
    expect(r.loAfter).toEqual({ progId: 0, mode: 'none' });
    expect(r.veth).toEqual({ mode: 'native' });
    // XDP_FLAGS_REPLACE: a swap naming the wrong current program is refused.
    expect(r.staleSwapErr).toMatchObject({ code: 'FARMLB_E_XDP_ATTACH', errno: 17 });
    expect(r.swap).toEqual({ mode: 'native' });
    expect(r.vethQuery).toEqual({ progId: r.idB, mode: 'native' });
    expect(r.vethDetach).toBe(true);
    expect(r.vethAfter).toEqual({ progId: 0, mode: 'none' });
  });
});

describePrivileged('XdpDataplane over the loaded program (root)', () => {
  const pinDir = join(PIN_ROOT, 'dataplane');
  let dp: XdpDataplane;
  let native: Native;

  beforeAll(async () => {
    native = loadNative();
    ensureBpffs();
    dp = await XdpDataplane.open({ pinDir });
  });

  afterAll(async () => {
    if (dp) {
      dp.unpin();
      await dp.close();
    }
    rmSync(PIN_ROOT, { recursive: true, force: true });
  });

  function slotsOf(map: MapName): number[] {
    const m = native.openPinnedMap(join(pinDir, map), { readOnly: true });
    try {
      return m
        .keys()
        .map((k) => (map === 'farmlb_vips' ? decodeVipKey(k).slot : decodeRuleKey(k).slot))
        .sort();
    } finally {
      m.close();
    }
  }

  it('applies tables to the inactive slot and then flips the active slot', async () => {
    const lease = native.monotonicNs() + 60_000_000_000n;
    await dp.setLease(lease);
    const before = dp.activeSlot();
    await dp.apply(tables(0));
    expect(dp.activeSlot()).toBe(1 - before);
    expect((await dp.testRun(tcpFrame([10, 0, 0, 1], 80))).retval).toBe(XDP_PASS);
    await dp.apply(tables(NODE_NONE));
    expect(dp.activeSlot()).toBe(before);
    expect((await dp.testRun(tcpFrame([10, 0, 0, 1], 80))).retval).toBe(XDP_DROP);
    // The flip kept the lease.
    const reader = XdpDataplane.readPinned(pinDir);
    try {
      expect(reader.lease().deadlineNs).toBe(lease);
    } finally {
      reader.close();
    }
  });

  it('applies bucket-only changes with applyBuckets (the differing bucket entries, alternating slots), and both slots read back exactly what was applied', async () => {
    const read = (): DataplaneTables => {
      const reader = XdpDataplane.readPinned(pinDir);
      try {
        return reader.activeTables();
      } finally {
        reader.close();
      }
    };
    const withBuckets = (t: DataplaneTables, change: (row: number[], prev: number[]) => void): DataplaneTables => {
      const row = [...t.buckets[0]!];
      const prev = [...(t.prevOwners?.[0] ?? new Array<number>(256).fill(NODE_NONE))];
      change(row, prev);
      const handover = prev.some((p) => p !== NODE_NONE);
      return { ...t, buckets: [row], ...(handover ? { prevOwners: [prev] } : { prevOwners: undefined }) };
    };
    // Two full writes give both slots a known content; every later applyBuckets rewrites
    // the buckets that differ, alternating slots (the first one after an apply rewrites its
    // slot whole: that slot still holds the configuration before the apply).
    let t = tables(0);
    await dp.apply(t);
    await dp.apply(tables(1));
    const steps: ((row: number[], prev: number[]) => void)[] = [
      (row, prev) => { row[5] = 2; prev[5] = 0; },
      (row, prev) => { row[5] = 2; prev[5] = NODE_NONE; row[200] = NODE_NONE; },
      (row) => { for (let b = 0; b < 256; b += 3) row[b] = 3; },
      (row, prev) => { row.fill(1); prev[9] = 2; },
      (row, prev) => { prev.fill(NODE_NONE); },
    ];
    for (const step of steps) {
      t = withBuckets(t, step);
      await dp.applyBuckets(t.buckets, t.prevOwners);
      const got = read();
      expect(got).toMatchObject({ hashSeed: 7, vips: [{ addr: '10.0.0.1' }] });
      expect(got.buckets[0]).toEqual(t.buckets[0]);
      expect(got.prevOwners?.[0] ?? null).toEqual(t.prevOwners?.[0] ?? null);
      expect(dp.tables()!.buckets[0]).toEqual(t.buckets[0]);
    }
    const bad = [[...t.buckets[0]!]];
    bad[0]![7] = 64; // node ids stop at 63
    const slot = dp.activeSlot();
    await expect(dp.applyBuckets(bad)).rejects.toMatchObject({ code: 'FARMLB_E_DATAPLANE_TABLE_INVALID' });
    expect(dp.activeSlot()).toBe(slot);
    expect(read().buckets[0]).toEqual(t.buckets[0]);
    // Another VIP set: a full write of the slot.
    const other = { ...tables(2, 9), vips: [{ ...tables(2).vips[0]!, addr: '10.0.0.2', addrBytes: vipBytes(10, 0, 0, 2) }] };
    await dp.apply(other);
    expect(read()).toMatchObject({ hashSeed: 9, vips: [{ addr: '10.0.0.2' }], buckets: [other.buckets[0]] });
    await dp.apply(tables(0));
    expect(read()).toMatchObject({ hashSeed: 7, vips: [{ addr: '10.0.0.1' }], buckets: [tables(0).buckets[0]] });
  });

  it('writes the lease at once, also while an install is under way, and the install\'s flip keeps it', async () => {
    // docs/membership.md, "Lease writes during an install": a renewal does not wait for applyBuckets.
    const leaseNow = () => {
      const reader = XdpDataplane.readPinned(pinDir);
      try {
        return reader.lease();
      } finally {
        reader.close();
      }
    };
    await dp.apply(tables(0));
    const slot = dp.activeSlot();
    const installing = dp.applyBuckets(tables(1).buckets);
    const lease = native.monotonicNs() + 60_000_000_000n;
    void dp.setLease(lease);
    // Written before the install's flip: the program reads it with the table being replaced.
    expect(leaseNow()).toMatchObject({ deadlineNs: lease, activeSlot: slot });
    await installing;
    expect(leaseNow()).toMatchObject({ deadlineNs: lease, activeSlot: 1 - slot });
    expect(dp.tables()!.buckets[0]).toEqual(tables(1).buckets[0]);
  });

  it('rejects an invalid table before any write, leaving both slots as they were', async () => {
    await dp.apply(tables(0, 11));
    const slot = dp.activeSlot();
    const vipSlots = slotsOf('farmlb_vips');
    const ruleSlots = slotsOf('farmlb_rules');
    const bad = tables(0, 12);
    bad.buckets[0]![5] = 64; // node ids stop at 63
    await expect(dp.apply(bad)).rejects.toMatchObject({ code: 'FARMLB_E_DATAPLANE_TABLE_INVALID' });
    expect(dp.activeSlot()).toBe(slot);
    expect(slotsOf('farmlb_vips')).toEqual(vipSlots);
    expect(slotsOf('farmlb_rules')).toEqual(ruleSlots);
    expect(dp.tables()!.hashSeed).toBe(11);
    const reader = XdpDataplane.readPinned(pinDir);
    try {
      expect(reader.activeTables()).toEqual(tables(0, 11));
    } finally {
      reader.close();
    }
  });

  it('accepts owned traffic before the lease deadline and drops it once the deadline is LEASE_CLOCK_SLACK_NS past, even with the lease clock cached', async () => {
    await dp.apply(tables(0));
    const frame = tcpFrame([10, 0, 0, 1], 80);
    for (let i = 0; i < 20; i++) {
      // The coarse clock never runs ahead of CLOCK_MONOTONIC: a deadline 1 s away is valid.
      await dp.setLease(native.monotonicNs() + 1_000_000_000n);
      expect((await dp.testRun(frame, 100)).retval, `round ${i}, lease 1 s ahead`).toBe(XDP_PASS);
      // The run above left a fresh reading in this CPU's farmlb_lease_clock; a deadline one
      // slack in the past must drop even so.
      await dp.setLease(native.monotonicNs() - BigInt(LEASE_CLOCK_SLACK_NS));
      expect((await dp.testRun(frame, 100)).retval, `round ${i}, lease ${LEASE_CLOCK_SLACK_NS} ns past`).toBe(XDP_DROP);
    }
    await dp.setLease(native.monotonicNs() + 60_000_000_000n); // as the tests below expect
  });

  it('counts verdicts per reason and per bucket, summed over CPUs', async () => {
    await dp.apply(tables(0));
    const before = await dp.reasonCounters();
    await dp.testRun(tcpFrame([10, 0, 0, 1], 80), 10);
    const after = await dp.reasonCounters();
    expect(after.pass_owned.packets - before.pass_owned.packets).toBe(10n);
    const buckets = await dp.bucketCounters();
    expect(buckets.length).toBe(1);
    expect(buckets[0]!.reduce((sum, b) => sum + b.accepted, 0n)).toBeGreaterThanOrEqual(10n);
  });

  it('refuses to read pins whose shape differs from the ABI, naming the map', () => {
    const odd = join(PIN_ROOT, 'odd');
    rmSync(odd, { recursive: true, force: true });
    // Same maps, but farmlb_rules pinned under the name farmlb_hot.
    const pinnedDp = pinDir;
    renameSync(join(pinnedDp, 'farmlb_hot'), join(PIN_ROOT, 'hot-aside'));
    try {
      renameSync(join(pinnedDp, 'farmlb_rules'), join(pinnedDp, 'farmlb_hot'));
      expect(() => XdpDataplane.readPinned(pinnedDp)).toThrow(
        expect.objectContaining({ code: 'FARMLB_E_DATAPLANE_PIN_MISMATCH', message: expect.stringContaining('farmlb_hot') }),
      );
      renameSync(join(pinnedDp, 'farmlb_hot'), join(pinnedDp, 'farmlb_rules'));
    } finally {
      renameSync(join(PIN_ROOT, 'hot-aside'), join(pinnedDp, 'farmlb_hot'));
    }
    expect(() => XdpDataplane.readPinned(odd)).toThrow(expect.objectContaining({ code: 'FARMLB_E_DATAPLANE_NOT_PINNED' }));
  });

  it('closes idempotently and refuses use afterwards, leaving the pins for the next daemon', async () => {
    const other = await XdpDataplane.open({ pinDir, reusePins: true });
    expect([...other.reusedMaps].sort()).toEqual(Object.keys(MAP_SHAPES).sort());
    expect(other.tables()).toEqual(tables(0));
    await other.close();
    await other.close();
    await expect(other.apply(tables(0))).rejects.toMatchObject({ code: 'FARMLB_E_DATAPLANE_CLOSED' });
    expect(existsSync(join(pinDir, 'farmlb_hot'))).toBe(true);
  });
});
