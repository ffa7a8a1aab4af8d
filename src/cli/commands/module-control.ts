// farmlb start | stop | power | drain | undrain: sent to the running daemon over its
// control socket (src/api/control.ts). Power changes go through the membership protocol
// to every node and persist in <run-dir>/powers.json until cleared.

import { controlRequest } from '../../api/control.js';
import type { DaemonStatus } from '../../api/status.js';
import { FarmlbError } from '../../errors.js';
import { EXIT, type CommandDef } from '../command.js';
import { DRAIN_TIMEOUT_DEFAULT_S, describeRemaining, drainTimeoutError, waitForDrain, type DrainRemaining, type DrainWaitResult } from '../drain-wait.js';
import { errorJson, errorText, type Output } from '../output.js';
import { CONTROL_OPTIONS, controlPaths, runControl } from './status.js';

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

export const vipCommand: CommandDef = {
  name: 'vip',
  args: '<open|close>',
  summary: 'open or close the traffic to the VIPs from the module scripts (<vip scriptcontrol="on">); in a script the module is found from SAFEMODULE/FARMLB_RUN_DIR',
  options: CONTROL_OPTIONS,
  examples: ['farmlb vip open', 'farmlb vip close --module web'],
  async run(ctx, args, opts) {
    const [action] = args as [string];
    if (action !== 'open' && action !== 'close') throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option: '<open|close>', value: action, expected: '"open" or "close"' });
    // A module script has its module in the environment (src/daemon/scripts.ts).
    const env = process.env;
    const o = { ...opts };
    if (o.module === undefined && o.config === undefined && o.runDir === undefined) {
      if (env.FARMLB_MODULE ?? env.SAFEMODULE) o.module = env.FARMLB_MODULE ?? env.SAFEMODULE;
      if (env.FARMLB_RUN_DIR) o.runDir = env.FARMLB_RUN_DIR;
    }
    return runControl(ctx, o, { cmd: 'vip', action }, (s) => `module ${s.module} on ${s.node}: VIP traffic ${action === 'open' ? 'opened' : 'closed'}; ${s.state} (${s.stateCause})`);
  },
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
  summary: 'power 0 for a node in every group: new connections go to the others at once, established ones finish on it (until undrain); --wait waits until it is empty',
  options: [
    ...CONTROL_OPTIONS,
    { flags: '--wait', description: 'then wait until the node owns no bucket and hands none over (its last connections closed); exit 124 at --timeout' },
    { flags: '--timeout <seconds>', description: `with --wait: give up after this long (default ${DRAIN_TIMEOUT_DEFAULT_S})` },
  ],
  examples: ['farmlb drain node2', 'farmlb drain node2 --wait', 'farmlb drain node2 --wait --timeout 60 && systemctl stop farmlb@farm',
    'farmlb drain node2 --wait --json | jq .remaining'],
  async run(ctx, args, opts) {
    const node = args[0]!;
    if (opts.timeout !== undefined && !opts.wait) throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option: '--timeout', value: String(opts.timeout), expected: 'to be used with --wait' });
    if (!opts.wait) return runControl(ctx, opts, { cmd: 'drain', node }, (s) => powerLine(s, node));
    const timeoutS = drainTimeout(opts.timeout);
    const paths = await controlPaths(opts);
    const initial = await controlRequest(paths.runDir, { cmd: 'drain', node }, { module: paths.module, timeoutMs: 10_000 }) as DaemonStatus;
    if (!ctx.out.json) ctx.out.print(powerLine(initial, node));
    const progress = progressLine(process.stderr, node, timeoutS);
    let result: DrainWaitResult;
    try {
      result = await waitForDrain({
        node, initial, timeoutMs: timeoutS * 1000,
        fetchStatus: async () => await controlRequest(paths.runDir, { cmd: 'status' }, { module: paths.module }) as DaemonStatus,
        onProgress: progress.update,
      });
    } finally {
      progress.done();
    }
    return reportDrain(ctx.out, result, timeoutS);
  },
};

/** --timeout: seconds, a non-negative number (0 checks once). */
export function drainTimeout(value: unknown): number {
  if (value === undefined) return DRAIN_TIMEOUT_DEFAULT_S;
  if (!/^\d*\.?\d+$/.test(String(value))) {
    throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option: '--timeout', value: String(value), expected: 'seconds (a number, 0 or more)' });
  }
  return Number(value);
}

/**
 * Progress of the wait on a terminal (stderr, redrawn in place), so stdout stays the result
 * alone; nothing when stderr is a pipe or a log.
 */
function progressLine(stream: NodeJS.WriteStream, node: string, timeoutS: number): { update: (r: DrainRemaining, elapsedMs: number) => void; done: () => void } {
  if (stream.isTTY !== true) return { update: () => {}, done: () => {} };
  let drawn = false;
  return {
    update(r, elapsedMs) {
      stream.write(`\r${drainProgressText(node, r, elapsedMs, timeoutS)}\x1b[K`);
      drawn = true;
    },
    done() { if (drawn) stream.write('\r\x1b[K'); },
  };
}

export function drainProgressText(node: string, r: DrainRemaining, elapsedMs: number, timeoutS: number): string {
  return `waiting for ${node} to drain: ${describeRemaining(r)} · ${(elapsedMs / 1000).toFixed(1)} s of ${timeoutS} s`;
}

/** The end of drain --wait: the final state (text or --json), exit 0 drained, 124 timed out. */
export function reportDrain(out: Output, result: DrainWaitResult, timeoutS: number): number {
  const err = result.drained ? undefined : drainTimeoutError(result, timeoutS);
  if (out.json) {
    out.printJson({ ...result, ...(err ? { error: errorJson(err) } : {}) });
  } else if (err) {
    out.error(errorText(err).trimEnd());
  } else {
    const unknown = result.remaining.handoverKnown ? '' : ' (this daemon does not report handovers: only its buckets were waited for)';
    out.print(`${result.node} is drained: it owns no bucket and hands none over (waited ${(result.waitedMs / 1000).toFixed(1)} s)${unknown}`);
  }
  return err ? EXIT.TIMEOUT : EXIT.OK;
}

export const undrainCommand: CommandDef = {
  name: 'undrain',
  args: '<node>',
  summary: 'clear every runtime power override of a node (back to the configured powers)',
  options: CONTROL_OPTIONS,
  examples: ['farmlb undrain node2'],
  run: (ctx, args, opts) => runControl(ctx, opts, { cmd: 'undrain', node: args[0]! }, (s) => powerLine(s, args[0]!)),
};
