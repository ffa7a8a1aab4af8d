#pragma once

#include <napi.h>

namespace farmlb {

Napi::Object AbiLayout(Napi::Env env);
Napi::Object AbiConstants(Napi::Env env);

}  // namespace farmlb
