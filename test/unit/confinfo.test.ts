// `farmlb confinfo` (src/cli/commands/confinfo.ts): the digest the nodes compare and the
// effective configuration behind it, printed so two nodes' outputs diff line by line.

import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { sortKeys } from '../../src/cli/commands/confinfo.js';
import { configDigest, loadConfigs } from '../../src/config/index.js';

const fixtures = path.resolve(import.meta.dirname, '../fixtures/configs');
const CONFIG = path.join(fixtures, 'multi-group.xml');
const CLUSTER = path.join(fixtures, 'cluster.xml');

async function cli(args: string[]): Promise<{ code: number; stdout: string }> {
  const chunks: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => { chunks.push(String(c)); return true; });
  try {
    return { code: await main(args), stdout: chunks.join('') };
  } finally {
    spy.mockRestore();
  }
}

interface Confinfo { digest: string; config: string; cluster: string | null; effective: unknown }

let dir: string;
beforeEach(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'flb-confinfo-')); });
afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

describe('farmlb confinfo', () => {
  it('prints the digest the daemon carries in its heartbeats (configDigest)', async () => {
    const r = await cli(['confinfo', '-c', CONFIG, '--cluster', CLUSTER, '--json']);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout) as Confinfo;
    const { farm, cluster } = await loadConfigs({ config: CONFIG, cluster: CLUSTER });
    expect(info.digest).toBe(configDigest(farm, cluster));
    expect(info).toMatchObject({ config: CONFIG, cluster: CLUSTER });
  });

  it('prints the effective configuration whose canonical JSON hashes to that digest', async () => {
    const info = JSON.parse((await cli(['confinfo', '-c', CONFIG, '--cluster', CLUSTER, '--json'])).stdout) as Confinfo;
    // Keys already sorted at every level: JSON.stringify of it is the canonical form.
    expect(createHash('sha256').update(JSON.stringify(sortKeys(info.effective))).digest('hex')).toBe(info.digest);
    expect(JSON.stringify(info.effective)).toBe(JSON.stringify(sortKeys(info.effective)));
  });

  it('gives the same digest for a copy at another path, and another digest when a power changes', async () => {
    const copy = path.join(dir, 'userconfig.xml');
    await copyFile(CONFIG, copy);
    const a = JSON.parse((await cli(['confinfo', '-c', CONFIG, '--cluster', CLUSTER, '--json'])).stdout) as Confinfo;
    const b = JSON.parse((await cli(['confinfo', '-c', copy, '--cluster', CLUSTER, '--json'])).stdout) as Confinfo;
    expect(b.digest).toBe(a.digest);
    const text = await readFile(CONFIG, 'utf8');
    const changed = text.replace(/power="(\d+)"/, (_m, p: string) => `power="${Number(p) + 1}"`);
    expect(changed).not.toBe(text);
    await writeFile(copy, changed);
    const c = JSON.parse((await cli(['confinfo', '-c', copy, '--cluster', CLUSTER, '--json'])).stdout) as Confinfo;
    expect(c.digest).not.toBe(a.digest);
  });

  it('prints the digest first and the sorted configuration as indented JSON in text form', async () => {
    const r = await cli(['confinfo', '-c', CONFIG, '--cluster', CLUSTER]);
    const info = JSON.parse((await cli(['confinfo', '-c', CONFIG, '--cluster', CLUSTER, '--json'])).stdout) as Confinfo;
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(`digest  ${info.digest}`);
    expect(r.stdout).toContain(JSON.stringify(info.effective, null, 2));
  });

  it('fails with the config error code on an invalid configuration', async () => {
    const bad = path.join(dir, 'bad.xml');
    await writeFile(bad, '<safe><service mode="farm"><farm><lan name="default"/></farm><vip><interface_list><interface><real_interface><virtual_addr addr="nope"/></real_interface></interface></interface_list></vip></service></safe>');
    const r = await cli(['confinfo', '-c', bad, '--json']);
    // 78 (EX_CONFIG): every command exits so on a configuration error (docs/cli.md "Exit codes").
    expect(r.code).toBe(78);
    expect((JSON.parse(r.stdout) as { error: { code: string } }).error.code).toMatch(/^FARMLB_E_CONFIG_/);
  });
});
