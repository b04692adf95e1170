// SessionPool against the real token: lazy opening, reuse, bounds, timeouts, threads,
// recovery after C_CloseAllSessions, and a refused PIN.
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

// RFC 4493, example 2.
std::vector<std::uint8_t> cmac_key() {
  return test::from_hex("2b7e151628aed2a6abf7158809cf4f3c");
}
std::vector<std::uint8_t> message() {
  return test::from_hex("6bc1bee22e409f96e93d7e117393172a");
}
std::vector<std::uint8_t> expected_mac() {
  return test::from_hex("070a16b46b4d4144f79bdd9dd04a287c");
}

bool cmac_ok(Session& s) {
  const OwnedKey key = s.create_key(KeyTemplate(16).sign(true).value(SecretBytes(cmac_key())));
  const auto mac = s.aes_cmac(key, message());
  const auto expected = expected_mac();
  return std::equal(mac.begin(), mac.end(), expected.begin(), expected.end());
}

}  // namespace

TEST_CASE("sessions open lazily and are reused") {
  test::TestToken token;
  const CallCounts before = token.module().call_counts();
  SessionPool pool(token.module(), token.selector(), token.user_pin().clone(), 4);
  CHECK(pool.stats().open == 0);
  CHECK((token.module().call_counts() - before).of(Fn::OpenSession) == 0);

  CK_SESSION_HANDLE first = CK_INVALID_HANDLE;
  {
    auto lease = pool.acquire(1s);
    first = lease->handle();
    CHECK(cmac_ok(*lease));
    CHECK(pool.stats().in_use == 1);
    CHECK(pool.stats().open == 1);
  }
  CHECK(pool.stats().in_use == 0);
  CHECK(pool.stats().open == 1);
  {
    auto lease = pool.acquire(1s);
    CHECK(lease->handle() == first);
  }
  CHECK((token.module().call_counts() - before).of(Fn::OpenSession) == 1);
  CHECK(pool.slot() == token.slot());
  CHECK(pool.stats().capacity == 4);
}

TEST_CASE("at most capacity sessions; then acquire waits and times out") {
  test::TestToken token;
  SessionPool pool(token.module(), token.selector(), token.user_pin().clone(), 2);
  auto a = pool.acquire(1s);
  auto b = pool.acquire(1s);
  CHECK(a->handle() != b->handle());
  CHECK(pool.stats().open == 2);

  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS((void)pool.acquire(50ms), PoolTimeout);
  CHECK(std::chrono::steady_clock::now() - start >= 50ms);
  CHECK(pool.stats().timeouts == 1);
  CHECK_THROWS_AS((void)pool.acquire(0ms), PoolTimeout);
  CHECK(pool.stats().timeouts == 2);
  CHECK(pool.stats().open == 2);

  // A waiter gets the session another thread gives back.
  const CK_SESSION_HANDLE a_handle = a->handle();
  std::thread giver([lease = std::move(a)]() mutable {
    std::this_thread::sleep_for(30ms);
    { auto done = std::move(lease); }
  });
  auto c = pool.acquire(5s);
  CHECK(c->handle() == a_handle);
  giver.join();
  CHECK(pool.stats().timeouts == 2);
}

TEST_CASE("several threads share the pool") {
  test::TestToken token;
  constexpr std::size_t kCapacity = 3;
  constexpr int kThreads = 8;
  constexpr int kRounds = 25;
  SessionPool pool(token.module(), token.selector(), token.user_pin().clone(), kCapacity);
  const CallCounts before = token.module().call_counts();

  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::atomic<std::size_t> max_open{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        try {
          auto lease = pool.acquire(10s);
          const std::size_t open = pool.stats().open;
          std::size_t seen = max_open.load();
          while (open > seen && !max_open.compare_exchange_weak(seen, open)) {
          }
          (cmac_ok(*lease) ? ok : failed)++;
        } catch (const std::exception&) {
          failed++;
        }
      }
    });
  }
  for (auto& t : threads)
    t.join();

  CHECK(ok.load() == kThreads * kRounds);
  CHECK(failed.load() == 0);
  CHECK(max_open.load() <= kCapacity);
  const PoolStats stats = pool.stats();
  CHECK(stats.in_use == 0);
  CHECK(stats.open <= kCapacity);
  CHECK(stats.timeouts == 0);
  CHECK(stats.replaced == 0);
  const CallCounts calls = token.module().call_counts() - before;
  CHECK(calls.of(Fn::Sign) == static_cast<std::uint64_t>(kThreads * kRounds));
  CHECK(calls.of(Fn::OpenSession) <= kCapacity);
  CHECK(calls.of(Fn::Login) == calls.of(Fn::OpenSession));
}

TEST_CASE("after C_CloseAllSessions the pool replaces the lost session") {
  test::TestToken token;
  SessionPool pool(token.module(), token.selector(), token.user_pin().clone(), 1);
  {
    auto lease = pool.acquire(1s);
    CHECK(cmac_ok(*lease));
    token.module().close_all_sessions(token.slot());
    try {
      (void)cmac_ok(*lease);
      FAIL("a closed session still worked");
    } catch (const Error& e) {
      CHECK(e.error_class() == ErrorClass::session_lost);
    }
    CHECK(lease->lost());
  }
  CHECK(pool.stats().replaced == 1);
  CHECK(pool.stats().open == 0);

  const CallCounts before = token.module().call_counts();
  {
    auto lease = pool.acquire(1s);
    CHECK_FALSE(lease->lost());
    // C_CloseAllSessions also logged the application out; the new session logged in again.
    CHECK(cmac_ok(*lease));
  }
  const CallCounts calls = token.module().call_counts() - before;
  CHECK(calls.of(Fn::OpenSession) == 1);
  CHECK(calls.of(Fn::Login) == 1);
  CHECK(pool.stats().replaced == 1);
  CHECK(pool.stats().open == 1);
}

TEST_CASE("a refused PIN is remembered and C_Login is not tried again") {
  test::TestToken token;
  const CallCounts before = token.module().call_counts();
  SessionPool pool(token.module(), token.selector(), SecretBytes::from_string("wrong-pin"), 2);
  for (int i = 0; i < 4; ++i) {
    try {
      (void)pool.acquire(1s);
      FAIL("logged in with a wrong PIN");
    } catch (const Error& e) {
      CHECK(e.error_class() == ErrorClass::pin);
      CHECK(std::string(e.what()).find("CKR_PIN_INCORRECT") != std::string::npos);
    }
  }
  const CallCounts calls = token.module().call_counts() - before;
  CHECK(calls.of(Fn::Login) == 1);
  CHECK(pool.stats().open == 0);
  CHECK(pool.stats().in_use == 0);
}

TEST_CASE("a token that is not there is reported, and the place stays free") {
  test::TestToken token;
  TokenSelector missing;
  missing.label = "not-inserted";
  SessionPool pool(token.module(), missing, token.user_pin().clone(), 1);
  for (int i = 0; i < 2; ++i) {
    try {
      (void)pool.acquire(100ms);
      FAIL("found a missing token");
    } catch (const Error& e) {
      CHECK(e.error_class() == ErrorClass::token_lost);
    }
  }
  CHECK(pool.stats().timeouts == 0);
  CHECK(pool.stats().in_use == 0);
  CHECK_THROWS_AS((void)pool.slot(), Error);
}

TEST_CASE("capacity zero is refused") {
  test::TestToken token;
  CHECK_THROWS_AS(SessionPool(token.module(), token.selector(), token.user_pin().clone(), 0),
                  std::invalid_argument);
}
