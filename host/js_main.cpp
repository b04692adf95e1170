// lorakeep-js: the Backend Interfaces Join Server (DESIGN.md §1, §3).
//
//   lorakeep-js [--config FILE]    (default: $LORAKEEP_CONFIG, then /etc/lorakeep/lorakeep.yml)
//
// Prints "lorakeep-js ready on https://HOST:PORT/" once it serves. SIGHUP (and every
// join_server.reload_interval_s) reloads the sender CA map; SIGTERM or SIGINT stops it after
// the requests in flight are answered. Exit status: 0 stopped cleanly, 1 could not start,
// 2 wrong command line.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>

#include "host/appliance_client.hpp"
#include "host/js/config.hpp"
#include "host/js/https_server.hpp"
#include "host/js/join_service.hpp"
#include "host/js/log.hpp"
#include "host/js/metrics.hpp"
#include "host/js/sender_auth.hpp"
#include "host/registry/sqlite.hpp"
#include "lorakeep_config.h"

namespace {

using namespace lorakeep;
using namespace lorakeep::host;

constexpr const char* default_config = "/etc/lorakeep/lorakeep.yml";

struct Startup : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The current sender CA map, replaced as a whole on reload.
class CaMapHolder {
 public:
  explicit CaMapHolder(std::filesystem::path file) : file_(std::move(file)) {}
  Result<Ok> reload() {
    auto loaded = js::SenderCaMap::load(file_);
    if (!loaded) return loaded.failure();
    const std::lock_guard lock(mutex_);
    map_ = *loaded;
    return Ok{};
  }
  std::shared_ptr<const js::SenderCaMap> get() const {
    const std::lock_guard lock(mutex_);
    return map_;
  }

 private:
  std::filesystem::path file_;
  mutable std::mutex mutex_;
  std::shared_ptr<const js::SenderCaMap> map_;
};

std::optional<SecretBuffer> cluster_secret(const js::Config& c) {
  if (c.cluster_secret_file) {
    auto s = SecretBuffer::from_file(c.cluster_secret_file->string());
    if (!s) throw Startup("join_server.appliance.cluster_secret_file: " + s.failure().message);
    return std::move(*s);
  }
  if (const char* env = std::getenv("LORAKEEP_CLUSTER_SECRET"); env != nullptr && *env != 0) {
    SecretBuffer s(std::span(reinterpret_cast<const std::uint8_t*>(env), std::strlen(env)));
    // The variable is not left behind for child processes or /proc/PID/environ readers.
    std::memset(const_cast<char*>(env), 0, std::strlen(env));
    unsetenv("LORAKEEP_CLUSTER_SECRET");
    return s;
  }
  return std::nullopt;
}

void log_peers(registry::Registry& registry) {
  auto peers = registry.list_peers();
  if (!peers) return;
  for (const auto& p : *peers) {
    if (!p.kek_label && p.plaintext_keys) {
      js::log_event(
          spdlog::level::warn, "plaintext_key_delivery_configured",
          {{"peer", p.id}, {"kind", p.kind == registry::PeerKind::network_server ? "ns" : "as"}});
    }
  }
}

int run(const std::filesystem::path& config_file) {
  const js::Config config = js::load_config(config_file);
  js::set_log_level(spdlog::level::from_str(config.log_level));

  registry::SqliteOptions ro;
  ro.path = config.registry;
  ro.registry.dev_nonce_history = config.dev_nonce_history;
  ro.registry.sessions_kept = config.sessions_kept;
  // Every HTTPS thread may read at once (WAL readers do not block each other or the writer).
  ro.read_connections = std::min<std::size_t>(config.threads, 64);
  auto registry = registry::open_sqlite(ro);
  if (!registry) throw Startup(registry.failure().message);

  CaMapHolder ca_map(config.sender_ca_map);
  if (auto loaded = ca_map.reload(); !loaded) throw Startup(loaded.failure().message);

  std::unique_ptr<ApplianceClient> appliance;
  if (config.mode == js::Config::Mode::join_server) {
    ClientOptions co;
    co.endpoints = config.appliance_endpoints;
    co.cluster_secret = cluster_secret(config);
    co.connections_per_endpoint = config.connections_per_endpoint;
    auto client = ApplianceClient::create(std::move(co));
    if (!client) throw Startup("join_server.appliance: " + client.failure().message);
    appliance = std::move(*client);
  }

  js::Metrics metrics;
  js::ServiceOptions so;
  so.mode = config.mode;
  so.lifetime_s = config.lifetime_s;
  so.keep_app_s_key_always = config.keep_app_s_key_always;
  so.appliance_deadline = config.appliance_deadline;
  so.home_ns_req_net_ids = config.home_ns_req_net_ids;
  so.per_sender = config.per_sender;
  so.per_dev_eui = config.per_dev_eui;
  js::JoinService service(
      so, **registry, appliance.get(), [&ca_map] { return ca_map.get(); }, metrics);
  log_peers(**registry);

  // Signals are taken synchronously below; every thread started from here inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  for (const int s : {SIGTERM, SIGINT, SIGHUP})
    sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  js::HttpsOptions ho;
  ho.host = config.listen_host;
  ho.port = config.listen_port;
  ho.certificate = config.tls_certificate;
  ho.private_key = config.tls_private_key;
  ho.threads = config.threads;
  ho.max_body_bytes = config.max_body_bytes;
  ho.request_timeout = config.request_timeout;
  ho.keep_alive_timeout = config.keep_alive_timeout;
  std::map<std::string, js::Handler> routes;
  routes["POST /"] = [&service](const js::HttpRequest& r) { return service.handle(r); };
  routes["GET /healthz"] = [](const js::HttpRequest&) { return js::JoinService::healthz(); };
  routes["GET /readyz"] = [&service](const js::HttpRequest&) { return service.readyz(); };
  routes["GET /metrics"] = [&service](const js::HttpRequest&) { return service.metrics(); };
  auto server = js::HttpsServer::start(ho, std::move(routes));
  if (!server) throw Startup(server.failure().message);

  const bool v6 =
      config.listen_host.find(':') != std::string::npos && !config.listen_host.starts_with('[');
  const std::string url = "https://" + (v6 ? "[" + config.listen_host + "]" : config.listen_host) +
                          ":" + std::to_string((*server)->port()) + "/";
  js::log_event(spdlog::level::info, "ready",
                {{"url", url},
                 {"mode", config.mode == js::Config::Mode::identity ? "identity" : "join_server"},
                 {"release", LORAKEEP_VERSION}});
  std::cout << "lorakeep-js ready on " << url << std::endl;

  const timespec interval{static_cast<time_t>(config.reload_interval.count()), 0};
  for (;;) {
    const int s = sigtimedwait(&signals, nullptr, &interval);
    if (s == SIGTERM || s == SIGINT) break;
    if (auto r = ca_map.reload(); !r) {
      js::log_event(spdlog::level::err, "sender_ca_map_reload_failed",
                    {{"detail", r.failure().message}, {"kept", "the map loaded before"}});
    } else if (s == SIGHUP) {
      js::log_event(spdlog::level::info, "sender_ca_map_reloaded",
                    {{"senders", ca_map.get()->senders()}});
    }
  }
  js::log_event(spdlog::level::info, "stopping", {});
  server->reset();  // answers what is in flight, then closes
  js::log_event(spdlog::level::info, "stopped", {});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path config_file;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_file = argv[++i];
    } else if (arg == "--help" || arg == "-h") {
      std::cout << "usage: lorakeep-js [--config FILE]\n"
                   "  FILE defaults to $LORAKEEP_CONFIG, then "
                << default_config << "\n";
      return 0;
    } else if (arg == "--version") {
      std::cout << "lorakeep-js " << LORAKEEP_VERSION << "\n";
      return 0;
    } else {
      std::cerr << "lorakeep-js: unknown argument '" << arg << "' (try --help)\n";
      return 2;
    }
  }
  if (config_file.empty()) {
    const char* env = std::getenv("LORAKEEP_CONFIG");
    config_file = env != nullptr && *env != 0 ? env : default_config;
  }
  try {
    return run(config_file);
  } catch (const std::exception& e) {
    js::log_event(spdlog::level::err, "start_failed", {{"detail", e.what()}});
    std::cerr << "lorakeep-js: " << e.what() << "\n";
    return 1;
  }
}
