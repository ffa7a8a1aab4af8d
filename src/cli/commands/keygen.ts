// farmlb keygen: writes a heartbeat key file as corosync-keygen does its authkey — random
// bytes (32, as hex), mode 0600, in a root-only-writable directory — so the quickstart needs
// no `head -c … /dev/urandom` recipe. The same file goes to every node (scp -p). Its key id
// is printed: status and the logs name nodes by the id of the key they sign with.

import path from 'node:path';
import { generateKeyFile } from '../../membership/key.js';
import { EXIT, type CommandDef } from '../command.js';
import { DEFAULT_MODULE, ETC_DIR } from '../default-paths.js';
import { instancePaths } from '../../paths.js';

export const keygenCommand: CommandDef = {
  name: 'keygen',
  summary: 'write a new random heartbeat key file (mode 0600), the same file for every node',
  options: [
    { flags: '--module <name>', description: `module whose default key file is written: ${ETC_DIR}/<module>.key (default "${DEFAULT_MODULE}")` },
    { flags: '--key-file <file>', description: 'write this file instead (what <farmlb key_file> names)' },
    { flags: '--force', description: 'replace an existing key file (atomically); a farm whose nodes disagree on the key splits: see docs/security.md for rotation', defaultValue: false },
  ],
  examples: [
    'farmlb keygen',
    'farmlb keygen --module web',
    'farmlb keygen --key-file /etc/farmlb/farm.key.next   # a second key, for a rotation',
  ],
  async run(ctx, _args, opts) {
    // The module's charset is checked as for every command: it becomes a path here.
    const { module } = instancePaths(typeof opts.module === 'string' ? { module: opts.module } : {});
    const file = typeof opts.keyFile === 'string' ? path.resolve(opts.keyFile) : path.join(ETC_DIR, `${module}.key`);
    const written = await generateKeyFile(file, { force: opts.force === true });
    if (ctx.out.json) ctx.out.printJson(written);
    else ctx.out.print(`wrote ${written.file} (key id ${written.keyId}, mode 0600): copy it to every node, keeping its mode (scp -p, rsync -a)`);
    return EXIT.OK;
  },
};
