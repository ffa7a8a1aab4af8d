// Packaging: `npm pack` carries everything an installed farmlb needs to run without a
// compiler (dist/, bin/, the compiled BPF objects; the prebuilt addon is added by `prepack`,
// which test/package/pack-install.test.ts exercises) and to rebuild the addon from source
// when no prebuild fits, and the systemd unit is valid.
// Needs the TypeScript and BPF builds (dist/, bpf/build/), which scripts/setup.sh makes.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, '../..');

const ESSENTIALS = [
  'package.json', 'README.md', 'bin/farmlb.js',
  'dist/cli/main.js', 'dist/daemon/farm-daemon.js', 'dist/api/metrics.js', 'dist/api/events-log.js',
  'binding.gyp', 'native/addon.cc', 'native/common.h',
  'bpf/Makefile', 'bpf/farmlb.bpf.c', 'bpf/farmlb_abi.h', 'bpf/farmlb_maps.h', 'bpf/build/farmlb.bpf.o',
  'LICENSE', 'docs/cli.md', 'docs/metrics.md', 'docs/grafana-farmlb.json', 'docs/errors.md',
  'packaging/farmlb@.service',
];

describe('npm pack', () => {
  it('packs the CLI build, the BPF objects, the addon and BPF sources, the docs, the licence and the systemd unit, and no tests, source maps, scripts or intermediate build output', async () => {
    expect(existsSync(path.join(REPO, 'dist/cli/main.js')), 'dist/ is missing: run scripts/setup.sh first').toBe(true);
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO, timeout: 60_000 });
    const files = (JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    for (const f of ESSENTIALS) expect(files, f).toContain(f);
    // The addon ships only as a prebuild (prebuilds/<platform>-<arch>/), never node-gyp's build/.
    const forbidden = files.filter((f) => /^(test|src|scripts|node_modules|build)\//.test(f) || f.endsWith('.tgz') || f.endsWith('.map')
      || (f.endsWith('.node') && !f.startsWith('prebuilds/')) || (f.startsWith('bpf/build/') && !f.endsWith('.bpf.o')));
    expect(forbidden).toEqual([]);
  }, 60_000);

  it('declares prom-client as a runtime dependency and the farmlb bin', async () => {
    const pkg = JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as { bin: Record<string, string>; dependencies: Record<string, string> };
    expect(pkg.bin.farmlb).toBe('bin/farmlb.js');
    expect(pkg.dependencies['prom-client']).toMatch(/^\^15\./);
  });
});

describe('systemd unit', () => {
  it('runs farmlb run for module %i with the config under /etc/farmlb, restarts on failure, with four capabilities', async () => {
    const unit = await readFile(path.join(REPO, 'packaging/farmlb@.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/farmlb run -c \/etc\/farmlb\/%i\/userconfig\.xml --cluster \/etc\/farmlb\/cluster\.xml --node %H/m);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    expect(unit).toMatch(/^NoNewPrivileges=yes$/m);
    expect(unit).toMatch(/^ProtectSystem=strict$/m);
    expect(unit).toMatch(/^ReadWritePaths=\/sys\/fs\/bpf \/run\/farmlb \/proc\/sys\/net$/m);
    const caps = (re: RegExp) => unit.match(re)?.[1]?.split(/\s+/).sort();
    const expected = ['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_SYS_ADMIN'];
    expect(caps(/^CapabilityBoundingSet=(.*)$/m)).toEqual(expected);
    expect(caps(/^AmbientCapabilities=(.*)$/m)).toEqual(expected);
  });

  it.skipIf(!existsSync('/usr/bin/systemd-analyze'))('passes systemd-analyze verify (with ExecStart pointing at this checkout)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'flb-unit-'));
    try {
      const unit = (await readFile(path.join(REPO, 'packaging/farmlb@.service'), 'utf8')).replaceAll('/usr/bin/farmlb', path.join(REPO, 'bin/farmlb.js'));
      await writeFile(path.join(dir, 'farmlb@.service'), unit);
      const r = await run('systemd-analyze', ['verify', path.join(dir, 'farmlb@farm.service')], { timeout: 30_000 }).then(
        (x) => ({ code: 0, out: x.stdout + x.stderr }), (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }));
      // Only messages about this unit count: the host's own units may have warnings of their own.
      expect(r.out.split('\n').filter((l) => l.includes('farmlb@'))).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 40_000);
});
