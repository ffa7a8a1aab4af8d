// The membership's heartbeat socket: UDP read in batches with kernel arrival times
// (udpbatch.cc; src/membership/transport.ts decides when to batch).
#pragma once

#include "common.h"

namespace farmlb {

// openUdpBatchSocket(addr, port, maxBytes) → { send(bytes, addr, port): errno|0,
// drain(): Datagram[], watch(cb), unwatch(), close() }; Datagram = { data, from, atNs
// (CLOCK_MONOTONIC, the kernel's arrival time), truncated (longer than maxBytes) }.
Napi::Value OpenUdpBatchSocket(const Napi::CallbackInfo& info);

void DefineUdpBatchSocket(Napi::Env env);

}  // namespace farmlb
