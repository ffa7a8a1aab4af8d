import { loadConfigs } from '../../config/index.js';
import { FarmDaemon } from '../../daemon/farm-daemon.js';
import { StaticSource } from '../../daemon/static-source.js';
import { createMembershipSource } from '../../daemon/membership-source.js';
import { loadNative } from '../../addon/native.js';
import { FarmlbError } from '../../errors.js';
import { createLogger, logLevel } from '../../log.js';
import { instancePaths } from '../../paths.js';
import { systemdNotifier } from '../../daemon/systemd.js';
import { CONFIG_OPTIONS, EXIT, INSTANCE_OPTIONS, type CommandDef } from '../command.js';

/** --static: how long the kernel accepts VIP traffic after the daemon stops renewing. */
const STATIC_LEASE_MS = 2000;

function intOption(value: unknown, option: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option, value: String(value), expected: `an integer from ${min} to ${max}` });
  }
  return n;
}

export const runCommand: CommandDef = {
  name: 'run',
  summary: 'run the farmlb daemon for one node in the foreground',
  options: [
    ...CONFIG_OPTIONS,
    ...INSTANCE_OPTIONS,
    { flags: '--node <name>', description: 'this node\'s name in cluster.xml' },
    { flags: '--static', description: 'serve the table computed from the configured powers, as if every node were up (no membership)' },
    { flags: '--xdp-mode <mode>', description: 'auto (native, falling back to generic), native or generic', defaultValue: 'auto' },
    { flags: '--lease-ms <ms>', description: `kernel lease: VIP traffic stops this long after the last renewal (default: ${STATIC_LEASE_MS} with --static, the membership's own otherwise)` },
    { flags: '--health-port <port>', description: 'HTTP health port (default <farmlb health_port>, 9010; 0 = no health server)' },
    { flags: '--log-level <level>', description: 'fatal, error, warn, info, debug or trace (default: $FARMLB_LOG_LEVEL, else info)' },
  ],
  examples: [
    'farmlb run -c /etc/safekit/farm/userconfig.xml --cluster /etc/safekit/cluster.xml --node node1',
    'farmlb run --static -c userconfig.xml --cluster cluster.xml --node node1',
  ],
  async run(_ctx, _args, opts) {
    if (typeof opts.node !== 'string') throw new FarmlbError('FARMLB_E_RUN_NO_NODE', {});
    if (typeof opts.cluster !== 'string') throw new FarmlbError('FARMLB_E_RUN_NO_CLUSTER', {});
    const mode = String(opts.xdpMode);
    if (mode !== 'auto' && mode !== 'native' && mode !== 'generic') {
      throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option: '--xdp-mode', value: mode, expected: 'auto, native or generic' });
    }
    const leaseMs = intOption(opts.leaseMs, '--lease-ms', opts.static ? 100 : 20, 60_000);
    const healthPort = intOption(opts.healthPort, '--health-port', 0, 65_535);
    const { farm, cluster } = await loadConfigs({ config: String(opts.config), cluster: opts.cluster });
    const paths = instancePaths({ module: opts.module as string ?? farm.farmlb.module, pinDir: opts.pinDir as string | undefined, runDir: opts.runDir as string | undefined });
    const log = createLogger({ bindings: { module: paths.module, node: opts.node }, level: logLevel(typeof opts.logLevel === 'string' ? opts.logLevel : undefined) });
    // systemd Type=notify (packaging/farmlb@.service): READY=1 once serving or waiting for
    // the view, RELOADING=1 around reloads, WATCHDOG=1 from the event loop.
    const notifier = systemdNotifier({ send: (p, m) => loadNative().unixDatagramSend(p, m) });
    for (const w of [...farm.warnings, ...(cluster?.warnings ?? [])]) log.warn({ event: 'config_warning', code: w.code, file: w.src.file, line: w.src.line }, w.message);
    const nowNs = () => loadNative().monotonicNs();
    const source = opts.static
      ? new StaticSource({ farm, cluster: cluster!, node: opts.node, leaseMs: leaseMs ?? STATIC_LEASE_MS, nowNs })
      : await createMembershipSource({ farm, cluster: cluster!, node: opts.node, paths, log: log.child({ room: 'membership' }), nowNs, ...(leaseMs !== undefined ? { leaseMs } : {}) });
    const daemon = new FarmDaemon({
      farm, cluster: cluster!, node: opts.node, paths, xdpMode: mode, log, source,
      ...(healthPort !== undefined ? { healthPort } : {}),
      notifier,
    });

    const stopped = new Promise<void>((resolve) => {
      const onSignal = (sig: NodeJS.Signals) => {
        log.info({ event: 'signal', signal: sig }, 'stopping');
        notifier.stopWatchdog();
        notifier.stopping();
        daemon.stop().finally(resolve);
      };
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
    });
    await daemon.start();
    const running = `node ${opts.node} running (module ${paths.module}, ${daemon.mode}); SIGTERM or Ctrl-C stops`;
    notifier.ready(running);
    notifier.startWatchdog();
    // Through the logger, so the NDJSON stream stays JSON (docs/cli.md "Logs"); a person at a
    // terminal reads it through pino-pretty.
    log.info({ event: 'running', mode: daemon.mode, systemd: notifier.active, watchdogMs: notifier.watchdogIntervalMs }, running);
    await stopped;
    return EXIT.OK;
  },
};
