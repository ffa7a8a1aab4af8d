// The systemd service protocol (sd_notify(3), systemd.service(5) Type=notify and
// WatchdogSec=): farmlb tells the service manager when it is ready, when it reloads and
// that its event loop is alive. Outside systemd (no NOTIFY_SOCKET) every call does nothing.
//
// The datagram goes through the addon (native/sdnotify.cc): Node has no Unix datagram
// sockets, and the protocol is one sendto(). docs/cli.md ("systemd") describes the unit.

import { FarmlbError } from '../errors.js';

export interface NotifyTransport {
  send(socketPath: string, message: string): void;
}

export interface SystemdNotifier {
  /** Whether NOTIFY_SOCKET was set: the service manager waits for READY=1. */
  readonly active: boolean;
  /** The keep-alive period (half of WatchdogSec), or undefined when no watchdog is set for this process. */
  readonly watchdogIntervalMs: number | undefined;
  ready(status?: string): void;
  reloading(): void;
  stopping(): void;
  status(text: string): void;
  /** Sends WATCHDOG=1 from a timer on the event loop: a blocked loop stops them, and systemd restarts the daemon. */
  startWatchdog(): void;
  stopWatchdog(): void;
}

/** Environment read once; a test passes its own. */
export function systemdNotifier(transport: NotifyTransport, env: NodeJS.ProcessEnv = process.env, pid = process.pid): SystemdNotifier {
  const socketPath = env.NOTIFY_SOCKET && env.NOTIFY_SOCKET !== '' ? env.NOTIFY_SOCKET : undefined;
  const watchdogIntervalMs = watchdogInterval(env, pid);
  let timer: NodeJS.Timeout | undefined;
  const send = (message: string) => {
    if (!socketPath) return;
    try {
      transport.send(socketPath, message);
    } catch (err) {
      // The addon already names the socket and the call (and throws this very code).
      if (err instanceof FarmlbError) throw err;
      throw new FarmlbError('FARMLB_E_RUN_NOTIFY', { detail: `${socketPath}: ${err instanceof Error ? err.message : String(err)}` }, { cause: err });
    }
  };
  return {
    active: socketPath !== undefined,
    watchdogIntervalMs,
    ready: (status) => send(status ? `READY=1\nSTATUS=${oneLine(status)}` : 'READY=1'),
    // MONOTONIC_USEC lets a systemd that supports Type=notify-reload match the reload.
    reloading: () => send(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`),
    stopping: () => send('STOPPING=1'),
    status: (text) => send(`STATUS=${oneLine(text)}`),
    startWatchdog() {
      if (!socketPath || watchdogIntervalMs === undefined || timer) return;
      timer = setInterval(() => send('WATCHDOG=1'), watchdogIntervalMs);
      timer.unref();
      send('WATCHDOG=1');
    },
    stopWatchdog() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}

/**
 * WATCHDOG_USEC applies to this process when WATCHDOG_PID is unset or ours (sd_watchdog_enabled(3)).
 * Keep-alives go at half the period, as systemd.service(5) recommends.
 */
export function watchdogInterval(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isSafeInteger(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== '' && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}
