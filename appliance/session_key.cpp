#include "appliance/session_key.hpp"

#include <string>

#include "appliance/templates.hpp"

namespace lorakeep::appliance {

std::array<std::uint8_t, 16> session_key_block(std::uint8_t prefix, const lorawan::JoinNonce& jn,
                                               std::span<const std::uint8_t> net_id_or_join_eui,
                                               lorawan::DevNonce dev_nonce) {
  std::array<std::uint8_t, 16> block{};
  std::size_t at = 0;
  block[at++] = prefix;
  for (auto b : jn.air())
    block[at++] = b;
  for (auto b : net_id_or_join_eui)
    block[at++] = b;
  for (auto b : dev_nonce.air())
    block[at++] = b;
  return block;
}

std::array<std::uint8_t, 16> js_key_block(std::uint8_t prefix, const lorawan::DevEui& dev_eui) {
  std::array<std::uint8_t, 16> block{};
  block[0] = prefix;
  const auto air = dev_eui.air();
  for (std::size_t i = 0; i < air.size(); ++i)
    block[1 + i] = air[i];
  return block;
}

Result<Ok> check_delivery(const Delivery& to, std::string_view receiver) {
  if (to.kek_label && to.kek_label->empty()) {
    return fail(Status::malformed, "an empty KEK label for the " + std::string(receiver));
  }
  if (!to.kek_label && !to.plaintext_allowed) {
    return fail(Status::key_policy, "no KEK is configured for the " + std::string(receiver) +
                                        " and plaintext keys are not allowed for it");
  }
  return Ok{};
}

Result<SessionKey> SessionKey::derive(pkcs11::Session& session, pkcs11::KeyRef base,
                                      const std::array<std::uint8_t, 16>& block,
                                      const Policy& policy, bool plaintext) {
  try {
    return SessionKey(
        session.derive_aes_ecb(base, block, templates::session_key(policy, plaintext)), plaintext);
  } catch (const pkcs11::Error& e) {
    return token_failure(e, "deriving a session key");
  }
}

Result<SessionKey> SessionKey::from_storage(pkcs11::Session& session, KeyDirectory& keys,
                                            std::span<const std::uint8_t> stored, bool plaintext) {
  if (stored.size() != 24) {
    return fail(Status::malformed, "a stored AppSKey must be 24 bytes (RFC 3394), got " +
                                       std::to_string(stored.size()));
  }
  auto storage = keys.storage_key(session);
  if (!storage) return storage.failure();
  try {
    return SessionKey(session.unwrap(pkcs11::WrapMechanism::rfc3394, *storage, stored,
                                     templates::session_key(keys.policy(), plaintext)),
                      plaintext);
  } catch (const pkcs11::Error& e) {
    return token_failure(e, "unwrapping the stored AppSKey");
  }
}

Result<KeyEnvelope> SessionKey::deliver(pkcs11::Session& session, KeyDirectory& keys,
                                        const Delivery& to) const {
  try {
    if (to.kek_label) {
      auto kek = keys.kek(session, *to.kek_label);
      if (!kek) return kek.failure();
      return KeyEnvelope{*to.kek_label,
                         session.wrap(pkcs11::WrapMechanism::rfc3394, *kek, key_.ref())};
    }
    if (!to.plaintext_allowed || !plaintext_) {
      return fail(Status::key_policy, "plaintext key delivery was not allowed for this peer");
    }
    return KeyEnvelope{"", session.attribute(key_.handle(), CKA_VALUE)};
  } catch (const pkcs11::Error& e) {
    return token_failure(e, "delivering a session key");
  }
}

Result<std::vector<std::uint8_t>> SessionKey::store(pkcs11::Session& session,
                                                    KeyDirectory& keys) const {
  auto storage = keys.storage_key(session);
  if (!storage) return storage.failure();
  try {
    return session.wrap(pkcs11::WrapMechanism::rfc3394, *storage, key_.ref());
  } catch (const pkcs11::Error& e) {
    return token_failure(e, "wrapping the AppSKey for storage");
  }
}

}  // namespace lorakeep::appliance
