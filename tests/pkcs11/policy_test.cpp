// What the token refuses by itself, per token, and the error class each refusal maps to.
// The two tokens disagree on much of it (the table below); whatever a token lets through,
// lorakeep's own templates and checks must stop (tests/appliance/policy_test.cpp).
#include <doctest.h>

#include "pkcs11/error.hpp"
#include "token_fixture.hpp"

using namespace lorakeep;
using namespace lorakeep::pkcs11;

namespace {

// What each token enforces itself, as found on SoftHSMv2 2.6.1 and NSS softoken 3.87. Every
// row is checked both ways below: a token that starts or stops enforcing one fails here.
struct Enforces {
  bool unextractable_not_wrapped;      // C_WrapKey refuses a key with CKA_EXTRACTABLE false
  bool unextractable_value_hidden;     // CKA_VALUE of a non-sensitive, non-extractable key
  bool derive_needs_cka_derive;        // C_DeriveKey refuses a base without CKA_DERIVE
  bool allowed_mechanisms;             // CKA_ALLOWED_MECHANISMS limits a key's mechanisms
  bool derived_always_sensitive;       // a sensitive derived key reports CKA_ALWAYS_SENSITIVE
  bool trusted_for_so_only;            // a user may not set CKA_TRUSTED
  bool wrap_with_trusted;              // CKA_WRAP_WITH_TRUSTED refuses an untrusted KEK
  bool unwrap_checks_wrap_pad_format;  // CKM_AES_KEY_WRAP refuses CKM_AES_KEY_WRAP_PAD output
};

constexpr Enforces softhsm_enforces{true, true, true, true, true, true, true, true};
constexpr Enforces nss_enforces{false, false, false, false, false, false, false, false};

const Enforces& enforced() {
  return test::token_kind() == test::TokenKind::softhsm ? softhsm_enforces : nss_enforces;
}

bool softhsm() {
  return test::token_kind() == test::TokenKind::softhsm;
}

// Runs `op`, which must throw Error; returns it.
template <typename Op>
Error error_of(Op&& op) {
  try {
    op();
  } catch (const Error& e) {
    return e;
  }
  FAIL("no pkcs11::Error thrown");
  return Error("unreachable", ErrorClass::other);
}

// Runs `op`: when `refused`, it must throw an Error of class key_policy; otherwise succeed.
template <typename Op>
void refused_if(bool refused, Op&& op) {
  if (refused) {
    CHECK(error_of(op).error_class() == ErrorClass::key_policy);
  } else {
    CHECK_NOTHROW(op());
  }
}

bool same_key(Session& s, KeyRef a, KeyRef b) {
  const auto block = test::random_bytes(16);
  return s.aes_ecb_encrypt(a, block) == s.aes_ecb_encrypt(b, block);
}

}  // namespace

TEST_CASE("a sensitive key's value cannot be read; a non-extractable one's on SoftHSMv2 only") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey key = s.generate_aes_key(KeyTemplate(16).encrypt(true).sensitive(true));
  const Error e = error_of([&] { (void)s.attribute(key.handle(), CKA_VALUE); });
  CHECK(e.error_class() == ErrorClass::key_policy);
  CHECK(e.rv() == CKR_ATTRIBUTE_SENSITIVE);
  CHECK(std::string(e.what()) == "C_GetAttributeValue failed: CKR_ATTRIBUTE_SENSITIVE");
  CHECK_FALSE(s.lost());

  // PKCS#11 hides CKA_VALUE when either guard is set; NSS looks at CKA_SENSITIVE only.
  const auto value = test::random_bytes(16);
  const OwnedKey hidden = s.create_key(KeyTemplate(16).encrypt(true).value(SecretBytes(value)));
  if (enforced().unextractable_value_hidden) {
    CHECK(error_of([&] { (void)s.attribute(hidden.handle(), CKA_VALUE); }).rv() ==
          CKR_ATTRIBUTE_SENSITIVE);
  } else {
    CHECK(s.attribute(hidden.handle(), CKA_VALUE) == value);
  }
  const OwnedKey plain =
      s.create_key(KeyTemplate(16).encrypt(true).extractable(true).value(SecretBytes(value)));
  CHECK(s.attribute(plain.handle(), CKA_VALUE) == value);
}

TEST_CASE("a non-extractable key is wrapped by NSS, refused by SoftHSMv2") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey kek = s.generate_aes_key(KeyTemplate(16).wrap(true).sensitive(true));
  const OwnedKey key =
      s.generate_aes_key(KeyTemplate(16).encrypt(true).sensitive(true).extractable(false));
  if (enforced().unextractable_not_wrapped) {
    const Error e = error_of([&] { (void)s.wrap(WrapMechanism::rfc3394, kek, key); });
    CHECK(e.error_class() == ErrorClass::key_policy);
    CHECK(e.rv() == CKR_KEY_UNEXTRACTABLE);
  } else {
    // The key leaves the token, wrapped: lorakeep must never ask (DESIGN.md §2).
    CHECK(s.wrap(WrapMechanism::rfc3394, kek, key).size() == 24);
  }
}

TEST_CASE("a key without CKA_WRAP cannot wrap, without CKA_UNWRAP cannot unwrap") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey not_kek =
      s.generate_aes_key(KeyTemplate(16).encrypt(true).decrypt(true).sensitive(true));
  const OwnedKey key = s.generate_aes_key(KeyTemplate(16).encrypt(true).extractable(true));
  const Error e = error_of([&] { (void)s.wrap(WrapMechanism::rfc3394, not_kek, key); });
  // One refusal, two codes, one class.
  CHECK(e.error_class() == ErrorClass::key_policy);
  CHECK(e.rv() == (softhsm() ? CKR_KEY_FUNCTION_NOT_PERMITTED : CKR_KEY_TYPE_INCONSISTENT));

  const OwnedKey wrap_only = s.generate_aes_key(KeyTemplate(16).wrap(true));
  const auto wrapped = s.wrap(WrapMechanism::rfc3394, wrap_only, key);
  const Error u = error_of([&] {
    (void)s.unwrap(WrapMechanism::rfc3394, wrap_only, wrapped, KeyTemplate(16).encrypt(true));
  });
  CHECK(u.error_class() == ErrorClass::key_policy);
}

TEST_CASE("usage flags: no CMAC without CKA_SIGN, no decryption without CKA_DECRYPT") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey key = s.generate_aes_key(KeyTemplate(16).encrypt(true));
  const std::vector<std::uint8_t> data(16);
  const Error sign = error_of([&] { (void)s.aes_cmac(key, data); });
  CHECK(sign.error_class() == ErrorClass::key_policy);
  CHECK(sign.rv() == (softhsm() ? CKR_KEY_FUNCTION_NOT_PERMITTED : CKR_KEY_TYPE_INCONSISTENT));
  CHECK(error_of([&] { (void)s.aes_ecb_decrypt(key, data); }).error_class() ==
        ErrorClass::key_policy);

  // The session is still usable after refusals (no operation left active).
  const OwnedKey mac_key = s.generate_aes_key(KeyTemplate(16).sign(true));
  CHECK_NOTHROW((void)s.aes_cmac(mac_key, data));
  CHECK_FALSE(s.lost());
}

TEST_CASE("derivation from a key without CKA_DERIVE: refused by SoftHSMv2 only") {
  test::TestToken token;
  auto s = token.user_session();
  const auto value = test::random_bytes(16);
  const OwnedKey key = s.create_key(KeyTemplate(16).encrypt(true).value(SecretBytes(value)));
  const std::array<std::uint8_t, 16> block{7};
  refused_if(enforced().derive_needs_cka_derive, [&] {
    const OwnedKey derived = s.derive_aes_ecb(key, block, KeyTemplate(16).encrypt(true));
    // What NSS derived is the real thing: AES-ECB(key, block).
    const OwnedKey expected = s.create_key(
        KeyTemplate(16).encrypt(true).value(SecretBytes(s.aes_ecb_encrypt(key, block))));
    CHECK(same_key(s, derived, expected));
  });
  CHECK_FALSE(s.lost());
}

TEST_CASE("CKA_ALLOWED_MECHANISMS: enforced by SoftHSMv2, ignored by NSS") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey key = s.generate_aes_key(
      KeyTemplate(16).sign(true).encrypt(true).allowed_mechanisms({CKM_AES_CMAC}));
  const std::vector<std::uint8_t> data(16);
  CHECK_NOTHROW((void)s.aes_cmac(key, data));
  refused_if(enforced().allowed_mechanisms, [&] { (void)s.aes_ecb_encrypt(key, data); });
}

TEST_CASE("CKA_ALLOWED_MECHANISMS on a token object: NSS cannot store it") {
  test::TestToken token;
  auto s = token.user_session();
  KeyTemplate tmpl(16);
  tmpl.token(true)
      .label("restricted")
      .wrap(true)
      .sensitive(true)
      .allowed_mechanisms({CKM_AES_KEY_WRAP});
  if (softhsm()) {
    OwnedKey key = s.generate_aes_key(tmpl);
    CHECK(s.attributes(key).token);
  } else {
    // Not a refusal naming the attribute: a general error (appliance::Policy::allowed_mechanisms).
    const Error e = error_of([&] { (void)s.generate_aes_key(tmpl); });
    CHECK(e.rv() == CKR_GENERAL_ERROR);
    CHECK(e.error_class() == ErrorClass::other);
    CHECK(s.find_keys("restricted").empty());
  }
  // The same key without the attribute is stored by both.
  OwnedKey plain =
      s.generate_aes_key(KeyTemplate(16).token(true).label("plain").wrap(true).sensitive(true));
  CHECK(s.attributes(plain).token);
}

TEST_CASE("unwrap round trip gives a key with the template's policy") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey kek = s.generate_aes_key(KeyTemplate(16).wrap(true).unwrap(true).sensitive(true));
  const OwnedKey key =
      s.generate_aes_key(KeyTemplate(16).encrypt(true).extractable(true).sensitive(true));
  const auto wrapped = s.wrap(WrapMechanism::rfc3394, kek, key);
  CHECK(wrapped.size() == 24);

  const OwnedKey back = s.unwrap(WrapMechanism::rfc3394, kek, wrapped,
                                 KeyTemplate(16).encrypt(true).sensitive(true).label("back"));
  CHECK(same_key(s, back, key));
  const KeyAttributes a = s.attributes(back);
  CHECK(a.label == "back");
  CHECK(a.sensitive);
  CHECK_FALSE(a.extractable);
  CHECK(a.encrypt);
  CHECK_FALSE(a.decrypt);
  CHECK_FALSE(a.wrap);
  // An unwrapped key was outside the token once, whatever its template says now.
  CHECK_FALSE(a.always_sensitive);
  CHECK_FALSE(a.never_extractable);
  // SoftHSMv2 2.6.1 reports CKA_VALUE_LEN 0 for an unwrapped key; NSS its length.
  CHECK(a.value_len == (softhsm() ? 0 : 16));
  CHECK(error_of([&] { (void)s.attribute(back.handle(), CKA_VALUE); }).rv() ==
        CKR_ATTRIBUTE_SENSITIVE);
}

TEST_CASE("KEY_WRAP_PAD output read as RFC 3394: refused by SoftHSMv2, a longer key on NSS") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey kek = s.generate_aes_key(KeyTemplate(16).wrap(true).unwrap(true));
  const auto value = test::random_bytes(16);
  const OwnedKey key =
      s.create_key(KeyTemplate(16).encrypt(true).extractable(true).value(SecretBytes(value)));
  const auto wrapped = s.wrap(WrapMechanism::pad, kek, key);
  const OwnedKey back = s.unwrap(WrapMechanism::pad, kek, wrapped, KeyTemplate(16).encrypt(true));
  CHECK(same_key(s, back, key));
  if (enforced().unwrap_checks_wrap_pad_format) {
    // RFC 5649's integrity value is not RFC 3394's.
    CHECK_THROWS_AS(
        (void)s.unwrap(WrapMechanism::rfc3394, kek, wrapped, KeyTemplate(16).encrypt(true)), Error);
  } else {
    // NSS's pad format is PKCS#7 inside RFC 3394: the plain mechanism gives the key with its
    // padding, an AES-192 "key" ending in eight 0x08 bytes.
    const OwnedKey padded = s.unwrap(WrapMechanism::rfc3394, kek, wrapped,
                                     KeyTemplate(16).encrypt(true).extractable(true));
    auto expected = value;
    expected.insert(expected.end(), 8, 0x08);
    CHECK(s.attribute(padded.handle(), CKA_VALUE) == expected);
  }
}

TEST_CASE("a tampered wrapped key is refused") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey kek = s.generate_aes_key(KeyTemplate(16).wrap(true).unwrap(true));
  const OwnedKey key = s.generate_aes_key(KeyTemplate(16).encrypt(true).extractable(true));
  auto wrapped = s.wrap(WrapMechanism::rfc3394, kek, key);
  wrapped[5] ^= 0x40U;
  // SoftHSMv2 reports a failed RFC 3394 integrity check as CKR_GENERAL_ERROR (class other),
  // NSS as CKR_WRAPPED_KEY_INVALID (bad_input): callers cannot rely on one class here.
  const Error e = error_of(
      [&] { (void)s.unwrap(WrapMechanism::rfc3394, kek, wrapped, KeyTemplate(16).encrypt(true)); });
  CHECK(e.rv() == (softhsm() ? CKR_GENERAL_ERROR : CKR_WRAPPED_KEY_INVALID));
  CHECK_THROWS_AS((void)s.unwrap(WrapMechanism::rfc3394, kek, std::span(wrapped.data(), 20),
                                 KeyTemplate(16).encrypt(true)),
                  Error);
  CHECK_FALSE(s.lost());
}

TEST_CASE("both tokens let a derived key be weaker than its base") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey base =
      s.generate_aes_key(KeyTemplate(16).derive(true).sensitive(true).extractable(false));
  const std::array<std::uint8_t, 16> data{1, 2, 3};

  SUBCASE("the template decides: sensitive and not extractable") {
    const OwnedKey d = s.derive_aes_ecb(base, data, KeyTemplate(16).encrypt(true).sensitive(true));
    const KeyAttributes a = s.attributes(d);
    CHECK(a.sensitive);
    CHECK_FALSE(a.extractable);
    CHECK(a.value_len == 16);
    // NSS does not carry "always sensitive, never extractable" over to a derived key.
    CHECK(a.always_sensitive == enforced().derived_always_sensitive);
    CHECK(a.never_extractable == enforced().derived_always_sensitive);
  }
  SUBCASE("a non-sensitive template gives a readable key from a sensitive base") {
    const OwnedKey d = s.derive_aes_ecb(
        base, data, KeyTemplate(16).encrypt(true).sensitive(false).extractable(true));
    const KeyAttributes a = s.attributes(d);
    CHECK_FALSE(a.sensitive);
    CHECK_FALSE(a.always_sensitive);
    CHECK(a.extractable);
    CHECK(s.attribute(d.handle(), CKA_VALUE).size() == 16);
  }
}

TEST_CASE("a session that did not log in neither sees nor makes private keys") {
  test::TestToken token;
  {
    // Logged out again when its last session closes.
    auto user = token.user_session();
    (void)user.generate_aes_key(KeyTemplate(16).token(true).label("private").wrap(true)).release();
  }
  Session s(token.module(), token.slot(), SecretBytes());
  CHECK(s.call_counts().of(Fn::Login) == 0);
  CHECK(s.find_keys("private").empty());
  const Error e = error_of([&] { (void)s.generate_aes_key(KeyTemplate(16).encrypt(true)); });
  CHECK(e.rv() == CKR_USER_NOT_LOGGED_IN);
  CHECK(s.lost());  // USER_NOT_LOGGED_IN is session_lost: a pool would log in afresh
}

TEST_CASE("CKA_TRUSTED and CKA_WRAP_WITH_TRUSTED") {
  test::TestToken token;
  if (enforced().trusted_for_so_only) {
    // Before any user session: login is per application, and SO and user exclude each other.
    auto so = token.so_session();
    OwnedKey trusted = so.generate_aes_key(
        KeyTemplate(16).token(true).private_object(false).trusted(true).wrap(true).label(
            "trusted-kek"));
    (void)trusted.release();
    // SoftHSMv2 accepts CKA_TRUSTED only on public objects; the SO cannot reach private ones.
    CHECK(error_of([&] {
            (void)so.generate_aes_key(
                KeyTemplate(16).token(true).private_object(true).trusted(true).wrap(true));
          }).rv() == CKR_USER_NOT_LOGGED_IN);
  } else {
    // NSS has no security officer once its database has a password.
    CHECK(error_of([&] {
            const Session so(token.module(), token.slot(), token.user_pin(),
                             Session::SecurityOfficer{});
          }).rv() == CKR_USER_TYPE_INVALID);
  }
  auto s = token.user_session();
  if (enforced().trusted_for_so_only) {
    const Error e =
        error_of([&] { (void)s.generate_aes_key(KeyTemplate(16).wrap(true).trusted(true)); });
    CHECK(e.rv() == CKR_ATTRIBUTE_READ_ONLY);
    CHECK(e.error_class() == ErrorClass::key_policy);
  } else {
    // Anyone with the user PIN marks a key trusted.
    OwnedKey trusted = s.generate_aes_key(
        KeyTemplate(16).token(true).private_object(false).trusted(true).wrap(true).label(
            "trusted-kek"));
    (void)trusted.release();
  }

  const auto trusted = s.find_key("trusted-kek");
  REQUIRE(trusted.has_value());
  const KeyAttributes ta = s.attributes(*trusted);
  CHECK(ta.trusted);
  CHECK(ta.token);
  CHECK_FALSE(ta.private_object);

  const OwnedKey untrusted = s.generate_aes_key(KeyTemplate(16).wrap(true));
  CHECK_FALSE(s.attributes(untrusted).trusted);
  const OwnedKey session_key = s.generate_aes_key(
      KeyTemplate(16).encrypt(true).sensitive(true).extractable(true).wrap_with_trusted(true));
  CHECK(s.attributes(session_key).wrap_with_trusted);
  if (enforced().wrap_with_trusted) {
    CHECK(error_of([&] { (void)s.wrap(WrapMechanism::rfc3394, untrusted, session_key); }).rv() ==
          CKR_KEY_NOT_WRAPPABLE);
  } else {
    CHECK(s.wrap(WrapMechanism::rfc3394, untrusted, session_key).size() == 24);
  }
  CHECK(s.wrap(WrapMechanism::rfc3394, *trusted, session_key).size() == 24);
}
