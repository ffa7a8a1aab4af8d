// Configuration files are parsed in time linear in their size (docs/security.md, "Bounded
// resources"): a reload (SIGHUP) parses on the daemon's event loop, so a big or odd file must
// not stall the heartbeats. Each input below took seconds to minutes before (measured on the
// issue's machine: a 40,000-node cluster.xml 3.4 s, one element with 20,000 attributes 2.2 s,
// 1 MiB of blanks then 10,000 text/comment pairs 49 s); the sizes here are larger still, so
// a quadratic step fails by a wide margin while the linear parse takes well under a second.

import { describe, expect, it } from 'vitest';
import { parseClusterConfig, parseFarmConfig } from '../../src/config/index.js';
import { attributeOffsets, parseXml } from '../../src/config/xml.js';

/** Runs `fn` (a refusal is fine: only the time matters) and returns the milliseconds it took. */
function timed(fn: () => unknown): number {
  const t0 = performance.now();
  try { fn(); } catch { /* refused as it should be; timed all the same */ }
  return performance.now() - t0;
}

// Generous: ten times what the linear parse takes on a busy 2-vCPU machine.
const BUDGET_MS = 3_000;

describe('configuration parsing is linear', () => {
  it('an 80,000-node cluster.xml (refused: more than 64 nodes) is read in well under a second', () => {
    const nodes = Array.from({ length: 80_000 }, (_, i) => `<node name="n${i}" addr="10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}"/>`).join('\n');
    const text = `<cluster><lans><lan name="default">\n${nodes}\n</lan></lans></cluster>\n`;
    let refusal: unknown;
    expect(timed(() => { try { parseClusterConfig(text, 'cluster.xml'); } catch (err) { refusal = err; } })).toBeLessThan(BUDGET_MS);
    expect(refusal).toMatchObject({ errors: expect.arrayContaining([expect.objectContaining({ code: 'FARMLB_E_CONFIG_TOO_MANY' })]) });
  });

  it('one element with 60,000 attributes', () => {
    const attrs = Array.from({ length: 60_000 }, (_, i) => `a${i}="v"`).join(' ');
    expect(timed(() => parseXml(`<cluster ${attrs}/>`, 'a.xml'))).toBeLessThan(BUDGET_MS);
    expect(timed(() => parseFarmConfig(`<safe><service mode="farm"><vip ${attrs}/></service></safe>`, 'u.xml'))).toBeLessThan(BUDGET_MS);
  });

  it('1 MiB of blanks then 20,000 text/comment pairs', () => {
    const body = `${' '.repeat(1 << 20)}${Array.from({ length: 20_000 }, (_, i) => `t${i}<!-- c -->`).join('')}`;
    expect(timed(() => parseClusterConfig(`<cluster>${body}</cluster>`, 'c.xml'))).toBeLessThan(BUDGET_MS);
    expect(timed(() => parseFarmConfig(`<safe><service mode="farm">${body}</service></safe>`, 'u.xml'))).toBeLessThan(BUDGET_MS);
  });
});

describe('positions found in one pass', () => {
  it('finds each attribute name where it is written, not inside another attribute\'s value', () => {
    const tag = `<vip a=" b=1" b='x'\n  c = "2" a="again"/>`;
    const at = attributeOffsets(tag);
    expect([...at.keys()]).toEqual(['a', 'b', 'c']);
    expect(tag.slice(at.get('b')!, at.get('b')! + 4)).toBe("b='x");
    expect(tag.slice(at.get('c')!, at.get('c')! + 3)).toBe('c =');
  });

  it('places an attribute on its own line and column, and a text that follows a comment where it starts', () => {
    const root = parseXml('<a>\n  <!-- note -->\n  <b x="1"\n     y="2"/>\n<!-- c --> stray\n</a>', 'f.xml');
    const b = root.children[0]!;
    expect(b.attrs.map((a) => [a.name, a.line, a.column])).toEqual([['x', 3, 6], ['y', 4, 6]]);
    expect(root.texts).toEqual([{ text: 'stray', line: 5, column: 12 }]);
  });
});
