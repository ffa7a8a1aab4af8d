#include "tc.h"

extern "C" {
#include "farmlb_abi.h"
}

#include <bpf/libbpf.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstring>

namespace farmlb {

namespace {

class TcAttachWorker : public PromiseWorker {
 public:
  TcAttachWorker(Napi::Env env, int ifindex, UniqueFd progFd, uint32_t handle, uint32_t priority)
      : PromiseWorker(env, "farmlb:tcAttachEgress"),
        ifindex_(ifindex),
        progFd_(std::move(progFd)),
        handle_(handle),
        priority_(priority) {}

 protected:
  void Run() override {
    LogCapture capture;
    std::string what = "ifindex " + std::to_string(ifindex_) + ", egress";
    DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex_, .attach_point = BPF_TC_EGRESS);
    // The clsact qdisc may exist already (another tool's filters, or our own earlier run):
    // EEXIST means the hook is there to attach to, not a failure (libbpf-bootstrap tc.c).
    int err = bpf_tc_hook_create(&hook);
    if (err != 0 && err != -EEXIST) {
      failure_ = MakeFailure("FARMLB_E_TC_ATTACH", err, "bpf_tc_hook_create", what, capture.Take());
      return;
    }
    // A fixed handle and priority with REPLACE: attaching again swaps our filter in place.
    DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = progFd_.get(), .flags = BPF_TC_F_REPLACE,
                        .handle = handle_, .priority = priority_);
    err = bpf_tc_attach(&hook, &opts);
    if (err != 0) {
      failure_ = MakeFailure("FARMLB_E_TC_ATTACH", err, "bpf_tc_attach", what, capture.Take());
      return;
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("handle", Napi::Number::New(env, handle_));
    result.Set("priority", Napi::Number::New(env, priority_));
    return result;
  }

 private:
  int ifindex_;
  UniqueFd progFd_;
  uint32_t handle_;
  uint32_t priority_;
};

class TcDetachWorker : public PromiseWorker {
 public:
  TcDetachWorker(Napi::Env env, int ifindex, uint32_t handle, uint32_t priority)
      : PromiseWorker(env, "farmlb:tcDetachEgress"), ifindex_(ifindex), handle_(handle), priority_(priority) {}

 protected:
  void Run() override {
    LogCapture capture;
    std::string what = "ifindex " + std::to_string(ifindex_) + ", egress";
    DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex_, .attach_point = BPF_TC_EGRESS);
    DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle_, .priority = priority_);
    // Only our filter goes; the clsact qdisc stays, since other filters may hang off it
    // (destroying the hook would flush them all).
    int err = bpf_tc_detach(&hook, &opts);
    if (err == -ENOENT || err == -EINVAL) {
      // No such filter, or no clsact qdisc at all (EINVAL from the kernel): nothing of ours.
      capture.Take();
      return;
    }
    if (err != 0) {
      failure_ = MakeFailure("FARMLB_E_TC_DETACH", err, "bpf_tc_detach", what, capture.Take());
      return;
    }
    detached_ = true;
  }

  Napi::Value Result(Napi::Env env) override { return Napi::Boolean::New(env, detached_); }

 private:
  int ifindex_;
  uint32_t handle_;
  uint32_t priority_;
  bool detached_ = false;
};

void HandleAndPriority(const Napi::CallbackInfo& info, size_t i, uint32_t* handle, uint32_t* priority) {
  *handle = FARMLB_TC_HANDLE;
  *priority = FARMLB_TC_PRIORITY;
  if (info.Length() <= i || !info[i].IsObject()) return;
  Napi::Object opts = info[i].As<Napi::Object>();
  Napi::Value h = opts.Get("handle");
  if (h.IsNumber()) *handle = h.As<Napi::Number>().Uint32Value();
  Napi::Value p = opts.Get("priority");
  if (p.IsNumber()) *priority = p.As<Napi::Number>().Uint32Value();
  if (*handle == 0 || *priority == 0 || *priority > 0xffff)
    Throw(info.Env(), "FARMLB_E_BPF_ARG", EINVAL, "tc", "handle must be > 0 and priority in 1..65535");
}

}  // namespace

Napi::Value TcAttachEgress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t ifindex = ArgU32(info, 0, "ifindex");
  uint32_t progFd = ArgU32(info, 1, "progFd");
  uint32_t handle, priority;
  HandleAndPriority(info, 2, &handle, &priority);
  // The caller's fd belongs to its object; the worker runs on its own copy.
  UniqueFd prog(fcntl(int(progFd), F_DUPFD_CLOEXEC, 0));
  if (!prog.valid()) Throw(env, "FARMLB_E_TC_ATTACH", errno, "fcntl(F_DUPFD_CLOEXEC)", "progFd");
  auto* worker = new TcAttachWorker(env, int(ifindex), std::move(prog), handle, priority);
  return worker->QueuePromise();
}

Napi::Value TcDetachEgress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t ifindex = ArgU32(info, 0, "ifindex");
  uint32_t handle, priority;
  HandleAndPriority(info, 1, &handle, &priority);
  auto* worker = new TcDetachWorker(env, int(ifindex), handle, priority);
  return worker->QueuePromise();
}

Napi::Value IfaceMac(const Napi::CallbackInfo& info) {
  // SIOCGIFHWADDR answers for the caller's network namespace; /sys/class/net shows the
  // namespace of whoever mounted sysfs, which differs under `nsenter --net` (LAB-NOTES).
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "name");
  if (name.size() >= IFNAMSIZ) Throw(env, "FARMLB_E_XDP_NO_IFACE", ENAMETOOLONG, "SIOCGIFHWADDR", name);
  UniqueFd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) Throw(env, "FARMLB_E_XDP_NO_IFACE", errno, "socket", name);
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, name.c_str(), name.size());
  if (ioctl(sock.get(), SIOCGIFHWADDR, &ifr) != 0) Throw(env, "FARMLB_E_XDP_NO_IFACE", errno, "SIOCGIFHWADDR", name);
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
    Throw(env, "FARMLB_E_XDP_NO_IFACE", EAFNOSUPPORT, "SIOCGIFHWADDR", name + " is not an Ethernet interface");
  const unsigned char* mac = reinterpret_cast<const unsigned char*>(ifr.ifr_hwaddr.sa_data);
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return Napi::String::New(env, text);
}

}  // namespace farmlb
