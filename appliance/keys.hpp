// The token's long-lived keys, found by label and checked against lorakeep's policy
// (DESIGN.md §2) before any use.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "pkcs11/error.hpp"
#include "pkcs11/session.hpp"
#include "schemas/result.hpp"

namespace lorakeep::appliance {

/// Labels of token objects. A peer's BI KEKLabel "ns-000013" is the token object
/// "lorakeep/kek/ns-000013".
inline constexpr std::string_view storage_key_label = "lorakeep/storage";
inline constexpr std::string_view kek_label_prefix = "lorakeep/kek/";
inline constexpr std::string_view part_key_label_prefix = "lorakeep/part/";
inline constexpr std::string_view transport_kek_label_prefix = "lorakeep/transport/";

struct Policy {
  /// The trusted-KEK switch: KEKs and the storage key must carry CKA_TRUSTED (set by the
  /// security officer) and session keys are created with CKA_WRAP_WITH_TRUSTED, so only a
  /// trusted key can wrap them.
  bool trusted_keks = false;
  /// Long-lived token keys are created with CKA_ALLOWED_MECHANISMS (their one mechanism).
  /// Off only for a token that cannot store the attribute on token objects (NSS softoken
  /// 3.87 fails with CKR_GENERAL_ERROR); their usage flags still restrict them.
  bool allowed_mechanisms = true;
};

/// The roles a long-lived key can have, each with the attributes it must (and must not)
/// have.
enum class KeyRole { storage, kek, part, transport };

/// Checks a key's attributes against its role: sensitive, never extractable, AES, and
/// exactly the usage of the role (storage: wrap+unwrap; kek: wrap; part: derive;
/// transport: unwrap) — no encrypt, decrypt, sign or verify. With trusted_keks, storage
/// and KEKs must be trusted. The failure message names the label and the first attribute
/// that is wrong.
Result<Ok> check_policy(const pkcs11::KeyAttributes& attrs, KeyRole role, const Policy& policy);

/// Finds long-lived keys by label, checks their policy, and caches a handle valid for the
/// whole application: a session-object copy of the token object when the token allows
/// C_CopyObject (SoftHSMv2 re-reads a token object's file at every use: ~180 system calls
/// per join; a session object lives in memory), else the token object itself. Every
/// `revalidate_after` a use looks the label up again, so that a key deleted, or replaced
/// under the same label, is noticed. Thread-safe; one per process.
class KeyDirectory {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds default_revalidation{5};

  explicit KeyDirectory(Policy policy = {},
                        std::chrono::seconds revalidate_after = default_revalidation)
      : policy_(policy), revalidate_after_(revalidate_after) {}

  [[nodiscard]] const Policy& policy() const noexcept { return policy_; }

  Result<pkcs11::KeyRef> storage_key(pkcs11::Session& session);
  /// `label` is the BI KEKLabel (without the prefix).
  Result<pkcs11::KeyRef> kek(pkcs11::Session& session, std::string_view label);
  Result<pkcs11::KeyRef> part_key(pkcs11::Session& session, std::string_view part_number);
  Result<pkcs11::KeyRef> transport_kek(pkcs11::Session& session, std::string_view label);

  /// Drops every cached handle (a token came back, or a cached handle named no key).
  /// Copies already made stay until their session closes.
  void forget();

 private:
  struct Entry {
    pkcs11::KeyRef token;  // the token object
    pkcs11::KeyRef use;    // its session copy, or the token object
    Clock::time_point checked;
  };

  Result<pkcs11::KeyRef> find(pkcs11::Session& session, const std::string& label, KeyRole role);
  Result<Entry> look_up(pkcs11::Session& session, const std::string& label, KeyRole role,
                        const Entry* known);

  Policy policy_;
  std::chrono::seconds revalidate_after_;
  // Held across a lookup and the copy it makes: SoftHSMv2's C_CopyObject gives the new
  // object the original's CKA_TOKEN before the template's, so a search racing it on
  // another thread can see two token keys with one label.
  std::mutex lookup_mutex_;
  std::mutex mutex_;
  std::map<std::string, Entry, std::less<>> cache_;
};

/// Maps a token error onto a lorakeep Status, keeping the CKR_* name and call in the
/// message: lost session/token → token_unavailable; refused by key policy → key_policy;
/// bad wrapped data or lengths → malformed; missing object → unknown_key.
Failure token_failure(const pkcs11::Error& e, std::string_view doing);

}  // namespace lorakeep::appliance
