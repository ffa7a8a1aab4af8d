// Byte layouts of the arpreroute frames, against hex checked by hand field by field (and,
// for the neighbour advertisement's checksum, computed independently with Python's struct).

import { describe, expect, it } from 'vitest';
import { buildArpReply, buildUnsolicitedNa } from '../../src/net/announce.js';
import { inetChecksum, toHex } from '../../src/net/frames.js';

const hex = (s: string) => s.replace(/\s+/g, '');

describe('announce: unicast ARP reply', () => {
  it('says "VIP is at the announced MAC" to one client, from the interface MAC', () => {
    const frame = buildArpReply({
      vip: '10.78.0.100', announcedMac: '02:aa:bb:cc:dd:ee', linkMac: '02:aa:bb:cc:dd:ef',
      clientIp: '10.78.0.10', clientMac: '02:11:11:11:11:11',
    });
    expect(toHex(frame)).toBe(hex(`
      021111111111 02aabbccddef 0806
      0001 0800 06 04 0002
      02aabbccddee 0a4e0064
      021111111111 0a4e000a`));
  });

  it('uses the announced MAC as Ethernet source when no interface MAC is given', () => {
    const frame = buildArpReply({ vip: '10.0.0.1', announcedMac: '02:00:00:00:00:0a', clientIp: '10.0.0.2', clientMac: '02:00:00:00:00:0b' });
    expect(toHex(frame.slice(6, 12))).toBe('02000000000a');
    expect(frame.length).toBe(42);
  });
});

describe('announce: unsolicited neighbour advertisement', () => {
  const spec = { vip: 'fd78::100', announcedMac: '02:aa:bb:cc:dd:ee', clientIp: 'fd78::10', clientMac: '02:11:11:11:11:11' };

  it('is unicast to the client from the VIP, hop limit 255, Override set, with the target link-layer option', () => {
    expect(toHex(buildUnsolicitedNa(spec))).toBe(hex(`
      021111111111 02aabbccddee 86dd
      60000000 0020 3a ff
      fd780000000000000000000000000100
      fd780000000000000000000000000010
      88 00 bec3 20000000
      fd780000000000000000000000000100
      02 01 02aabbccddee`));
  });

  it('has an ICMPv6 checksum that verifies over the pseudo-header', () => {
    const frame = buildUnsolicitedNa({ ...spec, linkMac: '02:aa:bb:cc:dd:01' });
    const ip6 = frame.subarray(14);
    const icmp = ip6.subarray(40);
    const pseudo = new Uint8Array(40);
    pseudo.set(ip6.subarray(8, 40), 0);
    new DataView(pseudo.buffer).setUint32(32, icmp.length);
    pseudo[39] = 58;
    expect(inetChecksum(pseudo, icmp)).toBe(0);
  });

  it('clears Override on request and never sets Solicited or Router', () => {
    const frame = buildUnsolicitedNa({ ...spec, override: false });
    expect(frame[14 + 40 + 4]).toBe(0);
    expect(buildUnsolicitedNa(spec)[14 + 40 + 4]! & 0xc0).toBe(0);
  });
});
