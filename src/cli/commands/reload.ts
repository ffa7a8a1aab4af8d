// farmlb reload: asks the running daemon to re-read its configuration files (what SIGHUP
// does) and waits for the answer, so `systemctl reload` (ExecReload=, packaging/) fails
// when the daemon refuses the new configuration instead of reporting success.

import type { DaemonStatus } from '../../api/status.js';
import { type CommandDef } from '../command.js';
import { CONTROL_OPTIONS, runControl } from './status.js';

export const reloadCommand: CommandDef = {
  name: 'reload',
  summary: 'make the running daemon re-read userconfig.xml and cluster.xml; fails (exit 1) when it refuses them',
  options: CONTROL_OPTIONS,
  examples: ['farmlb reload', 'farmlb reload --module web'],
  run: (ctx, _args, opts) => runControl(ctx, opts, { cmd: 'reload' },
    (s: DaemonStatus) => s.stagedDigest
      ? `module ${s.module} on ${s.node}: configuration ${s.stagedDigest.slice(0, 12)} staged; every node switches to it once every node has it (farmlb reload on each), ${s.state}`
      : `module ${s.module} on ${s.node}: configuration reloaded (digest ${s.configDigest}), ${s.state}`),
};
