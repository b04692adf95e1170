// The appliance client against an in-process stand-in for lorakeep-cs: pooling, deadlines,
// reconnects, fail-over, TLS with the cluster PSK, and answers it must not believe.
#include <doctest.h>

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include "fake_appliance.hpp"
#include "host/appliance_client.hpp"

using namespace lorakeep;
using namespace std::chrono_literals;
using host::ApplianceClient;
using host::ClientOptions;
using test::FakeAppliance;
using B = FakeAppliance::Behaviour;

namespace {

constexpr const char* cluster_secret = "correct horse battery staple";

host::SecretBuffer secret(std::string_view s) {
  return host::SecretBuffer(
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
}

std::unique_ptr<ApplianceClient> client(std::vector<std::string> endpoints,
                                        std::size_t connections = 2,
                                        std::optional<std::string> key = {}) {
  ClientOptions o;
  o.endpoints = std::move(endpoints);
  o.connections_per_endpoint = connections;
  o.connect_timeout = 500ms;
  if (key) o.cluster_secret = secret(*key);
  auto c = ApplianceClient::create(std::move(o));
  REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.failure().message));
  return std::move(c).value();
}

crypto::v1::Request info() {
  crypto::v1::Request r;
  r.set_caller("test");
  r.mutable_info();
  return r;
}

std::string hex(std::span<const std::uint8_t> b) {
  static constexpr std::string_view digits = "0123456789abcdef";
  std::string s;
  for (auto x : b) {
    s += digits[x >> 4];
    s += digits[x & 15];
  }
  return s;
}

// A path where nothing listens.
std::string dead_unix_address() {
  return "unix:/tmp/lorakeep-no-such-appliance-" + std::to_string(::getpid()) + ".sock";
}

// A TCP port where nothing listens: bind one, then close it.
std::string dead_tcp_address() {
  auto f = FakeAppliance::tls(B::answer, cluster_secret);
  auto a = f->address();
  f.reset();
  return a;
}

template <class F>
std::chrono::milliseconds timed(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0);
}

}  // namespace

TEST_CASE("addresses parse into Unix sockets and TCP endpoints, or are refused") {
  auto u = host::Endpoint::parse("unix:/run/lorakeep/cs.sock");
  REQUIRE(u.ok());
  CHECK(u->kind == host::Endpoint::Kind::unix_socket);
  CHECK(u->path == "/run/lorakeep/cs.sock");
  auto t = host::Endpoint::parse("cs1.example.net:7443");
  REQUIRE(t.ok());
  CHECK(t->kind == host::Endpoint::Kind::tcp);
  CHECK(t->host == "cs1.example.net");
  CHECK(t->port == 7443);
  auto v6 = host::Endpoint::parse("[::1]:7443");
  REQUIRE(v6.ok());
  CHECK(v6->host == "::1");
  for (const char* bad : {"", "unix:", "cs1", "cs1:", ":7443", "cs1:0", "cs1:65536", "cs1:80x",
                          "::1:7443", "[::1:7443", "[]:1"}) {
    CAPTURE(bad);
    auto r = host::Endpoint::parse(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.failure().status == Status::malformed);
  }
  CHECK_FALSE(host::Endpoint::parse("unix:/" + std::string(200, 'a')).ok());
}

TEST_CASE("options are validated before anything connects") {
  auto make = [](ClientOptions o) { return ApplianceClient::create(std::move(o)); };
  {
    ClientOptions o;
    CHECK(make(std::move(o)).failure().message == "no appliance address configured");
  }
  {
    ClientOptions o;
    o.endpoints = {"127.0.0.1:7443"};
    auto r = make(std::move(o));
    REQUIRE_FALSE(r.ok());
    CHECK(r.failure().message.find("cluster secret") != std::string::npos);
  }
  {
    ClientOptions o;
    o.endpoints = {"127.0.0.1:7443"};
    o.cluster_secret = secret("fifteen bytes!!");
    auto r = make(std::move(o));
    REQUIRE_FALSE(r.ok());
    CHECK(r.failure().message.find("at least 16 bytes") != std::string::npos);
  }
  {
    ClientOptions o;
    o.endpoints = {"unix:/x"};
    o.connections_per_endpoint = 0;
    CHECK_FALSE(make(std::move(o)).ok());
  }
  {
    ClientOptions o;
    o.endpoints = {"unix:/x", "nonsense"};
    auto r = make(std::move(o));
    REQUIRE_FALSE(r.ok());
    CHECK(r.failure().message.find("'nonsense'") != std::string::npos);
  }
  {
    ClientOptions o;
    o.endpoints = {dead_unix_address()};  // down now: still a valid client
    CHECK(make(std::move(o)).ok());
  }
}

TEST_CASE("the cluster PSK is SHA-256 of the context string and the secret (known answer)") {
  // Computed independently: python3 -c "import hashlib; print(hashlib.sha256(
  //   b'lorakeep cluster psk v1' + b'correct horse battery staple').hexdigest())"
  auto psk = host::tls::derive_cluster_psk(secret(cluster_secret).reveal());
  REQUIRE(psk.ok());
  CHECK(hex(psk->reveal()) == "d03f74931f6243fdab42b51322f1e8f85fa8cd9610bff3cbaa64cf07848c453e");
  CHECK_FALSE(host::tls::derive_cluster_psk({}).ok());
}

TEST_CASE("a secret file loses exactly one trailing newline") {
  const std::string path = "/tmp/lorakeep-secret-test-" + std::to_string(::getpid());
  { std::ofstream(path) << "x\n\n"; }
  auto s = host::SecretBuffer::from_file(path);
  REQUIRE(s.ok());
  CHECK(s->size() == 2);  // "x\n"
  // The same PSK as python3: sha256(b'lorakeep cluster psk v1' + b'x\n').
  CHECK(hex(host::tls::derive_cluster_psk(s->reveal())->reveal()) ==
        "243f0892636de5982f11566f2ed1411b3d58179ba62a09a221a3be3fcfe2cc1f");
  { std::ofstream(path) << "\n"; }
  CHECK(host::SecretBuffer::from_file(path).failure().message.find("empty") != std::string::npos);
  ::unlink(path.c_str());
  auto missing = host::SecretBuffer::from_file(path);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.failure().message.find(path) != std::string::npos);
}

TEST_CASE("a call over a Unix socket: version, fresh ids, a deadline within the budget") {
  auto fake = FakeAppliance::unix_socket(B::answer);
  auto c = client({fake->address()});
  std::set<std::uint64_t> ids;
  for (int i = 0; i < 5; ++i) {
    auto r = c->call(info(), 2000ms);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.failure().message));
    CHECK(r->code() == crypto::v1::OK);
    CHECK(r->info().release() == "fake");
    ids.insert(r->request_id());
  }
  CHECK(ids.size() == 5);
  const auto seen = fake->requests();
  REQUIRE(seen.size() == 5);
  for (const auto& q : seen) {
    CHECK(q.protocol_version() == 1);
    CHECK(ids.count(q.request_id()) == 1);
    CHECK(q.deadline_ms() > 1500);
    CHECK(q.deadline_ms() < 2000);  // a margin stays for the way back
    CHECK(q.caller() == "test");
    CHECK(q.has_info());
  }
  // One persistent connection served all five.
  CHECK(fake->accepted() == 1);
  CHECK(c->stats().connects == 1);
  CHECK(c->stats().calls == 5);
}

TEST_CASE("an appliance that closes after each answer is reconnected to transparently") {
  auto fake = FakeAppliance::unix_socket(B::close_after_answer);
  auto c = client({fake->address()});
  for (int i = 0; i < 5; ++i) {
    auto r = c->call(info(), 2000ms);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.failure().message));
    // Let the close arrive, so the next call finds the idle connection closed.
    std::this_thread::sleep_for(10ms);
  }
  CHECK(fake->accepted() == 5);
  CHECK(c->stats().calls_unanswered == 0);
}

TEST_CASE("an appliance that restarts is reconnected to") {
  auto dir = FakeAppliance::unix_socket(B::answer);  // owns a temporary directory
  const std::string path = dir->address().substr(5, dir->address().size() - 5 - 7) + "/re.sock";
  auto fake = FakeAppliance::unix_socket(B::answer, path);
  auto c = client({fake->address()});
  REQUIRE(c->call(info(), 1000ms).ok());
  // Down: the pooled connection dies and nothing listens.
  fake->stop();
  fake.reset();
  auto down = c->call(info(), 300ms);
  REQUIRE_FALSE(down.ok());
  CHECK(down.failure().status == Status::token_unavailable);
  // Back where it was: the same client finds it once its backoff ends.
  fake = FakeAppliance::unix_socket(B::answer, path);
  auto again = c->call(info(), 3000ms);
  CHECK_MESSAGE(again.ok(), (again.ok() ? "" : again.failure().message));
  CHECK(c->stats().connect_failures >= 1);
  CHECK(c->stats().connects == 2);
}

TEST_CASE("an appliance that never answers costs the deadline, not more") {
  auto fake = FakeAppliance::unix_socket(B::silent);
  auto c = client({fake->address()});
  Result<crypto::v1::Response> r = fail(Status::internal, "not run");
  const auto took = timed([&] { r = c->call(info(), 300ms); });
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().status == Status::token_unavailable);
  CHECK(r.failure().message.starts_with("no appliance answered within 300 ms"));
  CHECK(took >= 290ms);
  CHECK(took < 600ms);
}

TEST_CASE("no appliance listening: token_unavailable at once, Unix and TCP") {
  for (const auto& address : {dead_unix_address(), dead_tcp_address()}) {
    CAPTURE(address);
    auto c = client({address}, 2, std::string(cluster_secret));
    Result<crypto::v1::Response> r = fail(Status::internal, "not run");
    const auto took = timed([&] { r = c->call(info(), 1000ms); });
    REQUIRE_FALSE(r.ok());
    CHECK(r.failure().status == Status::token_unavailable);
    CHECK(r.failure().message.find("no appliance answered within 1000 ms") == 0);
    CHECK(took < 1100ms);
    CHECK(c->stats().connect_failures >= 1);
  }
  auto c = client({dead_unix_address()});
  auto zero = c->call(info(), 0ms);
  REQUIRE_FALSE(zero.ok());
  CHECK(zero.failure().status == Status::token_unavailable);
}

TEST_CASE("requests fail over from a dead appliance to a live one") {
  auto live = FakeAppliance::unix_socket(B::answer);
  auto c = client({dead_unix_address(), live->address()});
  for (int i = 0; i < 6; ++i) {
    auto r = c->call(info(), 1000ms);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.failure().message));
  }
  CHECK(live->requests().size() == 6);
}

TEST_CASE("requests spread over two live appliances") {
  auto a = FakeAppliance::unix_socket(B::answer);
  auto b = FakeAppliance::unix_socket(B::answer);
  auto c = client({a->address(), b->address()});
  for (int i = 0; i < 10; ++i)
    REQUIRE(c->call(info(), 1000ms).ok());
  CHECK(a->requests().size() >= 3);
  CHECK(b->requests().size() >= 3);
}

TEST_CASE("an appliance shutting down is left for another") {
  auto leaving = FakeAppliance::unix_socket(B::shutting_down);
  auto staying = FakeAppliance::unix_socket(B::answer);
  auto c = client({leaving->address(), staying->address()});
  for (int i = 0; i < 4; ++i) {
    auto r = c->call(info(), 1000ms);
    REQUIRE(r.ok());
    CHECK(r->code() == crypto::v1::OK);
  }
  CHECK(leaving->requests().size() <= 1);  // then it is paused
  // Alone, it yields token_unavailable, not its SHUTTING_DOWN answer.
  auto alone = client({leaving->address()});
  auto r = alone->call(info(), 300ms);
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().message.find("shutting down") != std::string::npos);
}

TEST_CASE("answers the client must not believe") {
  struct Case {
    B behaviour;
    const char* says;
  };
  for (const auto& k :
       {Case{B::wrong_id, "answered request"}, Case{B::oversized_header, "more than the limit"},
        Case{B::garbage, "not a Response"},
        Case{B::close_on_accept, "closed the connection|Connection reset|Broken pipe"}}) {
    const std::string says = k.says;
    CAPTURE(says);
    auto fake = FakeAppliance::unix_socket(k.behaviour);
    auto c = client({fake->address()});
    auto r = c->call(info(), 400ms);
    REQUIRE_FALSE(r.ok());
    CHECK(r.failure().status == Status::token_unavailable);
    // `says`: alternatives separated by '|'.
    bool said = false;
    for (std::size_t at = 0; at <= says.size();) {
      const auto bar = std::min(says.find('|', at), says.size());
      said = said || r.failure().message.find(says.substr(at, bar - at)) != std::string::npos;
      at = bar + 1;
    }
    CHECK_MESSAGE(said, r.failure().message);
    CHECK(c->stats().dropped >= 1);
    // The same appliance, healthy again: the next call succeeds on a new connection.
    fake->set_behaviour(B::answer);
    std::this_thread::sleep_for(100ms);  // past the first backoff
    auto ok = c->call(info(), 2000ms);
    CHECK_MESSAGE(ok.ok(), (ok.ok() ? "" : ok.failure().message));
  }
}

TEST_CASE("a slow answer within the deadline arrives") {
  auto fake = FakeAppliance::unix_socket(B::answer);
  fake->set_delay(150ms);
  auto c = client({fake->address()});
  auto r = c->call(info(), 1000ms);
  REQUIRE(r.ok());
  // Too slow for a shorter deadline: dropped, not read by the next request.
  auto late = c->call(info(), 100ms);
  REQUIRE_FALSE(late.ok());
  fake->set_delay(0ms);
  auto next = c->call(info(), 1000ms);
  REQUIRE(next.ok());
  CHECK(next->request_id() == fake->requests().back().request_id());
}

TEST_CASE("a request too large for a frame is refused before anything is sent") {
  auto fake = FakeAppliance::unix_socket(B::answer);
  auto c = client({fake->address()});
  auto big = info();
  big.set_caller(std::string(70'000, 'x'));
  auto r = c->call(big, 1000ms);
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().status == Status::malformed);
  CHECK(fake->requests().empty());
  CHECK(c->call(info(), 1000ms).ok());
}

TEST_CASE("TLS 1.3 with the cluster PSK; a wrong secret fails the handshake") {
  auto fake = FakeAppliance::tls(B::answer, cluster_secret);
  {
    auto c = client({fake->address()}, 2, std::string(cluster_secret));
    for (int i = 0; i < 3; ++i) {
      auto r = c->call(info(), 2000ms);
      REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.failure().message));
      CHECK(r->info().release() == "fake");
    }
    CHECK(c->stats().connects == 1);
  }
  {
    auto c = client({fake->address()}, 2, std::string("not the cluster secret"));
    auto r = c->call(info(), 500ms);
    REQUIRE_FALSE(r.ok());
    CHECK(r.failure().status == Status::token_unavailable);
    CHECK(r.failure().message.find("TLS handshake") != std::string::npos);
  }
  // Give the server thread a moment to count the failed handshake.
  for (int i = 0; i < 50 && fake->handshakes_failed() == 0; ++i)
    std::this_thread::sleep_for(10ms);
  CHECK(fake->handshakes_failed() >= 1);
  CHECK(fake->requests().size() == 3);
}

TEST_CASE("TLS: an appliance that closes after each answer, and many threads") {
  auto fake = FakeAppliance::tls(B::close_after_answer, cluster_secret);
  auto c = client({fake->address()}, 3, std::string(cluster_secret));
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        if (c->call(info(), 5000ms).ok()) ++ok;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  CHECK(ok == 40);
  CHECK(fake->max_concurrent() <= 3);
}

TEST_CASE("many threads share a bounded pool") {
  auto fake = FakeAppliance::unix_socket(B::answer);
  fake->set_delay(2ms);
  auto c = client({fake->address()}, 2);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        if (c->call(info(), 5000ms).ok()) ++ok;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  CHECK(ok == 200);
  CHECK(fake->accepted() <= 2);
  CHECK(fake->max_concurrent() <= 2);
  std::set<std::uint64_t> ids;
  for (const auto& q : fake->requests())
    ids.insert(q.request_id());
  CHECK(ids.size() == 200);
}

TEST_CASE("a full pool waits only until the deadline") {
  auto fake = FakeAppliance::unix_socket(B::answer);
  fake->set_delay(400ms);
  auto c = client({fake->address()}, 1);
  std::thread busy([&] { (void)c->call(info(), 2000ms); });
  std::this_thread::sleep_for(50ms);
  Result<crypto::v1::Response> r = fail(Status::internal, "not run");
  const auto took = timed([&] { r = c->call(info(), 100ms); });
  busy.join();
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().status == Status::token_unavailable);
  CHECK(took < 300ms);
}
