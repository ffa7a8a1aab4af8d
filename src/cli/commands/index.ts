// The command table: every `farmlb` sub-command, in the order `--help` lists them.
import type { CommandDef } from '../command.js';
import { bucketsCommand } from './buckets.js';
import { checksCommand } from './checks.js';
import { completionCommand } from './completion.js';
import { confinfoCommand } from './confinfo.js';
import { corosyncConfCommand } from './corosync-conf.js';
import { eventsCommand } from './events.js';
import { explainCommand } from './explain.js';
import { keygenCommand } from './keygen.js';
import { drainCommand, powerCommand, startCommand, stopCommand, undrainCommand, vipCommand } from './module-control.js';
import { reloadCommand } from './reload.js';
import { runCommand } from './run.js';
import { statusCommand } from './status.js';
import { validateCommand } from './validate.js';

export const COMMANDS: CommandDef[] = [
  runCommand, statusCommand, checksCommand, startCommand, stopCommand, vipCommand, powerCommand, drainCommand, undrainCommand,
  reloadCommand, validateCommand, keygenCommand, confinfoCommand, corosyncConfCommand, bucketsCommand, explainCommand, eventsCommand,
  completionCommand(() => COMMANDS),
];
