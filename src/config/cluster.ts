// cluster.xml → ClusterConfig: <cluster><lans><lan name=…><node name=… addr=…/>…</lan></lans></cluster>
// (SafeKit user guide §12). A node's id in the maps is its index in order of first
// appearance over all LANs, so every node computes the same ids from the same file.

import { LIMITS } from './defaults.js';
import { openConfigDocument, Reader } from './reader.js';
import type { ClusterConfig, ClusterLan, ClusterNode } from './types.js';
import { parseIp } from './values.js';
import type { XmlElement } from './xml.js';

const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function parseClusterConfig(text: string, file: string): ClusterConfig {
  const { root, diag, r } = openConfigDocument(text, file);
  if (root.name !== 'cluster') {
    diag.error('FARMLB_E_CONFIG_ROOT', { found: root.name, expected: '<cluster>' }, root);
    diag.throwIfErrors();
  }
  r.checkAttributes(root, [], 'warn');
  for (const c of root.children) {
    if (c.name !== 'lans') r.warn('FARMLB_W_CONFIG_UNKNOWN_SECTION', `<${c.name}> in <cluster> is not read by farmlb; ignored`, c);
  }
  const lansEl = r.children(root, 'lans', true)[0];
  const lans: ClusterLan[] = [];
  const nodes: string[] = [];
  // A Set beside the ordered list: a 40,000-node file took 4 s with nodes.includes().
  const nodeNames = new Set<string>();
  const addrOwner = new Map<string, { node: string; line: number }>();
  if (!lansEl) {
    diag.error('FARMLB_E_CONFIG_MISSING_ELEMENT', { parent: 'cluster', name: 'lans' }, root);
  } else {
    const lanNames = new Map<string, number>();
    for (const lanEl of lansEl.children) {
      if (lanEl.name !== 'lan') {
        r.warn('FARMLB_W_CONFIG_UNKNOWN_SECTION', `<${lanEl.name}> in <lans> is not read by farmlb; ignored`, lanEl);
        continue;
      }
      // SafeKit's lan attributes (command=, framework=, console=) select its own traffic; farmlb needs only the name.
      r.checkAttributes(lanEl, ['name', 'command', 'framework', 'console'], 'warn');
      const nameAttr = r.required(lanEl, 'name', 'a LAN name, e.g. "default"');
      const lanName = nameAttr?.value ?? '';
      if (nameAttr && lanNames.has(lanName)) {
        diag.error('FARMLB_E_CONFIG_DUPLICATE_LAN', { lan: lanName, parent: 'lans', firstLine: lanNames.get(lanName)! }, lanEl, nameAttr);
        continue;
      }
      lanNames.set(lanName, lanEl.line);
      const lan: ClusterLan = { name: lanName, nodes: [], src: diag.ref(lanEl) };
      const seen = new Map<string, number>();
      for (const nodeEl of lanEl.children) {
        if (nodeEl.name !== 'node') {
          r.warn('FARMLB_W_CONFIG_UNKNOWN_SECTION', `<${nodeEl.name}> in <lan> is not read by farmlb; ignored`, nodeEl);
          continue;
        }
        const node = readNode(r, nodeEl, lanName, seen, addrOwner);
        if (!node) continue;
        lan.nodes.push(node);
        if (!nodeNames.has(node.name)) {
          if (nodes.length === LIMITS.nodes) {
            diag.error('FARMLB_E_CONFIG_TOO_MANY', {
              what: 'nodes', count: `more than ${LIMITS.nodes}`, max: LIMITS.nodes, advice: 'split the farm into several clusters',
            }, nodeEl, 'name');
          }
          nodes.push(node.name);
          nodeNames.add(node.name);
        }
      }
      if (lan.nodes.length === 0 && !lanEl.children.some((c) => c.name === 'node')) {
        diag.error('FARMLB_E_CONFIG_CLUSTER_EMPTY', { what: `LAN ${lanName} lists no <node>` }, lanEl);
      }
      lans.push(lan);
    }
    if (lansEl.children.every((c) => c.name !== 'lan')) {
      diag.error('FARMLB_E_CONFIG_CLUSTER_EMPTY', { what: '<lans> has no <lan>' }, lansEl);
    }
  }
  diag.throwIfErrors();
  return { file, lans, nodes, warnings: diag.warnings };
}

function readNode(r: Reader, el: XmlElement, lan: string, seen: Map<string, number>,
  addrOwner: Map<string, { node: string; line: number }>): ClusterNode | undefined {
  const diag = r.diag;
  r.checkAttributes(el, ['name', 'addr'], 'warn');
  const nameAttr = r.required(el, 'name', 'the node name');
  const addrAttr = r.required(el, 'addr', 'the node\'s IPv4 or IPv6 address on this LAN');
  if (!nameAttr || !addrAttr) return undefined;
  if (!NODE_NAME.test(nameAttr.value)) {
    diag.error('FARMLB_E_CONFIG_BAD_NAME', {
      attribute: 'name', value: nameAttr.value, element: 'node', expected: 'letters, digits, "_", "." and "-" (1 to 64, starting with a letter or digit)',
    }, el, nameAttr);
    return undefined;
  }
  if (seen.has(nameAttr.value)) {
    diag.error('FARMLB_E_CONFIG_CLUSTER_DUPLICATE_NODE', { node: nameAttr.value, lan, firstLine: seen.get(nameAttr.value)! }, el, nameAttr);
    return undefined;
  }
  seen.set(nameAttr.value, el.line);
  const ip = parseIp(addrAttr.value);
  if (!ip.ok) {
    diag.error('FARMLB_E_CONFIG_BAD_ADDRESS', { attribute: 'addr', value: addrAttr.value }, el, addrAttr);
    return undefined;
  }
  const owner = addrOwner.get(ip.value.canonical);
  if (owner) {
    diag.error('FARMLB_E_CONFIG_CLUSTER_DUPLICATE_ADDR', {
      addr: ip.value.canonical, node: nameAttr.value, otherNode: owner.node, otherLine: owner.line,
    }, el, addrAttr);
    return undefined;
  }
  addrOwner.set(ip.value.canonical, { node: nameAttr.value, line: el.line });
  return { name: nameAttr.value, addr: ip.value.canonical, src: diag.ref(el) };
}
