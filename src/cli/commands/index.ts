// The command table: every `farmlb` sub-command, in the order `--help` lists them.
import type { CommandDef } from '../command.js';
import { bucketsCommand } from './buckets.js';
import { confinfoCommand } from './confinfo.js';
import { corosyncConfCommand } from './corosync-conf.js';
import { eventsCommand } from './events.js';
import { explainCommand } from './explain.js';
import { drainCommand, powerCommand, startCommand, stopCommand, undrainCommand } from './module-control.js';
import { reloadCommand } from './reload.js';
import { runCommand } from './run.js';
import { statusCommand } from './status.js';
import { validateCommand } from './validate.js';

export const COMMANDS: CommandDef[] = [
  runCommand, statusCommand, startCommand, stopCommand, powerCommand, drainCommand, undrainCommand,
  reloadCommand, validateCommand, confinfoCommand, corosyncConfCommand, bucketsCommand, explainCommand, eventsCommand,
];
