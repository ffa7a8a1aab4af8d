// `farmlb --help` and every command's --help (src/cli/main.ts, the command table): each
// shows examples, and the exit codes of docs/cli.md hold for help, usage errors and
// refused option combinations.

import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/commands/index.js';
import { runCli } from '../helpers/cli.js';

const cli = runCli;

describe('farmlb help', () => {
  it('lists every command and shows examples, exit codes and the colour rule, exit 0', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.stdout).toContain(`  ${c.name} `);
    expect(r.stdout).toContain('Examples:\n  $ farmlb');
    expect(r.stdout).toMatch(/Exit codes: 0 success, 1 failed[\s\S]*2 usage error, 70 internal error/);
    expect(r.stdout).toContain('NO_COLOR');
  });

  it.each(COMMANDS.map((c) => [c.name]))('farmlb %s --help shows its options, --json and at least one example', async (name) => {
    const r = await cli([name, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: farmlb ${name}`);
    expect(r.stdout).toContain('--json');
    expect(r.stdout).toMatch(new RegExp(`Examples:\\n {2}\\$ farmlb ${name}\\b`));
  });

  it('shows --rate and --interval in buckets --help with an example', async () => {
    const r = await cli(['buckets', '--help']);
    expect(r.stdout).toContain('--rate');
    expect(r.stdout).toContain('--interval <seconds>');
    expect(r.stdout).toContain('$ farmlb buckets --rate');
  });
});

describe('farmlb exit codes', () => {
  it('exits 2 on an unknown command, an unknown option or a missing argument', async () => {
    expect((await cli(['frobnicate'])).code).toBe(2);
    expect((await cli(['status', '--no-such-option'])).code).toBe(2);
    expect((await cli(['explain', '10.0.0.1'])).code).toBe(2);
  });

  it('exits 1 with the error code when buckets gets --rate with --diff, or --interval without --rate', async () => {
    const both = await cli(['buckets', '--rate', '--diff', '--run-dir', '/nonexistent']);
    expect(both.code).toBe(1);
    expect(both.stderr).toContain('FARMLB_E_CLI_BAD_OPTION');
    const json = await cli(['buckets', '--interval', '2', '--json', '--pin-dir', '/nonexistent']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'FARMLB_E_CLI_BAD_OPTION' } });
  });

  it('exits 1 naming FARMLB_E_DATAPLANE_NOT_PINNED when buckets --rate finds no maps', async () => {
    const r = await cli(['buckets', '--rate', '--interval', '0.1', '--json', '--pin-dir', '/nonexistent/farmlb-none']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'FARMLB_E_DATAPLANE_NOT_PINNED' } });
  });
});
