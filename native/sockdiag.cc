// See sockdiag.h. One SOCK_DIAG_BY_FAMILY dump per address family (AF_INET, then AF_INET6,
// which also holds the IPv4 connections of dual-stack sockets as ::ffff:a.b.c.d), each with
// the same inet_diag bytecode: "local address is one of L1…Ln". The kernel runs the
// bytecode on every socket it walks and sends only the matches, so the cost per socket that
// is not a VIP's is a few comparisons in the kernel, not ~150 bytes of text formatted,
// copied and parsed (docs/benchmarks.md, "Socket accounting").
//
// Result record (kDiagRecordBytes, decoded by src/net/tcp-sockets.ts):
//   0 family (4 or 6; a v4-mapped IPv6 socket is reported as 4 with its IPv4 addresses)
//   1 state (kernel TCP state; a request socket, TCP_NEW_SYN_RECV, as SYN_RECV like /proc;
//     a timewait socket as TIME_WAIT whatever its substate, see PutRecord)
//   2 local port (network order)   4 remote port (network order)   6 pad
//   8 local address (16 bytes, wire order; IPv4 in the first 4)
//  24 remote address (16 bytes)
#include "sockdiag.h"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace farmlb {

namespace {

// One dump's receive buffer: the kernel fills up to about this much per recvmsg.
constexpr size_t kRecvBytes = 64 * 1024;
// The bytecode travels in one netlink attribute (16-bit length): 32 bytes per IPv6 address.
constexpr size_t kMaxLocals = 1024;
constexpr uint8_t kTcpSynRecv = 3;
constexpr uint8_t kTcpNewSynRecv = 12;
constexpr uint8_t kTcpTimeWait = 6;
/** idiag_timer of a timewait socket (inet_twsk_diag_fill); a full socket has 0, 1, 2 or 4. */
constexpr uint8_t kTimerTimeWait = 3;

struct Local {
  uint8_t family;  // 4 or 6
  uint8_t addr[16];
};

// "local address is L1 or L2 or … Ln" (inet_diag_bc_run's semantics): each S_COND goes on to
// the next op when it matches and skips it when not; the op after a condition but the last
// is a JMP over the rest to the end (accept). The last condition's "no" lands 4 bytes past
// the end (reject). Every op lies on the "yes" chain, as inet_diag_bc_audit requires.
std::vector<uint8_t> Bytecode(const std::vector<Local>& locals) {
  std::vector<uint8_t> bc;
  for (size_t i = 0; i < locals.size(); i++) {
    const Local& l = locals[i];
    size_t addrLen = l.family == 4 ? 4 : 16;
    size_t condLen = sizeof(inet_diag_bc_op) + sizeof(inet_diag_hostcond) + addrLen;
    bool last = i + 1 == locals.size();
    size_t rest = 0;  // bytes after this condition's JMP
    for (size_t j = i + 1; j < locals.size(); j++) {
      rest += sizeof(inet_diag_bc_op) + sizeof(inet_diag_hostcond) + (locals[j].family == 4 ? 4 : 16);
      if (j + 1 < locals.size()) rest += sizeof(inet_diag_bc_op);
    }
    inet_diag_bc_op cond{};
    cond.code = INET_DIAG_BC_S_COND;
    cond.yes = static_cast<unsigned char>(condLen);
    cond.no = static_cast<unsigned short>(condLen + 4);
    inet_diag_hostcond host{};
    host.family = l.family == 4 ? AF_INET : AF_INET6;
    host.prefix_len = static_cast<__u8>(addrLen * 8);
    host.port = -1;
    size_t at = bc.size();
    bc.resize(at + condLen);
    std::memcpy(&bc[at], &cond, sizeof cond);
    std::memcpy(&bc[at + sizeof cond], &host, sizeof host);
    std::memcpy(&bc[at + sizeof cond + sizeof host], l.addr, addrLen);
    if (!last) {
      inet_diag_bc_op jmp{};
      jmp.code = INET_DIAG_BC_JMP;
      jmp.yes = sizeof(inet_diag_bc_op);
      jmp.no = static_cast<unsigned short>(sizeof(inet_diag_bc_op) + rest);
      at = bc.size();
      bc.resize(at + sizeof jmp);
      std::memcpy(&bc[at], &jmp, sizeof jmp);
    }
  }
  return bc;
}

bool IsV4Mapped(const uint32_t a[4]) { return a[0] == 0 && a[1] == 0 && a[2] == htonl(0xffff); }

void PutRecord(std::vector<uint8_t>& out, const inet_diag_msg& m) {
  uint8_t rec[kDiagRecordBytes] = {};
  bool v6 = m.idiag_family == AF_INET6;
  bool mapped = v6 && IsV4Mapped(m.id.idiag_src);
  rec[0] = v6 && !mapped ? 6 : 4;
  // The kernel reports a timewait socket with its substate: an orphan that reached FIN_WAIT2
  // after close() (tcp_time_wait(sk, TCP_FIN_WAIT2, ...)) comes as FIN_WAIT2, though it is a
  // timewait socket with no application behind it — and TIME_WAIT is what the data path's
  // bpf_skc_lookup_tcp sees of it (not held). Reported as FIN_WAIT2, it held a handover open
  // until its limit while the client's FIN found no node to take it.
  if (m.idiag_timer == kTimerTimeWait) {
    rec[1] = kTcpTimeWait;
  } else {
    rec[1] = m.idiag_state == kTcpNewSynRecv ? kTcpSynRecv : m.idiag_state;
  }
  std::memcpy(&rec[2], &m.id.idiag_sport, 2);
  std::memcpy(&rec[4], &m.id.idiag_dport, 2);
  if (mapped) {
    std::memcpy(&rec[8], &m.id.idiag_src[3], 4);
    std::memcpy(&rec[24], &m.id.idiag_dst[3], 4);
  } else {
    size_t n = v6 ? 16 : 4;
    std::memcpy(&rec[8], m.id.idiag_src, n);
    std::memcpy(&rec[24], m.id.idiag_dst, n);
  }
  out.insert(out.end(), rec, rec + sizeof rec);
}

class TcpDiagWorker : public PromiseWorker {
 public:
  TcpDiagWorker(Napi::Env env, uint32_t states, std::vector<Local> locals)
      : PromiseWorker(env, "farmlb:tcpDiag"), states_(states), locals_(std::move(locals)) {}

 protected:
  void Run() override {
    UniqueFd fd(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!fd.valid()) {
      failure_ = MakeFailure("FARMLB_E_NET_SOCK_DIAG", errno, "socket(NETLINK_SOCK_DIAG)", "inet_diag");
      return;
    }
    std::vector<uint8_t> bc = Bytecode(locals_);
    for (int family : {AF_INET, AF_INET6}) {
      if (!Dump(fd.get(), family, bc)) return;
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object r = Napi::Object::New(env);
    r.Set("records", Napi::Buffer<uint8_t>::Copy(env, out_.data(), out_.size()));
    r.Set("count", Napi::Number::New(env, static_cast<double>(out_.size() / kDiagRecordBytes)));
    r.Set("interrupted", Napi::Boolean::New(env, interrupted_));
    return r;
  }

 private:
  bool Dump(int fd, int family, const std::vector<uint8_t>& bc) {
    // nlmsghdr | inet_diag_req_v2 | [rtattr INET_DIAG_REQ_BYTECODE | bytecode]
    size_t attrLen = bc.empty() ? 0 : RTA_LENGTH(bc.size());
    std::vector<uint8_t> req(NLMSG_LENGTH(sizeof(inet_diag_req_v2)) + RTA_ALIGN(attrLen));
    auto* nlh = reinterpret_cast<nlmsghdr*>(req.data());
    nlh->nlmsg_len = static_cast<__u32>(req.size());
    nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    nlh->nlmsg_seq = static_cast<__u32>(family);
    auto* r = reinterpret_cast<inet_diag_req_v2*>(NLMSG_DATA(nlh));
    r->sdiag_family = static_cast<__u8>(family);
    r->sdiag_protocol = IPPROTO_TCP;
    r->idiag_states = states_;
    if (!bc.empty()) {
      auto* rta = reinterpret_cast<rtattr*>(req.data() + NLMSG_LENGTH(sizeof(inet_diag_req_v2)));
      rta->rta_type = INET_DIAG_REQ_BYTECODE;
      rta->rta_len = static_cast<unsigned short>(attrLen);
      std::memcpy(RTA_DATA(rta), bc.data(), bc.size());
    }
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (sendto(fd, req.data(), req.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
      failure_ = MakeFailure("FARMLB_E_NET_SOCK_DIAG", errno, "sendto", family == AF_INET ? "inet_diag AF_INET" : "inet_diag AF_INET6");
      return false;
    }
    std::vector<uint8_t> buf(kRecvBytes);
    for (;;) {
      ssize_t n = recv(fd, buf.data(), buf.size(), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        failure_ = MakeFailure("FARMLB_E_NET_SOCK_DIAG", errno, "recv", "inet_diag");
        return false;
      }
      int len = static_cast<int>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_seq != static_cast<__u32>(family)) continue;
        if (h->nlmsg_flags & NLM_F_DUMP_INTR) interrupted_ = true;
        if (h->nlmsg_type == NLMSG_DONE) return true;
        if (h->nlmsg_type == NLMSG_ERROR) {
          auto* e = reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h));
          // A kernel without IPv6 has no AF_INET6 handler: an empty table, as /proc's missing tcp6.
          if (family == AF_INET6 && (e->error == -ENOENT || e->error == -EAFNOSUPPORT)) return true;
          failure_ = MakeFailure("FARMLB_E_NET_SOCK_DIAG", e->error, "SOCK_DIAG_BY_FAMILY", family == AF_INET ? "AF_INET" : "AF_INET6");
          return false;
        }
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) continue;
        PutRecord(out_, *reinterpret_cast<inet_diag_msg*>(NLMSG_DATA(h)));
      }
    }
  }

  uint32_t states_;
  std::vector<Local> locals_;
  std::vector<uint8_t> out_;
  bool interrupted_ = false;
};

}  // namespace

Napi::Value TcpDiag(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t states = ArgU32(info, 0, "states");
  Napi::Buffer<uint8_t> raw = ArgBuffer(info, 1, "locals");
  if (raw.Length() % kDiagLocalBytes != 0 || raw.Length() / kDiagLocalBytes > kMaxLocals) {
    Throw(env, "FARMLB_E_BPF_ARG", EINVAL, "tcpDiag", "locals");
  }
  std::vector<Local> locals;
  for (size_t at = 0; at < raw.Length(); at += kDiagLocalBytes) {
    Local l{};
    l.family = raw.Data()[at];
    if (l.family != 4 && l.family != 6) Throw(env, "FARMLB_E_BPF_ARG", EINVAL, "tcpDiag", "locals (family)");
    std::memcpy(l.addr, raw.Data() + at + 4, 16);
    locals.push_back(l);
  }
  // A request socket is TCP_NEW_SYN_RECV in the kernel's tables: asked for with SYN_RECV.
  if (states & (1u << kTcpSynRecv)) states |= 1u << kTcpNewSynRecv;
  auto* worker = new TcpDiagWorker(env, states, std::move(locals));
  return worker->QueuePromise();
}

}  // namespace farmlb
