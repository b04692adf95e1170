// The listening socket: a Unix domain socket (mode 0660, a stale file replaced, unlinked
// on exit) or a TCP socket for TLS. Bound by the master, shared by the workers it forks.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "appliance/server/config.hpp"

namespace lorakeep::appliance::server {

class Listener {
 public:
  struct Owner {
    uid_t uid;
    gid_t gid;
  };

  /// Binds and listens. A Unix socket path that exists is replaced only when it is a socket
  /// nobody answers on; another live server or a non-socket file is an error. `owner`
  /// (when started as root) gets the Unix socket. Throws std::system_error /
  /// std::runtime_error naming the address.
  Listener(const ListenAddress& address, std::optional<Owner> owner);
  /// Closes; the process that bound a Unix socket also unlinks it (forked children do not).
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] bool tls() const noexcept { return address_.kind == ListenAddress::Kind::tcp; }
  /// The bound address, with the real port when 0 was asked for.
  [[nodiscard]] std::string address() const;

 private:
  ListenAddress address_;
  int fd_ = -1;
  pid_t bound_by_ = 0;
};

/// "unix:uid=0,pid=123" (SO_PEERCRED) or "tcp:127.0.0.1:5555" / "tcp:[::1]:5555".
std::string peer_name(int fd, bool unix_socket);

}  // namespace lorakeep::appliance::server
