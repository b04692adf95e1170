// lorakeep-js configuration: the `join_server:` section of lorakeep.yml, checked once at
// start-up (every key is in docs/configuration.md). Relative paths are taken from the
// file's directory.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "schemas/config/yaml_reader.hpp"
#include "schemas/lorawan/types.hpp"

namespace lorakeep::host::js {

using config::ConfigError;

/// A token bucket: `rate` requests a second on average, bursts of up to `burst`.
struct RateLimit {
  double rate = 0;  // 0: unlimited
  double burst = 0;
};

struct Config {
  std::filesystem::path file;
  /// join_server: every message; identity: HomeNSReq only, no appliance.
  enum class Mode { join_server, identity } mode = Mode::join_server;

  // HTTPS
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 8443;       // 0 picks a free port; the ready line names it
  std::filesystem::path tls_certificate;  // PEM: the server's certificate and its chain
  std::filesystem::path tls_private_key;  // PEM
  std::filesystem::path sender_ca_map;    // config.yml: <sender-id>: <ca.pem>
  std::size_t threads = 32;
  std::size_t max_body_bytes = 65536;
  std::chrono::milliseconds request_timeout{10000};     // a whole request, headers and body
  std::chrono::milliseconds keep_alive_timeout{30000};  // idle between requests
  std::chrono::seconds reload_interval{5};              // sender CA map and peers

  // registry
  std::filesystem::path registry;  // the SQLite file
  std::size_t dev_nonce_history = 128;
  std::size_t sessions_kept = 4;

  // appliance (mode join_server)
  std::vector<std::string> appliance_endpoints;
  std::optional<std::filesystem::path> cluster_secret_file;  // absent: LORAKEEP_CLUSTER_SECRET
  std::size_t connections_per_endpoint = 8;
  std::chrono::milliseconds appliance_deadline{2000};

  // answers
  std::uint32_t lifetime_s = 86400 * 7;
  /// always: every join keeps the AppSKey wrapped under the storage key, so an AppSKeyReq
  /// is answered even when the JoinAns carried it (one wrap more per join).
  /// when_not_delivered: only when the JoinAns carries no AppSKey for the AS (TS002: the AS
  /// then asks for it); an AppSKeyReq for a session whose key went in the JoinAns is
  /// answered UnknownDevEUI.
  bool keep_app_s_key_always = true;
  /// HomeNSReq answered only to these NetIDs; empty: any authenticated Network Server.
  std::vector<lorawan::NetId> home_ns_req_net_ids;

  // rate limits, answered without touching the appliance
  RateLimit per_sender{1000, 2000};
  RateLimit per_dev_eui{1, 20};

  std::string log_level = "info";
};

/// Reads and checks `file`'s join_server section. Throws ConfigError.
Config load_config(const std::filesystem::path& file);
/// The same from text.
Config parse_config(const std::string& yaml, const std::filesystem::path& base_dir,
                    const std::string& name);

}  // namespace lorakeep::host::js
