// `farmlb checks`: every resource checked on this node — the <vip> checks and the checkers
// and processes of <check> and <errd> — with its state, last result, counts and last change
// (docs/application.md). Read from the running daemon's status; --json prints the list as is.

import { controlRequest } from '../../api/control.js';
import type { CheckerStatus, DaemonStatus } from '../../api/status.js';
import { EXIT, type CommandDef } from '../command.js';
import { bold, dim, type Output } from '../output.js';
import { CONTROL_OPTIONS, controlPaths } from './status.js';

function ago(atMs: number | undefined, now: number): string {
  if (atMs === undefined) return '-';
  const s = Math.max(0, Math.round((now - atMs) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

/** The table `farmlb checks` prints, one line per resource. */
export function renderChecks(out: Output, status: Pick<DaemonStatus, 'checkers' | 'application' | 'state' | 'stateCause'>, now = Date.now()): string {
  const list: CheckerStatus[] = status.checkers ?? [];
  if (list.length === 0) return 'no checker configured (docs/application.md)';
  const rows = list.map((c) => [
    c.resource,
    c.state === 'down' ? bold(out, 'down') : c.state,
    c.effectiveAction === c.action ? c.action : `${c.action}→${c.effectiveAction}`,
    c.target,
    c.lastResult ? `${c.lastResult.ok ? 'ok' : 'failed'}: ${c.lastResult.detail}` : '-',
    `${c.probes}/${c.failures}`,
    `${c.fall}/${c.rise}`,
    ago(c.lastChangeMs, now),
  ]);
  const head = ['RESOURCE', 'STATE', 'ACTION', 'TARGET', 'LAST RESULT', 'PROBES/FAILED', 'FALL/RISE', 'CHANGED'];
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => stripAnsi(r[i]!).length)));
  const line = (r: string[]) => r.map((x, i) => (i === r.length - 1 ? x : x + ' '.repeat(width[i]! - stripAnsi(x).length))).join('  ');
  const lines = [dim(out, line(head)), ...rows.map(line)];
  const app = status.application;
  if (app) {
    const scripts = app.scripts ? `application ${app.phase}` : 'no module scripts (<user>): restart and stopstart act as wait';
    lines.push('', `${scripts}; restarts ${app.loops} of maxloop ${app.maxloop}${app.stoppedBy ? ` — ${bold(out, app.stoppedBy)}` : ''}`);
  }
  lines.push(`module ${status.state}: ${status.stateCause}`);
  return lines.join('\n');
}

function stripAnsi(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, '');
}

export const checksCommand: CommandDef = {
  name: 'checks',
  summary: 'show the checkers and monitored processes of the running daemon: state, last result, counts, last change',
  options: [...CONTROL_OPTIONS],
  examples: ['farmlb checks', 'farmlb checks --json | jq \'.[] | select(.state == "down") | .resource\''],
  async run(ctx, _args, opts) {
    const paths = await controlPaths(opts);
    const status = await controlRequest(paths.runDir, { cmd: 'status' }, { module: paths.module }) as DaemonStatus;
    if (ctx.out.json) ctx.out.printJson(status.checkers ?? []);
    else ctx.out.print(renderChecks(ctx.out, status));
    return EXIT.OK;
  },
};
