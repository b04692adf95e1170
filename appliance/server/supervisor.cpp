#include "appliance/server/supervisor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include "appliance/server/audit.hpp"
#include "appliance/server/config.hpp"
#include "appliance/server/hardening.hpp"
#include "appliance/server/listener.hpp"
#include "appliance/server/log.hpp"
#include "appliance/server/secrets.hpp"
#include "appliance/server/stats.hpp"
#include "appliance/server/worker.hpp"

namespace lorakeep::appliance::server {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

void say(const std::string& line) {
  std::fprintf(stderr, "lorakeep-cs: %s\n", line.c_str());
  std::fflush(stderr);
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("signal ") + ::strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

/// Blocks the signals the master handles (children inherit the mask) and reads them.
int master_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (const int s : {SIGTERM, SIGINT, SIGCHLD, SIGHUP})
    sigaddset(&set, s);
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return -1;
  return ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/// Runs the token check in a child (privileges dropped like a worker's); the master never
/// loads the module. The failure's message comes back through a pipe.
std::optional<std::string> check_in_child(const Config& config, const Secrets& secrets,
                                          const std::optional<UserIds>& user) {
  std::array<int, 2> pipe{};
  if (::pipe2(pipe.data(), O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return std::string("fork: ") + std::strerror(errno);
  if (pid == 0) {
    ::close(pipe[0]);
    std::string message;
    try {
      if (user) drop_privileges(*user);
      forbid_core_dumps();
      if (auto ok = check_token(config, secrets.pin); !ok) message = ok.failure().message;
    } catch (const std::exception& e) {
      message = e.what();
    }
    if (!message.empty()) (void)!::write(pipe[1], message.data(), message.size());
    ::_exit(message.empty() ? 0 : 1);
  }
  ::close(pipe[1]);
  std::string message;
  std::array<char, 512> buffer{};
  for (;;) {
    const ssize_t n = ::read(pipe[0], buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    message.append(buffer.data(), static_cast<std::size_t>(n));
  }
  ::close(pipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return std::nullopt;
  if (message.empty()) message = "the check process ended with " + describe(status);
  return message;
}

class Master {
 public:
  Master(const Config& config, const Secrets& secrets, const Listener& listener, SharedStats& stats,
         AuditLog& audit, int signals)
      : config_(config),
        secrets_(secrets),
        listener_(listener),
        stats_(stats),
        audit_(audit),
        signals_(signals) {}

  /// Forks the workers one after the other, each once the one before serves (SoftHSMv2
  /// rewrites its token file on every login, and a process reading it meanwhile gets
  /// CKR_GENERAL_ERROR). False when one could not start.
  bool start() {
    if (::pipe2(ready_.data(), O_CLOEXEC) != 0) return false;
    for (std::size_t i = 0; i < config_.workers; ++i) {
      if (!spawn(i) || !wait_ready()) return false;
    }
    return true;
  }

  /// Supervises until SIGTERM/SIGINT and every worker has exited.
  int supervise() {
    bool stopping = false;
    auto kill_at = Clock::time_point::max();
    while (!workers_.empty() || !stopping) {
      std::array<pollfd, 2> fds{pollfd{ready_[0], POLLIN, 0}, pollfd{signals_, POLLIN, 0}};
      if (::poll(fds.data(), fds.size(), 200) < 0 && errno != EINTR) break;
      if ((fds[0].revents & POLLIN) != 0) (void)drain_ready();
      if ((fds[1].revents & POLLIN) != 0) {
        const int signal = read_signal();
        if ((signal == SIGTERM || signal == SIGINT) && !stopping) {
          stopping = true;
          kill_at = Clock::now() + 60s;
          log_info("shutting_down", {{"signal", ::strsignal(signal)}});
          for (const auto& [pid, index] : workers_)
            ::kill(pid, SIGTERM);
        }
      }
      // SIGCHLD may be merged with another signal or lost in between: always reap.
      reap_all(stopping);
      if (stopping && Clock::now() > kill_at) {
        for (const auto& [pid, index] : workers_)
          ::kill(pid, SIGKILL);
        kill_at = Clock::time_point::max();
      }
      if (!stopping) restart_due();
    }
    log_info("stopped");
    return exit_ok;
  }

  void kill_all() {
    for (const auto& [pid, index] : workers_)
      ::kill(pid, SIGKILL);
    for (const auto& [pid, index] : workers_) {
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    workers_.clear();
  }

 private:
  bool spawn(std::size_t index) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      log_error("fork_failed", {{"error", std::strerror(errno)}});
      return false;
    }
    if (pid == 0) {
      // A worker whose master is gone (killed) shuts down as on SIGTERM.
      (void)::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != master_pid_) ::_exit(exit_failed);
      ::close(ready_[0]);
      ::close(signals_);
      const int status =
          run_worker(WorkerPlan{config_, secrets_, listener_, stats_, audit_, index, ready_[1]});
      ::_exit(status);
    }
    workers_[pid] = index;
    started_[index] = Clock::now();
    log_info("worker_started", {{"worker", index}, {"worker_pid", pid}});
    return true;
  }

  std::size_t drain_ready() {
    std::array<char, 64> buffer{};
    const ssize_t n = ::read(ready_[0], buffer.data(), buffer.size());
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  }

  /// Waits for one worker's ready byte; false if a worker dies first, a stop signal
  /// comes, or two minutes pass.
  bool wait_ready() {
    const auto deadline = Clock::now() + 120s;
    while (Clock::now() < deadline) {
      std::array<pollfd, 2> fds{pollfd{ready_[0], POLLIN, 0}, pollfd{signals_, POLLIN, 0}};
      if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) return false;
      if ((fds[0].revents & POLLIN) != 0) {
        char byte = 0;
        if (::read(ready_[0], &byte, 1) == 1) return true;
      }
      if ((fds[1].revents & POLLIN) != 0) {
        const int signal = read_signal();
        if (signal == SIGTERM || signal == SIGINT) return false;
      }
      if (reap_any()) return false;  // a worker died before serving
    }
    return false;
  }

  int read_signal() {
    signalfd_siginfo info{};
    int last = 0;
    while (::read(signals_, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
      const auto signal = static_cast<int>(info.ssi_signo);
      if (signal == SIGTERM || signal == SIGINT || last == 0) last = signal;
    }
    return last;
  }

  /// Reaps exited workers; true when one was reaped.
  bool reap_any() {
    bool any = false;
    int status = 0;
    pid_t pid = 0;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      any = true;
      const auto it = workers_.find(pid);
      if (it == workers_.end()) continue;
      log_error("worker_failed_to_start", {{"worker", it->second}, {"status", describe(status)}});
      workers_.erase(it);
    }
    return any;
  }

  void reap_all(bool stopping) {
    int status = 0;
    pid_t pid = 0;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      const auto it = workers_.find(pid);
      if (it == workers_.end()) continue;
      const std::size_t index = it->second;
      workers_.erase(it);
      if (stopping) {
        log_info("worker_exited", {{"worker", index}, {"status", describe(status)}});
        continue;
      }
      // A worker that dies on its own is replaced; one that dies at once waits a little,
      // so a token that is gone does not make the master spin.
      const bool quick = Clock::now() - started_[index] < 2s;
      log_error("worker_died", {{"worker", index},
                                {"worker_pid", pid},
                                {"status", describe(status)},
                                {"restart_in_ms", quick ? 1000 : 0}});
      stats_.retire_worker(index);
      restarts_[index] = Clock::now() + (quick ? 1s : 0s);
    }
  }

  void restart_due() {
    for (auto it = restarts_.begin(); it != restarts_.end();) {
      if (Clock::now() < it->second) {
        ++it;
        continue;
      }
      const std::size_t index = it->first;
      it = restarts_.erase(it);
      if (!spawn(index)) restarts_[index] = Clock::now() + 1s;
    }
  }

  const Config& config_;
  const Secrets& secrets_;
  const Listener& listener_;
  SharedStats& stats_;
  AuditLog& audit_;
  int signals_;
  pid_t master_pid_ = ::getpid();
  std::array<int, 2> ready_{-1, -1};
  std::map<pid_t, std::size_t> workers_;
  std::map<std::size_t, Clock::time_point> started_;
  std::map<std::size_t, Clock::time_point> restarts_;
};

}  // namespace

int run_appliance(const std::filesystem::path& config_file) {
  std::optional<Config> config;
  std::optional<Secrets> secrets;
  try {
    config = load_config(config_file);
    secrets = load_secrets(*config);
  } catch (const ConfigError& e) {
    say(e.what());
    return exit_configuration;
  } catch (const std::exception& e) {
    say(std::string("cannot read the configuration: ") + e.what());
    return exit_configuration;
  }

  try {
    // A reader of stdout or stderr that goes away must not kill the appliance.
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, nullptr);
    const int signals = master_signals();
    if (signals < 0) throw std::system_error(errno, std::generic_category(), "signalfd");
    forbid_core_dumps();
    if (auto warning = lock_memory(config->require_memory_lock)) {
      log_warn("memory_not_locked", {{"reason", *warning}});
    }
    std::optional<UserIds> user;
    if (::geteuid() == 0) {
      if (config->user == "root") {
        log_warn("running_as_root", {{"reason", "appliance.user is root"}});
      } else {
        user = resolve_user(config->user);
      }
    } else {
      log_info("not_root", {{"uid", ::getuid()}, {"note", "appliance.user applies only to root"}});
    }
    apply_environment(config->pkcs11.environment);

    if (auto problem = check_in_child(*config, *secrets, user)) {
      say("refusing to start: " + *problem);
      log_error("startup_check_failed", {{"reason", *problem}});
      return exit_failed;
    }
    log_info("startup_check_passed");

    // Opened while still privileged: workers inherit an append-only descriptor.
    AuditLog audit(config->audit_log);
    std::optional<Listener::Owner> owner;
    if (user) owner = Listener::Owner{user->uid, user->gid};
    const Listener listener(config->listen, owner);
    if (user) {
      drop_privileges(*user);
      forbid_core_dumps();  // the kernel makes the process dumpable again on a uid change
      log_info("privileges_dropped", {{"user", user->name}, {"uid", user->uid}});
    }
    SharedStats stats;
    Master master(*config, *secrets, listener, stats, audit, signals);
    if (!master.start()) {
      master.kill_all();
      say("refusing to start: a worker could not start (see the log above)");
      return exit_failed;
    }
    std::printf("lorakeep-cs ready on %s\n", listener.address().c_str());
    std::fflush(stdout);
    log_info("ready", {{"address", listener.address()},
                       {"workers", config->workers},
                       {"sessions_per_worker", config->sessions_per_worker}});
    return master.supervise();
  } catch (const ConfigError& e) {
    say(e.what());
    return exit_configuration;
  } catch (const std::exception& e) {
    say(std::string("refusing to start: ") + e.what());
    log_error("startup_failed", {{"reason", e.what()}});
    return exit_failed;
  }
}

}  // namespace lorakeep::appliance::server
