// tcpreset (<vip tcpreset="on">, the default; seed 001 §13.6.5): when this node stops
// serving a VIP, the TCP connections that have the VIP as local address are reset, so
// clients fail fast and reconnect (to the new owner) instead of waiting for a timeout.
// `ss -K` destroys each matching socket through sock_diag (needs CONFIG_INET_DIAG_DESTROY);
// the kernel sends the peer a RST. Listening sockets are not matched (ss's default state
// filter leaves them out), so the service keeps listening.

import { execFile } from 'node:child_process';
import { isIPv4 } from 'node:net';
import { promisify } from 'node:util';
import type { Logger } from 'pino';

const exec = promisify(execFile);
const SS_TIMEOUT_MS = 5_000;

export type SsRunner = (args: string[]) => Promise<string>;

/** ss(8) itself. */
export const runSs: SsRunner = async (args) => (await exec('ss', args, { timeout: SS_TIMEOUT_MS })).stdout;

/** `ss` arguments that destroy every non-listening TCP socket whose local address is `vip`. */
export function ssKillArgs(vip: string): string[] {
  return ['-H', '-K', '-t', 'src', isIPv4(vip) ? vip : `[${vip}]`];
}

/** Resets the connections of each VIP; logs and returns how many sockets were destroyed per VIP. Never throws. */
export async function resetVipConnections(vips: readonly string[], log: Logger, why: string, ss: SsRunner = runSs): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const vip of vips) {
    try {
      const out = await ss(ssKillArgs(vip));
      counts[vip] = out.split('\n').filter((l) => l.trim() !== '').length;
      log.info({ event: 'tcpreset', vip, reset: counts[vip], why }, `reset ${counts[vip]} connection(s) of ${vip}`);
    } catch (err) {
      log.warn({ err, event: 'tcpreset_failed', vip, why }, `could not reset the connections of ${vip}`);
    }
  }
  return counts;
}
