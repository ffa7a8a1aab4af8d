// The TS mirror of bpf/farmlb_abi.h (src/dataplane/abi.ts) against the layouts the compiler
// gave the built object (its BTF, read by the addon's btfLayout) and the header's constants
// (the addon's abiConstants). Needs the built addon and bpf/build/farmlb.bpf.o, but no root.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ABI_CONSTANTS,
  ABI_STRUCTS,
  decodeCtl,
  decodeMacKey,
  decodeNode,
  decodeRequester,
  decodeRequesterKey,
  decodeVip,
  encodeMacKey,
  encodeNode,
  encodeRequester,
  encodeRequesterKey,
  encodeVip,
  decodeRuleKey,
  decodeRuleSpecKey,
  decodeSlotCfg,
  decodeVipDesc,
  decodeVipIndex,
  decodeVipKey,
  encodeCtl,
  encodeRuleKey,
  encodeRuleSpecKey,
  encodeSlotCfg,
  encodeVipDesc,
  encodeVipIndex,
  encodeVipKey,
  vipIndexOf,
  VIP_F_ANY_TCP,
  VIP_F_OVERFLOW_UDP,
  VIP_INDEX_MANY,
  VIP_INDEX_SIZE,
  VIP_INLINE_PORTS,
  formatAddr,
  sumPerCpuCounter,
} from '../../src/dataplane/abi.js';
import { nodeEntries, nodeMacEntries, vipDescEntries, validateTables } from '../../src/dataplane/map-entries.js';
import { abiMismatches, abiStructNames } from '../../src/dataplane/abi-check.js';
import { bpfObjectPath, loadNative, type Native } from '../../src/addon/native.js';
import { resolveRules, vipLayout } from '../../src/dataplane/rule-table.js';
import { XdpDataplane } from '../../src/dataplane/xdp.js';
import { bool, bytes, layout, struct, u64, uint } from '../../src/dataplane/abi-codec.js';
import type { DataplaneTables } from '../../src/dataplane/types.js';

function native(): Native {
  try {
    return loadNative();
  } catch (err) {
    throw new Error(`the native addon is needed for the ABI comparison: run scripts/setup.sh (${String(err)})`);
  }
}

describe('ABI mirror (src/dataplane/abi.ts vs the BTF of bpf/build/farmlb.bpf.o)', () => {
  const layout = () => {
    const object = bpfObjectPath();
    if (!existsSync(object)) throw new Error(`${object} is missing: run scripts/setup.sh (make -s -C bpf)`);
    return native().btfLayout(object);
  };

  it("mirrors exactly the structs the object's maps and hot tables hold", () => {
    expect(abiStructNames(layout())).toEqual(Object.keys(ABI_STRUCTS).sort());
  });

  for (const [name, spec] of Object.entries(ABI_STRUCTS)) {
    it(`gives struct ${name} the size and every field the offset and size the compiler gave it`, () => {
      const c = layout().structs[name];
      expect(c, `struct ${name} missing from the object's BTF`).toBeDefined();
      expect(spec.size, `sizeof(struct ${name})`).toBe(c!.size);
      expect(Object.keys(spec.fields).sort(), `fields of struct ${name}`).toEqual(Object.keys(c!.fields).sort());
      for (const [field, f] of Object.entries(spec.fields)) {
        expect({ offset: f.offset, size: f.size }, `${name}.${field}`).toEqual({ offset: c!.fields[field]!.offset, size: c!.fields[field]!.size });
      }
    });
  }

  it('finds no mismatch in the object (the check XdpDataplane makes before loading)', () => {
    expect(abiMismatches(layout())).toEqual([]);
  });

  it('names a moved field, a resized struct and an unmirrored map value', () => {
    const l = structuredClone(layout());
    l.structs.farmlb_vip!.fields.mode!.offset = 4;
    l.structs.farmlb_bucket!.size = 8;
    l.structs.farmlb_extra = { size: 4, fields: { x: { offset: 0, size: 4 } } };
    l.maps.farmlb_extra = { key: '', value: 'farmlb_extra' };
    expect(abiMismatches(l)).toEqual([
      'struct farmlb_extra is in the object\'s maps but not in src/dataplane/abi.ts',
      'farmlb_vip.mode: object offset 4 size 1, mirror offset 3 size 1',
      'sizeof(struct farmlb_bucket): object 8, mirror 4',
    ]);
  });

  it('makes XdpDataplane refuse an object whose layouts differ, before anything is loaded', async () => {
    const real = native();
    const l = structuredClone(layout());
    l.structs.farmlb_vip!.fields.mode!.offset = 4;
    let opened = false;
    const fake: Native = {
      ...real,
      btfLayout: () => l,
      openObject: async () => {
        opened = true;
        throw new Error('openObject must not be reached');
      },
    };
    await expect(XdpDataplane.open({ native: fake })).rejects.toMatchObject({
      code: 'FARMLB_E_BPF_ABI_MISMATCH',
      message: expect.stringContaining('farmlb_vip.mode: object offset 4 size 1, mirror offset 3 size 1'),
    });
    expect(opened).toBe(false);
  });

  it('has every constant of the header with the same value', () => {
    const c = native().abiConstants;
    expect(Object.keys(ABI_CONSTANTS).sort()).toEqual(Object.keys(c).sort());
    for (const [name, value] of Object.entries(c)) expect(ABI_CONSTANTS[name], name).toBe(value);
  });
});

describe('ABI encoders', () => {
  it('writes the rule spec port in network order and the VIP id in host order', () => {
    const key = encodeRuleSpecKey({ slot: 1, proto: 6, port: 80, vipId: 3 });
    expect([...key]).toEqual([1, 6, 0x00, 0x50, 3, 0, 0, 0]);
    expect(decodeRuleSpecKey(key)).toEqual({ slot: 1, proto: 6, port: 80, vipId: 3 });
  });

  it('keys the resolved rule table by family, protocol, network-order port and VIP address', () => {
    const addr = new Uint8Array(16);
    addr.set([10, 0, 0, 100]);
    const key = encodeRuleKey({ slot: 1, family: 4, proto: 17, port: 53, addr });
    expect([...key]).toEqual([1, 4, 17, 0, 0x00, 0x35, 0, 0, 10, 0, 0, 100, ...new Array<number>(12).fill(0)]);
    expect(decodeRuleKey(key)).toEqual({ slot: 1, family: 4, proto: 17, port: 53, addr });
  });

  it('indexes each VIP by the last two bytes of its address, IPv4 and IPv6 alike, and marks shared entries MANY', () => {
    const v4 = new Uint8Array(16);
    v4.set([10, 0, 0x01, 0x64]);
    const v6 = new Uint8Array(16);
    v6.set([0x20, 0x01, 0x0d, 0xb8]);
    v6[14] = 0xf1;
    v6[15] = 0x00;
    expect(vipIndexOf(4, v4)).toBe(0x164);
    // 0xf100 & 4095: the high bits fall off, so different VIPs may share an entry.
    expect(vipIndexOf(6, v6)).toBe(0x100);
    const v4b = new Uint8Array(16);
    v4b.set([10, 9, 0xf1, 0x00]); // same entry as v6, other family
    const vip = (id: number, family: 4 | 6, addrBytes: Uint8Array) =>
      ({ id, family, addr: `vip${id}`, addrBytes, icmpGroup: 0, arpGroup: 0xff, mode: 'vmac_invisible' }) as const;
    const layout = vipLayout([vip(0, 4, v4), vip(1, 6, v6), vip(2, 4, v4b)], []);
    const buf = encodeVipIndex(layout.index);
    expect(buf.length).toBe(VIP_INDEX_SIZE);
    const back = decodeVipIndex(buf);
    expect(back[0x164]).toBe(1); // descriptor 0
    expect(back[0x100]).toBe(VIP_INDEX_MANY);
    expect(back.filter((e) => e !== 0).length).toBe(2);
  });

  it('lays a VIP descriptor out as the header does: address, family, flags, the VIP, "any port" rules and network-order ports', () => {
    const addr = new Uint8Array(16);
    addr.set([10, 0, 0, 100]);
    const desc = {
      family: 4 as const,
      addr,
      flags: VIP_F_ANY_TCP | VIP_F_OVERFLOW_UDP,
      vip: { vipId: 3, icmpGroup: 1, mode: 1, arpGroup: 2 },
      anyPort: [
        { group: 4, criterion: 1, mode: 1 },
        { group: 0, criterion: 0, mode: 0 },
      ] as [{ group: number; criterion: number; mode: number }, { group: number; criterion: number; mode: number }],
      ports: [{ port: 443, proto: 6, rule: { group: 5, criterion: 2, mode: 1 } }],
    };
    const buf = encodeVipDesc(desc);
    expect(buf.length).toBe(ABI_STRUCTS.farmlb_vip_desc.size);
    expect([...buf.subarray(0, 36)]).toEqual([
      10, 0, 0, 100, ...new Array<number>(12).fill(0),
      4, VIP_F_ANY_TCP | VIP_F_OVERFLOW_UDP, 1, 0,
      3, 0, 1, 1, 2, 0, 0, 0,
      4, 1, 1, 0, 0, 0, 0, 0,
    ]);
    expect([...buf.subarray(36, 44)]).toEqual([0x01, 0xbb, 6, 0, 5, 2, 1, 0]);
    expect(decodeVipDesc(buf)).toEqual(desc);
  });

  it('writes every descriptor of the slot, unused ones zeroed, keyed slot * MAX_VIPS + k', () => {
    const addr = new Uint8Array(16);
    addr.set([10, 0, 0, 100]);
    const vips = [{ id: 0, family: 4 as const, addr: '10.0.0.100', addrBytes: addr, icmpGroup: 0, arpGroup: 0xff, mode: 'vmac_invisible' as const }];
    const rules = Array.from({ length: VIP_INLINE_PORTS + 2 }, (_, i) => ({ proto: 6 as const, port: 1000 + i, vipId: 0, group: 0, criterion: 0 as const }));
    const entries = vipDescEntries(1, vipLayout(vips, resolveRules(vips, rules)));
    expect(entries).toHaveLength(64);
    expect(entries[0]!.key.readUInt32LE(0)).toBe(64);
    const d = decodeVipDesc(entries[0]!.value);
    expect(d.ports.map((p) => p.port)).toEqual(Array.from({ length: VIP_INLINE_PORTS }, (_, i) => 1000 + i));
    expect(d.flags).toBe(0x04); // OVERFLOW_TCP: ports 1008 and 1009 live in farmlb_rules only
    expect(decodeVipDesc(entries[1]!.value).family).toBe(0);
  });

  it('round-trips ctl, slot config and VIP keys', () => {
    const ctl = { leaseDeadlineNs: 0x0123456789abcdefn, activeSlot: 1, ifaceGen: 0xfffffffe };
    expect(decodeCtl(encodeCtl(ctl))).toEqual(ctl);
    const cfg = { hashSeed: 0xdeadbeef, selfNode: 2, vmac: Uint8Array.from([0x5a, 0xfe, 10, 0, 0, 1]) };
    expect(decodeSlotCfg(encodeSlotCfg(cfg))).toEqual(cfg);
    const addr = new Uint8Array(16);
    addr.set([192, 168, 1, 10]);
    const vk = { slot: 0, family: 4 as const, addr };
    expect(decodeVipKey(encodeVipKey(vk))).toEqual(vk);
  });

  it('round-trips the VIP value with its arp group, node entries, MAC keys and requesters', () => {
    const vip = { vipId: 7, icmpGroup: 1, mode: 1, arpGroup: 3 };
    expect([...encodeVip(vip)]).toEqual([7, 0, 1, 1, 3, 0, 0, 0]);
    expect(decodeVip(encodeVip(vip))).toEqual(vip);
    const mac = Uint8Array.from([2, 0, 0, 0, 0, 0x11]);
    expect(decodeNode(encodeNode({ mac, flags: 1 }))).toEqual({ mac, flags: 1 });
    expect([...encodeMacKey({ slot: 1, mac })]).toEqual([1, 0, 2, 0, 0, 0, 0, 0x11]);
    expect(decodeMacKey(encodeMacKey({ slot: 1, mac }))).toEqual({ slot: 1, mac });
    const addr = new Uint8Array(16);
    addr.set([192, 0, 2, 1]);
    expect(decodeRequesterKey(encodeRequesterKey({ family: 4, addr }))).toEqual({ family: 4, addr });
    const req = { lastSeenNs: 123456789n, mac, group: 2, bucket: 200, vipId: 9 };
    expect(decodeRequester(encodeRequester(req))).toEqual(req);
  });

  it('writes a farmlb_nodes entry for every node id of the slot, known ones flagged, and a MAC key per known node', () => {
    const entries = nodeEntries(1, ['02:00:00:00:00:10', null, '02:00:00:00:00:12']);
    expect(entries).toHaveLength(64);
    expect(entries.map((e) => decodeNode(e.value).flags).slice(0, 4)).toEqual([1, 0, 1, 0]);
    expect(entries[0]!.key.readUInt32LE(0)).toBe(64);
    const macs = nodeMacEntries(1, ['02:00:00:00:00:10', null, '02:00:00:00:00:12']);
    expect(macs.map((e) => [decodeMacKey(e.key).mac[5], e.value[0]])).toEqual([
      [0x10, 0],
      [0x12, 2],
    ]);
  });

  it('sums a per-CPU counter over every possible CPU at an 8-byte stride', () => {
    const buf = Buffer.alloc(3 * 16);
    for (let cpu = 0; cpu < 3; cpu++) {
      buf.writeBigUInt64LE(BigInt(cpu + 1), cpu * 16);
      buf.writeBigUInt64LE(BigInt(100 * (cpu + 1)), cpu * 16 + 8);
    }
    expect(sumPerCpuCounter(buf, 3)).toEqual({ packets: 6n, bytes: 600n });
    expect(() => sumPerCpuCounter(buf, 2)).toThrow(RangeError);
  });

  it('formats IPv6 VIP addresses in RFC 5952 form', () => {
    const a = new Uint8Array(16);
    a.set([0x20, 0x01, 0x0d, 0xb8]);
    a[15] = 1;
    expect(formatAddr(6, a)).toBe('2001:db8::1');
    expect(formatAddr(6, new Uint8Array(16))).toBe('::');
  });
});

describe('table validation against the ABI limits', () => {
  const base = (): DataplaneTables => ({
    hashSeed: 1,
    selfNode: 0,
    vmac: '5a:fe:0a:00:00:01',
    vips: [],
    rules: [],
    buckets: [new Array<number>(256).fill(0)],
    nodeMacs: [],
  });

  it('accepts a well-formed table', () => {
    expect(() => validateTables(base())).not.toThrow();
  });

  it('rejects a bucket row that is not 256 long, a node id of 64 and too many groups', () => {
    const short = base();
    short.buckets[0] = [0];
    expect(() => validateTables(short)).toThrow(expect.objectContaining({ code: 'FARMLB_E_DATAPLANE_TABLE_INVALID' }));
    const badNode = base();
    badNode.buckets[0]![7] = 64;
    expect(() => validateTables(badNode)).toThrow(/owner 64/);
    const groups = base();
    groups.buckets = Array.from({ length: 17 }, () => new Array<number>(256).fill(0xff));
    expect(() => validateTables(groups)).toThrow(/17 groups/);
  });

  it('rejects an arp group out of range, a malformed node MAC and two nodes with one MAC', () => {
    const t = base();
    t.vips = [{ id: 0, family: 4, addr: '10.0.0.1', addrBytes: new Uint8Array(16), icmpGroup: 0, arpGroup: 16, mode: 'vmac_directed' }];
    expect(() => validateTables(t)).toThrow(/arp group 16/);
    const macs = base();
    macs.nodeMacs = ['02:00:00:00:00:01', 'nope'];
    expect(() => validateTables(macs)).toThrow(/node 1: MAC "nope"/);
    macs.nodeMacs = ['02:00:00:00:00:01', null, '02:00:00:00:00:01'];
    expect(() => validateTables(macs)).toThrow(/nodes 0 and 2 have the same MAC/);
  });

  it('rejects a rule naming a VIP the table does not have, and duplicate rules', () => {
    const t = base();
    t.rules = [{ proto: 6, port: 80, vipId: 5, group: 0, criterion: 0 }];
    expect(() => validateTables(t)).toThrow(/no VIP with id 5/);
    t.rules = [
      { proto: 6, port: 80, vipId: 0xffff, group: 0, criterion: 0 },
      { proto: 6, port: 80, vipId: 0xffff, group: 0, criterion: 1 },
    ];
    expect(() => validateTables(t)).toThrow(/twice/);
  });
});

describe('ABI field tables (src/dataplane/abi-codec.ts)', () => {
  interface Sample {
    a: number;
    port: number;
    big: bigint;
    mac: Uint8Array;
    on: boolean;
  }
  const SAMPLE = struct<Sample>()(24, {
    a: uint(0, 4, 'a'),
    port: uint(4, 2, 'port', 'network'),
    _pad0: layout(6, 2),
    big: u64(8, 'big'),
    mac: bytes(16, 6, 'mac'),
    on: bool(22, 'on'),
    _pad1: layout(23, 1),
  });

  it('encodes and decodes every field from the one table, network-order ports big-endian, at an offset too', () => {
    const v = { a: 0xfffffffe, port: 443, big: 1n << 40n, mac: Uint8Array.from([1, 2, 3, 4, 5, 6]), on: true };
    const buf = SAMPLE.encode(v);
    expect(buf.length).toBe(24);
    expect([...buf.subarray(4, 6)]).toEqual([0x01, 0xbb]);
    expect(SAMPLE.decode(buf)).toEqual(v);
    const bigger = Buffer.alloc(40);
    SAMPLE.encode(v, bigger, 16);
    expect(SAMPLE.decode(bigger, 16)).toEqual(v);
    expect(SAMPLE.spec.fields.port).toEqual({ offset: 4, size: 2, order: 'network' });
  });

  it('refuses a table whose field runs past the struct, and bytes longer than their field', () => {
    expect(() => struct<{ x: number }>()(2, { x: uint(0, 4, 'x') })).toThrow(RangeError);
    expect(() => SAMPLE.encode({ a: 0, port: 0, big: 0n, mac: new Uint8Array(7), on: false })).toThrow(RangeError);
  });
});
