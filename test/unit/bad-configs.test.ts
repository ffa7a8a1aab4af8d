// The bad-config corpus: every file in test/fixtures/bad-configs/ holds exactly one mistake,
// marked "<!-- error -->" on its line, and expect.json says which code and line farmlb
// must report for it. Adding a validation means adding a file here.

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { configErrorList, loadConfigs, parseClusterConfig, parseFarmConfig } from '../../src/config/index.js';
import type { FarmlbError } from '../../src/errors.js';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/bad-configs');
interface Expectation { code: string; line: number; kind?: 'cluster'; cluster?: string }
const expectations = JSON.parse(readFileSync(path.join(dir, 'expect.json'), 'utf8')) as Record<string, Expectation>;

async function failureOf(file: string, exp: Expectation): Promise<FarmlbError[]> {
  const full = path.join(dir, file);
  try {
    if (exp.kind === 'cluster') parseClusterConfig(readFileSync(full, 'utf8'), full);
    else if (exp.cluster) await loadConfigs({ config: full, cluster: path.join(dir, exp.cluster) });
    else parseFarmConfig(readFileSync(full, 'utf8'), full);
  } catch (err) {
    return configErrorList(err);
  }
  return [];
}

describe('bad-config corpus', () => {
  it('has an expectation for every file and a file for every expectation', () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.xml') && f !== 'cluster.xml').sort();
    expect(Object.keys(expectations).sort()).toEqual(files);
    expect(files.length).toBeGreaterThanOrEqual(25);
  });

  for (const [file, exp] of Object.entries(expectations)) {
    it(`rejects ${file} with ${exp.code} at line ${exp.line}`, async () => {
      const errors = await failureOf(file, exp);
      expect(errors.map((e) => `${e.code}@${e.location?.line}`)).toEqual([`${exp.code}@${exp.line}`]);
      const e = errors[0]!;
      expect(e.location?.file).toBe(path.join(dir, file));
      expect(e.location?.column).toBeGreaterThanOrEqual(1);
      expect(e.hint.length).toBeGreaterThan(0);
      expect(e.hint).not.toMatch(/\{\w+\}/);
      expect(e.text).not.toMatch(/\{\w+\}/);
      // The marker comment sits on the reported line, so the corpus documents itself.
      const line = readFileSync(path.join(dir, file), 'utf8').split('\n')[exp.line - 1];
      expect(line).toContain('<!-- error -->');
    });
  }
});
