// The jq recipes of docs/cli.md ("Logs"), run with the real jq on lines written by farmlb's
// own logger (dist/log.js in a child process, stdout a pipe, as journald's `-o cat` gives
// them back): each recipe exits 0 and selects what it says. Every line of the stream must be
// JSON, or `jq` stops at the first other one (exit 4) and loses the events after it.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');

const EMIT = `
const { createLogger } = await import(${JSON.stringify(path.join(root, 'dist/log.js'))});
const log = createLogger({ pretty: false, level: 'debug', bindings: { module: 'farm', node: 'n1' } });
log.info({ event: 'started', mode: 'membership' }, 'daemon started');
log.debug({ event: 'libbpf' }, 'libbpf: loading object');
log.info({ event: 'state', state: 'UP' }, 'UP');
log.info('a line without an event');
log.warn({ event: 'config_warning', code: 'X' }, 'a warning');
log.error({ event: 'reload_failed', err: new Error('refused') }, 'reload failed; the previous configuration stays');
`;

function recipes(): { cmd: string; filter: string }[] {
  const doc = readFileSync(path.join(root, 'docs/cli.md'), 'utf8');
  const start = doc.indexOf('Recipes (test/unit/log-recipes.test.ts');
  const block = doc.slice(doc.indexOf('```sh', start), doc.indexOf('```\n', doc.indexOf('```sh', start) + 5));
  return block.split('\n').filter((l) => l.includes('| jq')).map((l) => {
    const m = /\| jq -c '([^']+)'/.exec(l);
    if (!m) throw new Error(`recipe not understood: ${l}`);
    return { cmd: l, filter: m[1]! };
  });
}

describe('log recipes (docs/cli.md "Logs")', () => {
  const stream = execFileSync('node', ['--input-type=module', '-e', EMIT], { encoding: 'utf8', env: { ...process.env, JOURNAL_STREAM: '' } });

  it('writes only JSON lines', () => {
    const lines = stream.trimEnd().split('\n');
    expect(lines).toHaveLength(6);
    for (const l of lines) expect(() => JSON.parse(l), l).not.toThrow();
  });

  it('has recipes that jq runs to the end, selecting what they say', () => {
    const rs = recipes();
    expect(rs.length).toBeGreaterThanOrEqual(3);
    const out = (filter: string) => execFileSync('jq', ['-c', filter], { input: stream, encoding: 'utf8' }).trimEnd().split('\n').filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const r of rs) expect(() => out(r.filter), r.cmd).not.toThrow();
    const byFilter = new Map(rs.map((r) => [r.filter, out(r.filter)]));
    expect(byFilter.get('select(.event)')?.map((o) => o.event)).toEqual(['started', 'libbpf', 'state', 'config_warning', 'reload_failed']);
    expect(byFilter.get('select(.event == "state")')?.map((o) => o.state)).toEqual(['UP']);
    expect(byFilter.get('select(.level >= 40) | {time, event, msg}')?.map((o) => o.event)).toEqual(['config_warning', 'reload_failed']);
  });
});
