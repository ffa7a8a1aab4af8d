// The application sections of userconfig.xml: <check> (checkers), <errd> (process
// monitoring), <user> (module scripts) and <service maxloop loop_interval> (SafeKit user
// guide §13.8, §13.10–13.16), read with their SafeKit names so an existing file keeps
// working. Values farmlb reads are checked strictly (a typo in a port moves a farm); names
// SafeKit has and farmlb does not use are warned about and ignored, as elsewhere outside <vip>.
//
// farmlb additions, in SafeKit's style: the <http> checker (keepalived's HTTP_GET/SSL_GET)
// and fall=/rise= on every checker (keepalived's counts: one lost probe does not move buckets).

import path from 'node:path';
import type { Reader } from './reader.js';
import type { AppAction, AppConfig, AppWhen, CheckerConfig, ProcConfig } from './types.js';
import { parseDurationMs, parseIp, parsePortNumber, parseUint } from './values.js';
import type { XmlAttr, XmlElement } from './xml.js';
import { isInterfaceName } from './ifname.js';

/** Checker timing when the file says nothing: sub-second, like the rest of farmlb (docs/application.md). */
export const CHECKER_DEFAULTS = { intervalMs: 250, timeoutMs: 1_000, fall: 2, rise: 2 } as const;
/** SafeKit's defaults for <errd polltimer>, <user *stoptimeout>, <service maxloop loop_interval>. */
export const APP_DEFAULTS = {
  procPollMs: 10_000,
  niceStopTimeoutMs: 300_000,
  forceStopTimeoutMs: 300_000,
  maxloop: 3,
  loopIntervalMs: 24 * 3_600_000,
} as const;

/** SafeKit's default action per checker kind (§13.12–13.16); <http> follows <tcp>. */
const DEFAULT_ACTION: Record<CheckerConfig['kind'], AppAction> = {
  tcp: 'restart', http: 'restart', ping: 'wait', intf: 'wait', ip: 'stopstart', custom: 'restart',
};
const ACTIONS: readonly AppAction[] = ['wait', 'restart', 'stopstart'];
const CHECKER_KINDS = ['tcp', 'http', 'ping', 'intf', 'ip', 'custom'] as const;
/** SafeKit checkers farmlb does not implement (a module of another module, the split-brain witness). */
const IGNORED_CHECKERS: Record<string, string> = {
  module: 'module checker (farmlb runs one module per daemon)',
  splitbrain: 'split-brain checker (farmlb: <farmlb split_brain=…>)',
};
const MAX_COUNT = 100;
const IDENT_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

export function defaultAppConfig(binDir = ''): AppConfig {
  return { binDir, checkers: [], procs: [], procPollMs: APP_DEFAULTS.procPollMs, maxloop: APP_DEFAULTS.maxloop, loopIntervalMs: APP_DEFAULTS.loopIntervalMs };
}

export interface AppSections {
  service?: XmlElement;
  check?: XmlElement;
  errd?: XmlElement;
  user?: XmlElement;
}

/**
 * The application of a module. `scriptsDir`: <farmlb scripts_dir> when given; else the
 * module's programs live in SafeKit's layout, <module>/bin beside <module>/conf/userconfig.xml.
 */
export function readApp(r: Reader, s: AppSections, scriptsDir?: string): AppConfig {
  const app = defaultAppConfig(scriptsDir ?? defaultScriptsDir(r.diag.file));
  if (s.service) {
    const maxloop = r.attr(s.service, 'maxloop');
    app.maxloop = r.parsed(s.service, maxloop, (t) => parseUint(t, 1000), app.maxloop, 'FARMLB_E_CONFIG_BAD_NUMBER');
    // SafeKit: loop_interval in hours; 8.2.5 time units accepted.
    app.loopIntervalMs = hours(r, s.service, r.attr(s.service, 'loop_interval'), app.loopIntervalMs);
  }
  if (s.check) app.checkers = readChecks(r, s.check);
  if (s.errd) {
    r.checkAttributes(s.errd, ['polltimer'], 'warn');
    app.procPollMs = duration(r, s.errd, r.attr(s.errd, 'polltimer'), app.procPollMs, 's', 100);
    app.procs = readProcs(r, s.errd);
  }
  if (s.user) app.scripts = readUser(r, s.user);
  return app;
}

/** SafeKit's module layout puts scripts in <module>/bin beside <module>/conf/userconfig.xml. */
export function defaultScriptsDir(configFile: string): string {
  const dir = path.dirname(path.resolve(configFile));
  return path.basename(dir) === 'conf' ? path.join(path.dirname(dir), 'bin') : path.join(dir, 'bin');
}

function duration(r: Reader, el: XmlElement, attr: XmlAttr | undefined | null, fallback: number, bareUnit: 'ms' | 's', minMs = 1): number {
  if (!attr) return fallback;
  const p = parseDurationMs(attr.value, bareUnit);
  if (!p.ok) {
    r.diag.error('FARMLB_E_CONFIG_BAD_TIME', { attribute: attr.name, value: attr.value, unit: bareUnit === 's' ? 'seconds' : 'milliseconds' }, el, attr);
    return fallback;
  }
  if (p.value < minMs) {
    r.diag.error('FARMLB_E_CONFIG_BAD_NUMBER', { attribute: attr.name, value: attr.value, expected: `a duration of at least ${minMs}ms` }, el, attr);
    return fallback;
  }
  return p.value;
}

function hours(r: Reader, el: XmlElement, attr: XmlAttr | undefined | null, fallback: number): number {
  if (!attr) return fallback;
  if (/^\d+$/.test(attr.value.trim())) return duration(r, el, { ...attr, value: `${attr.value.trim()}h` }, fallback, 's', 1000);
  return duration(r, el, attr, fallback, 's', 1000);
}

function count(r: Reader, el: XmlElement, name: string, fallback: number, min: number): number {
  const attr = r.attr(el, name);
  const n = r.parsed(el, attr, (t) => parseUint(t, MAX_COUNT), fallback, 'FARMLB_E_CONFIG_BAD_NUMBER');
  if (n >= min) return n;
  r.diag.error('FARMLB_E_CONFIG_BAD_NUMBER', { attribute: name, value: String(n), expected: `a whole number from ${min} to ${MAX_COUNT}` }, el, name);
  return fallback;
}

function readWhen(r: Reader, el: XmlElement, attrName = 'when'): AppWhen {
  const attr = r.attr(el, attrName);
  // SafeKit's mirror word `prim` and its farm word `both` both mean "while the application runs".
  const v = r.oneOf(el, attr, ['pre', 'both', 'prim'] as const, 'both');
  return v === 'pre' ? 'pre' : 'both';
}

function readChecks(r: Reader, el: XmlElement): CheckerConfig[] {
  r.checkAttributes(el, [], 'warn');
  const out: CheckerConfig[] = [];
  const seen = new Map<string, number>();
  for (const c of el.children) {
    if (!(CHECKER_KINDS as readonly string[]).includes(c.name)) {
      const what = IGNORED_CHECKERS[c.name];
      if (what) r.warn('FARMLB_W_CONFIG_IGNORED_SECTION', `<${c.name}> (${what}) is not implemented by farmlb; ignored`, c);
      else r.warn('FARMLB_W_CONFIG_UNKNOWN_SECTION', `<${c.name}> in <check> is not a checker farmlb knows (${CHECKER_KINDS.join(', ')}); ignored`, c);
      continue;
    }
    const checker = readChecker(r, c, c.name as CheckerConfig['kind']);
    if (!checker) continue;
    const first = seen.get(checker.resource);
    if (first !== undefined) {
      r.diag.error('FARMLB_E_CONFIG_DUPLICATE_IDENT', { resource: checker.resource, firstLine: first }, c, 'ident');
      continue;
    }
    seen.set(checker.resource, c.line);
    out.push(checker);
  }
  return out;
}

const COMMON_ATTRS = ['ident', 'when', 'action', 'fall', 'rise', 'interval', 'timeout'];
const TO_ATTRS: Record<CheckerConfig['kind'], string[]> = {
  tcp: ['addr', 'port', 'interval', 'timeout'],
  http: ['url', 'status', 'verify', 'interval', 'timeout'],
  ping: ['addr', 'interval', 'timeout'],
  intf: ['name', 'interval'],
  ip: ['addr', 'interval'],
  custom: [],
};

function readChecker(r: Reader, el: XmlElement, kind: CheckerConfig['kind']): CheckerConfig | undefined {
  const diag = r.diag;
  const before = diag.errors.length;
  r.checkAttributes(el, [...COMMON_ATTRS, ...(kind === 'custom' ? ['exec', 'arg'] : [])], 'warn');
  const identAttr = r.required(el, 'ident', 'a checker name (letters, digits, "_", "." and "-")');
  if (identAttr && !IDENT_PATTERN.test(identAttr.value)) {
    diag.error('FARMLB_E_CONFIG_BAD_NAME', { attribute: 'ident', value: identAttr.value, element: el.name, expected: 'letters, digits, "_", "." and "-" (1 to 64)' }, el, identAttr);
  }
  const ident = identAttr?.value ?? '';
  const when = readWhen(r, el);
  const action = r.oneOf(el, r.attr(el, 'action'), ACTIONS, DEFAULT_ACTION[kind]);
  const fall = count(r, el, 'fall', CHECKER_DEFAULTS.fall, 1);
  const rise = count(r, el, 'rise', CHECKER_DEFAULTS.rise, 1);
  // SafeKit writes interval/timeout on <to>; farmlb also takes them on the checker itself.
  const tos = kind === 'custom' ? [] : r.children(el, 'to', true);
  const to = tos[0];
  if (kind !== 'custom' && !to) diag.error('FARMLB_E_CONFIG_MISSING_ELEMENT', { parent: el.name, name: 'to' }, el);
  for (const c of el.children) {
    if (c.name !== 'to' || kind === 'custom') r.warn('FARMLB_W_CONFIG_UNKNOWN_SECTION', `<${c.name}> in <${el.name}> is not read by farmlb; ignored`, c);
  }
  if (to) r.checkAttributes(to, TO_ATTRS[kind], 'warn');
  const timeAttr = (name: string) => (to ? r.attr(to, name) : undefined) ?? r.attr(el, name);
  const intervalMs = duration(r, el, timeAttr('interval'), CHECKER_DEFAULTS.intervalMs, 's', 10);
  const timeoutMs = duration(r, el, timeAttr('timeout'), CHECKER_DEFAULTS.timeoutMs, 's', 10);
  const common = { ident, resource: `${kind}.${ident}`, when, action, intervalMs, timeoutMs, fall, rise, src: diag.ref(el) };

  let checker: CheckerConfig | undefined;
  switch (kind) {
    case 'tcp': {
      const addr = to && address(r, to, 'addr');
      const port = to && r.required(to, 'port', 'a port from 1 to 65535');
      const p = port ? r.parsed(to, port, parsePortNumber, 0, 'FARMLB_E_CONFIG_BAD_PORT') : 0;
      if (addr && p) checker = { ...common, kind, addr, port: p };
      break;
    }
    case 'http': {
      const url = to && r.required(to, 'url', 'an http:// or https:// URL');
      let parsed: URL | undefined;
      if (url) {
        try {
          parsed = new URL(url.value);
          if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('scheme');
        } catch {
          parsed = undefined;
          diag.error('FARMLB_E_CONFIG_BAD_VALUE', { attribute: 'url', value: url.value, element: 'to', expected: 'an http:// or https:// URL (http://127.0.0.1:80/health)' }, to, url);
        }
      }
      const statusAttr = to ? r.attr(to, 'status') : undefined;
      const status = statusAttr ? parseStatuses(statusAttr.value) : [200];
      if (statusAttr && !status) {
        diag.error('FARMLB_E_CONFIG_BAD_VALUE', { attribute: 'status', value: statusAttr.value, element: 'to', expected: 'HTTP status codes or ranges separated by commas (200, 200-399)' }, to!, statusAttr);
      }
      const verifyTls = to ? r.onOff(to, 'verify', false) : false;
      if (parsed && status) checker = { ...common, kind, url: parsed.href, status, verifyTls };
      break;
    }
    case 'ping':
    case 'ip': {
      const addr = to && address(r, to, 'addr');
      if (addr) checker = { ...common, kind, addr };
      break;
    }
    case 'intf': {
      const name = to && r.required(to, 'name', 'a Linux interface name');
      if (name && !isInterfaceName(name.value)) {
        diag.error('FARMLB_E_CONFIG_BAD_NAME', { attribute: 'name', value: name.value, element: 'to', expected: 'a Linux interface name (1 to 15 characters)' }, to!, name);
      } else if (name) {
        checker = { ...common, kind, ifname: name.value };
      }
      break;
    }
    case 'custom': {
      const exec = r.required(el, 'exec', 'the checker program (a path, or a name in the scripts directory)');
      const arg = r.attr(el, 'arg');
      if (exec && exec.value.trim() === '') {
        diag.error('FARMLB_E_CONFIG_BAD_VALUE', { attribute: 'exec', value: '', element: el.name, expected: 'the checker program' }, el, exec);
      } else if (exec) {
        checker = { ...common, kind, exec: exec.value, args: arg ? arg.value.split(/\s+/).filter((x) => x !== '') : [] };
      }
      break;
    }
  }
  return diag.errors.length === before ? checker : undefined;
}

function address(r: Reader, el: XmlElement, name: string): string | undefined {
  const attr = r.required(el, name, 'an IPv4 or IPv6 address');
  if (!attr) return undefined;
  const ip = parseIp(attr.value);
  if (ip.ok) return ip.value.canonical;
  r.diag.error('FARMLB_E_CONFIG_BAD_ADDRESS', { attribute: name, value: attr.value }, el, attr);
  return undefined;
}

/** "200", "200,204", "200-399" → the codes (undefined when malformed). */
export function parseStatuses(text: string): number[] | undefined {
  const out: number[] = [];
  for (const part of text.split(',').map((x) => x.trim())) {
    const m = /^(\d{3})(?:-(\d{3}))?$/.exec(part);
    if (!m) return undefined;
    const lo = Number(m[1]);
    const hi = Number(m[2] ?? m[1]);
    if (lo < 100 || hi > 599 || hi < lo) return undefined;
    for (let s = lo; s <= hi; s++) out.push(s);
  }
  return out.length ? [...new Set(out)] : undefined;
}

function readProcs(r: Reader, el: XmlElement): ProcConfig[] {
  const out: ProcConfig[] = [];
  for (const c of el.children) {
    if (c.name !== 'proc') {
      r.warn('FARMLB_W_CONFIG_UNKNOWN_SECTION', `<${c.name}> in <errd> is not read by farmlb (only <proc>); ignored`, c);
      continue;
    }
    const before = r.diag.errors.length;
    r.checkAttributes(c, ['name', 'nameregex', 'argregex', 'atleast', 'atmost', 'action', 'class'], 'warn');
    const name = r.attr(c, 'name');
    const nameRegex = r.attr(c, 'nameregex');
    if (!name && !nameRegex) r.diag.error('FARMLB_E_CONFIG_MISSING_ATTRIBUTE', { element: 'proc', name: 'name', expected: 'the process name (or nameregex=)' }, c);
    for (const a of [nameRegex, r.attr(c, 'argregex')]) {
      if (!a) continue;
      try {
        new RegExp(a.value);
      } catch {
        r.diag.error('FARMLB_E_CONFIG_BAD_VALUE', { attribute: a.name, value: a.value, element: 'proc', expected: 'a regular expression' }, c, a);
      }
    }
    const atleast = r.parsed(c, r.attr(c, 'atleast'), (t) => parseUint(t, 10_000), 1, 'FARMLB_E_CONFIG_BAD_NUMBER');
    const atmostAttr = r.attr(c, 'atmost');
    const atmost = atmostAttr?.value === '-1' ? -1 : r.parsed(c, atmostAttr, (t) => parseUint(t, 10_000), -1, 'FARMLB_E_CONFIG_BAD_NUMBER');
    const action = r.oneOf(c, r.attr(c, 'action'), ACTIONS, 'restart');
    const when = readWhen(r, c, 'class');
    if (r.diag.errors.length !== before) continue;
    const label = name?.value ?? nameRegex!.value;
    const argRegex = r.attr(c, 'argregex')?.value;
    out.push({
      name: label, ...(nameRegex ? { nameRegex: nameRegex.value } : {}), ...(argRegex !== undefined ? { argRegex } : {}),
      atleast, atmost, action, when, resource: `proc.${label}`, src: r.diag.ref(c),
    });
  }
  return out;
}

function readUser(r: Reader, el: XmlElement): NonNullable<AppConfig['scripts']> {
  r.checkAttributes(el, ['nicestoptimeout', 'forcestoptimeout', 'logging', 'userlogsize'], 'warn');
  const niceStopTimeoutMs = duration(r, el, r.attr(el, 'nicestoptimeout'), APP_DEFAULTS.niceStopTimeoutMs, 's', 100);
  const forceStopTimeoutMs = duration(r, el, r.attr(el, 'forcestoptimeout'), APP_DEFAULTS.forceStopTimeoutMs, 's', 100);
  const logging = r.oneOf(el, r.attr(el, 'logging'), ['userlog', 'none'] as const, 'userlog');
  const vars: { name: string; value: string }[] = [];
  for (const v of el.children) {
    if (v.name !== 'var') {
      r.warn('FARMLB_W_CONFIG_UNKNOWN_SECTION', `<${v.name}> in <user> is not read by farmlb (only <var>); ignored`, v);
      continue;
    }
    r.checkAttributes(v, ['name', 'value'], 'warn');
    const name = r.required(v, 'name', 'an environment variable name');
    if (!name) continue;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name.value)) {
      r.diag.error('FARMLB_E_CONFIG_BAD_NAME', { attribute: 'name', value: name.value, element: 'var', expected: 'an environment variable name (letters, digits and "_", not starting with a digit)' }, v, name);
      continue;
    }
    vars.push({ name: name.value, value: r.attr(v, 'value')?.value ?? '' });
  }
  return { niceStopTimeoutMs, forceStopTimeoutMs, logOutput: logging === 'userlog', vars, src: r.diag.ref(el) };
}
