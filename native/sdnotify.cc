// See sdnotify.h. The protocol is systemd's sd_notify(3): "READY=1", "RELOADING=1",
// "WATCHDOG=1", "STATUS=…", newline-separated, in one datagram.
#include "sdnotify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace farmlb {

Napi::Value UnixDatagramSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "path");
  std::string message = ArgString(info, 1, "message");
  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) Throw(env, "FARMLB_E_BPF_ARG", EINVAL, "sendto", path);
  std::memcpy(addr.sun_path, path.data(), path.size());
  // "@name": the abstract namespace, a leading NUL byte and no terminator.
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path.size());
  UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) Throw(env, "FARMLB_E_RUN_NOTIFY", errno, "socket", path);
  ssize_t sent = sendto(fd.get(), message.data(), message.size(), MSG_NOSIGNAL,
                        reinterpret_cast<struct sockaddr*>(&addr), len);
  if (sent < 0) Throw(env, "FARMLB_E_RUN_NOTIFY", errno, "sendto", path);
  return env.Undefined();
}

}  // namespace farmlb
