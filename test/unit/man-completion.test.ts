// The operator's aids made from the project's own sources: farmlb(1) generated from
// docs/cli.md (scripts/man) renders with man without a warning and has every command's
// section; `farmlb completion bash` completes commands, options and option values in a real
// bash.

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/commands/index.js';
import { bashCompletion } from '../../src/cli/commands/completion.js';
import { runCli } from '../helpers/cli.js';

const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, '../..');
let dir: string;
beforeAll(async () => { dir = await mkdtemp(path.join(tmpdir(), 'farmlb-man-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

describe('farmlb(1) from docs/cli.md', () => {
  it('renders with man --warnings without a warning, with NAME, SYNOPSIS and a section per command', async () => {
    const page = path.join(dir, 'farmlb.1');
    await run(path.join(REPO, 'scripts/man'), [page], { cwd: REPO, env: { ...process.env, SOURCE_DATE_EPOCH: '1767225600' } });
    const { stdout, stderr } = await run('man', ['--warnings', '-l', page], { env: { ...process.env, MANWIDTH: '100', MANPAGER: 'cat', LC_ALL: 'C.UTF-8' } });
    expect(stderr).toBe('');
    expect(stdout).toMatch(/^NAME\n\s+farmlb - kernel-assisted farm load balancer/m);
    expect(stdout).toMatch(/^SYNOPSIS\n\s+farmlb command \[options\]/m);
    expect(stdout).toContain('January 2026'); // SOURCE_DATE_EPOCH: reproducible
    for (const c of COMMANDS) expect(stdout, c.name).toMatch(new RegExp(`^farmlb .*\\b${c.name}\\b`, 'm'));
    // Code spans keep their characters (marked-man leaves HTML entities in them).
    expect(stdout).not.toMatch(/&(quot|lt|gt|amp|#39);/);
  });
});

describe('farmlb completion bash', () => {
  /** Runs the completion function in bash for the words typed so far (the last one being completed). */
  async function complete(words: string[]): Promise<string[]> {
    const script = path.join(dir, 'completion.bash');
    await writeFile(script, bashCompletion(COMMANDS));
    const setup = `source ${script}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _farmlb; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const { stdout } = await run('bash', ['--norc', '--noprofile', '-c', setup], { cwd: dir });
    return stdout.split('\n').filter(Boolean).sort();
  }

  it('prints a script bash accepts (exit 0) and refuses another shell (exit 2)', async () => {
    const r = await runCli(['completion', 'bash']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('complete -F _farmlb farmlb');
    await run('bash', ['-n', '-c', r.stdout]);
    expect((await runCli(['completion', 'tcsh'])).code).toBe(2);
  });

  it('completes commands, then the options of the command typed', async () => {
    expect(await complete(['farmlb', 're'])).toEqual(['reload']);
    expect(await complete(['farmlb', ''])).toEqual(expect.arrayContaining(COMMANDS.map((c) => c.name)));
    expect(await complete(['farmlb', 'drain', 'node2', '--w'])).toEqual(['--wait']);
    expect(await complete(['farmlb', 'run', '--xdp'])).toEqual(['--xdp-mode']);
  });

  it('completes option values: XDP modes, log levels, and files for --config', async () => {
    expect(await complete(['farmlb', 'run', '--xdp-mode', ''])).toEqual(['auto', 'generic', 'native']);
    expect(await complete(['farmlb', 'run', '--log-level', 'de'])).toEqual(['debug']);
    expect(await complete(['farmlb', 'validate', '--cluster', 'comp'])).toEqual(['completion.bash']);
  });
});
