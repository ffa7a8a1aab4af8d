// farmlb_native: node-addon-api binding over the system libbpf. Entry point; the pieces
// live in map.cc (NativeMap), object.cc (NativeObject, openObject), xdp.cc (attach),
// abi.cc (layouts from BTF, ABI constants), corosync.cc (the Corosync membership's client) and common.cc (errors, libbpf log routing, workers).
#include "abi.h"
#include "common.h"
#include "corosync.h"
#include "map.h"
#include "object.h"
#include "rawsock.h"
#include "sdnotify.h"
#include "sockdiag.h"
#include "tc.h"
#include "udpbatch.h"
#include "xdp.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>
#include <ctime>

namespace farmlb {

namespace {

Napi::Value OpenPinnedMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "path");
  bool readOnly = false;
  if (info.Length() > 1 && info[1].IsObject()) readOnly = info[1].As<Napi::Object>().Get("readOnly").ToBoolean();
  struct bpf_obj_get_opts opts;
  std::memset(&opts, 0, sizeof opts);
  opts.sz = sizeof opts;
  opts.file_flags = readOnly ? BPF_F_RDONLY : 0;
  UniqueFd fd(bpf_obj_get_opts(path.c_str(), &opts));
  if (!fd.valid()) Throw(env, "FARMLB_E_BPF_PIN", errno, "bpf_obj_get", path);
  // The kernel keeps 15 characters of a map name; the pin's file name is the full one.
  size_t slash = path.find_last_of('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  return NativeMap::Create(env, std::move(fd), name);
}

Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  int cpus = PossibleCpus();
  if (cpus < 0) Throw(info.Env(), "FARMLB_E_BPF_MAP", cpus, "libbpf_num_possible_cpus", "");
  return Napi::Number::New(info.Env(), cpus);
}

Napi::Value MonotonicNs(const Napi::CallbackInfo& info) {
  // Same clock as bpf_ktime_get_ns(): a lease deadline computed here is compared in XDP.
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(ts.tv_sec) * UINT64_C(1000000000) + static_cast<uint64_t>(ts.tv_nsec));
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InstallLibbpfPrint();
  auto* data = new AddonData();
  data->mapCtor = Napi::Persistent(NativeMap::Define(env));
  data->objectCtor = Napi::Persistent(NativeObject::Define(env));
  env.SetInstanceData<AddonData>(data);
  DefineCorosyncSession(env);
  DefineUdpBatchSocket(env);

  exports.Set("openObject", Napi::Function::New<OpenObject>(env, "openObject"));
  exports.Set("openPinnedMap", Napi::Function::New<OpenPinnedMap>(env, "openPinnedMap"));
  exports.Set("xdpAttach", Napi::Function::New<XdpAttach>(env, "xdpAttach"));
  exports.Set("xdpDetach", Napi::Function::New<XdpDetach>(env, "xdpDetach"));
  exports.Set("xdpQuery", Napi::Function::New<XdpQuery>(env, "xdpQuery"));
  exports.Set("tcAttachEgress", Napi::Function::New<TcAttachEgress>(env, "tcAttachEgress"));
  exports.Set("tcDetachEgress", Napi::Function::New<TcDetachEgress>(env, "tcDetachEgress"));
  exports.Set("ifaceMac", Napi::Function::New<IfaceMac>(env, "ifaceMac"));
  exports.Set("openRawSocket", Napi::Function::New<OpenRawSocket>(env, "openRawSocket"));
  exports.Set("openUdpBatchSocket", Napi::Function::New<OpenUdpBatchSocket>(env, "openUdpBatchSocket"));
  exports.Set("ifindex", Napi::Function::New<IfIndex>(env, "ifindex"));
  exports.Set("numPossibleCpus", Napi::Function::New<NumPossibleCpus>(env, "numPossibleCpus"));
  exports.Set("unixDatagramSend", Napi::Function::New<UnixDatagramSend>(env, "unixDatagramSend"));
  exports.Set("tcpDiag", Napi::Function::New<TcpDiag>(env, "tcpDiag"));
  exports.Set("monotonicNs", Napi::Function::New<MonotonicNs>(env, "monotonicNs"));
  exports.Set("setLogCallback", Napi::Function::New<SetLogCallback>(env, "setLogCallback"));
  exports.Set("corosyncOpen", Napi::Function::New<CorosyncOpen>(env, "corosyncOpen"));
  exports.Set("corosyncConfig", Napi::Function::New<CorosyncConfig>(env, "corosyncConfig"));
  exports.Set("btfLayout", Napi::Function::New<BtfLayout>(env, "btfLayout"));
  exports.Set("abiConstants", AbiConstants(env));
  return exports;
}

}  // namespace farmlb

static Napi::Object InitFarmlbNative(Napi::Env env, Napi::Object exports) { return farmlb::Init(env, exports); }

NODE_API_MODULE(farmlb_native, InitFarmlbNative)
