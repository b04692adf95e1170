#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <system_error>

#include "host/registry/sqlite.hpp"
#include "pkcs11/error.hpp"
#include "pkcs11/secret.hpp"
#include "schemas/config/yaml_reader.hpp"
#include "tools/ctl/app.hpp"

namespace lorakeep::ctl {
namespace fs = std::filesystem;

namespace {

constexpr const char* default_config = "/etc/lorakeep/lorakeep.yml";

std::string user_name() {
  const uid_t uid = ::getuid();
  std::string name;
  std::array<char, 4096> buf{};
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
    name = found->pw_name;
  } else {
    name = "uid" + std::to_string(uid);
  }
  // Who ran sudo is the more useful name; only root can pretend otherwise, and root can
  // do anything anyway.
  if (uid == 0) {
    if (const char* sudo = std::getenv("SUDO_USER"); sudo != nullptr && *sudo != '\0') {
      name = std::string(sudo) + "(sudo)";
    }
  }
  return name;
}

/// The cluster secret from LORAKEEP_CLUSTER_SECRET, its bytes wiped in the environment and
/// the variable removed; nullopt when unset.
std::optional<host::SecretBuffer> take_cluster_secret_env() {
  char* value = std::getenv("LORAKEEP_CLUSTER_SECRET");
  if (value == nullptr) return std::nullopt;
  const std::size_t n = std::strlen(value);
  std::size_t used = n;
  if (used > 0 && value[used - 1] == '\n') --used;
  std::optional<host::SecretBuffer> out;
  if (used > 0) {
    out.emplace(std::span(reinterpret_cast<const std::uint8_t*>(value), used));
  }
  pkcs11::secure_zero(value, n);
  ::unsetenv("LORAKEEP_CLUSTER_SECRET");
  return out;
}

}  // namespace

Exit exit_for(const Failure& f) noexcept {
  switch (f.status) {
    case Status::token_unavailable:
    case Status::deadline:
      return Exit::unavailable;
    case Status::unknown_key:
      return Exit::not_found;
    case Status::malformed:
      return Exit::usage;
    default:
      return Exit::failure;
  }
}

Context::Context() : actor_("lorakeepctl:" + user_name()) {}
Context::~Context() = default;

const fs::path& Context::config_path() {
  if (config_path_) return *config_path_;
  fs::path p;
  std::string source;
  if (!globals.config.empty()) {
    p = globals.config;
    source = "--config";
  } else if (const char* env = std::getenv("LORAKEEP_CONFIG"); env != nullptr && *env != '\0') {
    p = env;
    source = "LORAKEEP_CONFIG";
  } else {
    p = default_config;
    source = "the default location";
  }
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) {
    throw CtlError(Exit::usage, "no configuration file " + p.string() + " (" + source +
                                    "); give --config FILE or set LORAKEEP_CONFIG");
  }
  config_path_ = p;
  return *config_path_;
}

const appliance::server::Config& Context::appliance_config() {
  if (!appliance_config_) {
    try {
      appliance_config_ = appliance::server::load_config(config_path());
    } catch (const appliance::server::ConfigError& e) {
      throw CtlError(Exit::usage, e.what());
    } catch (const config::ConfigError& e) {
      throw CtlError(Exit::usage, e.what());
    }
  }
  return *appliance_config_;
}

bool Context::has_join_server_section() {
  try {
    const auto root = config::load_yaml(config::read_file(config_path()), config_path().string());
    return root.IsMap() && root["join_server"];
  } catch (const config::ConfigError& e) {
    throw CtlError(Exit::usage, e.what());
  }
}

const host::js::Config& Context::join_server_config() {
  if (!join_server_config_) {
    try {
      join_server_config_ = host::js::load_config(config_path());
    } catch (const config::ConfigError& e) {
      throw CtlError(Exit::usage, e.what());
    }
  }
  return *join_server_config_;
}

host::registry::Registry& Context::registry(std::size_t read_connections) {
  if (!registry_) {
    const auto& c = join_server_config();
    host::registry::SqliteOptions o;
    o.path = c.registry;
    o.registry.dev_nonce_history = c.dev_nonce_history;
    o.registry.sessions_kept = c.sessions_kept;
    o.read_connections = std::clamp<std::size_t>(read_connections, 1, 64);
    auto opened = host::registry::open_sqlite(o);
    if (!opened) throw CtlError(Exit::failure, opened.failure().message);
    registry_ = std::move(opened).value();
  }
  return *registry_;
}

host::ApplianceClient& Context::appliance(std::size_t connections_per_endpoint) {
  if (appliance_) return *appliance_;
  const auto& c = join_server_config();
  if (c.appliance_endpoints.empty()) {
    throw CtlError(Exit::usage,
                   config_path().string() +
                       ": join_server.appliance.endpoints: none configured; device keys are "
                       "wrapped by lorakeep-cs");
  }
  host::ClientOptions o;
  o.endpoints = c.appliance_endpoints;
  o.connections_per_endpoint = std::clamp<std::size_t>(connections_per_endpoint, 1, 1024);
  o.connect_timeout = std::chrono::milliseconds(2000);
  const bool tcp = std::any_of(o.endpoints.begin(), o.endpoints.end(),
                               [](const std::string& e) { return e.rfind("unix:", 0) != 0; });
  if (tcp) {
    if (c.cluster_secret_file) {
      o.cluster_secret = must(host::SecretBuffer::from_file(c.cluster_secret_file->string()),
                              "join_server.appliance.cluster_secret_file");
    } else if (auto env = take_cluster_secret_env()) {
      o.cluster_secret = std::move(*env);
    } else {
      throw CtlError(Exit::usage,
                     "join_server.appliance.cluster_secret_file: no cluster secret for the TCP "
                     "endpoints: set it or the LORAKEEP_CLUSTER_SECRET variable");
    }
  }
  appliance_ = must(host::ApplianceClient::create(std::move(o)), "join_server.appliance");
  return *appliance_;
}

std::chrono::milliseconds Context::appliance_deadline() {
  return std::max(join_server_config().appliance_deadline, std::chrono::milliseconds(10000));
}

void Context::audit(const std::string& what, const std::string& subject,
                    const std::string& detail) {
  host::registry::AuditRecord r;
  r.time_unix = static_cast<std::int64_t>(std::time(nullptr));
  r.actor = actor_;
  r.action = what;
  r.subject = subject;
  r.detail = detail;
  must(registry().audit(r), "writing the audit record (" + what + " " + subject + ")");
}

CLI::App* add_command(CLI::App& parent, const std::string& name, const std::string& description,
                      const std::string& example) {
  auto* sub = parent.add_subcommand(name, description);
  if (!example.empty()) sub->footer("Example:\n" + example);
  return sub;
}

int report_current_exception(const Context& ctx) noexcept {
  Exit code = Exit::failure;
  std::string message;
  try {
    throw;
  } catch (const CtlError& e) {
    code = e.code();
    message = e.what();
  } catch (const pkcs11::Error& e) {
    switch (e.error_class()) {
      case pkcs11::ErrorClass::pin:
        code = Exit::usage;
        message = std::string("the token refused the PIN: ") + e.what();
        break;
      case pkcs11::ErrorClass::token_lost:
      case pkcs11::ErrorClass::session_lost:
        code = Exit::unavailable;
        message = std::string("token unavailable: ") + e.what();
        break;
      default:
        message = std::string("token: ") + e.what();
    }
  } catch (const std::system_error& e) {
    message = e.what();
  } catch (const std::exception& e) {
    message = e.what();
  } catch (...) {
    message = "unknown error";
  }
  try {
    std::cout.flush();
    std::cerr << "lorakeepctl: " << message << "\n";
    if (ctx.json()) {
      nlohmann::json j = {{"error", {{"exit_code", static_cast<int>(code)}, {"message", message}}}};
      std::cout << j.dump() << "\n";
    }
    std::cout.flush();
  } catch (...) {  // NOLINT(bugprone-empty-catch): nothing left to report with
  }
  return static_cast<int>(code);
}

}  // namespace lorakeep::ctl
