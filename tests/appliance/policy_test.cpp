// Key policy: what the token refuses, and what lorakeep refuses before asking the token.
#include <doctest.h>

#include "appliance/root_keys.hpp"
#include "appliance/session_key.hpp"
#include "appliance/templates.hpp"
#include "fixture.hpp"

using namespace lorakeep;
using namespace lorakeep::test;

namespace {

/// Runs `f` and returns the Error class it threw (it must throw).
template <class F>
pkcs11::ErrorClass refusal(F&& f) {
  try {
    f();
  } catch (const pkcs11::Error& e) {
    return e.error_class();
  }
  FAIL("the token did not refuse");
  return pkcs11::ErrorClass::other;
}

bool refused_by_policy(pkcs11::ErrorClass c) {
  // Tokens differ in the exact code (SoftHSM: KEY_FUNCTION_NOT_PERMITTED, NSS:
  // KEY_TYPE_INCONSISTENT); the class is what matters.
  return c == pkcs11::ErrorClass::key_policy;
}

std::array<std::uint8_t, 16> block(std::uint8_t prefix) {
  std::array<std::uint8_t, 16> b{};
  b[0] = prefix;
  return b;
}

}  // namespace

TEST_CASE("no derived session key or loaded root key can be read") {
  ApplianceFixture f;
  appliance::WrappedRootKeys root{f.wrap_root(random_bytes(16)), f.wrap_root(random_bytes(16))};
  auto app_key = appliance::load_root_key(f.session, f.keys, root, appliance::RootKeyKind::app_key,
                                          {.sign = true, .decrypt = true, .derive = true});
  REQUIRE(app_key.ok());
  CHECK(
      refused_by_policy(refusal([&] { (void)f.session.attribute(app_key->handle(), CKA_VALUE); })));
  const auto attrs = f.session.attributes(*app_key);
  CHECK(attrs.sensitive);
  CHECK_FALSE(attrs.extractable);
  CHECK_FALSE(attrs.token);
  CHECK_FALSE(attrs.wrap);
  // A root key cannot be wrapped out either: it is not extractable.
  auto kek = f.keys.kek(f.session, "ns-kek");
  REQUIRE(kek.ok());
  CHECK(refused_by_policy(
      refusal([&] { (void)f.session.wrap(pkcs11::WrapMechanism::rfc3394, *kek, *app_key); })));

  // Session keys: sensitive, so CKA_VALUE is refused; extractable only for wrapping.
  pkcs11::OwnedKey session_key =
      f.session.derive_aes_ecb(*app_key, block(1), appliance::templates::session_key({}, false));
  CHECK(refused_by_policy(
      refusal([&] { (void)f.session.attribute(session_key.handle(), CKA_VALUE); })));
  const auto s = f.session.attributes(session_key);
  CHECK(s.sensitive);
  CHECK(s.extractable);
  CHECK_FALSE((s.encrypt || s.decrypt || s.sign || s.verify || s.wrap || s.unwrap || s.derive));
  // JS keys: usable for their one purpose only.
  auto js_int = f.session.derive_aes_ecb(*app_key, block(6), appliance::templates::js_int_key());
  CHECK(refused_by_policy(refusal([&] { (void)f.session.attribute(js_int.handle(), CKA_VALUE); })));
  CHECK(refused_by_policy(
      refusal([&] { (void)f.session.aes_ecb_decrypt(js_int, std::vector<std::uint8_t>(16)); })));
}

TEST_CASE("a KEK cannot encrypt or decrypt; a key without CKA_WRAP cannot wrap") {
  ApplianceFixture f;
  auto kek = f.keys.kek(f.session, "ns-kek");
  REQUIRE(kek.ok());
  const std::vector<std::uint8_t> data(16, 0x5A);
  CHECK(refused_by_policy(refusal([&] { (void)f.session.aes_ecb_encrypt(*kek, data); })));
  CHECK(refused_by_policy(refusal([&] { (void)f.session.aes_ecb_decrypt(*kek, data); })));
  CHECK(refused_by_policy(refusal([&] { (void)f.session.aes_cmac(*kek, data); })));

  // A part key (derive only) asked to wrap a session key: the token refuses.
  REQUIRE(appliance::import_key(f.session, appliance::KeyRole::part, "P1",
                                pkcs11::SecretBytes(random_bytes(16)), {})
              .ok());
  auto part = f.keys.part_key(f.session, "P1");
  REQUIRE(part.ok());
  auto session_key =
      f.session.derive_aes_ecb(*part, block(1), appliance::templates::session_key({}, false));
  CHECK(refused_by_policy(
      refusal([&] { (void)f.session.wrap(pkcs11::WrapMechanism::rfc3394, *part, session_key); })));
  // lorakeep does not even ask: a part key is not found as a KEK.
  CHECK(f.keys.kek(f.session, "P1").failure().status == Status::unknown_key);
}

TEST_CASE("the policy check refuses weak long-lived keys by role") {
  pkcs11::KeyAttributes good{};
  good.object_class = CKO_SECRET_KEY;
  good.key_type = CKK_AES;
  good.label = "lorakeep/storage";
  good.value_len = 32;
  good.token = good.sensitive = good.wrap = good.unwrap = true;
  CHECK(appliance::check_policy(good, appliance::KeyRole::storage, {}).ok());

  auto weaker = [&](auto change) {
    auto a = good;
    change(a);
    auto r = appliance::check_policy(a, appliance::KeyRole::storage, {});
    return !r.ok() && r.failure().status == Status::key_policy;
  };
  CHECK(weaker([](auto& a) { a.extractable = true; }));
  CHECK(weaker([](auto& a) { a.sensitive = false; }));
  CHECK(weaker([](auto& a) { a.encrypt = true; }));
  CHECK(weaker([](auto& a) { a.decrypt = true; }));
  CHECK(weaker([](auto& a) { a.sign = true; }));
  CHECK(weaker([](auto& a) { a.derive = true; }));
  CHECK(weaker([](auto& a) { a.token = false; }));
  CHECK(weaker([](auto& a) { a.value_len = 16; }));
  CHECK(weaker([](auto& a) { a.key_type = CKK_DES3; }));
  auto r = appliance::check_policy(good, appliance::KeyRole::storage, {.trusted_keks = true});
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().message.find("trusted") != std::string::npos);
  // A KEK may wrap only; a part key may derive only.
  auto kek = good;
  kek.value_len = 16;
  kek.unwrap = false;
  CHECK(appliance::check_policy(kek, appliance::KeyRole::kek, {}).ok());
  CHECK_FALSE(appliance::check_policy(kek, appliance::KeyRole::part, {}).ok());
  kek.unwrap = true;
  CHECK_FALSE(appliance::check_policy(kek, appliance::KeyRole::kek, {}).ok());
}

TEST_CASE("storage key creation is idempotent and a weak storage key is refused") {
  TestToken token;
  auto session = token.user_session();
  auto first = appliance::create_storage_key(session, {});
  REQUIRE(first.ok());
  CHECK(first->created);
  auto second = appliance::create_storage_key(session, {});
  REQUIRE(second.ok());
  CHECK_FALSE(second->created);
  CHECK(session.find_keys(appliance::storage_key_label).size() == 1);

  // Somebody made an extractable "storage key" in another token: lorakeep will not use it.
  TestToken other("weak");
  auto s2 = other.user_session();
  pkcs11::KeyTemplate weak(32);
  weak.label(std::string(appliance::storage_key_label))
      .token(true)
      .sensitive(true)
      .extractable(true)
      .wrap(true)
      .unwrap(true);
  s2.generate_aes_key(weak).release();
  appliance::KeyDirectory keys;
  auto found = keys.storage_key(s2);
  REQUIRE_FALSE(found.ok());
  CHECK(found.failure().status == Status::key_policy);
  CHECK(found.failure().message.find("extractable") != std::string::npos);
  CHECK_FALSE(appliance::create_storage_key(s2, {}).ok());
}

TEST_CASE("KEK import, duplicates and deletion") {
  ApplianceFixture f;
  auto dup = appliance::import_key(f.session, appliance::KeyRole::kek, "ns-kek",
                                   pkcs11::SecretBytes(random_bytes(16)), {});
  CHECK_FALSE(dup.ok());
  CHECK_FALSE(appliance::import_key(f.session, appliance::KeyRole::kek, "short",
                                    pkcs11::SecretBytes(random_bytes(15)), {})
                  .ok());
  CHECK_FALSE(appliance::import_key(f.session, appliance::KeyRole::kek, "bad label!",
                                    pkcs11::SecretBytes(random_bytes(16)), {})
                  .ok());
  CHECK_FALSE(appliance::import_key(f.session, appliance::KeyRole::storage, "x",
                                    pkcs11::SecretBytes(random_bytes(32)), {})
                  .ok());
  CHECK(appliance::delete_key(f.session, appliance::KeyRole::kek, "as-kek").ok());
  CHECK(appliance::delete_key(f.session, appliance::KeyRole::kek, "as-kek").failure().status ==
        Status::unknown_key);
}

TEST_CASE("trusted-KEK switch: only a trusted key can wrap a session key") {
  TestToken token;
  const appliance::Policy trusted{.trusted_keks = true};
  // CKA_TRUSTED can be set only by the security officer (SoftHSMv2: on public objects).
  const auto kek_value = random_bytes(16);
  {
    auto so = token.so_session();
    REQUIRE(appliance::create_storage_key(so, trusted).ok());
    REQUIRE(appliance::import_key(so, appliance::KeyRole::kek, "trusted-kek",
                                  pkcs11::SecretBytes(kek_value), trusted)
                .ok());
  }  // the SO logs out with its last session: SO and user cannot be logged in together
  auto user = token.user_session();
  // An ordinary (untrusted) KEK made by the user.
  REQUIRE(appliance::import_key(user, appliance::KeyRole::kek, "plain-kek",
                                pkcs11::SecretBytes(random_bytes(16)), {})
              .ok());
  appliance::KeyDirectory keys(trusted);
  auto good = keys.kek(user, "trusted-kek");
  REQUIRE_MESSAGE(good.ok(), (good.ok() ? "" : good.failure().message));
  // lorakeep's own check refuses the untrusted KEK before any wrap is asked for.
  auto refused = keys.kek(user, "plain-kek");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.failure().status == Status::key_policy);

  // And the token itself refuses it: a session key with CKA_WRAP_WITH_TRUSTED.
  pkcs11::KeyTemplate base_tmpl(16);
  base_tmpl.sensitive(true).derive(true).value(pkcs11::SecretBytes(random_bytes(16)));
  auto base = user.create_key(base_tmpl);
  auto session_key =
      user.derive_aes_ecb(base, block(2), appliance::templates::session_key(trusted, false));
  CHECK(user.attributes(session_key).wrap_with_trusted);
  auto untrusted = user.find_key("lorakeep/kek/plain-kek");
  REQUIRE(untrusted);
  CHECK(refused_by_policy(
      refusal([&] { (void)user.wrap(pkcs11::WrapMechanism::rfc3394, *untrusted, session_key); })));
  const auto wrapped = user.wrap(pkcs11::WrapMechanism::rfc3394, *good, session_key);
  CHECK(wrapped.size() == 24);
  CHECK_NOTHROW((void)ref::aes_key_unwrap(kek_value, wrapped));
}
