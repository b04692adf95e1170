#include "appliance/server/stream.hpp"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

namespace lorakeep::appliance::server {

Stream::Stream(int fd, SSL* ssl) noexcept : fd_(fd), ssl_(ssl) {
  const int flags = ::fcntl(fd_, F_GETFL, 0);
  if (flags >= 0) ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
}

Stream::~Stream() {
  if (ssl_ != nullptr) {
    // A best-effort close_notify; the socket is non-blocking, so this never waits.
    if (SSL_is_init_finished(ssl_) == 1) (void)SSL_shutdown(ssl_);
    SSL_free(ssl_);
    ERR_clear_error();
  }
  ::close(fd_);
}

Stream::Io Stream::wait(short events, Clock::time_point deadline, int wake_fd) const {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Io::timeout;
    std::array<pollfd, 2> fds{pollfd{fd_, events, 0}, pollfd{wake_fd, POLLIN, 0}};
    const nfds_t n = wake_fd >= 0 ? 2 : 1;
    const int timeout =
        static_cast<int>(std::min<std::chrono::milliseconds::rep>(left.count(), 60'000));
    const int rc = ::poll(fds.data(), n, timeout);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return Io::error;
    }
    if (rc == 0) continue;  // re-checks the deadline
    if (n == 2 && (fds[1].revents & POLLIN) != 0) return Io::woken;
    // POLLHUP/POLLERR: the next read or write says what happened.
    if (fds[0].revents != 0) return Io::ok;
  }
}

Stream::Io Stream::after_ssl(int rc, Clock::time_point deadline, int wake_fd) {
  switch (SSL_get_error(ssl_, rc)) {
    case SSL_ERROR_WANT_READ:
      return wait(POLLIN, deadline, wake_fd);
    case SSL_ERROR_WANT_WRITE:
      return wait(POLLOUT, deadline, wake_fd);
    case SSL_ERROR_ZERO_RETURN:
      return Io::eof;
    default:
      ERR_clear_error();
      return Io::error;
  }
}

Stream::Io Stream::handshake(Clock::time_point deadline, int wake_fd) {
  if (ssl_ == nullptr) return Io::ok;
  for (;;) {
    ERR_clear_error();
    const int rc = SSL_do_handshake(ssl_);
    if (rc == 1) return Io::ok;
    const Io next = after_ssl(rc, deadline, wake_fd);
    if (next != Io::ok) return next == Io::eof ? Io::error : next;
  }
}

Stream::Io Stream::read_some(std::span<std::uint8_t> buffer, std::size_t& got,
                             Clock::time_point deadline, int wake_fd) {
  got = 0;
  for (;;) {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      const int rc = SSL_read_ex(ssl_, buffer.data(), buffer.size(), &got);
      if (rc == 1) return Io::ok;
      const Io next = after_ssl(rc, deadline, wake_fd);
      if (next != Io::ok) return next;
      continue;
    }
    const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n > 0) {
      got = static_cast<std::size_t>(n);
      return Io::ok;
    }
    if (n == 0) return Io::eof;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Io::error;
    if (const Io next = wait(POLLIN, deadline, wake_fd); next != Io::ok) return next;
  }
}

Stream::Io Stream::write_all(std::span<const std::uint8_t> data, Clock::time_point deadline) {
  std::size_t done = 0;
  while (done < data.size()) {
    const auto rest = data.subspan(done);
    if (ssl_ != nullptr) {
      ERR_clear_error();
      std::size_t n = 0;
      const int rc = SSL_write_ex(ssl_, rest.data(), rest.size(), &n);
      if (rc == 1) {
        done += n;
        continue;
      }
      if (const Io next = after_ssl(rc, deadline, -1); next != Io::ok) return next;
      continue;
    }
    const ssize_t n = ::send(fd_, rest.data(), rest.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Io::error;
    if (const Io next = wait(POLLOUT, deadline, -1); next != Io::ok) return next;
  }
  return Io::ok;
}

}  // namespace lorakeep::appliance::server
