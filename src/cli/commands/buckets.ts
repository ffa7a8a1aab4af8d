import { readFile } from 'node:fs/promises';
import { XdpDataplane } from '../../dataplane/xdp.js';
import { NBUCKETS, NODE_NONE } from '../../dataplane/types.js';
import { instancePaths, namesFile } from '../../paths.js';
import { EXIT, INSTANCE_OPTIONS, type CommandDef } from '../command.js';
import { legend, renderGrid } from '../render/grid.js';

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

export const bucketsCommand: CommandDef = {
  name: 'buckets',
  summary: 'show which node owns each of the 256 buckets of every group (reads the pinned maps)',
  options: [
    ...INSTANCE_OPTIONS,
    { flags: '--group <name>', description: 'only this group (name or index)' },
  ],
  examples: ['farmlb buckets', 'farmlb buckets --group web --json', 'farmlb buckets --pin-dir /sys/fs/bpf/farmlb/lab-node1'],
  async run(ctx, _args, opts) {
    const paths = instancePaths(opts as { module?: string; pinDir?: string; runDir?: string });
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
