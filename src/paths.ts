// Where an instance keeps its state. Each has a module name, a pin directory on bpffs and
// a run directory; all three are settable so several lab nodes can share one host
// (DESIGN.md, "Rooms").

import path from 'node:path';

export const DEFAULT_MODULE = 'farm';
export const BPFFS_ROOT = '/sys/fs/bpf';
/** Where every instance's pin directory lives by default; removed when the last one goes. */
export const PIN_ROOT = path.join(BPFFS_ROOT, 'farmlb');

export interface InstancePaths {
  module: string;
  pinDir: string;
  runDir: string;
}

export function instancePaths(opts: { module?: string; pinDir?: string; runDir?: string }): InstancePaths {
  const module = opts.module ?? DEFAULT_MODULE;
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
