#include "host/tls_psk.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <array>
#include <string>

namespace lorakeep::host::tls {

namespace {

// TLS_AES_128_GCM_SHA256 (RFC 8446, B.4).
constexpr std::array<unsigned char, 2> cipher_id = {0x13, 0x01};

// Where the psk_use_session callback finds its ClientContext.
int context_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// Called by OpenSSL inside SSL_connect: a C callback, so nothing may throw out of it.
int use_psk_session(SSL* ssl, const EVP_MD* md, const unsigned char** id, std::size_t* idlen,
                    SSL_SESSION** sess) noexcept {
  *sess = nullptr;
  const auto* self =
      static_cast<const ClientContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), context_index()));
  if (self == nullptr) return 0;
  // After a HelloRetryRequest OpenSSL names the hash the server chose; our PSK is for
  // SHA-256 only (the one ciphersuite), so offer nothing for any other.
  if (md != nullptr && EVP_MD_get_type(md) != NID_sha256) return 1;
  SSL_SESSION* session = make_psk_session(ssl, self->psk());
  if (session == nullptr) return 0;
  *id = reinterpret_cast<const unsigned char*>(psk_identity.data());
  *idlen = psk_identity.size();
  *sess = session;
  return 1;
}

}  // namespace

Result<SecretBuffer> derive_cluster_psk(std::span<const std::uint8_t> secret) {
  if (secret.empty()) return fail(Status::malformed, "the cluster secret is empty");
  std::array<unsigned char, 32> digest{};
  unsigned int length = 0;
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  const bool ok = md != nullptr && EVP_DigestInit_ex(md, EVP_sha256(), nullptr) == 1 &&
                  EVP_DigestUpdate(md, psk_context.data(), psk_context.size()) == 1 &&
                  EVP_DigestUpdate(md, secret.data(), secret.size()) == 1 &&
                  EVP_DigestFinal_ex(md, digest.data(), &length) == 1 && length == digest.size();
  EVP_MD_CTX_free(md);
  if (!ok) {
    OPENSSL_cleanse(digest.data(), digest.size());
    return fail(Status::internal, "SHA-256 of the cluster secret failed: " + drain_errors());
  }
  SecretBuffer psk(digest);
  OPENSSL_cleanse(digest.data(), digest.size());
  return psk;
}

SSL_SESSION* make_psk_session(SSL* ssl, std::span<const std::uint8_t> psk) noexcept {
  const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, cipher_id.data());
  if (cipher == nullptr) return nullptr;
  SSL_SESSION* session = SSL_SESSION_new();
  if (session == nullptr) return nullptr;
  if (SSL_SESSION_set1_master_key(session, psk.data(), psk.size()) != 1 ||
      SSL_SESSION_set_cipher(session, cipher) != 1 ||
      SSL_SESSION_set_protocol_version(session, TLS1_3_VERSION) != 1) {
    SSL_SESSION_free(session);
    return nullptr;
  }
  return session;
}

ClientContext::ClientContext(SSL_CTX* ctx, SecretBuffer psk) noexcept
    : ctx_(ctx), psk_(std::move(psk)) {}

ClientContext::~ClientContext() {
  SSL_CTX_free(ctx_);
}

Result<std::unique_ptr<ClientContext>> ClientContext::create(const SecretBuffer& cluster_secret) {
  auto psk = derive_cluster_psk(cluster_secret.reveal());
  if (!psk) return psk.failure();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return fail(Status::internal, "SSL_CTX_new: " + drain_errors());
  // Owned from here on, so every early return frees it.
  std::unique_ptr<ClientContext> self(new ClientContext(ctx, std::move(psk).value()));
  const std::string suite(ciphersuite);
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, suite.c_str()) != 1 ||
      SSL_CTX_set_ex_data(ctx, context_index(), self.get()) != 1) {
    return fail(Status::internal, "setting up the TLS client: " + drain_errors());
  }
  // Persistent connections, no resumption: every connection proves the PSK afresh.
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_psk_use_session_callback(ctx, use_psk_session);
  return self;
}

std::string drain_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    std::array<char, 256> text{};
    ERR_error_string_n(e, text.data(), text.size());
    if (!out.empty()) out += "; ";
    out += text.data();
  }
  return out.empty() ? std::string("no OpenSSL error recorded") : out;
}

}  // namespace lorakeep::host::tls
