// Raw AF_PACKET sender: whole Ethernet frames out of one interface, for the unicast ARP
// replies and unsolicited neighbour advertisements of arpreroute (src/net/announce.ts
// builds them). Needs CAP_NET_RAW.
#pragma once

#include "common.h"

namespace farmlb {

// openRawSocket(ifname) → { send(frame: Buffer): void, close(): void }
Napi::Value OpenRawSocket(const Napi::CallbackInfo& info);

}  // namespace farmlb
