#include "tools/nsim/device.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>

namespace lorakeep::nsim {
namespace {

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
struct MacCtxFree {
  void operator()(EVP_MAC_CTX* c) const noexcept { EVP_MAC_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;
using MacCtx = std::unique_ptr<EVP_MAC_CTX, MacCtxFree>;

// Fetched once: an implicit fetch per call costs more than the AES it does.
EVP_MAC* cmac_algorithm() {
  static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "CMAC", nullptr);
  if (mac == nullptr) throw std::runtime_error("OpenSSL: no CMAC");
  return mac;
}

/// An algorithm fetched once (thread-safe; EVP_CIPHER objects are shareable): the legacy
/// EVP_aes_*() getters make OpenSSL 3 fetch again at every initialisation.
const EVP_CIPHER* fetched(const char* name) {
  EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, name, nullptr);
  if (c == nullptr) throw std::runtime_error(std::string("OpenSSL: no ") + name);
  return c;
}

const EVP_CIPHER* ecb_cipher(std::size_t key_size) {
  static const EVP_CIPHER* const aes128 = fetched("AES-128-ECB");
  static const EVP_CIPHER* const aes256 = fetched("AES-256-ECB");
  return key_size == 32 ? aes256 : aes128;
}

const EVP_CIPHER* wrap_cipher(std::size_t key_size) {
  static const EVP_CIPHER* const aes128 = fetched("AES-128-WRAP");
  static const EVP_CIPHER* const aes256 = fetched("AES-256-WRAP");
  return key_size == 32 ? aes256 : aes128;
}

void require_aes128(const Key& key, const char* what) {
  if (key.size() != 16) throw std::invalid_argument(std::string(what) + ": needs a 16-byte key");
}

Bytes ecb(const Key& key, std::span<const std::uint8_t> data, bool encrypt) {
  if (data.size() % 16 != 0) throw std::invalid_argument("AES-ECB: data not whole blocks");
  const CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx ||
      EVP_CipherInit_ex(ctx.get(), ecb_cipher(key.size()), nullptr, key.reveal().data(), nullptr,
                        encrypt ? 1 : 0) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1) {
    throw std::runtime_error("OpenSSL: AES-ECB initialisation failed");
  }
  Bytes out(data.size() + 16);
  int n = 0;
  int tail = 0;
  if (EVP_CipherUpdate(ctx.get(), out.data(), &n, data.data(), static_cast<int>(data.size())) !=
          1 ||
      EVP_CipherFinal_ex(ctx.get(), out.data() + n, &tail) != 1) {
    throw std::runtime_error("OpenSSL: AES-ECB failed");
  }
  out.resize(static_cast<std::size_t>(n) + static_cast<std::size_t>(tail));
  return out;
}

Block encrypt_block(const Key& key, const Block& block) {
  const Bytes out = ecb(key, block, true);
  Block b{};
  std::copy_n(out.begin(), 16, b.begin());
  return b;
}

Key key_of(const Block& b) {
  return Key(b);
}

/// prefix | JoinNonce | NetID or JoinEUI | DevNonce | 0x00 padding (air order).
Block session_block(std::uint8_t prefix, std::uint32_t join_nonce,
                    std::span<const std::uint8_t> middle, std::uint16_t dev_nonce) {
  Block b{};
  std::size_t i = 0;
  b[i++] = prefix;
  b[i++] = static_cast<std::uint8_t>(join_nonce & 0xFF);
  b[i++] = static_cast<std::uint8_t>((join_nonce >> 8) & 0xFF);
  b[i++] = static_cast<std::uint8_t>((join_nonce >> 16) & 0xFF);
  for (const auto c : middle)
    b[i++] = c;
  b[i++] = static_cast<std::uint8_t>(dev_nonce & 0xFF);
  b[i++] = static_cast<std::uint8_t>(dev_nonce >> 8);
  return b;
}

Key js_key(std::uint8_t prefix, const Key& nwk_key, const lorawan::DevEui& dev_eui) {
  Block b{};
  b[0] = prefix;
  const auto air = dev_eui.air();
  std::copy(air.begin(), air.end(), b.begin() + 1);
  return key_of(encrypt_block(nwk_key, b));
}

}  // namespace

// ---- Key ----

std::optional<Key> Key::from(std::span<const std::uint8_t> bytes) noexcept {
  if (bytes.size() != 16 && bytes.size() != 32) return std::nullopt;
  Key k;
  std::copy(bytes.begin(), bytes.end(), k.bytes_.begin());
  k.size_ = bytes.size();
  return k;
}

Key::Key(const Block& bytes) noexcept : size_(16) {
  std::copy(bytes.begin(), bytes.end(), bytes_.begin());
}

Key::~Key() {
  OPENSSL_cleanse(bytes_.data(), bytes_.size());
}

Key::Key(const Key& other) noexcept : bytes_(other.bytes_), size_(other.size_) {}

Key& Key::operator=(const Key& other) noexcept {
  if (this != &other) {
    bytes_ = other.bytes_;
    size_ = other.size_;
  }
  return *this;
}

bool operator==(const Key& a, const Key& b) noexcept {
  return a.size_ == b.size_ && CRYPTO_memcmp(a.bytes_.data(), b.bytes_.data(), a.size_) == 0;
}

// ---- primitives ----

Block aes_cmac(const Key& key, std::span<const std::uint8_t> message) {
  require_aes128(key, "AES-CMAC");
  const MacCtx ctx(EVP_MAC_CTX_new(cmac_algorithm()));
  std::array<char, 12> cipher_name{"AES-128-CBC"};
  const std::array<OSSL_PARAM, 2> params = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipher_name.data(), 0),
      OSSL_PARAM_construct_end()};
  Block out{};
  std::size_t n = 0;
  if (!ctx || EVP_MAC_init(ctx.get(), key.reveal().data(), key.size(), params.data()) != 1 ||
      EVP_MAC_update(ctx.get(), message.data(), message.size()) != 1 ||
      EVP_MAC_final(ctx.get(), out.data(), &n, out.size()) != 1 || n != out.size()) {
    throw std::runtime_error("OpenSSL: AES-CMAC failed");
  }
  return out;
}

Bytes aes_ecb_encrypt(const Key& key, std::span<const std::uint8_t> data) {
  return ecb(key, data, true);
}

Bytes aes_ecb_decrypt(const Key& key, std::span<const std::uint8_t> data) {
  return ecb(key, data, false);
}

Bytes rfc3394_wrap(const Key& kek, const Key& key) {
  const CipherCtx ctx(EVP_CIPHER_CTX_new());
  const EVP_CIPHER* cipher = wrap_cipher(kek.size());
  if (!ctx) throw std::runtime_error("OpenSSL: no cipher context");
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  Bytes out(key.size() + 16);
  int n = 0;
  int tail = 0;
  if (EVP_EncryptInit_ex(ctx.get(), cipher, nullptr, kek.reveal().data(), nullptr) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out.data(), &n, key.reveal().data(),
                        static_cast<int>(key.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + n, &tail) != 1) {
    throw std::runtime_error("OpenSSL: RFC 3394 wrap failed");
  }
  out.resize(static_cast<std::size_t>(n) + static_cast<std::size_t>(tail));
  return out;
}

std::optional<Key> rfc3394_unwrap(const Key& kek, std::span<const std::uint8_t> wrapped) {
  if (wrapped.size() != 24 && wrapped.size() != 40) return std::nullopt;
  const CipherCtx ctx(EVP_CIPHER_CTX_new());
  const EVP_CIPHER* cipher = wrap_cipher(kek.size());
  if (!ctx) throw std::runtime_error("OpenSSL: no cipher context");
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  std::array<std::uint8_t, 48> out{};
  int n = 0;
  int tail = 0;
  const bool ok =
      EVP_DecryptInit_ex(ctx.get(), cipher, nullptr, kek.reveal().data(), nullptr) == 1 &&
      EVP_DecryptUpdate(ctx.get(), out.data(), &n, wrapped.data(),
                        static_cast<int>(wrapped.size())) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), out.data() + n, &tail) == 1;
  std::optional<Key> key;
  if (ok)
    key = Key::from(
        std::span(out.data(), static_cast<std::size_t>(n) + static_cast<std::size_t>(tail)));
  OPENSSL_cleanse(out.data(), out.size());
  return key;
}

// ---- the device ----

std::array<std::uint8_t, 23> join_request(const Device& device, std::uint16_t dev_nonce) {
  std::array<std::uint8_t, 23> f{};
  f[0] = 0x00;  // MType join-request, Major LoRaWAN R1
  const auto join_eui = device.join_eui.air();
  const auto dev_eui = device.dev_eui.air();
  std::copy(join_eui.begin(), join_eui.end(), f.begin() + 1);
  std::copy(dev_eui.begin(), dev_eui.end(), f.begin() + 9);
  f[17] = static_cast<std::uint8_t>(dev_nonce & 0xFF);
  f[18] = static_cast<std::uint8_t>(dev_nonce >> 8);
  const Block mic = aes_cmac(device.network_root(), std::span(f.data(), 19));
  std::copy_n(mic.begin(), 4, f.begin() + 19);
  return f;
}

Result<OpenedAccept> open_join_accept(const Device& device, std::span<const std::uint8_t> phy,
                                      std::uint16_t dev_nonce) {
  if (phy.size() != 17 && phy.size() != 33) {
    return fail(Status::malformed,
                "the join-accept is " + std::to_string(phy.size()) + " bytes, not 17 or 33");
  }
  if ((phy[0] & 0xE0) != 0x20 || (phy[0] & 0x03) != 0) {
    return fail(Status::malformed, "the join-accept's MHDR is not MType 001, Major 00");
  }
  const Key& root = device.network_root();
  // The Join Server sealed it with AES decrypt; the device opens it with AES encrypt.
  const Bytes body = aes_ecb_encrypt(root, phy.subspan(1));
  Bytes plain;  // MHDR | fields | MIC
  plain.reserve(phy.size());
  plain.push_back(phy[0]);
  plain.insert(plain.end(), body.begin(), body.end());

  OpenedAccept out;
  AcceptFields& f = out.fields;
  f.join_nonce = static_cast<std::uint32_t>(plain[1]) |
                 (static_cast<std::uint32_t>(plain[2]) << 8) |
                 (static_cast<std::uint32_t>(plain[3]) << 16);
  f.net_id = lorawan::NetId::from_air(std::span<const std::uint8_t, 3>(plain.data() + 4, 3));
  f.dev_addr = lorawan::DevAddr::from_air(std::span<const std::uint8_t, 4>(plain.data() + 7, 4));
  f.dl_settings = plain[11];
  f.rx_delay = plain[12];
  if (plain.size() == 33) {
    Block cf{};
    std::copy_n(plain.begin() + 13, 16, cf.begin());
    f.cf_list = cf;
  }
  const std::size_t fields_end = plain.size() - 4;
  const std::span<const std::uint8_t> received_mic(plain.data() + fields_end, 4);

  out.lorawan_1_1 = lorawan::is_1_1(device.mac_version) && f.opt_neg();
  Block mic{};
  if (out.lorawan_1_1) {
    Bytes input;
    input.reserve(11 + fields_end);
    input.push_back(0xFF);  // JoinReqType: a join-request
    const auto join_eui = device.join_eui.air();
    input.insert(input.end(), join_eui.begin(), join_eui.end());
    input.push_back(static_cast<std::uint8_t>(dev_nonce & 0xFF));
    input.push_back(static_cast<std::uint8_t>(dev_nonce >> 8));
    input.insert(input.end(), plain.begin(), plain.begin() + static_cast<long>(fields_end));
    mic = aes_cmac(js_int_key(root, device.dev_eui), input);
  } else {
    mic = aes_cmac(root, std::span(plain.data(), fields_end));
  }
  out.mic_ok = CRYPTO_memcmp(mic.data(), received_mic.data(), 4) == 0;
  OPENSSL_cleanse(plain.data(), plain.size());
  return out;
}

SessionKeys derive_session_keys(const Device& device, const AcceptFields& accept,
                                std::uint16_t dev_nonce) {
  SessionKeys k;
  k.lorawan_1_1 = lorawan::is_1_1(device.mac_version) && accept.opt_neg();
  if (!k.lorawan_1_1) {
    const Key& root = device.network_root();
    const auto net_id = accept.net_id.air();
    k.nwk_s_key =
        key_of(encrypt_block(root, session_block(0x01, accept.join_nonce, net_id, dev_nonce)));
    k.app_s_key =
        key_of(encrypt_block(root, session_block(0x02, accept.join_nonce, net_id, dev_nonce)));
    return k;
  }
  const Key& nwk = *device.nwk_key;
  const auto eui = device.join_eui.air();
  k.f_nwk_s_int_key =
      key_of(encrypt_block(nwk, session_block(0x01, accept.join_nonce, eui, dev_nonce)));
  k.s_nwk_s_int_key =
      key_of(encrypt_block(nwk, session_block(0x03, accept.join_nonce, eui, dev_nonce)));
  k.nwk_s_enc_key =
      key_of(encrypt_block(nwk, session_block(0x04, accept.join_nonce, eui, dev_nonce)));
  k.app_s_key =
      key_of(encrypt_block(device.app_key, session_block(0x02, accept.join_nonce, eui, dev_nonce)));
  return k;
}

Key js_int_key(const Key& nwk_key, const lorawan::DevEui& dev_eui) {
  return js_key(0x06, nwk_key, dev_eui);
}

Key js_enc_key(const Key& nwk_key, const lorawan::DevEui& dev_eui) {
  return js_key(0x05, nwk_key, dev_eui);
}

Key seeded_key(const Key& seed, std::uint8_t kind, const lorawan::DevEui& dev_eui) {
  Block b{};
  b[0] = kind;
  const auto& eui = dev_eui.bytes();
  std::copy(eui.begin(), eui.end(), b.begin() + 1);
  return key_of(encrypt_block(seed, b));
}

}  // namespace lorakeep::nsim
