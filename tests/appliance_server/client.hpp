// A small client of the appliance protocol for tests: frames (schemas/frame.hpp) of
// lorakeep.crypto.v1 messages over a Unix socket, or TLS 1.3 with the cluster PSK computed
// here independently of the server's code (OpenSSL SHA-256 of the documented input).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "crypto.pb.h"

using SSL_CTX = struct ssl_ctx_st;
using SSL = struct ssl_st;

namespace lorakeep::test {

namespace v1 = crypto::v1;

class TestClient {
 public:
  /// Connects; throws std::runtime_error when the connection (or TLS handshake) fails.
  static TestClient unix_socket(const std::filesystem::path& path);
  static TestClient tls(const std::string& host, std::uint16_t port,
                        const std::vector<std::uint8_t>& cluster_secret,
                        const std::string& identity = "lorakeep-cluster-v1");
  /// Only TCP, no TLS: for raw handshake garbage.
  static TestClient tcp(const std::string& host, std::uint16_t port);
  ~TestClient();
  TestClient(TestClient&& other) noexcept;
  TestClient& operator=(TestClient&&) = delete;
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  /// Sends one request and reads one answer; throws when the connection ends first.
  v1::Response call(const v1::Request& request);
  void send(const v1::Request& request);
  void send_raw(std::span<const std::uint8_t> bytes);
  /// The next answer, nullopt when the peer closed (or after `timeout`).
  std::optional<v1::Response> receive(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  /// True when the server closed the connection (EOF) within `timeout`.
  bool closed_by_peer(std::chrono::milliseconds timeout);

  [[nodiscard]] int fd() const noexcept { return fd_; }

 private:
  TestClient(int fd, SSL_CTX* ctx, SSL* ssl) : fd_(fd), ctx_(ctx), ssl_(ssl) {}
  /// Reads exactly n bytes; false on EOF/timeout/error.
  bool read_exact(std::uint8_t* out, std::size_t n);
  void write_all(std::span<const std::uint8_t> bytes);
  void set_timeout(std::chrono::milliseconds timeout);

  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
};

/// SHA-256("lorakeep cluster psk v1" || secret) with OpenSSL (the documented PSK).
std::vector<std::uint8_t> expected_psk(const std::vector<std::uint8_t>& secret);

/// A Request with protocol_version 1, the id, and the caller "test".
v1::Request request(std::uint64_t id);

}  // namespace lorakeep::test
