// farmlb membership (docs/membership.md): authenticated UDP heartbeats, views with epochs,
// one bucket table per view made by the leader, a kernel lease renewed only on two-way
// evidence. Public API:
//
//   new MembershipEngine(opts: MembershipEngineOptions)       — pure decisions, time passed in
//     opts = { module?, self, nodes (cluster.xml order), groups: { name, powers: Map }[]
//              (by Group.index; configured powers), configDigest, timing: { pulseMs,
//              slostCount, mlostCount, leaseMs }, splitBrain: 'serve'|'quorum',
//              incarnation: bigint (greater after every restart), startNs: bigint,
//              initialTable?: (string|null)[][], powerOverrides?: PowerOverrides,
//              handoverLimitMs?: number (0/absent = no connection-preserving handover) }
//     .tick(nowNs: bigint): EngineOutput                       — every pulseMs
//     .receive(hb: Heartbeat, nowNs: bigint): EngineOutput     — every authenticated heartbeat
//     .setLocalHealth(ok: boolean, cause: string): EngineOutput — false revokes the lease at once
//     .setHoldings({ epoch, counts: number[][], sampledAtNs }): void — connections held as previous owner
//     .setPower(node, power, group?): EngineOutput             — throws FARMLB_E_MEMBERSHIP_*
//     .clearPower(node, group?): EngineOutput
//     .status(nowNs?: bigint): MembershipStatus
//     .powerOverrides(): PowerOverrides                        — persist as powers.json
//   EngineOutput = { table?: ViewTable, leaseDeadlineNs?: bigint (0n = revoke),
//                    send?: Heartbeat, state: 'UP'|'WAIT', cause: string, events: MembershipEvent[] }
//     Apply in this order: install `table` (await), write `leaseDeadlineNs`, then transmit
//     `send`. `state` UP = eligible and serving its view's table.
//
//   encodeHeartbeat(hb, key): Buffer / decodeHeartbeat(buf, key): Heartbeat   (HMAC-SHA256)
//   createUdpTransport({ self, lans, port, key, log } | { bindAddrs, peers, port, key, log }): Promise<Transport>
//   createMemoryNetwork(seed?): MemoryNetwork                  — tests
//   Transport = { send(hb), onReceive(handler), stats(), close() }
//   loadKey(file, onWarning?): Promise<Buffer>                 — refuses a world-accessible key
//   DEFAULT_TIMING, timingFromTopology(farm.farm), leaseWaitNs(timing)
//   Membership (interface) / BuiltinMembership({ engine, transport, pulseMs, nowNs })
//   Simulator (test/helpers/membership-sim.ts): deterministic in-memory farm used by the tests and for timings

export { MembershipEngine } from './engine.js';
export { encodeHeartbeat, decodeHeartbeat, ReplayGuard, MAX_MESSAGE_BYTES } from './codec.js';
export { createUdpTransport, createMemoryNetwork, addressesFromLans } from './transport.js';
export type { Transport, TransportStats, UdpTransportOptions, MemoryNetwork, MemoryLink } from './transport.js';
export { loadKey, loadHeartbeatKey, MIN_KEY_BYTES } from './key.js';
export { DEFAULT_TIMING, timingFromTopology, leaseWaitNs, checkTiming } from './timing.js';
export { BuiltinMembership } from './membership.js';
export type { Membership, BuiltinMembershipOptions, MembershipCpu, MembershipDatagrams } from './membership.js';
export { effectivePowers, overridesNewer, NO_OVERRIDES, tableDigest, encodeBitmap, bitmapHas } from './table.js';
export type * from './types.js';
