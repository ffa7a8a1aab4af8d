// farmlb start | stop | power | drain | undrain: sent to the running daemon over its
// control socket (src/api/control.ts). Power changes go through the membership protocol
// to every node and persist in <run-dir>/powers.json until cleared.

import { FarmlbError } from '../../errors.js';
import type { DaemonStatus } from '../../api/status.js';
import type { CommandDef } from '../command.js';
import { CONTROL_OPTIONS, runControl } from './status.js';

function powerLine(s: DaemonStatus, node: string): string {
  const n = s.nodes.find((x) => x.name === node);
  if (!n) return `module ${s.module}: ${s.state}`;
  const per = s.groups.map((g) => `${g} power ${n.power[g] ?? 0}, ${n.buckets[g] ?? 0} buckets`).join('; ');
  return `${node}: ${per}${n.overridden ? ' (runtime override)' : ' (configured powers)'} — the table follows once the leader rebalances`;
}

export const startCommand: CommandDef = {
  name: 'start',
  summary: 'let the module go UP again after farmlb stop (re-adds a VIP alias removed by hand)',
  options: CONTROL_OPTIONS,
  examples: ['farmlb start', 'farmlb start --module web'],
  run: (ctx, _args, opts) => runControl(ctx, opts, { cmd: 'start' },
    (s) => `module ${s.module} on ${s.node}: ${s.state}${s.state === 'UP' ? '' : ` (${s.stateCause}; it goes UP when the membership agrees)`}`),
};

export const stopCommand: CommandDef = {
  name: 'stop',
  summary: 'hold the module in WAIT: it serves nothing and its buckets go to the other nodes (the daemon keeps running)',
  options: CONTROL_OPTIONS,
  examples: ['farmlb stop', 'farmlb stop --module web'],
  run: (ctx, _args, opts) => runControl(ctx, opts, { cmd: 'stop' }, (s) => `module ${s.module} on ${s.node}: ${s.state} (${s.stateCause})`),
};

export const powerCommand: CommandDef = {
  name: 'power',
  args: '<node> <power>',
  summary: 'set a node\'s power at run time (every group, or --group); "clear" returns to the configured power',
  options: [...CONTROL_OPTIONS, { flags: '--group <name>', description: 'only this group (default: every group)' }],
  examples: ['farmlb power node2 3', 'farmlb power node2 0 --group web', 'farmlb power node2 clear'],
  async run(ctx, args, opts) {
    const [node, value] = args as [string, string];
    let power: number | null;
    if (value === 'clear') power = null;
    else {
      power = Number(value);
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(power)) {
        throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option: '<power>', value, expected: 'a non-negative integer, or "clear"' });
      }
    }
    const req = { cmd: 'power', node, power, ...(typeof opts.group === 'string' ? { group: opts.group } : {}) };
    return runControl(ctx, opts, req, (s) => powerLine(s, node));
  },
};

export const drainCommand: CommandDef = {
  name: 'drain',
  args: '<node>',
  summary: 'power 0 for a node in every group: its buckets move to the others (until undrain)',
  options: CONTROL_OPTIONS,
  examples: ['farmlb drain node2'],
  run: (ctx, args, opts) => runControl(ctx, opts, { cmd: 'drain', node: args[0]! }, (s) => powerLine(s, args[0]!)),
};

export const undrainCommand: CommandDef = {
  name: 'undrain',
  args: '<node>',
  summary: 'clear every runtime power override of a node (back to the configured powers)',
  options: CONTROL_OPTIONS,
  examples: ['farmlb undrain node2'],
  run: (ctx, args, opts) => runControl(ctx, opts, { cmd: 'undrain', node: args[0]! }, (s) => powerLine(s, args[0]!)),
};
