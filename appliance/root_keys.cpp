#include "appliance/root_keys.hpp"

#include <string>

namespace lorakeep::appliance {

Result<std::array<std::uint8_t, 16>> derive_part_block(RootKeyKind kind,
                                                       std::span<const std::uint8_t> serial) {
  if (serial.empty() || serial.size() > 12) {
    return fail(Status::malformed,
                "a part serial number must be 1 to 12 bytes, got " + std::to_string(serial.size()));
  }
  std::array<std::uint8_t, 16> block{};
  block[0] = 'L';
  block[1] = 'K';
  block[2] = static_cast<std::uint8_t>(kind);
  block[3] = static_cast<std::uint8_t>(serial.size());
  for (std::size_t i = 0; i < serial.size(); ++i)
    block[4 + i] = serial[i];
  return block;
}

Result<pkcs11::OwnedKey> load_root_key(pkcs11::Session& session, KeyDirectory& keys,
                                       const RootKeys& root, RootKeyKind kind,
                                       templates::RootUse use) {
  const char* name = kind == RootKeyKind::app_key ? "AppKey" : "NwkKey";
  try {
    if (const auto* wrapped = std::get_if<WrappedRootKeys>(&root)) {
      const auto& bytes = kind == RootKeyKind::app_key ? wrapped->app_key : wrapped->nwk_key;
      if (bytes.size() != 24) {
        return fail(Status::malformed, std::string("the wrapped ") + name +
                                           " must be 24 bytes (RFC 3394 of an AES-128 key), got " +
                                           std::to_string(bytes.size()));
      }
      auto storage = keys.storage_key(session);
      if (!storage) return storage.failure();
      try {
        return session.unwrap(pkcs11::WrapMechanism::rfc3394, *storage, bytes,
                              templates::root_key(use));
      } catch (const pkcs11::Error& e) {
        // RFC 3394's integrity check failed (SoftHSMv2 says CKR_GENERAL_ERROR): the
        // registry's copy is corrupt or was wrapped under another storage key. Not the
        // caller's fault, and not a token outage.
        const auto c = e.error_class();
        if (c != pkcs11::ErrorClass::bad_input && c != pkcs11::ErrorClass::other) throw;
        return fail(Status::internal, std::string("the stored ") + name +
                                          " does not unwrap under the storage key (corrupt, or "
                                          "wrapped under another storage key): " +
                                          e.what());
      }
    }
    const auto& part = std::get<PartRootKeys>(root);
    auto block = derive_part_block(kind, part.serial);
    if (!block) return block.failure();
    auto part_key = keys.part_key(session, part.part_number);
    if (!part_key) return part_key.failure();
    return session.derive_aes_ecb(*part_key, *block, templates::root_key(use));
  } catch (const pkcs11::Error& e) {
    return token_failure(e, std::string("loading the ") + name);
  }
}

}  // namespace lorakeep::appliance
