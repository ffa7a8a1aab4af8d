#include "object.h"

#include "map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace farmlb {

namespace {

// The name a map is pinned under and known by in JS: its own for the maps of .maps; for the
// program's hot tables (global data of section .data.hot, a map libbpf names ".data.hot",
// bpf/farmlb_maps.h) "farmlb_hot", since bpffs refuses names with a '.'; "" for libbpf's
// other internal maps (.rodata), which hold nothing farmlb reads or pins.
constexpr const char* kHotSection = ".data.hot";
constexpr const char* kHotPinName = "farmlb_hot";

std::string PinName(const struct bpf_map* map) {
  if (!bpf_map__is_internal(map)) return bpf_map__name(map);
  if (std::strcmp(bpf_map__name(map), kHotSection) == 0) return kHotPinName;
  return "";
}

struct ObjectInit {
  struct bpf_object* obj;
  std::string path;
};

// mkdir -p; 0 or a negative errno. An instance that stops removes the shared pin root
// when it is empty (unpinDir in src/dataplane/xdp.ts): if that happens between two of the
// mkdirs here (ENOENT), start over, a bounded number of times.
int MkdirP(const std::string& dir) {
  if (dir.empty()) return -EINVAL;
  for (int attempt = 0; attempt < 3; attempt++) {
    std::string partial;
    size_t pos = 0;
    int err = 0;
    while (pos != std::string::npos && err == 0) {
      pos = dir.find('/', pos + 1);
      partial = dir.substr(0, pos);
      if (partial.empty()) continue;
      // 0700: the pins are the farm's control state; only root has any business there.
      if (mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) err = -errno;
    }
    if (err == -ENOENT) continue;
    if (err != 0) return err;
    struct stat st;
    if (stat(dir.c_str(), &st) != 0) return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
  }
  return -ENOENT;
}

std::string ShapeMismatch(const struct bpf_map* map, const struct bpf_map_info& pinned) {
  std::string out;
  auto check = [&out](const char* what, uint32_t want, uint32_t got) {
    if (want == got) return;
    if (!out.empty()) out += ", ";
    out += std::string(what) + " " + std::to_string(got) + " (object has " + std::to_string(want) + ")";
  };
  check("type", bpf_map__type(map), pinned.type);
  check("key_size", bpf_map__key_size(map), pinned.key_size);
  check("value_size", bpf_map__value_size(map), pinned.value_size);
  check("max_entries", bpf_map__max_entries(map), pinned.max_entries);
  check("map_flags", bpf_map__map_flags(map), pinned.map_flags);
  return out;
}

// open → (reuse pinned maps) → load, all off the JS thread: the verifier may take a while.
class OpenObjectWorker : public PromiseWorker {
 public:
  OpenObjectWorker(Napi::Env env, std::string path, std::string reuseDir)
      : PromiseWorker(env, "farmlb:openObject"), path_(std::move(path)), reuseDir_(std::move(reuseDir)) {}
  ~OpenObjectWorker() override {
    if (obj_ != nullptr) bpf_object__close(obj_);
  }

 protected:
  void Run() override {
    LogCapture capture;
    obj_ = bpf_object__open_file(path_.c_str(), nullptr);
    if (obj_ == nullptr) {
      failure_ = MakeFailure("FARMLB_E_BPF_OPEN", errno, "bpf_object__open_file", path_, capture.Take());
      return;
    }
    if (!reuseDir_.empty() && !ReusePinnedMaps(capture)) return;
    int err = bpf_object__load(obj_);
    if (err != 0) failure_ = MakeFailure("FARMLB_E_BPF_LOAD", err, "bpf_object__load", path_, capture.Take());
  }

  Napi::Value Result(Napi::Env env) override {
    ObjectInit init{obj_, path_};
    Napi::Object object = Data(env).objectCtor.New({Napi::External<ObjectInit>::New(env, &init)});
    obj_ = nullptr;  // the NativeObject owns it now
    Napi::Array reused = Napi::Array::New(env, reused_.size());
    for (size_t i = 0; i < reused_.size(); i++) reused.Set(uint32_t(i), reused_[i]);
    Napi::Array mismatches = Napi::Array::New(env, mismatches_.size());
    for (size_t i = 0; i < mismatches_.size(); i++) mismatches.Set(uint32_t(i), mismatches_[i]);
    object.Set("reusedMaps", reused);
    object.Set("reuseMismatches", mismatches);
    return object;
  }

 private:
  // A map pinned with the same shape is adopted (its contents survive a daemon restart);
  // one with another shape is left alone and reported, and pinMaps() later replaces it.
  bool ReusePinnedMaps(LogCapture& capture) {
    struct bpf_map* map;
    bpf_object__for_each_map(map, obj_) {
      std::string name = PinName(map);
      if (name.empty()) continue;
      std::string pin = reuseDir_ + "/" + name;
      UniqueFd fd(bpf_obj_get(pin.c_str()));
      if (!fd.valid()) {
        if (errno == ENOENT) continue;
        failure_ = MakeFailure("FARMLB_E_BPF_PIN", errno, "bpf_obj_get", pin, capture.Take());
        return false;
      }
      struct bpf_map_info info;
      int err = ReadMapInfo(fd.get(), &info);
      if (err != 0) {
        failure_ = MakeFailure("FARMLB_E_BPF_PIN", err, "bpf_obj_get_info_by_fd", pin, capture.Take());
        return false;
      }
      std::string mismatch = ShapeMismatch(map, info);
      if (!mismatch.empty()) {
        mismatches_.push_back(name + ": " + mismatch);
        continue;
      }
      err = bpf_map__reuse_fd(map, fd.get());  // dups the fd; ours closes at scope end
      if (err != 0) {
        failure_ = MakeFailure("FARMLB_E_BPF_MAP", err, "bpf_map__reuse_fd", pin, capture.Take());
        return false;
      }
      reused_.push_back(name);
    }
    return true;
  }

  std::string path_;
  std::string reuseDir_;
  struct bpf_object* obj_ = nullptr;
  std::vector<std::string> reused_;
  std::vector<std::string> mismatches_;
};

// Runs the worker's thread in another network namespace for its lifetime. BPF_PROG_TEST_RUN
// of an XDP program gives the frame the loopback device of the caller's namespace, and the
// program's socket lookups (bpf_skc_lookup_tcp) search that namespace: testing a decision that
// depends on sockets needs the namespace that holds them. setns(CLONE_NEWNET) changes only the
// calling thread; the thread is a pool thread that later runs other work, so failing to go
// back is fatal rather than silently leaving it in the wrong namespace.
class ThreadNetns {
 public:
  explicit ThreadNetns(const std::string& path) {
    if (path.empty()) return;
    home_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home_ < 0) {
      error_ = errno;
      what_ = "open(/proc/thread-self/ns/net)";
      return;
    }
    int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0 || setns(target, CLONE_NEWNET) != 0) {
      error_ = errno;
      what_ = target < 0 ? "open(" + path + ")" : "setns(" + path + ")";
    }
    if (target >= 0) close(target);
  }
  ~ThreadNetns() {
    if (home_ < 0) return;
    if (error_ == 0 && setns(home_, CLONE_NEWNET) != 0) abort();
    close(home_);
  }
  int error() const { return error_; }
  const std::string& what() const { return what_; }

 private:
  int home_ = -1;
  int error_ = 0;
  std::string what_;
};

// BPF_PROG_TEST_RUN of one frame, `repeat` times. Output room: the frame plus 256 bytes,
// the most XDP may grow a frame by (bpf_xdp_adjust_head/tail within the headroom).
class TestRunWorker : public PromiseWorker {
 public:
  TestRunWorker(Napi::Env env, UniqueFd progFd, std::string program, const uint8_t* data, size_t len,
                uint32_t repeat, std::string netns)
      : PromiseWorker(env, "farmlb:testRun"),
        progFd_(std::move(progFd)),
        program_(std::move(program)),
        netns_(std::move(netns)),
        in_(data, data + len),
        out_(len + 256),
        repeat_(repeat) {}

 protected:
  void Run() override {
    LogCapture capture;
    ThreadNetns netns(netns_);
    if (netns.error() != 0) {
      failure_ = MakeFailure("FARMLB_E_BPF_TEST_RUN", netns.error(), netns.what().c_str(), program_, capture.Take());
      return;
    }
    struct bpf_test_run_opts opts;
    std::memset(&opts, 0, sizeof opts);
    opts.sz = sizeof opts;
    opts.data_in = in_.data();
    opts.data_size_in = uint32_t(in_.size());
    opts.data_out = out_.data();
    opts.data_size_out = uint32_t(out_.size());
    opts.repeat = int(repeat_);
    int err = bpf_prog_test_run_opts(progFd_.get(), &opts);
    if (err != 0) {
      failure_ = MakeFailure("FARMLB_E_BPF_TEST_RUN", err, "bpf_prog_test_run_opts", program_, capture.Take());
      return;
    }
    out_.resize(opts.data_size_out);
    retval_ = opts.retval;
    durationNs_ = opts.duration;
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("retval", Napi::Number::New(env, retval_));
    result.Set("dataOut", Napi::Buffer<uint8_t>::Copy(env, out_.data(), out_.size()));
    result.Set("durationNs", Napi::Number::New(env, durationNs_));
    return result;
  }

 private:
  UniqueFd progFd_;
  std::string program_;
  std::string netns_;
  std::vector<uint8_t> in_;
  std::vector<uint8_t> out_;
  uint32_t repeat_;
  uint32_t retval_ = 0;
  uint32_t durationNs_ = 0;
};

// Many frames, one run each, in one worker: a differential test of 10^5 packets would
// otherwise pay a thread-pool round trip per packet.
class TestRunManyWorker : public PromiseWorker {
 public:
  TestRunManyWorker(Napi::Env env, UniqueFd progFd, std::string program, std::string netns)
      : PromiseWorker(env, "farmlb:testRunMany"),
        progFd_(std::move(progFd)),
        program_(std::move(program)),
        netns_(std::move(netns)) {}

  void AddFrame(const uint8_t* data, size_t len) {
    inOffsets_.push_back(in_.size());
    in_.insert(in_.end(), data, data + len);
  }

 protected:
  void Run() override {
    LogCapture capture;
    ThreadNetns netns(netns_);
    if (netns.error() != 0) {
      failure_ = MakeFailure("FARMLB_E_BPF_TEST_RUN", netns.error(), netns.what().c_str(), program_, capture.Take());
      return;
    }
    size_t frames = inOffsets_.size();
    outOffsets_.reserve(frames + 1);
    retvals_.reserve(frames);
    std::vector<uint8_t> scratch;
    for (size_t i = 0; i < frames; i++) {
      size_t begin = inOffsets_[i];
      size_t len = (i + 1 < frames ? inOffsets_[i + 1] : in_.size()) - begin;
      scratch.resize(len + 256);
      struct bpf_test_run_opts opts;
      std::memset(&opts, 0, sizeof opts);
      opts.sz = sizeof opts;
      opts.data_in = in_.data() + begin;
      opts.data_size_in = uint32_t(len);
      opts.data_out = scratch.data();
      opts.data_size_out = uint32_t(scratch.size());
      opts.repeat = 1;
      int err = bpf_prog_test_run_opts(progFd_.get(), &opts);
      if (err != 0) {
        failure_ = MakeFailure("FARMLB_E_BPF_TEST_RUN", err, "bpf_prog_test_run_opts",
                               program_ + " frame " + std::to_string(i) + " of " + std::to_string(frames) +
                                   " (" + std::to_string(len) + " bytes)",
                               capture.Take());
        return;
      }
      outOffsets_.push_back(out_.size());
      out_.insert(out_.end(), scratch.data(), scratch.data() + opts.data_size_out);
      retvals_.push_back(opts.retval);
    }
    outOffsets_.push_back(out_.size());
  }

  Napi::Value Result(Napi::Env env) override {
    size_t frames = retvals_.size();
    Napi::Array results = Napi::Array::New(env, frames);
    for (size_t i = 0; i < frames; i++) {
      Napi::Object r = Napi::Object::New(env);
      r.Set("retval", Napi::Number::New(env, retvals_[i]));
      r.Set("dataOut", Napi::Buffer<uint8_t>::Copy(env, out_.data() + outOffsets_[i],
                                                   outOffsets_[i + 1] - outOffsets_[i]));
      results.Set(uint32_t(i), r);
    }
    return results;
  }

 private:
  UniqueFd progFd_;
  std::string program_;
  std::string netns_;
  std::vector<uint8_t> in_;
  std::vector<size_t> inOffsets_;
  std::vector<uint8_t> out_;
  std::vector<size_t> outOffsets_;
  std::vector<uint32_t> retvals_;
};

UniqueFd DupFd(int fd) { return UniqueFd(fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

}  // namespace

Napi::Function NativeObject::Define(Napi::Env env) {
  return DefineClass(env, "NativeObject",
                     {
                         InstanceMethod<&NativeObject::Map>("map"),
                         InstanceMethod<&NativeObject::MapNames>("mapNames"),
                         InstanceMethod<&NativeObject::ProgramFd>("programFd"),
                         InstanceMethod<&NativeObject::ProgramId>("programId"),
                         InstanceMethod<&NativeObject::PinMaps>("pinMaps"),
                         InstanceMethod<&NativeObject::UnpinMaps>("unpinMaps"),
                         InstanceMethod<&NativeObject::TestRun>("testRun"),
                         InstanceMethod<&NativeObject::TestRunMany>("testRunMany"),
                         InstanceMethod<&NativeObject::Close>("close"),
                     });
}

NativeObject::NativeObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeObject>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    Throw(info.Env(), "FARMLB_E_BPF_ARG", EINVAL, "NativeObject", "objects come from openObject()");
  ObjectInit* init = info[0].As<Napi::External<ObjectInit>>().Data();
  obj_ = init->obj;
  path_ = init->path;
}

NativeObject::~NativeObject() {
  if (obj_ != nullptr) bpf_object__close(obj_);
}

struct bpf_object* NativeObject::ObjOrThrow(Napi::Env env, const char* syscall) const {
  if (obj_ == nullptr) Throw(env, "FARMLB_E_BPF_CLOSED", EBADF, syscall, "object " + path_ + " is closed");
  return obj_;
}

int NativeObject::ProgFdOrThrow(Napi::Env env, const std::string& name) const {
  struct bpf_object* obj = ObjOrThrow(env, "bpf_object__find_program_by_name");
  struct bpf_program* prog = bpf_object__find_program_by_name(obj, name.c_str());
  if (prog == nullptr) Throw(env, "FARMLB_E_BPF_NO_PROGRAM", ENOENT, "bpf_object__find_program_by_name", name);
  int fd = bpf_program__fd(prog);
  if (fd < 0) Throw(env, "FARMLB_E_BPF_NO_PROGRAM", fd, "bpf_program__fd", name);
  return fd;
}

Napi::Value NativeObject::Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "name");
  struct bpf_object* obj = ObjOrThrow(env, "bpf_object__find_map_by_name");
  struct bpf_map* map = bpf_object__find_map_by_name(obj, name == kHotPinName ? kHotSection : name.c_str());
  if (map == nullptr) Throw(env, "FARMLB_E_BPF_NO_MAP", ENOENT, "bpf_object__find_map_by_name", name);
  UniqueFd fd = DupFd(bpf_map__fd(map));
  if (!fd.valid()) Throw(env, "FARMLB_E_BPF_MAP", errno, "fcntl(F_DUPFD_CLOEXEC)", name);
  return NativeMap::Create(env, std::move(fd), name);
}

Napi::Value NativeObject::MapNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct bpf_object* obj = ObjOrThrow(env, "bpf_object__next_map");
  Napi::Array names = Napi::Array::New(env);
  uint32_t i = 0;
  struct bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    std::string name = PinName(map);
    if (!name.empty()) names.Set(i++, name);
  }
  return names;
}

Napi::Value NativeObject::ProgramFd(const Napi::CallbackInfo& info) {
  // The fd stays owned by the object: valid until close(), never to be closed by the caller.
  return Napi::Number::New(info.Env(), ProgFdOrThrow(info.Env(), ArgString(info, 0, "program")));
}

Napi::Value NativeObject::ProgramId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "program");
  int fd = ProgFdOrThrow(env, name);
  struct bpf_prog_info pinfo;
  std::memset(&pinfo, 0, sizeof pinfo);
  __u32 len = sizeof pinfo;
  int err = bpf_obj_get_info_by_fd(fd, &pinfo, &len);
  if (err != 0) Throw(env, "FARMLB_E_BPF_MAP", err, "bpf_obj_get_info_by_fd", name);
  return Napi::Number::New(env, pinfo.id);
}

Napi::Value NativeObject::PinMaps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = ArgString(info, 0, "dir");
  struct bpf_object* obj = ObjOrThrow(env, "bpf_obj_pin");
  int err = MkdirP(dir);
  if (err != 0) Throw(env, "FARMLB_E_BPF_PIN", err, "mkdir", dir);
  struct statfs fs;
  if (statfs(dir.c_str(), &fs) != 0) Throw(env, "FARMLB_E_BPF_PIN", errno, "statfs", dir);
  if (static_cast<unsigned long>(fs.f_type) != BPF_FS_MAGIC)
    Throw(env, "FARMLB_E_BPF_PIN", EINVAL, "statfs", dir + " is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)");

  struct bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    std::string name = PinName(map);
    if (name.empty()) continue;
    std::string final = dir + "/" + name;
    // Pin under a temporary name and rename over the old pin: a reader (the CLI) sees the
    // old map or the new one, never no map. (bpffs refuses names with a '.'.)
    std::string tmp = dir + "/" + name + "__pinning";
    unlink(tmp.c_str());
    err = bpf_obj_pin(bpf_map__fd(map), tmp.c_str());
    if (err != 0) Throw(env, "FARMLB_E_BPF_PIN", err, "bpf_obj_pin", tmp);
    if (rename(tmp.c_str(), final.c_str()) != 0) {
      int saved = errno;
      unlink(tmp.c_str());
      Throw(env, "FARMLB_E_BPF_PIN", saved, "rename", final);
    }
  }
  return env.Undefined();
}

Napi::Value NativeObject::UnpinMaps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = ArgString(info, 0, "dir");
  struct bpf_object* obj = ObjOrThrow(env, "unlink");
  struct bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    std::string name = PinName(map);
    if (name.empty()) continue;
    std::string pin = dir + "/" + name;
    if (unlink(pin.c_str()) != 0 && errno != ENOENT) Throw(env, "FARMLB_E_BPF_PIN", errno, "unlink", pin);
  }
  // Someone else's files in the directory keep it; that is theirs to clean up.
  if (rmdir(dir.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
    Throw(env, "FARMLB_E_BPF_PIN", errno, "rmdir", dir);
  return env.Undefined();
}

Napi::Value NativeObject::TestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string program = ArgString(info, 0, "program");
  Napi::Buffer<uint8_t> data = ArgBuffer(info, 1, "data");
  uint32_t repeat = info.Length() > 2 && !info[2].IsUndefined() ? ArgU32(info, 2, "repeat") : 1;
  if (repeat > INT32_MAX) Throw(env, "FARMLB_E_BPF_ARG", EINVAL, "bpf_prog_test_run_opts", "repeat too large");
  // Optional: the path of a network namespace (/run/netns/NAME) to run in (ThreadNetns).
  std::string netns = info.Length() > 3 && !info[3].IsUndefined() ? ArgString(info, 3, "netns") : "";
  UniqueFd fd = DupFd(ProgFdOrThrow(env, program));
  if (!fd.valid()) Throw(env, "FARMLB_E_BPF_TEST_RUN", errno, "fcntl(F_DUPFD_CLOEXEC)", program);
  auto* worker = new TestRunWorker(env, std::move(fd), program, data.Data(), data.Length(), repeat, std::move(netns));
  return worker->QueuePromise();
}

Napi::Value NativeObject::TestRunMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string program = ArgString(info, 0, "program");
  if (info.Length() < 2 || !info[1].IsArray())
    Throw(env, "FARMLB_E_BPF_ARG", EINVAL, "argument", "frames must be an array of Buffers");
  Napi::Array frames = info[1].As<Napi::Array>();
  // Optional: the path of a network namespace (/run/netns/NAME) to run the frames in.
  std::string netns = info.Length() > 2 && !info[2].IsUndefined() ? ArgString(info, 2, "netns") : "";
  UniqueFd fd = DupFd(ProgFdOrThrow(env, program));
  if (!fd.valid()) Throw(env, "FARMLB_E_BPF_TEST_RUN", errno, "fcntl(F_DUPFD_CLOEXEC)", program);
  std::unique_ptr<TestRunManyWorker> worker(new TestRunManyWorker(env, std::move(fd), program, std::move(netns)));
  for (uint32_t i = 0; i < frames.Length(); i++) {
    Napi::Value v = frames[i];
    if (!v.IsBuffer())
      Throw(env, "FARMLB_E_BPF_ARG", EINVAL, "argument", "frames[" + std::to_string(i) + "] is not a Buffer");
    Napi::Buffer<uint8_t> frame = v.As<Napi::Buffer<uint8_t>>();
    worker->AddFrame(frame.Data(), frame.Length());
  }
  return worker.release()->QueuePromise();
}

Napi::Value NativeObject::Close(const Napi::CallbackInfo& info) {
  if (obj_ != nullptr) {
    bpf_object__close(obj_);
    obj_ = nullptr;
  }
  return info.Env().Undefined();
}

Napi::Value OpenObject(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "path");
  std::string reuseDir;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Value dir = info[1].As<Napi::Object>().Get("reusePinDir");
    if (dir.IsString()) reuseDir = dir.As<Napi::String>().Utf8Value();
  }
  auto* worker = new OpenObjectWorker(env, std::move(path), std::move(reuseDir));
  return worker->QueuePromise();
}

}  // namespace farmlb
