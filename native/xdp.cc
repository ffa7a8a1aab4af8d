#include "xdp.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>

#include <cstring>

namespace farmlb {

namespace {

const char* ModeName(__u32 flag) { return flag == XDP_FLAGS_DRV_MODE ? "native" : "generic"; }

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class XdpAttachWorker : public PromiseWorker {
 public:
  XdpAttachWorker(Napi::Env env, int ifindex, UniqueFd progFd, std::string mode, UniqueFd replaceFd,
                  uint32_t replaceId, bool noReplace)
      : PromiseWorker(env, "farmlb:xdpAttach"),
        ifindex_(ifindex),
        progFd_(std::move(progFd)),
        mode_(std::move(mode)),
        replaceFd_(std::move(replaceFd)),
        replaceId_(replaceId),
        noReplace_(noReplace) {}

 protected:
  void Run() override {
    std::string what = "ifindex " + std::to_string(ifindex_);
    if (replaceId_ != 0 && !replaceFd_.valid()) {
      replaceFd_.reset(bpf_prog_get_fd_by_id(replaceId_));
      if (!replaceFd_.valid()) {
        failure_ = MakeFailure("FARMLB_E_XDP_ATTACH", errno, "bpf_prog_get_fd_by_id",
                               what + ", program id " + std::to_string(replaceId_) + " to replace");
        return;
      }
    }
    __u32 base = 0;
    struct bpf_xdp_attach_opts opts;
    std::memset(&opts, 0, sizeof opts);
    opts.sz = sizeof opts;
    if (replaceFd_.valid()) {
      // Compare-and-swap: fails with EEXIST if another program was attached meanwhile.
      base |= XDP_FLAGS_REPLACE;
      opts.old_prog_fd = replaceFd_.get();
    } else if (noReplace_) {
      base |= XDP_FLAGS_UPDATE_IF_NOEXIST;
    }

    if (mode_ != "generic") {
      LogCapture capture;
      int err = bpf_xdp_attach(ifindex_, progFd_.get(), base | XDP_FLAGS_DRV_MODE, &opts);
      if (err == 0) {
        attached_ = XDP_FLAGS_DRV_MODE;
        return;
      }
      std::string log = Trim(capture.Take());
      if (mode_ == "native") {
        failure_ = MakeFailure("FARMLB_E_XDP_ATTACH", err, "bpf_xdp_attach", what + ", native mode", log);
        return;
      }
      // The driver has no XDP support (or refuses this program): generic mode runs the
      // same program on the skb path, slower but with identical verdicts.
      fallbackReason_ = std::string("native mode failed: ") + std::strerror(-err);
      if (!log.empty()) fallbackReason_ += " (" + log + ")";
    }
    LogCapture capture;
    int err = bpf_xdp_attach(ifindex_, progFd_.get(), base | XDP_FLAGS_SKB_MODE, &opts);
    if (err != 0) {
      std::string log = Trim(capture.Take());
      if (!fallbackReason_.empty()) log = fallbackReason_ + (log.empty() ? "" : "\n" + log);
      failure_ = MakeFailure("FARMLB_E_XDP_ATTACH", err, "bpf_xdp_attach", what + ", generic mode", log);
      return;
    }
    attached_ = XDP_FLAGS_SKB_MODE;
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("mode", ModeName(attached_));
    if (!fallbackReason_.empty()) result.Set("fallbackReason", fallbackReason_);
    return result;
  }

 private:
  int ifindex_;
  UniqueFd progFd_;
  std::string mode_;
  UniqueFd replaceFd_;
  uint32_t replaceId_;
  bool noReplace_;
  __u32 attached_ = 0;
  std::string fallbackReason_;
};

class XdpDetachWorker : public PromiseWorker {
 public:
  XdpDetachWorker(Napi::Env env, int ifindex, uint32_t expectedId)
      : PromiseWorker(env, "farmlb:xdpDetach"), ifindex_(ifindex), expectedId_(expectedId) {}

 protected:
  void Run() override {
    LogCapture capture;
    std::string what = "ifindex " + std::to_string(ifindex_);
    struct bpf_xdp_query_opts q;
    std::memset(&q, 0, sizeof q);
    q.sz = sizeof q;
    int err = bpf_xdp_query(ifindex_, 0, &q);
    if (err != 0) {
      failure_ = MakeFailure("FARMLB_E_XDP_DETACH", err, "bpf_xdp_query", what, capture.Take());
      return;
    }
    const struct {
      __u32 id;
      __u32 flag;
    } attached[] = {{q.drv_prog_id, XDP_FLAGS_DRV_MODE}, {q.skb_prog_id, XDP_FLAGS_SKB_MODE}};
    for (const auto& a : attached) {
      if (a.id == 0 || (expectedId_ != 0 && a.id != expectedId_)) continue;
      struct bpf_xdp_attach_opts opts;
      std::memset(&opts, 0, sizeof opts);
      opts.sz = sizeof opts;
      __u32 flags = a.flag;
      UniqueFd expected;
      if (expectedId_ != 0) {
        // Detach only if it is still that program: XDP_FLAGS_REPLACE with no new program.
        expected.reset(bpf_prog_get_fd_by_id(expectedId_));
        if (!expected.valid()) {
          if (errno == ENOENT) return;  // already gone
          failure_ = MakeFailure("FARMLB_E_XDP_DETACH", errno, "bpf_prog_get_fd_by_id", what, capture.Take());
          return;
        }
        flags |= XDP_FLAGS_REPLACE;
        opts.old_prog_fd = expected.get();
      }
      err = bpf_xdp_detach(ifindex_, flags, &opts);
      if (err == -EEXIST && expectedId_ != 0) continue;  // replaced meanwhile: not ours to remove
      if (err != 0) {
        failure_ = MakeFailure("FARMLB_E_XDP_DETACH", err, "bpf_xdp_detach",
                               what + ", " + ModeName(a.flag) + " mode", capture.Take());
        return;
      }
      detached_ = true;
    }
  }

  Napi::Value Result(Napi::Env env) override { return Napi::Boolean::New(env, detached_); }

 private:
  int ifindex_;
  uint32_t expectedId_;
  bool detached_ = false;
};

UniqueFd DupArgFd(const Napi::CallbackInfo& info, int fd, const char* what) {
  UniqueFd dup(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!dup.valid()) Throw(info.Env(), "FARMLB_E_XDP_ATTACH", errno, "fcntl(F_DUPFD_CLOEXEC)", what);
  return dup;
}

}  // namespace

Napi::Value XdpAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t ifindex = ArgU32(info, 0, "ifindex");
  uint32_t progFd = ArgU32(info, 1, "progFd");
  std::string mode = "auto";
  uint32_t replaceFd = 0, replaceId = 0;
  bool haveReplaceFd = false, noReplace = false;
  if (info.Length() > 2 && info[2].IsObject()) {
    Napi::Object opts = info[2].As<Napi::Object>();
    Napi::Value m = opts.Get("mode");
    if (m.IsString()) mode = m.As<Napi::String>().Utf8Value();
    Napi::Value rf = opts.Get("replaceProgFd");
    if (rf.IsNumber()) {
      replaceFd = rf.As<Napi::Number>().Uint32Value();
      haveReplaceFd = true;
    }
    Napi::Value ri = opts.Get("replaceProgId");
    if (ri.IsNumber()) replaceId = ri.As<Napi::Number>().Uint32Value();
    noReplace = opts.Get("noReplace").ToBoolean().Value();
  }
  if (mode != "native" && mode != "generic" && mode != "auto")
    Throw(env, "FARMLB_E_BPF_ARG", EINVAL, "xdpAttach", "mode must be native, generic or auto, not " + mode);
  // The caller's fds belong to their objects; the worker runs on its own copies.
  UniqueFd prog = DupArgFd(info, int(progFd), "progFd");
  UniqueFd replace = haveReplaceFd ? DupArgFd(info, int(replaceFd), "replaceProgFd") : UniqueFd();
  auto* worker = new XdpAttachWorker(env, int(ifindex), std::move(prog), mode, std::move(replace), replaceId,
                                     noReplace);
  return worker->QueuePromise();
}

Napi::Value XdpDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t ifindex = ArgU32(info, 0, "ifindex");
  uint32_t expected = 0;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Value e = info[1].As<Napi::Object>().Get("expectedProgId");
    if (e.IsNumber()) expected = e.As<Napi::Number>().Uint32Value();
  }
  auto* worker = new XdpDetachWorker(env, int(ifindex), expected);
  return worker->QueuePromise();
}

Napi::Value XdpQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t ifindex = ArgU32(info, 0, "ifindex");
  LogCapture capture;
  struct bpf_xdp_query_opts q;
  std::memset(&q, 0, sizeof q);
  q.sz = sizeof q;
  int err = bpf_xdp_query(int(ifindex), 0, &q);
  if (err != 0)
    Throw(env, MakeFailure("FARMLB_E_XDP_QUERY", err, "bpf_xdp_query", "ifindex " + std::to_string(ifindex),
                           capture.Take()));
  Napi::Object result = Napi::Object::New(env);
  if (q.drv_prog_id != 0) {
    result.Set("progId", q.drv_prog_id);
    result.Set("mode", "native");
  } else if (q.skb_prog_id != 0) {
    result.Set("progId", q.skb_prog_id);
    result.Set("mode", "generic");
  } else {
    // Offloaded (hw) programs are not ours to manage and count as none.
    result.Set("progId", 0);
    result.Set("mode", "none");
  }
  return result;
}

Napi::Value IfIndex(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "name");
  unsigned int index = if_nametoindex(name.c_str());
  if (index == 0) Throw(env, "FARMLB_E_XDP_NO_IFACE", errno, "if_nametoindex", name);
  return Napi::Number::New(env, index);
}

}  // namespace farmlb
