// netstate.json is input (docs/security.md, "Persisted state"): the crash-recovery record
// restores sysctls only from the fixed list farmlb changes, so a tampered record cannot turn
// the restore at start into a root write of any file.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { emptyNetState, netstateFile, readNetState } from '../../src/net/netstate.js';
import { isFarmlbSysctl, writeSysctl } from '../../src/net/sysctl.js';

let dir: string;
beforeEach(async () => { dir = await mkdtemp(path.join(tmpdir(), 'flb-netstate-')); });
afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

async function record(over: object): Promise<void> {
  await writeFile(netstateFile(dir), JSON.stringify({ ...emptyNetState(), ...over }));
}

describe('netstate.json: a tampered record is refused whole', () => {
  it.each([
    ['a sysctl key with ../', { sysctls: [{ key: 'net/ipv4/conf/../../../../etc/cron.d/x', original: '1' }] }],
    ['a sysctl key outside the list', { sysctls: [{ key: 'kernel/core_pattern', original: '|/tmp/x' }] }],
    ['the "all" interface', { sysctls: [{ key: 'net/ipv4/conf/all/arp_announce', original: '0' }] }],
    ['a value that is not a number', { sysctls: [{ key: 'net/ipv4/conf/eth0/arp_announce', original: '0\n1' }] }],
    ['an interface name with a slash', { promisc: ['eth0/../x'] }],
    ['a pin directory outside bpffs', { pinDirs: ['/etc'] }],
    ['a pin directory climbing out of bpffs', { pinDirs: ['/sys/fs/bpf/../../../etc'] }],
    ['an alias that is no address', { aliases: [{ ifname: 'eth0', addr: 'x; rm -rf /', prefixlen: 24 }] }],
  ])('refuses %s', async (_what, over) => {
    await record(over);
    await expect(readNetState(dir)).rejects.toMatchObject({ code: 'FARMLB_E_NET_STATE' });
  });

  it('reads a record of what farmlb changes', async () => {
    const sysctls = [{ key: 'net/ipv4/conf/eth0.100/arp_announce', original: '0' }, { key: 'net/ipv6/conf/eth0/ndisc_notify', original: '1' }];
    await record({ sysctls, pinDirs: ['/sys/fs/bpf/farmlb/farm'], aliases: [{ ifname: 'eth0', addr: '10.0.0.9', prefixlen: 24 }] });
    expect((await readNetState(dir))?.sysctls).toEqual(sysctls);
  });

  it('writeSysctl refuses any key outside the fixed list, whoever calls it', async () => {
    expect(isFarmlbSysctl('net/ipv4/conf/eth0/arp_notify')).toBe(true);
    expect(isFarmlbSysctl('net/ipv4/conf/eth0/forwarding')).toBe(false);
    await expect(writeSysctl('../../tmp/flb-pwned', '1')).rejects.toMatchObject({ code: 'FARMLB_E_NET_SYSCTL' });
  });
});
