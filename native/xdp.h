// XDP attach/detach/query over netlink (bpf_xdp_*): an attachment made this way stays
// after the process exits, which the kernel lease design relies on (DESIGN.md).
#pragma once

#include "common.h"

namespace farmlb {

Napi::Value XdpAttach(const Napi::CallbackInfo& info);
Napi::Value XdpDetach(const Napi::CallbackInfo& info);
Napi::Value XdpQuery(const Napi::CallbackInfo& info);
Napi::Value IfIndex(const Napi::CallbackInfo& info);

}  // namespace farmlb
