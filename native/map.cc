#include "map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <atomic>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
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
                         InstanceMethod<&NativeMap::ReadAt>("readAt"),
                         InstanceMethod<&NativeMap::WriteAt>("writeAt"),
                         InstanceMethod<&NativeMap::StoreU32Release>("storeU32Release"),
                         InstanceMethod<&NativeMap::StoreU64>("storeU64"),
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
  mapFlags_ = init->info.map_flags;
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
  Unmap();
  fd_.reset();
  return info.Env().Undefined();
}

NativeMap::~NativeMap() { Unmap(); }

void NativeMap::Unmap() {
  if (mapped_ != nullptr) munmap(mapped_, mappedLen_);
  mapped_ = nullptr;
  mappedLen_ = 0;
}

uint8_t* NativeMap::Mapped(Napi::Env env, size_t offset, size_t len, bool write, const char* what) {
  int fd = FdOrThrow(env, what);
  if (type_ != BPF_MAP_TYPE_ARRAY || !(mapFlags_ & BPF_F_MMAPABLE))
    Throw(env, "FARMLB_E_BPF_ARG", EINVAL, what, name_ + " is not a BPF_F_MMAPABLE array");
  // Array values are laid out back to back, each rounded up to 8 bytes.
  size_t total = ((size_t(valueSize_) + 7) / 8 * 8) * maxEntries_;
  if (offset > total || len > total - offset)
    Throw(env, "FARMLB_E_BPF_ARG", ERANGE, what,
          name_ + ": bytes " + std::to_string(offset) + ".." + std::to_string(offset + len) + " are outside its " +
              std::to_string(total));
  if (mapped_ == nullptr && !unmappable_) {
    // A read-only fd (the CLI opens pins with BPF_F_RDONLY) cannot be mapped at all: the
    // kernel drops VM_SHARED from a shared mapping of a file not open for writing, and BPF
    // refuses a mapping without it. Such a map is read with bpf_map_lookup_elem (ReadAt).
    void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED && (errno == EPERM || errno == EACCES)) {
      unmappable_ = true;
    } else if (p == MAP_FAILED) {
      Throw(env, "FARMLB_E_BPF_MAP", errno, "mmap", name_);
    } else {
      mapped_ = static_cast<uint8_t*>(p);
      mappedLen_ = total;
    }
  }
  if (mapped_ == nullptr && write) Throw(env, "FARMLB_E_BPF_MAP", EPERM, what, name_ + " is open read-only");
  return mapped_ == nullptr ? nullptr : mapped_ + offset;
}

Napi::Value NativeMap::ReadAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t offset = ArgU32(info, 0, "offset");
  size_t len = ArgU32(info, 1, "length");
  const uint8_t* p = Mapped(env, offset, len, false, "readAt");
  if (p != nullptr) return Napi::Buffer<uint8_t>::Copy(env, p, len);
  // Read-only fd: the element holding the range, copied out by the kernel.
  size_t elem = (size_t(valueSize_) + 7) / 8 * 8;
  uint32_t index = uint32_t(offset / elem);
  size_t within = offset % elem;
  if (within + len > valueSize_)
    Throw(env, "FARMLB_E_BPF_ARG", ERANGE, "readAt", name_ + ": a read-only map is read one element at a time");
  std::vector<uint8_t> value(valueSize_);
  int err = bpf_map_lookup_elem(fd_.get(), &index, value.data());
  if (err != 0) Throw(env, "FARMLB_E_BPF_MAP", err, "bpf_map_lookup_elem", name_);
  return Napi::Buffer<uint8_t>::Copy(env, value.data() + within, len);
}

Napi::Value NativeMap::WriteAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t offset = ArgU32(info, 0, "offset");
  Napi::Buffer<uint8_t> data = ArgBuffer(info, 1, "data");
  uint8_t* p = Mapped(env, offset, data.Length(), true, "writeAt");
  // Plain stores: what is written here is published by a later StoreU32Release.
  std::memcpy(p, data.Data(), data.Length());
  return env.Undefined();
}

// One 4-byte store that publishes every earlier write of this thread: the full fence orders
// the memcpy stores of WriteAt (string stores on x86 may be reordered among themselves) before
// it, and the release store is one instruction the program's 4-byte load sees whole.
Napi::Value NativeMap::StoreU32Release(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t offset = ArgU32(info, 0, "offset");
  uint32_t value = ArgU32(info, 1, "value");
  if (offset % 4 != 0) Throw(env, "FARMLB_E_BPF_ARG", EINVAL, "storeU32Release", name_ + ": offset not 4-aligned");
  auto* p = reinterpret_cast<uint32_t*>(Mapped(env, offset, 4, true, "storeU32Release"));
  std::atomic_thread_fence(std::memory_order_seq_cst);
  __atomic_store_n(p, value, __ATOMIC_RELEASE);
  return env.Undefined();
}

// One aligned 8-byte store (the lease deadline): the program's 8-byte load sees the old
// value or the new one, never half of each.
Napi::Value NativeMap::StoreU64(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t offset = ArgU32(info, 0, "offset");
  if (info.Length() < 2 || !info[1].IsBigInt()) Throw(env, "FARMLB_E_BPF_ARG", EINVAL, "storeU64", "value must be a bigint");
  bool lossless = false;
  uint64_t value = info[1].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) Throw(env, "FARMLB_E_BPF_ARG", ERANGE, "storeU64", "value does not fit 64 bits");
  if (offset % 8 != 0) Throw(env, "FARMLB_E_BPF_ARG", EINVAL, "storeU64", name_ + ": offset not 8-aligned");
  auto* p = reinterpret_cast<uint64_t*>(Mapped(env, offset, 8, true, "storeU64"));
  __atomic_store_n(p, value, __ATOMIC_RELEASE);
  return env.Undefined();
}

}  // namespace farmlb
