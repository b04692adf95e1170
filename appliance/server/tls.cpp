#include "appliance/server/tls.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <array>
#include <stdexcept>
#include <string>

namespace lorakeep::appliance::server {
namespace {

constexpr std::array<unsigned char, 2> aes_128_gcm_sha256 = {0x13, 0x01};

std::string openssl_error(std::string_view what) {
  std::string out(what);
  if (const unsigned long e = ERR_get_error(); e != 0) {
    std::array<char, 256> text{};
    ERR_error_string_n(e, text.data(), text.size());
    out += ": ";
    out += text.data();
  }
  ERR_clear_error();
  return out;
}

// Called by OpenSSL during the handshake: C code, so nothing may escape.
int find_psk(SSL* ssl, const unsigned char* identity, std::size_t identity_len,
             SSL_SESSION** session) noexcept {
  *session = nullptr;
  const std::string_view offered(reinterpret_cast<const char*>(identity), identity_len);
  if (offered != psk_identity) return 1;  // no PSK: the handshake fails (no certificate)
  const auto* psk =
      static_cast<const pkcs11::SecretBytes*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, aes_128_gcm_sha256.data());
  if (psk == nullptr || cipher == nullptr) return 0;
  SSL_SESSION* s = SSL_SESSION_new();
  if (s == nullptr) return 0;
  if (SSL_SESSION_set1_master_key(s, psk->reveal().data(), psk->size()) != 1 ||
      SSL_SESSION_set_cipher(s, cipher) != 1 ||
      SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION) != 1) {
    SSL_SESSION_free(s);
    return 0;
  }
  *session = s;
  return 1;
}

}  // namespace

pkcs11::SecretBytes cluster_psk(const pkcs11::SecretBytes& secret) {
  if (secret.size() < min_cluster_secret) {
    throw std::invalid_argument("the cluster secret must be at least " +
                                std::to_string(min_cluster_secret) + " bytes, it has " +
                                std::to_string(secret.size()));
  }
  std::array<std::uint8_t, 32> digest{};
  unsigned int len = 0;
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  const bool ok = md != nullptr && EVP_DigestInit_ex(md, EVP_sha256(), nullptr) == 1 &&
                  EVP_DigestUpdate(md, psk_context.data(), psk_context.size()) == 1 &&
                  EVP_DigestUpdate(md, secret.reveal().data(), secret.size()) == 1 &&
                  EVP_DigestFinal_ex(md, digest.data(), &len) == 1 && len == digest.size();
  EVP_MD_CTX_free(md);
  if (!ok) throw std::runtime_error(openssl_error("SHA-256 of the cluster secret"));
  pkcs11::SecretBytes psk(digest);
  pkcs11::secure_zero(digest.data(), digest.size());
  return psk;
}

TlsServer::TlsServer(pkcs11::SecretBytes psk) : psk_(std::move(psk)) {
  ctx_ = SSL_CTX_new(TLS_server_method());
  if (ctx_ == nullptr) throw std::runtime_error(openssl_error("SSL_CTX_new"));
  const bool ok = SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION) == 1 &&
                  SSL_CTX_set_max_proto_version(ctx_, TLS1_3_VERSION) == 1 &&
                  SSL_CTX_set_ciphersuites(ctx_, "TLS_AES_128_GCM_SHA256") == 1 &&
                  SSL_CTX_set_num_tickets(ctx_, 0) == 1 && SSL_CTX_set_app_data(ctx_, &psk_) == 1;
  if (!ok) {
    const std::string message = openssl_error("configuring TLS 1.3 PSK");
    SSL_CTX_free(ctx_);
    throw std::runtime_error(message);
  }
  SSL_CTX_set_options(ctx_,
                      SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_psk_find_session_callback(ctx_, find_psk);
}

TlsServer::~TlsServer() {
  SSL_CTX_free(ctx_);
}

SSL* TlsServer::accept_on(int fd) const {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return nullptr;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return ssl;
}

}  // namespace lorakeep::appliance::server
