// What the server does with requests that are wrong, frames that are broken, clients that
// stall or crowd in, and a shutdown with requests in flight.
#include <doctest.h>

#include <sys/socket.h>

#include <atomic>
#include <functional>
#include <thread>

#include "local_server.hpp"
#include "requests.hpp"

using namespace lorakeep;
using namespace lorakeep::test;
using namespace std::chrono_literals;

namespace {

struct Refusal {
  std::string what;
  std::function<void(v1::Request&)> change;
  v1::Code code;
  const char* message;  // a part of the answer's message (the field it names)
};

}  // namespace

TEST_CASE("protocol errors are answered and the connection goes on") {
  ApplianceFixture f;
  LocalServer server(f.token.module(), f.token);
  auto client = server.connect();

  SUBCASE("another protocol version") {
    auto r = request(11);
    r.set_protocol_version(2);
    r.mutable_info();
    const auto answer = client.call(r);
    CHECK(answer.code() == v1::VERSION_MISMATCH);
    CHECK(answer.request_id() == 11);
  }
  SUBCASE("no operation") {
    const auto answer = client.call(request(12));
    CHECK(answer.code() == v1::UNKNOWN_OPERATION);
    CHECK(answer.request_id() == 12);
  }
  SUBCASE("an operation from a later protocol (an unknown field number)") {
    auto r = request(13);
    std::string payload = r.SerializeAsString();
    payload += std::string("\xCA\x01\x00", 3);  // field 25, length 0
    const auto n = static_cast<std::uint32_t>(payload.size());
    Bytes frame{0, 0, static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n)};
    frame.insert(frame.end(), payload.begin(), payload.end());
    client.send_raw(frame);
    const auto answer = client.receive();
    REQUIRE(answer);
    CHECK(answer->code() == v1::UNKNOWN_OPERATION);
  }
  SUBCASE("a payload that is not a Request: MALFORMED with the request_id it carried") {
    // Field 2 (request_id) = 77, then a length-delimited field that runs past the end.
    const Bytes frame{0, 0, 0, 5, 0x10, 77, 0x22, 0x10, 0x00};
    client.send_raw(frame);
    const auto answer = client.receive();
    REQUIRE(answer);
    CHECK(answer->code() == v1::MALFORMED);
    CHECK(answer->request_id() == 77);
  }
  SUBCASE("garbage without a request_id: MALFORMED with request_id 0") {
    const Bytes frame{0, 0, 0, 3, 0xFF, 0xFF, 0xFF};
    client.send_raw(frame);
    const auto answer = client.receive();
    REQUIRE(answer);
    CHECK(answer->code() == v1::MALFORMED);
    CHECK(answer->request_id() == 0);
  }
  // Whatever came before, the connection still serves.
  auto info = request(99);
  info.mutable_info();
  CHECK(client.call(info).code() == v1::OK);
}

TEST_CASE("a bad frame header is answered MALFORMED and the connection closed") {
  ApplianceFixture f;
  LocalServer server(f.token.module(), f.token);
  for (const Bytes& header :
       {Bytes{0, 0, 0, 0}, Bytes{0, 1, 0, 1}, Bytes{0xFF, 0xFF, 0xFF, 0xFF}}) {
    auto client = server.connect();
    client.send_raw(header);
    const auto answer = client.receive();
    REQUIRE(answer);
    CHECK(answer->code() == v1::MALFORMED);
    CHECK(answer->request_id() == 0);
    CHECK(client.closed_by_peer(5s));
  }
  // The server itself goes on.
  auto client = server.connect();
  auto info = request(1);
  info.mutable_info();
  CHECK(client.call(info).code() == v1::OK);
}

TEST_CASE("every field is checked: the answer names the field") {
  ApplianceFixture f;
  LocalServer server(f.token.module(), f.token);
  const Device d = make_device(f);
  auto client = server.connect();
  const std::vector<Refusal> refusals = {
      {"DevEUI not the frame's",
       [](v1::Request& r) { r.mutable_join()->set_dev_eui(hex_bytes("0000000000000001")); },
       v1::MALFORMED, "join.dev_eui"},
      {"DevEUI 7 bytes",
       [](v1::Request& r) { r.mutable_join()->set_dev_eui(hex_bytes("00000000000001")); },
       v1::MALFORMED, "join.dev_eui"},
      {"NetID 4 bytes",
       [](v1::Request& r) {
         r.mutable_join()->mutable_accept()->set_net_id(hex_bytes("00000013"));
       },
       v1::MALFORMED, "join.accept.net_id"},
      {"DevAddr 3 bytes",
       [](v1::Request& r) {
         r.mutable_join()->mutable_accept()->set_dev_addr(hex_bytes("260111"));
       },
       v1::MALFORMED, "join.accept.dev_addr"},
      {"JoinNonce 25 bits",
       [](v1::Request& r) { r.mutable_join()->mutable_accept()->set_join_nonce(0x1000000); },
       v1::MALFORMED, "join.accept.join_nonce"},
      {"DLSettings 256",
       [](v1::Request& r) { r.mutable_join()->mutable_accept()->set_dl_settings(256); },
       v1::MALFORMED, "join.accept.dl_settings"},
      {"RxDelay 256", [](v1::Request& r) { r.mutable_join()->mutable_accept()->set_rx_delay(256); },
       v1::MALFORMED, "join.accept.rx_delay"},
      {"CFList 15 bytes",
       [](v1::Request& r) {
         r.mutable_join()->mutable_accept()->set_cf_list(std::string(15, 'x'));
       },
       v1::MALFORMED, "join.accept.cf_list"},
      {"MAC version 2.0", [](v1::Request& r) { r.mutable_join()->set_mac_version("2.0"); },
       v1::MALFORMED, "join.mac_version"},
      {"a short frame", [](v1::Request& r) { r.mutable_join()->mutable_phy_payload()->resize(22); },
       v1::MALFORMED, "join.phy_payload"},
      {"wrapped AppKey 16 bytes",
       [](v1::Request& r) {
         r.mutable_join()->mutable_root_keys()->mutable_wrapped()->mutable_app_key()->resize(16);
       },
       v1::MALFORMED, "join.root_keys.wrapped.app_key"},
      {"no root keys", [](v1::Request& r) { r.mutable_join()->clear_root_keys(); }, v1::MALFORMED,
       "join.root_keys"},
      {"no accept fields", [](v1::Request& r) { r.mutable_join()->clear_accept(); }, v1::MALFORMED,
       "join.accept"},
      {"no NS delivery", [](v1::Request& r) { r.mutable_join()->clear_ns(); }, v1::MALFORMED,
       "join.ns"},
      {"app_s_key_only without an AS",
       [](v1::Request& r) {
         r.mutable_join()->set_app_s_key_only(true);
         r.mutable_join()->clear_as();
       },
       v1::MALFORMED, "join.as"},
      {"app_s_key_only with a storage wrap",
       [](v1::Request& r) {
         r.mutable_join()->set_app_s_key_only(true);
         r.mutable_join()->set_store_app_s_key(true);
       },
       v1::MALFORMED, "join.store_app_s_key"},
      {"app_s_key_only with a wrong MIC",
       [](v1::Request& r) {
         r.mutable_join()->set_app_s_key_only(true);
         r.mutable_join()->set_store_app_s_key(false);
         (*r.mutable_join()->mutable_phy_payload())[20] ^= 0x10;
       },
       v1::MIC_FAILED, "MIC"},
      {"a KEK label with a blank",
       [](v1::Request& r) { r.mutable_join()->mutable_ns()->set_kek_label("ns kek"); },
       v1::MALFORMED, "join.ns.kek_label"},
      {"a caller of 300 bytes", [](v1::Request& r) { r.set_caller(std::string(300, 'c')); },
       v1::MALFORMED, "caller"},
      {"a wrong MIC",
       [](v1::Request& r) { (*r.mutable_join()->mutable_phy_payload())[20] ^= 0x10; },
       v1::MIC_FAILED, "MIC"},
      {"an unknown KEK",
       [](v1::Request& r) { r.mutable_join()->mutable_as()->set_kek_label("nobody"); },
       v1::UNKNOWN_KEY, "nobody"},
      {"no KEK and no plaintext for the NS",
       [](v1::Request& r) { r.mutable_join()->mutable_ns()->clear_kek_label(); }, v1::KEY_POLICY,
       "Network Server"},
      {"a part key the token lacks",
       [](v1::Request& r) {
         auto* part = r.mutable_join()->mutable_root_keys()->mutable_part();
         part->set_part_number("SE-404");
         part->set_serial("\x01\x02");
       },
       v1::UNKNOWN_KEY, "SE-404"},
  };
  std::uint64_t id = 100;
  for (const auto& refusal : refusals) {
    CAPTURE(refusal.what);
    auto r = join_request(++id, d, "1.0.2", 7, 8);
    refusal.change(r);
    const auto answer = client.call(r);
    CHECK(answer.request_id() == id);
    CHECK(v1::Code_Name(answer.code()) == v1::Code_Name(refusal.code));
    CHECK_MESSAGE(answer.message().find(refusal.message) != std::string::npos, answer.message());
    CHECK_FALSE(answer.has_join());
  }
  SUBCASE("app_s_key_only: no NS delivery needed, only the AppSKey comes back") {
    auto r = join_request(++id, d, "1.0.2", 7, 8);
    r.mutable_join()->clear_ns();
    r.mutable_join()->set_app_s_key_only(true);
    r.mutable_join()->set_store_app_s_key(false);
    const auto answer = client.call(r);
    REQUIRE_MESSAGE(answer.code() == v1::OK, answer.message());
    CHECK(answer.join().join_accept().empty());
    CHECK_FALSE(answer.join().has_nwk_s_key());
    CHECK(answer.join().app_s_key().kek_label() == "as-kek");
    CHECK(answer.join().app_s_key().aes_key().size() == 24);
  }
  SUBCASE("rewrap and import fields") {
    auto r = request(1);
    r.mutable_rewrap_app_s_key()->set_dev_eui(hex_bytes(kDevEui));
    r.mutable_rewrap_app_s_key()->set_stored_app_s_key(std::string(23, 'x'));
    r.mutable_rewrap_app_s_key()->mutable_as()->set_kek_label("as-kek");
    auto answer = client.call(r);
    CHECK(answer.code() == v1::MALFORMED);
    CHECK(answer.message().find("rewrap_app_s_key.stored_app_s_key") != std::string::npos);

    auto i = request(2);
    i.mutable_import_root_key()->set_dev_eui(hex_bytes(kDevEui));
    i.mutable_import_root_key()->set_plaintext(std::string(15, 'k'));
    answer = client.call(i);
    CHECK(answer.code() == v1::MALFORMED);
    CHECK(answer.message().find("import_root_key.plaintext") != std::string::npos);

    auto t = request(3);
    t.mutable_import_root_key()->set_dev_eui(hex_bytes(kDevEui));
    t.mutable_import_root_key()->mutable_transport_wrapped()->set_transport_kek_label("none");
    t.mutable_import_root_key()->mutable_transport_wrapped()->set_wrapped(std::string(24, 'w'));
    answer = client.call(t);
    CHECK(answer.code() == v1::UNKNOWN_KEY);
  }
}

TEST_CASE("many requests on one connection are answered in order, connections in parallel") {
  ApplianceFixture f;
  LocalServerOptions options;
  options.sessions = 2;
  LocalServer server(f.token.module(), f.token, options);
  const Device d = make_device(f);
  std::vector<std::thread> threads;
  threads.reserve(4);
  std::atomic<int> failures{0};
  for (std::uint64_t c = 0; c < 4; ++c) {
    threads.emplace_back([&, c] {
      try {
        auto client = server.connect();
        for (std::uint16_t i = 0; i < 10; ++i) {
          client.send(join_request(c * 100 + i, d, "1.0.2", i, i));
        }
        for (std::uint16_t i = 0; i < 10; ++i) {
          const auto answer = client.receive();
          if (!answer || answer->code() != v1::OK || answer->request_id() != c * 100 + i) {
            ++failures;
          }
        }
      } catch (...) {
        ++failures;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  CHECK(failures == 0);
}

TEST_CASE("no session within the deadline: TOKEN_UNAVAILABLE, and service goes on") {
  ApplianceFixture f;
  LocalServerOptions options;
  options.sessions = 1;
  LocalServer server(f.token.module(), f.token, options);
  const Device d = make_device(f);
  auto client = server.connect();
  {
    auto held = server.pool().acquire(1s);  // the only session
    auto r = join_request(1, d, "1.0.2", 1, 1);
    r.set_deadline_ms(150);
    const auto start = std::chrono::steady_clock::now();
    const auto answer = client.call(r);
    CHECK(answer.code() == v1::TOKEN_UNAVAILABLE);
    CHECK(answer.message() == "no PKCS#11 session within the deadline");
    CHECK(std::chrono::steady_clock::now() - start >= 140ms);
  }
  CHECK(client.call(join_request(2, d, "1.0.2", 2, 2)).code() == v1::OK);
  auto stats = request(3);
  stats.mutable_stats();
  CHECK(client.call(stats).stats().session_timeouts() == 1);
}

TEST_CASE("a client that stalls in a frame is closed after the idle timeout") {
  ApplianceFixture f;
  LocalServerOptions options;
  options.settings.connection.idle_timeout = 300ms;
  LocalServer server(f.token.module(), f.token, options);
  auto client = server.connect();
  const Bytes partial{0, 0, 0, 20, 0x08, 0x01};
  client.send_raw(partial);
  const auto start = std::chrono::steady_clock::now();
  CHECK(client.closed_by_peer(5s));
  const auto waited = std::chrono::steady_clock::now() - start;
  CHECK(waited >= 250ms);
  CHECK(waited < 3s);

  SUBCASE("a connection with nothing pending stays open") {
    auto idle = server.connect();
    std::this_thread::sleep_for(600ms);
    auto info = request(1);
    info.mutable_info();
    CHECK(idle.call(info).code() == v1::OK);
  }
}

TEST_CASE("over max_connections a connection is accepted and closed at once, and counted") {
  ApplianceFixture f;
  LocalServerOptions options;
  options.settings.max_connections = 2;
  LocalServer server(f.token.module(), f.token, options);
  auto a = server.connect();
  auto b = server.connect();
  auto info = request(1);
  info.mutable_info();
  REQUIRE(a.call(info).code() == v1::OK);
  REQUIRE(b.call(info).code() == v1::OK);
  auto c = server.connect();
  CHECK(c.closed_by_peer(5s));
  auto stats = request(2);
  stats.mutable_stats();
  const auto s = a.call(stats);
  CHECK(s.stats().connections_refused() == 1);
  CHECK(s.stats().connections_open() == 2);
}

TEST_CASE("stop: requests in flight are answered, later ones SHUTTING_DOWN, then closed") {
  ApplianceFixture f;
  LocalServer server(f.token.module(), f.token);
  const Device d = make_device(f);
  auto client = server.connect();
  // Enough queued work that the stop lands while some is still waiting, even on a loaded
  // machine where starting the stopper thread is slow.
  constexpr int n = 300;
  for (int i = 0; i < n; ++i) {
    client.send(join_request(static_cast<std::uint64_t>(i), d, "1.0.2",
                             static_cast<std::uint16_t>(i), static_cast<std::uint32_t>(i)));
  }
  // The first answer means the server is working through the queue.
  const auto first = client.receive();
  REQUIRE(first);
  CHECK(first->code() == v1::OK);
  std::thread stopper([&] { server.stop(); });
  int ok = 1;
  int shutting_down = 0;
  for (int i = 1; i < n; ++i) {
    const auto answer = client.receive();
    REQUIRE(answer);
    CHECK(answer->request_id() == static_cast<std::uint64_t>(i));
    if (answer->code() == v1::OK) {
      CHECK(shutting_down == 0);  // never OK after SHUTTING_DOWN
      ++ok;
    } else {
      CHECK(answer->code() == v1::SHUTTING_DOWN);
      ++shutting_down;
    }
  }
  CHECK(ok + shutting_down == n);
  CHECK(shutting_down > 0);
  CHECK(client.closed_by_peer(5s));
  stopper.join();
}
