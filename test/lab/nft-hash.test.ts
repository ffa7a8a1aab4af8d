// The TS bucket function equals real nftables `jhash <field> mod 256 seed S` (DESIGN.md,
// data path step 3): random packets from namespace a reach namespace b, where a netdev
// ingress chain computes the bucket into the packet mark and records (field, mark) pairs in
// a set; the test reads the set back and recomputes every bucket with bucketOf().
//
// nftables 1.0.6 notes (measured here): the sets are declared `type … . mark` — with
// `typeof … . meta mark` the kernel stores the right mark but nft prints every mark as 0;
// and they are read with `nft -j list set` (listing the whole ruleset can crash).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { addrBytes } from '../../src/balance/addr.js';
import { bucketOf } from '../../src/balance/hash.js';
import { describePrivileged } from '../helpers/privileged.js';
import { LabRegistry, inNetns, linkMac, uniqueSuffix, waitFor } from './helpers/netns.js';

const PACKETS = 3000;
const MIN_DISTINCT = 1000;
const TABLE = 'flbhash';

describePrivileged('nftables jhash equivalence', () => {
  const lab = new LabRegistry();
  const suffix = uniqueSuffix();
  const nsA = `flb-nft-a-${suffix}`;
  const nsB = `flb-nft-b-${suffix}`;
  const devA = `flbna${suffix}`;
  const devB = `flbnb${suffix}`;
  let dir = '';
  let macB = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'farmlb-nft-'));
    lab.onCleanup(`temp dir ${dir}`, () => rmSync(dir, { recursive: true, force: true }), () =>
      rmSync(dir, { recursive: true, force: true }),
    );
    try {
      await lab.netns(nsA);
      await lab.netns(nsB);
      await lab.veth({ a: { name: devA, ns: nsA }, b: { name: devB, ns: nsB } });
      macB = await linkMac(nsB, devB);
    } catch (err) {
      await lab.cleanup();
      throw err;
    }
  });

  afterAll(async () => {
    const failures = await lab.cleanup();
    expect(failures).toEqual([]);
  });

  function ruleset(seed: number): string {
    const s = `seed 0x${seed.toString(16)}`;
    return `
table netdev ${TABLE} {
  set seen4 { type ipv4_addr . mark; size 65536; flags dynamic; }
  set seenport { type inet_service . mark; size 65536; flags dynamic; }
  set seen6 { type ipv6_addr . mark; size 65536; flags dynamic; }
  chain ingress {
    type filter hook ingress device "${devB}" priority 0; policy accept;
    ether type ip meta mark set jhash ip saddr mod 256 ${s} update @seen4 { ip saddr . meta mark }
    ether type ip meta l4proto udp meta mark set jhash udp sport mod 256 ${s} update @seenport { udp sport . meta mark }
    ether type ip6 meta mark set jhash ip6 saddr mod 256 ${s} update @seen6 { ip6 saddr . meta mark }
    drop
  }
}
`;
  }

  async function loadRuleset(seed: number): Promise<void> {
    await inNetns(nsB, 'nft', ['delete', 'table', 'netdev', TABLE]).catch(() => undefined);
    const file = join(dir, `ruleset-${seed}.nft`);
    writeFileSync(file, ruleset(seed));
    await inNetns(nsB, 'nft', ['-f', file]);
  }

  // trafgen: drnd() is a new random value per packet.
  function trafgenV4(): string {
    return `{
  eth(da=${macB}, type=0x0800),
  ipv4(saddr=drnd(), daddr=10.99.0.2, ttl=64, proto=17),
  udp(sport=drnd(), dport=9),
  fill(0x41, 18),
}
`;
  }

  // The IPv6 header is written byte by byte: 2 fixed bytes (fd00::/16) and 14 random ones.
  function trafgenV6(): string {
    const rnd = Array.from({ length: 14 }, () => 'drnd()').join(', ');
    return `{
  eth(da=${macB}, type=0x86dd),
  0x60, 0x00, 0x00, 0x00, 0x00, 0x10, 17, 64,
  0xfd, 0x00, ${rnd},
  0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
  drnd(), drnd(), 0x00, 0x09, 0x00, 0x10, 0x00, 0x00,
  0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41,
}
`;
  }

  async function send(name: string, config: string): Promise<void> {
    const file = join(dir, `${name}.cfg`);
    writeFileSync(file, config);
    await inNetns(nsA, 'trafgen', ['-i', file, '-o', devA, '-n', String(PACKETS), '-q'], { timeoutMs: 30_000 });
  }

  type Element = [string | number, number];

  async function readSet(name: string): Promise<Element[]> {
    const { stdout } = await inNetns(nsB, 'nft', ['-j', 'list', 'set', 'netdev', TABLE, name], { timeoutMs: 30_000 });
    const doc = JSON.parse(stdout) as { nftables: { set?: { elem?: { concat: Element }[] } }[] };
    const set = doc.nftables.find((x) => x.set)?.set;
    return (set?.elem ?? []).map((e) => e.concat);
  }

  async function collect(name: string): Promise<Element[]> {
    return waitFor(
      async () => {
        const elems = await readSet(name);
        return elems.length >= MIN_DISTINCT ? elems : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200, what: `${MIN_DISTINCT} distinct elements in nft set ${name}` },
    );
  }

  function mismatches(elems: Element[], seed: number, toBytes: (key: string | number) => Uint8Array): string[] {
    return elems
      .filter(([key, mark]) => bucketOf(toBytes(key), seed) !== mark)
      .slice(0, 5)
      .map(([key, mark]) => `${key}: nft bucket ${mark}, ts bucket ${bucketOf(toBytes(key), seed)}`);
  }

  const addr = (key: string | number): Uint8Array => {
    const bytes = addrBytes(String(key));
    if (!bytes) throw new Error(`nft printed ${key}, not an address`);
    return bytes;
  };
  const port = (key: string | number): Uint8Array => {
    const n = typeof key === 'number' ? key : Number(key);
    if (!Number.isInteger(n)) throw new Error(`nft printed ${key}, not a port number`);
    return Uint8Array.of(n >> 8, n & 0xff);
  };

  for (const seed of [0x12345678, 0]) {
    const seedHex = `0x${seed.toString(16)}`;
    test(`bucketOf equals nft jhash ip saddr and udp sport mod 256 seed ${seedHex} for ≥ ${MIN_DISTINCT} IPv4 sources and ports`, async () => {
      await loadRuleset(seed);
      await send(`v4-${seed}`, trafgenV4());
      const addrs = await collect('seen4');
      const ports = await collect('seenport');
      expect(new Set(addrs.map(([k]) => k)).size).toBeGreaterThanOrEqual(MIN_DISTINCT);
      expect(new Set(ports.map(([k]) => k)).size).toBeGreaterThanOrEqual(MIN_DISTINCT);
      expect(mismatches(addrs, seed, addr)).toEqual([]);
      expect(mismatches(ports, seed, port)).toEqual([]);
      // Buckets must cover the range, or a broken reduction (e.g. mod instead of scale) could hide.
      expect(new Set(addrs.map(([, m]) => m)).size).toBeGreaterThan(200);
    });

    test(`bucketOf equals nft jhash ip6 saddr mod 256 seed ${seedHex} for ≥ ${MIN_DISTINCT} IPv6 sources`, async () => {
      await loadRuleset(seed);
      await send(`v6-${seed}`, trafgenV6());
      const addrs = await collect('seen6');
      expect(new Set(addrs.map(([k]) => k)).size).toBeGreaterThanOrEqual(MIN_DISTINCT);
      expect(mismatches(addrs, seed, addr)).toEqual([]);
    });
  }
});
