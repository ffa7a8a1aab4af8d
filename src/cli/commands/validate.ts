import { loadConfigs, configDigest } from '../../config/index.js';
import { configErrorList, formatConfigError } from '../../config/diagnostics.js';
import { isFarmlbError } from '../../errors.js';
import { EXIT, type CommandDef } from '../command.js';
import { defaultConfigFile } from '../default-paths.js';

export const validateCommand: CommandDef = {
  name: 'validate',
  args: '[userconfig]',
  summary: 'check userconfig.xml (and cluster.xml) and report every error with file:line',
  options: [{ flags: '--cluster <file>', description: 'cluster.xml: also check that every <host> is a cluster node' }],
  examples: [
    'farmlb validate userconfig.xml',
    'farmlb validate /etc/safekit/modules/farm/conf/userconfig.xml --cluster /etc/safekit/cluster.xml --json',
  ],
  async run(ctx, args, opts) {
    const config = args[0] ?? defaultConfigFile(undefined);
    const cluster = opts.cluster as string | undefined;
    try {
      const result = await loadConfigs({ config, ...(cluster ? { cluster } : {}) });
      const warnings = result.farm.warnings.map((w) => ({ ...w.src, code: w.code, message: w.message }));
      if (ctx.out.json) {
        ctx.out.printJson({ valid: true, errors: [], warnings, digest: configDigest(result.farm, result.cluster) });
      } else {
        for (const w of result.farm.warnings) ctx.out.error(`${w.src.file}:${w.src.line}:${w.src.column}: warning ${w.code}: ${w.message}`);
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
