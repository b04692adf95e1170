// Process hardening (DESIGN.md §6): no core dumps, no ptrace, memory locked, privileges
// dropped to an unprivileged user before the PKCS#11 module is loaded.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lorakeep::appliance::server {

/// PR_SET_DUMPABLE 0 (no core dump, no ptrace attach by the same user, /proc/<pid> owned by
/// root) and RLIMIT_CORE 0. The kernel sets "dumpable" back when the uid changes, so this
/// runs again after drop_privileges. Throws std::system_error.
void forbid_core_dumps();

/// Whether the process is dumpable now (PR_GET_DUMPABLE).
[[nodiscard]] bool dumpable();

/// Locks all current and future memory. As root, RLIMIT_MEMLOCK is raised to infinity first.
/// Not as root, memory is locked only when RLIMIT_MEMLOCK is already unlimited: with a
/// finite limit, MCL_FUTURE would make later allocations fail once the limit is reached.
/// Returns nullopt when locked, else a warning; throws std::runtime_error with that warning
/// when `required`. Memory locks are not inherited by fork(): every process calls this.
std::optional<std::string> lock_memory(bool required);

struct UserIds {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

/// Looks `name` up; throws ConfigError ("appliance.user: …") when there is no such user.
UserIds resolve_user(const std::string& name);

/// initgroups + setgid + setuid to `user`, then checks that root cannot be regained.
/// Throws std::system_error.
void drop_privileges(const UserIds& user);

/// setenv for each pair (pkcs11.environment), before the module is loaded.
void apply_environment(const std::vector<std::pair<std::string, std::string>>& vars);

}  // namespace lorakeep::appliance::server
