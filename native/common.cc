#include "common.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>

namespace farmlb {

Failure MakeFailure(const char* code, int err, const char* syscall, std::string what, std::string log) {
  Failure f;
  f.code = code;
  f.err = err < 0 ? -err : err;
  f.syscall = syscall;
  f.what = std::move(what);
  f.log = std::move(log);
  return f;
}

static std::string ErrnoText(int err) {
  // libbpf uses a few errno values above the libc range (e.g. 524 ENOTSUPP);
  // libbpf_strerror knows them, strerror does not.
  char buf[256];
  if (libbpf_strerror(err, buf, sizeof buf) == 0) return buf;
  return std::strerror(err);
}

Napi::Error ToJsError(Napi::Env env, const Failure& f) {
  std::string message = f.syscall;
  if (!f.what.empty()) message += "(" + f.what + ")";
  message += ": " + ErrnoText(f.err);
  if (!f.log.empty()) {
    message += "\n--- libbpf log ---\n" + f.log;
    if (message.back() != '\n') message += '\n';
    message += "--- end of libbpf log ---";
  }
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, f.code));
  error.Set("errno", Napi::Number::New(env, f.err));
  error.Set("syscall", Napi::String::New(env, f.syscall));
  return error;
}

void Throw(Napi::Env env, const Failure& failure) { throw ToJsError(env, failure); }

void Throw(Napi::Env env, const char* code, int err, const char* syscall, std::string what) {
  Throw(env, MakeFailure(code, err, syscall, std::move(what)));
}

// ---- libbpf log routing ---------------------------------------------------------------

namespace {

thread_local LogCapture* tls_capture = nullptr;

struct LogMessage {
  int level;
  std::string text;
};

// Process-wide because libbpf_set_print is. Never destroyed: libbpf may still print while
// static destructors run at exit.
struct LogSink {
  std::mutex mu;
  Napi::ThreadSafeFunction tsfn;
  napi_env owner = nullptr;
  bool hookAdded = false;
};

LogSink& Sink() {
  static LogSink* sink = new LogSink;
  return *sink;
}

void CallJsLogger(Napi::Env env, Napi::Function fn, LogMessage* raw) {
  std::unique_ptr<LogMessage> msg(raw);
  if (env == nullptr || fn.IsEmpty()) return;
  try {
    fn.Call({Napi::Number::New(env, msg->level), Napi::String::New(env, msg->text)});
  } catch (const Napi::Error&) {
    // A throwing logger must not turn a libbpf debug line into an uncaught exception.
  }
}

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  int savedErrno = errno;  // libbpf sets errno after printing; keep ours out of its way
  char small[512];
  va_list copy;
  va_copy(copy, args);
  int n = std::vsnprintf(small, sizeof small, fmt, copy);
  va_end(copy);
  if (n < 0) {
    errno = savedErrno;
    return 0;
  }
  std::string text;
  if (static_cast<size_t>(n) < sizeof small) {
    text.assign(small, static_cast<size_t>(n));
  } else {
    text.resize(static_cast<size_t>(n) + 1);
    std::vsnprintf(&text[0], text.size(), fmt, args);
    text.resize(static_cast<size_t>(n));
  }
  if (tls_capture != nullptr) tls_capture->Append(text);

  LogSink& sink = Sink();
  {
    std::lock_guard<std::mutex> lock(sink.mu);
    if (sink.owner != nullptr) {
      auto* msg = new LogMessage{static_cast<int>(level), std::move(text)};
      if (sink.tsfn.NonBlockingCall(msg, CallJsLogger) != napi_ok) delete msg;
    }
  }
  errno = savedErrno;
  return n;
}

void ForgetSink(napi_env env) {
  LogSink& sink = Sink();
  std::lock_guard<std::mutex> lock(sink.mu);
  // The environment is going away and finalizes the thread-safe function itself.
  if (sink.owner == env) sink.owner = nullptr;
}

}  // namespace

LogCapture::LogCapture() : prev_(tls_capture) { tls_capture = this; }

LogCapture::~LogCapture() { tls_capture = prev_; }

void LogCapture::Append(const std::string& text) {
  buf_ += text;
  if (buf_.size() > kLogCaptureBytes) {
    // Keep the tail: the verifier states the failing instruction and the reason last.
    size_t cut = buf_.size() - kLogCaptureBytes;
    size_t nl = buf_.find('\n', cut);
    buf_.erase(0, nl == std::string::npos ? cut : nl + 1);
  }
}

std::string LogCapture::Take() {
  std::string out;
  out.swap(buf_);
  return out;
}

void InstallLibbpfPrint() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(LibbpfPrint); });
}

Napi::Value SetLogCallback(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool install = info.Length() > 0 && info[0].IsFunction();
  if (!install && info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined())
    Throw(env, "FARMLB_E_BPF_ARG", EINVAL, "setLogCallback", "argument must be a function or null");

  LogSink& sink = Sink();
  std::lock_guard<std::mutex> lock(sink.mu);
  if (sink.owner != nullptr) {
    sink.tsfn.Release();
    sink.owner = nullptr;
  }
  if (install) {
    sink.tsfn = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "farmlb-libbpf-log", 0, 1);
    // Log delivery must never keep the process alive.
    sink.tsfn.Unref(env);
    sink.owner = env;
    if (!sink.hookAdded) {
      // Added after the first thread-safe function so it runs before that function's
      // own teardown (hooks run in reverse order).
      napi_add_env_cleanup_hook(env, [](void* arg) { ForgetSink(static_cast<napi_env>(arg)); }, env);
      sink.hookAdded = true;
    }
  }
  return env.Undefined();
}

// ---- arguments --------------------------------------------------------------------------

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString())
    Throw(info.Env(), "FARMLB_E_BPF_ARG", EINVAL, "argument", std::string(name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsBuffer())
    Throw(info.Env(), "FARMLB_E_BPF_ARG", EINVAL, "argument", std::string(name) + " must be a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber())
    Throw(info.Env(), "FARMLB_E_BPF_ARG", EINVAL, "argument", std::string(name) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= 4294967295.0) || v != static_cast<double>(static_cast<uint32_t>(v)))
    Throw(info.Env(), "FARMLB_E_BPF_ARG", EINVAL, "argument", std::string(name) + " must be an integer in 0..2^32-1");
  return static_cast<uint32_t>(v);
}

AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace farmlb
