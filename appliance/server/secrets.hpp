// The PIN and the cluster secret: read from files or the environment into zeroizing
// SecretBytes, never from the command line, never printed.
#pragma once

#include "appliance/server/config.hpp"
#include "pkcs11/secret.hpp"

namespace lorakeep::appliance::server {

struct Secrets {
  pkcs11::SecretBytes pin;
  /// The TLS PSK derived from the cluster secret (tls.hpp); empty for a Unix socket.
  pkcs11::SecretBytes cluster_psk;
};

/// Reads the user PIN (pkcs11.pin_file, else LORAKEEP_PIN) and, when listening on TCP, the
/// cluster secret (cluster_secret_file, else LORAKEEP_CLUSTER_SECRET; at least 16 bytes,
/// one trailing newline dropped). Variables used are wiped and removed from the
/// environment. Throws ConfigError naming the key or variable, never the value.
Secrets load_secrets(const Config& config);

/// A secret file's bytes with exactly one trailing "\n" dropped (at most 4096 bytes).
/// Throws ConfigError naming `key` and the file.
pkcs11::SecretBytes read_secret_file(const std::filesystem::path& file, std::string_view key);

}  // namespace lorakeep::appliance::server
