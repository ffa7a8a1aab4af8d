// The lab's own hygiene: a test run killed by SIGKILL runs no cleanup handler, so the next run
// removes what it left (test/lab/helpers/netns.ts, sweepDeadRuns), and only that: a namespace
// whose creator still runs is kept.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { OWNERS_DIR, createNetns, deleteNetns, sweepDeadRuns, uniqueSuffix, waitFor } from './helpers/netns.js';

describePrivileged('lab: namespaces of a killed run are removed by the next', () => {
  it('removes a dead run\'s namespace and the processes in it; keeps a live run\'s', async () => {
    const dead = `flb-swd${uniqueSuffix()}`;
    const live = `flb-swl${uniqueSuffix()}`;
    // A pid that surely ended: a process that exited and was reaped.
    const gone = spawnSync('true').pid!;
    let inside: ReturnType<typeof spawn> | undefined;
    try {
      await createNetns(dead);
      await createNetns(live);
      mkdirSync(OWNERS_DIR, { recursive: true, mode: 0o700 });
      writeFileSync(path.join(OWNERS_DIR, dead), `${gone}\n`);
      writeFileSync(path.join(OWNERS_DIR, live), `${process.pid}\n`);
      inside = spawn('nsenter', [`--net=/run/netns/${dead}`, '--', 'sleep', '60'], { stdio: 'ignore' });
      await waitFor(() => spawnSync('ip', ['netns', 'pids', dead], { encoding: 'utf8' }).stdout.includes(String(inside!.pid)),
        { timeoutMs: 5_000, what: 'a process in the dead run\'s namespace' });

      const swept = sweepDeadRuns();

      expect(swept).toContain(dead);
      expect(swept).not.toContain(live);
      expect(existsSync(`/run/netns/${dead}`)).toBe(false);
      expect(existsSync(path.join(OWNERS_DIR, dead))).toBe(false);
      expect(existsSync(`/run/netns/${live}`)).toBe(true);
      await waitFor(() => inside!.exitCode !== null || inside!.signalCode !== null, { timeoutMs: 5_000, what: 'the process in it to be killed' });
      expect(inside.signalCode).toBe('SIGKILL');
    } finally {
      inside?.kill('SIGKILL');
      await deleteNetns(dead);
      await deleteNetns(live);
      for (const ns of [dead, live]) rmSync(path.join(OWNERS_DIR, ns), { force: true });
    }
  });
});
