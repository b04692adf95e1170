// A session key derived in the token: the only kind of key the appliance ever wraps for a
// peer. Root keys, KEKs and the storage key have no path to a wrap call (DESIGN.md §2:
// some tokens would wrap a non-extractable key if asked, so lorakeep never asks).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "appliance/join.hpp"
#include "appliance/keys.hpp"
#include "pkcs11/session.hpp"
#include "schemas/result.hpp"

namespace lorakeep::appliance {

/// The 16-byte derivation input: prefix | JoinNonce | NetID or JoinEUI | DevNonce | 0-pad
/// (LoRaWAN 1.0.x §6.2.5, 1.1 §6.2.2), every field in air (little-endian) order.
std::array<std::uint8_t, 16> session_key_block(std::uint8_t prefix, const lorawan::JoinNonce& jn,
                                               std::span<const std::uint8_t> net_id_or_join_eui,
                                               lorawan::DevNonce dev_nonce);
/// JSIntKey (0x06) and JSEncKey (0x05) input: prefix | DevEUI | 0-pad.
std::array<std::uint8_t, 16> js_key_block(std::uint8_t prefix, const lorawan::DevEui& dev_eui);

/// Whether a delivery may proceed: with a KEK label, or plaintext explicitly allowed.
Result<Ok> check_delivery(const Delivery& to, std::string_view receiver);

class SessionKey {
 public:
  /// Derives AES-ECB(base, block) as a session object. `plaintext` makes it readable
  /// (only for a peer configured to receive plaintext keys).
  static Result<SessionKey> derive(pkcs11::Session& session, pkcs11::KeyRef base,
                                   const std::array<std::uint8_t, 16>& block, const Policy& policy,
                                   bool plaintext);
  /// Unwraps a stored AppSKey (under the storage key) as a session key.
  static Result<SessionKey> from_storage(pkcs11::Session& session, KeyDirectory& keys,
                                         std::span<const std::uint8_t> stored, bool plaintext);

  /// Wrapped under the receiver's KEK, or the key itself when plaintext was allowed.
  Result<KeyEnvelope> deliver(pkcs11::Session& session, KeyDirectory& keys,
                              const Delivery& to) const;
  /// Wrapped under the storage key, for the registry.
  Result<std::vector<std::uint8_t>> store(pkcs11::Session& session, KeyDirectory& keys) const;

 private:
  SessionKey(pkcs11::OwnedKey key, bool plaintext) : key_(std::move(key)), plaintext_(plaintext) {}
  pkcs11::OwnedKey key_;
  bool plaintext_;
};

}  // namespace lorakeep::appliance
