// The config room's public API: parse, load, cross-check, digest. Errors are thrown as one
// FARMLB_E_CONFIG_INVALID whose `errors` holds every problem (docs/config.md, "Errors").

import { readFile } from 'node:fs/promises';
import { FarmlbError, isFarmlbError } from '../errors.js';
import { parseClusterConfig } from './cluster.js';
import { aggregateConfigErrors, configErrorList } from './diagnostics.js';
import { parseFarmConfig } from './farm.js';
import type { ClusterConfig, FarmConfig } from './types.js';
import { crossCheckErrors } from './validate.js';

export { parseFarmConfig } from './farm.js';
export { parseClusterConfig } from './cluster.js';
export { validateAgainstCluster, crossCheckErrors } from './validate.js';
export { configDigest, effectiveConfig } from './digest.js';
export { configErrorList, formatConfigError, formatConfigWarning, aggregateConfigErrors } from './diagnostics.js';
export { defaultFarmlbSettings, defaultFarmTopology, DEFAULT_HASH_SEED, LIMITS } from './defaults.js';
export { CONFIG_WARNINGS, type ConfigWarningCode } from './warnings.js';
export { canonicalIpv6, parseDurationMs, parseIp } from './values.js';
export type * from './types.js';

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new FarmlbError('FARMLB_E_CONFIG_READ', { file: path, detail: e.code ?? e.message }, { location: { file: path }, cause: err });
  }
}

export async function loadFarmConfig(path: string): Promise<FarmConfig> {
  return parseFarmConfig(await readText(path), path);
}

export async function loadClusterConfig(path: string): Promise<ClusterConfig> {
  return parseClusterConfig(await readText(path), path);
}

export interface LoadedConfigs {
  farm: FarmConfig;
  /** Undefined when no cluster.xml was given. */
  cluster: ClusterConfig | undefined;
}

/**
 * Reads userconfig.xml and, when given, cluster.xml; checks each and then the two together.
 * Problems of both files come back in one FARMLB_E_CONFIG_INVALID (a file that cannot be
 * read is thrown alone as FARMLB_E_CONFIG_READ).
 */
export async function loadConfigs(opts: { config: string; cluster?: string | undefined; configText?: string }): Promise<LoadedConfigs> {
  const [farmText, clusterText] = await Promise.all([
    // configText: userconfig.xml already read (e.g. from stdin); `config` then only names it.
    opts.configText ?? readText(opts.config),
    opts.cluster === undefined ? Promise.resolve(undefined) : readText(opts.cluster),
  ]);
  const errors: FarmlbError[] = [];
  const attempt = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      if (!isFarmlbError(err)) throw err;
      errors.push(...configErrorList(err));
      return undefined;
    }
  };
  const farm = attempt(() => parseFarmConfig(farmText, opts.config));
  const cluster = clusterText === undefined ? undefined : attempt(() => parseClusterConfig(clusterText, opts.cluster!));
  if (farm && cluster) errors.push(...crossCheckErrors(farm, cluster));
  if (errors.length) throw aggregateConfigErrors(opts.config, errors);
  return { farm: farm!, cluster };
}
