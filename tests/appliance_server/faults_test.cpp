// Token faults under the server: a fake function list that makes C_Sign lose its session
// for the next K calls, and the real thing — C_CloseAllSessions while requests run. Requests
// caught by the fault answer TOKEN_UNAVAILABLE; later ones succeed without a restart.
#include <doctest.h>

#include <array>
#include <atomic>
#include <list>
#include <thread>

#include "local_server.hpp"
#include "requests.hpp"

using namespace lorakeep;
using namespace lorakeep::test;
using namespace std::chrono_literals;

namespace {

// C-compatible hooks, so their state is global; one FakeModule at a time.
CK_FUNCTION_LIST_PTR g_real = nullptr;
std::atomic<int> g_sign_failures{0};   // the next this many C_Sign calls fail
std::atomic<CK_RV> g_sign_rv{CKR_OK};  // … with this code
std::atomic<int> g_open_failures{0};   // the next this many C_OpenSession calls fail

CK_RV fake_sign(CK_SESSION_HANDLE s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
                CK_ULONG_PTR sig_len) {
  if (g_sign_failures.fetch_sub(1) > 0) {
    (void)g_real->C_Sign(s, data, len, sig, sig_len);  // end the real operation too
    return g_sign_rv.load();
  }
  g_sign_failures.store(0);
  return g_real->C_Sign(s, data, len, sig, sig_len);
}

CK_RV fake_open_session(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
                        CK_SESSION_HANDLE_PTR session) {
  if (g_open_failures.fetch_sub(1) > 0) return CKR_TOKEN_NOT_PRESENT;
  g_open_failures.store(0);
  return g_real->C_OpenSession(slot, flags, app, notify, session);
}

/// A second Module over a copy of SoftHSM's function list with the hooks in. Its
/// C_Initialize answers CKR_CRYPTOKI_ALREADY_INITIALIZED, so the token's Module finalizes.
struct FakeModule {
  CK_FUNCTION_LIST list{};
  std::unique_ptr<pkcs11::Module> module;
  explicit FakeModule(TestToken& token) {
    g_real = token.module().functions();
    g_sign_failures = 0;
    g_open_failures = 0;
    g_sign_rv = CKR_OK;
    list = *g_real;
    list.C_Sign = fake_sign;
    list.C_OpenSession = fake_open_session;
    module = std::make_unique<pkcs11::Module>(&list);
  }
};

}  // namespace

TEST_CASE("C_Sign loses the session for the next K calls: those requests fail cleanly") {
  ApplianceFixture f;
  FakeModule fake(f.token);
  LocalServerOptions options;
  options.sessions = 1;
  LocalServer server(*fake.module, f.token, options);
  const Device d = make_device(f);
  auto client = server.connect();
  REQUIRE(client.call(join_request(1, d, "1.0.2", 1, 1)).code() == v1::OK);

  constexpr int k = 3;
  g_sign_rv = CKR_SESSION_HANDLE_INVALID;
  g_sign_failures = k;
  for (std::uint16_t i = 10; i < 10 + k; ++i) {
    const auto answer = client.call(join_request(i, d, "1.0.2", i, 2));
    CHECK(answer.code() == v1::TOKEN_UNAVAILABLE);
    CHECK(answer.message().find("CKR_SESSION_HANDLE_INVALID") != std::string::npos);
    CHECK_FALSE(answer.has_join());
  }
  // No restart: the pool opened a new session for each of these.
  for (std::uint16_t i = 20; i < 23; ++i) {
    const auto answer = client.call(join_request(i, d, "1.0.2", i, 3));
    REQUIRE(answer.code() == v1::OK);
    check_join_1_0(f, d.app_key, answer.join(), i, 3);
  }
  auto stats = request(30);
  stats.mutable_stats();
  const auto s = client.call(stats).stats();
  CHECK(s.sessions_replaced() == k);
  bool counted = false;
  for (const auto& op : s.operations()) {
    if (op.operation() == "join_1_0" && op.result() == "TOKEN_UNAVAILABLE") {
      counted = true;
      CHECK(op.count() == k);
    }
  }
  CHECK(counted);
}

TEST_CASE("a token error that is not a loss is INTERNAL and keeps the session") {
  ApplianceFixture f;
  FakeModule fake(f.token);
  LocalServer server(*fake.module, f.token);
  const Device d = make_device(f);
  auto client = server.connect();
  g_sign_rv = CKR_FUNCTION_FAILED;
  g_sign_failures = 1;
  const auto answer = client.call(join_request(1, d, "1.0.2", 1, 1));
  CHECK(answer.code() == v1::INTERNAL);
  CHECK(answer.message().find("CKR_FUNCTION_FAILED") != std::string::npos);
  CHECK(client.call(join_request(2, d, "1.0.2", 2, 2)).code() == v1::OK);
  CHECK(server.pool().stats().replaced == 0);
}

TEST_CASE("no session can be opened (token gone): TOKEN_UNAVAILABLE until it is back") {
  ApplianceFixture f;
  FakeModule fake(f.token);
  LocalServerOptions options;
  options.sessions = 1;
  LocalServer server(*fake.module, f.token, options);
  const Device d = make_device(f);
  auto client = server.connect();
  // Lose the session the pool holds, then make opening fail twice.
  g_sign_rv = CKR_DEVICE_REMOVED;
  g_sign_failures = 1;
  CHECK(client.call(join_request(1, d, "1.0.2", 1, 1)).code() == v1::TOKEN_UNAVAILABLE);
  g_open_failures = 2;
  for (int i = 0; i < 2; ++i) {
    const auto answer = client.call(join_request(2, d, "1.0.2", 2, 2));
    CHECK(answer.code() == v1::TOKEN_UNAVAILABLE);
    CHECK(answer.message().find("no PKCS#11 session: ") == 0);
    CHECK(answer.message().find("CKR_TOKEN_NOT_PRESENT") != std::string::npos);
  }
  CHECK(client.call(join_request(3, d, "1.0.2", 3, 3)).code() == v1::OK);
}

TEST_CASE(
    "C_CloseAllSessions under load: some requests fail TOKEN_UNAVAILABLE, then service resumes") {
  ApplianceFixture f;
  LocalServerOptions options;
  options.sessions = 4;
  LocalServer server(f.token.module(), f.token, options);
  const Device d = make_device(f);

  // Phase 0: before the fault; 1: the fault; 2: after it, when everything must succeed.
  std::atomic<int> phase{0};
  std::atomic<bool> stop{false};
  std::array<std::atomic<int>, 3> ok{};
  std::array<std::atomic<int>, 3> unavailable{};
  std::array<std::atomic<int>, 3> token_internal{};  // INTERNAL with a CKR_* code
  std::array<std::atomic<int>, 3> other{};
  std::vector<std::thread> load;
  load.reserve(4);
  for (int c = 0; c < 4; ++c) {
    load.emplace_back([&, c] {
      try {
        auto client = server.connect();
        for (std::uint64_t i = 0; !stop.load(); ++i) {
          const int started = phase.load();
          const auto answer = client.call(join_request(i, d, "1.0.2", static_cast<std::uint16_t>(i),
                                                       static_cast<std::uint32_t>(c)));
          // A request that spans a phase change belongs to the fault.
          const int p = started == phase.load() ? started : 1;
          if (answer.code() == v1::OK) {
            ++ok[static_cast<std::size_t>(p)];
          } else if (answer.code() == v1::TOKEN_UNAVAILABLE) {
            ++unavailable[static_cast<std::size_t>(p)];
          } else if (answer.code() == v1::INTERNAL &&
                     answer.message().find("CKR_") != std::string::npos) {
            MESSAGE(answer.message());
            ++token_internal[static_cast<std::size_t>(p)];
          } else {
            MESSAGE((v1::Code_Name(answer.code()) + ": " + answer.message()));
            ++other[static_cast<std::size_t>(p)];
          }
        }
      } catch (const std::exception& e) {
        MESSAGE(e.what());
        ++other[static_cast<std::size_t>(phase.load())];
      }
    });
  }
  // Some successes before the fault, however slowly a loaded machine gets to them.
  for (int i = 0; i < 500 && ok[0].load() < 8; ++i)
    std::this_thread::sleep_for(20ms);
  phase = 1;
  {
    // Every session of the pool taken (the load waits for them), then every session of the
    // application closed: the requests that get them next find them gone. SoftHSMv2 itself
    // is not safe against C_CloseAllSessions racing an operation inside the token on
    // another thread (it crashes, or answers CKR_GENERAL_ERROR), so the close happens
    // while no operation is inside it — requests are in flight, queued for a session.
    std::list<pkcs11::SessionPool::Lease> held;
    for (int i = 0; i < 4; ++i)
      held.push_back(server.pool().acquire(5s));
    f.token.module().close_all_sessions(f.token.slot());
  }
  for (int i = 0; i < 100 && unavailable[1].load() < 4; ++i)
    std::this_thread::sleep_for(20ms);
  std::this_thread::sleep_for(100ms);
  phase = 2;
  for (int i = 0; i < 500 && ok[2].load() < 8; ++i)
    std::this_thread::sleep_for(20ms);
  stop = true;
  for (auto& t : load)
    t.join();

  CHECK(ok[0].load() > 0);
  CHECK(unavailable[0].load() + token_internal[0].load() + other[0].load() == 0);
  CHECK(unavailable[1].load() > 0);
  CHECK(token_internal[1].load() + other[1].load() == 0);
  // No restart, nothing left broken: after the fault every request succeeds.
  CHECK(ok[2].load() > 0);
  CHECK(unavailable[2].load() + token_internal[2].load() + other[2].load() == 0);
}
