import { describe } from 'vitest';

export const isRoot = process.getuid?.() === 0;

export function describePrivileged(name: string, fn: () => void): void {
  if (isRoot) {
    describe(name, fn);
    return;
  }
  if (process.env.FARMLB_REQUIRE_LAB === '1') {
    describe(name, () => {
      throw new Error(`privileged test "${name}" needs root and FARMLB_REQUIRE_LAB=1 forbids skipping`);
    });
    return;
  }
  describe.skip(`${name} (skipped: needs root)`, fn);
}
