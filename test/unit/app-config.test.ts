// The application sections of userconfig.xml (<check>, <errd>, <user>, <service maxloop>):
// SafeKit's names read as SafeKit means them, farmlb's additions (<http>, fall/rise), strict
// values and warned-about names farmlb does not use.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configErrorList, parseFarmConfig } from '../../src/config/index.js';
import { defaultScriptsDir, parseStatuses } from '../../src/config/app.js';

const VIP = `<vip><interface_list><interface><virtual_interface type="vmac_invisible"><virtual_addr addr="10.0.0.100"/></virtual_interface></interface></interface_list>
  <loadbalancing_list><group name="g"><rule proto="tcp" filter="on_addr"/></group></loadbalancing_list></vip>`;

function doc(service: string, attrs = ''): string {
  return `<safe><service mode="farm"${attrs}>${VIP}${service}</service></safe>`;
}

function errors(xml: string): string[] {
  try {
    parseFarmConfig(xml, '/m/conf/userconfig.xml');
  } catch (err) {
    return configErrorList(err).map((e) => `${e.code}:${e.location?.attribute ?? e.location?.element}`);
  }
  return [];
}

describe('<check>', () => {
  it('reads every checker kind with SafeKit names, resources <kind>.<ident> and SafeKit default actions', () => {
    const farm = parseFarmConfig(doc(`<check>
      <tcp ident="web" when="both"><to addr="127.0.0.1" port="80" interval="500ms" timeout="2"/></tcp>
      <http ident="health" action="wait" fall="3" rise="5"><to url="http://127.0.0.1:8080/health" status="200,204"/></http>
      <ping ident="router" when="pre"><to addr="192.168.1.1"/></ping>
      <intf ident="lan" when="pre"><to name="eth0"/></intf>
      <ip ident="vip"><to addr="10.0.0.100"/></ip>
      <custom ident="db" exec="dbcheck" arg="-q  --port 5432" action="stopstart"/>
    </check>`), '/m/conf/userconfig.xml');
    expect(farm.warnings).toEqual([]);
    expect(farm.app!.checkers.map((c) => [c.resource, c.kind, c.when, c.action, c.intervalMs, c.timeoutMs, c.fall, c.rise])).toEqual([
      ['tcp.web', 'tcp', 'both', 'restart', 500, 2000, 2, 2],
      ['http.health', 'http', 'both', 'wait', 250, 1000, 3, 5],
      ['ping.router', 'ping', 'pre', 'wait', 250, 1000, 2, 2],
      ['intf.lan', 'intf', 'pre', 'wait', 250, 1000, 2, 2],
      ['ip.vip', 'ip', 'both', 'stopstart', 250, 1000, 2, 2],
      ['custom.db', 'custom', 'both', 'stopstart', 250, 1000, 2, 2],
    ]);
    expect(farm.app!.checkers[1]).toMatchObject({ url: 'http://127.0.0.1:8080/health', status: [200, 204], verifyTls: false });
    expect(farm.app!.checkers[5]).toMatchObject({ exec: 'dbcheck', args: ['-q', '--port', '5432'] });
  });

  it('reads a bare number of seconds as SafeKit does, and a mirror when="prim" as both', () => {
    const farm = parseFarmConfig(doc('<check><tcp ident="a" when="prim"><to addr="::1" port="22" interval="10" timeout="5"/></tcp></check>'), 'u.xml');
    expect(farm.app!.checkers[0]).toMatchObject({ addr: '::1', intervalMs: 10_000, timeoutMs: 5_000, when: 'both' });
  });

  it('warns about the SafeKit checkers farmlb does not implement and about unknown ones', () => {
    const farm = parseFarmConfig(doc('<check><module ident="m"><to name="other"/></module><splitbrain ident="w" exec="ping"/><frob/></check>'), 'u.xml');
    expect(farm.warnings.map((w) => `${w.code}:${w.src.element}`)).toEqual([
      'FARMLB_W_CONFIG_IGNORED_SECTION:module', 'FARMLB_W_CONFIG_IGNORED_SECTION:splitbrain', 'FARMLB_W_CONFIG_UNKNOWN_SECTION:frob',
    ]);
  });

  it('rejects what it cannot check: a bad address, port, URL, status, action, count, two checkers of one resource', () => {
    expect(errors(doc('<check><tcp ident="a"><to addr="localhost" port="80"/></tcp></check>'))).toEqual(['FARMLB_E_CONFIG_BAD_ADDRESS:addr']);
    expect(errors(doc('<check><tcp ident="a"><to addr="127.0.0.1" port="0"/></tcp></check>'))).toEqual(['FARMLB_E_CONFIG_BAD_PORT:port']);
    expect(errors(doc('<check><tcp ident="a"/></check>'))).toEqual(['FARMLB_E_CONFIG_MISSING_ELEMENT:tcp']);
    expect(errors(doc('<check><http ident="h"><to url="ftp://x/"/></http></check>'))).toEqual(['FARMLB_E_CONFIG_BAD_VALUE:url']);
    expect(errors(doc('<check><http ident="h"><to url="http://127.0.0.1/" status="2xx"/></http></check>'))).toEqual(['FARMLB_E_CONFIG_BAD_VALUE:status']);
    expect(errors(doc('<check><ping ident="p" action="reboot"><to addr="10.0.0.1"/></ping></check>'))).toEqual(['FARMLB_E_CONFIG_BAD_VALUE:action']);
    expect(errors(doc('<check><ping ident="p" fall="0"><to addr="10.0.0.1"/></ping></check>'))).toEqual(['FARMLB_E_CONFIG_BAD_NUMBER:fall']);
    expect(errors(doc('<check><ping ident="p"><to addr="10.0.0.1" interval="soon"/></ping></check>'))).toEqual(['FARMLB_E_CONFIG_BAD_TIME:interval']);
    expect(errors(doc('<check><ping ident="p"><to addr="10.0.0.1"/></ping><ping ident="p"><to addr="10.0.0.2"/></ping></check>')))
      .toEqual(['FARMLB_E_CONFIG_DUPLICATE_IDENT:ident']);
    expect(errors(doc('<check><custom ident="c"/></check>'))).toEqual(['FARMLB_E_CONFIG_MISSING_ATTRIBUTE:custom']);
  });

  it('parses status lists and ranges', () => {
    expect(parseStatuses('200')).toEqual([200]);
    expect(parseStatuses('200-202, 301')).toEqual([200, 201, 202, 301]);
    expect(parseStatuses('99')).toBeUndefined();
    expect(parseStatuses('300-200')).toBeUndefined();
  });
});

describe('a cloud farm (no <vip>)', () => {
  it('loads: no VIP, one implicit group of every node, the application as configured', () => {
    const file = path.join(import.meta.dirname, '../fixtures/configs/cloud-farm.xml');
    const farm = parseFarmConfig(readFileSync(file, 'utf8'), file);
    expect(farm).toMatchObject({ cloud: true, vips: [], interfaces: [], groups: [{ name: 'farm', hosts: null, rules: [] }], warnings: [] });
    expect(farm.app!.checkers.map((c) => c.resource)).toEqual(['tcp.web']);
  });
});

describe('<errd>, <user>, <service maxloop>', () => {
  it('reads <proc> with SafeKit attributes, polltimer in seconds and loop_interval in hours', () => {
    const farm = parseFarmConfig(doc(`<errd polltimer="500ms">
      <proc name="nginx" atleast="2" atmost="-1" action="stopstart" class="prim"/>
      <proc nameregex="^java$" argregex="tomcat" class="pre"/>
    </errd>`, ' maxloop="5" loop_interval="2"'), 'u.xml');
    expect(farm.warnings).toEqual([]);
    expect(farm.app).toMatchObject({ procPollMs: 500, maxloop: 5, loopIntervalMs: 2 * 3_600_000 });
    expect(farm.app!.procs).toMatchObject([
      { name: 'nginx', atleast: 2, atmost: -1, action: 'stopstart', when: 'both', resource: 'proc.nginx' },
      { name: '^java$', nameRegex: '^java$', argRegex: 'tomcat', atleast: 1, action: 'restart', when: 'pre' },
    ]);
    expect(parseFarmConfig(doc('', ' loop_interval="90s"'), 'u.xml').app!.loopIntervalMs).toBe(90_000);
  });

  it('rejects a <proc> without a name and a regular expression that does not compile', () => {
    expect(errors(doc('<errd><proc atleast="1"/></errd>'))).toEqual(['FARMLB_E_CONFIG_MISSING_ATTRIBUTE:proc']);
    expect(errors(doc('<errd><proc name="x" argregex="(("/></errd>'))).toEqual(['FARMLB_E_CONFIG_BAD_VALUE:argregex']);
  });

  it('reads <user> timeouts, logging and variables; the scripts live in SafeKit\'s <module>/bin unless <farmlb scripts_dir> says', () => {
    const farm = parseFarmConfig(doc('<user nicestoptimeout="20" forcestoptimeout="5s" logging="none"><var name="SERVICES" value="nginx"/></user>'), '/m/conf/userconfig.xml');
    expect(farm.app!.binDir).toBe('/m/bin');
    expect(farm.app!.scripts).toMatchObject({ niceStopTimeoutMs: 20_000, forceStopTimeoutMs: 5_000, logOutput: false, vars: [{ name: 'SERVICES', value: 'nginx' }] });
    const other = parseFarmConfig(doc('<user/><farmlb scripts_dir="scripts"/>'), '/etc/farmlb/u.xml');
    expect(other.app!.binDir).toBe('/etc/farmlb/scripts');
    expect(defaultScriptsDir('/etc/farmlb/u.xml')).toBe('/etc/farmlb/bin');
    expect(errors(doc('<user><var name="1BAD" value=""/></user>'))).toEqual(['FARMLB_E_CONFIG_BAD_NAME:name']);
  });

  it('runs no script without <user>, as SafeKit', () => {
    expect(parseFarmConfig(doc(''), 'u.xml').app!.scripts).toBeUndefined();
  });
});
