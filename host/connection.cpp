#include "host/connection.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

#include "host/tls_psk.hpp"

namespace lorakeep::host {

namespace {

std::string errno_text(int e) {
  return std::strerror(e);
}

// OpenSSL writes with write(2), which raises SIGPIPE on a socket the peer closed; a library
// must not kill its process for that, nor change the process's signal disposition. So, as
// libpq does: block SIGPIPE in this thread around the call and consume one it raised.
class SigpipeGuard {
 public:
  SigpipeGuard() noexcept {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &old_);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        const timespec zero{};
        sigtimedwait(&pipe, nullptr, &zero);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t old_{};
  bool was_pending_ = false;
};

// Waits until `fd` is ready for `events` or `deadline` passes (Status::deadline).
Result<Ok> wait_for(int fd, short events, Clock::time_point deadline, const std::string& peer) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return fail(Status::deadline, "no answer from the appliance at " + peer + " in time");
    }
    pollfd p{fd, events, 0};
    const int timeout =
        static_cast<int>(std::min<std::chrono::milliseconds::rep>(left.count(), 60'000));
    const int r = ::poll(&p, 1, timeout);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return fail(Status::token_unavailable, "poll: " + errno_text(errno));
    if (r == 0) continue;  // re-check the deadline
    if ((p.revents & POLLNVAL) != 0) return fail(Status::internal, "poll on a closed socket");
    return Ok{};  // readable, writable, or an error/hangup the next call will report
  }
}

Result<int> connect_socket(int family, const sockaddr* addr, socklen_t len,
                           Clock::time_point deadline, const std::string& peer) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(Status::token_unavailable, "socket: " + errno_text(errno));
  int r = 0;
  do {
    r = ::connect(fd, addr, len);
  } while (r < 0 && errno == EINTR);
  if (r < 0 && errno == EINPROGRESS) {
    if (auto ready = wait_for(fd, POLLOUT, deadline, peer); !ready) {
      ::close(fd);
      return fail(
          ready.failure().status == Status::deadline ? Status::deadline : Status::token_unavailable,
          "connecting to " + peer + ": timed out");
    }
    int error = 0;
    socklen_t error_len = sizeof error;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &error_len) < 0) error = errno;
    if (error != 0) {
      ::close(fd);
      return fail(Status::token_unavailable, "connecting to " + peer + ": " + errno_text(error));
    }
    r = 0;
  }
  if (r < 0) {
    // A Unix socket with a full backlog answers EAGAIN at once; the caller retries later.
    const int saved = errno;
    ::close(fd);
    return fail(Status::token_unavailable, "connecting to " + peer + ": " + errno_text(saved));
  }
  return fd;
}

Result<int> connect_unix(const Endpoint& ep, Clock::time_point deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // Endpoint::parse checked that the path fits with its terminating NUL.
  std::copy(ep.path.begin(), ep.path.end(), std::begin(addr.sun_path));
  return connect_socket(AF_UNIX, reinterpret_cast<const sockaddr*>(&addr), sizeof addr, deadline,
                        ep.text);
}

Result<int> connect_tcp(const Endpoint& ep, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  // A name goes through the system resolver, which does not know our deadline; IP literals
  // (what an appliance address usually is) resolve without any lookup.
  const std::string port = std::to_string(ep.port);
  if (const int e = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &found); e != 0) {
    return fail(Status::token_unavailable,
                "resolving " + ep.text + ": " + std::string(::gai_strerror(e)));
  }
  Failure last = fail(Status::token_unavailable, "resolving " + ep.text + ": no address");
  Result<int> fd = last;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    fd = connect_socket(a->ai_family, a->ai_addr, a->ai_addrlen, deadline, ep.text);
    if (fd || fd.failure().status == Status::deadline) break;
  }
  ::freeaddrinfo(found);
  if (fd) {
    const int one = 1;
    ::setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

}  // namespace

Result<Connection> Connection::open(const Endpoint& endpoint, SSL_CTX* tls,
                                    Clock::time_point deadline) {
  const bool is_tcp = endpoint.kind == Endpoint::Kind::tcp;
  if (is_tcp && tls == nullptr) {
    return fail(Status::internal, "a TCP appliance address needs the cluster secret");
  }
  auto fd = is_tcp ? connect_tcp(endpoint, deadline) : connect_unix(endpoint, deadline);
  if (!fd) return fd.failure();
  Connection c(*fd, nullptr);
  c.peer_ = endpoint.text;
  if (is_tcp) {
    c.ssl_ = SSL_new(tls);
    if (c.ssl_ == nullptr) return fail(Status::internal, "SSL_new: " + tls::drain_errors());
    if (auto ok = c.handshake(endpoint, deadline); !ok) return ok.failure();
  }
  return c;
}

Result<Ok> Connection::handshake(const Endpoint& endpoint, Clock::time_point deadline) {
  if (SSL_set_fd(ssl_, fd_) != 1)
    return fail(Status::internal, "SSL_set_fd: " + tls::drain_errors());
  SSL_set_connect_state(ssl_);
  for (;;) {
    ERR_clear_error();
    int r = 0;
    {
      const SigpipeGuard guard;
      r = SSL_connect(ssl_);
    }
    if (r == 1) break;
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      const short events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
      if (auto ready = wait_for(fd_, events, deadline, peer_); !ready) {
        return fail(ready.failure().status, "TLS handshake with " + endpoint.text + ": timed out");
      }
      continue;
    }
    const Failure f = tls_failure(r, "TLS handshake");
    return fail(Status::token_unavailable,
                f.message + " (a wrong cluster secret fails here: both sides must use the same)");
  }
  // The PSK is the only way this handshake can succeed; check it anyway.
  if (SSL_version(ssl_) != TLS1_3_VERSION || SSL_session_reused(ssl_) != 1) {
    return fail(Status::token_unavailable, "TLS handshake with " + endpoint.text +
                                               " did not use TLS 1.3 with the cluster PSK");
  }
  tls_usable_ = true;
  return Ok{};
}

Failure Connection::tls_failure(int ret, const char* doing) {
  const int saved = errno;
  const int e = SSL_get_error(ssl_, ret);
  tls_usable_ = false;
  if (e == SSL_ERROR_ZERO_RETURN) {
    return fail(Status::token_unavailable,
                std::string(doing) + ": " + peer_ + " closed the connection");
  }
  if (e == SSL_ERROR_SYSCALL) {
    const std::string queue = ERR_peek_error() != 0 ? tls::drain_errors() : std::string();
    if (!queue.empty())
      return fail(Status::token_unavailable, std::string(doing) + " with " + peer_ + ": " + queue);
    return fail(Status::token_unavailable, std::string(doing) + ": " + peer_ +
                                               (saved == 0 ? std::string(" closed the connection")
                                                           : ": " + errno_text(saved)));
  }
  return fail(Status::token_unavailable,
              std::string(doing) + " with " + peer_ + ": " + tls::drain_errors());
}

Connection::~Connection() {
  close();
}

Connection::Connection(Connection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      ssl_(std::exchange(other.ssl_, nullptr)),
      tls_usable_(std::exchange(other.tls_usable_, false)),
      peer_(std::move(other.peer_)) {}

Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    ssl_ = std::exchange(other.ssl_, nullptr);
    tls_usable_ = std::exchange(other.tls_usable_, false);
    peer_ = std::move(other.peer_);
  }
  return *this;
}

void Connection::close() noexcept {
  if (ssl_ != nullptr) {
    if (tls_usable_) {
      // One non-blocking close_notify, best effort; the socket closes right after.
      const SigpipeGuard guard;
      SSL_shutdown(ssl_);
    }
    SSL_free(ssl_);
    ERR_clear_error();
    ssl_ = nullptr;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  tls_usable_ = false;
}

Result<Ok> Connection::write_all(std::span<const std::uint8_t> bytes, Clock::time_point deadline) {
  if (fd_ < 0) return fail(Status::internal, "write on a closed connection");
  if (ssl_ != nullptr) {
    // Without partial writes, SSL_write_ex sends everything or asks to be called again
    // with the same arguments once the socket is ready.
    for (;;) {
      ERR_clear_error();
      std::size_t written = 0;
      int r = 0;
      {
        const SigpipeGuard guard;
        r = SSL_write_ex(ssl_, bytes.data(), bytes.size(), &written);
      }
      if (r == 1) return Ok{};
      const int e = SSL_get_error(ssl_, r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return tls_failure(r, "sending");
      if (auto ready = wait_for(fd_, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, peer_);
          !ready) {
        return ready.failure();
      }
    }
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n >= 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return fail(Status::token_unavailable, "sending to " + peer_ + ": " + errno_text(errno));
    }
    if (auto ready = wait_for(fd_, POLLOUT, deadline, peer_); !ready) return ready.failure();
  }
  return Ok{};
}

Result<std::size_t> Connection::read_some(std::span<std::uint8_t> into,
                                          Clock::time_point deadline) {
  if (fd_ < 0) return fail(Status::internal, "read on a closed connection");
  for (;;) {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      std::size_t got = 0;
      int r = 0;
      {
        const SigpipeGuard guard;  // a read can write too (key updates, alerts)
        r = SSL_read_ex(ssl_, into.data(), into.size(), &got);
      }
      if (r == 1) return got;
      const int e = SSL_get_error(ssl_, r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return tls_failure(r, "reading");
      if (auto ready = wait_for(fd_, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, peer_);
          !ready) {
        return ready.failure();
      }
      continue;
    }
    const ssize_t n = ::recv(fd_, into.data(), into.size(), 0);
    if (n > 0) return static_cast<std::size_t>(n);
    if (n == 0) return fail(Status::token_unavailable, peer_ + " closed the connection");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return fail(Status::token_unavailable, "reading from " + peer_ + ": " + errno_text(errno));
    }
    if (auto ready = wait_for(fd_, POLLIN, deadline, peer_); !ready) return ready.failure();
  }
}

Result<Ok> Connection::read_exact(std::span<std::uint8_t> into, Clock::time_point deadline) {
  std::size_t done = 0;
  while (done < into.size()) {
    auto n = read_some(into.subspan(done), deadline);
    if (!n) return n.failure();
    done += *n;
  }
  return Ok{};
}

Result<std::vector<std::uint8_t>> Connection::read_frame(Clock::time_point deadline) {
  std::array<std::uint8_t, frame::header_size> header{};
  if (auto ok = read_exact(header, deadline); !ok) return ok.failure();
  auto length = frame::parse_header(header);
  if (!length) {
    return fail(Status::token_unavailable,
                "the appliance at " + peer_ + " sent a bad frame: " + length.failure().message);
  }
  std::vector<std::uint8_t> payload(*length);
  if (auto ok = read_exact(payload, deadline); !ok) return ok.failure();
  return payload;
}

bool Connection::idle_and_open() {
  if (fd_ < 0) return false;
  pollfd p{fd_, POLLIN, 0};
  int r = 0;
  do {
    r = ::poll(&p, 1, 0);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return true;
  if (r < 0 || ssl_ == nullptr) return false;  // a plain socket has nothing to say while idle
  // TLS may have post-handshake records (session tickets) waiting: let OpenSSL consume them.
  // Application data here would answer nobody, so the connection is not reusable then.
  ERR_clear_error();
  std::array<std::uint8_t, 1> one{};
  std::size_t got = 0;
  int ret = 0;
  {
    const SigpipeGuard guard;
    ret = SSL_read_ex(ssl_, one.data(), one.size(), &got);
  }
  if (ret == 1) return false;
  const int e = SSL_get_error(ssl_, ret);
  if (e == SSL_ERROR_WANT_READ) return true;
  if (e != SSL_ERROR_WANT_WRITE) tls_usable_ = false;
  ERR_clear_error();
  return false;
}

}  // namespace lorakeep::host
