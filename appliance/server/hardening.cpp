#include "appliance/server/hardening.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "appliance/server/config.hpp"

namespace lorakeep::appliance::server {
namespace {

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace

void forbid_core_dumps() {
  const rlimit none{0, 0};
  if (::setrlimit(RLIMIT_CORE, &none) != 0) throw_errno("setrlimit(RLIMIT_CORE, 0)");
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) throw_errno("prctl(PR_SET_DUMPABLE, 0)");
}

bool dumpable() {
  return ::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0;
}

std::optional<std::string> lock_memory(bool required) {
  std::optional<std::string> warning;
  if (::geteuid() == 0) {
    const rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
    if (::setrlimit(RLIMIT_MEMLOCK, &unlimited) != 0) {
      warning = std::string("cannot raise RLIMIT_MEMLOCK: ") + std::strerror(errno);
    }
  }
  rlimit limit{};
  if (!warning && ::getrlimit(RLIMIT_MEMLOCK, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    warning = "RLIMIT_MEMLOCK is " + std::to_string(limit.rlim_cur) +
              " bytes, not unlimited (LimitMEMLOCK=infinity in the systemd unit)";
  }
  if (!warning && ::mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
    warning = std::string("mlockall failed: ") + std::strerror(errno);
  }
  if (warning && required) {
    throw std::runtime_error(
        "memory cannot be locked and appliance.require_memory_lock is "
        "true: " +
        *warning);
  }
  return warning;
}

UserIds resolve_user(const std::string& name) {
  passwd entry{};
  passwd* found = nullptr;
  std::vector<char> buffer(16384);
  const int rc = ::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (rc != 0 || found == nullptr) {
    throw ConfigError("appliance.user: there is no user '" + name +
                      "' on this system (create it, or name the unprivileged user "
                      "lorakeep-cs should run as)");
  }
  return UserIds{name, entry.pw_uid, entry.pw_gid};
}

void drop_privileges(const UserIds& user) {
  if (::initgroups(user.name.c_str(), user.gid) != 0) throw_errno("initgroups " + user.name);
  if (::setgid(user.gid) != 0) throw_errno("setgid " + std::to_string(user.gid));
  if (::setuid(user.uid) != 0) throw_errno("setuid " + std::to_string(user.uid));
  if (user.uid != 0 && (::setuid(0) == 0 || ::geteuid() == 0)) {
    throw std::runtime_error("root privileges could be regained after dropping them");
  }
}

void apply_environment(const std::vector<std::pair<std::string, std::string>>& vars) {
  for (const auto& [name, value] : vars) {
    if (::setenv(name.c_str(), value.c_str(), 1) != 0) throw_errno("setenv " + name);
  }
}

}  // namespace lorakeep::appliance::server
