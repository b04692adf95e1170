// TLS 1.3 with an external PSK derived from the cluster secret: no certificates, one
// ciphersuite. The host's client (host/) implements the same derivation and identity.
#pragma once

#include <string_view>

#include "pkcs11/secret.hpp"

using SSL_CTX = struct ssl_ctx_st;
using SSL = struct ssl_st;

namespace lorakeep::appliance::server {

inline constexpr std::string_view psk_identity = "lorakeep-cluster-v1";
inline constexpr std::string_view psk_context = "lorakeep cluster psk v1";
inline constexpr std::size_t min_cluster_secret = 16;

/// The PSK: SHA-256(psk_context || secret), 32 bytes. Throws std::invalid_argument when the
/// secret is shorter than min_cluster_secret bytes.
pkcs11::SecretBytes cluster_psk(const pkcs11::SecretBytes& secret);

/// A server SSL_CTX: TLS 1.3 only, TLS_AES_128_GCM_SHA256 only, the PSK found by
/// SSL_CTX_set_psk_find_session_callback for the identity above, no certificate, no session
/// tickets. A client with another identity or secret fails the handshake.
class TlsServer {
 public:
  /// Throws std::runtime_error when OpenSSL refuses the settings.
  explicit TlsServer(pkcs11::SecretBytes psk);
  ~TlsServer();
  TlsServer(const TlsServer&) = delete;
  TlsServer& operator=(const TlsServer&) = delete;

  /// A new SSL object on `fd` in server mode; null on failure. The caller frees it.
  [[nodiscard]] SSL* accept_on(int fd) const;

 private:
  pkcs11::SecretBytes psk_;
  SSL_CTX* ctx_ = nullptr;
};

}  // namespace lorakeep::appliance::server
