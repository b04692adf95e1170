// A stand-in for lorakeep-cs in one process, for the client's tests: it listens on a Unix
// socket or on 127.0.0.1 with TLS 1.3 PSK (the cluster spec, server side), reads frames and
// answers according to a chosen behaviour — including the wrong ones a client must survive.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <openssl/ssl.h>

#include "crypto.pb.h"
#include "host/secret_buffer.hpp"

namespace lorakeep::test {

class FakeAppliance {
 public:
  enum class Behaviour {
    answer,              // Response{request_id, OK, info}
    close_after_answer,  // answer, then close the connection
    close_on_accept,     // accept and close at once
    silent,              // read requests, never answer
    wrong_id,            // answer with request_id + 1
    oversized_header,    // a header announcing 4 GiB
    garbage,             // a frame whose payload is not a Response
    shutting_down,       // Response{request_id, SHUTTING_DOWN}
  };

  /// Listens on a fresh Unix socket in a temporary directory, or at `path` (an appliance
  /// coming back where it was).
  static std::unique_ptr<FakeAppliance> unix_socket(Behaviour behaviour,
                                                    const std::string& path = {});
  /// Listens on 127.0.0.1 (a free port) with TLS 1.3 and the PSK derived from `secret`.
  static std::unique_ptr<FakeAppliance> tls(Behaviour behaviour, const std::string& secret);
  ~FakeAppliance();
  FakeAppliance(const FakeAppliance&) = delete;
  FakeAppliance& operator=(const FakeAppliance&) = delete;
  FakeAppliance(FakeAppliance&&) = delete;
  FakeAppliance& operator=(FakeAppliance&&) = delete;

  /// "unix:/tmp/.../cs.sock" or "127.0.0.1:PORT".
  [[nodiscard]] std::string address() const { return address_; }
  void set_behaviour(Behaviour b) { behaviour_ = b; }
  void set_delay(std::chrono::milliseconds d) { delay_ms_ = d.count(); }
  /// Stops listening and closes every connection (the appliance goes down).
  void stop();

  [[nodiscard]] std::size_t accepted() const { return accepted_; }
  [[nodiscard]] std::size_t handshakes_failed() const { return handshakes_failed_; }
  /// The most requests it was working on at one time.
  [[nodiscard]] std::size_t max_concurrent() const { return max_concurrent_; }
  [[nodiscard]] std::vector<crypto::v1::Request> requests() const;

 private:
  FakeAppliance() = default;
  void start(int listen_fd);
  void accept_loop();
  void serve(int fd);

  std::string address_;
  std::string dir_;          // a temporary directory we made, removed at the end
  std::string socket_path_;  // for a Unix socket
  std::optional<host::SecretBuffer> psk_;
  SSL_CTX* tls_ = nullptr;
  int listen_fd_ = -1;
  std::atomic<Behaviour> behaviour_{Behaviour::answer};
  std::atomic<long> delay_ms_{0};
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> accepted_{0};
  std::atomic<std::size_t> handshakes_failed_{0};
  std::atomic<std::size_t> concurrent_{0};
  std::atomic<std::size_t> max_concurrent_{0};
  mutable std::mutex mutex_;
  std::vector<crypto::v1::Request> requests_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace lorakeep::test
