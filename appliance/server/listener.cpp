#include "appliance/server/listener.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace lorakeep::appliance::server {
namespace {

constexpr int backlog = 128;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

sockaddr_un unix_address(const std::filesystem::path& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const std::string s = path.string();
  if (s.size() >= sizeof(a.sun_path)) throw std::runtime_error("socket path too long: " + s);
  std::memcpy(a.sun_path, s.c_str(), s.size() + 1);
  return a;
}

/// Removes a socket file left by a server that is gone; refuses anything else.
void replace_stale(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw_errno("stat " + path.string());
  }
  if (!S_ISSOCK(st.st_mode)) {
    throw std::runtime_error(path.string() + " exists and is not a socket: refusing to replace it");
  }
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) throw_errno("socket");
  const sockaddr_un a = unix_address(path);
  const int rc = ::connect(probe, reinterpret_cast<const sockaddr*>(&a), sizeof(a));
  const int saved = errno;
  ::close(probe);
  if (rc == 0) {
    throw std::runtime_error("another server is listening on " + path.string());
  }
  if (saved != ECONNREFUSED) {
    errno = saved;
    throw_errno("probing the existing socket " + path.string());
  }
  if (::unlink(path.c_str()) != 0) throw_errno("removing the stale socket " + path.string());
}

int bind_unix(const std::filesystem::path& path, std::optional<Listener::Owner> owner) {
  replace_stale(path);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno("socket");
  const sockaddr_un a = unix_address(path);
  // The socket appears with 0660 at once, not first with the umask's mode.
  const mode_t old_mask = ::umask(0117);
  const int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a));
  const int saved = errno;
  ::umask(old_mask);
  if (rc != 0) {
    ::close(fd);
    errno = saved;
    throw_errno("bind " + path.string());
  }
  if (::chmod(path.c_str(), 0660) != 0 ||
      (owner && ::chown(path.c_str(), owner->uid, owner->gid) != 0) || ::listen(fd, backlog) != 0) {
    const int e = errno;
    ::close(fd);
    ::unlink(path.c_str());
    errno = e;
    throw_errno("setting up " + path.string());
  }
  return fd;
}

int bind_tcp(const ListenAddress& address) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  const std::string port = std::to_string(address.port);
  const bool any = address.host == "*";
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(any ? nullptr : address.host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) {
    throw std::runtime_error("cannot resolve " + address.to_string() + ": " + ::gai_strerror(rc));
  }
  std::string last_error = "no address";
  int fd = -1;
  for (const addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, backlog) != 0) {
      last_error = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0)
    throw std::runtime_error("cannot listen on " + address.to_string() + ": " + last_error);
  return fd;
}

std::string numeric(const sockaddr_storage& ss, socklen_t len) {
  std::array<char, NI_MAXHOST> host{};
  std::array<char, NI_MAXSERV> serv{};
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&ss), len, host.data(), host.size(),
                    serv.data(), serv.size(), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "?";
  }
  const std::string h = host.data();
  return (ss.ss_family == AF_INET6 ? "[" + h + "]" : h) + ":" + serv.data();
}

}  // namespace

Listener::Listener(const ListenAddress& address, std::optional<Owner> owner)
    : address_(address), bound_by_(::getpid()) {
  fd_ = address.kind == ListenAddress::Kind::unix_socket ? bind_unix(address.path, owner)
                                                         : bind_tcp(address);
  if (address.kind == ListenAddress::Kind::tcp) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      address_.port = ss.ss_family == AF_INET6
                          ? ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port)
                          : ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
    }
  }
}

Listener::~Listener() {
  if (fd_ >= 0) ::close(fd_);
  if (address_.kind == ListenAddress::Kind::unix_socket && ::getpid() == bound_by_) {
    ::unlink(address_.path.c_str());
  }
}

std::string Listener::address() const {
  return address_.to_string();
}

std::string peer_name(int fd, bool unix_socket) {
  if (unix_socket) {
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "unix:?";
    return "unix:uid=" + std::to_string(cred.uid) + ",pid=" + std::to_string(cred.pid);
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "tcp:?";
  return "tcp:" + numeric(ss, len);
}

}  // namespace lorakeep::appliance::server
