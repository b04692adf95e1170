// lorakeep-cs as a real process: a token made here (TestToken: SoftHSMv2 or NSS softoken), a
// configuration directory, both handed to the unprivileged user "nobody" (the tests run as
// root, and lorakeep-cs drops to `user:` before it loads the module), and the program
// started from the build.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "token_fixture.hpp"

namespace lorakeep::test {

enum class StorageKey { good, weak, missing };

/// A token with a storage key (or a weak or no one), KEKs "ns-kek" and "as-kek", and a
/// configuration directory: pin, cluster.secret, lorakeep.yml.
struct Installation {
  explicit Installation(StorageKey storage = StorageKey::good);

  /// Writes lorakeep.yml: `listen` as given, `extra` appended to the appliance section,
  /// `pkcs11_extra` to its pkcs11 section.
  std::filesystem::path write_config(const std::string& listen, const std::string& extra = "",
                                     const std::string& pkcs11_extra = "");
  /// Gives the token and configuration directories to "nobody" (when the test runs as root).
  void hand_over() const;

  TestToken token;
  pkcs11::Session session;
  appliance::KeyDirectory keys;
  Bytes kek_ns;
  Bytes kek_as;
  Bytes cluster_secret;
  TempDir dir;
  TempDir logs;  // the process's stdout and stderr, kept by root
};

class CsProcess {
 public:
  /// Starts lorakeep-cs --config `config`.
  CsProcess(const std::filesystem::path& config, const std::filesystem::path& logs);
  ~CsProcess();
  CsProcess(const CsProcess&) = delete;
  CsProcess& operator=(const CsProcess&) = delete;

  /// The address from "lorakeep-cs ready on ADDRESS", or nullopt if the process ended or
  /// the time ran out first.
  std::optional<std::string> wait_ready(std::chrono::seconds timeout);
  /// The exit status (or 128 + signal), nullopt when still running after `timeout`.
  std::optional<int> wait_exit(std::chrono::seconds timeout);
  void signal(int sig) const;
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] std::string stderr_text() const;
  /// Child processes of lorakeep-cs (its workers), from /proc.
  [[nodiscard]] std::vector<pid_t> children() const;

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::filesystem::path stderr_path_;
  std::string stdout_buffer_;
  bool exited_ = false;
};

/// No report of AddressSanitizer or UndefinedBehaviorSanitizer in a process's stderr (the
/// sanitizer build runs lorakeep-cs instrumented too; a worker that trips one dies and is
/// restarted, so its report is the only trace).
bool sanitizer_clean(const std::string& stderr_text);

/// The "Uid:" (real) of a process from /proc/<pid>/status.
uid_t process_uid(pid_t pid);
/// The owner of /proc/<pid>/environ: root for a process that is not dumpable, else the
/// process's user.
uid_t proc_owner(pid_t pid);

}  // namespace lorakeep::test
