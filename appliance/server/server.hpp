// A worker's accept loop: one thread per connection, at most max_connections at a time
// (more are accepted and closed at once, and counted as refused). Runs in a worker process,
// or in a test's own process.
#pragma once

#include <atomic>
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "appliance/server/connection.hpp"
#include "appliance/server/dispatch.hpp"
#include "appliance/server/stats.hpp"
#include "appliance/server/tls.hpp"

namespace lorakeep::appliance::server {

struct ServerSettings {
  ConnectionSettings connection;
  std::size_t max_connections = 256;
};

class Server {
 public:
  /// Serves connections accepted on `listen_fd` (not owned) — TLS when `tls` is set, else a
  /// Unix socket — with `dispatcher`, counting into `stats` slot `worker_slot`.
  Server(int listen_fd, const TlsServer* tls, Dispatcher& dispatcher, SharedStats& stats,
         std::size_t worker_slot, ServerSettings settings);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Accepts until stop() (or `wake_fd`, e.g. a signalfd, becomes readable), then waits for
  /// every connection to finish. Ignores SIGPIPE for the process (writes to a closed peer
  /// must fail, not kill).
  void run(int wake_fd = -1);
  /// Thread-safe and async-signal-safe: stops accepting; connections finish what is in
  /// flight and answer SHUTTING_DOWN to later requests.
  void stop() noexcept;
  [[nodiscard]] std::size_t active_connections() const noexcept { return active_.load(); }

 private:
  struct Connection {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  void accept_one();
  void reap(bool all);

  int listen_fd_;
  const TlsServer* tls_;
  Dispatcher& dispatcher_;
  SharedStats& stats_;
  std::size_t worker_slot_;
  ServerSettings settings_;
  int stop_fd_ = -1;  // eventfd: readable for good once stop() was called
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> active_{0};
  std::list<std::unique_ptr<Connection>> connections_;  // only the run() thread touches it
};

}  // namespace lorakeep::appliance::server
