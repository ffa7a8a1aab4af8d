// scriptcontrol (docs/application.md; SafeKit seed 001 §13.6.4): with <vip scriptcontrol="on">
// the VIP traffic starts closed and the module scripts open it. One real daemon (--static)
// whose start_both ends with `farmlb vip open`: it serves once start_both ran; `farmlb vip
// close` and `open`, run with only the environment a module script has, take it to WAIT
// (naming the cause, the client no longer served) and back.

import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged } from '../helpers/privileged.js';
import { FarmLab, REPO } from './helpers/farm-lab.js';
import { uniqueSuffix, waitFor } from './helpers/netns.js';
import path from 'node:path';

describePrivileged('lab: scriptcontrol="on": the module scripts open and close the VIP traffic', () => {
  const name = `sc${uniqueSuffix()}`;
  let lab: FarmLab | undefined;

  beforeAll(async () => {
    lab = await FarmLab.create({
      name, mode: 'vmac_invisible', xdpMode: 'generic', nodes: [{ name: 'n1', power: 1 }], clientAddrs4: 1, clientAddrs6: 0,
      vipAttrs: { scriptcontrol: 'on' },
      app: { xml: () => '<user/>', scripts: { start_both: 'echo "start_both $(date +%s%3N)" >> ../order\n"$SAFEBIN/farmlb.js" vip open >> ../vip.log 2>&1' } },
    });
  }, 120_000);

  afterAll(async () => {
    if (lab) expect(await lab.cleanup()).toEqual([]);
    expect(FarmLab.leftovers(name)).toEqual({ namespaces: [], pins: [], processes: [] });
  }, 60_000);

  const vip = (action: string) => lab!.inNode('n1', 'sh', ['-c',
    `SAFEMODULE=lab-${name} FARMLB_RUN_DIR=${lab!.runDir('n1')} node ${path.join(REPO, 'bin/farmlb.js')} vip ${action}`]);
  const served = async () => (await lab!.curlFrom(lab!.clientAddrs4[0]!, lab!.vipUrl(4), { connectTimeoutS: 1, maxTimeS: 2 })).body === 'n1';

  it('serves once start_both opened the traffic', async () => {
    const s = await lab!.status('n1');
    expect(s.state).toBe('UP');
    expect(await served()).toBe(true);
    expect(lab!.logs('n1')).toMatch(/"event":"vip_traffic","action":"open"/);
  });

  it('vip close from a script\'s environment: WAIT with the cause, nothing served; vip open: UP and served again', async () => {
    expect((await vip('close')).stdout).toMatch(/VIP traffic closed/);
    await waitFor(async () => (await lab!.status('n1')).state === 'WAIT', { timeoutMs: 5_000, intervalMs: 100, what: 'n1 to be WAIT' });
    expect((await lab!.status('n1')).stateCause).toMatch(/VIP traffic closed by the module scripts/);
    expect(await served()).toBe(false);
    await vip('open');
    await waitFor(async () => (await lab!.status('n1')).state === 'UP' && served(), { timeoutMs: 10_000, intervalMs: 200, what: 'n1 to serve again' });
  }, 60_000);
});
