// The membership's heartbeat socket (src/membership/transport.ts, docs/benchmarks.md "Heartbeat
// CPU at 16 nodes: batched receive"): a non-blocking UDP socket read in batches with recvmmsg,
// each datagram carrying the kernel's arrival time (SO_TIMESTAMPNS) turned into CLOCK_MONOTONIC,
// so the daemon can read the heartbeats of a whole pulse in one wake-up while liveness keeps
// each one's true arrival time. Two ways to read:
// - drain(): whatever is queued now, called by the pulse (no wake-up per datagram);
// - watch(cb): a uv_poll on the socket, cb(batch) once per wake-up (every datagram at once),
//   for when the farm is not at rest and a reaction must not wait for the next pulse.
// No policy here: what is a heartbeat, and when to batch, is the TypeScript side's.
#include "udpbatch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <uv.h>

#include <cstring>
#include <vector>

namespace farmlb {

namespace {

constexpr const char* kBindCode = "FARMLB_E_MEMBERSHIP_BIND";
constexpr const char* kIoCode = "FARMLB_E_MEMBERSHIP_SOCKET";
// Datagrams per recvmmsg call, and at most this many calls per drain (a flood is read in
// bounded slices; the rest waits in the socket buffer, where the kernel drops the overflow).
constexpr unsigned kBatch = 32;
constexpr unsigned kMaxCallsPerDrain = 32;
// A change of (CLOCK_REALTIME − CLOCK_MONOTONIC) larger than this between two drains is a
// step of the wall clock: kernel timestamps of that batch cannot be converted, and the drain
// time (later than any arrival, so never an earlier evidence than the truth) is used instead.
constexpr int64_t kClockStepNs = 1'000'000;

int64_t ClockNs(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

class UdpBatchSocket : public Napi::ObjectWrap<UdpBatchSocket> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "UdpBatchSocket", {
      InstanceMethod<&UdpBatchSocket::Send>("send"),
      InstanceMethod<&UdpBatchSocket::Drain>("drain"),
      InstanceMethod<&UdpBatchSocket::Watch>("watch"),
      InstanceMethod<&UdpBatchSocket::Unwatch>("unwatch"),
      InstanceMethod<&UdpBatchSocket::Close>("close"),
    });
  }

  explicit UdpBatchSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UdpBatchSocket>(info) {}
  ~UdpBatchSocket() override { Shutdown(); }

  void Open(Napi::Env env, const std::string& addr, uint32_t port, uint32_t maxBytes) {
    env_ = env;
    addr_ = addr;
    port_ = port;
    std::memset(&local_, 0, sizeof local_);
    if (!ToSockaddr(addr, port, &local_, &localLen_)) Throw(env, kBindCode, EINVAL, "inet_pton", addr + ": not an IP address");
    family_ = local_.ss_family;
    fd_.reset(::socket(family_, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd_.valid()) Throw(env, kBindCode, errno, "socket", Where());
    int on = 1;
    if (::setsockopt(fd_.get(), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0) Throw(env, kBindCode, errno, "setsockopt(SO_TIMESTAMPNS)", Where());
    if (family_ == AF_INET6 && ::setsockopt(fd_.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) Throw(env, kBindCode, errno, "setsockopt(IPV6_V6ONLY)", Where());
    // Room for the datagrams of several pulses while they wait for drain(), a junk flood
    // included (the cadence reads on arrival from the first drop on): 4 MiB, which the kernel
    // doubles, taken only as datagrams queue. FORCE passes net.core.rmem_max as root;
    // otherwise the socket gets what that allows.
    int rcvbuf = 4 << 20;
    if (::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0) ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (::bind(fd_.get(), reinterpret_cast<struct sockaddr*>(&local_), localLen_) != 0) Throw(env, kBindCode, errno, "bind", Where());
    // One byte more than the largest datagram accepted: a longer one shows as oversize.
    slotBytes_ = maxBytes + 1;
    bufs_.assign(static_cast<size_t>(slotBytes_) * kBatch, 0);
    const int64_t realNs = ClockNs(CLOCK_REALTIME);
    lastDrainNs_ = ClockNs(CLOCK_MONOTONIC);
    lastOffsetNs_ = realNs - lastDrainNs_;
  }

 private:
  struct Poll {
    uv_poll_t handle;
    UdpBatchSocket* socket;
  };

  std::string Where() const { return addr_ + " port " + std::to_string(port_); }

  static bool ToSockaddr(const std::string& addr, uint32_t port, struct sockaddr_storage* ss, socklen_t* len) {
    auto* v4 = reinterpret_cast<struct sockaddr_in*>(ss);
    auto* v6 = reinterpret_cast<struct sockaddr_in6*>(ss);
    if (inet_pton(AF_INET, addr.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(static_cast<uint16_t>(port));
      *len = sizeof *v4;
      return true;
    }
    if (inet_pton(AF_INET6, addr.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(static_cast<uint16_t>(port));
      *len = sizeof *v6;
      return true;
    }
    return false;
  }

  // send(bytes, addr, port): 0, or the errno of a failed send (counted by the caller; a full
  // buffer or an unreachable peer must not throw into the pulse).
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Buffer<uint8_t> bytes = ArgBuffer(info, 0, "bytes");
    std::string to = ArgString(info, 1, "addr");
    uint32_t port = ArgU32(info, 2, "port");
    if (!fd_.valid()) Throw(env, kIoCode, EBADF, "sendto", Where() + ": socket is closed");
    struct sockaddr_storage ss;
    std::memset(&ss, 0, sizeof ss);
    socklen_t len = 0;
    if (!ToSockaddr(to, port, &ss, &len) || ss.ss_family != family_) return Napi::Number::New(env, EAFNOSUPPORT);
    ssize_t n = ::sendto(fd_.get(), bytes.Data(), bytes.Length(), 0, reinterpret_cast<struct sockaddr*>(&ss), len);
    return Napi::Number::New(env, n < 0 ? errno : 0);
  }

  Napi::Value Drain(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!fd_.valid()) Throw(env, kIoCode, EBADF, "recvmmsg", Where() + ": socket is closed");
    return ReadAll(env);
  }

  // Everything queued now, as [{ data, from, atNs, truncated }] in arrival order.
  Napi::Array ReadAll(Napi::Env env) {
    Napi::Array out = Napi::Array::New(env);
    // The wall clock first, then the monotonic one: a preemption between the two reads makes
    // the offset smaller, so arrival times come out later (later evidence), never earlier.
    const int64_t realNs = ClockNs(CLOCK_REALTIME);
    const int64_t startNs = ClockNs(CLOCK_MONOTONIC);
    const int64_t offsetNs = realNs - startNs;
    const bool stepped = offsetNs - lastOffsetNs_ > kClockStepNs || lastOffsetNs_ - offsetNs > kClockStepNs;
    // Every datagram read now arrived after the last drain that emptied the socket began.
    const int64_t floorNs = lastDrainNs_;
    struct mmsghdr msgs[kBatch];
    struct iovec iovs[kBatch];
    struct sockaddr_storage froms[kBatch];
    alignas(struct cmsghdr) char controls[kBatch][CMSG_SPACE(sizeof(struct timespec)) + 64];
    uint32_t index = 0;
    bool emptied = false;
    for (unsigned call = 0; call < kMaxCallsPerDrain; call++) {
      std::memset(msgs, 0, sizeof msgs);
      for (unsigned i = 0; i < kBatch; i++) {
        iovs[i].iov_base = bufs_.data() + static_cast<size_t>(i) * slotBytes_;
        iovs[i].iov_len = slotBytes_;
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &froms[i];
        msgs[i].msg_hdr.msg_namelen = sizeof froms[i];
        msgs[i].msg_hdr.msg_control = controls[i];
        msgs[i].msg_hdr.msg_controllen = sizeof controls[i];
      }
      int n = ::recvmmsg(fd_.get(), msgs, kBatch, MSG_DONTWAIT, nullptr);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          emptied = true;
          break;
        }
        if (errno == EINTR) continue;
        // ICMP errors of earlier sends (ECONNREFUSED...) are reported once and cleared: go on.
        if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH) continue;
        Throw(env, kIoCode, errno, "recvmmsg", Where());
      }
      for (int i = 0; i < n; i++) {
        const struct msghdr& h = msgs[i].msg_hdr;
        int64_t atNs = startNs;
        if (!stepped) {
          for (struct cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(const_cast<struct msghdr*>(&h), c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
              struct timespec ts;
              std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
              int64_t t = static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec - offsetNs;
              // Clamped to what is surely true: not before the last emptying drain, not after now.
              atNs = t < floorNs ? floorNs : t > startNs ? startNs : t;
            }
          }
        }
        char from[INET6_ADDRSTRLEN] = "";
        if (froms[i].ss_family == AF_INET) inet_ntop(AF_INET, &reinterpret_cast<struct sockaddr_in*>(&froms[i])->sin_addr, from, sizeof from);
        else if (froms[i].ss_family == AF_INET6) inet_ntop(AF_INET6, &reinterpret_cast<struct sockaddr_in6*>(&froms[i])->sin6_addr, from, sizeof from);
        const bool truncated = (h.msg_flags & MSG_TRUNC) != 0 || msgs[i].msg_len >= slotBytes_;
        const size_t len = msgs[i].msg_len < slotBytes_ ? msgs[i].msg_len : slotBytes_;
        Napi::Object d = Napi::Object::New(env);
        d.Set("data", Napi::Buffer<uint8_t>::Copy(env, bufs_.data() + static_cast<size_t>(i) * slotBytes_, len));
        d.Set("from", Napi::String::New(env, from));
        d.Set("atNs", Napi::BigInt::New(env, static_cast<int64_t>(atNs)));
        d.Set("truncated", Napi::Boolean::New(env, truncated));
        out.Set(index++, d);
      }
      if (static_cast<unsigned>(n) < kBatch) {
        emptied = true;
        break;
      }
    }
    if (emptied) lastDrainNs_ = startNs;
    lastOffsetNs_ = offsetNs;
    return out;
  }

  // watch(cb): cb(batch) on every wake-up with datagrams queued; replaces an earlier cb.
  Napi::Value Watch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsFunction()) Throw(env, kIoCode, EINVAL, "watch", "watch(callback: function)");
    if (!fd_.valid()) Throw(env, kIoCode, EBADF, "uv_poll_start", Where() + ": socket is closed");
    onBatch_ = Napi::Persistent(info[0].As<Napi::Function>());
    if (!context_) context_ = std::make_unique<Napi::AsyncContext>(env, "farmlb:heartbeats");
    if (!poll_) {
      uv_loop_t* loop = nullptr;
      if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) Throw(env, kIoCode, EINVAL, "napi_get_uv_event_loop", Where());
      poll_ = new Poll{};
      poll_->socket = this;
      poll_->handle.data = poll_;
      int rc = uv_poll_init(loop, &poll_->handle, fd_.get());
      if (rc != 0) {
        delete poll_;
        poll_ = nullptr;
        Throw(env, kIoCode, -rc, "uv_poll_init", Where());
      }
    }
    if (!watching_) {
      int rc = uv_poll_start(&poll_->handle, UV_READABLE, &UdpBatchSocket::OnPoll);
      if (rc != 0) Throw(env, kIoCode, -rc, "uv_poll_start", Where());
      watching_ = true;
      // The loop holds the poll, which points at us: alive while watching.
      Ref();
    }
    return env.Undefined();
  }

  Napi::Value Unwatch(const Napi::CallbackInfo& info) {
    StopWatching();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* p = static_cast<Poll*>(handle->data);
    if (p->socket) p->socket->Readable(status);
  }

  void Readable(int status) {
    if (!watching_ || !fd_.valid()) return;
    Napi::Env env(env_);
    Napi::HandleScope scope(env);
    try {
      Napi::Array batch = ReadAll(env);
      if (batch.Length() == 0) return;
      onBatch_.MakeCallback(Value(), {batch}, *context_);
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
  }

  void StopWatching() {
    if (!watching_) return;
    watching_ = false;
    uv_poll_stop(&poll_->handle);
    Unref();
  }

  void Shutdown() {
    StopWatching();
    if (poll_) {
      poll_->socket = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(&poll_->handle), [](uv_handle_t* h) { delete static_cast<Poll*>(h->data); });
      poll_ = nullptr;
    }
    fd_.reset();
  }

  napi_env env_ = nullptr;
  std::string addr_;
  uint32_t port_ = 0;
  int family_ = AF_INET;
  struct sockaddr_storage local_;
  socklen_t localLen_ = 0;
  UniqueFd fd_;
  uint32_t slotBytes_ = 0;
  std::vector<uint8_t> bufs_;
  int64_t lastDrainNs_ = 0;
  int64_t lastOffsetNs_ = 0;
  Poll* poll_ = nullptr;
  bool watching_ = false;
  Napi::FunctionReference onBatch_;
  std::unique_ptr<Napi::AsyncContext> context_;

};

Napi::FunctionReference* udpCtor = nullptr;

}  // namespace

void DefineUdpBatchSocket(Napi::Env env) {
  udpCtor = new Napi::FunctionReference(Napi::Persistent(UdpBatchSocket::Define(env)));
}

Napi::Value OpenUdpBatchSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string addr = ArgString(info, 0, "addr");
  uint32_t port = ArgU32(info, 1, "port");
  uint32_t maxBytes = ArgU32(info, 2, "maxBytes");
  if (port == 0 || port > 65535) Throw(env, kBindCode, EINVAL, "bind", addr + " port " + std::to_string(port) + ": a port is 1..65535");
  if (maxBytes == 0 || maxBytes > 65535) Throw(env, kBindCode, EINVAL, "bind", "maxBytes " + std::to_string(maxBytes) + ": 1..65535");
  Napi::Object obj = udpCtor->New({});
  UdpBatchSocket::Unwrap(obj)->Open(env, addr, port, maxBytes);
  return obj;
}

}  // namespace farmlb
