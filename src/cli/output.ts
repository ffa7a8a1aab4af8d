// How commands print: plain text for people, the same data object as JSON with --json.
// Colour only on a terminal and never when NO_COLOR is set (https://no-color.org), unless
// FORCE_COLOR asks for it (https://force-color.org), e.g. for `watch -c` or `less -R`.

export interface Output {
  readonly json: boolean;
  readonly color: boolean;
  print(text: string): void;
  printJson(data: unknown): void;
  error(text: string): void;
}

export function makeOutput(opts: { json: boolean; stream?: NodeJS.WriteStream }): Output {
  const stream = opts.stream ?? process.stdout;
  const color = !opts.json && colorWanted(process.env, stream.isTTY === true);
  return {
    json: opts.json,
    color,
    print: (text) => { stream.write(text.endsWith('\n') ? text : `${text}\n`); },
    printJson: (data) => { stream.write(`${JSON.stringify(data, jsonReplacer, 2)}\n`); },
    error: (text) => { process.stderr.write(text.endsWith('\n') ? text : `${text}\n`); },
  };
}

/**
 * FORCE_COLOR (non-empty, not "0" or "false") turns colour on even off a terminal and wins
 * over NO_COLOR, as in Node.js itself: it is the more explicit request of the two. Else
 * colour needs a terminal that is not "dumb" and no NO_COLOR (non-empty).
 */
/** A FarmlbError as the CLI shows it: one line with the code, then the hint (stderr). */
export function errorText(e: { code: string; message: string; hint?: string }): string {
  return `farmlb: ${e.message} (${e.code})${e.hint ? `\n  hint: ${e.hint}` : ''}\n`;
}

/** A FarmlbError in --json output: `{"error": {code, message, hint}}` (docs/cli.md). */
export function errorJson(e: { code: string; message: string; hint?: string }): { code: string; message: string; hint?: string } {
  return { code: e.code, message: e.message, hint: e.hint };
}

export function colorWanted(env: NodeJS.ProcessEnv, isTTY: boolean): boolean {
  const force = env.FORCE_COLOR;
  if (force !== undefined && force !== '') return force !== '0' && force.toLowerCase() !== 'false';
  return isTTY && !env.NO_COLOR && env.TERM !== 'dumb';
}

/** bigint counters become numbers when exact, strings otherwise. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex');
  return value;
}

const ANSI_256 = (n: number) => (s: string) => `\x1b[38;5;${n}m${s}\x1b[0m`;
// Distinguishable on dark and light terminals; a node keeps its colour by node id.
const PALETTE = [33, 208, 40, 199, 226, 51, 160, 129, 94, 250, 21, 118].map(ANSI_256);

export function nodeColour(output: Output, nodeId: number): (s: string) => string {
  if (!output.color) return (s) => s;
  return PALETTE[nodeId % PALETTE.length]!;
}

export function dim(output: Output, s: string): string {
  return output.color ? `\x1b[2m${s}\x1b[0m` : s;
}

export function bold(output: Output, s: string): string {
  return output.color ? `\x1b[1m${s}\x1b[0m` : s;
}
