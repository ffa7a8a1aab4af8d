// The heartbeat key (<farmlb key_file>): the same bytes on every node. Whoever can read it
// forges heartbeats (takes every bucket, or none); whoever can replace it, or the directory
// it is in, chooses the key. So, as corosync does for its authkey: the file must belong to
// root (or to the user the daemon runs as), be accessible to its owner only (0400 or 0600),
// in a directory nobody else can write to, and not be an obviously weak key
// (docs/security.md, "The key"). `farmlb keygen` writes one that passes (generateKeyFile).
//
// Each key has an id (keyId): the first 4 bytes of SHA-256 over a label and the key, sent in
// every heartbeat so that a receiver picks the key without trying each, and a node with
// another key is reported with the id it signs with. Knowing an id tells nothing of the key.

import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, mkdir, open, readFile, realpath, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { FarmlbError } from '../errors.js';

export const MIN_KEY_BYTES = 16;
/** Larger is refused unread: a key_file naming a log or a device by mistake. */
export const MAX_KEY_BYTES = 4096;
/** Bytes `farmlb keygen` draws (written as hex). */
export const GENERATED_KEY_BYTES = 32;
/**
 * Below this estimate a key is refused as weak. The estimate (byte frequencies) undercounts
 * short keys: 16 random hex digits, 64 bits, usually estimate 50-56; keygen's 64 hex digits
 * estimate ~240.
 */
export const MIN_KEY_BITS = 48;

const KEY_ID_LABEL = 'farmlb heartbeat key id\u0000';

/** Ids of the keys in use, by identity: the receive path asks for them per datagram. */
const idCache = new WeakMap<Buffer, Buffer>();

/** The 4-byte id of `key` carried in every heartbeat (FLB2 frames). */
export function keyIdBytes(key: Buffer): Buffer {
  let id = idCache.get(key);
  if (!id) {
    id = createHash('sha256').update(KEY_ID_LABEL).update(key).digest().subarray(0, 4);
    idCache.set(key, id);
  }
  return id;
}

/** keyIdBytes as 8 hex digits, as logs, status and `farmlb keygen` show it. */
export function keyId(key: Buffer): string {
  return keyIdBytes(key).toString('hex');
}

/**
 * Why `key` is obviously weak, or undefined. An estimate from the bytes themselves (their
 * frequencies, a repeated pattern): it catches "16 spaces", "abcabcabc…" and short
 * alphabets, not a guessable passphrase — which is why keygen draws random bytes.
 */
export function keyWeakness(key: Buffer): string | undefined {
  for (let period = 1; period <= key.length / 2; period++) {
    let repeats = true;
    for (let i = period; i < key.length && repeats; i++) repeats = key[i] === key[i - period];
    if (repeats) return period === 1 ? 'every byte is the same' : `it repeats a pattern of ${period} bytes`;
  }
  const counts = new Map<number, number>();
  for (const b of key) counts.set(b, (counts.get(b) ?? 0) + 1);
  let bitsPerByte = 0;
  for (const c of counts.values()) {
    const p = c / key.length;
    bitsPerByte -= p * Math.log2(p);
  }
  const bits = bitsPerByte * key.length;
  if (bits < MIN_KEY_BITS) return `its bytes carry about ${Math.floor(bits)} bits (at least ${MIN_KEY_BITS} needed)`;
  return undefined;
}

/** The effective uid the files must belong to (root, or the user running this process). */
function acceptableOwner(uid: number): boolean {
  const self = process.geteuid?.();
  return uid === 0 || self === undefined || uid === self;
}

/**
 * Reads and checks the key file; throws FARMLB_E_MEMBERSHIP_KEY_MISSING / _PERMISSIONS /
 * _OWNER / _DIRECTORY / _SHORT / _LONG / _WEAK. `onWarning` is kept for callers of the
 * releases before this one (group access used to warn; it is refused now).
 */
export async function loadKey(file: string, _onWarning?: (message: string) => void): Promise<Buffer> {
  let st;
  let dir;
  let content: Buffer;
  try {
    st = await stat(file);
    if (!st.isFile()) throw new Error('not a regular file');
    // The directory the file really is in (a symbolic link's target's).
    dir = path.dirname(await realpath(file));
  } catch (err) {
    throw new FarmlbError('FARMLB_E_MEMBERSHIP_KEY_MISSING', { file, detail: (err as Error).message }, { cause: err });
  }
  if (!acceptableOwner(st.uid)) throw new FarmlbError('FARMLB_E_MEMBERSHIP_KEY_OWNER', { file, what: 'file', uid: st.uid });
  const mode = st.mode & 0o777;
  if (mode & 0o077) throw new FarmlbError('FARMLB_E_MEMBERSHIP_KEY_PERMISSIONS', { file, mode: `0${mode.toString(8)}` });
  const dst = await stat(dir).catch((err: Error) => {
    throw new FarmlbError('FARMLB_E_MEMBERSHIP_KEY_MISSING', { file, detail: err.message }, { cause: err });
  });
  if (!acceptableOwner(dst.uid)) throw new FarmlbError('FARMLB_E_MEMBERSHIP_KEY_OWNER', { file: dir, what: 'directory', uid: dst.uid });
  if (dst.mode & 0o022) {
    throw new FarmlbError('FARMLB_E_MEMBERSHIP_KEY_DIRECTORY', { file, dir, mode: `0${(dst.mode & 0o7777).toString(8)}` });
  }
  if (st.size > MAX_KEY_BYTES + 2) throw new FarmlbError('FARMLB_E_MEMBERSHIP_KEY_LONG', { file, bytes: st.size, max: MAX_KEY_BYTES });
  try {
    content = await readFile(file);
  } catch (err) {
    throw new FarmlbError('FARMLB_E_MEMBERSHIP_KEY_MISSING', { file, detail: (err as Error).message }, { cause: err });
  }
  // `echo secret > key` adds a newline the other nodes' files may not have.
  let end = content.length;
  while (end > 0 && (content[end - 1] === 0x0a || content[end - 1] === 0x0d)) end--;
  const key = content.subarray(0, end);
  if (key.length < MIN_KEY_BYTES) {
    throw new FarmlbError('FARMLB_E_MEMBERSHIP_KEY_SHORT', { file, bytes: key.length, min: MIN_KEY_BYTES });
  }
  if (key.length > MAX_KEY_BYTES) throw new FarmlbError('FARMLB_E_MEMBERSHIP_KEY_LONG', { file, bytes: key.length, max: MAX_KEY_BYTES });
  const weak = keyWeakness(key);
  if (weak) throw new FarmlbError('FARMLB_E_MEMBERSHIP_KEY_WEAK', { file, detail: weak });
  return Buffer.from(key);
}

/** Another name for loadKey. */
export const loadHeartbeatKey = loadKey;

/**
 * Writes a new key (GENERATED_KEY_BYTES random bytes as hex and a newline) to `file`, mode
 * 0600, creating its directory (0755) when missing; refuses to replace an existing file
 * unless `force` (then replaced atomically: a daemon reading it never sees half a key).
 * The result passes loadKey's checks, which run on it before returning its id.
 */
export async function generateKeyFile(file: string, opts: { force?: boolean } = {}): Promise<{ file: string; keyId: string }> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  const key = Buffer.from(`${randomBytes(GENERATED_KEY_BYTES).toString('hex')}\n`);
  const target = opts.force ? `${file}.${process.pid}.tmp` : file;
  let handle;
  try {
    handle = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EEXIST') throw new FarmlbError('FARMLB_E_CLI_KEY_EXISTS', { file: target });
    throw new FarmlbError('FARMLB_E_MEMBERSHIP_KEY_MISSING', { file: target, detail: e.message }, { cause: err });
  }
  try {
    await handle.writeFile(key);
    await handle.sync();
  } finally {
    await handle.close();
  }
  // The umask may have taken bits the open asked for; say the mode exactly.
  await chmod(target, 0o600);
  if (target !== file) {
    try {
      await rename(target, file);
    } catch (err) {
      await unlink(target).catch(() => undefined);
      throw new FarmlbError('FARMLB_E_MEMBERSHIP_KEY_MISSING', { file, detail: (err as Error).message }, { cause: err });
    }
  }
  return { file, keyId: keyId(await loadKey(file)) };
}
