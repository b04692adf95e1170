// The end-device's and the Network Server's side of a LoRaWAN join, computed with OpenSSL
// (EVP) and nothing of lorakeep's own cryptography: a join-request built and signed as a
// device does, the join-accept opened and its MIC checked as the device does, the session
// keys derived as the device derives them, and RFC 3394 key wraps opened as a Network or
// Application Server opens them. lorakeepctl join-test and bench check the Join Server's
// answers with it; tests/nsim checks it against published vectors.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "schemas/lorawan/types.hpp"
#include "schemas/result.hpp"

namespace lorakeep::nsim {

using Bytes = std::vector<std::uint8_t>;
using Block = std::array<std::uint8_t, 16>;

/// An AES key of 16 or 32 bytes held by the simulator. Copies are cheap; every copy is
/// wiped (OPENSSL_cleanse) when it dies. No operator<<, no hex: reaching the bytes takes the
/// explicit reveal(). Comparison is constant-time.
class Key {
 public:
  Key() = default;
  /// 16 or 32 bytes; anything else is nullopt.
  static std::optional<Key> from(std::span<const std::uint8_t> bytes) noexcept;
  explicit Key(const Block& bytes) noexcept;
  ~Key();
  Key(const Key& other) noexcept;
  Key& operator=(const Key& other) noexcept;

  [[nodiscard]] std::span<const std::uint8_t> reveal() const noexcept {
    return {bytes_.data(), size_};
  }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  friend bool operator==(const Key& a, const Key& b) noexcept;

 private:
  std::array<std::uint8_t, 32> bytes_{};
  std::size_t size_ = 0;
};

// ---- primitives ----

/// AES-CMAC (RFC 4493) with a 16-byte key.
Block aes_cmac(const Key& key, std::span<const std::uint8_t> message);
/// AES-128-ECB encryption of whole blocks (`data.size()` a multiple of 16).
Bytes aes_ecb_encrypt(const Key& key, std::span<const std::uint8_t> data);
/// AES-128-ECB decryption of whole blocks — what a Join Server uses to seal a join-accept.
Bytes aes_ecb_decrypt(const Key& key, std::span<const std::uint8_t> data);
/// RFC 3394 wrap of `key` under `kek` (16 or 32 bytes).
Bytes rfc3394_wrap(const Key& kek, const Key& key);
/// RFC 3394 unwrap; nullopt when the integrity check fails or the length is not 24 or 40.
std::optional<Key> rfc3394_unwrap(const Key& kek, std::span<const std::uint8_t> wrapped);

// ---- the device ----

/// A device whose root keys the simulator holds. 1.1 devices have a NwkKey; 1.0.x devices
/// have only the AppKey (whose role the NwkKey takes in 1.1).
struct Device {
  lorawan::MacVersion mac_version = lorawan::MacVersion::v1_0_2;
  lorawan::JoinEui join_eui;
  lorawan::DevEui dev_eui;
  Key app_key;
  std::optional<Key> nwk_key;

  /// The key that signs the join-request and seals a 1.0-style join-accept: the NwkKey of a
  /// 1.1 device, the AppKey of a 1.0.x one.
  [[nodiscard]] const Key& network_root() const noexcept { return nwk_key ? *nwk_key : app_key; }
};

/// MHDR | JoinEUI | DevEUI | DevNonce | MIC (23 bytes, fields in air order).
std::array<std::uint8_t, 23> join_request(const Device& device, std::uint16_t dev_nonce);

/// The join-accept's fields as the device reads them.
struct AcceptFields {
  std::uint32_t join_nonce = 0;
  lorawan::NetId net_id;
  lorawan::DevAddr dev_addr;
  std::uint8_t dl_settings = 0;
  std::uint8_t rx_delay = 0;
  std::optional<Block> cf_list;
  [[nodiscard]] bool opt_neg() const noexcept { return (dl_settings & 0x80) != 0; }
};

struct OpenedAccept {
  AcceptFields fields;
  bool mic_ok = false;
  /// The 1.1 key hierarchy applies: a 1.1 device and OptNeg set. Otherwise the device
  /// works as a 1.0 device (LoRaWAN 1.1 §6.2.3).
  bool lorawan_1_1 = false;
};

/// Decrypts a join-accept PHYPayload as the device does (AES encrypt with the NwkKey, or
/// the AppKey for 1.0.x) and checks its MIC: the 1.0 MIC over MHDR | fields, or with
/// OptNeg on a 1.1 device the MIC under JSIntKey over JoinReqType (0xFF) | JoinEUI |
/// DevNonce | MHDR | fields. A frame of the wrong length or MType is Status::malformed.
Result<OpenedAccept> open_join_accept(const Device& device, std::span<const std::uint8_t> phy,
                                      std::uint16_t dev_nonce);

/// The session keys of one activation. 1.0 (and 1.1 without OptNeg): nwk_s_key and
/// app_s_key. 1.1 with OptNeg: the three network keys and app_s_key.
struct SessionKeys {
  bool lorawan_1_1 = false;
  Key nwk_s_key;
  Key f_nwk_s_int_key;
  Key s_nwk_s_int_key;
  Key nwk_s_enc_key;
  Key app_s_key;
};

/// What the device derives after a join-accept with these fields (LoRaWAN 1.0.x §6.2.5,
/// 1.1 §6.2.2; 1.1 without OptNeg derives 1.0-style, both keys from the NwkKey).
SessionKeys derive_session_keys(const Device& device, const AcceptFields& accept,
                                std::uint16_t dev_nonce);

/// JSIntKey (0x06) and JSEncKey (0x05) from a NwkKey and DevEUI.
Key js_int_key(const Key& nwk_key, const lorawan::DevEui& dev_eui);
Key js_enc_key(const Key& nwk_key, const lorawan::DevEui& dev_eui);

/// A bench device's root key from a seed: AES-128-ECB(seed, kind | DevEUI (8 bytes,
/// big-endian) | 0x00…), kind 0x01 for the AppKey and 0x02 for the NwkKey. So a million
/// devices need no key files; anyone holding the seed file can rebuild every key.
Key seeded_key(const Key& seed, std::uint8_t kind, const lorawan::DevEui& dev_eui);

}  // namespace lorakeep::nsim
