// The TS mirror of the ABI (ABI_STRUCTS in abi.ts) against the layouts the compiler gave a
// built object, read from its BTF by the addon (native/abi.cc, btfLayout). Which structs
// are ABI is read from the object too: the key and value types of its maps and the types of
// its global variables (the hot tables), and every struct those hold. So a struct added to a
// map in farmlb_abi.h without a mirror, a field moved, or an object built with other sizes
// (the header's overridable FARMLB_MAX_*) is a named mismatch, not a node writing garbage.
// test/unit/abi.test.ts runs it on bpf/build/farmlb.bpf.o; XdpDataplane runs it on the
// object it loads (as Cilium's pkg/alignchecker does at start).

import { ABI_STRUCTS, type StructSpec } from './abi.js';
import type { BtfLayout } from '../addon/native.js';

/** The struct names the object's maps and globals reach, sorted. */
export function abiStructNames(layout: BtfLayout): string[] {
  const roots = [
    ...Object.values(layout.maps).flatMap((m) => [m.key, m.value]),
    ...Object.values(layout.globals),
  ].filter((name): name is string => name !== undefined && name !== '');
  const seen = new Set<string>();
  const queue = [...roots];
  while (queue.length > 0) {
    const name = queue.pop()!;
    if (seen.has(name)) continue;
    seen.add(name);
    for (const field of Object.values(layout.structs[name]?.fields ?? {})) if (field.type) queue.push(field.type);
  }
  return [...seen].sort();
}

/** Every difference between the mirror and the object, one line each; empty when they agree. */
export function abiMismatches(layout: BtfLayout, mirror: Record<string, StructSpec> = ABI_STRUCTS): string[] {
  const out: string[] = [];
  const inObject = abiStructNames(layout);
  for (const name of inObject) if (!(name in mirror)) out.push(`struct ${name} is in the object's maps but not in src/dataplane/abi.ts`);
  for (const [name, spec] of Object.entries(mirror)) {
    const c = layout.structs[name];
    if (!c || !inObject.includes(name)) {
      out.push(`struct ${name} of src/dataplane/abi.ts is in none of the object's maps`);
      continue;
    }
    if (c.size !== spec.size) out.push(`sizeof(struct ${name}): object ${c.size}, mirror ${spec.size}`);
    for (const field of Object.keys(c.fields)) if (!(field in spec.fields)) out.push(`${name}.${field} is in the object, not in the mirror`);
    for (const [field, f] of Object.entries(spec.fields)) {
      const cf = c.fields[field];
      if (!cf) out.push(`${name}.${field} is in the mirror, not in the object`);
      else if (cf.offset !== f.offset || cf.size !== f.size || cf.bitfield)
        out.push(`${name}.${field}: object offset ${cf.offset} size ${cf.size}${cf.bitfield ? ' (bit field)' : ''}, mirror offset ${f.offset} size ${f.size}`);
    }
  }
  return out;
}
