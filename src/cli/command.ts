// The shape of one CLI command. Every command is a row in src/cli/commands/index.ts; main.ts
// turns the table into a commander program, so options, help and exit codes stay uniform.

import type { Output } from './output.js';

export interface OptionDef {
  /** commander flags, e.g. '--group <name>' */
  flags: string;
  description: string;
  defaultValue?: string | boolean;
}

export interface CommandContext {
  out: Output;
}

export interface CommandDef {
  name: string;
  /** Positional arguments in commander syntax, e.g. '<src> <dst>' */
  args?: string;
  summary: string;
  options: OptionDef[];
  examples: string[];
  /** Returns the exit code. Throwing a FarmlbError prints it and exits 1. */
  run(ctx: CommandContext, args: string[], opts: Record<string, unknown>): Promise<number>;
}

/** Exit codes shared by every command (docs/cli.md). */
export const EXIT = {
  OK: 0,
  FAILED: 1,
  USAGE: 2,
  /** `drain --wait` reached its --timeout; the number timeout(1) uses, so scripts read it one way. */
  TIMEOUT: 124,
  INTERNAL: 70,
  /** sysexits.h EX_CONFIG: the configuration is wrong; the unit's RestartPreventExitStatus=78 stops restarting. */
  CONFIG: 78,
} as const;

/** Errors that mean "fix the configuration", not "try again": exit EXIT.CONFIG. */
export function isConfigErrorCode(code: string): boolean {
  return code.startsWith('FARMLB_E_CONFIG_') || code === 'FARMLB_E_RUN_NODE_UNKNOWN';
}

/** Options every command that touches an instance accepts. */
export const INSTANCE_OPTIONS: OptionDef[] = [
  { flags: '--module <name>', description: 'module (instance) name (default: <farmlb module=> of the config, else "farm")' },
  { flags: '--pin-dir <dir>', description: 'bpffs pin directory (default /sys/fs/bpf/farmlb/<module>)' },
  { flags: '--run-dir <dir>', description: 'run directory (default /run/farmlb/<module>)' },
];

export const CONFIG_OPTIONS: OptionDef[] = [
  { flags: '-c, --config <file>', description: 'userconfig.xml', defaultValue: 'userconfig.xml' },
  { flags: '--cluster <file>', description: 'cluster.xml (SafeKit cluster configuration)' },
];
