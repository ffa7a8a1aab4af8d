// Where commands find userconfig.xml and cluster.xml when not told (docs/cli.md "Files"):
// an explicit -c/--cluster wins; else ./userconfig.xml when there is one (a lab or a
// checkout); else /etc/farmlb/<module>/userconfig.xml and /etc/farmlb/cluster.xml, where
// packaging/farmlb@.service and the quickstart put them.

import { existsSync } from 'node:fs';
import path from 'node:path';

export const ETC_DIR = '/etc/farmlb';
export const DEFAULT_MODULE = 'farm';

export function defaultConfigFile(module: string | undefined, cwdFile = 'userconfig.xml', etcDir = ETC_DIR): string {
  if (existsSync(cwdFile)) return cwdFile;
  return path.join(etcDir, module ?? DEFAULT_MODULE, 'userconfig.xml');
}

export function defaultClusterFile(etcDir = ETC_DIR): string | undefined {
  const file = path.join(etcDir, 'cluster.xml');
  return existsSync(file) ? file : undefined;
}

/**
 * Fills the defaults into a command's parsed options: `config` when it came from the
 * option's default ('userconfig.xml'), `cluster` when the command takes one and none was given.
 */
export function applyDefaultPaths(opts: Record<string, unknown>, configFromDefault: boolean, takesCluster: boolean, etcDir = ETC_DIR): void {
  if (configFromDefault) opts.config = defaultConfigFile(typeof opts.module === 'string' ? opts.module : undefined, 'userconfig.xml', etcDir);
  if (takesCluster && opts.cluster === undefined) {
    const cluster = defaultClusterFile(etcDir);
    if (cluster) opts.cluster = cluster;
  }
}
