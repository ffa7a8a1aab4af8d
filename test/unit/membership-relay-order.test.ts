// Relayed reports ordered by the heartbeat they describe (docs/membership.md, "Timing"): a
// relayer's heard entry of a peer and its acknowledgement of that peer come from the same
// heartbeat of the peer, so the acknowledgement's seq orders relays among themselves and
// against the peer's own last heartbeat to us, where arrival − whole-millisecond age cannot.

import { describe, expect, it } from 'vitest';
import { EngineContext, MS } from '../../src/membership/engine/context.js';
import { ackOf, PeerTable, type Peer } from '../../src/membership/engine/peers.js';
import { DEFAULT_TIMING } from '../../src/membership/timing.js';
import type { AckEntry, HeardEntry, Heartbeat } from '../../src/membership/types.js';

const nodes = ['n1', 'n2', 'n3', 'n4'];

function table(): PeerTable {
  return new PeerTable(new EngineContext({
    self: 'n1', nodes, groups: [{ name: 'g', powers: new Map(nodes.map((n) => [n, 1])) }], configDigest: 'c',
    timing: DEFAULT_TIMING, splitBrain: 'serve', incarnation: 1n, startNs: 0n,
  }));
}

/** The peer's own heartbeat, received directly at `atNs`, on table `digest`. */
function direct(p: Peer, seq: number, atNs: bigint, digest: string, incarnation = 7n): void {
  p.hb = { incarnation, seq, tableDigest: digest, epoch: 3 } as Heartbeat;
  p.lastSeq = seq;
  p.lastRecvNs = atNs;
}

const heard = (node: string, ageMs: number, tableDigest: string): HeardEntry => ({ node, ageMs, state: 'UP', mutual: true, epoch: 2, tableDigest });
const ack = (node: string, seq: number, incarnation = 7n): AckEntry => ({ node, incarnation, seq });

describe('membership: relayed reports ordered by seq', () => {
  it('a relay of an earlier heartbeat that looks a millisecond newer is not newer than the peer\'s own later one', () => {
    const peers = table();
    const n2 = peers.get('n2')!;
    direct(n2, 41, 1000n * MS, 'new');
    // n3 heard n2's heartbeat 40 (old table) 0.4 ms before n2 sent 41; its relay arrives 1 ms
    // later with age 0 (whole ms): arrival − age = 1001 ms, after our 1000 ms.
    peers.noteIndirect(heard('n2', 0, 'old'), 1001n * MS, ack('n2', 40));
    expect(n2.indirectNs).toBe(1001n * MS);
    expect(peers.relayNewer(n2)).toBe(false);
    // The same relay without the acknowledgement (withheld): ordered by time, newer as before.
    const m = table();
    const p = m.get('n2')!;
    direct(p, 41, 1000n * MS, 'new');
    m.noteIndirect(heard('n2', 0, 'old'), 1001n * MS, undefined);
    expect(m.relayNewer(p)).toBe(true);
  });

  it('a relay of a later heartbeat is newer, and its table replaces an earlier heartbeat\'s even when its arrival − age is earlier', () => {
    const peers = table();
    const n2 = peers.get('n2')!;
    direct(n2, 41, 1000n * MS, 'new');
    peers.noteIndirect(heard('n2', 0, 'old'), 1003n * MS, ack('n2', 40));
    // n4 heard heartbeat 42 (another table again); its relay's arrival − age is earlier.
    peers.noteIndirect(heard('n2', 1, 'newer'), 1002n * MS, ack('n2', 42));
    expect(n2.indirectDigest).toBe('newer');
    expect(n2.indirectSeq).toEqual({ incarnation: 7n, seq: 42 });
    // The evidence of contact stays the latest arrival − age.
    expect(n2.indirectNs).toBe(1003n * MS);
    expect(peers.relayNewer(n2)).toBe(true);
    // An earlier heartbeat's relay arriving later changes neither.
    peers.noteIndirect(heard('n2', 0, 'old'), 1010n * MS, ack('n2', 39));
    expect(n2.indirectDigest).toBe('newer');
    expect(n2.indirectNs).toBe(1010n * MS);
  });

  it('another incarnation\'s seq orders nothing: arrival − age decides', () => {
    const peers = table();
    const n2 = peers.get('n2')!;
    direct(n2, 5, 1000n * MS, 'new', 8n);
    peers.noteIndirect(heard('n2', 0, 'old'), 1001n * MS, ack('n2', 90, 7n));
    expect(peers.relayNewer(n2)).toBe(true);
    peers.noteIndirect(heard('n2', 5, 'other'), 1002n * MS, ack('n2', 2, 8n));
    // Stored seq of incarnation 7, this one of 8: by time, 997 ms is not after 1001 ms.
    expect(n2.indirectDigest).toBe('old');
  });

  it('ackOf takes the acknowledgement listed with the heard entry, else the first for that node, else none', () => {
    const hb = { heard: [heard('n2', 1, 'a'), heard('n3', 1, 'b'), heard('n4', 1, 'c')], acks: [ack('n2', 1), ack('n4', 3), ack('n3', 9, 2n)] } as Heartbeat;
    expect(ackOf(hb, 0)).toEqual(ack('n2', 1));
    // n3's own acknowledgement withheld: n4's moved up, and a candidate's of n3 comes last.
    expect(ackOf(hb, 1)).toEqual(ack('n3', 9, 2n));
    expect(ackOf(hb, 2)).toEqual(ack('n4', 3));
    expect(ackOf({ heard: [heard('n2', 1, 'a')], acks: [] } as unknown as Heartbeat, 0)).toBeUndefined();
  });
});
