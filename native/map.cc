#include "map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>
#include <fcntl.h>
#include <vector>

namespace farmlb {

#ifndef ENOTSUPP
#define ENOTSUPP 524  // kernel-internal "operation not supported", leaks out of the bpf syscall
#endif

bool IsPerCpuMapType(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

int PossibleCpus() {
  static int cpus = libbpf_num_possible_cpus();
  return cpus;
}

int ReadMapInfo(int fd, struct bpf_map_info* info) {
  std::memset(info, 0, sizeof *info);
  __u32 len = sizeof *info;
  return bpf_obj_get_info_by_fd(fd, info, &len);
}

namespace {

struct MapInit {
  UniqueFd fd;
  std::string name;
  struct bpf_map_info info;
};

// Updates `count` elements with bpf_map_update_batch, or one by one where the map type has
// no batch operation. Runs off the JS thread on its own dup() of the map fd, so a close()
// racing with it cannot hand the fd number to someone else mid-batch.
class UpdateBatchWorker : public PromiseWorker {
 public:
  UpdateBatchWorker(Napi::Env env, UniqueFd fd, std::string name, const uint8_t* keys, size_t keysLen,
                    const uint8_t* values, size_t valuesLen, uint32_t count, uint32_t keySize,
                    size_t valueBufSize)
      : PromiseWorker(env, "farmlb:updateBatch"),
        fd_(std::move(fd)),
        name_(std::move(name)),
        keys_(keys, keys + keysLen),
        values_(values, values + valuesLen),
        count_(count),
        keySize_(keySize),
        valueBufSize_(valueBufSize) {}

 protected:
  void Run() override {
    if (count_ == 0) return;
    LogCapture capture;
    struct bpf_map_batch_opts opts;
    std::memset(&opts, 0, sizeof opts);
    opts.sz = sizeof opts;
    __u32 done = count_;
    int err = bpf_map_update_batch(fd_.get(), keys_.data(), values_.data(), &done, &opts);
    if (err == 0) return;
    if (err != -EINVAL && err != -ENOTSUPP && err != -EOPNOTSUPP) {
      failure_ = MakeFailure("FARMLB_E_BPF_MAP", err, "bpf_map_update_batch", name_, capture.Take());
      return;
    }
    // No batch support for this map type (or a bad element, which the loop then names).
    // Every update is BPF_ANY, so redoing the elements the batch already wrote is harmless.
    for (uint32_t i = 0; i < count_; i++) {
      err = bpf_map_update_elem(fd_.get(), keys_.data() + size_t(i) * keySize_,
                                values_.data() + size_t(i) * valueBufSize_, BPF_ANY);
      if (err != 0) {
        failure_ = MakeFailure("FARMLB_E_BPF_MAP", err, "bpf_map_update_elem",
                               name_ + " element " + std::to_string(i), capture.Take());
        return;
      }
    }
  }

  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  UniqueFd fd_;
  std::string name_;
  std::vector<uint8_t> keys_;
  std::vector<uint8_t> values_;
  uint32_t count_;
  uint32_t keySize_;
  size_t valueBufSize_;
};

}  // namespace

Napi::Function NativeMap::Define(Napi::Env env) {
  return DefineClass(env, "NativeMap",
                     {
                         InstanceMethod<&NativeMap::Lookup>("lookup"),
                         InstanceMethod<&NativeMap::Update>("update"),
                         InstanceMethod<&NativeMap::Delete>("delete"),
                         InstanceMethod<&NativeMap::Keys>("keys"),
                         InstanceMethod<&NativeMap::UpdateBatch>("updateBatch"),
                         InstanceMethod<&NativeMap::Close>("close"),
                     });
}

Napi::Object NativeMap::Create(Napi::Env env, UniqueFd fd, const std::string& name) {
  MapInit init;
  init.name = name;
  int err = ReadMapInfo(fd.get(), &init.info);
  if (err != 0) Throw(env, "FARMLB_E_BPF_MAP", err, "bpf_obj_get_info_by_fd", name);
  init.fd = std::move(fd);
  return Data(env).mapCtor.New({Napi::External<MapInit>::New(env, &init)});
}

NativeMap::NativeMap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeMap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsExternal())
    Throw(env, "FARMLB_E_BPF_ARG", EINVAL, "NativeMap", "maps come from openObject().map() or openPinnedMap()");
  MapInit* init = info[0].As<Napi::External<MapInit>>().Data();
  name_ = init->name;
  type_ = init->info.type;
  keySize_ = init->info.key_size;
  valueSize_ = init->info.value_size;
  maxEntries_ = init->info.max_entries;
  bool perCpu = IsPerCpuMapType(type_);
  if (perCpu) {
    int cpus = PossibleCpus();
    if (cpus < 0) Throw(env, "FARMLB_E_BPF_MAP", cpus, "libbpf_num_possible_cpus", name_);
    valueBufSize_ = ((size_t(valueSize_) + 7) / 8 * 8) * size_t(cpus);
  } else {
    valueBufSize_ = valueSize_;
  }
  fd_ = std::move(init->fd);

  Napi::Object self = info.This().As<Napi::Object>();
  auto ro = static_cast<napi_property_attributes>(napi_enumerable);
  self.DefineProperties({
      Napi::PropertyDescriptor::Value("name", Napi::String::New(env, name_), ro),
      Napi::PropertyDescriptor::Value("type", Napi::Number::New(env, type_), ro),
      Napi::PropertyDescriptor::Value("keySize", Napi::Number::New(env, keySize_), ro),
      Napi::PropertyDescriptor::Value("valueSize", Napi::Number::New(env, valueSize_), ro),
      Napi::PropertyDescriptor::Value("maxEntries", Napi::Number::New(env, maxEntries_), ro),
      Napi::PropertyDescriptor::Value("perCpu", Napi::Boolean::New(env, perCpu), ro),
      Napi::PropertyDescriptor::Value("valueBufferSize", Napi::Number::New(env, double(valueBufSize_)), ro),
  });
}

int NativeMap::FdOrThrow(Napi::Env env, const char* syscall) const {
  if (!fd_.valid()) Throw(env, "FARMLB_E_BPF_CLOSED", EBADF, syscall, "map " + name_ + " is closed");
  return fd_.get();
}

void NativeMap::CheckKey(Napi::Env env, const Napi::Buffer<uint8_t>& key, const char* syscall) const {
  if (key.Length() != keySize_)
    Throw(env, "FARMLB_E_BPF_ARG", EINVAL, syscall,
          name_ + ": key is " + std::to_string(key.Length()) + " bytes, the map's key is " +
              std::to_string(keySize_));
}

Napi::Value NativeMap::Lookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdOrThrow(env, "bpf_map_lookup_elem");
  Napi::Buffer<uint8_t> key = ArgBuffer(info, 0, "key");
  CheckKey(env, key, "bpf_map_lookup_elem");
  std::vector<uint8_t> value(valueBufSize_);
  int err = bpf_map_lookup_elem(fd, key.Data(), value.data());
  if (err == -ENOENT) return env.Null();
  if (err != 0) Throw(env, "FARMLB_E_BPF_MAP", err, "bpf_map_lookup_elem", name_);
  return Napi::Buffer<uint8_t>::Copy(env, value.data(), value.size());
}

Napi::Value NativeMap::Update(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdOrThrow(env, "bpf_map_update_elem");
  Napi::Buffer<uint8_t> key = ArgBuffer(info, 0, "key");
  Napi::Buffer<uint8_t> value = ArgBuffer(info, 1, "value");
  uint32_t flags = info.Length() > 2 && !info[2].IsUndefined() ? ArgU32(info, 2, "flags") : uint32_t(BPF_ANY);
  CheckKey(env, key, "bpf_map_update_elem");
  if (value.Length() != valueBufSize_)
    Throw(env, "FARMLB_E_BPF_ARG", EINVAL, "bpf_map_update_elem",
          name_ + ": value is " + std::to_string(value.Length()) + " bytes, the map needs " +
              std::to_string(valueBufSize_));
  int err = bpf_map_update_elem(fd, key.Data(), value.Data(), flags);
  if (err != 0) Throw(env, "FARMLB_E_BPF_MAP", err, "bpf_map_update_elem", name_);
  return env.Undefined();
}

Napi::Value NativeMap::Delete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdOrThrow(env, "bpf_map_delete_elem");
  Napi::Buffer<uint8_t> key = ArgBuffer(info, 0, "key");
  CheckKey(env, key, "bpf_map_delete_elem");
  int err = bpf_map_delete_elem(fd, key.Data());
  if (err == -ENOENT) return Napi::Boolean::New(env, false);
  if (err != 0) Throw(env, "FARMLB_E_BPF_MAP", err, "bpf_map_delete_elem", name_);
  return Napi::Boolean::New(env, true);
}

Napi::Value NativeMap::Keys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdOrThrow(env, "bpf_map_get_next_key");
  std::vector<uint8_t> cur(keySize_), next(keySize_);
  Napi::Array keys = Napi::Array::New(env);
  const void* prev = nullptr;
  // Bounded: a hash map being modified meanwhile can restart the walk from its start.
  for (uint32_t i = 0; i < maxEntries_; i++) {
    int err = bpf_map_get_next_key(fd, prev, next.data());
    if (err == -ENOENT) break;
    if (err != 0) Throw(env, "FARMLB_E_BPF_MAP", err, "bpf_map_get_next_key", name_);
    keys.Set(i, Napi::Buffer<uint8_t>::Copy(env, next.data(), next.size()));
    cur.swap(next);
    prev = cur.data();
  }
  return keys;
}

Napi::Value NativeMap::UpdateBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdOrThrow(env, "bpf_map_update_batch");
  Napi::Buffer<uint8_t> keys = ArgBuffer(info, 0, "keys");
  Napi::Buffer<uint8_t> values = ArgBuffer(info, 1, "values");
  uint32_t count = ArgU32(info, 2, "count");
  if (keys.Length() != size_t(count) * keySize_ || values.Length() != size_t(count) * valueBufSize_)
    Throw(env, "FARMLB_E_BPF_ARG", EINVAL, "bpf_map_update_batch",
          name_ + ": " + std::to_string(count) + " elements need " + std::to_string(size_t(count) * keySize_) +
              " key bytes and " + std::to_string(size_t(count) * valueBufSize_) + " value bytes, got " +
              std::to_string(keys.Length()) + " and " + std::to_string(values.Length()));
  UniqueFd dup(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!dup.valid()) Throw(env, "FARMLB_E_BPF_MAP", errno, "fcntl(F_DUPFD_CLOEXEC)", name_);
  auto* worker = new UpdateBatchWorker(env, std::move(dup), name_, keys.Data(), keys.Length(), values.Data(),
                                       values.Length(), count, keySize_, valueBufSize_);
  return worker->QueuePromise();
}

Napi::Value NativeMap::Close(const Napi::CallbackInfo& info) {
  fd_.reset();
  return info.Env().Undefined();
}

}  // namespace farmlb
