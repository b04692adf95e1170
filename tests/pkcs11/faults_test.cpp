// Error paths through a fake low level: SoftHSMv2's own function list with chosen entries
// replaced, so a call can answer any CKR_* code on demand.
#include <doctest.h>

#include <atomic>
#include <thread>

#include "pkcs11/error.hpp"
#include "pkcs11/session_pool.hpp"
#include "token_fixture.hpp"

using namespace lorakeep;
using namespace lorakeep::pkcs11;
using namespace std::chrono_literals;

namespace {

// The hooks are plain C-compatible functions, so their state is global. One FakeToken
// exists at a time (doctest runs test cases one after the other).
CK_FUNCTION_LIST_PTR g_real = nullptr;
std::atomic<CK_RV> g_sign_fails_with{CKR_OK};     // next C_Sign answers this, once
std::atomic<CK_RV> g_encrypt_fails_with{CKR_OK};  // next C_Encrypt answers this, once
std::atomic<CK_RV> g_open_fails_with{CKR_OK};     // next C_OpenSession answers this, once
std::atomic<CK_RV> g_find_fails_with{CKR_OK};     // every C_FindObjects answers this
std::atomic<bool> g_login_refused{false};         // every C_Login answers PIN_INCORRECT
std::atomic<int> g_login_calls{0};
std::atomic<int> g_login_delay_ms{0};  // C_Login takes this long
std::atomic<int> g_find_final_calls{0};
std::atomic<CK_ATTRIBUTE_TYPE> g_hide_attribute{0};  // C_GetAttributeValue lacks these
std::atomic<CK_ATTRIBUTE_TYPE> g_hide_attribute2{0};
std::atomic<CK_ULONG> g_wrap_claims_needed{0};  // next C_WrapKey: BUFFER_TOO_SMALL, once

CK_RV once(std::atomic<CK_RV>& slot) {
  return slot.exchange(CKR_OK);
}

CK_RV fake_sign(CK_SESSION_HANDLE s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
                CK_ULONG_PTR sig_len) {
  const CK_RV rv = once(g_sign_fails_with);
  if (rv != CKR_OK) {
    // End the real operation too, as a token that lost the session would have.
    (void)g_real->C_Sign(s, data, len, sig, sig_len);
    return rv;
  }
  return g_real->C_Sign(s, data, len, sig, sig_len);
}

CK_RV fake_encrypt(CK_SESSION_HANDLE s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out,
                   CK_ULONG_PTR out_len) {
  const CK_RV rv = once(g_encrypt_fails_with);
  if (rv != CKR_OK) {
    (void)g_real->C_Encrypt(s, data, len, out, out_len);
    return rv;
  }
  return g_real->C_Encrypt(s, data, len, out, out_len);
}

CK_RV fake_login(CK_SESSION_HANDLE s, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len) {
  ++g_login_calls;
  std::this_thread::sleep_for(std::chrono::milliseconds(g_login_delay_ms.load()));
  if (g_login_refused) return CKR_PIN_INCORRECT;
  return g_real->C_Login(s, user, pin, len);
}

CK_RV fake_open_session(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
                        CK_SESSION_HANDLE_PTR session) {
  const CK_RV rv = once(g_open_fails_with);
  if (rv != CKR_OK) return rv;
  return g_real->C_OpenSession(slot, flags, app, notify, session);
}

CK_RV fake_find_objects(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE_PTR out, CK_ULONG max,
                        CK_ULONG_PTR n) {
  const CK_RV rv = g_find_fails_with;
  if (rv != CKR_OK) return rv;
  return g_real->C_FindObjects(s, out, max, n);
}

CK_RV fake_find_objects_final(CK_SESSION_HANDLE s) {
  ++g_find_final_calls;
  return g_real->C_FindObjectsFinal(s);
}

// Answers as a token that does not know some attributes: fills in the rest, marks those
// unavailable and says CKR_ATTRIBUTE_TYPE_INVALID.
CK_RV fake_get_attribute_value(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE object, CK_ATTRIBUTE_PTR attrs,
                               CK_ULONG n) {
  const CK_ATTRIBUTE_TYPE hide[] = {g_hide_attribute, g_hide_attribute2};
  bool hidden = false;
  std::vector<CK_ATTRIBUTE> known;
  for (CK_ULONG i = 0; i < n; ++i) {
    if (attrs[i].type == hide[0] || attrs[i].type == hide[1]) {
      attrs[i].ulValueLen = pkcs11::kUnavailableInformation;
      hidden = true;
    } else {
      known.push_back(attrs[i]);
    }
  }
  if (!hidden) return g_real->C_GetAttributeValue(s, object, attrs, n);
  const CK_RV rv = g_real->C_GetAttributeValue(s, object, known.data(), known.size());
  for (CK_ULONG i = 0, k = 0; i < n; ++i) {
    if (attrs[i].type != hide[0] && attrs[i].type != hide[1]) attrs[i] = known[k++];
  }
  return rv == CKR_OK ? CKR_ATTRIBUTE_TYPE_INVALID : rv;
}

CK_RV fake_wrap_key(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE kek,
                    CK_OBJECT_HANDLE key, CK_BYTE_PTR out, CK_ULONG_PTR len) {
  const CK_ULONG needed = g_wrap_claims_needed.exchange(0);
  if (needed != 0 && *len < needed) {
    *len = needed;
    return CKR_BUFFER_TOO_SMALL;
  }
  return g_real->C_WrapKey(s, m, kek, key, out, len);
}

// A real token, and a second Module over a copy of its function list with the hooks in.
// The fake Module's C_Initialize answers CKR_CRYPTOKI_ALREADY_INITIALIZED, so it leaves
// C_Finalize to the token's own Module.
struct FakeToken {
  test::TestToken token;
  CK_FUNCTION_LIST list{};
  std::unique_ptr<Module> module;

  FakeToken() {
    g_real = token.module().functions();
    g_sign_fails_with = CKR_OK;
    g_encrypt_fails_with = CKR_OK;
    g_open_fails_with = CKR_OK;
    g_find_fails_with = CKR_OK;
    g_login_refused = false;
    g_login_calls = 0;
    g_login_delay_ms = 0;
    g_find_final_calls = 0;
    g_hide_attribute = 0;
    g_hide_attribute2 = 0;
    g_wrap_claims_needed = 0;
    list = *g_real;
    list.C_Sign = fake_sign;
    list.C_Encrypt = fake_encrypt;
    list.C_Login = fake_login;
    list.C_OpenSession = fake_open_session;
    list.C_FindObjects = fake_find_objects;
    list.C_FindObjectsFinal = fake_find_objects_final;
    list.C_GetAttributeValue = fake_get_attribute_value;
    list.C_WrapKey = fake_wrap_key;
    module = std::make_unique<Module>(&list);
  }
  ~FakeToken() { module.reset(); }
  FakeToken(const FakeToken&) = delete;
  FakeToken& operator=(const FakeToken&) = delete;
};

std::vector<std::uint8_t> cmac_key() {
  return test::from_hex("2b7e151628aed2a6abf7158809cf4f3c");
}
std::vector<std::uint8_t> message() {
  return test::from_hex("6bc1bee22e409f96e93d7e117393172a");
}
std::vector<std::uint8_t> expected_mac() {
  return test::from_hex("070a16b46b4d4144f79bdd9dd04a287c");
}

std::vector<std::uint8_t> cmac(Session& s) {
  const OwnedKey key = s.create_key(KeyTemplate(16).sign(true).value(SecretBytes(cmac_key())));
  const auto mac = s.aes_cmac(key, message());
  return {mac.begin(), mac.end()};
}

}  // namespace

TEST_CASE("the pool recovers from a lost session") {
  FakeToken fake;
  SessionPool pool(*fake.module, fake.token.selector(), fake.token.user_pin().clone(), 2);
  {
    auto lease = pool.acquire(1s);
    CHECK(cmac(*lease) == expected_mac());
    g_sign_fails_with = CKR_SESSION_HANDLE_INVALID;
    try {
      (void)cmac(*lease);
      FAIL("the fake C_Sign did not fail");
    } catch (const Error& e) {
      CHECK(e.error_class() == ErrorClass::session_lost);
      CHECK(e.call() == "C_Sign");
      CHECK(std::string(e.what()) == "C_Sign failed: CKR_SESSION_HANDLE_INVALID");
    }
    CHECK(lease->lost());
  }
  CHECK(pool.stats().replaced == 1);
  CHECK(pool.stats().open == 0);

  const CallCounts before = fake.module->call_counts();
  {
    auto lease = pool.acquire(1s);
    CHECK_FALSE(lease->lost());
    CHECK(lease->call_counts().of(Fn::OpenSession) == 1);
    CHECK(cmac(*lease) == expected_mac());
  }
  CHECK((fake.module->call_counts() - before).of(Fn::OpenSession) == 1);
  CHECK(pool.stats().replaced == 1);
  CHECK(pool.stats().open == 1);
}

TEST_CASE("a lost token marks the session lost as well") {
  FakeToken fake;
  SessionPool pool(*fake.module, fake.token.selector(), fake.token.user_pin().clone(), 1);
  {
    auto lease = pool.acquire(1s);
    const OwnedKey key = lease->generate_aes_key(KeyTemplate(16).encrypt(true));
    g_encrypt_fails_with = CKR_DEVICE_REMOVED;
    try {
      (void)lease->aes_ecb_encrypt(key, std::vector<std::uint8_t>(16));
      FAIL("the fake C_Encrypt did not fail");
    } catch (const Error& e) {
      CHECK(e.error_class() == ErrorClass::token_lost);
    }
    CHECK(lease->lost());
  }
  CHECK(pool.stats().replaced == 1);
}

TEST_CASE("errors that are not losses keep the session") {
  FakeToken fake;
  SessionPool pool(*fake.module, fake.token.selector(), fake.token.user_pin().clone(), 1);
  {
    auto lease = pool.acquire(1s);
    g_sign_fails_with = CKR_FUNCTION_FAILED;
    CHECK_THROWS_AS((void)cmac(*lease), Error);
    CHECK_FALSE(lease->lost());
    CHECK(cmac(*lease) == expected_mac());
  }
  CHECK(pool.stats().replaced == 0);
  CHECK(pool.stats().open == 1);
}

TEST_CASE("a wrong PIN is reported once and C_Login is called exactly once") {
  FakeToken fake;
  g_login_refused = true;
  SessionPool pool(*fake.module, fake.token.selector(), fake.token.user_pin().clone(), 3);
  for (int i = 0; i < 5; ++i) {
    try {
      (void)pool.acquire(1s);
      FAIL("acquired with a refused PIN");
    } catch (const Error& e) {
      CHECK(e.error_class() == ErrorClass::pin);
      CHECK(e.rv() == CKR_PIN_INCORRECT);
      CHECK(std::string(e.what()).find("CKR_PIN_INCORRECT") != std::string::npos);
    }
  }
  CHECK(g_login_calls == 1);
  // The session opened for the failed login was closed again.
  const CallCounts calls = fake.module->call_counts();
  CHECK(calls.of(Fn::OpenSession) == 1);
  CHECK(calls.of(Fn::CloseSession) == 1);
  CHECK(pool.stats().in_use == 0);
  CHECK(pool.stats().open == 0);
}

TEST_CASE("a timed-out acquire does not log in") {
  FakeToken fake;
  SessionPool pool(*fake.module, fake.token.selector(), fake.token.user_pin().clone(), 1);
  auto lease = pool.acquire(1s);
  g_login_refused = true;
  CHECK_THROWS_AS((void)pool.acquire(10ms), PoolTimeout);
  CHECK(g_login_calls == 1);  // only the first, successful login
}

TEST_CASE("a waiter on a full pool learns about a refused PIN without logging in") {
  FakeToken fake;
  g_login_refused = true;
  g_login_delay_ms = 200;
  SessionPool pool(*fake.module, fake.token.selector(), fake.token.user_pin().clone(), 1);
  std::atomic<bool> first_failed_on_pin{false};
  std::thread first([&] {
    try {
      (void)pool.acquire(5s);
    } catch (const Error& e) {
      first_failed_on_pin = e.error_class() == ErrorClass::pin;
    }
  });
  // Wait until the first thread holds the only place and is inside C_Login.
  while (g_login_calls == 0)
    std::this_thread::sleep_for(1ms);
  CHECK(pool.stats().in_use == 1);
  try {
    (void)pool.acquire(5s);
    FAIL("acquired with a refused PIN");
  } catch (const Error& e) {
    CHECK(e.error_class() == ErrorClass::pin);
  }
  first.join();
  CHECK(first_failed_on_pin);
  CHECK(g_login_calls == 1);
  CHECK(pool.stats().timeouts == 0);
}

TEST_CASE("a failed C_OpenSession leaves the place free for the next try") {
  FakeToken fake;
  SessionPool pool(*fake.module, fake.token.selector(), fake.token.user_pin().clone(), 1);
  g_open_fails_with = CKR_TOKEN_NOT_PRESENT;
  try {
    (void)pool.acquire(1s);
    FAIL("the fake C_OpenSession did not fail");
  } catch (const Error& e) {
    CHECK(e.error_class() == ErrorClass::token_lost);
    CHECK(e.call() == "C_OpenSession");
  }
  CHECK(pool.stats().in_use == 0);
  auto lease = pool.acquire(1s);
  CHECK(cmac(*lease) == expected_mac());
}

TEST_CASE("C_FindObjectsFinal is called even when C_FindObjects fails") {
  FakeToken fake;
  Session s(*fake.module, fake.token.slot(), fake.token.user_pin());
  CHECK(s.find_keys("nothing").empty());
  CHECK(g_find_final_calls == 1);
  g_find_fails_with = CKR_DEVICE_ERROR;
  CHECK_THROWS_AS((void)s.find_keys("nothing"), Error);
  CHECK(g_find_final_calls == 2);
  CHECK(s.lost());
  CHECK(s.call_counts().of(Fn::FindObjectsFinal) == 2);
}

TEST_CASE("call counts: per session and per module, failures included") {
  FakeToken fake;
  Session s(*fake.module, fake.token.slot(), fake.token.user_pin());
  (void)cmac(s);
  g_sign_fails_with = CKR_FUNCTION_FAILED;
  CHECK_THROWS_AS((void)cmac(s), Error);
  const CallCounts session = s.call_counts();
  CHECK(session.of(Fn::CreateObject) == 2);
  CHECK(session.of(Fn::SignInit) == 2);
  CHECK(session.of(Fn::Sign) == 2);
  CHECK(session.of(Fn::DestroyObject) == 2);
  CHECK(session.crypto() == 2);
  // The fake module saw exactly this session's calls, plus its own C_Initialize.
  CallCounts module = fake.module->call_counts();
  CHECK(module.of(Fn::Initialize) == 1);
  module.by_fn[static_cast<std::size_t>(Fn::Initialize)] = 0;
  CHECK(module.by_fn == session.by_fn);
}

TEST_CASE("attributes() tolerates a token without CKA_TRUSTED and CKA_WRAP_WITH_TRUSTED") {
  FakeToken fake;
  Session s(*fake.module, fake.token.slot(), fake.token.user_pin());
  const OwnedKey key = s.generate_aes_key(
      KeyTemplate(16).label("k").derive(true).sensitive(true).wrap_with_trusted(true));
  g_hide_attribute = CKA_TRUSTED;
  g_hide_attribute2 = CKA_WRAP_WITH_TRUSTED;
  const KeyAttributes a = s.attributes(key);
  CHECK(a.label == "k");
  CHECK(a.derive);
  CHECK(a.sensitive);
  CHECK(a.value_len == 16);
  CHECK_FALSE(a.trusted);
  CHECK_FALSE(a.wrap_with_trusted);  // unknown to this token, so reported false

  // A missing attribute that is not optional is an error.
  g_hide_attribute = CKA_DERIVE;
  try {
    (void)s.attributes(key);
    FAIL("a missing CKA_DERIVE was ignored");
  } catch (const Error& e) {
    CHECK(e.rv() == CKR_ATTRIBUTE_TYPE_INVALID);
  }
}

TEST_CASE("wrap asks again when the token needs a bigger buffer") {
  FakeToken fake;
  Session s(*fake.module, fake.token.slot(), fake.token.user_pin());
  const OwnedKey kek = s.generate_aes_key(KeyTemplate(16).wrap(true));
  const OwnedKey key = s.generate_aes_key(KeyTemplate(16).encrypt(true).extractable(true));
  const auto plain = s.wrap(WrapMechanism::rfc3394, kek, key);
  g_wrap_claims_needed = 100;
  const auto again = s.wrap(WrapMechanism::rfc3394, kek, key);
  CHECK(again == plain);
  CHECK(s.call_counts().of(Fn::WrapKey) == 3);
}
