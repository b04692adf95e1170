// The master process of lorakeep-cs: reads the configuration and secrets, hardens itself,
// has the token checked in a child, binds the socket, drops privileges, forks the workers,
// restarts any that die, and shuts them down on SIGTERM/SIGINT. It never loads the PKCS#11
// module itself.
#pragma once

#include <filesystem>

namespace lorakeep::appliance::server {

/// Exit statuses of lorakeep-cs.
inline constexpr int exit_ok = 0;
inline constexpr int exit_failed = 1;         // start-up check, bind, a worker that cannot start
inline constexpr int exit_configuration = 2;  // the configuration or a secret is unusable

/// Runs lorakeep-cs with the configuration in `config_file`; returns the exit status.
/// Prints "lorakeep-cs ready on <address>" on stdout once every worker serves.
int run_appliance(const std::filesystem::path& config_file);

}  // namespace lorakeep::appliance::server
