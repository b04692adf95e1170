// What the token refuses, and the error class each refusal maps to. Also records the
// SoftHSMv2 behaviours that make lorakeep's own templates the line of defence.
#include <doctest.h>

#include "pkcs11/error.hpp"
#include "token_fixture.hpp"

using namespace lorakeep;
using namespace lorakeep::pkcs11;

namespace {

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

bool same_key(Session& s, KeyRef a, KeyRef b) {
  const auto block = test::random_bytes(16);
  return s.aes_ecb_encrypt(a, block) == s.aes_ecb_encrypt(b, block);
}

}  // namespace

TEST_CASE("a sensitive key's value cannot be read") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey key = s.generate_aes_key(KeyTemplate(16).encrypt(true).sensitive(true));
  const Error e = error_of([&] { (void)s.attribute(key.handle(), CKA_VALUE); });
  CHECK(e.error_class() == ErrorClass::key_policy);
  CHECK(e.rv() == CKR_ATTRIBUTE_SENSITIVE);
  CHECK(std::string(e.what()) == "C_GetAttributeValue failed: CKR_ATTRIBUTE_SENSITIVE");
  CHECK_FALSE(s.lost());

  // Not extractable hides the value too (PKCS#11: CKA_VALUE is not revealed when either
  // guard is set); only a key that is neither sensitive nor unextractable gives it away.
  const auto value = test::random_bytes(16);
  const OwnedKey hidden = s.create_key(KeyTemplate(16).encrypt(true).value(SecretBytes(value)));
  CHECK(error_of([&] { (void)s.attribute(hidden.handle(), CKA_VALUE); }).rv() ==
        CKR_ATTRIBUTE_SENSITIVE);
  const OwnedKey plain =
      s.create_key(KeyTemplate(16).encrypt(true).extractable(true).value(SecretBytes(value)));
  CHECK(s.attribute(plain.handle(), CKA_VALUE) == value);
}

TEST_CASE("a non-extractable key cannot be wrapped") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey kek = s.generate_aes_key(KeyTemplate(16).wrap(true).sensitive(true));
  const OwnedKey key =
      s.generate_aes_key(KeyTemplate(16).encrypt(true).sensitive(true).extractable(false));
  const Error e = error_of([&] { (void)s.wrap(WrapMechanism::rfc3394, kek, key); });
  CHECK(e.error_class() == ErrorClass::key_policy);
  CHECK(e.rv() == CKR_KEY_UNEXTRACTABLE);
}

TEST_CASE("a key without CKA_WRAP cannot wrap, without CKA_UNWRAP cannot unwrap") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey not_kek =
      s.generate_aes_key(KeyTemplate(16).encrypt(true).decrypt(true).sensitive(true));
  const OwnedKey key = s.generate_aes_key(KeyTemplate(16).encrypt(true).extractable(true));
  const Error e = error_of([&] { (void)s.wrap(WrapMechanism::rfc3394, not_kek, key); });
  CHECK(e.error_class() == ErrorClass::key_policy);
  CHECK(e.rv() == CKR_KEY_FUNCTION_NOT_PERMITTED);

  const OwnedKey wrap_only = s.generate_aes_key(KeyTemplate(16).wrap(true));
  const auto wrapped = s.wrap(WrapMechanism::rfc3394, wrap_only, key);
  const Error u = error_of([&] {
    (void)s.unwrap(WrapMechanism::rfc3394, wrap_only, wrapped, KeyTemplate(16).encrypt(true));
  });
  CHECK(u.error_class() == ErrorClass::key_policy);
}

TEST_CASE("usage flags are enforced: no CMAC without CKA_SIGN, no derive without CKA_DERIVE") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey key = s.generate_aes_key(KeyTemplate(16).encrypt(true));
  const std::vector<std::uint8_t> data(16);
  CHECK(error_of([&] { (void)s.aes_cmac(key, data); }).error_class() == ErrorClass::key_policy);
  CHECK(error_of([&] { (void)s.aes_ecb_decrypt(key, data); }).error_class() ==
        ErrorClass::key_policy);
  const std::array<std::uint8_t, 16> block{};
  CHECK(error_of([&] {
          (void)s.derive_aes_ecb(key, block, KeyTemplate(16).encrypt(true));
        }).error_class() == ErrorClass::key_policy);

  // The session is still usable after refusals (no operation left active).
  const OwnedKey mac_key = s.generate_aes_key(KeyTemplate(16).sign(true));
  CHECK_NOTHROW((void)s.aes_cmac(mac_key, data));
  CHECK_FALSE(s.lost());
}

TEST_CASE("CKA_ALLOWED_MECHANISMS is enforced") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey key = s.generate_aes_key(
      KeyTemplate(16).sign(true).encrypt(true).allowed_mechanisms({CKM_AES_CMAC}));
  const std::vector<std::uint8_t> data(16);
  CHECK_NOTHROW((void)s.aes_cmac(key, data));
  CHECK(error_of([&] { (void)s.aes_ecb_encrypt(key, data); }).error_class() ==
        ErrorClass::key_policy);
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
  CHECK(error_of([&] { (void)s.attribute(back.handle(), CKA_VALUE); }).rv() ==
        CKR_ATTRIBUTE_SENSITIVE);
}

TEST_CASE("KEY_WRAP_PAD round trip") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey kek = s.generate_aes_key(KeyTemplate(16).wrap(true).unwrap(true));
  const OwnedKey key = s.generate_aes_key(KeyTemplate(16).encrypt(true).extractable(true));
  const auto wrapped = s.wrap(WrapMechanism::pad, kek, key);
  const OwnedKey back = s.unwrap(WrapMechanism::pad, kek, wrapped, KeyTemplate(16).encrypt(true));
  CHECK(same_key(s, back, key));
  // The two mechanisms do not read each other's output (different integrity checks).
  CHECK_THROWS_AS(
      (void)s.unwrap(WrapMechanism::rfc3394, kek, wrapped, KeyTemplate(16).encrypt(true)), Error);
}

TEST_CASE("a tampered wrapped key is refused") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey kek = s.generate_aes_key(KeyTemplate(16).wrap(true).unwrap(true));
  const OwnedKey key = s.generate_aes_key(KeyTemplate(16).encrypt(true).extractable(true));
  auto wrapped = s.wrap(WrapMechanism::rfc3394, kek, key);
  wrapped[5] ^= 0x40U;
  // SoftHSMv2 reports a failed RFC 3394 integrity check as CKR_GENERAL_ERROR (class
  // other), not CKR_WRAPPED_KEY_INVALID: callers cannot rely on the class here.
  CHECK_THROWS_AS(
      (void)s.unwrap(WrapMechanism::rfc3394, kek, wrapped, KeyTemplate(16).encrypt(true)), Error);
  CHECK_THROWS_AS((void)s.unwrap(WrapMechanism::rfc3394, kek, std::span(wrapped.data(), 20),
                                 KeyTemplate(16).encrypt(true)),
                  Error);
  CHECK_FALSE(s.lost());
}

TEST_CASE("SoftHSMv2 lets a derived key be weaker than its base") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey base =
      s.generate_aes_key(KeyTemplate(16).derive(true).sensitive(true).extractable(false));
  const std::array<std::uint8_t, 16> data{1, 2, 3};

  SUBCASE("the template decides: sensitive and never extractable") {
    const OwnedKey d = s.derive_aes_ecb(base, data, KeyTemplate(16).encrypt(true).sensitive(true));
    const KeyAttributes a = s.attributes(d);
    CHECK(a.sensitive);
    CHECK(a.always_sensitive);
    CHECK_FALSE(a.extractable);
    CHECK(a.never_extractable);
    CHECK(a.value_len == 16);
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

TEST_CASE("CKA_TRUSTED is for the security officer; CKA_WRAP_WITH_TRUSTED binds wrapping") {
  test::TestToken token;
  {
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
  }
  auto s = token.user_session();
  const Error e =
      error_of([&] { (void)s.generate_aes_key(KeyTemplate(16).wrap(true).trusted(true)); });
  CHECK(e.rv() == CKR_ATTRIBUTE_READ_ONLY);
  CHECK(e.error_class() == ErrorClass::key_policy);

  const auto trusted = s.find_key("trusted-kek");
  REQUIRE(trusted.has_value());
  const KeyAttributes ta = s.attributes(*trusted);
  CHECK(ta.trusted);
  CHECK(ta.token);
  CHECK_FALSE(ta.private_object);

  const OwnedKey untrusted = s.generate_aes_key(KeyTemplate(16).wrap(true));
  const OwnedKey session_key = s.generate_aes_key(
      KeyTemplate(16).encrypt(true).sensitive(true).extractable(true).wrap_with_trusted(true));
  CHECK(s.attributes(session_key).wrap_with_trusted);
  CHECK(error_of([&] { (void)s.wrap(WrapMechanism::rfc3394, untrusted, session_key); }).rv() ==
        CKR_KEY_NOT_WRAPPABLE);
  CHECK(s.wrap(WrapMechanism::rfc3394, *trusted, session_key).size() == 24);
}
