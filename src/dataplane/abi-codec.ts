// One field table per ABI struct, and the encoder and decoder read from it: a table lists
// every C field of the struct in bpf/farmlb_abi.h (padding included) with its offset, size,
// byte order and the TS property it carries, so the layout is written once on this side.
// The tables are checked against the compiled object's BTF (abi-check.ts); abi.ts holds them.
//
// Byte order: 'host' is the CPU's order (the addon and the program share the machine),
// 'network' is big-endian as on the wire, 'bytes' is a byte array copied as is.

import { endianness } from 'node:os';

export type ByteOrder = 'host' | 'network' | 'bytes';

/** Where a field lives, as the BTF check compares it. */
export interface FieldSpec {
  offset: number;
  size: number;
  order: ByteOrder;
}

export interface StructSpec {
  size: number;
  fields: Record<string, FieldSpec>;
}

/** A field of a table: its place, and how its TS property (`prop`) is written and read. */
export type FieldDef<P extends string = string> =
  | (FieldSpec & { kind: 'uint'; prop: P }) // 1, 2 or 4 bytes: number (undefined writes 0)
  | (FieldSpec & { kind: 'u64'; prop: P }) // 8 bytes: bigint
  | (FieldSpec & { kind: 'bool'; prop: P }) // 1 byte: boolean
  | (FieldSpec & { kind: 'bytes'; prop: P }) // a byte array, at most `size` bytes written
  | (FieldSpec & { kind: 'struct'; prop: P; codec: StructCodec<object> }) // a nested struct
  | (FieldSpec & { kind: 'layout' }); // padding, or a member no codec writes (read where it is used)

const HOST_LE = endianness() === 'LE';

export const uint = <P extends string>(offset: number, size: 1 | 2 | 4, prop: P, order: 'host' | 'network' = 'host') =>
  ({ kind: 'uint', offset, size, order, prop }) as const;
export const u64 = <P extends string>(offset: number, prop: P) => ({ kind: 'u64', offset, size: 8, order: 'host', prop }) as const;
export const bool = <P extends string>(offset: number, prop: P) => ({ kind: 'bool', offset, size: 1, order: 'host', prop }) as const;
export const bytes = <P extends string>(offset: number, size: number, prop: P) =>
  ({ kind: 'bytes', offset, size, order: 'bytes', prop }) as const;
export const nested = <P extends string, T extends object>(offset: number, codec: StructCodec<T>, prop: P) =>
  ({ kind: 'struct', offset, size: codec.size, order: 'bytes', prop, codec: codec as StructCodec<object> }) as const;
/** Padding, or a member other code addresses itself (arrays of structs in the hot tables, inline ports). */
export const layout = (offset: number, size: number, order: ByteOrder = 'bytes') => ({ kind: 'layout', offset, size, order }) as const;

export interface StructCodec<T extends object, C extends string = string> {
  readonly size: number;
  /** The table as the BTF check and the hot-table offsets read it. */
  readonly spec: { size: number; fields: Record<C, FieldSpec> };
  /** A new buffer of `size` bytes, or the value written at `at` into `into`. */
  encode(v: T, into?: Buffer, at?: number): Buffer;
  decode(buf: Buffer, at?: number): T;
}

function littleEndian(order: ByteOrder): boolean {
  return order === 'host' ? HOST_LE : false;
}

/**
 * The codec of one struct: `struct<Ctl>()(16, { lease_deadline_ns: u64(0, 'leaseDeadlineNs'), … })`.
 * Curried so that T is given and the C field names are inferred (spec.fields keeps them as keys).
 */
export function struct<T extends object>() {
  return <const F extends Record<string, FieldDef<Extract<keyof T, string>>>>(size: number, fields: F): StructCodec<T, Extract<keyof F, string>> => {
    const defs = Object.values(fields) as FieldDef[];
    for (const d of defs) {
      if (d.offset + d.size > size) throw new RangeError(`field at ${d.offset}+${d.size} is past the ${size}-byte struct`);
    }
    const spec = {
      size,
      fields: Object.fromEntries(
        Object.entries(fields).map(([c, d]) => [c, { offset: d.offset, size: d.size, order: d.order }]),
      ) as Record<Extract<keyof F, string>, FieldSpec>,
    };
    const encode = (v: T, into?: Buffer, base = 0): Buffer => {
      const buf = into ?? Buffer.alloc(size);
      const value = v as Record<string, unknown>;
      for (const d of defs) {
        const at = base + d.offset;
        switch (d.kind) {
          case 'uint': {
            const n = Number(value[d.prop] ?? 0);
            const u = d.size === 4 ? n >>> 0 : n;
            if (littleEndian(d.order)) buf.writeUIntLE(u, at, d.size);
            else buf.writeUIntBE(u, at, d.size);
            break;
          }
          case 'u64': {
            const n = BigInt((value[d.prop] as bigint | number | undefined) ?? 0n);
            if (HOST_LE) buf.writeBigUInt64LE(n, at);
            else buf.writeBigUInt64BE(n, at);
            break;
          }
          case 'bool':
            buf[at] = value[d.prop] ? 1 : 0;
            break;
          case 'bytes': {
            const b = (value[d.prop] as Uint8Array | undefined) ?? new Uint8Array(0);
            if (b.length > d.size) throw new RangeError(`${b.length} bytes do not fit a ${d.size}-byte field`);
            buf.set(b, at);
            break;
          }
          case 'struct':
            d.codec.encode(value[d.prop] as object, buf, at);
            break;
          case 'layout':
            break;
        }
      }
      return buf;
    };
    const decode = (buf: Buffer, base = 0): T => {
      const out: Record<string, unknown> = {};
      for (const d of defs) {
        const at = base + d.offset;
        switch (d.kind) {
          case 'uint':
            out[d.prop] = littleEndian(d.order) ? buf.readUIntLE(at, d.size) : buf.readUIntBE(at, d.size);
            break;
          case 'u64':
            out[d.prop] = HOST_LE ? buf.readBigUInt64LE(at) : buf.readBigUInt64BE(at);
            break;
          case 'bool':
            out[d.prop] = buf[at] !== 0;
            break;
          case 'bytes':
            out[d.prop] = Uint8Array.from(buf.subarray(at, at + d.size));
            break;
          case 'struct':
            out[d.prop] = d.codec.decode(buf, at);
            break;
          case 'layout':
            break;
        }
      }
      return out as T;
    };
    return { size, spec, encode, decode };
  };
}
