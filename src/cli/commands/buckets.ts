import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { XdpDataplane } from '../../dataplane/xdp.js';
import { NBUCKETS, NODE_NONE } from '../../dataplane/types.js';
import { FarmlbError } from '../../errors.js';
import { instancePaths, namesFile, type InstancePaths } from '../../paths.js';
import { EXIT, INSTANCE_OPTIONS, type CommandDef } from '../command.js';
import { handoverFlows, inHandover, legend, nodeLabel, renderGrid } from '../render/grid.js';
import { bucketRates, ownerRates, renderHeat, type BucketRate } from '../render/heat.js';
import { eventsFile, readEvents, type ViewEvent } from '../../api/events-log.js';
import { bold, dim, nodeColour, type Output } from '../output.js';

interface Names {
  node?: string;
  nodes: string[];
  groups: string[];
}

/** Names behind the ids in the maps, written by the daemon; ids alone when it never ran. */
export async function readNames(runDir: string): Promise<Names | undefined> {
  try {
    return JSON.parse(await readFile(namesFile(runDir), 'utf8')) as Names;
  } catch {
    return undefined;
  }
}

/** --rate --interval: seconds between the two counter reads. */
export const RATE_INTERVAL = { default: 1, min: 0.1, max: 60 } as const;

export const bucketsCommand: CommandDef = {
  name: 'buckets',
  summary: 'show which node owns each of the 256 buckets of every group and which are in handover, or their packet rates (reads the pinned maps)',
  options: [
    ...INSTANCE_OPTIONS,
    { flags: '--group <name>', description: 'only this group (name or index)' },
    { flags: '--diff', description: 'the buckets that moved at the last view change, from the event log (<run-dir>/events.log)' },
    { flags: '--rate', description: 'packets/s per bucket as a heat view: the counters read twice, --interval apart' },
    { flags: '--interval <seconds>', description: `with --rate: time between the two reads (${RATE_INTERVAL.min} to ${RATE_INTERVAL.max}; default ${RATE_INTERVAL.default})` },
  ],
  examples: ['farmlb buckets', 'farmlb buckets --group web --json', 'farmlb buckets --diff', 'farmlb buckets --rate',
    'farmlb buckets --rate --interval 5 --group web', 'farmlb buckets --rate --json | jq \'.groups[].totals\'',
    'farmlb buckets --pin-dir /sys/fs/bpf/farmlb/lab-node1'],
  async run(ctx, _args, opts) {
    const paths = instancePaths(opts as { module?: string; pinDir?: string; runDir?: string });
    if (opts.rate && opts.diff) throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option: '--rate', value: 'with --diff', expected: 'one of --rate and --diff' });
    if (opts.interval !== undefined && !opts.rate) throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option: '--interval', value: String(opts.interval), expected: 'to be used with --rate' });
    if (opts.diff) return showDiff(ctx.out, paths.runDir, opts.group as string | undefined);
    if (opts.rate) return showRates(ctx.out, paths, opts.group as string | undefined, rateInterval(opts.interval));
    const pinned = await XdpDataplane.readPinned(paths.pinDir);
    try {
      const tables = pinned.activeTables();
      const counters = await pinned.bucketCounters();
      const names = await readNames(paths.runDir);
      const nodeNames = names?.nodes ?? [];
      const groupCount = Math.max(tables.buckets.length, names?.groups.length ?? 0);
      const groups = Array.from({ length: groupCount }, (_, index) => ({
        index,
        name: names?.groups[index] ?? `group${index}`,
        owners: tables.buckets[index] ?? Array<number>(NBUCKETS).fill(NODE_NONE),
        prevOwners: tables.prevOwners?.[index] ?? Array<number>(NBUCKETS).fill(NODE_NONE),
        accepted: (counters[index] ?? []).map((c) => c.accepted),
        dropped: (counters[index] ?? []).map((c) => c.dropped),
      })).filter((g) => opts.group === undefined || g.name === opts.group || String(g.index) === opts.group);

      if (ctx.out.json) {
        ctx.out.printJson({
          module: paths.module,
          pinDir: paths.pinDir,
          selfNode: tables.selfNode === NODE_NONE ? null : { id: tables.selfNode, name: nodeNames[tables.selfNode] ?? null },
          nodes: nodeNames,
          groups: groups.map((g) => ({
            index: g.index,
            name: g.name,
            owners: g.owners.map((o) => (o === NODE_NONE ? null : nodeNames[o] ?? o)),
            ownerIds: g.owners.map((o) => (o === NODE_NONE ? null : o)),
            legend: legend(g.owners, nodeNames),
            // The previous owner of each bucket in handover (docs/datapath.md §12), else null.
            prevOwners: g.prevOwners.map((p, b) => (inHandover(g.owners[b]!, p) ? nodeNames[p] ?? p : null)),
            prevOwnerIds: g.prevOwners.map((p, b) => (inHandover(g.owners[b]!, p) ? p : null)),
            handover: handoverJson(g.owners, g.prevOwners, nodeNames),
            counters: { accepted: g.accepted, dropped: g.dropped },
          })),
        });
        return EXIT.OK;
      }
      if (groups.length === 0) {
        ctx.out.print(opts.group === undefined ? 'no groups are configured' : `no group named ${String(opts.group)}`);
        return opts.group === undefined ? EXIT.OK : EXIT.FAILED;
      }
      ctx.out.print(groups.map((g) => renderGrid(ctx.out, g, nodeNames, tables.selfNode)).join('\n\n'));
      return EXIT.OK;
    } finally {
      pinned.close();
    }
  },
};

/** --json: the buckets in handover of one group, per (previous owner → owner). */
export function handoverJson(owners: number[], prevOwners: number[], nodeNames: string[]): { buckets: number; flows: { from: string; to: string | null; buckets: number }[] } {
  const flows = handoverFlows(owners, prevOwners, nodeNames);
  return {
    buckets: flows.reduce((t, f) => t + f.buckets, 0),
    flows: flows.map((f) => ({ from: f.from, to: f.toId === NODE_NONE ? null : f.to, buckets: f.buckets })),
  };
}

export function rateInterval(value: unknown): number {
  if (value === undefined) return RATE_INTERVAL.default;
  const s = Number(value);
  if (!/^\d*\.?\d+$/.test(String(value)) || s < RATE_INTERVAL.min || s > RATE_INTERVAL.max) {
    throw new FarmlbError('FARMLB_E_CLI_BAD_OPTION', { option: '--interval', value: String(value), expected: `seconds, from ${RATE_INTERVAL.min} to ${RATE_INTERVAL.max}` });
  }
  return s;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/**
 * --rate: the per-bucket counters read twice, `seconds` apart, from the pinned maps (so it
 * works while the daemon is down, showing zeros then), and their difference per second as
 * a heat grid per group with the totals per owner of the table in force.
 */
async function showRates(out: Output, paths: InstancePaths, group: string | undefined, seconds: number): Promise<number> {
  const pinned = XdpDataplane.readPinned(paths.pinDir);
  try {
    const names = await readNames(paths.runDir);
    const nodeNames = names?.nodes ?? [];
    const groupCount = Math.max(pinned.activeTables().buckets.length, names?.groups.length ?? 0);
    const before = pinned.bucketCounters(groupCount);
    const t0 = process.hrtime.bigint();
    await sleep(seconds * 1000);
    const after = pinned.bucketCounters(groupCount);
    // Measured, not nominal: the reads themselves take time on many CPUs.
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    const tables = pinned.activeTables();
    const groups = Array.from({ length: groupCount }, (_, index) => ({
      index,
      name: names?.groups[index] ?? `group${index}`,
      owners: tables.buckets[index] ?? Array<number>(NBUCKETS).fill(NODE_NONE),
      rates: bucketRates(before[index] ?? [], after[index] ?? [], elapsed),
    })).filter((g) => group === undefined || g.name === group || String(g.index) === group);

    if (out.json) {
      const total = (rates: BucketRate[], k: keyof BucketRate) => round3(rates.reduce((t, r) => t + r[k], 0));
      out.printJson({
        module: paths.module,
        pinDir: paths.pinDir,
        selfNode: tables.selfNode === NODE_NONE ? null : { id: tables.selfNode, name: nodeNames[tables.selfNode] ?? null },
        nodes: nodeNames,
        intervalS: round3(elapsed),
        groups: groups.map((g) => ({
          index: g.index,
          name: g.name,
          owners: g.owners.map((o) => (o === NODE_NONE ? null : nodeNames[o] ?? o)),
          ownerIds: g.owners.map((o) => (o === NODE_NONE ? null : o)),
          rates: { accepted: g.rates.map((r) => round3(r.accepted)), notAccepted: g.rates.map((r) => round3(r.notAccepted)) },
          maxAccepted: round3(Math.max(0, ...g.rates.map((r) => r.accepted))),
          totals: ownerRates(g.owners, g.rates, nodeNames).map((o) => ({
            id: o.id === NODE_NONE ? null : o.id, node: o.id === NODE_NONE ? null : o.name, label: o.label, buckets: o.buckets,
            accepted: round3(o.accepted), notAccepted: round3(o.notAccepted), share: round3(o.share),
          })),
          total: { accepted: total(g.rates, 'accepted'), notAccepted: total(g.rates, 'notAccepted') },
        })),
      });
      return EXIT.OK;
    }
    if (groups.length === 0) {
      out.print(group === undefined ? 'no groups are configured' : `no group named ${group}`);
      return group === undefined ? EXIT.OK : EXIT.FAILED;
    }
    out.print(groups.map((g) => renderHeat(out, g, nodeNames, tables.selfNode, elapsed)).join('\n\n'));
    return EXIT.OK;
  } finally {
    pinned.close();
  }
}

/** Last view change with bucket detail in the event log, or undefined. */
export function lastViewEvent(runDir: string): ViewEvent | undefined {
  return readEvents(eventsFile(runDir)).filter((e): e is ViewEvent => e.event === 'view' && e.movedBuckets !== undefined).at(-1);
}

/** --diff: the grid of the buckets that moved at the last view change, in their new owner's letter. */
async function showDiff(out: Output, runDir: string, group: string | undefined): Promise<number> {
  const last = lastViewEvent(runDir);
  const names = await readNames(runDir);
  const nodeNames = names?.nodes ?? [];
  if (!last) {
    if (out.json) out.printJson({ viewChange: null, groups: [] });
    else out.print(`no view change recorded in ${eventsFile(runDir)}`);
    return EXIT.OK;
  }
  const groups = Object.entries(last.movedBuckets)
    .map(([name, moved], index) => ({ name, index: names?.groups.indexOf(name) ?? index, moved }))
    .filter((g) => group === undefined || g.name === group || String(g.index) === group);
  if (out.json) {
    const { movedBuckets: _detail, ...viewChange } = last;
    out.printJson({
      viewChange,
      groups: groups.map((g) => ({ name: g.name, index: g.index, moved: g.moved.map(([bucket, from, to]) => ({ bucket, from, to })) })),
    });
    return EXIT.OK;
  }
  if (groups.length === 0) {
    out.print(`no group named ${String(group)}`);
    return EXIT.FAILED;
  }
  // A node keeps the letter and colour of the owner grid: its index in cluster.xml.
  const idOf = (name: string | null) => {
    if (name === null) return NODE_NONE;
    const i = nodeNames.indexOf(name);
    if (i < 0) nodeNames.push(name);
    return i < 0 ? nodeNames.length - 1 : i;
  };
  const timing = [last.detectionMs !== undefined && `detection ${Math.round(last.detectionMs)} ms`,
    last.installMs !== undefined && `install ${last.installMs.toFixed(1)} ms`].filter(Boolean).join(', ');
  const blocks = [`${bold(out, `view change at epoch ${last.epoch}`)} ${dim(out, last.time)}: ${last.cause}${timing ? ` (${timing})` : ''}`];
  for (const g of groups) {
    const moved = new Map(g.moved.map(([b, from, to]) => [b, { from, to }]));
    const lines = [bold(out, `group ${g.name}`) + dim(out, ` (#${g.index}): ${g.moved.length} buckets moved; each shows its new owner, · did not move`)];
    lines.push(dim(out, `      ${Array.from({ length: 16 }, (_, c) => c.toString(16)).join(' ')}`));
    for (let r = 0; r < 16; r++) {
      const cells = Array.from({ length: 16 }, (_, c) => {
        const m = moved.get(r * 16 + c);
        if (!m) return dim(out, '·');
        const id = idOf(m.to);
        return id === NODE_NONE ? nodeLabel(id) : nodeColour(out, id)(nodeLabel(id));
      });
      lines.push(`  ${dim(out, `${(r * 16).toString(16).padStart(2, '0')}:`)} ${cells.join(' ')}`);
    }
    const flows = new Map<string, number>();
    for (const [, from, to] of g.moved) {
      const k = `${from ?? '(unowned)'} → ${to ?? '(unowned)'}`;
      flows.set(k, (flows.get(k) ?? 0) + 1);
    }
    for (const [k, n] of [...flows].sort((a, b) => b[1] - a[1])) lines.push(`  ${k}: ${n} buckets`);
    for (const name of new Set(g.moved.map(([, , to]) => to))) {
      const id = idOf(name);
      lines.push(`  ${id === NODE_NONE ? nodeLabel(id) : nodeColour(out, id)(nodeLabel(id))} ${name ?? '(unowned)'}`);
    }
    blocks.push(lines.join('\n'));
  }
  out.print(blocks.join('\n\n'));
  return EXIT.OK;
}
