// Run and pin directories are ours alone, and module names are safe path components
// (docs/security.md, "Local users"): whoever can write there could plant the records the
// daemon reads back as root.

import { chmod, chown, mkdir, mkdtemp, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensurePrivateDir, instancePaths } from '../../src/paths.js';
import { nextIncarnation } from '../../src/membership/incarnation.js';

let base: string;
beforeEach(async () => { base = await mkdtemp(path.join(tmpdir(), 'flb-dirs-')); });
afterEach(async () => { await rm(base, { recursive: true, force: true }); });

describe('--module', () => {
  it.each(['../etc', 'a/b', 'Farm', 'a b', '', 'x'.repeat(33), 'farm;reboot'])('refuses %j', (module) => {
    expect(() => instancePaths({ module })).toThrow(expect.objectContaining({ code: 'FARMLB_E_CLI_BAD_OPTION' }));
  });

  it('accepts lower-case letters, digits, "_" and "-"', () => {
    expect(instancePaths({ module: 'web_2-a' }).runDir).toBe('/run/farmlb/web_2-a');
  });
});

describe('run and pin directories', () => {
  it('creates a missing one root-only (0700)', async () => {
    const dir = path.join(base, 'run', 'farm');
    await ensurePrivateDir(dir, 'run directory');
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
  });

  it('accepts an existing one of ours that others cannot write', async () => {
    const dir = path.join(base, 'ok');
    await mkdir(dir, { mode: 0o755 });
    await chmod(dir, 0o755);
    await expect(ensurePrivateDir(dir, 'run directory')).resolves.toBeUndefined();
  });

  it.each([[0o777, 'everyone'], [0o770, 'its group']])('refuses an existing one of mode %o', async (mode, who) => {
    const dir = path.join(base, 'open');
    await mkdir(dir);
    await chmod(dir, mode);
    await expect(ensurePrivateDir(dir, 'run directory')).rejects.toMatchObject({ code: 'FARMLB_E_RUN_UNSAFE_DIR', message: expect.stringContaining(who) });
    // The incarnation counter (the first thing written there) refuses it too.
    await expect(nextIncarnation(dir)).rejects.toMatchObject({ code: 'FARMLB_E_RUN_UNSAFE_DIR' });
  });

  it('refuses a symbolic link and a directory of another owner', async () => {
    const target = path.join(base, 'target');
    await mkdir(target, { mode: 0o700 });
    const link = path.join(base, 'link');
    await symlink(target, link);
    await expect(ensurePrivateDir(link, 'run directory')).rejects.toMatchObject({ code: 'FARMLB_E_RUN_UNSAFE_DIR' });
    if (process.geteuid?.() === 0) {
      await chown(target, 65534, 65534);
      await expect(ensurePrivateDir(target, 'pin directory')).rejects.toMatchObject({ code: 'FARMLB_E_RUN_UNSAFE_DIR', message: expect.stringContaining('owned by uid 65534') });
    }
  });
});
