// NativeMap: one BPF map fd owned by a JS object. Maps of a loaded object are dup()ed,
// so a NativeMap stays valid after its NativeObject is closed and close() on either
// side never pulls an fd from under the other.
#pragma once

#include "common.h"

#include <linux/bpf.h>

#include <string>

namespace farmlb {

bool IsPerCpuMapType(uint32_t type);
// libbpf_num_possible_cpus(), or a negative errno.
int PossibleCpus();
// bpf_obj_get_info_by_fd for a map; 0 or a negative errno.
int ReadMapInfo(int fd, struct bpf_map_info* info);

class NativeMap : public Napi::ObjectWrap<NativeMap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Takes ownership of fd; `name` is the full map name (the kernel keeps only 15 chars).
  static Napi::Object Create(Napi::Env env, UniqueFd fd, const std::string& name);

  explicit NativeMap(const Napi::CallbackInfo& info);
  ~NativeMap() override;

 private:
  Napi::Value Lookup(const Napi::CallbackInfo& info);
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value Delete(const Napi::CallbackInfo& info);
  Napi::Value Keys(const Napi::CallbackInfo& info);
  Napi::Value UpdateBatch(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  // Direct access to a BPF_F_MMAPABLE array through a shared mapping (the hot tables,
  // docs/datapath.md §13): copies in and out, and the two single stores the ABI promises.
  Napi::Value ReadAt(const Napi::CallbackInfo& info);
  Napi::Value WriteAt(const Napi::CallbackInfo& info);
  Napi::Value StoreU32Release(const Napi::CallbackInfo& info);
  Napi::Value StoreU64(const Napi::CallbackInfo& info);

  // The mapping (made on first use), or nullptr for a read-only fd, which cannot be mapped;
  // throws when the map is not mmapable, [offset, offset + len) is outside its values, or a
  // write is asked of a read-only fd.
  uint8_t* Mapped(Napi::Env env, size_t offset, size_t len, bool write, const char* what);
  void Unmap();

  int FdOrThrow(Napi::Env env, const char* syscall) const;
  void CheckKey(Napi::Env env, const Napi::Buffer<uint8_t>& key, const char* syscall) const;

  UniqueFd fd_;
  std::string name_;
  uint8_t* mapped_ = nullptr;
  size_t mappedLen_ = 0;
  bool unmappable_ = false;  // a read-only fd: mmap() refused, reads go through lookups
  uint32_t mapFlags_ = 0;
  uint32_t type_ = 0;
  uint32_t keySize_ = 0;
  uint32_t valueSize_ = 0;
  uint32_t maxEntries_ = 0;
  // Bytes of one value as user space sees it: per-CPU maps hold
  // roundup(value_size, 8) bytes for every possible CPU.
  size_t valueBufSize_ = 0;
};

}  // namespace farmlb
