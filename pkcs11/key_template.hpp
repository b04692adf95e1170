// Typed attribute templates for AES secret keys. Every flag starts false and is always
// sent, because tokens' defaults are permissive (SoftHSMv2 makes keys extractable and
// usable for everything unless told otherwise).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pkcs11/ck.hpp"
#include "pkcs11/secret.hpp"

namespace lorakeep::pkcs11 {

class KeyTemplate {
 public:
  /// An AES secret key (CKO_SECRET_KEY, CKK_AES) of `value_len` bytes, all flags false,
  /// a session object (CKA_TOKEN false), private.
  explicit KeyTemplate(CK_ULONG value_len = 16);

  KeyTemplate& label(std::string value);
  KeyTemplate& token(bool on);
  KeyTemplate& private_object(bool on);
  KeyTemplate& sensitive(bool on);
  KeyTemplate& extractable(bool on);
  KeyTemplate& encrypt(bool on);
  KeyTemplate& decrypt(bool on);
  KeyTemplate& sign(bool on);
  KeyTemplate& verify(bool on);
  KeyTemplate& wrap(bool on);
  KeyTemplate& unwrap(bool on);
  KeyTemplate& derive(bool on);
  /// CKA_TRUSTED: only the security officer may set it (SoftHSMv2, and only on public
  /// objects).
  KeyTemplate& trusted(bool on);
  /// CKA_WRAP_WITH_TRUSTED: the key may be wrapped only by a trusted key.
  KeyTemplate& wrap_with_trusted(bool on);
  KeyTemplate& allowed_mechanisms(std::vector<CK_MECHANISM_TYPE> mechanisms);
  /// The key value for C_CreateObject (import). The template zeroizes it when destroyed.
  KeyTemplate& value(SecretBytes key);

  /// The attribute array for C_GenerateKey / C_CreateObject / C_UnwrapKey / C_DeriveKey.
  /// Pointers refer into this template: keep it alive during the call. `with_length`
  /// false drops CKA_VALUE_LEN (C_CreateObject and some C_UnwrapKey implementations
  /// refuse it).
  [[nodiscard]] std::vector<CK_ATTRIBUTE> attributes(bool with_length = true) const;

  [[nodiscard]] CK_ULONG value_len() const noexcept { return value_len_; }

 private:
  CK_OBJECT_CLASS class_ = CKO_SECRET_KEY;
  CK_KEY_TYPE key_type_ = CKK_AES;
  CK_ULONG value_len_;
  std::string label_;
  bool has_label_ = false;
  // CK_BBOOL storage for every flag, in a fixed order (see key_template.cpp).
  struct Flags {
    CK_BBOOL token = CK_FALSE, private_object = CK_TRUE, sensitive = CK_FALSE,
             extractable = CK_FALSE, encrypt = CK_FALSE, decrypt = CK_FALSE, sign = CK_FALSE,
             verify = CK_FALSE, wrap = CK_FALSE, unwrap = CK_FALSE, derive = CK_FALSE,
             trusted = CK_FALSE, wrap_with_trusted = CK_FALSE;
    bool trusted_set = false;            // CKA_TRUSTED is sent only when asked for
    bool wrap_with_trusted_set = false;  // idem
  } flags_;
  std::vector<CK_MECHANISM_TYPE> mechanisms_;
  std::optional<SecretBytes> value_;
};

/// What the token says about a key (C_GetAttributeValue on the policy attributes).
struct KeyAttributes {
  CK_OBJECT_CLASS object_class{};
  CK_KEY_TYPE key_type{};
  std::string label;
  CK_ULONG value_len{};
  bool token{}, private_object{}, sensitive{}, extractable{}, always_sensitive{},
      never_extractable{}, encrypt{}, decrypt{}, sign{}, verify{}, wrap{}, unwrap{}, derive{},
      trusted{}, wrap_with_trusted{};
};

}  // namespace lorakeep::pkcs11
