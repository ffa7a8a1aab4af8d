// userconfig.xml → FarmConfig. Reads SafeKit's <safe><service mode="farm"> with its <farm>
// topology, the <vip> section of the farm architecture (seed 001 §13.6.4.1) and farmlb's own
// <farmlb/> element; every other SafeKit section is accepted with a warning. Inside <vip>
// and <farmlb> the syntax is strict (unknown names are errors with a did-you-mean), since a
// typo there silently changes which node serves which packet.

import path from 'node:path';
import { defaultFarmlbSettings, defaultFarmTopology, DEFAULT_HASH_SEED, INTERFACE_DEFAULTS, LIMITS } from './defaults.js';
import { openConfigDocument, Reader } from './reader.js';
import { checkRules } from './rules.js';
import { readApp } from './app.js';
import type {
  Criterion, FarmConfig, FarmlbSettings, FarmTopology, Group, Host, Rule, RuleProto, SplitBrainPolicy, MembershipBackend, VipInterface, VirtualAddr, VmacMode,
} from './types.js';
import {
  defaultVmac, looksLikeHostname, parseDurationMs, parseIp, parseNetmask, parsePortNumber, parseUint, parseUint32,
  parseUnicastMac, vipAddressProblem, vipPrefixProblem, type IpAddr,
} from './values.js';
import type { XmlAttr, XmlElement } from './xml.js';
import { isInterfaceName, RESERVED_IFNAMES } from './ifname.js';
import { parseCidr } from './cidr.js';
import { MODULE_PATTERN } from '../paths.js';

/** SafeKit userconfig sections farmlb reads nothing from (user guide §13), with what they do. */
export const IGNORED_SAFEKIT_SECTIONS: Record<string, string> = {
  heart: 'mirror heartbeats (farm heartbeats are <farm>)',
  rfs: 'file replication',
  vhost: 'virtual hostname',
  checker: 'checkers',
  failover: 'the failover machine',
  module: 'module checker',
  splitbrain: 'split-brain checker (farmlb: <farmlb split_brain=…>)',
  hadisk: 'shared disk',
};

const VIP_ATTRS = ['tcpreset', 'scriptcontrol'] as const;
const INTERFACE_ATTRS = ['check', 'arpreroute', 'arpinterval', 'arpelapse', 'name'] as const;
const VIRTUAL_INTERFACE_ATTRS = ['type', 'addr'] as const;
const VIRTUAL_ADDR_ATTRS = ['addr', 'where', 'check', 'connections', 'netmask'] as const;
const GROUP_ATTRS = ['name'] as const;
const HOST_ATTRS = ['name', 'power'] as const;
const RULE_ATTRS = ['virtual_addr', 'port', 'proto', 'filter'] as const;

/** <farmlb> attributes: the canonical (SafeKit-style snake_case) name, then the accepted alias. */
const FARMLB_ATTRS = {
  module: ['module'],
  hashSeed: ['hash_seed', 'hashSeed'],
  keyFile: ['key_file', 'keyFile'],
  acceptKeyFile: ['accept_key_file', 'acceptKeyFile'],
  membershipPort: ['membership_port', 'membershipPort'],
  healthPort: ['health_port', 'healthPort'],
  healthBind: ['health_bind', 'healthBind'],
  healthDetail: ['health_detail', 'healthDetail'],
  splitBrain: ['split_brain', 'splitBrain'],
  handoverLimit: ['handover_limit', 'handoverLimit'],
  membership: ['membership'],
  scriptsDir: ['scripts_dir', 'scriptsDir'],
} as const;

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const NAME_EXPECTED = 'letters, digits, "_", "." and "-" (1 to 64, starting with a letter or digit)';
const MAX_HANDOVER_MS = 600_000;

interface Sections {
  service?: XmlElement;
  farm?: XmlElement;
  vip?: XmlElement;
  farmlb?: XmlElement;
  check?: XmlElement;
  errd?: XmlElement;
  user?: XmlElement;
}

export function parseFarmConfig(text: string, file: string): FarmConfig {
  const { root, diag, r } = openConfigDocument(text, file);
  const sections = findSections(r, root);

  const farm = readFarm(r, sections.farm);
  const farmlb = readFarmlb(r, sections.farmlb);
  const app = readApp(r, sections, farmlb.scriptsDir);
  let config: FarmConfig | undefined;
  if (sections.vip) {
    config = readVip(r, sections.vip, farmlb);
  } else if (sections.service) {
    config = cloudFarm(diag.file, farmlb);
  }
  diag.throwIfErrors();
  return { ...config!, farm, app, warnings: diag.warnings };
}

/** <safe><service>…</service></safe>, a bare <service>, or a bare <vip> (as in the user guide's examples). */
function findSections(r: Reader, root: XmlElement): Sections {
  const diag = r.diag;
  let service: XmlElement | undefined;
  if (root.name === 'vip') return { vip: root };
  if (root.name === 'safe') {
    readMacros(r, root);
    for (const c of root.children) {
      if (c.name === 'macro' || c.name === 'service') continue;
      r.warn('FARMLB_W_CONFIG_UNKNOWN_SECTION', `<${c.name}> in <safe> is not a SafeKit section farmlb knows; ignored`, c);
    }
    const services = r.children(root, 'service', true);
    service = services[0];
    if (!service) {
      diag.error('FARMLB_E_CONFIG_MISSING_ELEMENT', { parent: 'safe', name: 'service' }, root);
      return {};
    }
  } else if (root.name === 'service') {
    service = root;
  } else {
    diag.error('FARMLB_E_CONFIG_ROOT', { found: root.name, expected: '<safe>, <service> or <vip>' }, root);
    return {};
  }

  readMacros(r, service);
  const mode = r.attr(service, 'mode');
  if (mode && mode.value !== 'farm') {
    diag.error('FARMLB_E_CONFIG_NOT_FARM', { mode: mode.value }, service, mode);
  }
  r.checkAttributes(service, ['mode', 'maxloop', 'loop_interval'], 'warn');
  for (const c of service.children) {
    if (['farm', 'vip', 'farmlb', 'macro', 'check', 'errd', 'user'].includes(c.name)) continue;
    const what = IGNORED_SAFEKIT_SECTIONS[c.name];
    if (what) {
      r.warn('FARMLB_W_CONFIG_IGNORED_SECTION', `<${c.name}> (${what}) is not implemented by farmlb; ignored`, c);
    } else {
      r.warn('FARMLB_W_CONFIG_UNKNOWN_SECTION', `<${c.name}> is not a SafeKit section farmlb knows; ignored`, c);
    }
  }
  return {
    service,
    farm: r.children(service, 'farm', true)[0],
    vip: r.children(service, 'vip', true)[0],
    farmlb: r.children(service, 'farmlb', true)[0],
    check: r.children(service, 'check', true)[0],
    errd: r.children(service, 'errd', true)[0],
    user: r.children(service, 'user', true)[0],
  };
}

function readMacros(r: Reader, el: XmlElement): void {
  for (const m of el.children.filter((c) => c.name === 'macro')) {
    const name = m.attrs.find((a) => a.name === 'name');
    const value = m.attrs.find((a) => a.name === 'value');
    if (!name) r.diag.error('FARMLB_E_CONFIG_MISSING_ATTRIBUTE', { element: 'macro', name: 'name', expected: 'the macro name' }, m);
    else r.defineMacro(name.value, value?.value ?? '');
  }
}

function duration(r: Reader, el: XmlElement, attr: XmlAttr | undefined | null, fallback: number, bareUnit: 'ms' | 's'): number {
  if (!attr) return fallback;
  const p = parseDurationMs(attr.value, bareUnit);
  if (p.ok) return p.value;
  r.diag.error('FARMLB_E_CONFIG_BAD_TIME', {
    attribute: attr.name, value: attr.value, unit: bareUnit === 's' ? 'seconds' : 'milliseconds',
  }, el, attr);
  return fallback;
}

function readFarm(r: Reader, el: XmlElement | undefined): FarmTopology {
  const topo = defaultFarmTopology();
  if (!el) return topo;
  topo.src = r.diag.ref(el);
  r.checkAttributes(el, ['pulse', 'mlost_count', 'slost_count'], 'warn');
  topo.pulseMs = duration(r, el, r.attr(el, 'pulse'), topo.pulseMs, 'ms');
  if (topo.pulseMs < 10) {
    r.diag.error('FARMLB_E_CONFIG_BAD_NUMBER', { attribute: 'pulse', value: r.attr(el, 'pulse')?.value ?? '', expected: 'at least 10ms' }, el, 'pulse');
  }
  const count = (name: string, fallback: number): number => {
    const n = r.parsed(el, r.attr(el, name), (t) => parseUint(t, 1000), fallback, 'FARMLB_E_CONFIG_BAD_NUMBER');
    if (n >= 1) return n;
    r.diag.error('FARMLB_E_CONFIG_BAD_NUMBER', { attribute: name, value: String(n), expected: 'a whole number from 1 to 1000' }, el, name);
    return fallback;
  };
  topo.mlostCount = count('mlost_count', topo.mlostCount);
  topo.slostCount = count('slost_count', topo.slostCount);
  const seen = new Map<string, number>();
  for (const lan of el.children) {
    if (lan.name !== 'lan') {
      r.warn('FARMLB_W_CONFIG_UNKNOWN_SECTION', `<${lan.name}> in <farm> is not read by farmlb; ignored`, lan);
      continue;
    }
    r.checkAttributes(lan, ['name'], 'warn');
    const name = r.required(lan, 'name', 'a LAN name of cluster.xml');
    if (!name) continue;
    const first = seen.get(name.value);
    if (first !== undefined) {
      r.diag.error('FARMLB_E_CONFIG_DUPLICATE_LAN', { lan: name.value, parent: 'farm', firstLine: first }, lan, name);
      continue;
    }
    seen.set(name.value, lan.line);
    topo.lans.push(name.value);
    topo.lanRefs!.push({ name: name.value, src: r.diag.ref(lan) });
  }
  return topo;
}

function readFarmlb(r: Reader, el: XmlElement | undefined): FarmlbSettings {
  const get = (key: keyof typeof FARMLB_ATTRS) => (el ? r.attrOf(el, FARMLB_ATTRS[key]) : undefined);
  if (!el) return defaultFarmlbSettings();
  r.checkAttributes(el, Object.values(FARMLB_ATTRS).flat(), 'error');
  r.checkChildren(el, [], 'error');
  r.checkNoText(el);

  const moduleAttr = get('module');
  let module = defaultFarmlbSettings().module;
  if (moduleAttr) {
    if (MODULE_PATTERN.test(moduleAttr.value)) module = moduleAttr.value;
    else {
      r.diag.error('FARMLB_E_CONFIG_BAD_NAME', {
        attribute: moduleAttr.name, value: moduleAttr.value, element: 'farmlb', expected: 'lower-case letters, digits, "_" and "-" (1 to 32)',
      }, el, moduleAttr);
    }
  }
  const s = defaultFarmlbSettings(module);
  s.src = r.diag.ref(el);
  s.hashSeed = r.parsed(el, get('hashSeed'), parseUint32, DEFAULT_HASH_SEED, 'FARMLB_E_CONFIG_BAD_NUMBER');
  const keyAttr = get('keyFile');
  if (keyAttr) {
    if (keyAttr.value.trim() === '') {
      r.diag.error('FARMLB_E_CONFIG_FARMLB_SETTING', {
        attribute: keyAttr.name, value: '', why: 'the heartbeat key file path is empty', advice: 'give the path of the shared key file, or omit the attribute for the default',
      }, el, keyAttr);
    } else {
      // Relative to the config file, so a config and its key can move together.
      s.keyFile = path.resolve(path.dirname(r.diag.file), keyAttr.value);
    }
  }
  // A second key accepted on receive, never signed with: the next (or previous) key of a
  // rotation (docs/security.md, "Rotating the key").
  const acceptAttr = get('acceptKeyFile');
  if (acceptAttr) {
    if (acceptAttr.value.trim() === '') {
      r.diag.error('FARMLB_E_CONFIG_FARMLB_SETTING', {
        attribute: acceptAttr.name, value: '', why: 'the accepted key file path is empty', advice: 'give the path of the other key of a rotation, or omit the attribute',
      }, el, acceptAttr);
    } else {
      s.acceptKeyFile = path.resolve(path.dirname(r.diag.file), acceptAttr.value);
    }
  }
  s.membershipPort = r.parsed(el, get('membershipPort'), parsePortNumber, s.membershipPort, 'FARMLB_E_CONFIG_BAD_PORT');
  s.healthPort = r.parsed(el, get('healthPort'), parsePortNumber, s.healthPort, 'FARMLB_E_CONFIG_BAD_PORT');
  // Addresses the health server listens on (default: the node's own of cluster.xml), and
  // the clients that may read /health and /metrics (default: the node itself); see
  // docs/security.md, "Health and metrics".
  const bind = get('healthBind');
  if (bind) {
    const list = bind.value.split(/[\s,]+/).filter((x) => x !== '');
    const addrs = list.map((x) => parseIp(x));
    const unspecified = addrs.some((a) => a.ok && (a.value.canonical === '0.0.0.0' || a.value.canonical === '::'));
    if (list.length === 0 || addrs.some((a) => !a.ok) || unspecified) {
      r.diag.error('FARMLB_E_CONFIG_BAD_VALUE', {
        attribute: bind.name, value: bind.value, element: 'farmlb', expected: 'IP addresses of this node separated by commas (not the wildcard 0.0.0.0 or ::)',
      }, el, bind);
    } else {
      s.healthBind = addrs.map((a) => (a as { value: IpAddr }).value.canonical);
    }
  }
  const detail = get('healthDetail');
  if (detail) {
    const list = detail.value.split(/[\s,]+/).filter((x) => x !== '');
    if (list.length === 1 && list[0] === 'any') s.healthDetail = ['any'];
    else if (list.length === 0 || list.some((x) => parseCidr(x) === undefined)) {
      r.diag.error('FARMLB_E_CONFIG_BAD_VALUE', {
        attribute: detail.name, value: detail.value, element: 'farmlb', expected: 'addresses or prefixes (10.0.0.0/8, ::1) separated by commas, or "any"',
      }, el, detail);
    } else {
      s.healthDetail = list;
    }
  }
  s.splitBrain = r.oneOf<SplitBrainPolicy>(el, get('splitBrain'), ['serve', 'quorum'], s.splitBrain);
  s.membership = r.oneOf<MembershipBackend>(el, get('membership'), ['builtin', 'corosync'], s.membership ?? 'builtin');
  const scripts = get('scriptsDir');
  // Relative to the config file, like key_file.
  if (scripts && scripts.value.trim() !== '') s.scriptsDir = path.resolve(path.dirname(r.diag.file), scripts.value);
  const handover = get('handoverLimit');
  s.handoverLimitMs = duration(r, el, handover, s.handoverLimitMs, 'ms');
  if (handover && s.handoverLimitMs > MAX_HANDOVER_MS) {
    r.diag.error('FARMLB_E_CONFIG_FARMLB_SETTING', {
      attribute: handover.name, value: handover.value, why: 'a handover longer than 10 minutes keeps buckets split between two owners too long',
      advice: 'use at most 10m; long-lived connections beyond the limit are cut when the bucket moves',
    }, el, handover);
    s.handoverLimitMs = defaultFarmlbSettings().handoverLimitMs;
  }
  return s;
}

function readVip(r: Reader, vipEl: XmlElement, farmlb: FarmlbSettings): FarmConfig {
  const diag = r.diag;
  r.checkAttributes(vipEl, VIP_ATTRS, 'error');
  r.checkChildren(vipEl, ['interface_list', 'loadbalancing_list'], 'error');
  r.checkNoText(vipEl);
  const tcpreset = r.onOff(vipEl, 'tcpreset', true);
  const scriptcontrol = r.onOff(vipEl, 'scriptcontrol', false);

  const interfaceList = r.children(vipEl, 'interface_list', true)[0];
  const interfaces: VipInterface[] = [];
  const vips: VirtualAddr[] = [];
  const vipAddrs: IpAddr[] = [];
  const vipFirstLine = new Map<string, number>();
  // Interfaces whose type= or a <virtual_addr> was rejected: their mode or VIPs are not
  // known, so the rule checks must not report what only follows from that first error.
  const uncertainInterfaces = new Set<VipInterface>();
  // VIPs that parse as addresses but were rejected (broadcast, node address…): a rule naming
  // one is not also "a rule for an unknown VIP".
  const rejectedVips = new Set<string>();
  if (interfaceList) {
    r.checkAttributes(interfaceList, [], 'error');
    r.checkChildren(interfaceList, ['interface'], 'error');
    r.checkNoText(interfaceList);
    for (const ifEl of r.children(interfaceList, 'interface')) {
      const itf = readInterface(r, ifEl, uncertainInterfaces, rejectedVips, (vaEl, addr, family) => {
        const first = vipFirstLine.get(addr.canonical);
        if (first !== undefined) {
          diag.error('FARMLB_E_CONFIG_DUPLICATE_VIP', { addr: addr.canonical, firstLine: first }, vaEl, 'addr');
          return undefined;
        }
        vipFirstLine.set(addr.canonical, vaEl.line);
        if (vipAddrs.length === LIMITS.vips) {
          diag.error('FARMLB_E_CONFIG_TOO_MANY', {
            what: 'virtual addresses', count: `more than ${LIMITS.vips}`, max: LIMITS.vips, advice: 'split the VIPs over several modules (one farmlb instance each)',
          }, vaEl, 'addr');
        }
        const id = vipAddrs.length;
        vipAddrs.push(addr);
        return { id, family };
      });
      if (!itf) continue;
      interfaces.push(itf);
      vips.push(...itf.addrs);
    }
  } else {
    diag.error('FARMLB_E_CONFIG_MISSING_ELEMENT', { parent: 'vip', name: 'interface_list' }, vipEl);
  }
  if (interfaceList && vips.length === 0 && !diag.errors.length) {
    diag.error('FARMLB_E_CONFIG_NO_VIP', {}, interfaceList);
  }

  // SafeKit: the default VMAC is 5A:FE + the FIRST VIP of the module, for every interface.
  const vmac = vipAddrs[0] ? defaultVmac(vipAddrs[0]) : '';
  for (const itf of interfaces) if (!itf.vmacExplicit) itf.vmac = vmac;

  const groups = readGroups(r, vipEl, vips, rejectedVips);
  checkRules(r, groups, interfaces, vips, { uncertain: uncertainInterfaces });
  return { file: diag.file, tcpreset, scriptcontrol, interfaces, vips, groups, farmlb, warnings: diag.warnings };
}

/**
 * A farm module without <vip>: SafeKit's cloud farm (seed 001 §13.6.3). The cloud's load
 * balancer spreads the traffic over the nodes and probes each node's ready.txt; farmlb runs
 * the membership, the checkers and the scripts, and answers the probe (docs/application.md,
 * "Cloud farm"). No VIP, no data plane rule: one implicit group of every node, power 1, so
 * the membership still agrees on who is in the farm.
 */
function cloudFarm(file: string, farmlb: FarmlbSettings): FarmConfig {
  return {
    file, tcpreset: false, scriptcontrol: false, interfaces: [], vips: [], cloud: true,
    groups: [{ name: 'farm', index: 0, hosts: null, rules: [], src: { file, line: 1, column: 1, element: 'service' } }],
    farmlb, warnings: [],
  };
}

type VipAllocator = (el: XmlElement, addr: IpAddr, family: 4 | 6) => { id: number; family: 4 | 6 } | undefined;

function readInterface(r: Reader, el: XmlElement, uncertain: Set<VipInterface>, rejectedVips: Set<string>, allocate: VipAllocator): VipInterface | undefined {
  const diag = r.diag;
  r.checkAttributes(el, INTERFACE_ATTRS, 'error');
  r.checkNoText(el);
  for (const real of r.children(el, 'real_interface')) {
    diag.error('FARMLB_E_CONFIG_MIRROR_VIP', { what: '<real_interface>' }, real);
  }
  r.checkChildren(el, ['virtual_interface', 'real_interface'], 'error');
  const check = r.onOff(el, 'check', INTERFACE_DEFAULTS.check);
  const arpreroute = r.onOff(el, 'arpreroute', INTERFACE_DEFAULTS.arpreroute);
  const arpintervalMs = duration(r, el, r.attr(el, 'arpinterval'), INTERFACE_DEFAULTS.arpintervalMs, 's');
  const arpelapseMs = duration(r, el, r.attr(el, 'arpelapse'), INTERFACE_DEFAULTS.arpelapseMs, 's');
  const nameAttr = r.attr(el, 'name');
  let name: string | undefined;
  if (nameAttr) {
    if (isInterfaceName(nameAttr.value)) name = nameAttr.value;
    else {
      diag.error('FARMLB_E_CONFIG_BAD_NAME', {
        attribute: 'name', value: nameAttr.value, element: 'interface',
        expected: `a Linux interface name (1 to 15 characters, no "/", ":" or blanks, not ${RESERVED_IFNAMES.map((n) => `"${n}"`).join(', ')})`,
      }, el, nameAttr);
    }
  }

  const vi = r.children(el, 'virtual_interface', true)[0];
  if (!vi) {
    if (!el.children.some((c) => c.name === 'real_interface')) {
      diag.error('FARMLB_E_CONFIG_MISSING_ELEMENT', { parent: 'interface', name: 'virtual_interface' }, el);
    }
    return undefined;
  }
  r.checkAttributes(vi, VIRTUAL_INTERFACE_ATTRS, 'error');
  r.checkChildren(vi, ['virtual_addr'], 'error');
  r.checkNoText(vi);
  const typeAttr = r.attr(vi, 'type');
  const type = r.oneOf<VmacMode>(vi, typeAttr, ['vmac_invisible', 'vmac_directed'], INTERFACE_DEFAULTS.type);
  let certain = typeAttr === undefined || typeAttr?.value === type;
  if (typeAttr === undefined) {
    r.warn('FARMLB_W_CONFIG_DEFAULT_TYPE', `no type=: this interface runs ${INTERFACE_DEFAULTS.type} (SafeKit's default), which turns promiscuous mode on; write type="vmac_invisible" or type="vmac_directed"`, vi);
  }
  let vmac = '';
  let vmacExplicit = false;
  const macAttr = r.attr(vi, 'addr');
  if (macAttr && type === 'vmac_directed') {
    r.warn('FARMLB_W_CONFIG_VMAC_IGNORED', `addr="${macAttr.value}" is ignored: a vmac_directed interface answers with each node's own MAC`, vi, macAttr);
  } else if (macAttr) {
    const mac = parseUnicastMac(macAttr.value);
    if (mac.ok) { vmac = mac.value; vmacExplicit = true; } else {
      diag.error('FARMLB_E_CONFIG_BAD_MAC', { value: macAttr.value, why: mac.why }, vi, macAttr);
    }
  }

  const addrs: VirtualAddr[] = [];
  for (const va of r.children(vi, 'virtual_addr')) {
    const parsed = readVirtualAddr(r, va, rejectedVips);
    if (!parsed) { certain = false; continue; }
    const slot = allocate(va, parsed.addr, parsed.addr.family);
    if (!slot) { certain = false; continue; }
    addrs.push({ ...parsed.fields, addr: parsed.addr.canonical, family: slot.family, id: slot.id, src: diag.ref(va) });
  }
  if (addrs.length === 0 && r.children(vi, 'virtual_addr').length === 0) {
    diag.error('FARMLB_E_CONFIG_MISSING_ELEMENT', { parent: 'virtual_interface', name: 'virtual_addr' }, vi);
  }
  if (!addrs.some((a) => a.family === 4)) {
    for (const n of ['arpreroute', 'arpinterval', 'arpelapse']) {
      const a = el.attrs.find((x) => x.name === n);
      if (a && addrs.length) r.warn('FARMLB_W_CONFIG_IPV4_ONLY', `${n}= on an interface without IPv4 VIPs: SafeKit documents arpreroute for IPv4 only; farmlb sends its IPv6 clients unsolicited neighbour advertisements instead (docs/net.md, "arpreroute")`, el, a);
    }
  }
  const itf: VipInterface = {
    ...(name !== undefined ? { name } : {}),
    check, arpreroute, arpintervalMs, arpelapseMs, type, vmac, vmacExplicit, addrs, src: diag.ref(el),
  };
  if (!certain) uncertain.add(itf);
  return itf;
}

function readAddress(r: Reader, el: XmlElement, attr: XmlAttr): IpAddr | undefined {
  const ip = parseIp(attr.value);
  if (ip.ok) return ip.value;
  if (looksLikeHostname(attr.value)) {
    r.diag.error('FARMLB_E_CONFIG_VIP_HOSTNAME', { attribute: attr.name, value: attr.value }, el, attr);
  } else {
    r.diag.error('FARMLB_E_CONFIG_BAD_ADDRESS', { attribute: attr.name, value: attr.value }, el, attr);
  }
  return undefined;
}

function readVirtualAddr(r: Reader, el: XmlElement, rejectedVips: Set<string>):
  { addr: IpAddr; fields: Pick<VirtualAddr, 'where' | 'check' | 'connections' | 'prefixLen'> } | undefined {
  const diag = r.diag;
  r.checkAttributes(el, VIRTUAL_ADDR_ATTRS, 'error');
  r.checkChildren(el, [], 'error');
  r.checkNoText(el);
  const where = r.attr(el, 'where');
  if (where && where.value === 'one_side_alias') {
    diag.error('FARMLB_E_CONFIG_MIRROR_VIP', { what: 'where="one_side_alias"' }, el, where);
  } else {
    r.oneOf(el, where, ['alias'], 'alias');
  }
  const check = r.onOff(el, 'check', true);
  const connections = r.onOff(el, 'connections', false);
  const connectionsAttr = r.attr(el, 'connections');
  if (connections && connectionsAttr) {
    // SafeKit's per-VIP connection accounting has no counterpart here: say so rather than pretend.
    r.warn('FARMLB_W_CONFIG_IGNORED_SETTING', 'connections="on" is accepted for SafeKit compatibility but farmlb does nothing with it; ignored', el, connectionsAttr);
  }
  const addrAttr = r.required(el, 'addr', 'an IPv4 or IPv6 address');
  if (!addrAttr) return undefined;
  const addr = readAddress(r, el, addrAttr);
  if (!addr) return undefined;
  const problem = vipAddressProblem(addr);
  if (problem) {
    diag.error('FARMLB_E_CONFIG_BAD_VALUE', { attribute: 'addr', value: addrAttr.value, element: el.name, expected: `a unicast address (${problem})` }, el, addrAttr);
    rejectedVips.add(addr.canonical);
    return undefined;
  }
  let prefixLen: number | undefined;
  const mask = r.attr(el, 'netmask');
  if (mask) {
    const m = addr.family === 6 ? { ok: false as const, why: 'netmask= applies to IPv4 VIPs only (SafeKit §13.6.5)' } : parseNetmask(mask.value);
    const why = m.ok ? vipPrefixProblem(addr, m.value) : m.why;
    if (m.ok && why === undefined) prefixLen = m.value;
    else diag.error('FARMLB_E_CONFIG_BAD_NETMASK', { value: mask.value, addr: addr.canonical, why: why! }, el, mask);
  }
  return { addr, fields: { where: 'alias', check, connections, ...(prefixLen !== undefined ? { prefixLen } : {}) } };
}

function readGroups(r: Reader, vipEl: XmlElement, vips: VirtualAddr[], rejectedVips: Set<string>): Group[] {
  const diag = r.diag;
  const list = r.children(vipEl, 'loadbalancing_list', true)[0];
  if (!list) {
    if (vips.length) diag.error('FARMLB_E_CONFIG_NO_GROUP', {}, vipEl);
    return [];
  }
  r.checkAttributes(list, [], 'error');
  r.checkChildren(list, ['group'], 'error');
  r.checkNoText(list);
  const groupEls = r.children(list, 'group');
  if (groupEls.length === 0) diag.error('FARMLB_E_CONFIG_NO_GROUP', {}, list);
  const groups: Group[] = [];
  const names = new Map<string, number>();
  let ruleCount = 0;
  for (const gEl of groupEls) {
    if (groups.length === LIMITS.groups) {
      diag.error('FARMLB_E_CONFIG_TOO_MANY', {
        what: 'load-balancing groups', count: groupEls.length, max: LIMITS.groups, advice: 'merge groups that list the same hosts and powers (a group can hold many rules)',
      }, gEl);
      break;
    }
    r.checkAttributes(gEl, GROUP_ATTRS, 'error');
    r.checkChildren(gEl, ['cluster', 'rule'], 'error');
    r.checkNoText(gEl);
    const nameAttr = r.required(gEl, 'name', 'a group name');
    let name = `group${groups.length}`;
    if (nameAttr) {
      if (!NAME_PATTERN.test(nameAttr.value)) {
        diag.error('FARMLB_E_CONFIG_BAD_NAME', { attribute: 'name', value: nameAttr.value, element: 'group', expected: NAME_EXPECTED }, gEl, nameAttr);
      } else if (names.has(nameAttr.value)) {
        diag.error('FARMLB_E_CONFIG_DUPLICATE_GROUP', { group: nameAttr.value, firstLine: names.get(nameAttr.value)! }, gEl, nameAttr);
      } else {
        names.set(nameAttr.value, gEl.line);
      }
      name = nameAttr.value;
    }
    const clusterEl = r.children(gEl, 'cluster', true)[0];
    const hosts = clusterEl ? readHosts(r, clusterEl, name) : null;
    const rules: Rule[] = [];
    for (const ruleEl of r.children(gEl, 'rule')) {
      ruleCount++;
      if (ruleCount === LIMITS.rules + 1) {
        diag.error('FARMLB_E_CONFIG_TOO_MANY', {
          what: 'rules', count: `more than ${LIMITS.rules}`, max: LIMITS.rules, advice: 'use virtual_addr="*" or port="*" rules to cover several VIPs or ports at once',
        }, ruleEl);
      }
      const rule = readRule(r, ruleEl, vips, rejectedVips);
      if (rule) rules.push(rule);
    }
    if (gEl.children.every((c) => c.name !== 'rule')) {
      r.warn('FARMLB_W_CONFIG_GROUP_NO_RULES', `group ${name} has no <rule>: it balances nothing`, gEl);
    }
    groups.push({ name, index: groups.length, hosts, rules, src: diag.ref(gEl) });
  }
  return groups;
}

function readHosts(r: Reader, el: XmlElement, group: string): Host[] {
  const diag = r.diag;
  r.checkAttributes(el, [], 'error');
  r.checkChildren(el, ['host'], 'error');
  r.checkNoText(el);
  const hosts: Host[] = [];
  const seen = new Map<string, number>();
  const hostEls = r.children(el, 'host');
  for (const h of hostEls) {
    r.checkAttributes(h, HOST_ATTRS, 'error');
    r.checkChildren(h, [], 'error');
    const nameAttr = r.required(h, 'name', 'a node name of cluster.xml');
    if (!nameAttr) continue;
    if (seen.has(nameAttr.value)) {
      diag.error('FARMLB_E_CONFIG_DUPLICATE_HOST', { host: nameAttr.value, group, firstLine: seen.get(nameAttr.value)! }, h, nameAttr);
      continue;
    }
    seen.set(nameAttr.value, h.line);
    const powerAttr = r.attr(h, 'power');
    let power = 1;
    if (powerAttr) {
      const p = parseUint(powerAttr.value, LIMITS.power);
      if (p.ok) power = p.value;
      else diag.error('FARMLB_E_CONFIG_BAD_POWER', { value: powerAttr.value, host: nameAttr.value, max: LIMITS.power }, h, powerAttr);
    }
    hosts.push({ name: nameAttr.value, power, src: diag.ref(h) });
  }
  if (hostEls.length === 0) diag.error('FARMLB_E_CONFIG_EMPTY_CLUSTER', { group }, el);
  return hosts;
}

const PROTOS: readonly RuleProto[] = ['tcp', 'udp', 'arp'];
const CRITERIA: readonly Criterion[] = ['on_addr', 'on_port', 'on_ipid'];

function readRule(r: Reader, el: XmlElement, vips: VirtualAddr[], rejectedVips: Set<string>): Rule | undefined {
  const diag = r.diag;
  const before = diag.errors.length;
  r.checkAttributes(el, RULE_ATTRS, 'error');
  r.checkChildren(el, [], 'error');
  r.checkNoText(el);

  const protoAttr = r.required(el, 'proto', '"tcp", "udp" or "arp"');
  let proto: RuleProto | undefined;
  if (protoAttr) {
    const v = protoAttr.value;
    if ((PROTOS as readonly string[]).includes(v)) proto = v as RuleProto;
    else {
      const lower = v.toLowerCase();
      const suggestion = (PROTOS as readonly string[]).includes(lower) ? `write it in lower case: proto="${lower}"`
        : lower === 'icmp' ? 'ICMP echo is answered by the first group covering the VIP; no rule is needed'
          : `farmlb balances "tcp" and "udp" (and "arp" replies in vmac_directed)`;
      diag.error('FARMLB_E_CONFIG_BAD_PROTO', { value: v, suggestion }, el, protoAttr);
    }
  }
  const filterAttr = r.required(el, 'filter', '"on_addr", "on_port" or "on_ipid"');
  let filter: Criterion | undefined;
  if (filterAttr) {
    if ((CRITERIA as readonly string[]).includes(filterAttr.value)) filter = filterAttr.value as Criterion;
    else {
      diag.error('FARMLB_E_CONFIG_BAD_CRITERION', {
        value: filterAttr.value, suggestion: `${didYouMeanCriterion(filterAttr.value)}`,
      }, el, filterAttr);
    }
  }

  let vip: string = '*';
  const vaAttr = r.attr(el, 'virtual_addr');
  if (vaAttr && vaAttr.value !== '*') {
    const addr = readAddress(r, el, vaAttr);
    if (addr) {
      vip = addr.canonical;
      if (!vips.some((v) => v.addr === vip) && !rejectedVips.has(vip)) {
        diag.error('FARMLB_E_CONFIG_RULE_UNKNOWN_VIP', { vip: vaAttr.value, vips: vips.map((v) => v.addr).join(', ') || 'none' }, el, vaAttr);
      }
    }
  } else if (vaAttr === null) {
    return undefined;
  }

  let port: number | '*' = '*';
  const portAttr = r.attr(el, 'port');
  if (portAttr && portAttr.value !== '*') {
    if (proto === 'arp') {
      diag.error('FARMLB_E_CONFIG_ARP_WITH_PORT', { value: portAttr.value }, el, portAttr);
    } else {
      const p = parsePortNumber(portAttr.value);
      if (p.ok) port = p.value;
      else diag.error('FARMLB_E_CONFIG_BAD_PORT', { attribute: 'port', value: portAttr.value, expected: 'a port from 1 to 65535, or "*" for every port' }, el, portAttr);
    }
  }

  if (proto === 'arp' && filter && filter !== 'on_addr') {
    diag.error('FARMLB_E_CONFIG_ARP_NEEDS_ON_ADDR', { value: filter }, el, filterAttr!);
  }
  if (proto === 'tcp' && filter === 'on_ipid') {
    diag.error('FARMLB_E_CONFIG_IPID_WITH_TCP', {}, el, filterAttr!);
  }
  if (filter === 'on_ipid' && vip !== '*' && vip.includes(':')) {
    diag.error('FARMLB_E_CONFIG_IPID_WITH_IPV6', { vip }, el, filterAttr!);
  }
  if (diag.errors.length !== before || !proto || !filter) return undefined;
  return { vip, port, proto, filter, src: diag.ref(el) };
}

function didYouMeanCriterion(value: string): string {
  const lower = value.toLowerCase();
  const plain = lower.replace(/^on_?/, '');
  const hit = CRITERIA.find((c) => c === lower || c === `on_${plain}`);
  if (hit) return `did you mean ${hit}?`;
  return `accepted: ${CRITERIA.join(', ')} (source address, source port, IPv4 id)`;
}
