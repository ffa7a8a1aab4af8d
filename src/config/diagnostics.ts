// Collects every error and warning of a file instead of stopping at the first, so one
// `farmlb validate` run shows all of them. Errors are thrown together as one
// FARMLB_E_CONFIG_INVALID whose `errors` lists each (sorted by position); its own
// location and hint are those of the first.

import { FarmlbError, isFarmlbError, type ErrorCode, type ErrorLocation, type ErrorParams } from '../errors.js';
import type { ConfigWarning, SourceRef } from './types.js';
import type { XmlAttr, XmlElement } from './xml.js';

export class Diagnostics {
  readonly errors: FarmlbError[] = [];
  readonly warnings: ConfigWarning[] = [];

  constructor(readonly file: string) {}

  ref(el: XmlElement): SourceRef {
    return { file: this.file, line: el.line, column: el.column, element: el.name };
  }

  location(el: XmlElement, attr?: XmlAttr | string): ErrorLocation {
    if (attr === undefined) return { file: this.file, line: el.line, column: el.column, element: el.name };
    if (typeof attr === 'string') {
      const found = el.attrs.find((a) => a.name === attr);
      return found ? this.location(el, found) : { file: this.file, line: el.line, column: el.column, element: el.name, attribute: attr };
    }
    return { file: this.file, line: attr.line, column: attr.column, element: el.name, attribute: attr.name };
  }

  error(code: ErrorCode, params: ErrorParams, el: XmlElement, attr?: XmlAttr | string): void {
    this.errors.push(new FarmlbError(code, params, { location: this.location(el, attr) }));
  }

  errorAt(code: ErrorCode, params: ErrorParams, location: ErrorLocation): void {
    this.errors.push(new FarmlbError(code, params, { location }));
  }

  warn(code: string, message: string, el: XmlElement, attr?: XmlAttr): void {
    const pos = attr ?? el;
    this.warnings.push({ code, message, src: { file: this.file, line: pos.line, column: pos.column, element: el.name } });
  }

  /** A warning at a place already recorded (a rule's or an interface's SourceRef). */
  warnAt(code: string, message: string, src: SourceRef): void {
    this.warnings.push({ code, message, src: { file: src.file, line: src.line, column: src.column, element: src.element } });
  }

  /** Throws the aggregate when anything went wrong. */
  throwIfErrors(): void {
    if (this.errors.length) throw aggregateConfigErrors(this.file, this.errors);
  }
}

function byPosition(a: FarmlbError, b: FarmlbError): number {
  const la = a.location ?? {};
  const lb = b.location ?? {};
  if ((la.file ?? '') !== (lb.file ?? '')) return 0;
  return (la.line ?? 0) - (lb.line ?? 0) || (la.column ?? 0) - (lb.column ?? 0);
}

/** One FARMLB_E_CONFIG_INVALID holding every error (flattening nested aggregates). */
export function aggregateConfigErrors(file: string, errors: FarmlbError[]): FarmlbError {
  const flat = errors.flatMap((e) => configErrorList(e));
  // Stable sort: errors of one file in file order; files keep the order they were read in.
  const sorted = [...flat].sort(byPosition);
  const first = sorted[0]!;
  const agg = new FarmlbError('FARMLB_E_CONFIG_INVALID', {
    count: sorted.length,
    file,
    first: `${first.code} ${first.text}`,
  }, { location: first.location });
  agg.errors = sorted;
  return agg;
}

/** Every individual error inside a config failure (the error itself when it is not an aggregate). */
export function configErrorList(err: unknown): FarmlbError[] {
  if (!isFarmlbError(err)) return [];
  const e = err as FarmlbError;
  return e.code === 'FARMLB_E_CONFIG_INVALID' && e.errors ? e.errors : [e];
}

/** "file:line:col: CODE message (hint)" — the line `farmlb validate` prints per error. */
export function formatConfigError(err: FarmlbError): string {
  const loc = err.location;
  const where = loc?.file ? `${loc.file}${loc.line ? `:${loc.line}${loc.column ? `:${loc.column}` : ''}` : ''}: ` : '';
  const text = err.text ?? err.message;
  return `${where}${err.code} ${text}${err.hint ? ` (${err.hint})` : ''}`;
}

/** The same line for a warning. */
export function formatConfigWarning(w: ConfigWarning): string {
  return `${w.src.file}:${w.src.line}:${w.src.column}: ${w.code} ${w.message}`;
}
