// The host's client of lorakeep-cs (DESIGN.md §4): persistent connections, pooled per
// appliance, over a Unix socket or TLS 1.3 with the cluster PSK; requests spread over the
// configured appliances and fail over between them within each request's deadline.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "crypto.pb.h"
#include "host/connection.hpp"
#include "host/endpoint.hpp"
#include "host/secret_buffer.hpp"
#include "host/tls_psk.hpp"
#include "schemas/result.hpp"

namespace lorakeep::host {

struct ClientOptions {
  /// "unix:/path" or "host:port" ("[v6]:port"), at least one. Requests rotate over them.
  std::vector<std::string> endpoints;
  /// The cluster secret (the file's bytes, one trailing newline stripped:
  /// SecretBuffer::from_file), at least 16 bytes. Required when an endpoint is TCP; only the
  /// PSK derived from it is kept.
  std::optional<SecretBuffer> cluster_secret;
  /// Open connections per appliance, idle or busy; at most this many requests run on one
  /// appliance at a time from this client. 1 to 1024.
  std::size_t connections_per_endpoint = 4;
  /// The most one connect + TLS handshake may take (a request's deadline may cut it shorter).
  std::chrono::milliseconds connect_timeout{1000};
};

/// Counters for /metrics and tests; monotonic since construction.
struct ClientStats {
  std::uint64_t calls = 0;             // call() invocations
  std::uint64_t calls_unanswered = 0;  // of which ended in token_unavailable
  std::uint64_t connects = 0;          // connections established
  std::uint64_t connect_failures = 0;  // connects or handshakes that failed
  std::uint64_t dropped = 0;           // established connections closed after an error
  std::uint64_t retries = 0;           // a request sent again after a failed attempt
};

class ApplianceClient {
 public:
  /// Validates the options: every address parses, the counts are in range, and a TCP address
  /// comes with a cluster secret. Fails with Status::malformed saying what is wrong. Connects
  /// to nothing yet: an appliance that is down now is no reason to refuse to start.
  static Result<std::unique_ptr<ApplianceClient>> create(ClientOptions options);

  /// Closes every idle connection. No call() may be running.
  ~ApplianceClient();
  ApplianceClient(const ApplianceClient&) = delete;
  ApplianceClient& operator=(const ApplianceClient&) = delete;
  ApplianceClient(ApplianceClient&&) = delete;
  ApplianceClient& operator=(ApplianceClient&&) = delete;

  /// Sends `request` to an appliance and returns its Response; thread-safe.
  ///
  /// Sets protocol_version = 1 and a fresh request_id (the caller's values are replaced),
  /// and deadline_ms to the budget left at each attempt (less a small margin for the way
  /// back; at most 600 s, the appliance's limit). Waits for a pooled connection, opens one, or
  /// moves to the next appliance when one is down, closes a connection or answers SHUTTING_DOWN;
  /// sending a request again is safe because the appliance keeps no state. An answer counts only
  /// when it is a frame within frame::max_payload that parses as a Response echoing the request_id.
  ///
  /// Returns the Response whatever its Code (the caller maps it). Fails with
  /// Status::token_unavailable ("no appliance answered within N ms: <last error>") when no
  /// answer arrived within `deadline` — it never waits longer than that (a name lookup
  /// aside) — and with Status::malformed when the request cannot be serialized within the
  /// frame limit (nothing is sent then).
  Result<crypto::v1::Response> call(crypto::v1::Request request,
                                    std::chrono::milliseconds deadline);

  [[nodiscard]] ClientStats stats() const;

 private:
  struct Slot {
    Endpoint endpoint;
    std::vector<Connection> idle;
    std::size_t open = 0;          // idle + in use + being opened
    Clock::time_point retry_at{};  // no new connection before this (after a failure)
    std::chrono::milliseconds backoff{0};
  };
  struct Lease {
    std::size_t slot = 0;
    std::optional<Connection> connection;
    bool fresh = false;  // opened for this request, not taken from the pool
  };

  explicit ApplianceClient(ClientOptions options, std::vector<Endpoint> endpoints,
                           std::unique_ptr<tls::ClientContext> tls);
  Result<Lease> acquire(Clock::time_point end, std::string& last_error);
  void release(Lease lease, bool reusable);
  void mark_down(std::size_t slot, std::chrono::milliseconds at_least);

  ClientOptions options_;
  std::unique_ptr<tls::ClientContext> tls_;
  mutable std::mutex mutex_;
  std::condition_variable released_;
  std::vector<Slot> slots_;
  std::size_t next_slot_ = 0;
  ClientStats stats_;
  std::atomic<std::uint64_t> next_request_id_{1};
};

}  // namespace lorakeep::host
