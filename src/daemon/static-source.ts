// `farmlb run --static`: the degenerate table source. It serves the table computed from the
// configured powers as if every node were up (DESIGN.md) and renews the kernel lease from
// the daemon's own liveness, every lease/3. A failing local check (or `farmlb stop`) still
// moves it to WAIT: it then serves nothing, but no other node takes its buckets (there is no
// membership to tell them).

import type { BucketTable } from '../balance/assign.js';
import { staticTable } from '../balance/compile.js';
import type { ClusterConfig, FarmConfig } from '../config/types.js';
import { FarmlbError } from '../errors.js';
import type { PowerChange } from '../api/control.js';
import type { SourceSink, SourceView, TableSource } from './table-source.js';

export interface StaticSourceOptions {
  farm: FarmConfig;
  cluster: ClusterConfig;
  node: string;
  leaseMs: number;
  nowNs: () => bigint;
}

export class StaticSource implements TableSource {
  readonly mode = 'static' as const;
  private sink: SourceSink | undefined;
  private timer: NodeJS.Timeout | undefined;
  private healthy = true;
  private healthCause = 'serving the static table';

  constructor(private readonly opts: StaticSourceOptions) {}

  initial() {
    return { table: staticTable(this.opts.farm, this.opts.cluster), leaseDeadlineNs: this.deadline(), announce: true };
  }

  async start(sink: SourceSink): Promise<void> {
    this.sink = sink;
    this.renew();
    this.timer = setInterval(() => this.renew(), Math.max(50, Math.floor(this.opts.leaseMs / 3)));
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.sink = undefined;
  }

  setLocalHealth(ok: boolean, cause: string): void {
    this.healthy = ok;
    this.healthCause = ok ? 'serving the static table' : cause;
    this.renew();
  }

  async setPower(_change: PowerChange): Promise<void> {
    throw new FarmlbError('FARMLB_E_API_STATIC_MODE', { command: 'farmlb power/drain/undrain' });
  }

  reload(farm: FarmConfig, cluster: ClusterConfig): BucketTable {
    return staticTable(farm, cluster);
  }

  view(): SourceView {
    const nodes = this.opts.cluster.nodes;
    return {
      view: [...nodes],
      epoch: 0,
      leader: null,
      splitBrain: false,
      peers: new Map(nodes.map((n) => [n, { state: n === this.opts.node ? (this.healthy ? 'UP' : 'WAIT') : 'unknown' }])),
      lastViewChange: null,
    };
  }

  private renew(): void {
    if (!this.sink) return;
    if (this.healthy) void this.sink.decide({ state: 'UP', cause: this.healthCause, leaseDeadlineNs: this.deadline() });
    else void this.sink.decide({ state: 'WAIT', cause: this.healthCause });
  }

  private deadline(): bigint {
    return this.opts.nowNs() + BigInt(this.opts.leaseMs) * 1_000_000n;
  }
}
