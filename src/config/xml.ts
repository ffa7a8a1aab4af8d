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

const isXmlSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/**
 * The offset in `tag` (the text of one well-formed start tag, from its "<") where each
 * attribute name starts, first occurrence. One pass over the tag: finding each name with its
 * own search made an element with 20,000 attributes take seconds.
 */
export function attributeOffsets(tag: string): Map<string, number> {
  const out = new Map<string, number>();
  let i = 1;
  while (i < tag.length && !isXmlSpace(tag.charCodeAt(i)) && tag[i] !== '/' && tag[i] !== '>') i++;
  for (;;) {
    while (i < tag.length && isXmlSpace(tag.charCodeAt(i))) i++;
    if (i >= tag.length || tag[i] === '/' || tag[i] === '>') return out;
    const nameStart = i;
    while (i < tag.length && tag[i] !== '=' && !isXmlSpace(tag.charCodeAt(i))) i++;
    const name = tag.slice(nameStart, i);
    if (!out.has(name)) out.set(name, nameStart);
    while (i < tag.length && tag[i] !== '"' && tag[i] !== "'") i++;
    if (i >= tag.length) return out;
    const close = tag.indexOf(tag[i]!, i + 1);
    if (close < 0) return out;
    i = close + 1;
  }
}

/** Parses well-formed XML or throws FARMLB_E_CONFIG_XML at the first syntax error. */
export function parseXml(text: string, file: string): XmlElement {
  const lines = new LineIndex(text);
  const parser = new SaxesParser({ position: true });
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let firstError: FarmlbError | undefined;
  // Where the last thing saxes reported (tag, comment, text, …) ended: the next text starts
  // there. Tracking tags alone made every text after a comment rescan back to the last tag
  // (1 MiB of blanks then 10,000 text/comment pairs took 49 s).
  let lastEventEnd = 0;
  const eventEnded = () => { lastEventEnd = parser.position; };

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
    const offsets = attributeOffsets(text.slice(start, end));
    const attrs: XmlAttr[] = Object.entries(tag.attributes as Record<string, string>).map(([name, value]) => {
      const at = offsets.get(name);
      return { name, value, ...lines.at(at !== undefined ? start + at : start) };
    });
    const el: XmlElement = { name: tag.name, attrs, children: [], texts: [], ...lines.at(start) };
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(el); else root ??= el;
    lastEventEnd = end;
    if (!tag.isSelfClosing) stack.push(el);
  });
  parser.on('closetag', (tag) => {
    lastEventEnd = parser.position;
    if (!tag.isSelfClosing) stack.pop();
  });
  // saxes reports a comment with its final '>' still ahead.
  parser.on('comment', () => { lastEventEnd = text.charCodeAt(parser.position) === 0x3e ? parser.position + 1 : parser.position; });
  parser.on('processinginstruction', eventEnded);
  parser.on('doctype', eventEnded);
  parser.on('xmldecl', eventEnded);
  const onText = (t: string) => {
    const from = lastEventEnd;
    eventEnded();
    const current = stack[stack.length - 1];
    if (!current) return;
    const trimmed = t.trim();
    if (trimmed === '') return;
    let lead = from;
    while (lead < text.length && isXmlSpace(text.charCodeAt(lead))) lead++;
    current.texts.push({ text: trimmed, ...lines.at(lead) });
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
