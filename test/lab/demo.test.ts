// The README's first command must work: scripts/demo builds a three-node farm, drives
// traffic, checks every connection against `farmlb explain`, and cleans up. Run end to end
// here in both VMAC modes, so a change that breaks the demo breaks the build.

import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';

const exec = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, '../..');

function leftovers(): string[] {
  const netns = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith('flb-demo-')) : [];
  const pins = existsSync('/sys/fs/bpf/farmlb') ? readdirSync('/sys/fs/bpf/farmlb').filter((n) => n.startsWith('demo-')) : [];
  return [...netns, ...pins];
}

describePrivileged('scripts/demo', () => {
  for (const mode of ['invisible', 'directed']) {
    it(`runs a three-node ${mode} farm end to end: every connection served by the predicted node, a crash failed over, the rejoin restoring the quotas, nothing left behind`, async () => {
      const { stdout } = await exec(path.join(REPO, 'scripts/demo'), ['--mode', mode], { timeout: 120_000, maxBuffer: 16 << 20 });
      expect(stdout).toContain('0 failed, 0 served by another node than predicted');
      expect(stdout).toMatch(/n3 \(power 2, 50% of the buckets\): \d+ connections/);
      expect(stdout).toMatch(/served again by n[13] after \d+ ms/);
      expect(stdout).toContain("n1 64, n2 64, n3 128 buckets again");
      expect(stdout).toContain('clean.');
      expect(leftovers()).toEqual([]);
    }, 150_000);
  }
});
