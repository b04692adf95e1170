// lorakeep-cs's server in the test's own process (no fork): a session pool over a given
// module (SoftHSM, or a fake function list over it), a dispatcher, and the accept loop in a
// thread, on a Unix socket (or TLS on 127.0.0.1) in a temporary directory.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

#include "appliance/keys.hpp"
#include "appliance/server/audit.hpp"
#include "appliance/server/dispatch.hpp"
#include "appliance/server/listener.hpp"
#include "appliance/server/server.hpp"
#include "appliance/server/stats.hpp"
#include "appliance/server/tls.hpp"
#include "client.hpp"
#include "pkcs11/session_pool.hpp"
#include "token_fixture.hpp"

namespace lorakeep::test {

namespace srv = appliance::server;

struct LocalServerOptions {
  std::size_t sessions = 2;
  appliance::Policy policy{};
  srv::ServerSettings settings{};
  std::chrono::milliseconds default_deadline{2000};
  /// Set: listen on 127.0.0.1 (a free port) with TLS from this cluster secret.
  std::optional<std::vector<std::uint8_t>> cluster_secret;
};

class LocalServer {
 public:
  LocalServer(const pkcs11::Module& module, const TestToken& token,
              LocalServerOptions options = {});
  ~LocalServer();
  LocalServer(const LocalServer&) = delete;
  LocalServer& operator=(const LocalServer&) = delete;

  [[nodiscard]] TestClient connect() const;
  [[nodiscard]] std::filesystem::path socket_path() const { return dir_.path() / "cs.sock"; }
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] const std::filesystem::path& audit_path() const noexcept { return audit_path_; }
  [[nodiscard]] pkcs11::SessionPool& pool() noexcept { return pool_; }
  [[nodiscard]] srv::SharedStats& stats() noexcept { return stats_; }
  [[nodiscard]] srv::Server& server() noexcept { return *server_; }
  /// Stops the server and waits for its thread (connections finished).
  void stop();

 private:
  TempDir dir_;
  std::filesystem::path audit_path_;
  pkcs11::SessionPool pool_;
  appliance::KeyDirectory keys_;
  srv::SharedStats stats_;
  srv::AuditLog audit_;
  std::unique_ptr<srv::Listener> listener_;
  std::unique_ptr<srv::TlsServer> tls_;
  std::unique_ptr<srv::Dispatcher> dispatcher_;
  std::unique_ptr<srv::Server> server_;
  std::thread thread_;
  std::uint16_t port_ = 0;
  std::optional<std::vector<std::uint8_t>> secret_;
};

}  // namespace lorakeep::test
