// A worker process: its own PKCS#11 module (C_Initialize after fork), a session pool, the
// start-up check, then the server until SIGTERM or SIGINT.
#pragma once

#include <cstddef>

#include "appliance/keys.hpp"
#include "appliance/server/audit.hpp"
#include "appliance/server/config.hpp"
#include "appliance/server/dispatch.hpp"
#include "appliance/server/listener.hpp"
#include "appliance/server/secrets.hpp"
#include "appliance/server/stats.hpp"
#include "pkcs11/session.hpp"
#include "schemas/result.hpp"

namespace lorakeep::appliance::server {

/// What the appliance checks before it serves: the known-answer self-tests pass through the
/// token, and the storage key exists and passes the key policy. The failure names which.
Result<Ok> startup_check(pkcs11::Session& session, KeyDirectory& keys);

/// Loads the module, opens one session and runs startup_check: the check the master runs in
/// a child process before it binds the socket. Never throws.
Result<Ok> check_token(const Config& config, const pkcs11::SecretBytes& pin) noexcept;

struct WorkerPlan {
  const Config& config;
  const Secrets& secrets;
  const Listener& listener;
  SharedStats& stats;
  AuditLog& audit;
  std::size_t index;  // the worker's slot in `stats`
  int ready_fd;       // one byte is written here once the worker serves; -1: none
};

/// The body of a forked worker; returns its exit status (0 after SIGTERM/SIGINT).
int run_worker(const WorkerPlan& plan) noexcept;

}  // namespace lorakeep::appliance::server
