// Nothing accepted silently and ignored (docs/config.md "Warnings" and "Rules that
// match nothing"): every setting that validate accepts but that does nothing is warned about,
// a "*" rule that matches nothing is an error (other groups took its VIPs) or a warning (its
// own group did), and `farmlb validate` shows cluster.xml's warnings next to userconfig.xml's.

import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configErrorList, parseFarmConfig } from '../../src/config/index.js';
import { runCli } from '../helpers/cli.js';

const doc = (interfaces: string, groups: string) =>
  `<safe><service mode="farm"><farm><lan name="default"/></farm><vip><interface_list>${interfaces}</interface_list><loadbalancing_list>${groups}</loadbalancing_list></vip></service></safe>`;
const itf = (type: string | null, vips: string[], attrs = '') =>
  `<interface${attrs}><virtual_interface${type ? ` type="${type}"` : ''}>${vips.map((v) => `<virtual_addr addr="${v}"/>`).join('')}</virtual_interface></interface>`;
const codes = (text: string) => parseFarmConfig(text, 'u.xml').warnings.map((w) => w.code);
const errorsOf = (text: string) => {
  try {
    parseFarmConfig(text, 'u.xml');
    return [];
  } catch (err) {
    return configErrorList(err).map((e) => `${e.code}@${e.location?.line}`);
  }
};

describe('settings accepted but doing nothing are warned about', () => {
  it('a <virtual_interface> without type= (vmac_invisible, promiscuous mode on)', () => {
    const farm = parseFarmConfig(doc(itf(null, ['10.0.0.100']), '<group name="g"><rule proto="tcp" filter="on_addr"/></group>'), 'u.xml');
    expect(farm.interfaces[0]!.type).toBe('vmac_invisible');
    expect(farm.warnings).toEqual([expect.objectContaining({ code: 'FARMLB_W_CONFIG_DEFAULT_TYPE', message: expect.stringMatching(/promiscuous/) })]);
    expect(codes(doc(itf('vmac_invisible', ['10.0.0.100']), '<group name="g"><rule proto="tcp" filter="on_addr"/></group>'))).toEqual([]);
  });

  it('connections="on" on a <virtual_addr>; connections="off" is silent', () => {
    const on = doc('<interface><virtual_interface type="vmac_directed"><virtual_addr addr="10.0.0.100" connections="on"/></virtual_interface></interface>',
      '<group name="g"><rule proto="tcp" filter="on_addr"/></group>');
    expect(codes(on)).toEqual(['FARMLB_W_CONFIG_IGNORED_SETTING']);
    expect(codes(on.replace('connections="on"', 'connections="off"'))).toEqual([]);
  });

  it('arpreroute="on" on vmac_invisible, and on vmac_directed without an arp rule; not with one', () => {
    const tcp = '<group name="g"><rule proto="tcp" filter="on_addr"/></group>';
    expect(codes(doc(itf('vmac_invisible', ['10.0.0.100'], ' arpreroute="on"'), tcp))).toEqual(['FARMLB_W_CONFIG_ARPREROUTE_NOOP']);
    expect(codes(doc(itf('vmac_directed', ['10.0.0.100'], ' arpreroute="on"'), tcp))).toEqual(['FARMLB_W_CONFIG_ARPREROUTE_NOOP']);
    expect(codes(doc(itf('vmac_directed', ['10.0.0.100'], ' arpreroute="on"'), '<group name="g"><rule proto="tcp" filter="on_addr"/><rule proto="arp" filter="on_addr"/></group>'))).toEqual([]);
  });
});

describe('a rule that matches nothing', () => {
  const twoVips = itf('vmac_directed', ['10.0.0.100', '10.0.0.101']);
  it('is an error at its line when other groups take every VIP it covers', () => {
    const text = doc(twoVips, `<group name="a"><rule port="80" proto="tcp" filter="on_addr"/></group>
<group name="b"><rule virtual_addr="10.0.0.100" port="80" proto="tcp" filter="on_addr"/><rule virtual_addr="10.0.0.101" proto="tcp" filter="on_port"/></group>`);
    expect(errorsOf(text)).toEqual(['FARMLB_E_CONFIG_DEAD_RULE@1']);
    // One VIP left to it: alive.
    expect(errorsOf(text.replace('<rule virtual_addr="10.0.0.101" proto="tcp" filter="on_port"/>', ''))).toEqual([]);
  });

  it('is a warning when only its own group takes them (redundant, nothing changes)', () => {
    const farm = parseFarmConfig(doc(twoVips, `<group name="a"><rule proto="udp" filter="on_addr"/><rule virtual_addr="10.0.0.100" proto="udp" filter="on_port"/><rule virtual_addr="10.0.0.101" proto="udp" filter="on_port"/></group>`), 'u.xml');
    expect(farm.warnings.map((w) => [w.code, w.src.line])).toEqual([['FARMLB_W_CONFIG_REDUNDANT_RULE', 1]]);
  });

  it('on_ipid with only IPv6 VIPs, and an arp "*" rule whose directed interface has only a broken VIP, each give one error', () => {
    expect(errorsOf(doc(itf('vmac_directed', ['2001:db8::1']), '<group name="g"><rule port="53" proto="udp" filter="on_ipid"/></group>'))[0]).toMatch(/^FARMLB_E_CONFIG_DEAD_RULE@/);
    expect(errorsOf(doc(itf('vmac_directed', ['10.0.0.256']), '<group name="g"><rule proto="tcp" filter="on_addr"/><rule proto="arp" filter="on_addr"/></group>')))
      .toEqual(['FARMLB_E_CONFIG_BAD_ADDRESS@1']);
  });
});

describe('farmlb validate shows cluster.xml warnings', () => {
  it('prints them on stderr and lists them under warnings in --json, next to userconfig.xml\'s', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'flb-warn-'));
    const config = path.join(dir, 'userconfig.xml');
    const cluster = path.join(dir, 'cluster.xml');
    writeFileSync(config, doc(itf(null, ['10.0.0.100']), '<group name="g"><rule proto="tcp" filter="on_addr"/></group>'));
    writeFileSync(cluster, '<cluster><lans><lan name="default"><node name="n1" addr="10.0.0.1"/><node name="n2" addr="10.0.0.2"/></lan></lans><extra/></cluster>');
    const text = await runCli(['validate', config, '--cluster', cluster]);
    expect(text.code).toBe(0);
    expect(text.stderr).toContain('warning FARMLB_W_CONFIG_DEFAULT_TYPE');
    expect(text.stderr).toMatch(new RegExp(`${cluster}:1:\\d+: warning FARMLB_W_CONFIG_UNKNOWN_SECTION`));
    const json = JSON.parse((await runCli(['validate', config, '--cluster', cluster, '--json'])).stdout) as { warnings: { code: string; file: string }[] };
    expect(json.warnings.map((w) => [w.code, path.basename(w.file)])).toEqual([
      ['FARMLB_W_CONFIG_DEFAULT_TYPE', 'userconfig.xml'], ['FARMLB_W_CONFIG_UNKNOWN_SECTION', 'cluster.xml'],
    ]);
  });
});
