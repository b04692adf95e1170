// lorakeep-cs on TCP with TLS 1.3 PSK: a client with the cluster secret is served; one
// without it (another secret, another identity, no TLS at all) fails the handshake and
// learns nothing, and the server goes on serving the others.
#include <doctest.h>

#include <csignal>

#include "appliance/provision.hpp"
#include "process_harness.hpp"
#include "requests.hpp"

using namespace lorakeep;
using namespace lorakeep::test;
using namespace std::chrono_literals;

TEST_CASE("TLS 1.3 PSK: the right secret is served, a wrong one is refused") {
  Installation in;
  Device d{random_bytes(16), {}, {}, {}};
  auto wrapped = appliance::import_root_key(in.session, in.keys, pkcs11::SecretBytes(d.app_key));
  REQUIRE(wrapped.ok());
  d.wrapped_app_key = *wrapped;
  const auto config =
      in.write_config("127.0.0.1:0", "  workers: 1\n  handshake_timeout_ms: 4000\n");
  in.hand_over();

  CsProcess cs(config, in.logs.path());
  const auto address = cs.wait_ready(90s);
  REQUIRE_MESSAGE(address, cs.stderr_text());
  REQUIRE(address->rfind("127.0.0.1:", 0) == 0);
  const auto port = static_cast<std::uint16_t>(std::stoi(address->substr(10)));
  CHECK(port != 0);
  const Keks keks{in.kek_ns, in.kek_as};

  auto good = TestClient::tls("127.0.0.1", port, in.cluster_secret);
  const auto joined = good.call(join_request(1, d, "1.0.2", 1, 2));
  REQUIRE_MESSAGE(joined.code() == v1::OK, joined.message());
  check_join_1_0(keks, d.app_key, joined.join(), 1, 2);

  // Another secret of the same length: the PSK binder does not verify.
  auto other = in.cluster_secret;
  other[0] ^= 0x01;
  CHECK_THROWS_AS(TestClient::tls("127.0.0.1", port, other), std::runtime_error);
  // The right secret under another identity: no PSK is found, and there is no certificate.
  CHECK_THROWS_AS(TestClient::tls("127.0.0.1", port, in.cluster_secret, "someone-else"),
                  std::runtime_error);
  // Not TLS at all: a protocol frame in the clear gets no answer, the connection closes.
  {
    auto plain = TestClient::tcp("127.0.0.1", port);
    auto info = request(5);
    info.mutable_info();
    plain.send(info);
    CHECK(plain.closed_by_peer(10s));
  }
  // A client that connects and says nothing is dropped after the handshake timeout.
  {
    auto silent = TestClient::tcp("127.0.0.1", port);
    const auto start = std::chrono::steady_clock::now();
    CHECK(silent.closed_by_peer(10s));
    CHECK(std::chrono::steady_clock::now() - start < 8s);
  }

  // The good client's connection is still there, and new ones are served.
  const auto again = good.call(join_request(2, d, "1.0.2", 3, 4));
  CHECK(again.code() == v1::OK);
  auto second = TestClient::tls("127.0.0.1", port, in.cluster_secret);
  auto stats = request(3);
  stats.mutable_stats();
  const auto s = second.call(stats);
  REQUIRE(s.code() == v1::OK);
  CHECK(s.stats().connections_refused() >= 4);  // two bad PSKs, plain text, silence
  CHECK(s.stats().connections_open() == 2);

  cs.signal(SIGINT);
  const auto status = cs.wait_exit(60s);
  REQUIRE(status);
  CHECK(*status == 0);
  CHECK_MESSAGE(sanitizer_clean(cs.stderr_text()), cs.stderr_text());
  CHECK(cs.stderr_text().find("\"reason\":\"TLS handshake failed\"") != std::string::npos);
}
