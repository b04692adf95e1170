// One accepted connection as a byte stream, plain (Unix socket) or TLS, on a non-blocking
// socket: every wait is a poll() with a deadline, and can be cut short by a wake-up fd.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

#include "appliance/server/tls.hpp"

namespace lorakeep::appliance::server {

using Clock = std::chrono::steady_clock;

class Stream {
 public:
  enum class Io {
    ok,
    eof,      // the peer closed
    timeout,  // the deadline passed
    woken,    // `wake_fd` became readable
    error,    // a socket or TLS error (a failed handshake too)
  };

  /// Takes `fd` (made non-blocking here) and, for TLS, `ssl` (on that fd); closes and frees
  /// both on destruction.
  Stream(int fd, SSL* ssl) noexcept;
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  /// The TLS handshake (ok at once for a plain stream).
  Io handshake(Clock::time_point deadline, int wake_fd);
  /// At least one byte into `buffer` (`got` says how many), waiting until `deadline`.
  /// `wake_fd` < 0: no wake-up.
  Io read_some(std::span<std::uint8_t> buffer, std::size_t& got, Clock::time_point deadline,
               int wake_fd);
  /// All of `data`, waiting until `deadline`.
  Io write_all(std::span<const std::uint8_t> data, Clock::time_point deadline);

  [[nodiscard]] int fd() const noexcept { return fd_; }

 private:
  /// Waits for `events` on the socket (or wake_fd readable) until `deadline`.
  Io wait(short events, Clock::time_point deadline, int wake_fd) const;
  /// After an OpenSSL call returned `rc` <= 0: what to wait for, or the end.
  Io after_ssl(int rc, Clock::time_point deadline, int wake_fd);

  int fd_;
  SSL* ssl_;
};

}  // namespace lorakeep::appliance::server
