// NativeObject: one loaded bpf_object (programs and maps), plus openObject(), the
// promise-returning open → reuse pinned maps → load sequence.
#pragma once

#include "common.h"

struct bpf_object;

namespace farmlb {

class NativeObject : public Napi::ObjectWrap<NativeObject> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit NativeObject(const Napi::CallbackInfo& info);
  ~NativeObject() override;

 private:
  Napi::Value Map(const Napi::CallbackInfo& info);
  Napi::Value MapNames(const Napi::CallbackInfo& info);
  Napi::Value ProgramFd(const Napi::CallbackInfo& info);
  Napi::Value ProgramId(const Napi::CallbackInfo& info);
  Napi::Value PinMaps(const Napi::CallbackInfo& info);
  Napi::Value UnpinMaps(const Napi::CallbackInfo& info);
  Napi::Value TestRun(const Napi::CallbackInfo& info);
  Napi::Value TestRunMany(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  struct bpf_object* ObjOrThrow(Napi::Env env, const char* syscall) const;
  int ProgFdOrThrow(Napi::Env env, const std::string& name) const;

  struct bpf_object* obj_ = nullptr;
  std::string path_;
};

// openObject(path, { reusePinDir? }) → Promise<NativeObject>
Napi::Value OpenObject(const Napi::CallbackInfo& info);

}  // namespace farmlb
