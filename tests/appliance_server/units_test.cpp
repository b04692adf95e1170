// The small pieces: the PSK derivation against an independent computation, request ids of
// broken payloads, audit lines, shared statistics across a fork, zeroizing.
#include <doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "appliance/server/audit.hpp"
#include "appliance/server/convert.hpp"
#include "appliance/server/dispatch.hpp"
#include "appliance/server/hardening.hpp"
#include "appliance/server/stats.hpp"
#include "appliance/server/tls.hpp"
#include "client.hpp"
#include "token_fixture.hpp"

using namespace lorakeep;
using namespace lorakeep::appliance::server;

TEST_CASE("the cluster PSK is SHA-256 of the context string and the secret") {
  const auto secret = test::random_bytes(40);
  const auto psk = cluster_psk(pkcs11::SecretBytes(secret));
  const auto expected = test::expected_psk(secret);
  CHECK(std::vector<std::uint8_t>(psk.reveal().begin(), psk.reveal().end()) == expected);
  // Known answer: SHA-256("lorakeep cluster psk v1" "0123456789abcdef"), by sha256sum.
  const auto known = cluster_psk(pkcs11::SecretBytes::from_string("0123456789abcdef"));
  CHECK(test::to_hex(known.reveal()) ==
        "98270640068eca3d832e02fe429d211d353f75282aa2021cf24c8b0609f46d16");
  CHECK_THROWS_AS((void)cluster_psk(pkcs11::SecretBytes(test::random_bytes(15))),
                  std::invalid_argument);
}

TEST_CASE("the request_id of a payload that does not parse") {
  using B = std::vector<std::uint8_t>;
  CHECK(salvage_request_id(B{0x10, 0x2A, 0x22, 0x05, 0x01}) == 42);   // id, then a cut field
  CHECK(salvage_request_id(B{0x08, 0x01, 0x10, 0xAC, 0x02}) == 300);  // version, then id
  CHECK(salvage_request_id(B{0x22, 0x7F, 0x10, 0x05}) == 0);          // a length past the end first
  CHECK(salvage_request_id(B{0xFF, 0xFF}) == 0);
  CHECK(salvage_request_id(B{}) == 0);
  CHECK(salvage_request_id(B{0x0F}) == 0);  // wire type 7
}

TEST_CASE("an audit line is one JSON object with the fields, time in RFC 3339 UTC") {
  AuditRecord r;
  r.operation = "join_1_1";
  r.caller = "ns:000013 \"quoted\" \xff";  // escaped, invalid UTF-8 replaced
  r.peer = "tcp:127.0.0.1:5555";
  r.dev_eui = "0004A30B001C0530";
  r.keks = {"ns-kek"};
  r.result = "OK";
  r.request_id = 9;
  r.plaintext = true;
  const auto line = audit_line(r);
  CHECK(line.find('\n') == std::string::npos);
  const auto j = nlohmann::json::parse(line);
  CHECK(j["operation"] == "join_1_1");
  CHECK(j["peer"] == "tcp:127.0.0.1:5555");
  CHECK(j["dev_eui"] == "0004A30B001C0530");
  CHECK(j["keks"][0] == "ns-kek");
  CHECK(j["request_id"] == 9);
  CHECK(j["plaintext"] == true);
  CHECK(j["worker"] == ::getpid());
  const std::string time = j["time"];
  REQUIRE(time.size() == 24);  // 2024-01-02T03:04:05.678Z
  CHECK(time[10] == 'T');
  CHECK(time[19] == '.');
  CHECK(time.back() == 'Z');
  CHECK_FALSE(j.contains("plaintext_input"));
}

TEST_CASE("statistics are shared with forked processes") {
  SharedStats stats;
  pkcs11::CallCounts calls{};
  calls.by_fn[static_cast<std::size_t>(pkcs11::Fn::Sign)] = 2;
  calls.by_fn[static_cast<std::size_t>(pkcs11::Fn::FindObjects)] = 1;
  stats.record(Operation::join_1_0, crypto::v1::OK, std::chrono::microseconds(300),
               std::chrono::microseconds(250), calls);
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (int i = 0; i < 1000; ++i) {
      stats.record(Operation::rejoin, crypto::v1::MIC_FAILED, std::chrono::microseconds(3'000'000),
                   std::chrono::microseconds(1'000), calls);
    }
    stats.connection_refused();
    stats.worker(1).connections_open.fetch_add(2);
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  crypto::v1::StatsResult out;
  stats.fill(out, 8);
  REQUIRE(out.operations_size() == 2);
  for (const auto& op : out.operations()) {
    if (op.operation() == "rejoin") {
      CHECK(op.result() == "MIC_FAILED");
      CHECK(op.count() == 1000);
      CHECK(op.latency_us_sum() == 3'000'000'000ULL);
      CHECK(op.token_us_sum() == 1'000'000);
      CHECK(op.pkcs11_calls() == 3000);
      CHECK(op.pkcs11_crypto_calls() == 2000);
    } else {
      CHECK(op.operation() == "join_1_0");
      CHECK(op.count() == 1);
      CHECK(op.token_us_sum() == 250);
    }
  }
  CHECK(out.pkcs11_calls_total() == 3003);
  CHECK(out.connections_refused() == 1);
  CHECK(out.connections_open() == 2);
  CHECK(out.sessions_capacity() == 8);
  // 300 µs falls in the 500 µs bucket; 3 s only in the last, unbounded one.
  const auto& bounds = out.latency_bucket_bounds_us();
  const auto& counts = out.latency_bucket_counts();
  CHECK(bounds[0] == 100);
  CHECK(counts[0] == 0);
  CHECK(counts[2] == 1);
  CHECK(counts[counts.size() - 2] == 1);
  CHECK(bounds[bounds.size() - 1] == UINT64_MAX);
  CHECK(counts[counts.size() - 1] == 1001);

  stats.retire_worker(1);
  crypto::v1::StatsResult after;
  stats.fill(after, 8);
  CHECK(after.connections_open() == 0);
}

TEST_CASE("plaintext keys are wiped from messages") {
  crypto::v1::Request r;
  r.mutable_import_root_key()->set_plaintext(std::string(16, 'K'));
  wipe_secrets(r);
  CHECK(r.import_root_key().plaintext().empty());

  crypto::v1::Response a;
  a.mutable_join()->mutable_nwk_s_key()->set_aes_key(std::string(16, 'S'));
  a.mutable_join()->mutable_app_s_key()->set_kek_label("as-kek");
  a.mutable_join()->mutable_app_s_key()->set_aes_key(std::string(24, 'W'));
  CHECK(delivers_plaintext(a));
  wipe_secrets(a);
  CHECK(a.join().nwk_s_key().aes_key().empty());
  CHECK(a.join().app_s_key().aes_key().size() == 24);  // wrapped keys are not secret
  CHECK_FALSE(delivers_plaintext(a));
}

TEST_CASE("core dumps can be forbidden") {
  const pid_t pid = ::fork();
  if (pid == 0) {
    forbid_core_dumps();
    ::_exit(dumpable() ? 1 : 0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
