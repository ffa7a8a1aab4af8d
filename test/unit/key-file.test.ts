// The heartbeat key file is checked as corosync checks its authkey (docs/security.md, "The
// key"): owner root, accessible to its owner only, in a directory nobody else writes to, not
// obviously weak; `farmlb keygen` writes one that passes.

import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateKeyFile, keyId, keyWeakness, loadKey } from '../../src/membership/key.js';
import { runCli } from '../helpers/cli.js';

let dir: string;
beforeEach(async () => { dir = await mkdtemp(path.join(tmpdir(), 'flb-key-')); });
afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

async function keyFile(content: string | Buffer, mode = 0o600, name = 'farm.key'): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, content, { mode });
  await chmod(file, mode);
  return file;
}

const GOOD = randomBytes(32).toString('hex');

describe('key file checks', () => {
  it('loads a 0600 or 0400 key of its owner, a trailing newline removed, also through a symbolic link', async () => {
    const file = await keyFile(`${GOOD}\n`);
    expect((await loadKey(file)).toString()).toBe(GOOD);
    await chmod(file, 0o400);
    expect((await loadKey(file)).toString()).toBe(GOOD);
    await symlink(file, path.join(dir, 'link.key'));
    expect((await loadKey(path.join(dir, 'link.key'))).toString()).toBe(GOOD);
  });

  it.each([0o640, 0o620, 0o604, 0o602, 0o660, 0o644])('refuses mode %o: only the owner may read it', async (mode) => {
    await expect(loadKey(await keyFile(GOOD, mode))).rejects.toMatchObject({ code: 'FARMLB_E_MEMBERSHIP_KEY_PERMISSIONS' });
  });

  it.each([0o775, 0o757, 0o777, 0o1777])('refuses a key in a directory of mode %o (others could replace it)', async (mode) => {
    const file = await keyFile(GOOD);
    await chmod(dir, mode);
    await expect(loadKey(file)).rejects.toMatchObject({ code: 'FARMLB_E_MEMBERSHIP_KEY_DIRECTORY' });
  });

  it('refuses a file, or a directory, that belongs to another user', async () => {
    const file = await keyFile(GOOD);
    if (process.geteuid?.() !== 0) {
      // Only root can give a file away; as another user, a file of its own is what it can test.
      expect((await loadKey(file)).toString()).toBe(GOOD);
      return;
    }
    await chown(file, 65534, 65534);
    await expect(loadKey(file)).rejects.toMatchObject({ code: 'FARMLB_E_MEMBERSHIP_KEY_OWNER' });
    await chown(file, 0, 0);
    await chown(dir, 65534, 65534);
    await expect(loadKey(file)).rejects.toMatchObject({ code: 'FARMLB_E_MEMBERSHIP_KEY_OWNER' });
  });

  it('refuses a missing file, a directory, a short key and a file far larger than a key', async () => {
    await expect(loadKey(path.join(dir, 'missing'))).rejects.toMatchObject({ code: 'FARMLB_E_MEMBERSHIP_KEY_MISSING' });
    await mkdir(path.join(dir, 'sub'), { mode: 0o700 });
    await expect(loadKey(path.join(dir, 'sub'))).rejects.toMatchObject({ code: 'FARMLB_E_MEMBERSHIP_KEY_MISSING' });
    await expect(loadKey(await keyFile('abc', 0o600, 'short.key'))).rejects.toMatchObject({ code: 'FARMLB_E_MEMBERSHIP_KEY_SHORT' });
    await expect(loadKey(await keyFile(randomBytes(5000), 0o600, 'long.key'))).rejects.toMatchObject({ code: 'FARMLB_E_MEMBERSHIP_KEY_LONG' });
  });

  it.each([
    [' '.repeat(16), 'every byte is the same'],
    ['a'.repeat(32), 'every byte is the same'],
    ['ab'.repeat(16), 'a pattern of 2 bytes'],
    ['secret12secret12secret12', 'a pattern of 8 bytes'],
    ['aaaaaaaaaaaaaaab', 'bits'],
    ['0101010101101001011', 'bits'],
  ])('refuses the obviously weak key %j (%s)', async (key, why) => {
    expect(keyWeakness(Buffer.from(key))).toContain(why);
    await expect(loadKey(await keyFile(key))).rejects.toMatchObject({ code: 'FARMLB_E_MEMBERSHIP_KEY_WEAK' });
  });

  it('accepts random keys: 32 raw bytes, 64 and 32 hex digits', () => {
    for (let i = 0; i < 200; i++) {
      expect(keyWeakness(randomBytes(32))).toBeUndefined();
      expect(keyWeakness(Buffer.from(randomBytes(32).toString('hex')))).toBeUndefined();
      expect(keyWeakness(Buffer.from(randomBytes(16).toString('hex')))).toBeUndefined();
    }
  });
});

describe('farmlb keygen', () => {
  it('writes 32 random bytes as hex, mode 0600, creating the directory; the key loads and its id is printed', async () => {
    const file = path.join(dir, 'etc', 'farm.key');
    const r = await runCli(['keygen', '--key-file', file, '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { file: string; keyId: string };
    expect(out.file).toBe(file);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o022).toBe(0);
    expect(await readFile(file, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
    expect(out.keyId).toBe(keyId(await loadKey(file)));
    expect(out.keyId).toMatch(/^[0-9a-f]{8}$/);
  });

  it('refuses to replace a key without --force, and replaces it with another one with it', async () => {
    const file = path.join(dir, 'farm.key');
    const first = await generateKeyFile(file);
    const again = await runCli(['keygen', '--key-file', file]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('FARMLB_E_CLI_KEY_EXISTS');
    expect(keyId(await loadKey(file))).toBe(first.keyId);
    const forced = await runCli(['keygen', '--key-file', file, '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain('key id');
    expect(keyId(await loadKey(file))).not.toBe(first.keyId);
  });

  it('refuses a module name that is not one', async () => {
    const r = await runCli(['keygen', '--module', '../etc']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('FARMLB_E_CLI_BAD_OPTION');
  });
});
