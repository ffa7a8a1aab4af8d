// The npm package as a user gets it (docs/cli.md "Packaging"): `npm pack` (its prepack puts
// the N-API addon in prebuilds/), then `npm install -g` of the tarball into a fresh prefix
// with npm 11 (the machine's) and with the newest npm from the registry, with no compiler
// usable (CC/CXX fail, no Node headers): the prebuilt addon must load, and farmlb --version
// and validate work. Needs the npm registry for the package's dependencies.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const version = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, cwd = root) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 });

// Any attempt to compile fails: a prebuild must be what loads.
const NO_COMPILER = { CC: '/bin/false', CXX: '/bin/false', npm_config_nodedir: '/nonexistent', npm_config_update_notifier: 'false' };

describe('npm package', () => {
  let dir: string;
  let tarball: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'flb-pack-'));
    run('npm', ['pack', '--silent', '--pack-destination', dir]);
    tarball = path.join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz'))!);
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('ships the prebuilt addon, the BPF objects and LICENSE, and no source maps or test scripts', () => {
    const files = run('tar', ['tzf', tarball]).split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));
    for (const want of ['LICENSE', 'bin/farmlb.js', 'dist/cli/main.js', 'bpf/build/farmlb.bpf.o', 'packaging/farmlb@.service', 'man/farmlb.1']) expect(files).toContain(want);
    expect(files.some((f) => /^prebuilds\/linux-[a-z0-9]+\/farmlb_native\.napi\.glibc\.node$/.test(f))).toBe(true);
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('scripts/') || f.startsWith('test/'))).toEqual([]);
  });

  const installs: [string, () => string][] = [
    ['npm 11 (the machine\'s)', () => 'npm'],
    ['the newest npm', () => {
      const npmDir = path.join(dir, 'npm-latest');
      run('npm', ['install', '--prefix', npmDir, '--no-audit', '--no-fund', '--loglevel=error', 'npm@latest']);
      return path.join(npmDir, 'node_modules/.bin/npm');
    }],
  ];
  for (const [name, npmBin] of installs) {
    it(`installs with ${name} into a fresh prefix without a compiler and runs`, () => {
      const npm = npmBin();
      const npmVersion = run(npm, ['--version']).trim();
      if (name.startsWith('npm 11')) expect(npmVersion).toMatch(/^11\./);
      const prefix = path.join(dir, `prefix-${npmVersion}`);
      run(npm, ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--loglevel=error', tarball], NO_COMPILER);
      const farmlb = path.join(prefix, 'bin/farmlb');
      expect(run(farmlb, ['--version']).trim()).toBe(version);
      const config = path.join(root, 'test/fixtures/configs/safekit-minimal.xml');
      expect(run(farmlb, ['validate', config, '--cluster', path.join(root, 'test/fixtures/configs/cluster.xml')])).toContain('valid');
      // The addon the daemon uses loads from the installed package's prebuilds/.
      const pkg = path.join(prefix, 'lib/node_modules/farmlb');
      const loaded = run('node', ['--input-type=module', '-e',
        `const m = await import(${JSON.stringify(path.join(pkg, 'dist/addon/native.js'))}); console.log(typeof m.loadNative().monotonicNs(), m.bpfObjectPath());`]);
      expect(loaded.trim()).toBe(`bigint ${path.join(pkg, 'bpf/build/farmlb.bpf.o')}`);
      expect(readdirSync(pkg)).not.toContain('build');
      // farmlb(1) ships in the package; npm 11 also links it (package.json "man") where man
      // looks under the prefix, npm 12 no longer does (docs/operations.md says how to link it).
      expect(readdirSync(path.join(pkg, 'man'))).toContain('farmlb.1');
      if (npmVersion.startsWith('11.')) expect(readdirSync(path.join(prefix, 'share/man/man1'))).toContain('farmlb.1');
    }, 300_000);
  }
});
