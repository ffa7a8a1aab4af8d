// Corosync client for the `<farmlb membership="corosync">` backend (src/membership/corosync/):
// CPG (one process group, agreed multicast), quorum and votequorum, and a one-shot read of
// the running configuration through cmap. Thin like the rest of the addon: it hands every
// callback to JS as an event and decides nothing.
//
// The corosync libraries are opened with dlopen on first use, not linked: a node running the
// built-in membership needs none of them installed.
#pragma once

#include <napi.h>

namespace farmlb {

// corosyncOpen(group, onEvents) → CorosyncSession. Connects to the corosync of this network
// namespace (its IPC sockets are abstract unix sockets), joins CPG group `group`, tracks
// quorum and votequorum, and polls the three descriptors on the libuv loop. Every dispatch
// hands its callbacks, in order, to onEvents(events) as one array. Calls that wait for
// corosync's answer run on the session's own thread (corosync.cc).
Napi::Value CorosyncOpen(const Napi::CallbackInfo& info);

// corosyncConfig() → Promise<{ nodes, totem, quorum }>: the running corosync's nodelist and
// timing (cmap), read on a thread of its own (cmap_get waits for corosync's answer).
Napi::Value CorosyncConfig(const Napi::CallbackInfo& info);

Napi::Function DefineCorosyncSession(Napi::Env env);

}  // namespace farmlb
