// XML → a small element tree that remembers where every element and attribute starts
// (1-based line and column), so each later error can point at the exact attribute. saxes
// reports positions at the end of a tag; the starts are recovered from the source text.

import { SaxesParser } from 'saxes';
import { FarmlbError } from '../errors.js';

export interface XmlPos {
  line: number;
  column: number;
}

export interface XmlAttr extends XmlPos {
  name: string;
  value: string;
}

export interface XmlText extends XmlPos {
  text: string;
}

export interface XmlElement extends XmlPos {
  name: string;
  attrs: XmlAttr[];
  children: XmlElement[];
  /** Non-blank text directly inside the element (config files carry none). */
  texts: XmlText[];
}

class LineIndex {
  private readonly starts: number[] = [0];

  constructor(text: string) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.starts.push(i + 1);
  }

  at(offset: number): XmlPos {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid; else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - this.starts[lo]! + 1 };
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Parses well-formed XML or throws FARMLB_E_CONFIG_XML at the first syntax error. */
export function parseXml(text: string, file: string): XmlElement {
  const lines = new LineIndex(text);
  const parser = new SaxesParser({ position: true });
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let firstError: FarmlbError | undefined;
  let lastTagEnd = 0;

  parser.on('error', (err) => {
    if (firstError) return;
    // saxes prefixes "line:column: "; the position goes into the location instead.
    const detail = err.message.replace(/^(?:[^:]*:)?\d+:\d+: /, '');
    firstError = new FarmlbError('FARMLB_E_CONFIG_XML', { detail }, {
      location: { file, line: parser.line, column: Math.max(1, parser.column) },
    });
  });
  parser.on('opentag', (tag) => {
    const end = parser.position;
    const start = Math.max(0, text.lastIndexOf(`<${tag.name}`, end - 1));
    const raw = text.slice(start, end);
    const attrs: XmlAttr[] = Object.entries(tag.attributes as Record<string, string>).map(([name, value]) => {
      const m = new RegExp(`\\s${escapeRegExp(name)}\\s*=`).exec(raw);
      const pos = lines.at(m ? start + m.index + 1 : start);
      return { name, value, ...pos };
    });
    const el: XmlElement = { name: tag.name, attrs, children: [], texts: [], ...lines.at(start) };
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(el); else root ??= el;
    lastTagEnd = end;
    if (!tag.isSelfClosing) stack.push(el);
  });
  parser.on('closetag', (tag) => {
    lastTagEnd = parser.position;
    if (!tag.isSelfClosing) stack.pop();
  });
  const onText = (t: string) => {
    const current = stack[stack.length - 1];
    if (!current || t.trim() === '') return;
    const raw = text.slice(lastTagEnd, parser.position);
    const lead = Math.max(0, raw.search(/\S/));
    current.texts.push({ text: t.trim(), ...lines.at(lastTagEnd + lead) });
  };
  parser.on('text', onText);
  parser.on('cdata', onText);

  try {
    parser.write(text).close();
  } catch (err) {
    // saxes throws when no error handler consumes the error; ours does, but be safe.
    if (!firstError) {
      firstError = new FarmlbError('FARMLB_E_CONFIG_XML', { detail: (err as Error).message }, {
        location: { file, line: parser.line, column: Math.max(1, parser.column) },
      });
    }
  }
  if (firstError) throw firstError;
  if (!root) {
    throw new FarmlbError('FARMLB_E_CONFIG_XML', { detail: 'the document has no root element' }, { location: { file, line: 1, column: 1 } });
  }
  return root;
}
