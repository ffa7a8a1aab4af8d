// Shared plumbing of the farmlb addon: owned file descriptors, the failure record every
// libbpf call is turned into, libbpf log capture, and the promise-returning worker base.
// The addon is thin on purpose: it maps libbpf calls to JS and leaves policy to the
// TypeScript side (src/dataplane/).
#pragma once

#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <unistd.h>

namespace farmlb {

// One owned fd; closing twice or leaking one is impossible by construction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) {
      int saved = errno;  // close() must not clobber the errno being reported
      ::close(fd_);
      errno = saved;
    }
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// What went wrong in a libbpf/system call, built off the JS thread and turned into a JS
// Error on it. `code` is a FARMLB_E_* code of src/errors.ts.
struct Failure {
  std::string code;
  int err = 0;          // positive errno
  std::string syscall;  // e.g. "bpf_object__load"
  std::string what;     // the object the call was about: a path, a map name
  std::string log;      // libbpf/verifier output captured during the call

  bool failed() const { return !code.empty(); }
};

// `err` may be given negative (libbpf style) or positive (errno style).
Failure MakeFailure(const char* code, int err, const char* syscall, std::string what,
                    std::string log = std::string());

// Error object with `code`, `errno`, `syscall`; message "syscall(what): strerror\nlog".
Napi::Error ToJsError(Napi::Env env, const Failure& failure);

// For the synchronous exports: throws the JS error as a C++ exception (NAPI_CPP_EXCEPTIONS).
[[noreturn]] void Throw(Napi::Env env, const Failure& failure);
[[noreturn]] void Throw(Napi::Env env, const char* code, int err, const char* syscall,
                        std::string what);

// Collects every libbpf message printed on this thread while it lives (the last
// kLogCaptureBytes of it), so a failing call can report the verifier log with its error.
// Nests: an inner capture hides messages from the outer one while it lives.
class LogCapture {
 public:
  static constexpr size_t kLogCaptureBytes = 64 * 1024;
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  void Append(const std::string& text);
  std::string Take();

 private:
  std::string buf_;
  LogCapture* prev_;
};

// Routes libbpf's print callback (set once, process-wide) to the capture of the calling
// thread and to the JS logger registered with setLogCallback.
void InstallLibbpfPrint();
Napi::Value SetLogCallback(const Napi::CallbackInfo& info);

// An AsyncWorker that settles a Promise. Subclasses do the blocking work in Run(), record
// a failure in failure_, and build the JS result on the JS thread in Result().
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise QueuePromise() {
    Napi::Promise promise = deferred_.Promise();
    Queue();
    return promise;
  }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;

  Failure failure_;

 private:
  void Execute() override {
    Run();
    if (failure_.failed()) SetError(failure_.code);
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(Result(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error&) override { deferred_.Reject(ToJsError(Env(), failure_).Value()); }

  Napi::Promise::Deferred deferred_;
};

// Argument helpers: throw a FARMLB_E_BPF_ARG error naming the argument.
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);
Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* name);
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name);

// Per-instance constructors, so NativeMap/NativeObject can be created from C++.
struct AddonData {
  Napi::FunctionReference mapCtor;
  Napi::FunctionReference objectCtor;
};
AddonData& Data(Napi::Env env);

}  // namespace farmlb
