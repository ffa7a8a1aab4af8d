// The package's version, for farmlb --version and farmlb_build_info. From package.json one
// directory up from both src/ (tests) and dist/ (the build).
import { readFileSync } from 'node:fs';

let cached: string | undefined;

export function packageVersion(): string {
  cached ??= (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  return cached;
}
