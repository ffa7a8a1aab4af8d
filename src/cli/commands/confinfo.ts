// `farmlb confinfo`: the digest every heartbeat carries and the effective configuration it
// is computed over (SafeKit's `safekit confinfo`: compare the configuration of nodes). Two
// nodes whose digests differ stay in WAIT; diffing the two printouts shows why.

import { configDigest, effectiveConfig } from '../../config/digest.js';
import { loadConfigs } from '../../config/index.js';
import { EXIT, type CommandDef } from '../command.js';
import { bold } from '../output.js';

/** Keys sorted at every level, as the digest's canonical JSON orders them, so printouts diff line by line. */
export function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => [k, sortKeys(v)]));
  }
  return value;
}

export const confinfoCommand: CommandDef = {
  name: 'confinfo',
  summary: 'print the digest of the effective configuration and the configuration itself, to compare nodes',
  options: [
    { flags: '-c, --config <file>', description: 'userconfig.xml', defaultValue: 'userconfig.xml' },
    { flags: '--cluster <file>', description: 'cluster.xml (part of the digest: the nodes and their addresses)' },
  ],
  examples: [
    'farmlb confinfo -c /etc/farmlb/farm/userconfig.xml --cluster /etc/farmlb/cluster.xml',
    'diff <(ssh node1 farmlb confinfo -c … --cluster …) <(ssh node2 farmlb confinfo -c … --cluster …)',
    'farmlb confinfo --json | jq -r .digest',
  ],
  async run(ctx, _args, opts) {
    const config = String(opts.config);
    const cluster = opts.cluster as string | undefined;
    const { farm, cluster: clusterConfig } = await loadConfigs({ config, ...(cluster ? { cluster } : {}) });
    const digest = configDigest(farm, clusterConfig);
    const effective = sortKeys(effectiveConfig(farm, clusterConfig));
    if (ctx.out.json) {
      ctx.out.printJson({ digest, config, cluster: cluster ?? null, effective });
      return EXIT.OK;
    }
    ctx.out.print([
      `${bold(ctx.out, 'digest')}  ${digest}`,
      `config  ${config}`,
      `cluster ${cluster ?? '(none: nodes and addresses are not part of this digest)'}`,
      '',
      JSON.stringify(effective, null, 2),
    ].join('\n'));
    return EXIT.OK;
  },
};
