// farmlb command-line entry: one command table, commander for parsing and help.

import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { COMMANDS } from './commands/index.js';
import { EXIT, isConfigErrorCode, type CommandDef } from './command.js';
import { applyDefaultPaths } from './default-paths.js';
import { errorJson, errorText, makeOutput } from './output.js';
import { FarmlbError, isFarmlbError } from '../errors.js';

function addCommand(program: Command, def: CommandDef, onExit: (code: number) => void): void {
  const cmd = program.command(def.args ? `${def.name} ${def.args}` : def.name).description(def.summary);
  for (const o of def.options) {
    if (o.defaultValue !== undefined) cmd.option(o.flags, o.description, o.defaultValue);
    else cmd.option(o.flags, o.description);
  }
  cmd.option('--json', 'print the result as JSON');
  if (def.examples.length) {
    cmd.addHelpText('after', `\nExamples:\n${def.examples.map((e) => `  $ ${e}`).join('\n')}\n`);
  }
  cmd.action(async (...params: unknown[]) => {
    // commander passes the positional args, then the options object, then the command.
    const command = params[params.length - 1] as Command;
    const opts = command.opts();
    const args = command.args;
    applyDefaultPaths(opts, command.getOptionValueSource('config') === 'default',
      def.options.some((o) => o.flags.startsWith('--cluster')));
    const out = makeOutput({ json: opts.json === true });
    onExit(await def.run({ out }, args, opts));
  });
}

const TOP_LEVEL_HELP = `
Examples:
  $ farmlb validate /etc/farmlb/farm/userconfig.xml --cluster /etc/farmlb/cluster.xml
  $ farmlb run -c /etc/farmlb/farm/userconfig.xml --cluster /etc/farmlb/cluster.xml --node node1
  $ farmlb status                  module state, view, nodes, lease
  $ farmlb status -q; echo $?      0 STOP, 1 WAIT, 2 UP
  $ farmlb buckets                 the 16×16 owner grid of every group
  $ farmlb buckets --rate          packets/s per bucket as a heat view
  $ farmlb explain 192.0.2.7:40000 10.0.0.100:80/tcp -c userconfig.xml --cluster cluster.xml
  $ farmlb events --follow
  $ farmlb drain node2 --wait      new connections go elsewhere; wait for the existing ones
  $ farmlb undrain node2
  $ farmlb <command> --help        options and examples of one command

Every command takes --json. Exit codes: 0 success, 1 failed (the message names the error
code), 2 usage error, 70 internal error, 78 configuration error; status -q exits with the module state; drain --wait
exits 124 when its --timeout passes before the node is empty.
Colour: on a terminal unless NO_COLOR is set; FORCE_COLOR=1 forces it. See docs/cli.md.
`;

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

const guarded = new WeakSet<NodeJS.WriteStream>();

/**
 * `farmlb … | head`: once the reader is gone, writing to the pipe fails with EPIPE. Like
 * `ls` and `git` (killed quietly by SIGPIPE) the command stops without a word; as ripgrep
 * does, it exits 0, since the reader chose to stop reading. Any other stream error is
 * rethrown as before.
 */
export function exitQuietlyOnClosedPipe(streams: NodeJS.WriteStream[] = [process.stdout, process.stderr],
  exit: (code: number) => void = (code) => process.exit(code)): void {
  for (const stream of streams) {
    // main() may run many times in one process (the unit tests): one listener per stream.
    if (guarded.has(stream)) continue;
    guarded.add(stream);
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') exit(EXIT.OK);
      else throw err;
    });
  }
}

/** A commander parse error as the CLI prints it under --json (docs/cli.md, "Exit codes"). */
function usageError(err: CommanderError): { code: string; message: string; hint: string } {
  const e = new FarmlbError('FARMLB_E_CLI_USAGE', { detail: err.message.replace(/^error: /, '') });
  return errorJson(e) as { code: string; message: string; hint: string };
}

export async function main(argv: string[]): Promise<number> {
  let exitCode: number = EXIT.OK;
  const json = argv.includes('--json');
  exitQuietlyOnClosedPipe();
  const program = new Command('farmlb')
    .description('kernel-assisted farm load balancer (XDP)')
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', TOP_LEVEL_HELP);
  // Before the commands are added, which inherit it: under --json a usage error is printed
  // as {"error": …} on stdout below, not as commander's text.
  if (json) program.configureOutput({ outputError: () => undefined, writeErr: () => undefined });
  for (const def of COMMANDS) addCommand(program, def, (code) => { exitCode = code; });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; every parse error is a usage error.
      if (err.exitCode === 0) return EXIT.OK;
      if (json) process.stdout.write(`${JSON.stringify({ error: usageError(err) })}\n`);
      return EXIT.USAGE;
    }
    if (isFarmlbError(err)) {
      const e = err as Error & { code: string; hint?: string };
      if (json) process.stdout.write(`${JSON.stringify({ error: errorJson(e) })}\n`);
      else process.stderr.write(errorText(e));
      return isConfigErrorCode(e.code) ? EXIT.CONFIG : EXIT.FAILED;
    }
    process.stderr.write(`farmlb: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    return EXIT.INTERNAL;
  }
}
