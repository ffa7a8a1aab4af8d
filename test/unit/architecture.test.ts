// The rooms of docs/architecture.md, enforced: every relative import under src/ is read (as
// text: the import lines are simple), each file's room is the first directory under src/
// ('' for src/*.ts), and an import into another room must be one the table allows. Run-time
// imports (not `import type`) between files must form no circle: a circle makes module
// initialisation order matter, and it is how the data plane and the farm's vocabulary once
// depended on each other.

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const src = path.join(root, 'src');

/** docs/architecture.md, "may import" ('' = src/*.ts: errors, log, paths, version). */
const MAY_IMPORT: Record<string, readonly string[]> = {
  '': [],
  config: [''],
  balance: ['', 'config'],
  addon: [''],
  membership: ['', 'config', 'balance', 'addon'],
  dataplane: ['', 'config', 'balance', 'addon'],
  net: ['', 'config', 'balance', 'addon', 'dataplane'],
  checks: ['', 'config'],
  api: ['', 'config', 'checks', 'dataplane', 'membership', 'net', 'daemon'],
  daemon: ['', 'config', 'balance', 'addon', 'membership', 'dataplane', 'net', 'checks', 'api'],
  cli: ['', 'config', 'balance', 'addon', 'dataplane', 'membership', 'api', 'daemon'],
  bench: ['', 'config', 'balance', 'addon', 'membership', 'dataplane', 'net', 'checks', 'api', 'daemon'],
};
/** The one CLI file that may import the daemon: `farmlb run` runs it. */
const CLI_RUNS_DAEMON = 'cli/commands/run.ts';
/** api may import the daemon for types only (status objects name the daemon's results). */
const TYPES_ONLY: readonly [string, string][] = [['api', 'daemon']];

interface Import {
  from: string;
  to: string;
  typeOnly: boolean;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const from = path.relative(src, file);
  const out: Import[] = [];
  const statement = /^(import|export)\s+(type\s+)?[^;]*?from\s+'(\.[^']+)'/gms;
  for (const m of text.matchAll(statement)) {
    const to = path.relative(src, path.resolve(path.dirname(file), m[3]!)).replace(/\.js$/, '.ts');
    out.push({ from, to, typeOnly: m[2] !== undefined });
  }
  for (const m of text.matchAll(/import\('(\.[^']+)'\)/g)) {
    out.push({ from, to: path.relative(src, path.resolve(path.dirname(file), m[1]!)).replace(/\.js$/, '.ts'), typeOnly: false });
  }
  return out;
}

const roomOf = (file: string): string => (file.includes(path.sep) ? file.split(path.sep)[0]! : '');
const imports = sources(src).flatMap(importsOf);

describe('rooms (docs/architecture.md)', () => {
  it('reads the imports of every room', () => {
    expect(new Set(imports.map((i) => roomOf(i.from)))).toEqual(new Set(Object.keys(MAY_IMPORT)));
  });

  it('imports across rooms only as the table allows', () => {
    const refused = imports
      .filter((i) => roomOf(i.from) !== roomOf(i.to))
      .filter((i) => {
        const [a, b] = [roomOf(i.from), roomOf(i.to)];
        if (!(MAY_IMPORT[a] ?? []).includes(b)) return true;
        if (a === 'cli' && b === 'daemon') return i.from !== CLI_RUNS_DAEMON;
        return !i.typeOnly && TYPES_ONLY.some(([x, y]) => x === a && y === b);
      })
      .map((i) => `${i.from} -> ${i.to}${i.typeOnly ? ' (type)' : ''}`);
    expect(refused).toEqual([]);
  });

  it('has no import from balance, config or membership into the data plane', () => {
    const into = imports.filter((i) => ['balance', 'config', 'membership'].includes(roomOf(i.from)) && roomOf(i.to) === 'dataplane');
    expect(into.map((i) => `${i.from} -> ${i.to}`)).toEqual([]);
  });

  it('has no circle of run-time imports between files', () => {
    const edges = new Map<string, string[]>();
    for (const i of imports) if (!i.typeOnly) edges.set(i.from, [...(edges.get(i.from) ?? []), i.to]);
    const state = new Map<string, 'open' | 'done'>();
    const circles: string[] = [];
    const visit = (file: string, trail: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        circles.push([...trail.slice(trail.indexOf(file)), file].join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const to of edges.get(file) ?? []) visit(to, [...trail, file]);
      state.set(file, 'done');
    };
    for (const file of edges.keys()) visit(file, []);
    expect(circles).toEqual([]);
  });
});
