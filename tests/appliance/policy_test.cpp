// Key policy: what the token refuses by itself — which differs between SoftHSMv2 and NSS
// softoken, so each test states it per token — and what lorakeep refuses before it asks the
// token, the same on both (DESIGN.md §2).
#include <doctest.h>

#include <atomic>
#include <memory>

#include "appliance/root_keys.hpp"
#include "appliance/session_key.hpp"
#include "appliance/templates.hpp"
#include "fixture.hpp"

using namespace lorakeep;
using namespace lorakeep::test;

namespace {

// What the token itself enforces of lorakeep's key policy (tests/pkcs11/policy_test.cpp
// pins each row on its own).
struct TokenEnforces {
  bool unextractable_not_wrapped;  // a root key, KEK or storage key cannot be wrapped out
  bool derive_needs_cka_derive;    // no derivation from a key without CKA_DERIVE
  bool trusted_wrapping;           // CKA_WRAP_WITH_TRUSTED keys wrapped by trusted keys only
  bool trusted_for_so_only;        // only the security officer sets CKA_TRUSTED
};

const TokenEnforces& token_enforces() {
  static constexpr TokenEnforces softhsm{true, true, true, true};
  static constexpr TokenEnforces nss{false, false, false, false};
  return token_kind() == TokenKind::softhsm ? softhsm : nss;
}

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

/// `op` must throw a key_policy Error when `refused`, and succeed otherwise.
template <class F>
void token_refuses_if(bool refused, F&& op) {
  if (refused) {
    CHECK(refused_by_policy(refusal(op)));
  } else {
    CHECK_NOTHROW(op());
  }
}

std::array<std::uint8_t, 16> block(std::uint8_t prefix) {
  std::array<std::uint8_t, 16> b{};
  b[0] = prefix;
  return b;
}

constexpr const char* join_eui = "70B3D57ED0001234";
constexpr const char* dev_eui = "0004A30B001C0530";

lorawan::JoinAcceptFields accept_fields(std::uint32_t join_nonce, std::uint8_t dl) {
  return {*lorawan::JoinNonce::create(join_nonce),
          *lorawan::NetId::from_hex("000013"),
          *lorawan::DevAddr::from_hex("26011B5C"),
          lorawan::DlSettings{dl},
          lorawan::RxDelay{1},
          std::nullopt};
}

/// The flags of a long-lived token key made by hand (not through appliance::import_key), as
/// an operator or another tool might have left it.
struct HandMade {
  bool sensitive = true;
  bool extractable = false;
  bool encrypt = false;
  bool wrap = false;
  bool unwrap = false;
};

void make_token_key(pkcs11::Session& s, const std::string& label, HandMade flags) {
  pkcs11::KeyTemplate tmpl(16);
  tmpl.label(label)
      .token(true)
      .sensitive(flags.sensitive)
      .extractable(flags.extractable)
      .encrypt(flags.encrypt)
      .wrap(flags.wrap)
      .unwrap(flags.unwrap)
      .value(pkcs11::SecretBytes(random_bytes(16)));
  (void)s.create_key(tmpl).release();
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
  // Wrapping the root key out: SoftHSMv2 refuses (not extractable), NSS would do it. No
  // path in the appliance asks (see "lorakeep asks the token to wrap only session keys").
  auto kek = f.keys.kek(f.session, "ns-kek");
  REQUIRE(kek.ok());
  token_refuses_if(token_enforces().unextractable_not_wrapped,
                   [&] { (void)f.session.wrap(pkcs11::WrapMechanism::rfc3394, *kek, *app_key); });

  // Session keys: sensitive, so CKA_VALUE is refused; extractable only for wrapping.
  pkcs11::OwnedKey session_key = f.session.derive_aes_ecb(
      *app_key, block(1), appliance::templates::session_key(f.keys.policy(), false));
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

  // A part key (derive only) asked to wrap a session key: both tokens refuse.
  REQUIRE(appliance::import_key(f.session, appliance::KeyRole::part, "P1",
                                pkcs11::SecretBytes(random_bytes(16)), f.keys.policy())
              .ok());
  auto part = f.keys.part_key(f.session, "P1");
  REQUIRE(part.ok());
  auto session_key = f.session.derive_aes_ecb(
      *part, block(1), appliance::templates::session_key(f.keys.policy(), false));
  CHECK(refused_by_policy(
      refusal([&] { (void)f.session.wrap(pkcs11::WrapMechanism::rfc3394, *part, session_key); })));
  // lorakeep does not even ask: a part key is not found as a KEK.
  CHECK(f.keys.kek(f.session, "P1").failure().status == Status::unknown_key);
}

TEST_CASE("a part key without CKA_DERIVE: the token may derive, lorakeep does not ask") {
  ApplianceFixture f;
  // Right label, sensitive, not extractable — but made without CKA_DERIVE.
  make_token_key(f.session, "lorakeep/part/NO-DERIVE", {});
  const auto weak = f.session.find_key("lorakeep/part/NO-DERIVE");
  REQUIRE(weak);
  token_refuses_if(token_enforces().derive_needs_cka_derive, [&] {
    (void)f.session.derive_aes_ecb(*weak, block(1), appliance::templates::root_key({.sign = true}));
  });

  appliance::JoinInput in;
  in.mac_version = lorawan::MacVersion::v1_0_2;
  in.join_request = make_join_request(random_bytes(16), join_eui, dev_eui, 1);
  in.root_keys = appliance::PartRootKeys{"NO-DERIVE", {0x01, 0x02}};
  in.accept = accept_fields(1, 0);
  in.ns = f.to_ns;
  const auto before = f.session.call_counts();
  auto out = appliance::join(f.session, f.keys, in);
  REQUIRE_FALSE(out.ok());
  CHECK(out.failure().status == Status::key_policy);
  CHECK(out.failure().message.find("may not derive") != std::string::npos);
  CHECK((f.session.call_counts() - before).of(pkcs11::Fn::DeriveKey) == 0);
}

TEST_CASE("a weak KEK is refused before any wrap, whatever the token would do") {
  ApplianceFixture f;
  struct Weak {
    const char* label = nullptr;
    HandMade flags;
    const char* why = nullptr;
  };
  const Weak weak[] = {
      {"extractable", {.extractable = true, .wrap = true}, "is extractable"},
      {"not-sensitive", {.sensitive = false, .wrap = true}, "is not sensitive"},
      {"also-encrypts", {.encrypt = true, .wrap = true}, "may encrypt or decrypt"},
      {"also-unwraps", {.wrap = true, .unwrap = true}, "may unwrap"},
  };
  for (const auto& w : weak) {
    CAPTURE(w.label);
    make_token_key(f.session, std::string("lorakeep/kek/") + w.label, w.flags);
    // The token itself would wrap a session key with every one of them.
    const auto raw = f.session.find_key(std::string("lorakeep/kek/") + w.label);
    REQUIRE(raw);
    auto probe =
        f.session.generate_aes_key(pkcs11::KeyTemplate(16).sensitive(true).extractable(true));
    CHECK(f.session.wrap(pkcs11::WrapMechanism::rfc3394, *raw, probe).size() == 24);

    appliance::JoinInput in;
    const auto key = random_bytes(16);
    in.mac_version = lorawan::MacVersion::v1_0_2;
    in.join_request = make_join_request(key, join_eui, dev_eui, 2);
    in.root_keys = appliance::WrappedRootKeys{f.wrap_root(key), {}};
    in.accept = accept_fields(2, 0);
    in.ns = appliance::Delivery{std::string(w.label), false};
    const auto before = f.session.call_counts();
    auto out = appliance::join(f.session, f.keys, in);
    REQUIRE_FALSE(out.ok());
    CHECK(out.failure().status == Status::key_policy);
    CHECK(out.failure().message.find(w.why) != std::string::npos);
    CHECK((f.session.call_counts() - before).of(pkcs11::Fn::WrapKey) == 0);
  }
}

namespace {

// A recording layer over the real token: every C_WrapKey and C_DeriveKey the appliance asks
// for is checked against the token's own view of the keys involved. C-compatible hooks,
// so their state is global; one Recorder at a time.
CK_FUNCTION_LIST_PTR g_real = nullptr;
std::atomic<int> g_wraps{0};
std::atomic<int> g_derives{0};
std::atomic<int> g_violations{0};

CK_BBOOL flag(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, CK_ATTRIBUTE_TYPE type) {
  CK_BBOOL value = CK_FALSE;
  CK_ATTRIBUTE a{type, &value, sizeof value};
  if (g_real->C_GetAttributeValue(s, key, &a, 1) != CKR_OK) ++g_violations;
  return value;
}

CK_RV recording_wrap(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE kek,
                     CK_OBJECT_HANDLE key, CK_BYTE_PTR out, CK_ULONG_PTR len) {
  ++g_wraps;
  // Only session keys: extractable session objects, never a token object; with RFC 3394.
  if (m->mechanism != CKM_AES_KEY_WRAP || flag(s, key, CKA_EXTRACTABLE) != CK_TRUE ||
      flag(s, key, CKA_TOKEN) != CK_FALSE || flag(s, kek, CKA_WRAP) != CK_TRUE) {
    ++g_violations;
  }
  return g_real->C_WrapKey(s, m, kek, key, out, len);
}

CK_RV recording_derive(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE base,
                       CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR out) {
  ++g_derives;
  if (m->mechanism != CKM_AES_ECB_ENCRYPT_DATA || flag(s, base, CKA_DERIVE) != CK_TRUE) {
    ++g_violations;
  }
  return g_real->C_DeriveKey(s, m, base, tmpl, n, out);
}

struct Recorder {
  CK_FUNCTION_LIST list{};
  std::unique_ptr<pkcs11::Module> module;
  explicit Recorder(TestToken& token) {
    g_real = token.module().functions();
    g_wraps = 0;
    g_derives = 0;
    g_violations = 0;
    list = *g_real;
    list.C_WrapKey = recording_wrap;
    list.C_DeriveKey = recording_derive;
    module = std::make_unique<pkcs11::Module>(&list);  // CKR_CRYPTOKI_ALREADY_INITIALIZED
  }
};

}  // namespace

TEST_CASE("lorakeep asks the token to wrap only session keys and to derive only from CKA_DERIVE") {
  ApplianceFixture f;
  const auto part_key = random_bytes(16);
  REQUIRE(appliance::import_key(f.session, appliance::KeyRole::part, "SE-1",
                                pkcs11::SecretBytes(part_key), f.keys.policy())
              .ok());
  const auto transport = random_bytes(16);
  REQUIRE(appliance::import_key(f.session, appliance::KeyRole::transport, "factory",
                                pkcs11::SecretBytes(transport), f.keys.policy())
              .ok());
  Recorder recorder(f.token);
  pkcs11::Session s(*recorder.module, f.token.slot(), f.token.user_pin());
  const auto app_key = random_bytes(16);
  const auto nwk_key = random_bytes(16);
  const appliance::WrappedRootKeys root{f.wrap_root(app_key), f.wrap_root(nwk_key)};

  SUBCASE("joins of every MAC version, with wrapped and part root keys") {
    for (const auto version :
         {lorawan::MacVersion::v1_0_2, lorawan::MacVersion::v1_0_4, lorawan::MacVersion::v1_1}) {
      const bool v1_1 = lorawan::is_1_1(version);
      for (const bool part : {false, true}) {
        appliance::JoinInput in;
        in.mac_version = version;
        in.root_keys = part ? appliance::RootKeys{appliance::PartRootKeys{"SE-1", {0x42}}}
                            : appliance::RootKeys{root};
        Bytes mic_key = v1_1 ? nwk_key : app_key;
        if (part) {
          // The device's key, derived as its manufacturer would (OpenSSL).
          const auto b = appliance::derive_part_block(
              v1_1 ? appliance::RootKeyKind::nwk_key : appliance::RootKeyKind::app_key,
              std::vector<std::uint8_t>{0x42});
          REQUIRE(b.ok());
          mic_key = ref::aes_ecb_encrypt(part_key, *b);
        }
        in.join_request = make_join_request(mic_key, join_eui, dev_eui, 1);
        in.accept = accept_fields(1, v1_1 ? 0x80 : 0);
        in.ns = f.to_ns;
        in.as = f.to_as;
        auto out = appliance::join(s, f.keys, in);
        CHECK_MESSAGE(out.ok(), (out.ok() ? "" : out.failure().message));
      }
    }
  }
  SUBCASE("a rejoin, an AppSKey re-wrap, root key imports (plaintext and transport-wrapped)") {
    Bytes phy{0xC0, 0x00};
    for (auto b : air("000013"))
      phy.push_back(b);
    for (auto b : air(dev_eui))
      phy.push_back(b);
    phy.insert(phy.end(), {0x05, 0x00, 0xAA, 0xBB, 0xCC, 0xDD});
    appliance::RejoinInput in;
    in.rejoin_request = phy;
    in.join_eui = *lorawan::JoinEui::from_hex(join_eui);
    in.root_keys = root;
    in.accept = accept_fields(3, 0x80);
    in.ns = f.to_ns;
    auto out = appliance::rejoin(s, f.keys, in);
    REQUIRE(out.ok());
    CHECK(appliance::rewrap_app_s_key(s, f.keys, out->stored_app_s_key, f.to_as).ok());
    CHECK(appliance::import_root_key(s, f.keys, pkcs11::SecretBytes(random_bytes(16))).ok());
    const auto from_factory = ref::aes_key_wrap(transport, random_bytes(16));
    CHECK(appliance::import_wrapped_root_key(s, f.keys, "factory", from_factory).ok());
  }
  CHECK(g_wraps > 0);
  CHECK(g_derives > 0);
  CHECK(g_violations == 0);
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

TEST_CASE("storage key creation is idempotent") {
  TestToken token;
  auto session = token.user_session();
  auto first = appliance::create_storage_key(session, token_policy());
  REQUIRE(first.ok());
  CHECK(first->created);
  auto second = appliance::create_storage_key(session, token_policy());
  REQUIRE(second.ok());
  CHECK_FALSE(second->created);
  CHECK(session.find_keys(appliance::storage_key_label).size() == 1);
  const auto attrs = session.attributes(*session.find_key(appliance::storage_key_label));
  CHECK(attrs.value_len == 32);
  CHECK(attrs.always_sensitive);
  CHECK(attrs.never_extractable);
}

TEST_CASE("a weak storage key is refused") {
  // Somebody made an extractable "storage key": lorakeep will not use it.
  TestToken token("weak");
  auto s2 = token.user_session();
  pkcs11::KeyTemplate weak(32);
  weak.label(std::string(appliance::storage_key_label))
      .token(true)
      .sensitive(true)
      .extractable(true)
      .wrap(true)
      .unwrap(true);
  s2.generate_aes_key(weak).release();
  appliance::KeyDirectory keys(token_policy());
  auto found = keys.storage_key(s2);
  REQUIRE_FALSE(found.ok());
  CHECK(found.failure().status == Status::key_policy);
  CHECK(found.failure().message.find("extractable") != std::string::npos);
  CHECK_FALSE(appliance::create_storage_key(s2, token_policy()).ok());
}

TEST_CASE("a token key with CKA_ALLOWED_MECHANISMS: the switch for tokens that cannot store it") {
  TestToken token;
  auto session = token.user_session();
  appliance::Policy with;  // allowed_mechanisms on, the default
  auto created = appliance::create_storage_key(session, with);
  if (token.kind() == TokenKind::softhsm) {
    REQUIRE(created.ok());
  } else {
    // NSS cannot store the attribute on a token object; the message names the switch.
    REQUIRE_FALSE(created.ok());
    CHECK(created.failure().message.find("CKR_GENERAL_ERROR") != std::string::npos);
    CHECK(created.failure().message.find("appliance.pkcs11.allowed_mechanisms: false") !=
          std::string::npos);
    appliance::Policy without;
    without.allowed_mechanisms = false;
    REQUIRE(appliance::create_storage_key(session, without).ok());
  }
  appliance::KeyDirectory keys(token_policy());
  CHECK(keys.storage_key(session).ok());
}

TEST_CASE("KEK import, duplicates and deletion") {
  ApplianceFixture f;
  const auto policy = f.keys.policy();
  auto dup = appliance::import_key(f.session, appliance::KeyRole::kek, "ns-kek",
                                   pkcs11::SecretBytes(random_bytes(16)), policy);
  CHECK_FALSE(dup.ok());
  CHECK_FALSE(appliance::import_key(f.session, appliance::KeyRole::kek, "short",
                                    pkcs11::SecretBytes(random_bytes(15)), policy)
                  .ok());
  CHECK_FALSE(appliance::import_key(f.session, appliance::KeyRole::kek, "bad label!",
                                    pkcs11::SecretBytes(random_bytes(16)), policy)
                  .ok());
  CHECK_FALSE(appliance::import_key(f.session, appliance::KeyRole::storage, "x",
                                    pkcs11::SecretBytes(random_bytes(32)), policy)
                  .ok());
  CHECK(appliance::delete_key(f.session, appliance::KeyRole::kek, "as-kek").ok());
  CHECK(appliance::delete_key(f.session, appliance::KeyRole::kek, "as-kek").failure().status ==
        Status::unknown_key);
}

TEST_CASE("trusted-KEK switch: lorakeep refuses an untrusted KEK; the token may not") {
  TestToken token;
  const appliance::Policy trusted = token_policy({.trusted_keks = true});
  const auto kek_value = random_bytes(16);
  if (token_enforces().trusted_for_so_only) {
    // SoftHSMv2: CKA_TRUSTED only from the security officer, and only on public objects.
    auto so = token.so_session();
    REQUIRE(appliance::create_storage_key(so, trusted).ok());
    REQUIRE(appliance::import_key(so, appliance::KeyRole::kek, "trusted-kek",
                                  pkcs11::SecretBytes(kek_value), trusted)
                .ok());
  }  // the SO logs out with its last session: SO and user cannot be logged in together
  auto user = token.user_session();
  if (!token_enforces().trusted_for_so_only) {
    // NSS has no security officer: the user marks keys trusted (and so could anyone with
    // the PIN — lorakeep's own check is all the switch means there).
    REQUIRE(appliance::create_storage_key(user, trusted).ok());
    REQUIRE(appliance::import_key(user, appliance::KeyRole::kek, "trusted-kek",
                                  pkcs11::SecretBytes(kek_value), trusted)
                .ok());
  }
  // An ordinary (untrusted) KEK made by the user.
  REQUIRE(appliance::import_key(user, appliance::KeyRole::kek, "plain-kek",
                                pkcs11::SecretBytes(random_bytes(16)), token_policy())
              .ok());
  appliance::KeyDirectory keys(trusted);
  auto good = keys.kek(user, "trusted-kek");
  REQUIRE_MESSAGE(good.ok(), (good.ok() ? "" : good.failure().message));
  // lorakeep's own check refuses the untrusted KEK before any wrap is asked for, on both.
  auto refused = keys.kek(user, "plain-kek");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.failure().status == Status::key_policy);
  appliance::JoinInput in;
  const auto key = random_bytes(16);
  in.mac_version = lorawan::MacVersion::v1_0_2;
  in.join_request = make_join_request(key, join_eui, dev_eui, 4);
  in.accept = accept_fields(4, 0);
  in.ns = appliance::Delivery{std::string("plain-kek"), false};
  {
    auto storage = keys.storage_key(user);
    REQUIRE(storage.ok());
    auto imported = appliance::import_root_key(user, keys, pkcs11::SecretBytes(key));
    REQUIRE(imported.ok());
    in.root_keys = appliance::WrappedRootKeys{*imported, {}};
  }
  const auto before = user.call_counts();
  auto out = appliance::join(user, keys, in);
  REQUIRE_FALSE(out.ok());
  CHECK(out.failure().status == Status::key_policy);
  CHECK((user.call_counts() - before).of(pkcs11::Fn::WrapKey) == 0);

  // The token itself, given a session key with CKA_WRAP_WITH_TRUSTED: SoftHSMv2 refuses the
  // untrusted KEK, NSS wraps with it.
  pkcs11::KeyTemplate base_tmpl(16);
  base_tmpl.sensitive(true).derive(true).value(pkcs11::SecretBytes(random_bytes(16)));
  auto base = user.create_key(base_tmpl);
  auto session_key =
      user.derive_aes_ecb(base, block(2), appliance::templates::session_key(trusted, false));
  CHECK(user.attributes(session_key).wrap_with_trusted);
  auto untrusted = user.find_key("lorakeep/kek/plain-kek");
  REQUIRE(untrusted);
  token_refuses_if(token_enforces().trusted_wrapping, [&] {
    (void)user.wrap(pkcs11::WrapMechanism::rfc3394, *untrusted, session_key);
  });
  const auto wrapped = user.wrap(pkcs11::WrapMechanism::rfc3394, *good, session_key);
  CHECK(wrapped.size() == 24);
  CHECK_NOTHROW((void)ref::aes_key_unwrap(kek_value, wrapped));
}

TEST_CASE("KeyDirectory: a session copy of the KEK, looked up again when the label changes") {
  ApplianceFixture f;
  // A plaintext session key to wrap, so that OpenSSL can say which KEK wrapped it.
  const auto payload = random_bytes(16);
  pkcs11::KeyTemplate tmpl(16);
  tmpl.value(pkcs11::SecretBytes(payload)).token(false).sensitive(false).extractable(true);
  const auto key = f.session.create_key(tmpl);
  const auto wrapped_by = [&](pkcs11::KeyRef kek) {
    return f.session.wrap(pkcs11::WrapMechanism::rfc3394, kek, key.ref());
  };

  appliance::KeyDirectory cached(f.keys.policy());                          // revalidates after 5 s
  appliance::KeyDirectory fresh(f.keys.policy(), std::chrono::seconds{0});  // at every use
  const auto first = cached.kek(f.session, "ns-kek");
  REQUIRE(first.ok());
  REQUIRE(fresh.kek(f.session, "ns-kek").ok());
  CHECK(wrapped_by(*first) == ref::aes_key_wrap(f.kek_ns, payload));

  // What is used is a copy in memory (both test tokens allow C_CopyObject), never a weaker
  // key: sensitive and not extractable like the token object.
  const auto attrs = f.session.attributes(*first);
  CHECK(attrs.sensitive);
  CHECK_FALSE(attrs.extractable);
  CHECK_FALSE(attrs.token);
  const auto object =
      f.session.find_key("lorakeep/kek/ns-kek", pkcs11::Session::Objects::token_only);
  REQUIRE(object.has_value());
  CHECK(object->handle != first->handle);
  // A second lookup within the interval answers from the cache: no search.
  const auto before = f.session.call_counts();
  CHECK(cached.kek(f.session, "ns-kek")->handle == first->handle);
  CHECK((f.session.call_counts() - before).of(pkcs11::Fn::FindObjectsInit) == 0);

  // The KEK replaced under the same label: a directory that revalidates uses the new one.
  REQUIRE(appliance::delete_key(f.session, appliance::KeyRole::kek, "ns-kek").ok());
  const auto replacement = random_bytes(16);
  REQUIRE(appliance::import_key(f.session, appliance::KeyRole::kek, "ns-kek",
                                pkcs11::SecretBytes(replacement), f.keys.policy())
              .ok());
  const auto now = fresh.kek(f.session, "ns-kek");
  REQUIRE(now.ok());
  CHECK(wrapped_by(*now) == ref::aes_key_wrap(replacement, payload));

  // Deleted: the next revalidating lookup says so, and a new one finds nothing either.
  REQUIRE(appliance::delete_key(f.session, appliance::KeyRole::kek, "ns-kek").ok());
  CHECK(fresh.kek(f.session, "ns-kek").failure().status == Status::unknown_key);
  CHECK(fresh.kek(f.session, "ns-kek").failure().status == Status::unknown_key);
}
