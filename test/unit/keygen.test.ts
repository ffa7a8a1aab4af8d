// farmlb keygen (src/cli/commands/keygen.ts): a key the daemon accepts, mode 0600, written
// where the configuration says, and an existing key kept unless --force.

import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadKey } from '../../src/membership/key.js';
import { runCli } from '../helpers/cli.js';

let dir: string;
beforeAll(async () => { dir = await mkdtemp(path.join(tmpdir(), 'farmlb-keygen-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

describe('farmlb keygen', () => {
  it('writes 32 random bytes as hex, mode 0600, that the daemon loads without a warning', async () => {
    const file = path.join(dir, 'etc', 'farm.key');
    const r = await runCli(['keygen', '--out', file, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ file, bytes: 64, mode: '0600' });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(file, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
    const warnings: string[] = [];
    expect((await loadKey(file, (m) => warnings.push(m))).length).toBe(64);
    expect(warnings).toEqual([]);
  });

  it('keeps an existing key (exit 1, FARMLB_E_CLI_KEY_EXISTS) and replaces it only with --force', async () => {
    const file = path.join(dir, 'kept.key');
    await writeFile(file, 'x'.repeat(40), { mode: 0o600 });
    const kept = await runCli(['keygen', '--out', file]);
    expect(kept.code).toBe(1);
    expect(kept.stderr).toContain('FARMLB_E_CLI_KEY_EXISTS');
    expect(await readFile(file, 'utf8')).toBe('x'.repeat(40));
    const forced = await runCli(['keygen', '--out', file, '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain('copy it to every node');
    expect(await readFile(file, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
    // No temporary file left behind by either run.
    const { readdir } = await import('node:fs/promises');
    expect((await readdir(dir)).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('writes the <farmlb key_file> of the configuration given with -c', async () => {
    const config = path.join(dir, 'userconfig.xml');
    await writeFile(config, `<safe><service mode="farm"><farmlb key_file="keys/web.key"/><vip><interface_list><interface>
      <virtual_interface type="vmac_directed"><virtual_addr addr="192.168.1.222" where="alias"/></virtual_interface>
      </interface></interface_list><loadbalancing_list><group name="g"><rule port="80" proto="tcp" filter="on_addr"/></group>
      </loadbalancing_list></vip></service></safe>`);
    const r = await runCli(['keygen', '-c', config]);
    expect(r.code).toBe(0);
    expect((await stat(path.join(dir, 'keys', 'web.key'))).mode & 0o777).toBe(0o600);
  });

  it('says why when the directory cannot be written (FARMLB_E_CLI_KEY_WRITE)', async () => {
    const blocker = path.join(dir, 'a-file');
    await writeFile(blocker, '');
    const r = await runCli(['keygen', '--out', path.join(blocker, 'farm.key'), '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'FARMLB_E_CLI_KEY_WRITE' } });
  });
});
