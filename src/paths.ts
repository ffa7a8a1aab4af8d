// Where an instance keeps its state. Each has a module name, a pin directory on bpffs and
// a run directory; all three are settable so several lab nodes can share one host
// (DESIGN.md, "Rooms").

import { chmod, lstat, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { FarmlbError } from './errors.js';

export const DEFAULT_MODULE = 'farm';
export const BPFFS_ROOT = '/sys/fs/bpf';
/** Where every instance's pin directory lives by default; removed when the last one goes. */
export const PIN_ROOT = path.join(BPFFS_ROOT, 'farmlb');

export interface InstancePaths {
  module: string;
  pinDir: string;
  runDir: string;
}

/**
 * What a module name may hold (as <farmlb module> of the config): it becomes a path below
 * /run/farmlb and /sys/fs/bpf/farmlb, a pino field and a systemd instance name, so no "/",
 * no "..", nothing a shell or a path would read twice.
 */
export const MODULE_PATTERN = /^[a-z0-9_-]{1,32}$/;

export function instancePaths(opts: { module?: string; pinDir?: string; runDir?: string }): InstancePaths {
  const module = opts.module ?? DEFAULT_MODULE;
  if (!MODULE_PATTERN.test(module)) {
    throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { value: module.slice(0, 64), option: '--module', expected: 'lower-case letters, digits, "_" and "-" (1 to 32)' });
  }
  return {
    module,
    pinDir: opts.pinDir ?? path.join(PIN_ROOT, module),
    runDir: opts.runDir ?? path.join('/run/farmlb', module),
  };
}

/** The daemon writes the names behind the ids in the maps here, for the CLI. */
export function namesFile(runDir: string): string {
  return path.join(runDir, 'names.json');
}

/**
 * Creates `dir` root-only (0700), or checks the one that exists: a directory (not a symlink)
 * owned by this user, not writable by group or others. Whoever can write in the run or pin
 * directory can plant the records the daemon reads back as root (netstate.json,
 * powers.json, the incarnation) or swap its pins (docs/security.md, "Local users").
 * Throws FARMLB_E_RUN_UNSAFE_DIR.
 */
export async function ensurePrivateDir(dir: string, what: string): Promise<void> {
  const refuse = (detail: string) => new FarmlbError('FARMLB_E_RUN_UNSAFE_DIR', { what, dir, detail });
  let st;
  try {
    st = await lstat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw refuse((err as Error).message);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // mkdir's mode goes through the umask; say it exactly.
    await chmod(dir, 0o700);
    return;
  }
  if (st.isSymbolicLink()) throw refuse('it is a symbolic link');
  if (!st.isDirectory()) throw refuse('it is not a directory');
  const uid = process.geteuid?.();
  if (uid !== undefined && st.uid !== uid) throw refuse(`it is owned by uid ${st.uid}, not ${uid}`);
  if (st.mode & 0o022) throw refuse(`it is writable by ${st.mode & 0o002 ? 'everyone' : 'its group'} (mode 0${(st.mode & 0o777).toString(8)})`);
}
