// lorakeep-js parts that need no process: its configuration section, the rate limiter, the
// metrics text and the sender CA map's refusals. (Requests end to end: tests/js_process.)
#include <doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "host/js/config.hpp"
#include "host/js/metrics.hpp"
#include "host/js/rate_limit.hpp"
#include "host/js/sender_auth.hpp"

using namespace lorakeep::host::js;
namespace fs = std::filesystem;

namespace {

constexpr const char* minimal_yaml = R"(
appliance:
  anything: goes here   # another program's section
join_server:
  listen: 127.0.0.1:8443
  tls: {certificate: js.pem, private_key: js.key}
  sender_ca_map: config.yml
  registry: {sqlite: registry.db}
  appliance: {endpoints: ["unix:cs.sock"]}
)";

std::string minimal() {
  return minimal_yaml;
}

std::string refusal(const std::string& yaml) {
  try {
    (void)parse_config(yaml, "/etc/lorakeep", "lorakeep.yml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "lorakeep-js-units-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
  }
};

}  // namespace

TEST_CASE("join_server configuration: defaults and relative paths") {
  const Config c = parse_config(minimal(), "/etc/lorakeep", "lorakeep.yml");
  CHECK(c.mode == Config::Mode::join_server);
  CHECK(c.listen_host == "127.0.0.1");
  CHECK(c.listen_port == 8443);
  CHECK(c.tls_certificate == fs::path("/etc/lorakeep/js.pem"));
  CHECK(c.sender_ca_map == fs::path("/etc/lorakeep/config.yml"));
  CHECK(c.registry == fs::path("/etc/lorakeep/registry.db"));
  REQUIRE(c.appliance_endpoints.size() == 1);
  CHECK(c.appliance_endpoints[0] == "unix:/etc/lorakeep/cs.sock");
  CHECK(c.lifetime_s > 0);
  CHECK(c.max_body_bytes == 65536);
  CHECK(c.keep_app_s_key_always);
  const std::string when = minimal() + "  keep_app_s_key: when_not_delivered\n";
  CHECK_FALSE(parse_config(when, "/etc/lorakeep", "lorakeep.yml").keep_app_s_key_always);
}

TEST_CASE("join_server configuration: every wrong value names its key") {
  const auto with = [](const std::string& line) { return minimal() + "  " + line + "\n"; };
  CHECK(refusal(with("listen: 8443")).find("join_server.listen") != std::string::npos);
  CHECK(refusal(with("lifetime_s: 0")).find("join_server.lifetime_s") != std::string::npos);
  CHECK(refusal(with("mode: proxy")).find("join_server.mode") != std::string::npos);
  CHECK(refusal(with("keep_app_s_key: never")).find("join_server.keep_app_s_key") !=
        std::string::npos);
  CHECK(refusal(with("threads: lots")).find("join_server.threads") != std::string::npos);
  CHECK(refusal(with("colour: blue")).find("unknown key") != std::string::npos);
  CHECK(refusal(with("home_ns_req_net_ids: [\"0000\"]")).find("NetID") != std::string::npos);
  CHECK(refusal(with("rate_limits: {per_sender: {rate: 5}}")).find("burst") != std::string::npos);
  CHECK(refusal("join_server:\n  listen: 127.0.0.1:1\n").find("join_server.tls") !=
        std::string::npos);
  CHECK(refusal("other: {}\n").find("join_server") != std::string::npos);
  // Identity mode needs no appliance; the Join Server does.
  std::string identity = minimal();
  identity.replace(identity.find("  appliance: {endpoints"), std::string::npos, "");
  CHECK(refusal(identity).find("join_server.appliance") != std::string::npos);
  CHECK(refusal(identity + "  mode: identity\n").empty());
}

TEST_CASE("rate limiter: bursts, refill, and keys apart") {
  RateLimiter limiter(RateLimit{2, 3});
  const auto t0 = RateLimiter::Clock::time_point{} + std::chrono::hours(1);
  CHECK(limiter.allow("a", t0));
  CHECK(limiter.allow("a", t0));
  CHECK(limiter.allow("a", t0));
  CHECK_FALSE(limiter.allow("a", t0));
  CHECK(limiter.allow("b", t0));                                   // another key has its own bucket
  CHECK(limiter.allow("a", t0 + std::chrono::milliseconds(500)));  // one token back
  CHECK_FALSE(limiter.allow("a", t0 + std::chrono::milliseconds(500)));
  RateLimiter unlimited(RateLimit{0, 1});
  for (int i = 0; i < 1000; ++i)
    REQUIRE(unlimited.allow("x", t0));
}

TEST_CASE("rate limiter: memory is bounded by dropping full buckets") {
  RateLimiter limiter(RateLimit{1000, 1}, 4);
  const auto t0 = RateLimiter::Clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 100; ++i)
    CHECK(limiter.allow("k" + std::to_string(i), t0 + std::chrono::seconds(i)));
}

TEST_CASE("metrics: counters and histograms in Prometheus text") {
  Metrics m;
  m.record("JoinReq", "000013", "Success", std::chrono::microseconds(3000));
  m.record("JoinReq", "000013", "Success", std::chrono::microseconds(30000));
  m.record("JoinReq", "bad\"sender\n", "UnknownSender", std::chrono::microseconds(100));
  const std::string text = m.render();
  CHECK(
      text.find(
          R"(lorakeep_js_requests_total{message_type="JoinReq",sender="000013",result="Success"} 2)") !=
      std::string::npos);
  CHECK(text.find(R"(sender="bad\"sender\n")") != std::string::npos);
  CHECK(
      text.find(
          R"(lorakeep_js_request_duration_seconds_bucket{message_type="JoinReq",le="0.005"} 2)") !=
      std::string::npos);
  CHECK(text.find(R"(lorakeep_js_request_duration_seconds_count{message_type="JoinReq"} 3)") !=
        std::string::npos);
}

TEST_CASE("sender CA map: refusals name the file and the sender") {
  TempDir dir;
  dir.write("empty.yml", "");
  auto empty = SenderCaMap::load(dir.path / "empty.yml");
  REQUIRE(empty.ok());
  CHECK((*empty)->senders() == 0);

  dir.write("missing.yml", "000013: nowhere.pem\n");
  auto missing = SenderCaMap::load(dir.path / "missing.yml");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.failure().message.find("nowhere.pem") != std::string::npos);

  dir.write("junk.pem", "not a certificate\n");
  dir.write("junk.yml", "as.example.com: junk.pem\n");
  auto junk = SenderCaMap::load(dir.path / "junk.yml");
  REQUIRE_FALSE(junk.ok());
  CHECK(junk.failure().message.find("as.example.com") != std::string::npos);

  dir.write("list.yml", "- a\n- b\n");
  CHECK_FALSE(SenderCaMap::load(dir.path / "list.yml").ok());
  CHECK_FALSE(SenderCaMap::load(dir.path / "absent.yml").ok());
  CHECK(SenderCaMap::normalize("0x00001a") == "00001A");
  CHECK(SenderCaMap::normalize("as.example.com") == "as.example.com");
}

TEST_CASE("sender CA map: no certificate, or an unknown sender, never verifies") {
  TempDir dir;
  dir.write("empty.yml", "{}\n");
  auto map = SenderCaMap::load(dir.path / "empty.yml");
  REQUIRE(map.ok());
  CHECK_FALSE((*map)->verify("000013", nullptr));
}
