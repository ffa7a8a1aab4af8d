// The tc egress filter (clsact, farmlb_egress) over netlink (bpf_tc_*), and the MAC of an
// interface as the kernel of this network namespace knows it. Like the XDP attachment, the
// filter stays after the process exits.
#pragma once

#include "common.h"

namespace farmlb {

Napi::Value TcAttachEgress(const Napi::CallbackInfo& info);
Napi::Value TcDetachEgress(const Napi::CallbackInfo& info);
Napi::Value IfaceMac(const Napi::CallbackInfo& info);

}  // namespace farmlb
