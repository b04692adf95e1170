// lorakeep-cs configuration: the `appliance:` section of lorakeep.yml, checked once at
// start-up. Every wrong value is refused with a message naming the key and what it expects.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "appliance/keys.hpp"
#include "pkcs11/module.hpp"

namespace lorakeep::appliance::server {

/// A configuration that cannot be used. what() names the file, the line when known, the key
/// and what it expects, e.g. "lorakeep.yml:7: appliance.workers: expected an integer from 1
/// to 64, got '0'".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Where the server listens: a Unix domain socket, or TCP with TLS 1.3 PSK.
struct ListenAddress {
  enum class Kind { unix_socket, tcp };
  Kind kind = Kind::unix_socket;
  std::filesystem::path path;  // unix_socket
  std::string host;            // tcp: an IPv4/IPv6 literal or a host name; "*" for any
  std::uint16_t port = 0;      // tcp: 0 picks a free port (the ready line names it)

  /// "unix:/run/lorakeep/cs.sock" or "127.0.0.1:4700" ("[::1]:4700" for IPv6).
  [[nodiscard]] std::string to_string() const;
};

/// Parses "unix:PATH" (a relative PATH is taken from `base_dir`) or "HOST:PORT"
/// ("[V6]:PORT"). Throws ConfigError naming `key`.
ListenAddress parse_listen(std::string_view text, const std::filesystem::path& base_dir,
                           std::string_view key = "appliance.listen");

struct Pkcs11Config {
  std::filesystem::path module;
  std::optional<std::string> init_args;  // C_Initialize reserved string (NSS: configdir=…)
  pkcs11::TokenSelector token;           // exactly one of label, serial, slot
  std::optional<std::filesystem::path> pin_file;  // absent: the LORAKEEP_PIN variable
  /// Set in the process environment before the module is loaded (SOFTHSM2_CONF, …).
  std::vector<std::pair<std::string, std::string>> environment;
  /// Long-lived keys created with CKA_ALLOWED_MECHANISMS (false for NSS softoken, which
  /// cannot store it on token objects). See appliance::Policy.
  bool allowed_mechanisms = true;
  /// A worker finalizes and initializes the module again (C_Finalize, C_Initialize, new
  /// sessions, keys looked up again) after this many token operations; 0: never. SoftHSMv2
  /// keeps every session object it ever destroyed until C_Finalize (about 2 KB per join)
  /// and slows down as they pile up; a hardware HSM frees them, and can use 0.
  std::uint64_t reinitialize_after = 2'000;
};

struct Config {
  std::filesystem::path file;  // where it was read from (for messages)
  Pkcs11Config pkcs11;
  ListenAddress listen;
  std::optional<std::filesystem::path> cluster_secret_file;  // absent: LORAKEEP_CLUSTER_SECRET
  unsigned workers = 2;
  unsigned sessions_per_worker = 1;
  std::filesystem::path audit_log;
  std::string user = "lorakeep";
  bool trusted_keks = false;
  std::chrono::milliseconds request_deadline{2000};
  std::size_t max_connections = 256;
  std::chrono::milliseconds idle_timeout{30000};
  std::chrono::milliseconds handshake_timeout{5000};
  bool require_memory_lock = false;
};

/// The key policy the configuration asks for (trusted KEKs, CKA_ALLOWED_MECHANISMS).
appliance::Policy key_policy(const Config& config);

/// Reads and checks `file`. Relative paths in it are relative to the file's directory.
Config load_config(const std::filesystem::path& file);

/// The same from text: `base_dir` anchors relative paths, `name` prefixes messages.
Config parse_config(const std::string& yaml, const std::filesystem::path& base_dir,
                    const std::string& name);

}  // namespace lorakeep::appliance::server
