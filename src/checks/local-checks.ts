// The checks SafeKit turns on by default for a farm <vip> (seed 001 §13.6.5):
// `<interface check="on">` — the interface's link is up (operational state), and
// `<virtual_addr check="on">` — the VIP is still configured on it. A failing check moves the
// module to WAIT (it serves nothing; its buckets go to the others), and it returns to UP
// when the checks pass again.
//
// Polled, not event-driven: the daemon runs in a network namespace entered with
// `nsenter --net` only, so /sys/class/net shows the *root* namespace's interfaces
// (LAB-NOTES); getifaddrs (os.networkInterfaces, netlink in the caller's namespace) is
// cheap and correct. It lists only interfaces that are IFF_UP and IFF_RUNNING, so one call
// answers both checks when all is well; when it does not list what a check wants, `ip`
// confirms (and tells link down from a missing address) before the check fails.

import { execFile } from 'node:child_process';
import os from 'node:os';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export type CheckTarget =
  | { kind: 'interface'; ifname: string }
  | { kind: 'vip'; ifname: string; addr: string };

export interface CheckFailure {
  kind: CheckTarget['kind'];
  /** The interface, or the VIP. */
  target: string;
  detail: string;
}

export interface CheckResult {
  ok: boolean;
  failures: CheckFailure[];
}

/** How the checks see the system (a fake in unit tests). */
export interface CheckProbe {
  /** Addresses per interface of the interfaces that are up and running (os.networkInterfaces shape). */
  upInterfaces(): Record<string, { address: string }[] | undefined>;
  /** The interface's operational state (`ip link`: UP, DOWN, LOWERLAYERDOWN, UNKNOWN…); undefined = no such interface. */
  operState(ifname: string): Promise<string | undefined>;
  /** Whether the address is configured on the interface (`ip addr`). */
  hasAddr(ifname: string, addr: string): Promise<boolean>;
}

const IP_TIMEOUT_MS = 2_000;

export const systemProbe: CheckProbe = {
  upInterfaces: () => os.networkInterfaces(),
  async operState(ifname) {
    try {
      const { stdout } = await exec('ip', ['-j', 'link', 'show', 'dev', ifname], { timeout: IP_TIMEOUT_MS });
      return (JSON.parse(stdout) as { operstate?: string }[])[0]?.operstate ?? 'UNKNOWN';
    } catch {
      return undefined;
    }
  },
  async hasAddr(ifname, addr) {
    try {
      const { stdout } = await exec('ip', ['-j', 'addr', 'show', 'dev', ifname], { timeout: IP_TIMEOUT_MS });
      return (JSON.parse(stdout) as { addr_info?: { local: string }[] }[])
        .some((l) => (l.addr_info ?? []).some((a) => sameAddr(a.local, addr)));
    } catch {
      return false;
    }
  },
};

function sameAddr(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** UP, and UNKNOWN (drivers that do not report operstate, e.g. some virtual devices), count as up. */
function linkUp(state: string | undefined): boolean {
  return state === 'UP' || state === 'UNKNOWN';
}

/** Runs every check once. */
export async function runChecks(targets: readonly CheckTarget[], probe: CheckProbe = systemProbe): Promise<CheckResult> {
  const up = probe.upInterfaces();
  const failures: CheckFailure[] = [];
  const linkDown = new Set<string>();
  for (const t of targets.filter((x) => x.kind === 'interface')) {
    if (up[t.ifname]) continue;
    const state = await probe.operState(t.ifname);
    if (linkUp(state)) continue;
    linkDown.add(t.ifname);
    failures.push({ kind: 'interface', target: t.ifname, detail: state === undefined ? 'no such interface' : `link ${state.toLowerCase()}` });
  }
  for (const t of targets) {
    if (t.kind !== 'vip') continue;
    if ((up[t.ifname] ?? []).some((a) => sameAddr(a.address, t.addr))) continue;
    if (await probe.hasAddr(t.ifname, t.addr)) continue;
    failures.push({ kind: 'vip', target: t.addr, detail: `not configured on ${t.ifname}${linkDown.has(t.ifname) ? ' (link down)' : ''}` });
  }
  return { ok: failures.length === 0, failures };
}

/** One line for logs and status: "interface flbn: link down; VIP 10.0.0.1: not configured on flbn". */
export function describeFailures(failures: readonly CheckFailure[]): string {
  return failures.map((f) => `${f.kind === 'interface' ? 'interface' : 'VIP'} ${f.target}: ${f.detail}`).join('; ');
}

export interface CheckPollerOptions {
  targets: readonly CheckTarget[];
  intervalMs: number;
  /** Called with every result whose verdict (ok, and which checks fail) differs from the last one. */
  onChange: (result: CheckResult) => void;
  probe?: CheckProbe;
}

/** Runs the checks every `intervalMs`; one poll at a time (a slow `ip` never stacks polls). */
export class CheckPoller {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private lastKey: string | undefined;
  private lastResult: CheckResult = { ok: true, failures: [] };

  constructor(private readonly opts: CheckPollerOptions) {}

  start(): void {
    if (this.timer || this.opts.targets.length === 0) return;
    this.timer = setInterval(() => { void this.poll(); }, this.opts.intervalMs);
    void this.poll();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  last(): CheckResult {
    return this.lastResult;
  }

  /** One poll now (also what the timer runs). */
  async poll(): Promise<CheckResult | undefined> {
    if (this.running) return undefined;
    this.running = true;
    try {
      const result = await runChecks(this.opts.targets, this.opts.probe);
      this.lastResult = result;
      const key = JSON.stringify(result.failures.map((f) => [f.kind, f.target]));
      if (key !== this.lastKey) {
        this.lastKey = key;
        this.opts.onChange(result);
      }
      return result;
    } finally {
      this.running = false;
    }
  }
}
