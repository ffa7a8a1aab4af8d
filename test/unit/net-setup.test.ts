// NetSetup's record keeping and recovery against a fake NetSystem: what a killed run left
// is adopted (its originals kept, never farmlb's own values), undone where the new plan no
// longer wants it, and the record is written before each change.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { netstateFile, readNetState, writeNetState, emptyNetState } from '../../src/net/netstate.js';
import { NetSetup, type NetPlan, type NetSystem } from '../../src/net/setup.js';
import { FarmlbError } from '../../src/errors.js';
import { writeFile } from 'node:fs/promises';

const log = pino({ level: 'silent' });

class FakeSystem implements NetSystem {
  sysctls = new Map<string, string>();
  promisc = new Set<string>();
  aliases = new Set<string>();
  /** Each change, with the record as it was on disk when the change was made. */
  changes: { what: string; recorded: string }[] = [];
  constructor(private readonly runDir: string) {}
  private async note(what: string): Promise<void> {
    const rec = await readNetState(this.runDir);
    this.changes.push({ what, recorded: JSON.stringify(rec ?? null) });
  }
  async readSysctl(key: string) {
    const v = this.sysctls.get(key);
    if (v === undefined) throw new FarmlbError('FARMLB_E_NET_SYSCTL', { op: 'read', name: key, detail: 'ENOENT: no such file' });
    return v;
  }
  async writeSysctl(key: string, value: string) {
    if (!this.sysctls.has(key)) throw new FarmlbError('FARMLB_E_NET_SYSCTL', { op: 'write', name: key, detail: 'ENOENT: no such file' });
    await this.note(`sysctl ${key}=${value}`);
    this.sysctls.set(key, value);
  }
  async isPromisc(ifname: string) { return this.promisc.has(ifname); }
  async setPromisc(ifname: string, on: boolean) {
    await this.note(`promisc ${ifname} ${on}`);
    if (on) this.promisc.add(ifname); else this.promisc.delete(ifname);
  }
  async addAlias(ifname: string, addr: string, prefixlen: number) {
    await this.note(`alias+ ${addr}`);
    this.aliases.add(`${ifname} ${addr}/${prefixlen}`);
  }
  async removeAlias(ifname: string, addr: string, prefixlen: number) {
    await this.note(`alias- ${addr}`);
    this.aliases.delete(`${ifname} ${addr}/${prefixlen}`);
  }
}

const IF = 'eth0';
const defaults = (sys: FakeSystem) => {
  sys.sysctls.set(`net/ipv4/conf/${IF}/arp_announce`, '1'); // non-default: must come back
  sys.sysctls.set(`net/ipv4/conf/${IF}/arp_notify`, '0');
  sys.sysctls.set(`net/ipv6/conf/${IF}/ndisc_notify`, '1');
};
const invisible: NetPlan = {
  interfaces: [{ ifname: IF, mode: 'vmac_invisible', families: [4, 6] }],
  aliases: [{ ifname: IF, addr: '10.0.0.100', prefixlen: 24 }, { ifname: IF, addr: 'fd00::100', prefixlen: 64 }],
};
const directedV4: NetPlan = {
  interfaces: [{ ifname: IF, mode: 'vmac_directed', families: [4] }],
  aliases: [{ ifname: IF, addr: '10.0.0.100', prefixlen: 24 }],
};

async function startRun(runDir: string, sys: FakeSystem, plan: NetPlan) {
  const net = await NetSetup.open({ runDir, log, system: sys });
  await net.configureInterfaces(plan);
  await net.addAliases(plan);
  await net.removeStale(plan, { progIds: [], pinDir: '/sys/fs/bpf/x' });
  return net;
}

async function stopRun(net: NetSetup) {
  await net.removeAliases();
  await net.restoreInterfaces();
  return net.finish();
}

describe('NetSetup', () => {
  let runDir: string;
  beforeEach(async () => { runDir = await mkdtemp(path.join(tmpdir(), 'flb-netsetup-')); });
  afterEach(async () => { await rm(runDir, { recursive: true, force: true }); });

  it('sets the sysctls and promiscuous mode, adds the aliases, and undoes all of it on stop', async () => {
    const sys = new FakeSystem(runDir);
    defaults(sys);
    const net = await startRun(runDir, sys, invisible);
    expect(sys.sysctls.get(`net/ipv4/conf/${IF}/arp_announce`)).toBe('2');
    expect(sys.sysctls.get(`net/ipv6/conf/${IF}/ndisc_notify`)).toBe('0');
    expect(sys.promisc.has(IF)).toBe(true);
    expect(sys.aliases.size).toBe(2);
    expect(await stopRun(net)).toBe(true);
    expect(sys.sysctls.get(`net/ipv4/conf/${IF}/arp_announce`)).toBe('1');
    expect(sys.sysctls.get(`net/ipv6/conf/${IF}/ndisc_notify`)).toBe('1');
    expect(sys.promisc.has(IF)).toBe(false);
    expect(sys.aliases.size).toBe(0);
    expect(await readNetState(runDir)).toBeUndefined();
  });

  it('records every change before making it', async () => {
    const sys = new FakeSystem(runDir);
    defaults(sys);
    await startRun(runDir, sys, invisible);
    for (const c of sys.changes) {
      if (c.what.startsWith('sysctl')) expect(c.recorded, c.what).toContain(c.what.split(' ')[1]!.split('=')[0]);
      if (c.what.startsWith('promisc')) expect(c.recorded, c.what).toContain(`"promisc":["${IF}"]`);
      if (c.what.startsWith('alias+')) expect(c.recorded, c.what).toContain(c.what.split(' ')[1]);
    }
    expect(sys.changes.length).toBe(5); // 2 sysctls (arp_notify is already 0), promisc, 2 aliases
  });

  it('leaves alone what is already as farmlb wants it, and so never restores it', async () => {
    const sys = new FakeSystem(runDir);
    defaults(sys);
    sys.promisc.add(IF); // the operator's own setting
    sys.sysctls.set(`net/ipv4/conf/${IF}/arp_announce`, '2');
    const net = await startRun(runDir, sys, invisible);
    expect(net.record().promisc).toEqual([]);
    expect(net.record().sysctls.map((s) => s.key)).toEqual([`net/ipv6/conf/${IF}/ndisc_notify`]);
    await stopRun(net);
    expect(sys.promisc.has(IF)).toBe(true);
  });

  it('after a killed run, keeps the recorded originals instead of farmlb\'s own values and restores them on the final stop', async () => {
    const sys = new FakeSystem(runDir);
    defaults(sys);
    await startRun(runDir, sys, invisible); // killed: no stop
    const second = await startRun(runDir, sys, invisible);
    expect(second.leftover?.aliases.length).toBe(2);
    const originals = Object.fromEntries(second.record().sysctls.map((s) => [s.key, s.original]));
    expect(originals[`net/ipv4/conf/${IF}/arp_announce`]).toBe('1');
    expect(originals[`net/ipv6/conf/${IF}/ndisc_notify`]).toBe('1');
    expect(second.record().promisc).toEqual([IF]);
    // The aliases still wanted were never removed.
    expect(sys.changes.filter((c) => c.what.startsWith('alias-'))).toEqual([]);
    expect(await stopRun(second)).toBe(true);
    expect(sys.sysctls.get(`net/ipv4/conf/${IF}/arp_announce`)).toBe('1');
    expect(sys.sysctls.get(`net/ipv6/conf/${IF}/ndisc_notify`)).toBe('1');
    expect(sys.promisc.has(IF)).toBe(false);
  });

  it('after a killed run, undoes what the new plan no longer wants: stale aliases, sysctls and promiscuous mode', async () => {
    const sys = new FakeSystem(runDir);
    defaults(sys);
    await startRun(runDir, sys, invisible); // killed
    const second = await startRun(runDir, sys, directedV4);
    expect([...sys.aliases]).toEqual([`${IF} 10.0.0.100/24`]);
    expect(sys.promisc.has(IF)).toBe(false);
    expect(sys.sysctls.get(`net/ipv6/conf/${IF}/ndisc_notify`)).toBe('1');
    expect(sys.sysctls.get(`net/ipv4/conf/${IF}/arp_announce`)).toBe('2');
    expect(second.record().sysctls.map((s) => s.key)).toEqual([`net/ipv4/conf/${IF}/arp_announce`]);
    await stopRun(second);
    expect(sys.sysctls.get(`net/ipv4/conf/${IF}/arp_announce`)).toBe('1');
  });

  it('returns the programs and pin directories of a killed run that this run does not use', async () => {
    const state = { ...emptyNetState(), pinDirs: ['/sys/fs/bpf/old', '/sys/fs/bpf/x'], xdp: [{ ifname: 'eth9', progId: 7 }, { ifname: IF, progId: 8 }] };
    await writeNetState(runDir, state);
    const sys = new FakeSystem(runDir);
    defaults(sys);
    const net = await NetSetup.open({ runDir, log, system: sys });
    await net.attaching(IF, 9);
    expect(net.record().xdp).toContainEqual({ ifname: IF, progId: 8 });
    await net.attached(IF, 9);
    expect(net.record().xdp).toEqual([{ ifname: 'eth9', progId: 7 }, { ifname: IF, progId: 9 }]);
    const stale = await net.removeStale(directedV4, { progIds: [9], pinDir: '/sys/fs/bpf/x' });
    expect(stale).toEqual({ xdp: [{ ifname: 'eth9', progId: 7 }], pinDirs: ['/sys/fs/bpf/old'] });
  });

  it('forgets settings of an interface that vanished instead of failing the stop', async () => {
    const sys = new FakeSystem(runDir);
    defaults(sys);
    const net = await startRun(runDir, sys, directedV4);
    sys.sysctls.clear(); // the interface is gone
    await stopRun(net);
    expect(await readNetState(runDir)).toBeUndefined();
  });

  it('refuses a record it cannot read rather than guessing the originals', async () => {
    await writeFile(netstateFile(runDir), '{"version": 1, "sysctls": "x"}');
    await expect(NetSetup.open({ runDir, log, system: new FakeSystem(runDir) })).rejects.toMatchObject({ code: 'FARMLB_E_NET_STATE' });
  });
});

describe('NetSetup with a live owner', () => {
  it('refuses a record whose writer is a farmlb process still running', async () => {
    const runDir = await mkdtemp(path.join(tmpdir(), 'flb-netsetup-'));
    try {
      // The test runner's parent command line does not name farmlb, so use a child whose does.
      const { spawn } = await import('node:child_process');
      const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)', 'farmlb'], { stdio: 'ignore' });
      try {
        await writeNetState(runDir, { ...emptyNetState(), pid: child.pid! });
        await expect(NetSetup.open({ runDir, log })).rejects.toMatchObject({ code: 'FARMLB_E_NET_STATE' });
      } finally {
        child.kill('SIGKILL');
      }
      await writeNetState(runDir, { ...emptyNetState(), pid: 2 ** 22 + 1 });
      await expect(NetSetup.open({ runDir, log })).resolves.toBeDefined();
    } finally {
      await rm(runDir, { recursive: true, force: true });
    }
  });
});
