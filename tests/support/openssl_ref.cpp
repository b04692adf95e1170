#include "openssl_ref.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <memory>
#include <stdexcept>

namespace lorakeep::test::ref {
namespace {

const EVP_CIPHER* ecb(std::size_t key_len) {
  switch (key_len) {
    case 16:
      return EVP_aes_128_ecb();
    case 24:
      return EVP_aes_192_ecb();
    case 32:
      return EVP_aes_256_ecb();
    default:
      throw std::invalid_argument("AES key length");
  }
}

const EVP_CIPHER* wrap(std::size_t key_len) {
  switch (key_len) {
    case 16:
      return EVP_aes_128_wrap();
    case 24:
      return EVP_aes_192_wrap();
    case 32:
      return EVP_aes_256_wrap();
    default:
      throw std::invalid_argument("AES KEK length");
  }
}

using Ctx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

Bytes run(const EVP_CIPHER* cipher, bool encrypt, std::span<const std::uint8_t> key,
          std::span<const std::uint8_t> data, bool padding) {
  Ctx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  if (!ctx ||
      EVP_CipherInit_ex(ctx.get(), cipher, nullptr, key.data(), nullptr, encrypt ? 1 : 0) != 1) {
    throw std::runtime_error("EVP_CipherInit_ex");
  }
  if (!padding) EVP_CIPHER_CTX_set_padding(ctx.get(), 0);
  Bytes out(data.size() + 16);
  int n = 0;
  int m = 0;
  if (EVP_CipherUpdate(ctx.get(), out.data(), &n, data.data(), static_cast<int>(data.size())) !=
          1 ||
      EVP_CipherFinal_ex(ctx.get(), out.data() + n, &m) != 1) {
    throw std::runtime_error("AES operation failed in OpenSSL");
  }
  out.resize(static_cast<std::size_t>(n) + static_cast<std::size_t>(m));
  return out;
}

}  // namespace

Bytes aes_ecb_encrypt(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data) {
  return run(ecb(key.size()), true, key, data, false);
}

Bytes aes_ecb_decrypt(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data) {
  return run(ecb(key.size()), false, key, data, false);
}

std::array<std::uint8_t, 16> aes_cmac(std::span<const std::uint8_t> key,
                                      std::span<const std::uint8_t> data) {
  std::unique_ptr<EVP_MAC, decltype(&EVP_MAC_free)> mac(EVP_MAC_fetch(nullptr, "CMAC", nullptr),
                                                        &EVP_MAC_free);
  std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(EVP_MAC_CTX_new(mac.get()),
                                                                &EVP_MAC_CTX_free);
  char cipher[] = "AES-128-CBC";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipher, 0),
                               OSSL_PARAM_END};
  std::array<std::uint8_t, 16> out{};
  std::size_t len = 0;
  if (!ctx || EVP_MAC_init(ctx.get(), key.data(), key.size(), params) != 1 ||
      EVP_MAC_update(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) != 1 || len != 16) {
    throw std::runtime_error("CMAC failed in OpenSSL");
  }
  return out;
}

Bytes aes_key_wrap(std::span<const std::uint8_t> kek, std::span<const std::uint8_t> key) {
  Ctx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  if (EVP_CipherInit_ex(ctx.get(), wrap(kek.size()), nullptr, kek.data(), nullptr, 1) != 1) {
    throw std::runtime_error("EVP_CipherInit_ex (wrap)");
  }
  Bytes out(key.size() + 8);
  int n = 0;
  if (EVP_CipherUpdate(ctx.get(), out.data(), &n, key.data(), static_cast<int>(key.size())) != 1) {
    throw std::runtime_error("AES key wrap failed in OpenSSL");
  }
  out.resize(static_cast<std::size_t>(n));
  return out;
}

Bytes aes_key_unwrap(std::span<const std::uint8_t> kek, std::span<const std::uint8_t> wrapped) {
  Ctx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  if (EVP_CipherInit_ex(ctx.get(), wrap(kek.size()), nullptr, kek.data(), nullptr, 0) != 1) {
    throw std::runtime_error("EVP_CipherInit_ex (unwrap)");
  }
  Bytes out(wrapped.size());
  int n = 0;
  if (EVP_CipherUpdate(ctx.get(), out.data(), &n, wrapped.data(),
                       static_cast<int>(wrapped.size())) != 1 ||
      n <= 0) {
    throw std::runtime_error("RFC 3394 unwrap failed in OpenSSL (integrity check)");
  }
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace lorakeep::test::ref
