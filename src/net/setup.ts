// NetSetup: every change farmlb makes to the node's network configuration — VIP aliases,
// interface sysctls, promiscuous mode — and the record of them (./netstate.ts) that lets a
// restart after a killed run adopt or undo what was left. The daemon calls these steps in
// the order docs/net.md gives; this class keeps the record true at every step (written
// before each change, updated after each undo) and never takes farmlb's own settings for
// the originals.
//
// The XDP attachments and pin directories are made by the daemon (src/dataplane/xdp.ts)
// but recorded here too, so one file tells a restart everything the last run left.

import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { FarmlbError } from '../errors.js';
import type { VmacMode } from '../config/types.js';
import { addAlias, removeAlias } from './ip.js';
import { emptyNetState, isEmptyNetState, netstateFile, readNetState, removeNetState, writeNetState, type NetState, type RecordedAlias, type RecordedXdp } from './netstate.js';
import { isPromisc, setPromisc } from './promisc.js';
import { isMissingSysctl, readSysctl, sysctlName, wantedSysctls, writeSysctl } from './sysctl.js';

/** The privileged operations, behind an interface so the recovery logic is testable without root. */
export interface NetSystem {
  readSysctl(key: string): Promise<string>;
  writeSysctl(key: string, value: string): Promise<void>;
  isPromisc(ifname: string): Promise<boolean>;
  setPromisc(ifname: string, on: boolean): Promise<void>;
  addAlias(ifname: string, addr: string, prefixlen: number): Promise<void>;
  /** Absent aliases are fine. */
  removeAlias(ifname: string, addr: string, prefixlen: number): Promise<void>;
}

export const realNetSystem: NetSystem = { readSysctl, writeSysctl, isPromisc, setPromisc, addAlias, removeAlias };

export interface InterfacePlan {
  ifname: string;
  mode: VmacMode;
  /** Families of the VIPs this interface holds. */
  families: (4 | 6)[];
}

/** What this run wants on the node. */
export interface NetPlan {
  interfaces: InterfacePlan[];
  aliases: RecordedAlias[];
}

export interface NetSetupOptions {
  runDir: string;
  log: Logger;
  system?: NetSystem;
}

const sameAlias = (a: RecordedAlias, b: RecordedAlias) => a.ifname === b.ifname && a.addr === b.addr && a.prefixlen === b.prefixlen;

/** "No such device" from ip: the interface is gone, and with it what farmlb set on it. */
function isGoneDevice(err: unknown): boolean {
  return /Cannot find device|does not exist/i.test(String((err as { details?: { detail?: unknown } }).details?.detail ?? err));
}

/** A live process whose command line names farmlb (a reused pid of another program does not count). */
async function isFarmlbProcess(pid: number): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).includes('farmlb');
  } catch {
    return false;
  }
}

export class NetSetup {
  private constructor(
    private readonly runDir: string,
    private readonly log: Logger,
    private readonly sys: NetSystem,
    private state: NetState,
    /** What a previous run left (a copy: the live record changes as this run proceeds). */
    readonly leftover: NetState | undefined,
  ) {}

  /** Reads the record a previous run left, if any; writes nothing yet. */
  static async open(opts: NetSetupOptions): Promise<NetSetup> {
    const leftover = await readNetState(opts.runDir);
    if (leftover && leftover.pid !== process.pid && (await isFarmlbProcess(leftover.pid))) {
      // Two daemons on one record would each take the other's settings for originals.
      throw new FarmlbError('FARMLB_E_NET_STATE', { file: netstateFile(opts.runDir), detail: `farmlb (pid ${leftover.pid}) is still running with this run directory` });
    }
    const state: NetState = leftover ? structuredClone(leftover) : emptyNetState();
    state.pid = process.pid;
    if (leftover && !isEmptyNetState(leftover)) {
      opts.log.warn({ event: 'netstate_adopted', previousPid: leftover.pid, aliases: leftover.aliases.length,
        sysctls: leftover.sysctls.length, promisc: leftover.promisc, xdp: leftover.xdp.length },
        'a previous run did not clean up: adopting what it left');
    }
    return new NetSetup(opts.runDir, opts.log, opts.system ?? realNetSystem, state, leftover ? structuredClone(leftover) : undefined);
  }

  /** The live record (a copy). */
  record(): NetState {
    return structuredClone(this.state);
  }

  private async save(): Promise<void> {
    await writeNetState(this.runDir, this.state);
  }

  // ---- XDP and pins (changed by the daemon, recorded here) ----------------------------

  async recordPinDir(pinDir: string): Promise<void> {
    if (this.state.pinDirs.includes(pinDir)) return;
    this.state.pinDirs.push(pinDir);
    await this.save();
  }

  async forgetPinDir(pinDir: string): Promise<void> {
    this.state.pinDirs = this.state.pinDirs.filter((d) => d !== pinDir);
    await this.save();
  }

  /** Before attaching progId to ifname: the program that may be there stays recorded until attached() confirms the swap. */
  async attaching(ifname: string, progId: number): Promise<void> {
    if (this.state.xdp.some((x) => x.ifname === ifname && x.progId === progId)) return;
    this.state.xdp.push({ ifname, progId });
    await this.save();
  }

  /** After the attach: progId replaced whatever farmlb had on ifname. */
  async attached(ifname: string, progId: number): Promise<void> {
    this.state.xdp = this.state.xdp.filter((x) => x.ifname !== ifname || x.progId === progId);
    await this.save();
  }

  async forgetXdp(entry: RecordedXdp): Promise<void> {
    this.state.xdp = this.state.xdp.filter((x) => x.ifname !== entry.ifname || x.progId !== entry.progId);
    await this.save();
  }

  /** Before attaching the tc egress program (IPv6 NS-source guard) to ifname. */
  async attachingEgress(ifname: string): Promise<void> {
    if (this.state.egress.includes(ifname)) return;
    this.state.egress.push(ifname);
    await this.save();
  }

  /** After detaching it (or finding the interface gone). */
  async forgetEgress(ifname: string): Promise<void> {
    this.state.egress = this.state.egress.filter((e) => e !== ifname);
    await this.save();
  }

  // ---- start ------------------------------------------------------------------------

  /** Sysctls and promiscuous mode for every planned interface (after the program is attached, before the aliases). */
  async configureInterfaces(plan: NetPlan): Promise<void> {
    for (const intf of plan.interfaces) {
      for (const { key, value } of wantedSysctls(intf.ifname, intf.families)) {
        const current = await this.sys.readSysctl(key);
        if (current === value) continue;
        // A value recorded by a killed run is the true original; the current one may be
        // farmlb's own (or whatever happened since), and must not replace it.
        if (!this.state.sysctls.some((s) => s.key === key)) {
          this.state.sysctls.push({ key, original: current });
          await this.save();
        }
        await this.sys.writeSysctl(key, value);
        this.log.info({ event: 'sysctl_set', iface: intf.ifname, sysctl: sysctlName(key), from: current, to: value }, 'sysctl set');
      }
      // vmac_invisible: clients send to the virtual MAC, which no NIC owns, so the NIC must
      // take frames for any MAC; the XDP program keeps the owned ones and drops the rest.
      if (intf.mode === 'vmac_invisible' && !(await this.sys.isPromisc(intf.ifname))) {
        if (!this.state.promisc.includes(intf.ifname)) {
          this.state.promisc.push(intf.ifname);
          await this.save();
        }
        await this.sys.setPromisc(intf.ifname, true);
        this.log.info({ event: 'promisc_on', iface: intf.ifname }, 'promiscuous mode on');
      }
    }
  }

  async addAliases(plan: NetPlan): Promise<void> {
    for (const a of plan.aliases) {
      if (!this.state.aliases.some((r) => sameAlias(r, a))) {
        this.state.aliases.push({ ...a });
        await this.save();
      }
      await this.sys.addAlias(a.ifname, a.addr, a.prefixlen);
      this.log.info({ event: 'vip_added', iface: a.ifname, vip: `${a.addr}/${a.prefixlen}` }, 'VIP alias added');
    }
  }

  /**
   * Undoes what a previous run left and this plan no longer wants: its aliases first, then
   * its sysctls and promiscuous mode. Call it only once the new program is attached. The
   * XDP attachments on interfaces the plan no longer uses are returned for the daemon to
   * detach (then forgetXdp), and pin directories other than keepPinDir likewise.
   */
  async removeStale(plan: NetPlan, keep: { progIds: number[]; pinDir: string }): Promise<{ xdp: RecordedXdp[]; pinDirs: string[] }> {
    for (const a of this.state.aliases.filter((r) => !plan.aliases.some((p) => sameAlias(p, r)))) {
      await this.undoAlias(a);
      this.log.info({ event: 'stale_vip_removed', iface: a.ifname, vip: `${a.addr}/${a.prefixlen}` }, 'stale VIP alias removed');
    }
    const wantedKeys = new Set(plan.interfaces.flatMap((i) => wantedSysctls(i.ifname, i.families).map((s) => s.key)));
    for (const s of this.state.sysctls.filter((r) => !wantedKeys.has(r.key))) await this.undoSysctl(s.key);
    const invisible = new Set(plan.interfaces.filter((i) => i.mode === 'vmac_invisible').map((i) => i.ifname));
    for (const ifname of this.state.promisc.filter((p) => !invisible.has(p))) await this.undoPromisc(ifname);
    return {
      xdp: this.state.xdp.filter((x) => !keep.progIds.includes(x.progId)),
      pinDirs: this.state.pinDirs.filter((d) => d !== keep.pinDir),
    };
  }

  /** Recorded tc egress attachments on interfaces other than `keep`, for the daemon to detach (then forgetEgress). */
  staleEgress(keep: string[]): string[] {
    return this.state.egress.filter((e) => !keep.includes(e));
  }

  // ---- stop -------------------------------------------------------------------------

  /** Every recorded alias, this run's and any a previous run left. */
  async removeAliases(): Promise<void> {
    for (const a of [...this.state.aliases].reverse()) {
      await this.undoAlias(a);
      this.log.info({ event: 'vip_removed', iface: a.ifname, vip: `${a.addr}/${a.prefixlen}` }, 'VIP alias removed');
    }
  }

  /** Every recorded sysctl and promiscuous flag back to its original. Tries them all; throws the first failure. */
  async restoreInterfaces(): Promise<void> {
    let first: unknown;
    const attempt = async (fn: () => Promise<void>) => {
      try { await fn(); } catch (err) { first ??= err; }
    };
    for (const s of [...this.state.sysctls].reverse()) await attempt(() => this.undoSysctl(s.key));
    for (const ifname of [...this.state.promisc].reverse()) await attempt(() => this.undoPromisc(ifname));
    if (first !== undefined) throw first;
  }

  /** Removes the record if nothing is left to undo; otherwise keeps it for the next run. Returns whether it was removed. */
  async finish(): Promise<boolean> {
    if (!isEmptyNetState(this.state)) {
      await this.save();
      return false;
    }
    await removeNetState(this.runDir);
    return true;
  }

  // ---- undo steps: change first, then drop the record -----------------------------

  private async undoAlias(a: RecordedAlias): Promise<void> {
    try {
      await this.sys.removeAlias(a.ifname, a.addr, a.prefixlen);
    } catch (err) {
      if (!isGoneDevice(err)) throw err;
    }
    this.state.aliases = this.state.aliases.filter((r) => !sameAlias(r, a));
    await this.save();
  }

  private async undoSysctl(key: string): Promise<void> {
    const rec = this.state.sysctls.find((s) => s.key === key);
    if (!rec) return;
    try {
      await this.sys.writeSysctl(key, rec.original);
      this.log.info({ event: 'sysctl_restored', sysctl: sysctlName(key), to: rec.original }, 'sysctl restored');
    } catch (err) {
      // The interface is gone, and its settings with it.
      if (!isMissingSysctl(err)) throw err;
    }
    this.state.sysctls = this.state.sysctls.filter((s) => s.key !== key);
    await this.save();
  }

  private async undoPromisc(ifname: string): Promise<void> {
    try {
      await this.sys.setPromisc(ifname, false);
      this.log.info({ event: 'promisc_off', iface: ifname }, 'promiscuous mode restored (off)');
    } catch (err) {
      if (!isGoneDevice(err)) throw err;
    }
    this.state.promisc = this.state.promisc.filter((p) => p !== ifname);
    await this.save();
  }
}
