#include "appliance/server/worker.hpp"

#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <optional>
#include <string>
#include <thread>

#include "appliance/join.hpp"
#include "appliance/server/hardening.hpp"
#include "appliance/server/log.hpp"
#include "appliance/server/server.hpp"
#include "appliance/server/tls.hpp"
#include "pkcs11/error.hpp"
#include "pkcs11/session_pool.hpp"

namespace lorakeep::appliance::server {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr std::size_t thread_stack = std::size_t{2} * 1024 * 1024;  // ASan's frames are larger
#else
constexpr std::size_t thread_stack = std::size_t{512} * 1024;
#endif

/// Connection threads get a small stack: with mlockall(MCL_FUTURE) every stack is resident.
void set_thread_stack() {
  pthread_attr_t attr;
  if (::pthread_attr_init(&attr) != 0) return;
  if (::pthread_attr_setstacksize(&attr, thread_stack) == 0) {
    (void)::pthread_setattr_default_np(&attr);
  }
  ::pthread_attr_destroy(&attr);
}

/// Reads SIGTERM and SIGINT (blocked by the master before it forked).
int stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

pkcs11::Module::Options module_options(const Config& config) {
  return {config.pkcs11.module, config.pkcs11.init_args};
}

}  // namespace

Result<Ok> startup_check(pkcs11::Session& session, KeyDirectory& keys) {
  if (auto ok = self_test(session); !ok) {
    return fail(ok.failure().status, "self-tests failed: " + ok.failure().message);
  }
  if (auto storage = keys.storage_key(session); !storage) {
    return fail(storage.failure().status, "storage key: " + storage.failure().message);
  }
  return Ok{};
}

Result<Ok> check_token(const Config& config, const pkcs11::SecretBytes& pin) noexcept {
  try {
    pkcs11::Module module(module_options(config));
    pkcs11::SessionPool pool(module, config.pkcs11.token, pin.clone(), 1);
    KeyDirectory keys(key_policy(config));
    auto lease = pool.acquire(std::chrono::seconds(30));
    return startup_check(*lease, keys);
  } catch (const pkcs11::Error& e) {
    return fail(Status::token_unavailable, std::string("the token cannot be used: ") + e.what());
  } catch (const std::exception& e) {
    return fail(Status::internal, e.what());
  }
}

int run_worker(const WorkerPlan& plan) noexcept {
  const auto& config = plan.config;
  try {
    forbid_core_dumps();  // inherited, but cheap to be sure of
    if (auto warning = lock_memory(config.require_memory_lock)) {
      log_warn("memory_not_locked", {{"reason", *warning}, {"worker", plan.index}});
    }
    set_thread_stack();
    const int signals = stop_signals();
    if (signals < 0) throw std::system_error(errno, std::generic_category(), "signalfd");

    // Initialized and logged in while no other worker does the same (SharedStats::lock_token).
    TokenLock token_lock(plan.stats, std::chrono::seconds(10));
    pkcs11::Module module(module_options(config));
    pkcs11::SessionPool pool(module, config.pkcs11.token, plan.secrets.pin.clone(),
                             config.sessions_per_worker);
    KeyDirectory keys(key_policy(config));
    ServiceInfo info;
    {
      auto lease = pool.acquire(std::chrono::seconds(30));
      if (auto ok = startup_check(*lease, keys); !ok) {
        log_error("startup_check_failed",
                  {{"worker", plan.index}, {"reason", ok.failure().message}});
        return 3;
      }
      const auto token = module.token_info(lease->slot());
      info.token_label = token.label;
      info.token_model = token.model;
      info.token_manufacturer = token.manufacturer;
    }
    token_lock.release();
    info.self_test_passed = true;
    info.workers = config.workers;
    info.sessions_per_worker = config.sessions_per_worker;

    std::optional<TlsServer> tls;
    if (plan.listener.tls()) tls.emplace(plan.secrets.cluster_psk.clone());
    DispatchContext context{pool,
                            keys,
                            plan.stats,
                            plan.index,
                            plan.audit,
                            info,
                            config.request_deadline,
                            config.pkcs11.reinitialize_after,
                            [&module, &config] {
                              // Another process rewriting the token's files can hide it
                              // from C_Initialize (SoftHSMv2): look, and try again.
                              for (int attempt = 1;; ++attempt) {
                                module.reinitialize();
                                try {
                                  (void)module.find_token(config.pkcs11.token);
                                  return;
                                } catch (const pkcs11::Error&) {
                                  if (attempt == 5) throw;
                                }
                                std::this_thread::sleep_for(std::chrono::milliseconds(20));
                              }
                            }};
    Dispatcher dispatcher(std::move(context));
    ServerSettings settings;
    settings.connection.idle_timeout = config.idle_timeout;
    settings.connection.handshake_timeout = config.handshake_timeout;
    settings.max_connections = config.max_connections;
    Server server(plan.listener.fd(), tls ? &*tls : nullptr, dispatcher, plan.stats, plan.index,
                  settings);
    log_info("worker_serving", {{"worker", plan.index},
                                {"sessions", config.sessions_per_worker},
                                {"token", info.token_label}});
    if (plan.ready_fd >= 0) {
      const char ready = 'R';
      (void)!::write(plan.ready_fd, &ready, 1);
      ::close(plan.ready_fd);
    }
    server.run(signals);
    ::close(signals);
    log_info("worker_stopped", {{"worker", plan.index}});
    return 0;
  } catch (const pkcs11::Error& e) {
    log_error("worker_failed", {{"worker", plan.index}, {"error", e.what()}});
    return 4;
  } catch (const std::exception& e) {
    log_error("worker_failed", {{"worker", plan.index}, {"error", e.what()}});
    return 4;
  } catch (...) {
    log_error("worker_failed", {{"worker", plan.index}, {"error", "unknown"}});
    return 4;
  }
}

}  // namespace lorakeep::appliance::server
