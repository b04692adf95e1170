// A logged-in PKCS#11 session and the operations lorakeep needs, on key handles.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "pkcs11/ck.hpp"
#include "pkcs11/key_template.hpp"
#include "pkcs11/module.hpp"
#include "pkcs11/secret.hpp"
#include "pkcs11/stats.hpp"

namespace lorakeep::pkcs11 {

class Session;

/// A key object by handle, not owned (token objects, or a key owned elsewhere).
struct KeyRef {
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
};

/// Owns a (short-lived, session) key object: C_DestroyObject on scope exit. Move-only.
/// The session must outlive it. Destruction errors are swallowed: a lost session has
/// already taken its session objects with it.
class OwnedKey {
 public:
  OwnedKey() = default;
  OwnedKey(Session& session, CK_OBJECT_HANDLE handle) noexcept
      : session_(&session), handle_(handle) {}
  ~OwnedKey() { reset(); }
  OwnedKey(OwnedKey&& other) noexcept;
  OwnedKey& operator=(OwnedKey&& other) noexcept;
  OwnedKey(const OwnedKey&) = delete;
  OwnedKey& operator=(const OwnedKey&) = delete;

  [[nodiscard]] KeyRef ref() const noexcept { return {handle_}; }
  operator KeyRef() const noexcept { return ref(); }  // NOLINT(google-explicit-constructor)
  [[nodiscard]] CK_OBJECT_HANDLE handle() const noexcept { return handle_; }
  /// Gives up ownership: the object is kept (e.g. a token object just created).
  CK_OBJECT_HANDLE release() noexcept;
  void reset() noexcept;

 private:
  Session* session_ = nullptr;
  CK_OBJECT_HANDLE handle_ = CK_INVALID_HANDLE;
};

/// RFC 3394 (CKM_AES_KEY_WRAP) or the token's CKM_AES_KEY_WRAP_PAD (RFC 5649 on SoftHSMv2,
/// PKCS#7 padding on NSS: not portable, lorakeep itself uses only `rfc3394`).
enum class WrapMechanism { rfc3394, pad };

/// A read-write session, logged in as the user for its whole life (a PKCS#11 login is per
/// application: the first session's C_Login serves all; CKR_USER_ALREADY_LOGGED_IN is
/// fine). Move-only; C_CloseSession on destruction. Used by one thread at a time.
///
/// Every failing call throws Error with the CKR_* name and the call. A failure whose class
/// is session_lost or token_lost marks the session `lost()`, so a pool replaces it.
class Session {
 public:
  /// Opens a session on `slot` and logs the user in with `pin` (if empty: no login).
  Session(const Module& module, CK_SLOT_ID slot, const SecretBytes& pin);
  /// Opens a session and logs the security officer in (token set-up, CKA_TRUSTED). Throws
  /// when the session is not the SO's afterwards (NSS, whose SO login "succeeds" while the
  /// user is logged in).
  struct SecurityOfficer {};
  Session(const Module& module, CK_SLOT_ID slot, const SecretBytes& so_pin, SecurityOfficer);
  ~Session();
  Session(Session&& other) noexcept;
  Session& operator=(Session&& other) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  [[nodiscard]] CK_SESSION_HANDLE handle() const noexcept { return handle_; }
  [[nodiscard]] CK_SLOT_ID slot() const noexcept { return slot_; }
  [[nodiscard]] bool lost() const noexcept { return lost_; }
  /// Calls made through this session.
  [[nodiscard]] const CallCounts& call_counts() const noexcept { return counts_; }

  // --- token set-up (SO session) ---
  /// C_InitPIN: sets the user PIN (the session must be logged in as SO).
  void init_user_pin(const SecretBytes& pin);

  // --- objects ---
  [[nodiscard]] OwnedKey generate_aes_key(const KeyTemplate& tmpl);
  /// C_CreateObject with the template's value (import of a plaintext key).
  [[nodiscard]] OwnedKey create_key(const KeyTemplate& tmpl);
  /// C_CopyObject into a session object (CKA_TOKEN false; every other attribute as the
  /// original's, so a sensitive, non-extractable key stays so). It lives until this
  /// session closes, and any session of the application may use it.
  [[nodiscard]] KeyRef copy_to_session_object(KeyRef key);
  void destroy(CK_OBJECT_HANDLE handle);
  /// Which objects a search looks at.
  enum class Objects : std::uint8_t { any, token_only };
  /// Secret keys with this label (any number).
  [[nodiscard]] std::vector<KeyRef> find_keys(std::string_view label, Objects scope = Objects::any);
  /// The one secret key with this label, nullopt when none; throws when several.
  [[nodiscard]] std::optional<KeyRef> find_key(std::string_view label,
                                               Objects scope = Objects::any);
  [[nodiscard]] KeyAttributes attributes(KeyRef key);
  /// One attribute's raw value (C_GetAttributeValue); throws Error, e.g. with
  /// CKR_ATTRIBUTE_SENSITIVE for CKA_VALUE of a sensitive key.
  [[nodiscard]] std::vector<std::uint8_t> attribute(CK_OBJECT_HANDLE handle,
                                                    CK_ATTRIBUTE_TYPE type);

  // --- cryptography ---
  /// AES-CMAC (CKM_AES_CMAC, full 16 bytes) by C_SignInit + C_Sign.
  [[nodiscard]] std::array<std::uint8_t, 16> aes_cmac(KeyRef key,
                                                      std::span<const std::uint8_t> data);
  /// AES-ECB; `data` must be a multiple of 16 bytes.
  [[nodiscard]] std::vector<std::uint8_t> aes_ecb_encrypt(KeyRef key,
                                                          std::span<const std::uint8_t> data);
  [[nodiscard]] std::vector<std::uint8_t> aes_ecb_decrypt(KeyRef key,
                                                          std::span<const std::uint8_t> data);
  /// C_DeriveKey with CKM_AES_ECB_ENCRYPT_DATA: the new key's value is AES-ECB(base, data),
  /// `data` 16 bytes; its attributes come from `tmpl`, CKA_VALUE_LEN included (SoftHSMv2
  /// refuses an AES derivation without it). The token does not carry the base key's
  /// protection over: a non-sensitive, extractable template gives a readable key.
  [[nodiscard]] OwnedKey derive_aes_ecb(KeyRef base, std::span<const std::uint8_t, 16> data,
                                        const KeyTemplate& tmpl);
  /// One C_WrapKey in the usual case (a buffer large enough for AES-256 with padding).
  [[nodiscard]] std::vector<std::uint8_t> wrap(WrapMechanism mech, KeyRef kek, KeyRef key);
  /// `tmpl` without CKA_VALUE_LEN (SoftHSMv2: CKR_ATTRIBUTE_READ_ONLY); the length comes from
  /// the wrapped data. SoftHSMv2 2.6.1 then reports CKA_VALUE_LEN 0 on the new key, and a
  /// failed integrity check as CKR_GENERAL_ERROR (class other), not WRAPPED_KEY_INVALID.
  [[nodiscard]] OwnedKey unwrap(WrapMechanism mech, KeyRef kek,
                                std::span<const std::uint8_t> wrapped, const KeyTemplate& tmpl);

  /// The one place where a CK_RV from this session is checked. Counts the call, marks the
  /// session lost on session_lost/token_lost, and throws Error unless rv == CKR_OK.
  void check(CK_RV rv, Fn fn);
  /// Counts a call (for calls whose result is checked by hand).
  void count(Fn fn) noexcept;

 private:
  void open(const SecretBytes& pin, CK_USER_TYPE user);
  void require_so_state();
  void close() noexcept;

  const Module* module_ = nullptr;
  CK_FUNCTION_LIST_PTR fns_ = nullptr;
  CK_SLOT_ID slot_ = 0;
  CK_SESSION_HANDLE handle_ = CK_INVALID_HANDLE;
  bool lost_ = false;
  CallCounts counts_;
};

}  // namespace lorakeep::pkcs11
