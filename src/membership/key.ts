// The heartbeat key (<farmlb key_file>): the same bytes on every node. A key others can read
// lets them forge heartbeats (take every bucket, or none), so a world-accessible file is
// refused; group access only warns (some sites keep keys root:ssl-cert 0640).

import { readFile, stat } from 'node:fs/promises';
import { FarmlbError } from '../errors.js';

export const MIN_KEY_BYTES = 16;

/**
 * Reads and checks the key file; throws FARMLB_E_MEMBERSHIP_KEY_MISSING / _SHORT /
 * _PERMISSIONS. `onWarning` hears about a group-accessible file.
 */
export async function loadKey(file: string, onWarning?: (message: string) => void): Promise<Buffer> {
  let mode: number;
  let content: Buffer;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new Error('not a regular file');
    mode = st.mode & 0o777;
    content = await readFile(file);
  } catch (err) {
    throw new FarmlbError('FARMLB_E_MEMBERSHIP_KEY_MISSING', { file, detail: (err as Error).message }, { cause: err });
  }
  if (mode & 0o007) {
    throw new FarmlbError('FARMLB_E_MEMBERSHIP_KEY_PERMISSIONS', { file, mode: `0${mode.toString(8)}` });
  }
  // `echo secret > key` adds a newline the other nodes' files may not have.
  let end = content.length;
  while (end > 0 && (content[end - 1] === 0x0a || content[end - 1] === 0x0d)) end--;
  const key = content.subarray(0, end);
  if (key.length < MIN_KEY_BYTES) {
    throw new FarmlbError('FARMLB_E_MEMBERSHIP_KEY_SHORT', { file, bytes: key.length, min: MIN_KEY_BYTES });
  }
  if (mode & 0o070) onWarning?.(`key file ${file} is accessible to its group (mode 0${mode.toString(8)}); 0600 is advised`);
  return Buffer.from(key);
}

/** Another name for loadKey. */
export const loadHeartbeatKey = loadKey;
