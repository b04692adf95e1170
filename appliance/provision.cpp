#include "appliance/provision.hpp"

#include <string>

#include "appliance/templates.hpp"

namespace lorakeep::appliance {
namespace {

std::string label_for(KeyRole role, std::string_view label) {
  switch (role) {
    case KeyRole::storage:
      return std::string(storage_key_label);
    case KeyRole::kek:
      return std::string(kek_label_prefix) + std::string(label);
    case KeyRole::part:
      return std::string(part_key_label_prefix) + std::string(label);
    case KeyRole::transport:
      return std::string(transport_kek_label_prefix) + std::string(label);
  }
  return {};
}

/// A long-lived token key with exactly its role's usage. With the trusted-KEK switch the
/// storage key and KEKs are trusted, which SoftHSMv2 allows only the security officer to
/// set, and only on public objects.
pkcs11::KeyTemplate long_lived(KeyRole role, std::string label, CK_ULONG length,
                               const Policy& policy) {
  const bool trusted = policy.trusted_keks && (role == KeyRole::storage || role == KeyRole::kek);
  pkcs11::KeyTemplate t(length);
  t.label(std::move(label)).token(true).private_object(!trusted).sensitive(true).extractable(false);
  CK_MECHANISM_TYPE mechanism = CKM_AES_KEY_WRAP;
  switch (role) {
    case KeyRole::storage:
      t.wrap(true).unwrap(true);
      break;
    case KeyRole::kek:
      t.wrap(true);
      break;
    case KeyRole::transport:
      t.unwrap(true);
      break;
    case KeyRole::part:
      t.derive(true);
      mechanism = CKM_AES_ECB_ENCRYPT_DATA;
      break;
  }
  if (policy.allowed_mechanisms) t.allowed_mechanisms({mechanism});
  if (trusted) t.trusted(true);
  return t;
}

/// A token's refusal to create a long-lived key; when the template carried
/// CKA_ALLOWED_MECHANISMS, the message says how to do without it.
Failure creation_failure(const pkcs11::Error& e, const std::string& doing, const Policy& policy) {
  Failure f = token_failure(e, doing);
  const bool creating = e.call() == "C_GenerateKey" || e.call() == "C_CreateObject";
  if (policy.allowed_mechanisms && creating && e.error_class() == pkcs11::ErrorClass::other) {
    f.message +=
        " (a token that cannot store CKA_ALLOWED_MECHANISMS on token objects, such as NSS "
        "softoken, needs appliance.pkcs11.allowed_mechanisms: false)";
  }
  return f;
}

Result<Ok> check_label(std::string_view label) {
  if (label.empty() || label.size() > 64) {
    return fail(Status::malformed, "a key label must be 1 to 64 characters");
  }
  for (char c : label) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == ':' || c == '/';
    if (!ok) return fail(Status::malformed, "a key label may hold only A-Z a-z 0-9 - _ . : /");
  }
  return Ok{};
}

}  // namespace

Result<CreatedKey> create_storage_key(pkcs11::Session& session, const Policy& policy) {
  const auto label = std::string(storage_key_label);
  try {
    if (auto existing = session.find_key(label, pkcs11::Session::Objects::token_only)) {
      if (auto ok = check_policy(session.attributes(*existing), KeyRole::storage, policy); !ok) {
        return ok.failure();
      }
      return CreatedKey{false};
    }
    auto key = session.generate_aes_key(long_lived(KeyRole::storage, label, 32, policy));
    key.release();  // a token object: it stays
    return CreatedKey{true};
  } catch (const pkcs11::Error& e) {
    return creation_failure(e, "creating the storage key", policy);
  }
}

Result<Ok> import_key(pkcs11::Session& session, KeyRole role, std::string_view label,
                      pkcs11::SecretBytes key, const Policy& policy) {
  if (role == KeyRole::storage) {
    return fail(Status::key_policy, "the storage key is generated in the token, never imported");
  }
  if (auto ok = check_label(label); !ok) return ok;
  if (key.size() != 16 && key.size() != 24 && key.size() != 32) {
    return fail(Status::malformed,
                "an AES key must be 16, 24 or 32 bytes, got " + std::to_string(key.size()));
  }
  const auto full = label_for(role, label);
  try {
    if (session.find_key(full, pkcs11::Session::Objects::token_only)) {
      return fail(Status::malformed, "the token already holds a key labelled '" + full + "'");
    }
    auto tmpl = long_lived(role, full, static_cast<CK_ULONG>(key.size()), policy);
    tmpl.value(std::move(key));
    auto created = session.create_key(tmpl);
    created.release();
    return Ok{};
  } catch (const pkcs11::Error& e) {
    return creation_failure(e, "importing '" + full + "'", policy);
  }
}

Result<Ok> delete_key(pkcs11::Session& session, KeyRole role, std::string_view label) {
  const auto full = label_for(role, label);
  try {
    auto found = session.find_key(full, pkcs11::Session::Objects::token_only);
    if (!found) return fail(Status::unknown_key, "the token holds no key labelled '" + full + "'");
    session.destroy(found->handle);
    return Ok{};
  } catch (const pkcs11::Error& e) {
    return token_failure(e, "deleting '" + full + "'");
  }
}

Result<std::vector<std::uint8_t>> import_root_key(pkcs11::Session& session, KeyDirectory& keys,
                                                  const pkcs11::SecretBytes& key) {
  if (key.size() != 16) {
    return fail(Status::malformed,
                "a device root key must be 16 bytes, got " + std::to_string(key.size()));
  }
  auto storage = keys.storage_key(session);
  if (!storage) return storage.failure();
  try {
    auto tmpl = templates::importing_root_key(keys.policy());
    tmpl.value(key.clone());
    const auto object = session.create_key(tmpl);
    return session.wrap(pkcs11::WrapMechanism::rfc3394, *storage, object.ref());
  } catch (const pkcs11::Error& e) {
    return token_failure(e, "importing a device root key");
  }
}

Result<std::vector<std::uint8_t>> import_wrapped_root_key(pkcs11::Session& session,
                                                          KeyDirectory& keys,
                                                          std::string_view transport_label,
                                                          std::span<const std::uint8_t> wrapped) {
  if (wrapped.size() != 24) {
    return fail(Status::malformed, "a wrapped device root key must be 24 bytes (RFC 3394), got " +
                                       std::to_string(wrapped.size()));
  }
  auto transport = keys.transport_kek(session, transport_label);
  if (!transport) return transport.failure();
  auto storage = keys.storage_key(session);
  if (!storage) return storage.failure();
  try {
    const auto object = session.unwrap(pkcs11::WrapMechanism::rfc3394, *transport, wrapped,
                                       templates::importing_root_key(keys.policy()));
    return session.wrap(pkcs11::WrapMechanism::rfc3394, *storage, object.ref());
  } catch (const pkcs11::Error& e) {
    return token_failure(e, "re-wrapping a device root key under the storage key");
  }
}

}  // namespace lorakeep::appliance
