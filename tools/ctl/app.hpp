// lorakeepctl's shared frame: the exit codes, the error type every command throws, and the
// Context that holds the global options and opens what a command needs (configuration,
// registry, appliance client) only when it asks for it.
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "appliance/server/config.hpp"
#include "host/appliance_client.hpp"
#include "host/js/config.hpp"
#include "host/registry/registry.hpp"
#include "schemas/result.hpp"

namespace lorakeep::ctl {

/// What scripts can rely on (docs/operations.md lists them).
enum class Exit : int {
  ok = 0,
  failure = 1,        // the operation failed (token, registry or appliance error)
  usage = 2,          // bad arguments, configuration or secret file
  not_found = 3,      // no such device, peer or key
  exists = 4,         // the device or key is there already
  unavailable = 5,    // the appliance or the token cannot be reached
  rejected_rows = 6,  // an import finished, but some rows were rejected
  check_failed = 7,   // token status found a key that fails the policy; selftest failed
};

/// A command's failure: the exit code and a message for stderr (never key material).
class CtlError : public std::runtime_error {
 public:
  CtlError(Exit code, const std::string& message) : std::runtime_error(message), code_(code) {}
  [[nodiscard]] Exit code() const noexcept { return code_; }

 private:
  Exit code_;
};

/// The exit code for a lorakeep Failure (registry, appliance client).
Exit exit_for(const Failure& f) noexcept;
/// Throws CtlError for a failed Result, the message prefixed with `doing`.
template <class T>
T must(Result<T> r, const std::string& doing) {
  if (!r.ok()) {
    throw CtlError(exit_for(r.failure()),
                   doing.empty() ? r.failure().message : doing + ": " + r.failure().message);
  }
  return std::move(r).value();
}

/// How long a command waits for lorakeep-cs to answer its first question (Info) before it
/// says that the appliance is down.
inline constexpr std::chrono::milliseconds appliance_check_deadline{2000};

struct Globals {
  std::string config;  // --config; empty: LORAKEEP_CONFIG, then the default
  bool json = false;   // --json
};

class Context {
 public:
  Context();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  Context(Context&&) = delete;
  Context& operator=(Context&&) = delete;

  Globals globals;
  /// Set by the subcommand's parse callback; main runs it after parsing.
  std::function<int(Context&)> action;

  [[nodiscard]] bool json() const noexcept { return globals.json; }

  /// --config, else LORAKEEP_CONFIG, else /etc/lorakeep/lorakeep.yml; it must exist.
  const std::filesystem::path& config_path();
  /// The appliance: section (lorakeep-cs's parser).
  const appliance::server::Config& appliance_config();
  /// The join_server: section (lorakeep-js's parser).
  const host::js::Config& join_server_config();
  /// Whether lorakeep.yml has a join_server: section (a machine that runs only lorakeep-cs
  /// has none: token commands then keep no registry audit record).
  bool has_join_server_section();

  /// The registry of join_server.registry, opened on first use.
  host::registry::Registry& registry(std::size_t read_connections = 2);
  /// Closes the registry (its threads end): before a fork.
  void close_registry() noexcept { registry_.reset(); }
  /// A client of join_server.appliance.endpoints with this many connections per endpoint.
  host::ApplianceClient& appliance(std::size_t connections_per_endpoint);
  /// The deadline of one appliance request (at least 10 s: imports queue behind each other).
  std::chrono::milliseconds appliance_deadline();

  /// "lorakeepctl:<user>" for audit records and the appliance's audit log.
  [[nodiscard]] const std::string& actor() const noexcept { return actor_; }
  /// An audit record in the registry; a failure to write it is an error of the command.
  void audit(const std::string& what, const std::string& subject, const std::string& detail);

 private:
  std::optional<std::filesystem::path> config_path_;
  std::optional<appliance::server::Config> appliance_config_;
  std::optional<host::js::Config> join_server_config_;
  std::unique_ptr<host::registry::Registry> registry_;
  std::unique_ptr<host::ApplianceClient> appliance_;
  std::string actor_;
};

/// A subcommand with its one-line description and an example shown by --help.
CLI::App* add_command(CLI::App& parent, const std::string& name, const std::string& description,
                      const std::string& example);

/// Makes `sub` set ctx.action to `run(ctx, *options)` when it is parsed.
template <class Options>
void on_parsed(CLI::App* sub, Context& ctx, std::shared_ptr<Options> options,
               int (*run)(Context&, const Options&)) {
  sub->callback([&ctx, options, run] {
    ctx.action = [options, run](Context& c) { return run(c, *options); };
  });
}

/// Each group registers its subcommands on `app`; a subcommand's callback sets ctx.action.
void register_token(CLI::App& app, Context& ctx);
void register_kek(CLI::App& app, Context& ctx);
void register_part(CLI::App& app, Context& ctx);
void register_peer(CLI::App& app, Context& ctx);
void register_device(CLI::App& app, Context& ctx);
/// lorakeepctl join-test (join_test.cpp) and bench (bench.cpp): a Network Server's view.
void register_join_test(CLI::App& app, Context& ctx);
void register_bench(CLI::App& app, Context& ctx);

/// Prints the current exception ("lorakeepctl: …" on stderr; with --json also an error
/// object on stdout) and returns its exit code. Call only inside a catch block.
int report_current_exception(const Context& ctx) noexcept;

}  // namespace lorakeep::ctl
