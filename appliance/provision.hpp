// Creating the token's long-lived keys (lorakeepctl token init, kek import, part import)
// and importing device root keys for the registry.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "appliance/keys.hpp"
#include "pkcs11/secret.hpp"
#include "pkcs11/session.hpp"
#include "schemas/result.hpp"

namespace lorakeep::appliance {

struct CreatedKey {
  bool created = false;  // false: it existed already and passed the policy check
};

/// Generates the AES-256 storage key in the token (sensitive, never extractable, wrap and
/// unwrap only). Idempotent: an existing storage key is checked against the policy
/// instead. With `policy.trusted_keks` the key is a public object carrying CKA_TRUSTED, and
/// on SoftHSMv2 `session` must be a security-officer session (it allows CKA_TRUSTED only
/// there, and only on public objects; NSS softoken has no security officer and lets the
/// user set it).
Result<CreatedKey> create_storage_key(pkcs11::Session& session, const Policy& policy);

/// Imports a 16-, 24- or 32-byte key under `label` for `role` (kek, part, transport), with
/// exactly the role's usage. The plaintext is zeroized by the caller's SecretBytes. Refuses
/// when a key with that label exists.
Result<Ok> import_key(pkcs11::Session& session, KeyRole role, std::string_view label,
                      pkcs11::SecretBytes key, const Policy& policy);

/// Deletes a long-lived key by role and label; unknown_key when absent.
Result<Ok> delete_key(pkcs11::Session& session, KeyRole role, std::string_view label);

/// A device root key given in plaintext (16 bytes) → wrapped under the storage key
/// (RFC 3394, 24 bytes). The plaintext exists in the token only as a short-lived session
/// object; the caller's SecretBytes is zeroized when it goes out of scope.
Result<std::vector<std::uint8_t>> import_root_key(pkcs11::Session& session, KeyDirectory& keys,
                                                  const pkcs11::SecretBytes& key);

/// A device root key wrapped (RFC 3394) under a transport KEK → re-wrapped under the
/// storage key. The key never exists outside the token.
Result<std::vector<std::uint8_t>> import_wrapped_root_key(pkcs11::Session& session,
                                                          KeyDirectory& keys,
                                                          std::string_view transport_label,
                                                          std::span<const std::uint8_t> wrapped);

}  // namespace lorakeep::appliance
