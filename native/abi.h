#pragma once

#include <napi.h>

namespace farmlb {

// btfLayout(path): { structs, maps, globals } from the BTF of a BPF object file; throws
// FARMLB_E_BPF_OPEN when the file has no readable BTF.
Napi::Value BtfLayout(const Napi::CallbackInfo& info);
Napi::Object AbiConstants(Napi::Env env);

}  // namespace farmlb
