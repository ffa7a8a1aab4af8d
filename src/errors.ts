// The one registry of farmlb's error codes. Callers match on `code` (stable: never reused
// or renamed, only deprecated), not on instanceof. Every code has a row in docs/errors.md
// (Code | Meaning | What to do); test/unit/errors.test.ts keeps the two in step.

export interface ErrorLocation {
  file?: string;
  line?: number;
  column?: number;
  element?: string;
  attribute?: string;
  node?: string;
}

interface ErrorDef {
  /** Message template; {name} is replaced from the params. */
  message: string;
  /** What the operator should do. Shown after the message. */
  hint: string;
}

// Keep sections by area. Add codes at the end of their area; never renumber or rename.
export const ERRORS = {
  // --- internal / generic -------------------------------------------------
  FARMLB_E_INTERNAL: {
    message: 'internal error: {detail}',
    hint: 'this is a bug in farmlb; report it with the log line above',
  },
} as const satisfies Record<string, ErrorDef>;

export type ErrorCode = keyof typeof ERRORS;

export type ErrorParams = Record<string, string | number | bigint | boolean | undefined>;

function render(template: string, params: ErrorParams): string {
  return template.replace(/\{(\w+)\}/g, (_, key: string) => {
    const value = params[key];
    return value === undefined ? `{${key}}` : String(value);
  });
}

export function formatLocation(loc: ErrorLocation | undefined): string {
  if (!loc) return '';
  const parts: string[] = [];
  if (loc.file) parts.push(loc.line ? `${loc.file}:${loc.line}${loc.column ? `:${loc.column}` : ''}` : loc.file);
  if (loc.element) parts.push(`<${loc.element}>`);
  if (loc.attribute) parts.push(`${loc.attribute}=`);
  if (loc.node) parts.push(`node ${loc.node}`);
  return parts.join(' ');
}

export class FarmlbError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  readonly location: ErrorLocation | undefined;
  readonly details: ErrorParams;
  /** Set for errors from a system call (addon). */
  errno?: number;
  syscall?: string;

  constructor(code: ErrorCode, params: ErrorParams = {}, opts: { location?: ErrorLocation; cause?: unknown } = {}) {
    const def: ErrorDef = ERRORS[code];
    const where = formatLocation(opts.location);
    const text = render(def.message, params);
    super(where ? `${where}: ${text}` : text, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'FarmlbError';
    this.code = code;
    this.hint = render(def.hint, params);
    this.location = opts.location;
    this.details = params;
  }

  /** One line for a terminal: "where: what (CODE) — hint". */
  toString(): string {
    return `${this.message} (${this.code})${this.hint ? ` — ${this.hint}` : ''}`;
  }
}

export function isFarmlbError(err: unknown): err is FarmlbError {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' &&
    String((err as { code: string }).code).startsWith('FARMLB_E_');
}
