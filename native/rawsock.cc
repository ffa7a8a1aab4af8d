#include "rawsock.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>

namespace farmlb {

namespace {

constexpr const char* kCode = "FARMLB_E_NET_RAW_SEND";

// Shared by the send and close functions of one socket; the fd closes when close() is
// called or, at the latest, when both functions are garbage collected.
struct RawSocketState {
  UniqueFd fd;
  int ifindex = 0;
  std::string ifname;
};

}  // namespace

Napi::Value OpenRawSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ifname = ArgString(info, 0, "ifname");
  auto state = std::make_shared<RawSocketState>();
  state->ifname = ifname;
  state->ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (state->ifindex == 0) Throw(env, kCode, errno, "if_nametoindex", ifname);
  // Protocol 0: the socket is bound to no EtherType, so the kernel queues nothing to it —
  // a send-only socket never fills with the interface's traffic.
  state->fd.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (!state->fd.valid()) Throw(env, kCode, errno, "socket", "AF_PACKET on " + ifname);

  Napi::Object sock = Napi::Object::New(env);
  sock.Set("ifname", Napi::String::New(env, ifname));
  sock.Set("ifindex", Napi::Number::New(env, state->ifindex));
  sock.Set("send", Napi::Function::New(env, [state](const Napi::CallbackInfo& ci) -> Napi::Value {
    Napi::Env e = ci.Env();
    Napi::Buffer<uint8_t> frame = ArgBuffer(ci, 0, "frame");
    if (!state->fd.valid()) Throw(e, kCode, EBADF, "sendto", state->ifname + ": socket is closed");
    if (frame.Length() < ETH_HLEN)
      Throw(e, kCode, EINVAL, "sendto", state->ifname + ": a frame has at least 14 bytes");
    struct sockaddr_ll to;
    std::memset(&to, 0, sizeof to);
    to.sll_family = AF_PACKET;
    to.sll_ifindex = state->ifindex;
    to.sll_halen = ETH_ALEN;
    std::memcpy(to.sll_addr, frame.Data(), ETH_ALEN);
    // The frame's own EtherType (already network order), so taps see the right protocol.
    std::memcpy(&to.sll_protocol, frame.Data() + 12, 2);
    ssize_t n = ::sendto(state->fd.get(), frame.Data(), frame.Length(), 0,
                         reinterpret_cast<struct sockaddr*>(&to), sizeof to);
    if (n < 0) Throw(e, kCode, errno, "sendto", state->ifname);
    if (static_cast<size_t>(n) != frame.Length())
      Throw(e, kCode, EMSGSIZE, "sendto", state->ifname + ": frame sent in part");
    return e.Undefined();
  }, "send"));
  sock.Set("close", Napi::Function::New(env, [state](const Napi::CallbackInfo& ci) -> Napi::Value {
    state->fd.reset();
    return ci.Env().Undefined();
  }, "close"));
  return sock;
}

}  // namespace farmlb
