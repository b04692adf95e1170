#include "appliance/server/secrets.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "appliance/server/tls.hpp"

namespace lorakeep::appliance::server {
namespace {

/// The variable's value, its bytes in the environment wiped and the variable removed so
/// that the module and children do not inherit it. nullopt when unset or empty.
std::optional<pkcs11::SecretBytes> take_env(const char* name) {
  char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  const std::size_t n = std::strlen(value);
  std::optional<pkcs11::SecretBytes> out;
  std::size_t used = n;
  if (used > 0 && value[used - 1] == '\n') --used;
  if (used > 0) {
    out = pkcs11::SecretBytes(std::span(reinterpret_cast<const std::uint8_t*>(value), used));
  }
  pkcs11::secure_zero(value, n);
  ::unsetenv(name);
  return out;
}

}  // namespace

pkcs11::SecretBytes read_secret_file(const std::filesystem::path& file, std::string_view key) {
  // One reader for secret files (size cap, newline rule, buffer wiped): pkcs11's.
  try {
    return pkcs11::SecretBytes::from_file(file.c_str());
  } catch (const std::runtime_error& e) {
    throw ConfigError(std::string(key) + ": " + e.what());
  }
}

Secrets load_secrets(const Config& config) {
  Secrets out;
  if (config.pkcs11.pin_file) {
    out.pin = read_secret_file(*config.pkcs11.pin_file, "appliance.pkcs11.pin_file");
  } else if (auto pin = take_env("LORAKEEP_PIN")) {
    out.pin = std::move(*pin);
  } else {
    throw ConfigError(
        "appliance.pkcs11.pin_file: no user PIN: set pin_file or the LORAKEEP_PIN variable");
  }
  if (config.listen.kind != ListenAddress::Kind::tcp) return out;

  pkcs11::SecretBytes secret;
  const char* key = "appliance.cluster_secret_file";
  if (config.cluster_secret_file) {
    secret = read_secret_file(*config.cluster_secret_file, key);
  } else if (auto env = take_env("LORAKEEP_CLUSTER_SECRET")) {
    secret = std::move(*env);
    key = "LORAKEEP_CLUSTER_SECRET";
  } else {
    throw ConfigError(
        "appliance.cluster_secret_file: listening on TCP needs the cluster secret: set "
        "cluster_secret_file or the LORAKEEP_CLUSTER_SECRET variable");
  }
  try {
    out.cluster_psk = cluster_psk(secret);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(std::string(key) + ": " + e.what());
  }
  return out;
}

}  // namespace lorakeep::appliance::server
