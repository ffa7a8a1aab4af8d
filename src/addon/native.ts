// Typed wrapper over the farmlb_native addon (native/, node-addon-api over the system
// libbpf). The addon is thin — libbpf calls mapped to JS — and throws plain Errors with
// `code`, `errno` and `syscall`; this module turns them into FarmlbError so callers match
// on `code` like everywhere else. Kernel resources need an explicit close(): finalizers
// run late or never. A room of its own (src/addon/): the data planes, the network setup,
// the CLI and the Corosync membership all use the addon, none through another's room.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ERRORS, FarmlbError, type ErrorCode } from '../errors.js';

export interface NativeMap {
  /** Full map name (the kernel keeps 15 characters; this is the ELF / pin name). */
  readonly name: string;
  /** enum bpf_map_type */
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly perCpu: boolean;
  /** Bytes of a value as lookup() returns it: numPossibleCpus × roundup(valueSize, 8) for per-CPU maps. */
  readonly valueBufferSize: number;
  /** null if absent. Per-CPU maps: numPossibleCpus × roundup(valueSize, 8) bytes. */
  lookup(key: Buffer): Buffer | null;
  update(key: Buffer, value: Buffer, flags?: number): void;
  /** false if the key was absent. */
  delete(key: Buffer): boolean;
  /** bpf_map_get_next_key walk, at most maxEntries keys. */
  keys(): Buffer[];
  /** bpf_map_update_batch (BPF_ANY), falling back to one update per element where unsupported. */
  updateBatch(keys: Buffer, values: Buffer, count: number): Promise<void>;
  /**
   * BPF_F_MMAPABLE arrays only (farmlb_hot), through a shared mapping of the values:
   * readAt/writeAt copy bytes out / in (plain stores, published by a later storeU32Release);
   * storeU32Release is one 4-byte release store after a full fence, storeU64 one aligned
   * 8-byte store. A map opened read-only can be read, not written.
   */
  readAt(offset: number, length: number): Buffer;
  writeAt(offset: number, data: Buffer): void;
  storeU32Release(offset: number, value: number): void;
  storeU64(offset: number, value: bigint): void;
  close(): void;
}

export interface TestRunResult {
  retval: number;
  dataOut: Buffer;
  /** Kernel-measured average ns per repetition. */
  durationNs: number;
}

export interface NativeObject {
  /** Maps adopted from reusePinDir (same shape). */
  readonly reusedMaps: readonly string[];
  /** Pinned maps left alone because their shape differs, "name: what differs". */
  readonly reuseMismatches: readonly string[];
  /** A new handle with its own fd (stays valid after the object is closed). */
  map(name: string): NativeMap;
  /** Names of the object's own maps (not .rodata/.bss). */
  mapNames(): string[];
  /** Owned by the object: valid until close(); never close it yourself. */
  programFd(name: string): number;
  programId(name: string): number;
  /** mkdir -p; pin each map as dir/<map name>, atomically replacing an existing pin. */
  pinMaps(dir: string): void;
  /** Remove this object's pins (absent ones are fine), then rmdir if empty. */
  unpinMaps(dir: string): void;
  testRun(program: string, data: Buffer, repeat?: number, netns?: string): Promise<TestRunResult>;
  /** One run per frame, all in one worker thread. */
  /** netns: path of a network namespace (/run/netns/NAME) whose loopback and sockets the runs see. */
  testRunMany(program: string, frames: Buffer[], netns?: string): Promise<{ retval: number; dataOut: Buffer }[]>;
  /** Idempotent. Does not detach programs attached by netlink. */
  close(): void;
}

export type XdpMode = 'native' | 'generic';

export interface XdpAttachOptions {
  mode: XdpMode | 'auto';
  /** Atomic swap: attach only if this program is the one attached (XDP_FLAGS_REPLACE). */
  replaceProgFd?: number;
  /** Same, naming the attached program by id (e.g. one left by a previous daemon). */
  replaceProgId?: number;
  /** Fail with EBUSY if any program is attached (XDP_FLAGS_UPDATE_IF_NOEXIST). */
  noReplace?: boolean;
}

/** A tc filter of ours: handle and priority (preference). */
export interface TcFilterId {
  handle?: number;
  priority?: number;
}

/** A struct as the compiler laid it out (from BTF): `type` names the struct a field holds, itself or as an array. */
export interface BtfStruct {
  size: number;
  fields: Record<string, { offset: number; size: number; type?: string; bitfield?: boolean }>;
}

/**
 * The layouts in a BPF object's BTF (native/abi.cc): every named struct, each map's key and
 * value struct ('' for a scalar such as an array map's __u32 key), each global variable's struct.
 */
export interface BtfLayout {
  structs: Record<string, BtfStruct>;
  maps: Record<string, { key?: string; value?: string }>;
  globals: Record<string, string>;
}

/**
 * A send-only AF_PACKET socket on one interface (protocol 0: it receives nothing). Sends
 * whole Ethernet frames as given — the caller builds every header (src/net/announce.ts).
 * Needs CAP_NET_RAW. Errors: FARMLB_E_NET_RAW_SEND with errno and syscall.
 */
export interface RawSocket {
  readonly ifname: string;
  readonly ifindex: number;
  send(frame: Buffer): void;
  /** Idempotent; send() after close() fails with EBADF. */
  close(): void;
}

/** One datagram of UdpBatchSocket.drain() (native/udpbatch.cc). */
export interface BatchDatagram {
  data: Buffer;
  /** The source address (no port: the membership checks the address only). */
  from: string;
  /** Arrival time, CLOCK_MONOTONIC ns: the kernel's (SO_TIMESTAMPNS), clamped to the drain's window. */
  atNs: bigint;
  /** Longer than the socket's maxBytes: `data` holds only the first maxBytes + 1 bytes. */
  truncated: boolean;
}

/**
 * The membership's heartbeat socket (native/udpbatch.cc): UDP, non-blocking, read in
 * batches with recvmmsg and each datagram's kernel arrival time.
 */
export interface UdpBatchSocket {
  /** 0, or the errno of a send that failed (never throws for the network's errors). */
  send(bytes: Buffer, addr: string, port: number): number;
  /** Every datagram queued now, in arrival order (at most ~1,000 a call: the rest waits). */
  drain(): BatchDatagram[];
  /** Calls `onBatch` from the event loop on each wake-up with datagrams queued (uv_poll). */
  watch(onBatch: (batch: BatchDatagram[]) => void): void;
  /** No wake-up for datagrams any more: they wait for drain(). */
  unwatch(): void;
  /** Idempotent. */
  close(): void;
}

/** A CPG process: corosync node id and pid. */
export interface CorosyncProc {
  nodeid: number;
  pid: number;
}

/** What one dispatch of the Corosync client hands to JS, in corosync's order (native/corosync.cc). */
export type CorosyncEvent =
  | { type: 'deliver'; nodeid: number; pid: number; data: Buffer }
  | { type: 'confchg'; members: CorosyncProc[]; left: (CorosyncProc & { reason: number })[]; joined: (CorosyncProc & { reason: number })[] }
  /** The totem ring changed (ringId "nodeid.seq" in hex, as corosync-quorumtool prints it). */
  | { type: 'totem'; ringId: string; members: number[] }
  | { type: 'quorum'; quorate: boolean; ringId: string; members: number[] }
  | { type: 'votequorum'; quorate: boolean; nodes: { nodeid: number; state: number }[] }
  /** The session's thread connected (it is the first event of a session): mcast and votequorumInfo work from now. */
  | { type: 'open'; localNodeId: number }
  /** The connection failed, or a descriptor is dead (corosync gone): close the session, open a new one later. */
  | { type: 'error'; call: string; cs: number; message: string };

export interface VotequorumInfo {
  nodeId: number;
  votes: number;
  expectedVotes: number;
  highestExpected: number;
  totalVotes: number;
  quorum: number;
  quorate: boolean;
  twoNode: boolean;
  waitForAll: boolean;
  qdeviceRegistered: boolean;
  qdeviceAlive: boolean;
  qdeviceCastVote: boolean;
  qdeviceVotes: number;
  qdeviceName: string;
}

/**
 * A session with the corosync of this node (native/corosync.cc). Every call that waits for
 * corosync's answer runs on the session's own thread, one at a time: a hung corosync never
 * blocks the JS thread, it leaves a promise unsettled.
 */
export interface CorosyncSession {
  /** 0 until the "open" event. */
  readonly localNodeId: number;
  readonly group: string;
  /**
   * cpg_mcast_joined(CPG_TYPE_AGREED), on the JS thread (it waits for no answer): corosync's
   * cs_error_t (1 = CS_OK, 6 = CS_ERR_TRY_AGAIN: its flow control, or a full request ring
   * while corosync does not read it). Throws before the "open" event and after close.
   */
  mcast(data: Buffer): number;
  /** votequorum_getinfo on the session's thread; unsettled while corosync does not answer, rejected at close. */
  votequorumInfo(): Promise<VotequorumInfo>;
  /**
   * Closed for JS at once (no more events, calls throw); the session's thread then leaves the
   * group and finalizes the handles. Settles when that is done — never, while corosync hangs
   * (the thread is abandoned to it): bound the wait. Idempotent.
   */
  close(): Promise<void>;
}

/** The running corosync's configuration (cmap); undefined where a key is absent. */
export interface CorosyncRunningConfig {
  nodes: { nodeid?: number; name?: string; ring0Addr?: string; ring1Addr?: string }[];
  /** This node's index in `nodes`. */
  localNodePos?: number;
  totem: { clusterName?: string; transport?: string; tokenMs?: number; consensusMs?: number; joinMs?: number; holdMs?: number; mergeMs?: number; downcheckMs?: number };
  quorum: { provider?: string; twoNode?: number; waitForAll?: number; deviceModel?: string };
}

/** corosync's cs_error_t values farmlb tells apart. */
export const CS_OK = 1;
export const CS_ERR_TRY_AGAIN = 6;

/** libbpf_print_level */
export const LibbpfLogLevel = { Warn: 0, Info: 1, Debug: 2 } as const;

export interface Native {
  openObject(path: string, opts?: { reusePinDir?: string }): Promise<NativeObject>;
  /** bpf_obj_get; the map's name is the pin's file name. readOnly opens with BPF_F_RDONLY. */
  openPinnedMap(path: string, opts?: { readOnly?: boolean }): NativeMap;
  xdpAttach(ifindex: number, progFd: number, opts: XdpAttachOptions): Promise<{ mode: XdpMode; fallbackReason?: string }>;
  /** Detach whatever mode is attached; with expectedProgId only that program. Resolves to whether something was detached. */
  xdpDetach(ifindex: number, opts?: { expectedProgId?: number }): Promise<boolean>;
  xdpQuery(ifindex: number): { progId: number; mode: XdpMode | 'none' };
  /**
   * Attaches a SCHED_CLS program as a clsact egress filter (bpf_tc_hook_create, EEXIST
   * accepted, then bpf_tc_attach with BPF_TC_F_REPLACE). Default handle/priority:
   * FARMLB_TC_HANDLE / FARMLB_TC_PRIORITY, so attaching again replaces in place.
   */
  tcAttachEgress(ifindex: number, progFd: number, opts?: TcFilterId): Promise<{ handle: number; priority: number }>;
  /** Removes the egress filter with that handle/priority; leaves the clsact qdisc. Resolves to whether one was removed. */
  tcDetachEgress(ifindex: number, opts?: TcFilterId): Promise<boolean>;
  /** The interface's MAC (SIOCGIFHWADDR, in this process's network namespace), aa:bb:cc:dd:ee:ff. */
  ifaceMac(name: string): string;
  ifindex(name: string): number;
  openRawSocket(ifname: string): RawSocket;
  /** A UDP socket bound to addr:port for heartbeats; datagrams over maxBytes come truncated. */
  openUdpBatchSocket(addr: string, port: number, maxBytes: number): UdpBatchSocket;
  numPossibleCpus(): number;
  /** CLOCK_MONOTONIC, the base of bpf_ktime_get_ns(). */
  monotonicNs(): bigint;
  /** One AF_UNIX datagram to path ("@name": abstract), for sd_notify (src/daemon/systemd.ts). */
  unixDatagramSend(path: string, message: string): void;
  /**
   * The TCP sockets of this network namespace through NETLINK_SOCK_DIAG, off the JS thread:
   * `states` a bitmask (1 << kernel TCP state), `locals` 20-byte records (family 4|6 at 0,
   * address at 4) the kernel filters on (none: every socket). Records: native/sockdiag.cc;
   * decoded by src/net/tcp-sockets.ts.
   */
  tcpDiag(states: number, locals: Buffer): Promise<{ records: Buffer; count: number; interrupted: boolean }>;
  /** libbpf's messages (level: LibbpfLogLevel), delivered on the JS thread; null stops them. */
  setLogCallback(cb: ((level: number, msg: string) => void) | null): void;
  /** Joins CPG group `group` of the corosync in this network namespace (src/membership/corosync/). */
  corosyncOpen(group: string, onEvents: (events: CorosyncEvent[]) => void): CorosyncSession;
  /** The running corosync's configuration (cmap), read on a thread of its own: unsettled while corosync does not answer. */
  corosyncConfig(): Promise<CorosyncRunningConfig>;
  /** The layouts of the object file at path, from its BTF. Errors: FARMLB_E_BPF_OPEN. */
  btfLayout(path: string): BtfLayout;
  /** The constants of bpf/farmlb_abi.h as the addon's compiler saw them (#defines: not in BTF). */
  abiConstants: Record<string, number>;
}

// ---- locating the repository and its build outputs ------------------------------------

let cachedRoot: string | undefined;

/** The directory holding binding.gyp and package.json (works from src/ and from dist/). */
export function repoRoot(): string {
  if (cachedRoot) return cachedRoot;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'binding.gyp')) && existsSync(join(dir, 'package.json'))) return (cachedRoot = dir);
    const up = dirname(dir);
    if (up === dir) return (cachedRoot = process.cwd());
    dir = up;
  }
}

/** <repo>/bpf/build/<name>.bpf.o, built by `make -C bpf`. */
export function bpfObjectPath(name = 'farmlb'): string {
  return join(repoRoot(), 'bpf', 'build', `${name}.bpf.o`);
}

// ---- error translation ----------------------------------------------------------------

interface RawError extends Error {
  code?: unknown;
  errno?: unknown;
  syscall?: unknown;
}

/** A native error with a registry code becomes a FarmlbError; anything else is returned as is. */
export function toFarmlbError(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof FarmlbError) return err;
  const raw = err as RawError;
  if (typeof raw.code !== 'string' || !(raw.code in ERRORS)) return err;
  const out = new FarmlbError(raw.code as ErrorCode, { detail: raw.message }, { cause: err });
  if (typeof raw.errno === 'number') out.errno = raw.errno;
  if (typeof raw.syscall === 'string') out.syscall = raw.syscall;
  return out;
}

function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw toFarmlbError(err);
  }
}

async function callAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toFarmlbError(err);
  }
}

// ---- wrappers -------------------------------------------------------------------------

class MapHandle implements NativeMap {
  readonly name: string;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly perCpu: boolean;
  readonly valueBufferSize: number;

  constructor(private readonly raw: NativeMap) {
    this.name = raw.name;
    this.type = raw.type;
    this.keySize = raw.keySize;
    this.valueSize = raw.valueSize;
    this.maxEntries = raw.maxEntries;
    this.perCpu = raw.perCpu;
    this.valueBufferSize = raw.valueBufferSize;
  }
  lookup(key: Buffer): Buffer | null {
    return call(() => this.raw.lookup(key));
  }
  update(key: Buffer, value: Buffer, flags?: number): void {
    call(() => this.raw.update(key, value, flags));
  }
  delete(key: Buffer): boolean {
    return call(() => this.raw.delete(key));
  }
  keys(): Buffer[] {
    return call(() => this.raw.keys());
  }
  updateBatch(keys: Buffer, values: Buffer, count: number): Promise<void> {
    return callAsync(() => this.raw.updateBatch(keys, values, count));
  }
  readAt(offset: number, length: number): Buffer {
    return call(() => this.raw.readAt(offset, length));
  }
  writeAt(offset: number, data: Buffer): void {
    call(() => this.raw.writeAt(offset, data));
  }
  storeU32Release(offset: number, value: number): void {
    call(() => this.raw.storeU32Release(offset, value));
  }
  storeU64(offset: number, value: bigint): void {
    call(() => this.raw.storeU64(offset, value));
  }
  close(): void {
    this.raw.close();
  }
}

class ObjectHandle implements NativeObject {
  readonly reusedMaps: readonly string[];
  readonly reuseMismatches: readonly string[];

  constructor(private readonly raw: NativeObject) {
    this.reusedMaps = raw.reusedMaps;
    this.reuseMismatches = raw.reuseMismatches;
  }
  map(name: string): NativeMap {
    return new MapHandle(call(() => this.raw.map(name)));
  }
  mapNames(): string[] {
    return call(() => this.raw.mapNames());
  }
  programFd(name: string): number {
    return call(() => this.raw.programFd(name));
  }
  programId(name: string): number {
    return call(() => this.raw.programId(name));
  }
  pinMaps(dir: string): void {
    call(() => this.raw.pinMaps(dir));
  }
  unpinMaps(dir: string): void {
    call(() => this.raw.unpinMaps(dir));
  }
  testRun(program: string, data: Buffer, repeat?: number, netns?: string): Promise<TestRunResult> {
    return callAsync(() => this.raw.testRun(program, data, repeat, netns));
  }
  testRunMany(program: string, frames: Buffer[], netns?: string): Promise<{ retval: number; dataOut: Buffer }[]> {
    return callAsync(() => this.raw.testRunMany(program, frames, netns));
  }
  close(): void {
    this.raw.close();
  }
}

function wrap(raw: Native): Native {
  return {
    openObject: (path, opts) => callAsync(async () => new ObjectHandle(await raw.openObject(path, opts))),
    openPinnedMap: (path, opts) => new MapHandle(call(() => raw.openPinnedMap(path, opts))),
    xdpAttach: (ifindex, progFd, opts) => callAsync(() => raw.xdpAttach(ifindex, progFd, opts)),
    xdpDetach: (ifindex, opts) => callAsync(() => raw.xdpDetach(ifindex, opts)),
    xdpQuery: (ifindex) => call(() => raw.xdpQuery(ifindex)),
    tcAttachEgress: (ifindex, progFd, opts) => callAsync(() => raw.tcAttachEgress(ifindex, progFd, opts)),
    tcDetachEgress: (ifindex, opts) => callAsync(() => raw.tcDetachEgress(ifindex, opts)),
    ifaceMac: (name) => call(() => raw.ifaceMac(name)),
    ifindex: (name) => call(() => raw.ifindex(name)),
    openRawSocket: (ifname) => {
      const sock = call(() => raw.openRawSocket(ifname));
      return {
        ifname: sock.ifname,
        ifindex: sock.ifindex,
        send: (frame) => call(() => sock.send(frame)),
        close: () => sock.close(),
      };
    },
    openUdpBatchSocket: (addr, port, maxBytes) => {
      const sock = call(() => raw.openUdpBatchSocket(addr, port, maxBytes));
      return {
        send: (bytes, to, toPort) => call(() => sock.send(bytes, to, toPort)),
        drain: () => call(() => sock.drain()),
        watch: (onBatch) => call(() => sock.watch(onBatch)),
        unwatch: () => sock.unwatch(),
        close: () => sock.close(),
      };
    },
    numPossibleCpus: () => call(() => raw.numPossibleCpus()),
    monotonicNs: () => raw.monotonicNs(),
    unixDatagramSend: (p, m) => call(() => raw.unixDatagramSend(p, m)),
    tcpDiag: (states, locals) => callAsync(() => raw.tcpDiag(states, locals)),
    setLogCallback: (cb) => call(() => raw.setLogCallback(cb)),
    corosyncOpen: (group, onEvents) => {
      const session = call(() => raw.corosyncOpen(group, onEvents));
      return {
        get localNodeId() { return session.localNodeId; },
        get group() { return session.group; },
        mcast: (data) => call(() => session.mcast(data)),
        votequorumInfo: () => callAsync(() => session.votequorumInfo()),
        close: () => session.close(),
      };
    },
    corosyncConfig: () => callAsync(() => raw.corosyncConfig()),
    btfLayout: (p) => call(() => raw.btfLayout(p)),
    abiConstants: raw.abiConstants,
  };
}

let cached: Native | undefined;

/** The addon, loaded once. Throws FARMLB_E_BPF_ADDON_MISSING if it is not built. */
export function loadNative(): Native {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  let raw: Native;
  try {
    // node-gyp-build: build/Release (a local build) first, else the prebuilt N-API binary
    // shipped in the package (prebuilds/<platform>-<arch>/, made by prebuildify).
    const load = require('node-gyp-build') as (dir: string) => unknown;
    raw = load(repoRoot()) as Native;
  } catch (err) {
    const detail = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new FarmlbError('FARMLB_E_BPF_ADDON_MISSING', { detail }, { cause: err });
  }
  cached = wrap(raw);
  return cached;
}

/** Hands libbpf's messages to pino: warnings as warn, the rest (load chatter) as debug. */
export function routeLibbpfLog(native: Native, log: Logger): void {
  native.setLogCallback((level, msg) => {
    const text = msg.trimEnd();
    if (level === LibbpfLogLevel.Warn) log.warn({ event: 'libbpf' }, text);
    else log.debug({ event: 'libbpf' }, text);
  });
}
