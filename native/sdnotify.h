// sd_notify(3) without libsystemd: one AF_UNIX datagram to $NOTIFY_SOCKET (systemd's
// Type=notify readiness, reload and watchdog protocol). Node has no Unix datagram sockets.
#pragma once

#include "common.h"

namespace farmlb {

// unixDatagramSend(path, message): sends one datagram; a path starting with '@' is an
// abstract socket (as systemd writes it). Throws FARMLB_E_BPF_ARG / FARMLB_E_RUN_NOTIFY.
Napi::Value UnixDatagramSend(const Napi::CallbackInfo& info);

}  // namespace farmlb
