// The error registry and docs/errors.md stay in step (fastify's test/internals/errors.test.js
// does the same for FST_ERR_*): every code documented, nothing stale documented, codes
// named by area, templates complete.

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERRORS, FarmlbError, formatLocation, isFarmlbError, type ErrorCode } from '../../src/errors.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const doc = readFileSync(path.join(root, 'docs/errors.md'), 'utf8');
const docRows = doc.split('\n').filter((l) => /^\| FARMLB_E_/.test(l));
const docCodes = docRows.map((l) => l.split('|')[1]!.trim());
const codes = Object.keys(ERRORS) as ErrorCode[];

describe('error registry', () => {
  it('names every code FARMLB_E_<AREA>_<WHAT> in capitals', () => {
    for (const code of codes) expect(code).toMatch(/^FARMLB_E_[A-Z0-9]+(_[A-Z0-9]+)*$/);
  });

  it('has unique codes (the source declares each key once)', () => {
    const src = readFileSync(path.join(root, 'src/errors.ts'), 'utf8');
    const declared = [...src.matchAll(/^\s+(FARMLB_E_[A-Z0-9_]+):\s*\{/gm)].map((m) => m[1]);
    expect(new Set(declared).size).toBe(declared.length);
    expect(new Set(declared)).toEqual(new Set(codes));
  });

  it('gives every error a code equal to its registry key, a message and a hint', () => {
    for (const code of codes) {
      const err = new FarmlbError(code, {});
      expect(err.code).toBe(code);
      expect(err.name).toBe('FarmlbError');
      expect(ERRORS[code].message.length).toBeGreaterThan(0);
      expect(ERRORS[code].hint.length).toBeGreaterThan(0);
      expect(isFarmlbError(err)).toBe(true);
    }
  });

  it('documents every code in docs/errors.md', () => {
    const missing = codes.filter((c) => !docCodes.includes(c));
    expect(missing).toEqual([]);
  });

  it('documents no code the registry lacks, and each code once', () => {
    const stale = docCodes.filter((c) => !(codes as string[]).includes(c));
    expect(stale).toEqual([]);
    expect(new Set(docCodes).size).toBe(docCodes.length);
  });

  it('gives each documented code a meaning and a what-to-do column', () => {
    for (const row of docRows) {
      const cells = row.split('|').slice(1, -1).map((c) => c.trim());
      expect(cells, row).toHaveLength(3);
      expect(cells[1]!.length, row).toBeGreaterThan(10);
      expect(cells[2]!.length, row).toBeGreaterThan(5);
    }
  });
});

describe('FarmlbError', () => {
  it('renders the template from its parameters and keeps the raw text apart from the location', () => {
    const err = new FarmlbError('FARMLB_E_CONFIG_BAD_POWER', { value: '-1', host: 'node1', max: 10 }, {
      location: { file: 'u.xml', line: 3, column: 7, element: 'host', attribute: 'power' },
    });
    expect(err.text).toBe('power="-1" of host node1 is not a non-negative integer');
    expect(err.message).toBe('u.xml:3:7 <host> power=: power="-1" of host node1 is not a non-negative integer');
    expect(err.hint).toContain('to 10');
    expect(err.details).toEqual({ value: '-1', host: 'node1', max: 10 });
    expect(String(err)).toContain('(FARMLB_E_CONFIG_BAD_POWER)');
  });

  it('leaves an unknown placeholder visible instead of printing "undefined"', () => {
    expect(new FarmlbError('FARMLB_E_INTERNAL', {}).message).toBe('internal error: {detail}');
  });

  it('formats a location without a line as the bare file name', () => {
    expect(formatLocation({ file: 'cluster.xml' })).toBe('cluster.xml');
    expect(formatLocation(undefined)).toBe('');
  });

  it('is recognised by code, not by class (a plain object with a FARMLB_E_ code counts)', () => {
    expect(isFarmlbError({ code: 'FARMLB_E_CONFIG_XML' })).toBe(true);
    expect(isFarmlbError(new Error('x'))).toBe(false);
  });
});

describe('native error codes', () => {
  // The addon throws plain Errors with a string `code`; src/addon/native.ts turns only codes
  // the registry knows into FarmlbError, so an unknown one would silently stay a bare Error with
  // no hint and no docs/errors.md row. Every code literal in native/ must be a registry key.
  it('uses in native/*.cc and native/*.h only codes the registry declares', () => {
    const dir = path.join(root, 'native');
    const used = new Map<string, string>();
    for (const name of readdirSync(dir).filter((f) => /\.(cc|h)$/.test(f))) {
      const src = readFileSync(path.join(dir, name), 'utf8');
      for (const m of src.matchAll(/FARMLB_E_[A-Z0-9_]+/g)) if (!used.has(m[0])) used.set(m[0], name);
    }
    expect(used.size).toBeGreaterThan(5);
    const unknown = [...used].filter(([code]) => !(code in ERRORS)).map(([code, file]) => `${code} (native/${file})`);
    expect(unknown).toEqual([]);
  });
});
