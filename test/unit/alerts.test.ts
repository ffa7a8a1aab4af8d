// docs/farmlb-alerts.yml: Prometheus accepts the rules (promtool check rules), each alert
// fires on the series that should raise it (promtool test rules with
// test/fixtures/farmlb-alerts.test.yml), and every farmlb metric they use is one farmlb
// exposes (docs/metrics.md lists them). promtool comes from Debian's prometheus package
// (scripts/setup.sh); without it the test fails, it does not skip.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const rules = path.join(root, 'docs/farmlb-alerts.yml');

function promtool(args: string[], cwd = root): string {
  return execFileSync('promtool', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
}

describe('alert rules (docs/farmlb-alerts.yml)', () => {
  it('pass promtool check rules', () => {
    expect(promtool(['check', 'rules', rules])).toMatch(/SUCCESS: 7 rules found/);
  });

  it('fire on the series that should raise them (promtool test rules)', () => {
    expect(promtool(['test', 'rules', 'farmlb-alerts.test.yml'], path.join(root, 'test/fixtures'))).toContain('SUCCESS');
  });

  it('cover node not ready, split brain, config digests, peer lost and SYN cookies, with metrics farmlb documents', () => {
    const text = readFileSync(rules, 'utf8');
    const alerts = [...text.matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
    for (const want of ['FarmlbNodeNotReady', 'FarmlbSplitBrain', 'FarmlbConfigDigestsDiffer', 'FarmlbPeerLost', 'FarmlbSynCookies']) expect(alerts).toContain(want);
    const doc = readFileSync(path.join(root, 'docs/metrics.md'), 'utf8');
    const documented = new Set([...doc.matchAll(/^\| `(farmlb_[a-z_]+)` \|/gm)].map((m) => m[1]));
    for (const m of text.matchAll(/expr: .*/g)) {
      for (const name of m[0].match(/farmlb_[a-z_]+/g) ?? []) expect(documented, name).toContain(name);
    }
  });
});
