// One SafeKit resource (tcp.web, proc.nginx, …) as its checker's results move it: pure, time
// passed in. keepalived's counts decide, so one lost probe does not move buckets:
//   unknown → up   at the first success (a starting application is trusted once it answers);
//   unknown/up → down  after `fall` consecutive failures;
//   down → up      after `rise` consecutive successes.
// `stopped`: the checker does not run (a `when="both"` checker while the application is
// stopped); its last counts stay for the status.

export type ResourceState = 'unknown' | 'up' | 'down' | 'stopped';

export interface ProbeResult {
  ok: boolean;
  /** What was seen: "connected", "status 503", "connection refused", "timeout after 1000 ms". */
  detail: string;
  /**
   * Nothing listens any more: the connection was refused (or the process is gone). With an
   * HTTP checker, the rule of docs/application.md "Leaving the farm" tells a dead application
   * (leave at once) from one that still holds its connections (hand over like a drain).
   */
  refused?: boolean;
}

export interface ResourceSnapshot {
  state: ResourceState;
  lastResult?: ProbeResult & { atMs: number; durationMs: number };
  probes: number;
  failures: number;
  consecutiveOk: number;
  consecutiveFailed: number;
  /** Wall clock (ms) of the last change of state (up/down), if any. */
  lastChangeMs?: number;
  /** Changes between up and down since the daemon started. */
  changes: number;
}

export class Resource {
  private s: ResourceSnapshot = { state: 'unknown', probes: 0, failures: 0, consecutiveOk: 0, consecutiveFailed: 0, changes: 0 };

  constructor(readonly fall: number, readonly rise: number) {}

  get state(): ResourceState {
    return this.s.state;
  }

  snapshot(): ResourceSnapshot {
    return { ...this.s, ...(this.s.lastResult ? { lastResult: { ...this.s.lastResult } } : {}) };
  }

  /** Records one probe; returns the new state when it changed to up or down. */
  record(result: ProbeResult, atMs: number, durationMs: number): 'up' | 'down' | undefined {
    const s = this.s;
    s.probes++;
    s.lastResult = { ...result, atMs, durationMs };
    if (result.ok) {
      s.consecutiveOk++;
      s.consecutiveFailed = 0;
    } else {
      s.failures++;
      s.consecutiveFailed++;
      s.consecutiveOk = 0;
    }
    let next: 'up' | 'down' | undefined;
    if (s.state === 'down' && s.consecutiveOk >= this.rise) next = 'up';
    else if ((s.state === 'unknown' || s.state === 'stopped') && result.ok) next = 'up';
    else if (s.state !== 'down' && s.consecutiveFailed >= this.fall) next = 'down';
    if (!next) return undefined;
    s.state = next;
    s.lastChangeMs = atMs;
    s.changes++;
    return next;
  }

  /** The checker stopped running (stopped) or starts again (unknown: nothing known yet). */
  reset(state: 'unknown' | 'stopped'): void {
    this.s.state = state;
    this.s.consecutiveOk = 0;
    this.s.consecutiveFailed = 0;
  }
}
