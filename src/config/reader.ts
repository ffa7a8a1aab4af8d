// Typed attribute access over the XML tree: each helper reads one attribute, applies SafeKit
// macros (%NAME%), reports a located error when the value is bad, and returns the default
// so parsing can continue and report the next problem too.

import type { ErrorCode, FarmlbError } from '../errors.js';
import { aggregateConfigErrors, Diagnostics } from './diagnostics.js';
import { didYouMean } from './suggest.js';
import type { Parsed } from './values.js';
import type { ConfigWarningCode } from './warnings.js';
import { parseXml, type XmlAttr, type XmlElement } from './xml.js';

export type Strictness = 'error' | 'warn';

/**
 * The start every config file shares: parse the XML (malformed XML is thrown as the file's
 * aggregate error) and give the root with a fresh Diagnostics and Reader for the file.
 */
export function openConfigDocument(text: string, file: string): { root: XmlElement; diag: Diagnostics; r: Reader } {
  let root: XmlElement;
  try {
    root = parseXml(text, file);
  } catch (err) {
    throw aggregateConfigErrors(file, [err as FarmlbError]);
  }
  const diag = new Diagnostics(file);
  return { root, diag, r: new Reader(diag) };
}

export class Reader {
  private readonly macros = new Map<string, string>();

  constructor(readonly diag: Diagnostics) {}

  defineMacro(name: string, value: string): void {
    this.macros.set(name, value);
  }

  /** The attribute with macros expanded; undefined when absent, null when a macro was undefined (already reported). */
  attr(el: XmlElement, name: string): XmlAttr | undefined | null {
    const a = el.attrs.find((x) => x.name === name);
    if (!a) return undefined;
    let missing = false;
    const value = a.value.replace(/%([A-Za-z_][A-Za-z0-9_]*)%/g, (whole, macro: string) => {
      const v = this.macros.get(macro);
      if (v !== undefined) return v;
      this.diag.error('FARMLB_E_CONFIG_MACRO_UNDEFINED', { name: macro }, el, a);
      missing = true;
      return whole;
    });
    return missing ? null : { ...a, value };
  }

  /** First of several spellings that is present (e.g. hash_seed / hashSeed). */
  attrOf(el: XmlElement, names: readonly string[]): XmlAttr | undefined | null {
    for (const n of names) {
      const a = this.attr(el, n);
      if (a !== undefined) return a;
    }
    return undefined;
  }

  warn(code: ConfigWarningCode, message: string, el: XmlElement, attr?: XmlAttr): void {
    this.diag.warn(code, message, el, attr);
  }

  checkAttributes(el: XmlElement, known: readonly string[], strictness: Strictness): void {
    for (const a of el.attrs) {
      if (known.includes(a.name)) continue;
      if (strictness === 'error') {
        this.diag.error('FARMLB_E_CONFIG_UNKNOWN_ATTRIBUTE', {
          name: a.name, element: el.name, suggestion: didYouMean(a.name, known, `attributes of <${el.name}>`),
        }, el, a);
      } else {
        this.warn('FARMLB_W_CONFIG_IGNORED_ATTRIBUTE', `${a.name}= on <${el.name}> is not used by farmlb and is ignored`, el, a);
      }
    }
  }

  /** Text where none belongs is an error in strict sections (it is usually a broken tag). */
  checkNoText(el: XmlElement): void {
    for (const t of el.texts) {
      const short = t.text.length > 40 ? `${t.text.slice(0, 40)}…` : t.text;
      this.diag.errorAt('FARMLB_E_CONFIG_UNEXPECTED_TEXT', { text: short, element: el.name }, {
        file: this.diag.file, line: t.line, column: t.column, element: el.name,
      });
    }
  }

  /**
   * The children named `name`; `once` reports every repetition. Call `checkChildren` for
   * what is unknown.
   */
  children(el: XmlElement, name: string, once = false): XmlElement[] {
    const found = el.children.filter((c) => c.name === name);
    if (once) {
      for (const extra of found.slice(1)) {
        this.diag.error('FARMLB_E_CONFIG_DUPLICATE_ELEMENT', { name, parent: el.name, firstLine: found[0]!.line }, extra);
      }
    }
    return found;
  }

  checkChildren(el: XmlElement, known: readonly string[], strictness: Strictness): XmlElement[] {
    const unknown = el.children.filter((c) => !known.includes(c.name));
    if (strictness === 'error') {
      for (const c of unknown) {
        this.diag.error('FARMLB_E_CONFIG_UNKNOWN_ELEMENT', {
          name: c.name, parent: el.name, suggestion: didYouMean(c.name, known, `elements of <${el.name}>`),
        }, c);
      }
    }
    return unknown;
  }

  required(el: XmlElement, name: string, expected: string): XmlAttr | undefined {
    const a = this.attr(el, name);
    if (a === undefined) this.diag.error('FARMLB_E_CONFIG_MISSING_ATTRIBUTE', { element: el.name, name, expected }, el);
    return a ?? undefined;
  }

  /** Reads an attribute through a value parser; `code` chooses the error. */
  parsed<T>(el: XmlElement, attr: XmlAttr | undefined | null, parse: (text: string) => Parsed<T>, fallback: T,
    code: ErrorCode = 'FARMLB_E_CONFIG_BAD_VALUE'): T {
    if (!attr) return fallback;
    const r = parse(attr.value);
    if (r.ok) return r.value;
    this.diag.error(code, { attribute: attr.name, value: attr.value, element: el.name, expected: r.why, unit: '' }, el, attr);
    return fallback;
  }

  onOff(el: XmlElement, name: string, fallback: boolean): boolean {
    return this.parsed(el, this.attr(el, name), (t) => (t === 'on' ? { ok: true, value: true } : t === 'off'
      ? { ok: true, value: false } : { ok: false, why: '"on" or "off"' }), fallback);
  }

  oneOf<T extends string>(el: XmlElement, attr: XmlAttr | undefined | null, allowed: readonly T[], fallback: T): T {
    return this.parsed(el, attr, (t) => ((allowed as readonly string[]).includes(t)
      ? { ok: true, value: t as T } : { ok: false, why: allowed.map((x) => `"${x}"`).join(' or ') }), fallback);
  }
}
