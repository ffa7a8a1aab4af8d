import { loadConfigs } from '../../config/index.js';
import { StaticDaemon } from '../../daemon/static-daemon.js';
import { FarmlbError } from '../../errors.js';
import { createLogger } from '../../log.js';
import { instancePaths } from '../../paths.js';
import { CONFIG_OPTIONS, EXIT, INSTANCE_OPTIONS, type CommandDef } from '../command.js';

export const runCommand: CommandDef = {
  name: 'run',
  summary: 'run the farmlb daemon for one node in the foreground',
  options: [
    ...CONFIG_OPTIONS,
    ...INSTANCE_OPTIONS,
    { flags: '--node <name>', description: 'this node\'s name in cluster.xml' },
    { flags: '--static', description: 'serve the table computed from the configured powers, as if every node were up (no membership)' },
    { flags: '--xdp-mode <mode>', description: 'auto (native, falling back to generic), native or generic', defaultValue: 'auto' },
    { flags: '--lease-ms <ms>', description: 'kernel lease: VIP traffic stops this long after the daemon stops renewing', defaultValue: '2000' },
  ],
  examples: [
    'farmlb run --static -c /etc/safekit/farm/userconfig.xml --cluster /etc/safekit/cluster.xml --node node1',
  ],
  async run(ctx, _args, opts) {
    if (!opts.static) throw new FarmlbError('FARMLB_E_RUN_NEEDS_STATIC', {});
    if (typeof opts.node !== 'string') throw new FarmlbError('FARMLB_E_RUN_NO_NODE', {});
    if (typeof opts.cluster !== 'string') throw new FarmlbError('FARMLB_E_RUN_NO_CLUSTER', {});
    const mode = String(opts.xdpMode);
    if (mode !== 'auto' && mode !== 'native' && mode !== 'generic') {
      throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option: '--xdp-mode', value: mode, expected: 'auto, native or generic' });
    }
    const leaseMs = Number(opts.leaseMs);
    if (!Number.isInteger(leaseMs) || leaseMs < 100 || leaseMs > 60_000) {
      throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option: '--lease-ms', value: String(opts.leaseMs), expected: 'an integer from 100 to 60000' });
    }
    const { farm, cluster } = await loadConfigs({ config: String(opts.config), cluster: opts.cluster });
    const paths = instancePaths({ module: opts.module as string ?? farm.farmlb.module, pinDir: opts.pinDir as string | undefined, runDir: opts.runDir as string | undefined });
    const log = createLogger({ bindings: { module: paths.module, node: opts.node } });
    for (const w of farm.warnings) log.warn({ event: 'config_warning', code: w.code, file: w.src.file, line: w.src.line }, w.message);
    const daemon = new StaticDaemon({ farm, cluster: cluster!, node: opts.node, paths, xdpMode: mode, leaseMs, log });

    const stopped = new Promise<void>((resolve) => {
      const onSignal = (sig: NodeJS.Signals) => {
        log.info({ event: 'signal', signal: sig }, 'stopping');
        daemon.stop().finally(resolve);
      };
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
    });
    await daemon.start();
    ctx.out.error(`farmlb: node ${opts.node} serving (module ${paths.module}); SIGTERM or Ctrl-C stops`);
    await stopped;
    return EXIT.OK;
  },
};
