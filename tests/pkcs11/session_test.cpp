// Session: login, objects, attributes, RAII key objects and call counting.
#include <doctest.h>

#include <algorithm>

#include "pkcs11/error.hpp"
#include "token_fixture.hpp"

using namespace lorakeep;
using namespace lorakeep::pkcs11;

TEST_CASE("a second session of the application is already logged in, and that is fine") {
  test::TestToken token;
  const CallCounts before = token.module().call_counts();
  auto first = token.user_session();
  auto second = token.user_session();
  CHECK(first.handle() != second.handle());
  CHECK(second.call_counts().of(Fn::Login) == 1);
  CHECK((token.module().call_counts() - before).of(Fn::Login) == 2);
  // Session objects are the application's: the second session can use the first's key.
  const OwnedKey key = first.generate_aes_key(KeyTemplate(16).encrypt(true));
  CHECK(second.aes_ecb_encrypt(key, std::vector<std::uint8_t>(16)).size() == 16);
}

TEST_CASE("a wrong PIN fails with class pin and leaves no session open") {
  test::TestToken token;
  const CallCounts before = token.module().call_counts();
  try {
    const Session s(token.module(), token.slot(), SecretBytes::from_string("not-the-pin"));
    FAIL("logged in with a wrong PIN");
  } catch (const Error& e) {
    CHECK(e.error_class() == ErrorClass::pin);
    CHECK(e.rv() == CKR_PIN_INCORRECT);
    CHECK(std::string(e.what()) == "C_Login failed: CKR_PIN_INCORRECT");
  }
  const CallCounts diff = token.module().call_counts() - before;
  CHECK(diff.of(Fn::OpenSession) == 1);
  CHECK(diff.of(Fn::CloseSession) == 1);
  // The right PIN still works (SoftHSMv2 does not lock after one failure).
  CHECK_NOTHROW((void)token.user_session());
}

TEST_CASE("the SO and the user cannot be logged in at once") {
  test::TestToken token;
  auto user = token.user_session();
  const CallCounts before = token.module().call_counts();
  try {
    // NSS has no security officer: tried with the user's PIN, and with the SO's (empty).
    const Session so(token.module(), token.slot(),
                     token.has_security_officer() ? token.so_pin() : token.user_pin(),
                     Session::SecurityOfficer{});
    FAIL("SO login while the user is logged in");
  } catch (const Error& e) {
    if (token.has_security_officer()) {
      CHECK(e.rv() == CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
    } else {
      // NSS answers CKR_USER_ALREADY_LOGGED_IN: the session state shows it is the user's.
      CHECK(std::string(e.what()).find("not the security officer's") != std::string::npos);
      CHECK((token.module().call_counts() - before).of(Fn::GetSessionInfo) == 1);
    }
  }
  CHECK((token.module().call_counts() - before).of(Fn::CloseSession) == 1);
}

TEST_CASE("generated key attributes read back as asked") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey key = s.generate_aes_key(KeyTemplate(32)
                                              .label("lorakeep/test")
                                              .sensitive(true)
                                              .wrap(true)
                                              .unwrap(true)
                                              .allowed_mechanisms({CKM_AES_KEY_WRAP}));
  const KeyAttributes a = s.attributes(key);
  CHECK(a.object_class == CKO_SECRET_KEY);
  CHECK(a.key_type == CKK_AES);
  CHECK(a.value_len == 32);
  CHECK(a.label == "lorakeep/test");
  CHECK_FALSE(a.token);
  CHECK(a.private_object);
  CHECK(a.sensitive);
  CHECK(a.always_sensitive);
  CHECK_FALSE(a.extractable);
  CHECK(a.never_extractable);
  CHECK(a.wrap);
  CHECK(a.unwrap);
  CHECK_FALSE(a.encrypt);
  CHECK_FALSE(a.decrypt);
  CHECK_FALSE(a.sign);
  CHECK_FALSE(a.verify);
  CHECK_FALSE(a.derive);
  CHECK_FALSE(a.trusted);
  CHECK_FALSE(a.wrap_with_trusted);
}

TEST_CASE("labels of any length are read in full") {
  // NSS copies an attribute whole into any buffer: the label's length is asked for first.
  test::TestToken token;
  auto s = token.user_session();
  const std::string label(300, 'x');
  const OwnedKey key = s.generate_aes_key(KeyTemplate(16).label(label).encrypt(true));
  CHECK(s.attributes(key).label == label);
  CHECK(s.attributes(s.generate_aes_key(KeyTemplate(16).encrypt(true))).label.empty());
}

TEST_CASE("find_keys and find_key by label") {
  test::TestToken token;
  auto s = token.user_session();
  CHECK(s.find_keys("absent").empty());
  CHECK_FALSE(s.find_key("absent").has_value());

  OwnedKey stored = s.generate_aes_key(KeyTemplate(16).token(true).label("kek/a").wrap(true));
  const CK_OBJECT_HANDLE handle = stored.release();
  const OwnedKey other = s.generate_aes_key(KeyTemplate(16).label("kek/b").wrap(true));
  const auto found = s.find_key("kek/a");
  REQUIRE(found.has_value());
  CHECK(found->handle == handle);

  // More than one batch of C_FindObjects, and several keys for find_key.
  std::vector<OwnedKey> many;
  many.reserve(40);
  for (int i = 0; i < 40; ++i) {
    many.push_back(s.generate_aes_key(KeyTemplate(16).label("many").encrypt(true)));
  }
  const auto all = s.find_keys("many");
  CHECK(all.size() == 40);
  for (const auto& k : many) {
    CHECK(std::any_of(all.begin(), all.end(), [&](KeyRef r) { return r.handle == k.handle(); }));
  }
  CHECK_THROWS_AS((void)s.find_key("many"), Error);
  // Every search was closed, or C_FindObjectsInit would now fail with CKR_OPERATION_ACTIVE.
  CHECK(s.call_counts().of(Fn::FindObjectsInit) == s.call_counts().of(Fn::FindObjectsFinal));

  // The token object outlives the session; session objects do not.
  s.destroy(handle);
  CHECK_FALSE(s.find_key("kek/a").has_value());
}

TEST_CASE("OwnedKey destroys its object; release keeps it") {
  test::TestToken token;
  auto s = token.user_session();
  {
    const OwnedKey key = s.generate_aes_key(KeyTemplate(16).label("scoped").encrypt(true));
    CHECK(s.find_key("scoped").has_value());
  }
  CHECK_FALSE(s.find_key("scoped").has_value());

  OwnedKey kept = s.generate_aes_key(KeyTemplate(16).label("kept").encrypt(true));
  const CK_OBJECT_HANDLE h = kept.release();
  CHECK(kept.handle() == CK_INVALID_HANDLE);
  CHECK(s.find_key("kept")->handle == h);
  s.destroy(h);

  OwnedKey a = s.generate_aes_key(KeyTemplate(16).label("moved").encrypt(true));
  OwnedKey b = std::move(a);
  CHECK(a.handle() == CK_INVALID_HANDLE);  // NOLINT(bugprone-use-after-move): moved-from state
  CHECK(s.find_key("moved")->handle == b.handle());
  b = OwnedKey();
  CHECK_FALSE(s.find_key("moved").has_value());

  // Destroying twice: the second C_DestroyObject fails and the error is swallowed.
  OwnedKey twice = s.generate_aes_key(KeyTemplate(16).encrypt(true));
  s.destroy(twice.handle());
  CHECK_NOTHROW(twice.reset());
}

TEST_CASE("create_key needs a value") {
  test::TestToken token;
  auto s = token.user_session();
  try {
    (void)s.create_key(KeyTemplate(16).encrypt(true));
    FAIL("created a key without a value");
  } catch (const Error& e) {
    CHECK(e.error_class() == ErrorClass::bad_input);
  }
  CHECK(s.call_counts().of(Fn::CreateObject) == 0);
}

TEST_CASE("using a destroyed key handle fails without losing the session") {
  test::TestToken token;
  auto s = token.user_session();
  OwnedKey key = s.generate_aes_key(KeyTemplate(16).sign(true));
  const KeyRef ref = key;
  key.reset();
  try {
    (void)s.aes_cmac(ref, std::vector<std::uint8_t>(16));
    FAIL("used a destroyed key");
  } catch (const Error& e) {
    // SoftHSMv2 says OBJECT_HANDLE_INVALID, NSS KEY_HANDLE_INVALID: one class.
    CHECK(e.rv() == (token.kind() == test::TokenKind::softhsm ? CKR_OBJECT_HANDLE_INVALID
                                                              : CKR_KEY_HANDLE_INVALID));
    CHECK(e.error_class() == ErrorClass::not_found);
  }
  CHECK_FALSE(s.lost());
}

TEST_CASE("calls are counted per session and module-wide") {
  test::TestToken token;
  auto s = token.user_session();
  CHECK(s.call_counts().of(Fn::OpenSession) == 1);
  CHECK(s.call_counts().of(Fn::Login) == 1);
  const OwnedKey key = s.generate_aes_key(KeyTemplate(16).sign(true).encrypt(true));

  const CallCounts session_before = s.call_counts();
  const CallCounts module_before = token.module().call_counts();
  (void)s.aes_cmac(key, std::vector<std::uint8_t>(10));
  (void)s.aes_ecb_encrypt(key, std::vector<std::uint8_t>(32));
  const CallCounts in_session = s.call_counts() - session_before;
  const CallCounts in_module = token.module().call_counts() - module_before;
  CHECK(in_session.of(Fn::SignInit) == 1);
  CHECK(in_session.of(Fn::Sign) == 1);
  CHECK(in_session.of(Fn::EncryptInit) == 1);
  CHECK(in_session.of(Fn::Encrypt) == 1);
  CHECK(in_session.total() == 4);
  CHECK(in_session.crypto() == 2);
  CHECK(in_module.by_fn == in_session.by_fn);

  // Failed calls count too.
  CHECK_THROWS_AS((void)s.aes_ecb_decrypt(key, std::vector<std::uint8_t>(16)), Error);
  CHECK((s.call_counts() - session_before).of(Fn::DecryptInit) == 1);

  // A moved session keeps its counts and its handle.
  const CK_SESSION_HANDLE h = s.handle();
  Session moved = std::move(s);
  CHECK(moved.handle() == h);
  CHECK(moved.call_counts().of(Fn::SignInit) == 1);
  // `key` still names the moved-from `s`: its C_DestroyObject at scope end fails on the
  // invalid handle and is swallowed, while closing `moved` takes the object with it.
  CHECK_NOTHROW((void)moved.aes_cmac(key, std::vector<std::uint8_t>(1)));
}

TEST_CASE("the SO session sets the user PIN (SoftHSMv2; NSS's PIN is certutil's password)") {
  test::TestToken token;
  if (!token.has_security_officer()) {
    CHECK_THROWS_AS((void)token.so_session(), std::logic_error);
    return;
  }
  const auto pin = SecretBytes::from_string("a-new-user-pin");
  {
    auto so = token.so_session();
    so.init_user_pin(pin);
  }
  CHECK_NOTHROW((void)Session(token.module(), token.slot(), pin));
  CHECK_THROWS_AS((void)token.user_session(), Error);
}
