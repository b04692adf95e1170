#include "appliance/keys.hpp"

#include <optional>
#include <string>

namespace lorakeep::appliance {
namespace {

std::string_view role_name(KeyRole role) {
  switch (role) {
    case KeyRole::storage:
      return "storage key";
    case KeyRole::kek:
      return "KEK";
    case KeyRole::part:
      return "part root key";
    case KeyRole::transport:
      return "transport KEK";
  }
  return "key";
}

struct Usage {
  bool wrap, unwrap, derive;
};

Usage usage_of(KeyRole role) {
  switch (role) {
    case KeyRole::storage:
      return {true, true, false};
    case KeyRole::kek:
      return {true, false, false};
    case KeyRole::part:
      return {false, false, true};
    case KeyRole::transport:
      return {false, true, false};
  }
  return {false, false, false};
}

Failure weak(const pkcs11::KeyAttributes& a, KeyRole role, std::string_view what) {
  return fail(Status::key_policy, std::string(role_name(role)) + " '" + a.label + "' " +
                                      std::string(what) + " (lorakeep's key policy refuses it)");
}

}  // namespace

Result<Ok> check_policy(const pkcs11::KeyAttributes& a, KeyRole role, const Policy& policy) {
  if (a.object_class != CKO_SECRET_KEY || a.key_type != CKK_AES) {
    return weak(a, role, "is not an AES secret key");
  }
  if (a.value_len != 16 && a.value_len != 24 && a.value_len != 32) {
    return weak(a, role, "has an AES key length other than 128, 192 or 256 bits");
  }
  if (role == KeyRole::storage && a.value_len != 32) {
    return weak(a, role, "is not AES-256");
  }
  if (!a.token) return weak(a, role, "is not a token object");
  if (!a.sensitive) return weak(a, role, "is not sensitive");
  if (a.extractable) return weak(a, role, "is extractable");
  if (a.encrypt || a.decrypt) return weak(a, role, "may encrypt or decrypt data");
  if (a.sign || a.verify) return weak(a, role, "may sign or verify");
  const Usage u = usage_of(role);
  if (a.wrap != u.wrap) return weak(a, role, u.wrap ? "may not wrap" : "may wrap");
  if (a.unwrap != u.unwrap) return weak(a, role, u.unwrap ? "may not unwrap" : "may unwrap");
  if (a.derive != u.derive) return weak(a, role, u.derive ? "may not derive" : "may derive");
  if (policy.trusted_keks && (role == KeyRole::storage || role == KeyRole::kek) && !a.trusted) {
    return weak(a, role, "is not trusted (CKA_TRUSTED) while trusted KEKs are required");
  }
  return Ok{};
}

Failure token_failure(const pkcs11::Error& e, std::string_view doing) {
  Status s = Status::internal;
  switch (e.error_class()) {
    case pkcs11::ErrorClass::session_lost:
    case pkcs11::ErrorClass::token_lost:
    case pkcs11::ErrorClass::pin:
    case pkcs11::ErrorClass::resource:
      s = Status::token_unavailable;
      break;
    case pkcs11::ErrorClass::key_policy:
      s = Status::key_policy;
      break;
    case pkcs11::ErrorClass::bad_input:
      s = Status::malformed;
      break;
    case pkcs11::ErrorClass::not_found:
      s = Status::unknown_key;
      break;
    case pkcs11::ErrorClass::other:
      s = Status::internal;
      break;
  }
  return fail(s, std::string(doing) + ": " + e.what());
}

Result<pkcs11::KeyRef> KeyDirectory::storage_key(pkcs11::Session& session) {
  return find(session, std::string(storage_key_label), KeyRole::storage);
}

Result<pkcs11::KeyRef> KeyDirectory::kek(pkcs11::Session& session, std::string_view label) {
  return find(session, std::string(kek_label_prefix) + std::string(label), KeyRole::kek);
}

Result<pkcs11::KeyRef> KeyDirectory::part_key(pkcs11::Session& session,
                                              std::string_view part_number) {
  return find(session, std::string(part_key_label_prefix) + std::string(part_number),
              KeyRole::part);
}

Result<pkcs11::KeyRef> KeyDirectory::transport_kek(pkcs11::Session& session,
                                                   std::string_view label) {
  return find(session, std::string(transport_kek_label_prefix) + std::string(label),
              KeyRole::transport);
}

void KeyDirectory::forget() {
  const std::lock_guard lock(mutex_);
  cache_.clear();
}

Result<pkcs11::KeyRef> KeyDirectory::find(pkcs11::Session& session, const std::string& label,
                                          KeyRole role) {
  const auto now = Clock::now();
  std::optional<Entry> known;
  {
    const std::lock_guard lock(mutex_);
    if (auto it = cache_.find(label); it != cache_.end()) {
      if (now - it->second.checked < revalidate_after_) return it->second.use;
      known = it->second;
      it->second.checked = now;  // one thread revalidates; the others go on meanwhile
    }
  }
  // Looked up outside the lock: two threads may both search, and both find the same key
  // (a second copy then stays unused until its session closes).
  auto entry = look_up(session, label, role, known ? &*known : nullptr);
  const std::lock_guard lock(mutex_);
  if (!entry) {
    cache_.erase(label);
    return entry.failure();
  }
  cache_.insert_or_assign(label, *entry);
  return entry->use;
}

Result<KeyDirectory::Entry> KeyDirectory::look_up(pkcs11::Session& session,
                                                  const std::string& label, KeyRole role,
                                                  const Entry* known) {
  const std::lock_guard serial(lookup_mutex_);
  try {
    // Token objects only: the session copies made here carry the same label.
    const auto key = session.find_key(label, pkcs11::Session::Objects::token_only);
    if (!key) {
      return fail(Status::unknown_key,
                  "the token holds no " + std::string(role_name(role)) + " '" + label + "'");
    }
    // The same token object as before: its copy stays (the policy was checked when it
    // was made).
    if (known != nullptr && known->token.handle == key->handle) {
      return Entry{*key, known->use, Clock::now()};
    }
    const auto attrs = session.attributes(*key);
    if (auto ok = check_policy(attrs, role, policy_); !ok) return ok.failure();
    Entry entry{*key, *key, Clock::now()};
    try {
      entry.use = session.copy_to_session_object(*key);
    } catch (const pkcs11::Error& e) {
      // A token that refuses copies (CKA_COPYABLE false, or no C_CopyObject): the token
      // object itself. A lost session is the caller's to handle.
      if (e.error_class() == pkcs11::ErrorClass::session_lost ||
          e.error_class() == pkcs11::ErrorClass::token_lost) {
        throw;
      }
    }
    return entry;
  } catch (const pkcs11::Error& e) {
    return token_failure(e, "looking up '" + label + "'");
  }
}

}  // namespace lorakeep::appliance
