// farmlb keygen: writes the heartbeat key file (docs/membership.md "Key file") the way the
// daemon wants it — 32 random bytes as 64 hex characters (copyable, no trailing-newline
// ambiguity between nodes), owner the caller (root on a node), mode 0600 from creation (the
// file is never readable by others, not even for a moment). An existing file is kept unless
// --force: a node whose key differs from the farm's is a partition of its own.
//
// Where: --out, else <farmlb key_file> of the configuration when one is found (the file the
// daemon will read), else /etc/farmlb/<module>.key.

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { loadConfigs } from '../../config/index.js';
import { FarmlbError } from '../../errors.js';
import { EXIT, type CommandDef } from '../command.js';
import { DEFAULT_MODULE, ETC_DIR, defaultConfigFile } from '../default-paths.js';

/** Random bytes in a new key: twice the 16-byte minimum, as corosync-keygen's 128. */
export const KEYGEN_BYTES = 32;

/** The key file the daemon of `module` reads: <farmlb key_file> of its configuration, else the default. */
export async function keyFileFor(module: string | undefined, config: string | undefined): Promise<string> {
  const file = config ?? defaultConfigFile(module);
  if (existsSync(file)) {
    const { farm } = await loadConfigs({ config: file });
    return farm.farmlb.keyFile;
  }
  return path.join(ETC_DIR, `${module ?? DEFAULT_MODULE}.key`);
}

/** Writes a new key to `file` with mode 0600 (replacing one only with `force`); returns its bytes. */
export async function writeKeyFile(file: string, force: boolean): Promise<number> {
  const text = `${randomBytes(KEYGEN_BYTES).toString('hex')}\n`;
  try {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
    // Created 0600 under a temporary name, then renamed: a reader sees the old key or the
    // whole new one, never a partial file or a moment of a wider mode.
    const tmp = `${file}.${process.pid}.tmp`;
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(text);
      await handle.chmod(0o600); // the umask cannot widen it, but a restrictive one is undone
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (!force && existsSync(file)) {
      await unlink(tmp);
      throw new FarmlbError('FARMLB_E_CLI_KEY_EXISTS', { file });
    }
    await rename(tmp, file);
  } catch (err) {
    if (err instanceof FarmlbError) throw err;
    throw new FarmlbError('FARMLB_E_CLI_KEY_WRITE', { file, detail: (err as Error).message }, { cause: err });
  }
  return text.length - 1;
}

export const keygenCommand: CommandDef = {
  name: 'keygen',
  summary: 'write a new heartbeat key file (32 random bytes, mode 0600); copy the same file to every node',
  options: [
    { flags: '--out <file>', description: 'where to write (default: <farmlb key_file> of the configuration, else /etc/farmlb/<module>.key)' },
    { flags: '-c, --config <file>', description: 'userconfig.xml whose <farmlb key_file> to write (default: as every command finds it)' },
    { flags: '--module <name>', description: 'module (default "farm"): the default key file is /etc/farmlb/<module>.key' },
    { flags: '--force', description: 'replace an existing key file (every node then needs the new one)' },
  ],
  examples: [
    'farmlb keygen',
    'farmlb keygen --module web',
    'farmlb keygen --out /etc/farmlb/farm.key --force',
  ],
  async run(ctx, _args, opts) {
    const file = typeof opts.out === 'string'
      ? path.resolve(opts.out)
      : await keyFileFor(opts.module as string | undefined, opts.config as string | undefined);
    const bytes = await writeKeyFile(file, opts.force === true);
    if (ctx.out.json) ctx.out.printJson({ file, bytes, mode: '0600' });
    else ctx.out.print(`${file}: new heartbeat key (${bytes} bytes, mode 0600); copy it to every node with its mode (scp -p, rsync -a)`);
    return EXIT.OK;
  },
};
