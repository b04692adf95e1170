// Module: loading, C_Initialize rules, slots and tokens; and the test fixture itself.
#include <doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "pkcs11/error.hpp"
#include "token_fixture.hpp"

using namespace lorakeep;
using namespace lorakeep::pkcs11;

TEST_CASE("a missing library is an Error naming the path") {
  try {
    const Module m(Module::Options{"/nonexistent/libnothing.so", {}});
    FAIL("loaded a missing library");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("/nonexistent/libnothing.so") != std::string::npos);
  }
}

TEST_CASE("a library without C_GetFunctionList is refused") {
  // Any shared library that is not a PKCS#11 module will do.
  CHECK_THROWS_AS(Module(Module::Options{"libm.so.6", {}}), Error);
}

TEST_CASE("the fixture's token: info, selectors, slots") {
  test::TestToken token("fixture-token");
  Module& m = token.module();

  const TokenInfo info = m.token_info(token.slot());
  CHECK(info.slot == token.slot());
  CHECK(info.label == "fixture-token");
  CHECK_FALSE(info.serial.empty());
  CHECK(info.serial.find(' ') == std::string::npos);
  CHECK(info.initialized);
  CHECK(info.user_pin_initialized);
  CHECK(info.login_required);

  CHECK(m.find_token(token.selector()) == token.slot());
  TokenSelector by_slot;
  by_slot.slot = token.slot();
  CHECK(m.find_token(by_slot) == token.slot());
  TokenSelector by_serial;
  by_serial.serial = info.serial;

  const auto present = m.slots();
  CHECK(std::find(present.begin(), present.end(), token.slot()) != present.end());
  CHECK(m.slots(false).size() >= present.size());
  if (token.kind() == test::TokenKind::softhsm) {
    CHECK(info.manufacturer == "SoftHSM project");
    CHECK(info.model == "SoftHSM v2");
    CHECK(m.find_token(by_serial) == token.slot());
    // SoftHSMv2 always offers one more, uninitialized token.
    const auto free = m.free_slot();
    REQUIRE(free.has_value());
    CHECK(*free != token.slot());
    CHECK_FALSE(m.token_info(*free).initialized);
  } else {
    CHECK(info.manufacturer == "Mozilla Foundation");
    CHECK(info.model == "NSS 3");
    // Two tokens, both initialized: the key database (slot 2, labelled by
    // dbTokenDescription) and the generic crypto services without login.
    CHECK(token.slot() == 2);
    CHECK(present.size() == 2);
    CHECK_FALSE(m.free_slot().has_value());
    for (const CK_SLOT_ID slot : present) {
      if (slot == token.slot()) continue;
      const TokenInfo other = m.token_info(slot);
      CHECK(other.label == "NSS Generic Crypto Services");
      CHECK_FALSE(other.login_required);
      // Both report the serial 0000000000000000: a serial cannot tell them apart.
      CHECK(other.serial == info.serial);
    }
    CHECK(info.serial == "0000000000000000");
    try {
      (void)m.find_token(by_serial);
      FAIL("picked one of NSS's two tokens by their common serial");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("2 tokens with serial") != std::string::npos);
    }
  }
}

TEST_CASE("find_token reports what it looked for") {
  test::TestToken token;
  TokenSelector missing;
  missing.label = "no-such-token";
  try {
    (void)token.module().find_token(missing);
    FAIL("found a missing token");
  } catch (const Error& e) {
    CHECK(e.error_class() == ErrorClass::token_lost);
    CHECK(std::string(e.what()).find("no-such-token") != std::string::npos);
  }
  TokenSelector bad_slot;
  bad_slot.slot = 987654;
  CHECK_THROWS_AS((void)token.module().find_token(bad_slot), Error);

  TokenSelector none;
  TokenSelector two = token.selector();
  two.slot = token.slot();
  for (const auto& s : {none, two}) {
    try {
      (void)token.module().find_token(s);
      FAIL("accepted a selector without exactly one field");
    } catch (const Error& e) {
      CHECK(e.error_class() == ErrorClass::bad_input);
    }
  }
}

TEST_CASE("two tokens matching one selector are ambiguous") {
  if (test::token_kind() == test::TokenKind::softhsm) {
    test::TestToken token("twin");
    const auto free = token.module().free_slot();
    REQUIRE(free.has_value());
    token.module().init_token(*free, token.so_pin(), "twin");
    try {
      (void)token.module().find_token(token.selector());
      FAIL("picked one of two tokens");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("2 tokens labelled \"twin\"") != std::string::npos);
    }
  } else {
    // NSS names its key token after dbTokenDescription: here the name of its other token.
    try {
      const test::TestToken token("NSS Generic Crypto Services");
      FAIL("the fixture picked one of two tokens with one label");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("2 tokens labelled \"NSS Generic Crypto Services\"") !=
            std::string::npos);
    }
  }
}

TEST_CASE("init_token refuses labels over 32 bytes") {
  test::TestToken token;
  const CallCounts before = token.module().call_counts();
  try {
    // Refused before any call, so any slot will do (NSS has no free one).
    token.module().init_token(token.slot(), token.so_pin(), std::string(33, 'x'));
    FAIL("accepted a long label");
  } catch (const Error& e) {
    CHECK(e.error_class() == ErrorClass::bad_input);
  }
  CHECK((token.module().call_counts() - before).of(Fn::InitToken) == 0);
}

TEST_CASE("module-wide counts include the fixture's own set-up") {
  test::TestToken token;
  const CallCounts c = token.module().call_counts();
  CHECK(c.of(Fn::Initialize) == 1);
  CHECK(c.of(Fn::Finalize) == 0);
  // SoftHSMv2's token is made through PKCS#11 (C_InitToken, then C_InitPIN in an SO
  // session); NSS's database was made by certutil before the module was loaded.
  const std::uint64_t made_here = token.kind() == test::TokenKind::softhsm ? 1 : 0;
  CHECK(c.of(Fn::InitToken) == made_here);
  CHECK(c.of(Fn::InitPIN) == made_here);
  CHECK(c.of(Fn::OpenSession) == made_here);
  CHECK(c.of(Fn::CloseSession) == made_here);
}

TEST_CASE("a second Module on an initialized library does not finalize it") {
  test::TestToken token;
  {
    // C_Initialize answers CKR_CRYPTOKI_ALREADY_INITIALIZED, which is accepted.
    Module borrowed(token.module().functions());
    CHECK(borrowed.call_counts().of(Fn::Initialize) == 1);
    CHECK(borrowed.find_token(token.selector()) == token.slot());
    Module moved = std::move(borrowed);
    CHECK(moved.functions() == token.module().functions());
  }
  CHECK(token.module().call_counts().of(Fn::Finalize) == 0);
  // Still initialized: sessions open as before.
  auto s = token.user_session();
  CHECK(s.handle() != CK_INVALID_HANDLE);
}

TEST_CASE("loading the same library twice shares one initialization") {
  test::TestToken token;
  // Even without the reserved string NSS needs: the library is initialized already.
  const Module again(Module::Options{test::TestToken::module_path(), {}});
  CHECK(again.call_counts().of(Fn::Initialize) == 1);
  CHECK(again.find_token(token.selector()) == token.slot());
}

TEST_CASE("a finalized module can be initialized again, on another token store") {
  std::string first_dir;
  {
    test::TestToken first("first");
    auto s = first.user_session();
    (void)s.generate_aes_key(KeyTemplate(16).token(true).label("only-in-first").encrypt(true))
        .release();
    first_dir = first.dir().string();
  }
  // A new C_Initialize in this process (the library stayed loaded) sees only the new store.
  test::TestToken second("second");
  CHECK(second.dir().string() != first_dir);
  CHECK(second.module().call_counts().of(Fn::Initialize) == 1);
  auto s = second.user_session();
  CHECK(s.find_keys("only-in-first").empty());
  TokenSelector first_label;
  first_label.label = "first";
  CHECK_THROWS_AS((void)second.module().find_token(first_label), Error);
}

TEST_CASE("C_Initialize and the reserved string") {
  const std::string path = test::TestToken::module_path();
  if (test::token_kind() == test::TokenKind::softhsm) {
    // SoftHSMv2 needs none; its configuration comes from SOFTHSM2_CONF.
    const test::TempDir dir;
    REQUIRE(::setenv("SOFTHSM2_CONF", test::write_softhsm_conf(dir.path()).c_str(), 1) == 0);
    {
      const Module m(Module::Options{path, {}});
      CHECK(m.call_counts().of(Fn::Initialize) == 1);
    }
    REQUIRE(::setenv("SOFTHSM2_CONF", (dir.path() / "missing.conf").c_str(), 1) == 0);
    try {
      const Module m(Module::Options{path, {}});
      FAIL("SoftHSMv2 initialized without its configuration file");
    } catch (const Error& e) {
      CHECK(e.call() == "C_Initialize");
    }
  } else {
    // NSS refuses a null pReserved; and a configdir it cannot open is its own vendor code.
    try {
      const Module m(Module::Options{path, {}});
      FAIL("NSS initialized without its parameters");
    } catch (const Error& e) {
      CHECK(e.rv() == CKR_ARGUMENTS_BAD);
      CHECK(e.call() == "C_Initialize");
    }
    try {
      const Module m(Module::Options{path, test::nss_init_args("/nonexistent/nssdb", "")});
      FAIL("NSS initialized on a database that does not exist");
    } catch (const Error& e) {
      CHECK(std::string(e.what()) == "C_Initialize failed: CKR_NSS_CERTDB_FAILED");
      CHECK(e.error_class() == ErrorClass::other);
    }
  }
}

TEST_CASE("TempDir is created and removed") {
  std::filesystem::path kept;
  {
    const test::TempDir dir;
    kept = dir.path();
    CHECK(std::filesystem::is_directory(kept));
    CHECK(kept.filename().string().rfind("lorakeep-test-", 0) == 0);
    std::filesystem::create_directories(kept / "a" / "b");
  }
  CHECK_FALSE(std::filesystem::exists(kept));
}

TEST_CASE("the fixture makes its own token store and removes its directory") {
  std::filesystem::path dir;
  {
    const test::TestToken token;
    dir = token.dir();
    CHECK(token.user_pin().size() == 32);
    if (token.kind() == test::TokenKind::softhsm) {
      const auto conf = dir / "softhsm2.conf";
      CHECK(std::filesystem::exists(conf));
      CHECK(std::filesystem::is_directory(dir / "tokens"));
      CHECK(std::string(std::getenv("SOFTHSM2_CONF")) == conf.string());
      CHECK(token.environment().at(0).second == conf.string());
      CHECK_FALSE(token.module_options().reserved.has_value());
      CHECK_FALSE(token.user_pin() == token.so_pin());
    } else {
      CHECK(std::filesystem::exists(dir / "nssdb" / "key4.db"));
      CHECK(std::filesystem::exists(dir / "nssdb" / "cert9.db"));
      // The password file certutil read is gone; nothing else holds the PIN.
      CHECK_FALSE(std::filesystem::exists(dir / "nssdb" / ".password"));
      CHECK(token.environment().empty());
      REQUIRE(token.module_options().reserved.has_value());
      CHECK(token.module_options().reserved->find("configdir='sql:" + (dir / "nssdb").string() +
                                                  "'") == 0);
      CHECK(token.so_pin().empty());
      CHECK_THROWS_AS((void)const_cast<test::TestToken&>(token).so_session(), std::logic_error);
    }
  }
  CHECK_FALSE(std::filesystem::exists(dir));
}

TEST_CASE("the test token kind comes from LORAKEEP_TEST_TOKEN") {
  CHECK(test::parse_kind("softhsm") == test::TokenKind::softhsm);
  CHECK(test::parse_kind("nss") == test::TokenKind::nss);
  CHECK_FALSE(test::parse_kind("NSS").has_value());
  const char* set = std::getenv("LORAKEEP_TEST_TOKEN");
  REQUIRE_MESSAGE(set != nullptr, "meson registers every token test with LORAKEEP_TEST_TOKEN");
  const std::string original = set;
  CHECK(test::kind_name(test::token_kind()) == original);
  REQUIRE(::setenv("LORAKEEP_TEST_TOKEN", "luna", 1) == 0);
  CHECK_THROWS_AS((void)test::token_kind(), std::invalid_argument);
  REQUIRE(::setenv("LORAKEEP_TEST_TOKEN", original.c_str(), 1) == 0);
}

TEST_CASE("test helpers: hex and data files") {
  CHECK(test::from_hex("00ff7A") == std::vector<std::uint8_t>{0x00, 0xff, 0x7a});
  CHECK(test::to_hex(std::vector<std::uint8_t>{0x00, 0xab}) == "00ab");
  CHECK_THROWS((void)test::from_hex("abc"));
  CHECK_THROWS((void)test::from_hex("zz"));
  CHECK(std::filesystem::exists(test::data_path("lorawan-join-kat.json")));
  CHECK(test::random_bytes(32).size() == 32);
  CHECK(test::random_bytes(32) != test::random_bytes(32));
}
