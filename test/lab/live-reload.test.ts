// A configuration change without an outage (docs/operations.md, "Changing the
// configuration"): three real daemons in membership mode (powers 1, 1, 2) serve a client that
// opens a new connection from each of 32 source addresses every 50 ms (a request fails
// without an answer within 2 s: a SYN dropped while a bucket moves is sent again after 1 s
// and must then be answered). The new userconfig.xml adds a rule (TCP port 9090 of the IPv4
// VIP) and raises n1's power to 3; it is put on every node and `farmlb reload` run on each in
// turn. The first two stage it and keep serving the old one; the third completes the set and
// every node switches; buckets then move to the new quotas through the handover. No request
// fails, and port 9090 goes from dropped (no rule) to answered by its owner's kernel.

import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { FarmLab, HTTP_PORT } from './helpers/farm-lab.js';
import { uniqueSuffix, waitFor } from './helpers/netns.js';
import { ClientPoller } from './helpers/client-watch.js';
import { FAILOVER_NODES, FAILOVER_NODE_NAMES, FULL_QUOTAS, logsOnFailure, waitCoverage } from './helpers/failover-kit.js';

const ALL = FAILOVER_NODE_NAMES;
const SOURCES = 32;
const NEW_PORT = 9090;
/** Largest-remainder quotas of 3:1:2 over 256 buckets. */
const NEW_QUOTAS: Record<string, number> = { n1: 128, n2: 43, n3: 85 };

describePrivileged('lab: a rule and a power changed on a running membership farm by farmlb reload on each node', () => {
  const name = `lr${uniqueSuffix()}`;
  let lab: FarmLab | undefined;
  let poller: ClientPoller | undefined;

  beforeAll(async () => {
    lab = await FarmLab.create({ name, mode: 'vmac_invisible', xdpMode: 'generic', nodes: FAILOVER_NODES, clientAddrs4: SOURCES, clientAddrs6: 0, membership: true });
    await waitCoverage(lab, ALL, { quotas: FULL_QUOTAS, timeoutMs: 30_000 });
    poller = await ClientPoller.start(lab, lab.clientAddrs4, { timeoutMs: 2_000 });
  }, 120_000);

  afterAll(async () => {
    poller?.close();
    if (lab) expect(await lab.cleanup()).toEqual([]);
    expect(FarmLab.leftovers(name)).toEqual({ namespaces: [], pins: [], processes: [] });
  }, 60_000);

  it('stages the change on each node until all have it, then every node switches: 0 failed requests, the new rule served, the new quotas', async (ctx) => {
    logsOnFailure(ctx, () => lab);
    const l = lab!;
    const src = l.clientAddrs4[0]!;
    const newPortUrl = `http://${l.vip4}:${NEW_PORT}/`;
    // No rule for the port yet: every node drops the SYN (no answer at all).
    const before = await l.curlFrom(src, newPortUrl, { connectTimeoutS: 1, maxTimeS: 2 });
    expect(before.error ?? '').toMatch(/exit 28/); // curl: timeout
    const oldDigest = (await l.status('n1')).configDigest;

    await poller!.mark();
    await l.writeConfig({
      nodes: FAILOVER_NODES.map((n) => (n.name === 'n1' ? { ...n, power: 3 } : n)),
      groups: [{ name: 'web', rules: [
        { proto: 'tcp', vip: l.vip4, port: HTTP_PORT, filter: 'on_addr' },
        { proto: 'tcp', vip: l.vip6, port: HTTP_PORT, filter: 'on_addr' },
        { proto: 'tcp', vip: l.vip4, port: NEW_PORT, filter: 'on_port' },
      ] }],
    });
    const marks = Object.fromEntries(ALL.map((n) => [n, l.logMark(n)]));
    for (const [i, n] of ALL.entries()) {
      // Exits 0 (run throws otherwise): staged, or applied on the last node.
      console.log(`[live-reload] ${n}: ${(await l.farmlb(['reload'], n)).stdout.trim()}`);
      if (i < ALL.length - 1) {
        // Staged, not switched: still serving the old configuration with everyone else.
        const s = await l.status(n);
        expect(s.configDigest).toBe(oldDigest);
        expect(s.stagedDigest).toBeDefined();
        expect(s.state).toBe('UP');
      }
    }
    for (const n of ALL) await l.waitForLog(n, /"event":"config_switched"/, { from: marks[n], timeoutMs: 5_000 });
    const digests = await Promise.all(ALL.map(async (n) => (await l.status(n)).configDigest));
    expect(new Set(digests).size).toBe(1);
    expect(digests[0]).not.toBe(oldDigest);
    await waitCoverage(l, ALL, { quotas: NEW_QUOTAS, timeoutMs: 20_000 });
    // The rule is in every data plane: the owner's kernel answers with a reset (nothing listens; curl exit 7).
    await waitFor(async () => /exit 7:/.test((await l.curlFrom(src, newPortUrl, { connectTimeoutS: 1, maxTimeS: 2 })).error ?? ''),
      { timeoutMs: 5_000, intervalMs: 200, what: `port ${NEW_PORT} to be answered` });
    await sleep(1_000);
    const report = await poller!.report();
    const totals = ClientPoller.totals(report, () => true);
    console.log(`[live-reload] ${JSON.stringify(totals)}`);
    expect(totals.answered).toBeGreaterThan(SOURCES * 10);
    expect(totals.stalled, 'requests the stalled client missed').toBeLessThan(totals.answered / 4);
    expect(ClientPoller.failures(report, () => true), 'failed requests').toEqual([]);
    for (const n of ALL) expect(l.logSince(n, marks[n]!)).not.toMatch(/"event":"(config_mismatch|reload_failed)"/);
  }, 120_000);
});
