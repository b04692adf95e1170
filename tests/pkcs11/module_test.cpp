// Module: loading, C_Initialize rules, slots and tokens; and the test fixture itself.
#include <doctest.h>

#include <algorithm>
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
  CHECK(info.manufacturer == "SoftHSM project");
  CHECK(info.model == "SoftHSM v2");
  CHECK_FALSE(info.serial.empty());
  CHECK(info.serial.find(' ') == std::string::npos);
  CHECK(info.initialized);
  CHECK(info.user_pin_initialized);
  CHECK(info.login_required);

  CHECK(m.find_token(token.selector()) == token.slot());
  TokenSelector by_serial;
  by_serial.serial = info.serial;
  CHECK(m.find_token(by_serial) == token.slot());
  TokenSelector by_slot;
  by_slot.slot = token.slot();
  CHECK(m.find_token(by_slot) == token.slot());

  const auto present = m.slots();
  CHECK(std::find(present.begin(), present.end(), token.slot()) != present.end());
  CHECK(m.slots(false).size() >= present.size());
  // SoftHSMv2 always offers one more, uninitialized token.
  const auto free = m.free_slot();
  REQUIRE(free.has_value());
  CHECK(*free != token.slot());
  CHECK_FALSE(m.token_info(*free).initialized);
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

TEST_CASE("two tokens with one label are ambiguous") {
  test::TestToken token("twin");
  const auto free = token.module().free_slot();
  REQUIRE(free.has_value());
  token.module().init_token(*free, token.so_pin(), "twin");
  try {
    (void)token.module().find_token(token.selector());
    FAIL("picked one of two tokens");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("2 tokens") != std::string::npos);
  }
}

TEST_CASE("init_token refuses labels over 32 bytes") {
  test::TestToken token;
  const auto free = token.module().free_slot();
  REQUIRE(free.has_value());
  const CallCounts before = token.module().call_counts();
  try {
    token.module().init_token(*free, token.so_pin(), std::string(33, 'x'));
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
  CHECK(c.of(Fn::InitToken) == 1);
  CHECK(c.of(Fn::InitPIN) == 1);
  CHECK(c.of(Fn::OpenSession) == 1);
  CHECK(c.of(Fn::CloseSession) == 1);
  CHECK(c.of(Fn::Finalize) == 0);
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
  const Module again(Module::Options{test::TestToken::module_path(), {}});
  CHECK(again.find_token(token.selector()) == token.slot());
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

TEST_CASE("the fixture writes its own softhsm2.conf and removes its directory") {
  std::filesystem::path dir;
  {
    const test::TestToken token;
    dir = token.dir();
    CHECK(std::filesystem::exists(token.config_path()));
    CHECK(std::filesystem::is_directory(dir / "tokens"));
    CHECK(std::string(std::getenv("SOFTHSM2_CONF")) == token.config_path().string());
    CHECK(token.user_pin().size() == 32);
    CHECK_FALSE(token.user_pin() == token.so_pin());
  }
  CHECK_FALSE(std::filesystem::exists(dir));
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
