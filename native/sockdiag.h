// The TCP sockets of this network namespace through NETLINK_SOCK_DIAG (inet_diag), filtered
// in the kernel to the given local addresses: what src/net/tcp-sockets.ts reads for the
// handover's connection count instead of parsing /proc/net/tcp{,6}, whose cost grows with
// every socket of the host and which the kernel documents as legacy.
#pragma once

#include "common.h"

namespace farmlb {

// Size of one socket record in tcpDiag's result (layout in sockdiag.cc, decoded by
// src/net/tcp-sockets.ts) and of one local address in its argument.
constexpr size_t kDiagRecordBytes = 40;
constexpr size_t kDiagLocalBytes = 20;

// tcpDiag(states: number, locals: Buffer) → Promise<{ records: Buffer, count: number,
// interrupted: boolean }>. `states` is a bitmask of kernel TCP states (1 << state);
// `locals` holds records of kDiagLocalBytes (family 4 or 6 in byte 0, the address, wire
// order, at byte 4); none = every socket. Runs off the JS thread. Throws/rejects
// FARMLB_E_BPF_ARG, FARMLB_E_NET_SOCK_DIAG.
Napi::Value TcpDiag(const Napi::CallbackInfo& info);

}  // namespace farmlb
