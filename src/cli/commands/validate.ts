import { loadConfigs, configDigest } from '../../config/index.js';
import { configErrorList, formatConfigError } from '../../config/diagnostics.js';
import { FarmlbError, isFarmlbError } from '../../errors.js';
import { EXIT, type CommandDef } from '../command.js';
import { defaultConfigFile } from '../default-paths.js';

export const validateCommand: CommandDef = {
  name: 'validate',
  args: '[userconfig]',
  summary: 'check userconfig.xml (and cluster.xml) and report every error with file:line',
  options: [
    // Like every other command; the positional argument stays for SafeKit habits.
    { flags: '-c, --config <file>', description: 'userconfig.xml (or give it as the argument); - reads it from stdin' },
    { flags: '--cluster <file>', description: 'cluster.xml: also check that every <host> is a cluster node' },
  ],
  examples: [
    'farmlb validate userconfig.xml',
    'farmlb validate -c /etc/farmlb/farm/userconfig.xml --cluster /etc/farmlb/cluster.xml --json',
    'ssh node2 cat /etc/farmlb/farm/userconfig.xml | farmlb validate -',
  ],
  async run(ctx, args, opts) {
    const flag = opts.config as string | undefined;
    if (args[0] !== undefined && flag !== undefined && args[0] !== flag) {
      throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option: '-c/--config', value: flag, expected: `one userconfig.xml: ${args[0]} was also given as the argument` });
    }
    const given = args[0] ?? flag;
    const fromStdin = given === '-';
    const config = fromStdin ? '<stdin>' : given ?? defaultConfigFile(undefined);
    const cluster = opts.cluster as string | undefined;
    try {
      const configText = fromStdin ? await readStdin() : undefined;
      const result = await loadConfigs({ config, ...(cluster ? { cluster } : {}), ...(configText !== undefined ? { configText } : {}) });
      // Both files' warnings: cluster.xml's (an unknown section, an attribute farmlb ignores) too.
      const all = [...result.farm.warnings, ...(result.cluster?.warnings ?? [])];
      const warnings = all.map((w) => ({ ...w.src, code: w.code, message: w.message }));
      if (ctx.out.json) {
        ctx.out.printJson({ valid: true, errors: [], warnings, digest: configDigest(result.farm, result.cluster) });
      } else {
        for (const w of all) ctx.out.error(`${w.src.file}:${w.src.line}:${w.src.column}: warning ${w.code}: ${w.message}`);
        const app = result.farm.app;
        const appText = app && (app.checkers.length || app.procs.length || app.scripts)
          ? `, ${app.checkers.length} checker(s), ${app.procs.length} process(es) monitored${app.scripts ? ', module scripts' : ''}` : '';
        ctx.out.print(`${config}: valid (${result.farm.cloud ? 'cloud farm, no VIP' : `${result.farm.vips.length} VIP(s), ${result.farm.groups.length} group(s)`}${appText}` +
          `${result.cluster ? `, ${result.cluster.nodes.length} node(s) in ${cluster}` : ''})`);
      }
      return EXIT.OK;
    } catch (err) {
      const errors = configErrorList(err);
      if (!isFarmlbError(err) || errors.length === 0) throw err;
      if (ctx.out.json) {
        ctx.out.printJson({
          valid: false,
          errors: errors.map((e) => ({ code: e.code, message: e.text ?? e.message, hint: e.hint, ...e.location })),
          warnings: [],
        });
      } else {
        for (const e of errors) ctx.out.error(formatConfigError(e));
        ctx.out.error(`${errors.length} error(s)`);
      }
      return EXIT.CONFIG;
    }
  },
};

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
