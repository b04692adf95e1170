// TLS 1.3 with the cluster's external PSK, as both lorakeep-js and lorakeep-cs implement it
// (docs/configuration.md, "cluster secret"):
//   - TLS 1.3 only, ciphersuite TLS_AES_128_GCM_SHA256, no certificates;
//   - PSK identity "lorakeep-cluster-v1";
//   - PSK = SHA-256("lorakeep cluster psk v1" || the secret file's bytes, one trailing
//     newline stripped).
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "host/secret_buffer.hpp"
#include "schemas/result.hpp"

namespace lorakeep::host::tls {

inline constexpr std::string_view psk_identity = "lorakeep-cluster-v1";
inline constexpr std::string_view psk_context = "lorakeep cluster psk v1";
inline constexpr std::string_view ciphersuite = "TLS_AES_128_GCM_SHA256";

/// SHA-256(psk_context || secret): 32 bytes. Fails (malformed) on an empty secret.
Result<SecretBuffer> derive_cluster_psk(std::span<const std::uint8_t> secret);

/// A TLS 1.3 session carrying `psk` as its key, cipher TLS_AES_128_GCM_SHA256: what the
/// client's psk_use_session callback and a server's psk_find_session callback hand to
/// OpenSSL. Null on failure (OpenSSL's error queue says why). The caller owns the result.
SSL_SESSION* make_psk_session(SSL* ssl, std::span<const std::uint8_t> psk) noexcept;

/// A client SSL_CTX set up for the cluster PSK: TLS 1.3 only, the one ciphersuite, the PSK
/// offered through SSL_CTX_set_psk_use_session_callback, peer verification on with an empty
/// trust store (so a server that tries certificates instead of the PSK fails).
class ClientContext {
 public:
  /// Derives the PSK from the cluster secret; the secret itself is not kept.
  static Result<std::unique_ptr<ClientContext>> create(const SecretBuffer& cluster_secret);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;
  ClientContext(ClientContext&&) = delete;
  ClientContext& operator=(ClientContext&&) = delete;

  [[nodiscard]] SSL_CTX* get() const noexcept { return ctx_; }
  /// For the callback only.
  [[nodiscard]] std::span<const std::uint8_t> psk() const noexcept { return psk_.reveal(); }

 private:
  ClientContext(SSL_CTX* ctx, SecretBuffer psk) noexcept;
  SSL_CTX* ctx_ = nullptr;
  SecretBuffer psk_;
};

/// The text of OpenSSL's error queue (and clears it), for failure messages.
std::string drain_errors();

}  // namespace lorakeep::host::tls
