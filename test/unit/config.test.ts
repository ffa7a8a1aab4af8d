// userconfig.xml / cluster.xml parsing and validation: defaults of seed 001 §13.6, what
// SafeKit files load with warnings, value parsers, cross-file checks and the config digest.
// One-mistake-per-file rejections live in bad-configs.test.ts.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_WARNINGS, configDigest, configErrorList, formatConfigError, LIMITS, loadClusterConfig, loadConfigs, loadFarmConfig,
  parseClusterConfig, parseFarmConfig, validateAgainstCluster,
} from '../../src/config/index.js';
import { closest, didYouMean, levenshtein } from '../../src/config/suggest.js';
import {
  canonicalIpv6, defaultVmac, parseDurationMs, parseIp, parseNetmask, parseUint32, parseUnicastMac,
} from '../../src/config/values.js';
import type { FarmlbError } from '../../src/errors.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixture = (name: string) => path.join(root, 'test/fixtures/configs', name);
const read = (name: string) => readFileSync(fixture(name), 'utf8');

function errorsOf(fn: () => unknown): FarmlbError[] {
  try {
    fn();
  } catch (err) {
    return configErrorList(err);
  }
  throw new Error('expected the configuration to be rejected');
}

/** A farm config around the given <vip> body. */
function vipDoc(body: string, service = ''): string {
  return `<safe><service mode="farm"><farm><lan name="default"/></farm><vip>${body}</vip>${service}</service></safe>`;
}
const oneVip = (type = 'vmac_directed', addr = '10.0.0.100') =>
  `<interface_list><interface><virtual_interface type="${type}"><virtual_addr addr="${addr}" where="alias"/></virtual_interface></interface></interface_list>`;

describe('value parsers', () => {
  it('reads SafeKit 8.2.5 durations with ms, s, m, h and d, and bare numbers in the attribute unit', () => {
    expect(parseDurationMs('60', 's')).toEqual({ ok: true, value: 60_000 });
    expect(parseDurationMs('60s', 'ms')).toEqual({ ok: true, value: 60_000 });
    expect(parseDurationMs('500ms', 's')).toEqual({ ok: true, value: 500 });
    expect(parseDurationMs('2m', 's')).toEqual({ ok: true, value: 120_000 });
    expect(parseDurationMs('1h', 's')).toEqual({ ok: true, value: 3_600_000 });
    expect(parseDurationMs('1.5s', 's')).toEqual({ ok: true, value: 1500 });
    expect(parseDurationMs('100', 'ms')).toEqual({ ok: true, value: 100 });
    for (const bad of ['', 's', '-1s', '60x', '1e3', '0.5ms']) expect(parseDurationMs(bad, 's').ok, bad).toBe(false);
  });

  it('canonicalises IPv6 to RFC 5952 (lower case, no leading zeros, longest zero run compressed)', () => {
    expect(canonicalIpv6('2001:0DB8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(canonicalIpv6('2001:db8:0:1:0:0:0:1')).toBe('2001:db8:0:1::1');
    expect(canonicalIpv6('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(canonicalIpv6('2001:db8::0:1')).toBe('2001:db8::1');
    expect(canonicalIpv6('2001:db8:1:1:1:1:0:1')).toBe('2001:db8:1:1:1:1:0:1');
    expect(canonicalIpv6('0:0:0:0:0:0:0:0')).toBe('::');
    expect(canonicalIpv6('fe80::')).toBe('fe80::');
    expect(canonicalIpv6('::ffff:192.0.2.1')).toBe('::ffff:192.0.2.1');
    expect(canonicalIpv6('64:ff9b::192.0.2.1')).toBe('64:ff9b::c000:201');
  });

  it('agrees with the WHATWG URL serialiser (RFC 5952 compatible) on random IPv6 addresses', () => {
    const group = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), fc.boolean(), (groups, padded) => {
      if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return; // mapped IPv4: dotted tail by design
      const text = groups.map((g) => (padded ? g.toString(16).padStart(4, '0').toUpperCase() : g.toString(16))).join(':');
      expect(canonicalIpv6(text)).toBe(new URL(`http://[${text}]/`).hostname.slice(1, -1));
    }), { numRuns: 500 });
  });

  it('accepts IPv4 and IPv6 addresses and refuses zone indexes and leading zeros', () => {
    expect(parseIp('192.168.1.222')).toEqual({ ok: true, value: { canonical: '192.168.1.222', family: 4 } });
    expect(parseIp('2001:DB8::A')).toEqual({ ok: true, value: { canonical: '2001:db8::a', family: 6 } });
    expect(parseIp('fe80::1%eth0').ok).toBe(false);
    expect(parseIp('010.0.0.1').ok).toBe(false);
  });

  it('reads netmasks as dotted masks or prefix lengths and refuses non-contiguous masks', () => {
    expect(parseNetmask('255.255.255.0')).toEqual({ ok: true, value: 24 });
    expect(parseNetmask('255.255.255.255')).toEqual({ ok: true, value: 32 });
    expect(parseNetmask('16')).toEqual({ ok: true, value: 16 });
    expect(parseNetmask('255.0.255.0').ok).toBe(false);
    expect(parseNetmask('33').ok).toBe(false);
  });

  it('normalises a unicast MAC to lower case and refuses multicast and all-zero', () => {
    expect(parseUnicastMac('5A-FE-C0-A8-01-DE')).toEqual({ ok: true, value: '5a:fe:c0:a8:01:de' });
    expect(parseUnicastMac('01:00:5e:00:00:01').ok).toBe(false);
    expect(parseUnicastMac('00:00:00:00:00:00').ok).toBe(false);
    expect(parseUnicastMac('5a:fe:c0:a8:01').ok).toBe(false);
  });

  it('derives the default VMAC as 5a:fe + the VIP bytes (the last four of an IPv6 VIP)', () => {
    expect(defaultVmac({ canonical: '192.168.1.222', family: 4 })).toBe('5a:fe:c0:a8:01:de');
    expect(defaultVmac({ canonical: '2001:db8::c0a8:1de', family: 6 })).toBe('5a:fe:c0:a8:01:de');
  });

  it('reads a hash seed as decimal or 0x hex up to 2^32-1', () => {
    expect(parseUint32('0x6661726d')).toEqual({ ok: true, value: 0x6661726d });
    expect(parseUint32('4294967295')).toEqual({ ok: true, value: 4294967295 });
    expect(parseUint32('4294967296').ok).toBe(false);
    expect(parseUint32('-1').ok).toBe(false);
  });

  it('suggests the closest known name for a typo, and lists the names when nothing is close', () => {
    expect(levenshtein('pwer', 'power')).toBe(1);
    expect(closest('pwer', ['name', 'power'])).toBe('power');
    expect(didYouMean('virtual_adr', ['virtual_addr', 'port'], 'attributes')).toBe('did you mean virtual_addr?');
    expect(didYouMean('zzz', ['name', 'power'], 'attributes of <host>')).toBe('attributes of <host>: name, power');
  });
});

describe('parseFarmConfig on the SafeKit farm example (seed 001 §13.6.2)', () => {
  const farm = parseFarmConfig(read('seed-13.6.2-vip.xml'), 'seed.xml');

  it('applies the documented defaults of <vip>, <interface> and <virtual_addr>', () => {
    expect(farm.tcpreset).toBe(true);
    expect(farm.scriptcontrol).toBe(false);
    const itf = farm.interfaces[0]!;
    expect(itf).toMatchObject({ check: true, arpreroute: false, arpintervalMs: 60_000, arpelapseMs: 1_200_000, type: 'vmac_directed', vmacExplicit: false });
    expect(itf.name).toBeUndefined();
    expect(itf.vmac).toBe('5a:fe:c0:a8:01:de');
    expect(farm.vips).toEqual([expect.objectContaining({ addr: '192.168.1.222', family: 4, id: 0, where: 'alias', check: true, connections: false })]);
    expect(farm.vips[0]!.prefixLen).toBeUndefined();
  });

  it('reads the rule with virtual_addr="*" by default, and a group without <cluster> as every farm node', () => {
    expect(farm.groups).toHaveLength(1);
    const g = farm.groups[0]!;
    expect(g).toMatchObject({ name: 'FarmProto', index: 0, hosts: null });
    expect(g.rules).toEqual([expect.objectContaining({ vip: '*', port: 80, proto: 'tcp', filter: 'on_port' })]);
  });

  it('keeps file, line and column of every element', () => {
    expect(farm.vips[0]!.src).toEqual({ file: 'seed.xml', line: 7, column: 10, element: 'virtual_addr' });
    expect(farm.groups[0]!.rules[0]!.src).toMatchObject({ line: 13, column: 9, element: 'rule' });
  });

  it('uses the <farmlb> and <farm> defaults when those elements are absent', () => {
    expect(farm.farmlb).toEqual({
      module: 'farm', hashSeed: 0x6661726d, keyFile: '/etc/farmlb/farm.key', membershipPort: 4800, healthPort: 9010,
      splitBrain: 'serve', handoverLimitMs: 30_000, membership: 'builtin',
    });
    expect(farm.farm).toMatchObject({ pulseMs: 50, mlostCount: 7, slostCount: 5, lans: [] });
    expect(farm.warnings).toEqual([]);
  });

  it('reads the same example inside <safe><service mode="farm"> to the same VIPs and groups', () => {
    const full = parseFarmConfig(read('safekit-minimal.xml'), 'min.xml');
    const strip = (c: typeof farm) => JSON.parse(JSON.stringify({ i: c.interfaces, g: c.groups }, (k, v) => (k === 'src' ? undefined : v)));
    expect(strip(full)).toEqual(strip(farm));
    expect(full.farm?.lans).toEqual(['default']);
  });
});

describe('parseFarmConfig on richer files', () => {
  it('reads every attribute of a multi-group farm', async () => {
    const farm = await loadFarmConfig(fixture('multi-group.xml'));
    expect(farm.farm).toMatchObject({ pulseMs: 200, mlostCount: 15, slostCount: 8, lans: ['default', 'backup'] });
    expect(farm.interfaces[0]).toMatchObject({ name: 'eth0', arpreroute: true, arpintervalMs: 30_000, arpelapseMs: 600_000, type: 'vmac_directed' });
    expect(farm.vips.map((v) => [v.addr, v.id, v.prefixLen, v.check, v.connections])).toEqual([
      ['10.0.0.100', 0, 24, true, false], ['10.0.0.101', 1, 24, false, true],
    ]);
    expect(farm.groups.map((g) => g.name)).toEqual(['web', 'dns', 'FarmProto']);
    expect(farm.groups[0]!.hosts?.map((h) => [h.name, h.power])).toEqual([['node1', 2], ['node2', 1], ['node3', 1]]);
    expect(farm.groups[1]!.hosts?.map((h) => h.power)).toEqual([1, 0]);
    expect(farm.groups[1]!.rules[0]).toMatchObject({ vip: '*', port: 53, proto: 'udp', filter: 'on_ipid' });
    expect(farm.groups[2]!.rules[0]).toMatchObject({ vip: '*', port: '*', proto: 'arp', filter: 'on_addr' });
    expect(farm.farmlb).toMatchObject({
      module: 'web', hashSeed: 0x12345678, keyFile: '/etc/farmlb/web.key', membershipPort: 4801, healthPort: 9011,
      splitBrain: 'quorum', handoverLimitMs: 45_000,
    });
  });

  it('canonicalises IPv6 VIPs, matches rules written in another spelling and derives the VMAC from the first VIP', () => {
    const farm = parseFarmConfig(read('ipv6.xml'), 'v6.xml');
    expect(farm.vips.map((v) => [v.addr, v.family])).toEqual([['2001:db8::10', 6], ['192.0.2.10', 4]]);
    expect(farm.groups[0]!.rules.map((r) => r.vip)).toEqual(['2001:db8::10', '2001:db8::10', '*']);
    expect(farm.interfaces[0]!.vmac).toBe('5a:fe:00:00:00:10');
    expect(farm.interfaces[0]!.type).toBe('vmac_invisible');
  });

  it('loads a SafeKit file with <user>, <errd> and <check> without an "ignored" warning, expanding macros', () => {
    const farm = parseFarmConfig(read('safekit-full.xml'), 'full.xml');
    expect(farm.vips[0]!.addr).toBe('192.168.1.99');
    // (Its arpreroute without an arp rule has a warning of its own: FARMLB_W_CONFIG_ARPREROUTE_NOOP.)
    expect(farm.warnings.filter((w) => /IGNORED|UNKNOWN/.test(w.code))).toEqual([]);
    expect(farm.app).toMatchObject({
      maxloop: 3, loopIntervalMs: 24 * 3_600_000, procPollMs: 10_000,
      checkers: [{ kind: 'tcp', resource: 'tcp.HTTP_APP', addr: '127.0.0.1', port: 9453, intervalMs: 10_000, timeoutMs: 5_000, when: 'both', action: 'restart' }],
      procs: [{ name: 'apache2', atleast: 1, action: 'restart', when: 'both', resource: 'proc.apache2' }],
      scripts: { niceStopTimeoutMs: 300_000, forceStopTimeoutMs: 300_000, logOutput: true, vars: [{ name: 'SERVICES', value: 'apache2' }] },
    });
  });

  it('defaults <virtual_interface> without type= to vmac_invisible', () => {
    const farm = parseFarmConfig(vipDoc(`<interface_list><interface><virtual_interface><virtual_addr addr="10.0.0.1"/></virtual_interface></interface></interface_list>
      <loadbalancing_list><group name="g"><rule proto="tcp" filter="on_addr"/></group></loadbalancing_list>`), 'u.xml');
    expect(farm.interfaces[0]!.type).toBe('vmac_invisible');
    expect(farm.vips[0]!.where).toBe('alias');
  });

  it('keeps an explicit VMAC in lower case, and ignores it with a warning in vmac_directed', () => {
    const invisible = parseFarmConfig(vipDoc(`<interface_list><interface><virtual_interface type="vmac_invisible" addr="5A:FE:0A:00:00:01"><virtual_addr addr="10.0.0.1"/></virtual_interface></interface></interface_list>
      <loadbalancing_list><group name="g"><rule proto="tcp" filter="on_addr"/></group></loadbalancing_list>`), 'u.xml');
    expect(invisible.interfaces[0]).toMatchObject({ vmac: '5a:fe:0a:00:00:01', vmacExplicit: true });
    const directed = parseFarmConfig(vipDoc(`<interface_list><interface><virtual_interface type="vmac_directed" addr="02:00:00:00:00:01"><virtual_addr addr="10.0.0.1"/></virtual_interface></interface></interface_list>
      <loadbalancing_list><group name="g"><rule proto="tcp" filter="on_addr"/></group></loadbalancing_list>`), 'u.xml');
    expect(directed.interfaces[0]).toMatchObject({ vmac: '5a:fe:0a:00:00:01', vmacExplicit: false });
    expect(directed.warnings.map((w) => w.code)).toEqual(['FARMLB_W_CONFIG_VMAC_IGNORED']);
  });

  it('gives every interface the VMAC of the first VIP of the file', () => {
    const farm = parseFarmConfig(vipDoc(`<interface_list>
      <interface name="eth0"><virtual_interface><virtual_addr addr="10.0.0.1"/></virtual_interface></interface>
      <interface name="eth1"><virtual_interface><virtual_addr addr="10.1.0.1"/></virtual_interface></interface></interface_list>
      <loadbalancing_list><group name="g"><rule proto="tcp" filter="on_addr"/></group></loadbalancing_list>`), 'u.xml');
    expect(farm.interfaces.map((i) => i.vmac)).toEqual(['5a:fe:0a:00:00:01', '5a:fe:0a:00:00:01']);
    expect(farm.vips.map((v) => v.id)).toEqual([0, 1]);
  });

  it('accepts an arp rule for "*" when some interfaces are vmac_invisible, as long as one is vmac_directed', () => {
    const farm = parseFarmConfig(vipDoc(`<interface_list>
      <interface><virtual_interface type="vmac_invisible"><virtual_addr addr="10.0.0.1"/></virtual_interface></interface>
      <interface><virtual_interface type="vmac_directed"><virtual_addr addr="10.0.0.2"/></virtual_interface></interface></interface_list>
      <loadbalancing_list><group name="g"><rule proto="arp" filter="on_addr"/><rule proto="tcp" filter="on_addr"/></group></loadbalancing_list>`), 'u.xml');
    expect(farm.groups[0]!.rules.map((r) => r.proto)).toEqual(['arp', 'tcp']);
  });

  it('accepts on_ipid on virtual_addr="*" with IPv6 VIPs among IPv4 ones (it then applies to the IPv4 VIPs only)', () => {
    const farm = parseFarmConfig(vipDoc(`<interface_list><interface><virtual_interface type="vmac_invisible"><virtual_addr addr="10.0.0.100"/><virtual_addr addr="2001:db8::1"/></virtual_interface></interface></interface_list>
      <loadbalancing_list><group name="g"><rule port="53" proto="udp" filter="on_ipid"/></group></loadbalancing_list>`), 'u.xml');
    expect(farm.groups[0]!.rules[0]!.filter).toBe('on_ipid');
  });

  it('accepts rules of different specificity for the same traffic: (VIP, *) and (*, port) do not overlap', () => {
    // Two VIPs: the "*" rules of group b still serve 10.0.0.101 (on 10.0.0.100 more specific rules win).
    const farm = parseFarmConfig(vipDoc(`<interface_list><interface><virtual_interface type="vmac_directed"><virtual_addr addr="10.0.0.100"/><virtual_addr addr="10.0.0.101"/></virtual_interface></interface></interface_list><loadbalancing_list>
      <group name="a"><rule virtual_addr="10.0.0.100" proto="tcp" filter="on_addr"/></group>
      <group name="b"><rule port="80" proto="tcp" filter="on_port"/><rule proto="tcp" filter="on_addr"/><rule virtual_addr="10.0.0.100" port="80" proto="tcp" filter="on_addr"/><rule virtual_addr="10.0.0.100" port="80" proto="udp" filter="on_addr"/></group>
      </loadbalancing_list>`), 'u.xml');
    expect(farm.groups[1]!.rules).toHaveLength(4);
    expect(farm.warnings).toEqual([]);
  });

  it('warns about a group without rules and about ARP settings on an interface without IPv4 VIPs', () => {
    const farm = parseFarmConfig(vipDoc(`<interface_list><interface arpreroute="on"><virtual_interface type="vmac_directed"><virtual_addr addr="2001:db8::1"/></virtual_interface></interface></interface_list>
      <loadbalancing_list><group name="empty"/><group name="g"><rule proto="tcp" filter="on_addr"/><rule proto="arp" filter="on_addr"/></group></loadbalancing_list>`), 'u.xml');
    expect(farm.warnings.map((w) => w.code).sort()).toEqual(['FARMLB_W_CONFIG_GROUP_NO_RULES', 'FARMLB_W_CONFIG_IPV4_ONLY']);
  });

  it('reads <farmlb> with camelCase aliases and resolves a relative key file against the config directory', () => {
    const farm = parseFarmConfig(vipDoc(`${oneVip()}<loadbalancing_list><group name="g"><rule proto="tcp" filter="on_addr"/></group></loadbalancing_list>`,
      '<farmlb hashSeed="42" keyFile="keys/farm.key" splitBrain="quorum" handoverLimit="2m" healthPort="8080" membershipPort="5000"/>'), '/etc/farmlb/u.xml');
    expect(farm.farmlb).toMatchObject({ hashSeed: 42, keyFile: '/etc/farmlb/keys/farm.key', splitBrain: 'quorum', handoverLimitMs: 120_000, healthPort: 8080, membershipPort: 5000 });
    expect(farm.farmlb.src).toMatchObject({ element: 'farmlb' });
  });

  it('derives the default key file from the module name', () => {
    const farm = parseFarmConfig(vipDoc(`${oneVip()}<loadbalancing_list><group name="g"><rule proto="tcp" filter="on_addr"/></group></loadbalancing_list>`,
      '<farmlb module="shop"/>'), 'u.xml');
    expect(farm.farmlb).toMatchObject({ module: 'shop', keyFile: '/etc/farmlb/shop.key' });
  });

  it('warns about unknown sections of <service> instead of rejecting them (SafeKit files load unchanged)', () => {
    const farm = parseFarmConfig(vipDoc(`${oneVip()}<loadbalancing_list><group name="g"><rule proto="tcp" filter="on_addr"/></group></loadbalancing_list>`,
      '<rfs/><heart/><frobnicate/>'), 'u.xml');
    expect(farm.warnings.map((w) => `${w.code}:${w.src.element}`)).toEqual([
      'FARMLB_W_CONFIG_IGNORED_SECTION:rfs', 'FARMLB_W_CONFIG_IGNORED_SECTION:heart', 'FARMLB_W_CONFIG_UNKNOWN_SECTION:frobnicate',
    ]);
  });
});

describe('error reporting', () => {
  it('reports every error of a file at once, in file order, the first one on the aggregate', () => {
    const xml = [
      '<vip>',
      ' <interface_list><interface><virtual_interface>',
      '  <virtual_addr addr="10.0.0.300"/>',
      '  <virtual_addr addr="10.0.0.2" chek="on"/>',
      ' </virtual_interface></interface></interface_list>',
      ' <loadbalancing_list><group name="g">',
      '  <rule port="99999" proto="tcp" filter="on_addr"/>',
      ' </group></loadbalancing_list>',
      '</vip>',
    ].join('\n');
    let caught: FarmlbError | undefined;
    try { parseFarmConfig(xml, 'u.xml'); } catch (err) { caught = err as FarmlbError; }
    expect(caught?.code).toBe('FARMLB_E_CONFIG_INVALID');
    expect(caught?.errors?.map((e) => `${e.code}@${e.location?.line}`)).toEqual([
      'FARMLB_E_CONFIG_BAD_ADDRESS@3', 'FARMLB_E_CONFIG_UNKNOWN_ATTRIBUTE@4', 'FARMLB_E_CONFIG_BAD_PORT@7',
    ]);
    expect(caught?.location).toEqual(caught?.errors?.[0]?.location);
    expect(caught?.message).toContain('3 configuration error(s) in u.xml');
    expect(caught?.errors?.[1]?.location).toEqual({ file: 'u.xml', line: 4, column: 33, element: 'virtual_addr', attribute: 'chek' });
    expect(formatConfigError(caught!.errors![1]!)).toBe('u.xml:4:33: FARMLB_E_CONFIG_UNKNOWN_ATTRIBUTE unknown attribute chek= on <virtual_addr> (did you mean check?)');
  });

  it('reports malformed XML with its line and column', () => {
    const [e] = errorsOf(() => parseFarmConfig('<safe>\n <service mode="farm">\n  <vip tcpreset="on>\n</safe>\n', 'u.xml'));
    expect(e!.code).toBe('FARMLB_E_CONFIG_XML');
    expect(e!.location?.file).toBe('u.xml');
    expect(e!.location?.line).toBeGreaterThanOrEqual(3);
    expect(e!.location?.column).toBeGreaterThanOrEqual(1);
  });

  it('reports a <safe> without <service> once, not also the missing <vip>', () => {
    const errors = errorsOf(() => parseFarmConfig('<safe><macro name="A" value="1"/></safe>', 'u.xml'));
    expect(errors.map((e) => e.code)).toEqual(['FARMLB_E_CONFIG_MISSING_ELEMENT']);
    expect(errors[0]!.text).toBe('<safe> has no <service>');
  });

  it('combines the errors of userconfig.xml and cluster.xml in one aggregate', async () => {
    const dir = path.join(root, 'test/fixtures/bad-configs');
    let caught: FarmlbError | undefined;
    try {
      await loadConfigs({ config: path.join(dir, 'bad-port-range.xml'), cluster: path.join(dir, 'cluster-duplicate-addr.xml') });
    } catch (err) { caught = err as FarmlbError; }
    expect(caught?.errors?.map((e) => e.code)).toEqual(['FARMLB_E_CONFIG_BAD_PORT', 'FARMLB_E_CONFIG_CLUSTER_DUPLICATE_ADDR']);
  });

  it('throws FARMLB_E_CONFIG_READ for a file that does not exist', async () => {
    await expect(loadFarmConfig('/nonexistent/userconfig.xml')).rejects.toMatchObject({ code: 'FARMLB_E_CONFIG_READ' });
  });

  it('documents every warning code in docs/config.md', () => {
    const doc = readFileSync(path.join(root, 'docs/config.md'), 'utf8');
    for (const code of Object.keys(CONFIG_WARNINGS)) expect(doc, code).toContain(code);
  });
});

describe('parseClusterConfig', () => {
  it('lists LANs, and node names in order of first appearance over all LANs', () => {
    const c = parseClusterConfig(read('cluster.xml'), 'cluster.xml');
    expect(c.lans.map((l) => l.name)).toEqual(['default', 'backup']);
    expect(c.nodes).toEqual(['node1', 'node2', 'node3']);
    expect(c.lans[1]!.nodes.map((n) => n.addr)).toEqual(['10.1.0.1', '10.1.0.2', 'fd00::3']);
    expect(c.lans[0]!.nodes[0]!.src).toMatchObject({ file: 'cluster.xml', line: 5, element: 'node' });
  });

  it('numbers a node that appears only in a later LAN after the earlier ones', () => {
    const c = parseClusterConfig(`<cluster><lans>
      <lan name="a"><node name="n2" addr="10.0.0.2"/><node name="n1" addr="10.0.0.1"/></lan>
      <lan name="b"><node name="n1" addr="10.1.0.1"/><node name="n3" addr="10.1.0.3"/></lan></lans></cluster>`, 'c.xml');
    expect(c.nodes).toEqual(['n2', 'n1', 'n3']);
  });

  it('rejects more than 64 distinct nodes', () => {
    const nodes = Array.from({ length: 65 }, (_, i) => `<node name="n${i}" addr="10.0.${i >> 8}.${(i & 255) + 1}"/>`).join('\n');
    const [e] = errorsOf(() => parseClusterConfig(`<cluster><lans><lan name="default">\n${nodes}\n</lan></lans></cluster>`, 'c.xml'));
    expect(e).toMatchObject({ code: 'FARMLB_E_CONFIG_TOO_MANY', location: expect.objectContaining({ line: 66 }) });
  });

  it('rejects a userconfig.xml given as cluster.xml by its root element', () => {
    const [e] = errorsOf(() => parseClusterConfig(read('safekit-minimal.xml'), 'c.xml'));
    expect(e!.code).toBe('FARMLB_E_CONFIG_ROOT');
  });
});

describe('validateAgainstCluster and loadConfigs', () => {
  const cluster = parseClusterConfig(read('cluster.xml'), 'cluster.xml');

  it('accepts hosts and LANs that cluster.xml lists', () => {
    expect(() => validateAgainstCluster(parseFarmConfig(read('multi-group.xml'), 'm.xml'), cluster)).not.toThrow();
  });

  it('names the unknown host, where it is written, and the nodes that exist', () => {
    const farm = parseFarmConfig(read('multi-group.xml').replace('<host name="node3" power="0"/>', '<host name="node4" power="0"/>'), 'm.xml');
    const [e] = errorsOf(() => validateAgainstCluster(farm, cluster));
    expect(e!.code).toBe('FARMLB_E_CONFIG_UNKNOWN_HOST');
    expect(e!.location).toMatchObject({ file: 'm.xml', line: 32, element: 'host', attribute: 'name' });
    expect(e!.text).toContain('node4');
    expect(e!.hint).toContain('node1, node2, node3');
  });

  it('returns both files, and no cluster when none is given', async () => {
    const both = await loadConfigs({ config: fixture('multi-group.xml'), cluster: fixture('cluster.xml') });
    expect(both.cluster?.nodes).toEqual(['node1', 'node2', 'node3']);
    const alone = await loadConfigs({ config: fixture('multi-group.xml') });
    expect(alone.cluster).toBeUndefined();
    expect(alone.farm.groups).toHaveLength(3);
    expect((await loadClusterConfig(fixture('cluster.xml'))).lans).toHaveLength(2);
  });
});

describe('configDigest', () => {
  const farm = parseFarmConfig(read('multi-group.xml'), 'a.xml');
  const cluster = parseClusterConfig(read('cluster.xml'), 'cluster.xml');
  const digest = configDigest(farm, cluster);

  it('is a sha256 hex string, stable for the same input', () => {
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
    expect(configDigest(parseFarmConfig(read('multi-group.xml'), 'a.xml'), cluster)).toBe(digest);
  });

  it('ignores positions, comments, file names, the interface name and the key file path', () => {
    const moved = `${read('multi-group.xml')}\n<!-- moved -->\n`
      .replace('<safe>', '<!-- lines moved down -->\n\n  <safe>')
      .replace('name="eth0"', 'name="ens3"')
      .replace('key_file="/etc/farmlb/web.key"', 'key_file="/srv/keys/web.key"')
      .replace('<group name="web">', '<group   name="web"  >');
    expect(configDigest(parseFarmConfig(moved, 'elsewhere/b.xml'), cluster)).toBe(digest);
  });

  it('stays the same with membership="builtin" written out (the default)', () => {
    const written = read('multi-group.xml').replace('split_brain="quorum"', 'split_brain="quorum" membership="builtin"');
    expect(configDigest(parseFarmConfig(written, 'a.xml'), cluster)).toBe(digest);
  });

  it('changes when anything that decides packet ownership changes', () => {
    const changes = [
      ['power="2"', 'power="3"'], ['hash_seed="0x12345678"', 'hash_seed="0x12345679"'], ['port="443"', 'port="8443"'],
      ['filter="on_port"', 'filter="on_addr"'], ['mlost_count="15"', 'mlost_count="16"'], ['split_brain="quorum"', 'split_brain="serve"'],
      ['split_brain="quorum"', 'split_brain="quorum" membership="corosync"'],
    ];
    for (const [from, to] of changes) {
      expect(configDigest(parseFarmConfig(read('multi-group.xml').replace(from!, to!), 'a.xml'), cluster), `${from} → ${to}`).not.toBe(digest);
    }
    const otherCluster = parseClusterConfig(read('cluster.xml').replace('10.0.0.3', '10.0.0.4'), 'cluster.xml');
    expect(configDigest(farm, otherCluster)).not.toBe(digest);
    expect(configDigest(farm)).not.toBe(digest);
  });
});

describe('limits', () => {
  it('match the map sizes of bpf/farmlb_abi.h', () => {
    const abi = readFileSync(path.join(root, 'bpf/farmlb_abi.h'), 'utf8');
    const define = (name: string) => Number(new RegExp(`#define ${name} (\\d+)`).exec(abi)?.[1]);
    expect(LIMITS.groups).toBe(define('FARMLB_MAX_GROUPS'));
    expect(LIMITS.vips).toBe(define('FARMLB_MAX_VIPS'));
    expect(LIMITS.rules).toBe(define('FARMLB_MAX_RULES'));
    expect(LIMITS.nodes).toBe(define('FARMLB_MAX_NODES'));
  });
});
