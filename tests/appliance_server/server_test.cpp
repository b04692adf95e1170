// The server in this process on a real SoftHSM token: every operation over the socket,
// answers checked with OpenSSL or against the appliance called directly on the same token.
#include <doctest.h>

#include <cctype>
#include <fstream>
#include <sstream>

#include "appliance/join.hpp"
#include "appliance/provision.hpp"
#include "local_server.hpp"
#include "lorakeep_config.h"
#include "openssl_ref.hpp"
#include "requests.hpp"

using namespace lorakeep;
using namespace lorakeep::test;

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void require_ok(const v1::Response& r) {
  REQUIRE_MESSAGE(r.code() == v1::OK, (v1::Code_Name(r.code()) + ": " + r.message()));
}

}  // namespace

TEST_CASE("joins of LoRaWAN 1.0.2, 1.0.4 and 1.1 over the Unix socket") {
  ApplianceFixture f;
  LocalServer server(f.token.module(), f.token);
  const Device d = make_device(f);
  auto client = server.connect();

  SUBCASE("1.0.2 and 1.0.4: checked with OpenSSL") {
    std::uint64_t id = 1;
    for (const std::string version : {"1.0.2", "1.0.4"}) {
      CAPTURE(version);
      const auto r = client.call(join_request(id, d, version, 0x0102, 0x000456));
      require_ok(r);
      CHECK(r.request_id() == id);
      REQUIRE(r.has_join());
      check_join_1_0(f, d.app_key, r.join(), 0x0102, 0x000456);
      ++id;
    }
  }
  SUBCASE("1.1: the same bytes as the appliance called directly on the token") {
    const auto r = client.call(join_request(7, d, "1.1", 42, 0x0A0B0C));
    require_ok(r);
    appliance::JoinInput in;
    in.mac_version = lorawan::MacVersion::v1_1;
    in.join_request = make_join_request(d.nwk_key, kJoinEui, kDevEui, 42);
    in.root_keys = appliance::WrappedRootKeys{d.wrapped_app_key, d.wrapped_nwk_key};
    in.accept = lorawan::JoinAcceptFields{*lorawan::JoinNonce::create(0x0A0B0C),
                                          *lorawan::NetId::from_hex(kNetId),
                                          *lorawan::DevAddr::from_hex(kDevAddr),
                                          lorawan::DlSettings{0x80},
                                          lorawan::RxDelay{1},
                                          std::nullopt};
    in.ns = f.to_ns;
    in.as = f.to_as;
    auto direct = appliance::join(f.session, f.keys, in);
    REQUIRE(direct.ok());
    const auto& j = r.join();
    CHECK(Bytes(j.join_accept().begin(), j.join_accept().end()) == direct->join_accept);
    CHECK_FALSE(j.has_nwk_s_key());
    REQUIRE((j.has_f_nwk_s_int_key() && j.has_s_nwk_s_int_key() && j.has_nwk_s_enc_key()));
    CHECK(envelope_key(f, j.f_nwk_s_int_key()) == f.open(*direct->f_nwk_s_int_key));
    CHECK(envelope_key(f, j.s_nwk_s_int_key()) == f.open(*direct->s_nwk_s_int_key));
    CHECK(envelope_key(f, j.nwk_s_enc_key()) == f.open(*direct->nwk_s_enc_key));
    CHECK(envelope_key(f, j.app_s_key()) ==
          ref::aes_ecb_encrypt(d.app_key, block_1_1(0x02, 0x0A0B0C, kJoinEui, 42)));
  }
}

TEST_CASE("rejoin, AppSKey re-wrap and root key import over the socket") {
  ApplianceFixture f;
  LocalServer server(f.token.module(), f.token);
  const Device d = make_device(f);
  auto client = server.connect();

  SUBCASE("rejoin type 0") {
    const auto r = client.call(rejoin_request(3, d, 300, 77));
    require_ok(r);
    CHECK(envelope_key(f, r.join().f_nwk_s_int_key()) ==
          ref::aes_ecb_encrypt(d.nwk_key, block_1_1(0x01, 77, kJoinEui, 300)));
    CHECK(envelope_key(f, r.join().app_s_key()) ==
          ref::aes_ecb_encrypt(d.app_key, block_1_1(0x02, 77, kJoinEui, 300)));
  }
  SUBCASE("the stored AppSKey re-wraps for the AS") {
    const auto joined = client.call(join_request(1, d, "1.0.3", 9, 99));
    require_ok(joined);
    auto r = request(2);
    auto& op = *r.mutable_rewrap_app_s_key();
    op.set_dev_eui(hex_bytes(kDevEui));
    op.set_stored_app_s_key(joined.join().stored_app_s_key());
    op.mutable_as()->set_kek_label("as-kek");
    const auto rewrapped = client.call(r);
    require_ok(rewrapped);
    CHECK(envelope_key(f, rewrapped.rewrap_app_s_key().app_s_key()) ==
          ref::aes_ecb_encrypt(d.app_key, block_1_0(0x02, 99, kNetId, 9)));
  }
  SUBCASE("a plaintext root key and a transport-wrapped one are answered under the storage key") {
    const Bytes root = random_bytes(16);
    auto r = request(5);
    r.mutable_import_root_key()->set_dev_eui(hex_bytes(kDevEui));
    r.mutable_import_root_key()->set_plaintext(bytes(root));
    const auto plain = client.call(r);
    require_ok(plain);
    REQUIRE(plain.import_root_key().wrapped().size() == 24);

    const Bytes transport = random_bytes(16);
    REQUIRE(appliance::import_key(f.session, appliance::KeyRole::transport, "factory",
                                  pkcs11::SecretBytes(transport), f.keys.policy())
                .ok());
    auto t = request(6);
    t.mutable_import_root_key()->set_dev_eui(hex_bytes(kDevEui));
    auto& tw = *t.mutable_import_root_key()->mutable_transport_wrapped();
    tw.set_transport_kek_label("factory");
    tw.set_wrapped(bytes(ref::aes_key_wrap(transport, root)));
    const auto wrapped = client.call(t);
    require_ok(wrapped);

    // Both copies are the device's key: a join signed with it verifies under each.
    for (const auto* w :
         {&plain.import_root_key().wrapped(), &wrapped.import_root_key().wrapped()}) {
      Device imported{root, {}, Bytes(w->begin(), w->end()), {}};
      const auto joined = client.call(join_request(8, imported, "1.0.2", 11, 12));
      require_ok(joined);
      check_join_1_0(f, root, joined.join(), 11, 12);
    }
  }
}

TEST_CASE("info and stats") {
  ApplianceFixture f;
  LocalServerOptions options;
  options.sessions = 3;
  LocalServer server(f.token.module(), f.token, options);
  const Device d = make_device(f);
  auto client = server.connect();

  auto info_request = request(1);
  info_request.mutable_info();
  const auto info = client.call(info_request);
  require_ok(info);
  CHECK(info.info().release() == LORAKEEP_VERSION);
  REQUIRE(info.info().protocol_versions_size() == 1);
  CHECK(info.info().protocol_versions(0) == 1);
  CHECK(info.info().token_label() == "lorakeep-test");
  CHECK(info.info().token_manufacturer() ==
        (f.token.kind() == TokenKind::softhsm ? "SoftHSM project" : "Mozilla Foundation"));
  CHECK(info.info().token_model() ==
        (f.token.kind() == TokenKind::softhsm ? "SoftHSM v2" : "NSS 3"));
  CHECK(info.info().self_test_passed());
  CHECK(info.info().sessions_per_worker() == 3);

  for (std::uint16_t i = 0; i < 3; ++i)
    require_ok(client.call(join_request(10 + i, d, "1.0.2", i, i)));
  auto bad = join_request(20, d, "1.0.2", 5, 5);
  bad.mutable_join()->mutable_accept()->set_net_id("xx");
  CHECK(client.call(bad).code() == v1::MALFORMED);

  auto stats_request = request(2);
  stats_request.mutable_stats();
  const auto stats = client.call(stats_request);
  require_ok(stats);
  const auto& s = stats.stats();
  bool found_ok = false;
  bool found_malformed = false;
  std::uint64_t total = 0;
  for (const auto& op : s.operations()) {
    total += op.count();
    if (op.operation() == "join_1_0" && op.result() == "OK") {
      found_ok = true;
      CHECK(op.count() == 3);
      CHECK(op.latency_us_sum() > 0);
      // The token's part of the latency: some, never more than the whole.
      CHECK(op.token_us_sum() > 0);
      CHECK(op.token_us_sum() <= op.latency_us_sum());
      CHECK(op.pkcs11_crypto_calls() > 0);
      CHECK(op.pkcs11_calls() >= op.pkcs11_crypto_calls());
    }
    if (op.operation() == "join_1_0" && op.result() == "MALFORMED") {
      found_malformed = true;
      CHECK(op.count() == 1);
      CHECK(op.pkcs11_calls() == 0);
      CHECK(op.token_us_sum() == 0);  // refused before it reached the token
    }
  }
  CHECK(found_ok);
  CHECK(found_malformed);
  CHECK(total == 5);  // info, three joins, the bad one (this stats request is not counted yet)
  CHECK(s.sessions_capacity() == 3);
  CHECK(s.connections_open() == 1);
  CHECK(s.pkcs11_calls_total() > 0);
  REQUIRE(s.latency_bucket_bounds_us_size() == s.latency_bucket_counts_size());
  REQUIRE(s.latency_bucket_counts_size() > 2);
  // Cumulative counts: never decreasing, the last one is every request.
  for (int i = 1; i < s.latency_bucket_counts_size(); ++i) {
    CHECK(s.latency_bucket_counts(i) >= s.latency_bucket_counts(i - 1));
    CHECK(s.latency_bucket_bounds_us(i) > s.latency_bucket_bounds_us(i - 1));
  }
  CHECK(s.latency_bucket_counts(s.latency_bucket_counts_size() - 1) == 5);
}

TEST_CASE("the audit log names operations, devices and KEKs, and holds no key material") {
  ApplianceFixture f;
  LocalServer server(f.token.module(), f.token);
  const Device d = make_device(f);
  auto client = server.connect();
  std::vector<Bytes> keys = {d.app_key, d.nwk_key, f.kek_ns, f.kek_as};

  auto joined = client.call(join_request(1, d, "1.0.2", 1, 2));
  require_ok(joined);
  keys.push_back(envelope_key(f, joined.join().nwk_s_key()));
  keys.push_back(envelope_key(f, joined.join().app_s_key()));

  // A peer allowed plaintext keys: the key is in the answer, the audit says so, not which.
  auto plain = join_request(2, d, "1.0.2", 3, 4);
  plain.mutable_join()->mutable_ns()->clear_kek_label();
  plain.mutable_join()->mutable_ns()->set_plaintext_allowed(true);
  const auto plain_answer = client.call(plain);
  require_ok(plain_answer);
  REQUIRE(plain_answer.join().nwk_s_key().kek_label().empty());
  keys.emplace_back(plain_answer.join().nwk_s_key().aes_key().begin(),
                    plain_answer.join().nwk_s_key().aes_key().end());
  CHECK(keys.back() == ref::aes_ecb_encrypt(d.app_key, block_1_0(0x01, 4, kNetId, 3)));

  const Bytes root = random_bytes(16);
  keys.push_back(root);
  auto import = request(3);
  import.mutable_import_root_key()->set_dev_eui(hex_bytes(kDevEui));
  import.mutable_import_root_key()->set_plaintext(bytes(root));
  require_ok(client.call(import));

  auto wrong_mic = join_request(4, d, "1.0.2", 5, 6);
  (*wrong_mic.mutable_join()->mutable_phy_payload())[22] ^= 0x01;
  CHECK(client.call(wrong_mic).code() == v1::MIC_FAILED);

  server.stop();
  const std::string audit = read_file(server.audit_path());
  std::istringstream lines(audit);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    ++count;
    CHECK(line.find("\"time\":\"") != std::string::npos);
    CHECK(line.find("\"worker\":") != std::string::npos);
    CHECK(line.find("\"caller\":\"test\"") != std::string::npos);
    CHECK(line.find("\"peer\":\"unix:uid=") != std::string::npos);
    CHECK(line.find("\"dev_eui\":\"" + kDevEui + "\"") != std::string::npos);
  }
  CHECK(count == 4);
  CHECK(audit.find("\"operation\":\"join_1_0\"") != std::string::npos);
  CHECK(audit.find("\"keks\":[\"ns-kek\",\"as-kek\"]") != std::string::npos);
  CHECK(audit.find("\"plaintext\":true") != std::string::npos);
  CHECK(audit.find("\"plaintext_input\":true") != std::string::npos);
  CHECK(audit.find("\"result\":\"MIC_FAILED\"") != std::string::npos);
  CHECK(audit.find("\"request_id\":4") != std::string::npos);
  for (const auto& key : keys) {
    const std::string lower = to_hex(key);
    std::string upper = lower;
    for (auto& c : upper)
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    CHECK(audit.find(lower) == std::string::npos);
    CHECK(audit.find(upper) == std::string::npos);
    CHECK(audit.find(bytes(key)) == std::string::npos);
  }
}
