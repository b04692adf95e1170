// One persistent connection to lorakeep-cs: a non-blocking socket, TLS on TCP, and the frame
// decoder for its byte stream. Every operation takes an absolute deadline and never blocks
// past it.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "host/endpoint.hpp"
#include "schemas/frame.hpp"
#include "schemas/result.hpp"

namespace lorakeep::host {

using Clock = std::chrono::steady_clock;

class Connection {
 public:
  /// Connects (and for TCP completes the TLS handshake with `tls`, which must then be
  /// non-null) by `deadline`. Failures are token_unavailable with a message naming the
  /// endpoint and what failed; deadline when the time ran out.
  static Result<Connection> open(const Endpoint& endpoint, SSL_CTX* tls,
                                 Clock::time_point deadline);

  ~Connection();
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Writes all of `bytes` by `deadline`.
  Result<Ok> write_all(std::span<const std::uint8_t> bytes, Clock::time_point deadline);
  /// Reads the next frame's payload by `deadline`: exactly the 4-byte header, then exactly
  /// the length it announces once frame::parse_header accepted it (1 to frame::max_payload),
  /// so nothing beyond the frame is read. A bad header, an end of stream or an error fails,
  /// and the connection must then be dropped.
  Result<std::vector<std::uint8_t>> read_frame(Clock::time_point deadline);

  /// False when the peer closed the connection or sent something while nobody asked
  /// (checked without waiting, before an idle connection is reused).
  [[nodiscard]] bool idle_and_open();

 private:
  Connection(int fd, SSL* ssl) noexcept : fd_(fd), ssl_(ssl) {}
  void close() noexcept;
  Result<Ok> handshake(const Endpoint& endpoint, Clock::time_point deadline);
  Result<std::size_t> read_some(std::span<std::uint8_t> into, Clock::time_point deadline);
  Result<Ok> read_exact(std::span<std::uint8_t> into, Clock::time_point deadline);
  Failure tls_failure(int ret, const char* doing);

  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool tls_usable_ = false;  // handshake done and no fatal TLS error since
  std::string peer_;         // the endpoint, for messages
};

}  // namespace lorakeep::host
