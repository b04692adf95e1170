// lorakeep.yml's appliance section: every key read, every wrong value refused with a message
// naming the key and what it expects.
#include <doctest.h>

#include <cstdlib>
#include <fstream>

#include "appliance/server/config.hpp"
#include "appliance/server/hardening.hpp"
#include "appliance/server/secrets.hpp"
#include "token_fixture.hpp"

using namespace lorakeep;
using namespace lorakeep::appliance::server;

namespace {

std::string module() {
  return test::TestToken::module_path();
}

std::string minimal(const std::string& extra = "", const std::string& pkcs11_extra = "") {
  return "appliance:\n"
         "  pkcs11:\n"
         "    module: " +
         module() +
         "\n"
         "    token_label: lorakeep\n"
         "    pin_file: pin.txt\n" +
         pkcs11_extra +
         "  listen: unix:cs.sock\n"
         "  audit_log: audit.log\n" +
         extra;
}

Config parse(const std::string& yaml) {
  return parse_config(yaml, "/etc/lorakeep", "lorakeep.yml");
}

/// The message of the ConfigError that `yaml` gives.
std::string error_of(const std::string& yaml) {
  try {
    (void)parse(yaml);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("every key is read") {
  const auto c = parse(
      "other_program:\n"
      "  anything: 1\n"
      "appliance:\n"
      "  pkcs11:\n"
      "    module: " +
      module() +
      "\n"
      "    init_args: \"configdir='sql:/var/lib/nss'\"\n"
      "    token_serial: 0123456789abcdef\n"
      "    pin_file: secrets/pin\n"
      "    environment:\n"
      "      SOFTHSM2_CONF: /etc/softhsm/softhsm2.conf\n"
      "      OTHER_VAR: x\n"
      "    allowed_mechanisms: false\n"
      "    reinitialize_after: 0\n"
      "  listen: \"[::1]:4700\"\n"
      "  cluster_secret_file: /etc/lorakeep/cluster.secret\n"
      "  workers: 4\n"
      "  sessions_per_worker: 8\n"
      "  audit_log: /var/log/lorakeep/audit.log\n"
      "  user: lorakeep-cs\n"
      "  trusted_keks: true\n"
      "  request_deadline_ms: 1500\n"
      "  max_connections: 100\n"
      "  idle_timeout_ms: 5000\n"
      "  handshake_timeout_ms: 2000\n"
      "  require_memory_lock: yes\n");
  CHECK(c.pkcs11.module == module());
  CHECK(c.pkcs11.init_args == "configdir='sql:/var/lib/nss'");
  CHECK(c.pkcs11.token.serial == "0123456789abcdef");
  CHECK_FALSE(c.pkcs11.token.label);
  CHECK_FALSE(c.pkcs11.token.slot);
  CHECK(c.pkcs11.pin_file == "/etc/lorakeep/secrets/pin");  // relative to the file
  REQUIRE(c.pkcs11.environment.size() == 2);
  CHECK(c.pkcs11.environment[1].first == "SOFTHSM2_CONF");
  CHECK(c.pkcs11.environment[1].second == "/etc/softhsm/softhsm2.conf");
  CHECK(c.listen.kind == ListenAddress::Kind::tcp);
  CHECK(c.listen.host == "::1");
  CHECK(c.listen.port == 4700);
  CHECK(c.listen.to_string() == "[::1]:4700");
  CHECK(c.cluster_secret_file == "/etc/lorakeep/cluster.secret");
  CHECK(c.workers == 4);
  CHECK(c.sessions_per_worker == 8);
  CHECK(c.audit_log == "/var/log/lorakeep/audit.log");
  CHECK(c.user == "lorakeep-cs");
  CHECK(c.trusted_keks);
  CHECK(c.request_deadline == std::chrono::milliseconds(1500));
  CHECK(c.max_connections == 100);
  CHECK(c.idle_timeout == std::chrono::milliseconds(5000));
  CHECK(c.handshake_timeout == std::chrono::milliseconds(2000));
  CHECK(c.require_memory_lock);
  CHECK_FALSE(c.pkcs11.allowed_mechanisms);
  CHECK(c.pkcs11.reinitialize_after == 0);
  const auto policy = key_policy(c);
  CHECK(policy.trusted_keks);
  CHECK_FALSE(policy.allowed_mechanisms);
}

TEST_CASE("an NSS softoken configuration, as docs/pkcs11-tokens.md gives it") {
  const auto c = parse(
      "appliance:\n"
      "  pkcs11:\n"
      "    module: " +
      module() +
      "\n"
      "    init_args: \"configdir='sql:/var/lib/lorakeep/nssdb' certPrefix='' keyPrefix='' "
      "secmod='secmod.db' flags=\"\n"
      "    token_label: NSS Certificate DB\n"
      "    pin_file: /etc/lorakeep/token.pin\n"
      "    allowed_mechanisms: false\n"
      "  listen: unix:/run/lorakeep/cs.sock\n"
      "  audit_log: /var/log/lorakeep/audit.log\n");
  CHECK(c.pkcs11.init_args ==
        "configdir='sql:/var/lib/lorakeep/nssdb' certPrefix='' keyPrefix='' secmod='secmod.db' "
        "flags=");
  CHECK(c.pkcs11.token.label == "NSS Certificate DB");
  CHECK(c.pkcs11.environment.empty());
  CHECK_FALSE(key_policy(c).allowed_mechanisms);
  CHECK_FALSE(key_policy(c).trusted_keks);
}

TEST_CASE("defaults, the slot selector and a Unix socket relative to the file") {
  const auto c = parse_config(
      "appliance:\n"
      "  pkcs11:\n"
      "    module: " +
          module() +
          "\n"
          "    slot: 3\n"
          "  listen: unix:run/cs.sock\n"
          "  audit_log: audit.log\n",
      "/srv/lk", "lorakeep.yml");
  CHECK(c.pkcs11.token.slot == 3u);
  CHECK_FALSE(c.pkcs11.pin_file);
  CHECK(c.listen.kind == ListenAddress::Kind::unix_socket);
  CHECK(c.listen.path == "/srv/lk/run/cs.sock");
  CHECK(c.listen.to_string() == "unix:/srv/lk/run/cs.sock");
  CHECK(c.audit_log == "/srv/lk/audit.log");
  CHECK(c.workers == 2);
  CHECK(c.sessions_per_worker == 1);
  CHECK(c.user == "lorakeep");
  CHECK_FALSE(c.trusted_keks);
  CHECK(c.request_deadline == std::chrono::milliseconds(2000));
  CHECK(c.max_connections == 256);
  CHECK(c.idle_timeout == std::chrono::milliseconds(30000));
  CHECK_FALSE(c.require_memory_lock);
  CHECK(c.pkcs11.allowed_mechanisms);
  CHECK(key_policy(c).allowed_mechanisms);
  CHECK(c.pkcs11.reinitialize_after == 2'000);
}

TEST_CASE("wrong values are refused with the key and what it expects") {
  struct Case {
    std::string yaml;
    std::vector<std::string> parts;  // all must be in the message
  };
  const std::vector<Case> cases = {
      {minimal("  wokers: 2\n"), {"lorakeep.yml:", "appliance.wokers", "unknown key", "workers"}},
      {minimal("", "    pin: 1234\n"), {"appliance.pkcs11.pin", "unknown key"}},
      {minimal("  workers: 0\n"), {"appliance.workers", "expected an integer from 1 to 64", "'0'"}},
      {minimal("  workers: two\n"), {"appliance.workers", "expected an integer", "'two'"}},
      {minimal("  workers: 1.5\n"), {"appliance.workers", "'1.5'"}},
      {minimal("  workers: -1\n"), {"appliance.workers", "'-1'"}},
      {minimal("  workers: [1]\n"), {"appliance.workers", "expected an integer"}},
      {minimal("  sessions_per_worker: 0\n"), {"appliance.sessions_per_worker", "1 to 1024"}},
      {minimal("  request_deadline_ms: 0\n"), {"appliance.request_deadline_ms"}},
      {minimal("  max_connections: 99999999\n"), {"appliance.max_connections"}},
      {minimal("  idle_timeout_ms: soon\n"), {"appliance.idle_timeout_ms", "'soon'"}},
      {minimal("  trusted_keks: maybe\n"), {"appliance.trusted_keks", "true or false", "'maybe'"}},
      {minimal("", "    allowed_mechanisms: no-thanks\n"),
       {"appliance.pkcs11.allowed_mechanisms", "true or false"}},
      {minimal("  allowed_mechanisms: false\n"), {"appliance.allowed_mechanisms", "unknown key"}},
      {minimal("", "    reinitialize_after: -5\n"),
       {"appliance.pkcs11.reinitialize_after", "from 0 to 1000000000", "'-5'"}},
      {minimal("", "    reinitialize_after: often\n"),
       {"appliance.pkcs11.reinitialize_after", "'often'"}},
      {minimal("  user: \"\"\n"), {"appliance.user", "non-empty"}},
      {minimal("", "    token_serial: 1234\n"),
       {"appliance.pkcs11", "exactly one of token_label, token_serial or slot"}},
      {minimal("  workers: 2\n  workers: 3\n"), {"appliance.workers", "given twice"}},
      {"appliance:\n  pkcs11:\n    module: " + module() +
           "\n    pin_file: p\n  listen: unix:s\n  audit_log: a\n",
       {"appliance.pkcs11", "token_label, token_serial or slot"}},
      {"appliance:\n  pkcs11:\n    module: /nonexistent/libnothing.so\n    token_label: t\n"
       "  listen: unix:s\n  audit_log: a\n",
       {"appliance.pkcs11.module", "no such file", "/nonexistent/libnothing.so"}},
      {"appliance:\n  pkcs11:\n    token_label: t\n  listen: unix:s\n  audit_log: a\n",
       {"appliance.pkcs11.module", "missing"}},
      {"appliance:\n  pkcs11:\n    module: " + module() + "\n    token_label: t\n  audit_log: a\n",
       {"appliance.listen", "missing"}},
      {"appliance:\n  pkcs11:\n    module: " + module() +
           "\n    token_label: t\n  listen: unix:s\n",
       {"appliance.audit_log", "missing"}},
      {"other: {}\n", {"no 'appliance:' section"}},
      {"appliance: [1, 2]\n", {"appliance", "expected a mapping"}},
      {"appliance:\n  pkcs11: {module: " + module() + ", token_label: t\n", {"not valid YAML"}},
      {minimal("", "    environment:\n      BAD-NAME: x\n"),
       {"appliance.pkcs11.environment.BAD-NAME", "not a valid environment variable name"}},
      {minimal("", "    environment:\n      A: [1]\n"),
       {"appliance.pkcs11.environment.A", "string"}},
  };
  for (const auto& c : cases) {
    const std::string message = error_of(c.yaml);
    CAPTURE(c.yaml);
    CAPTURE(message);
    for (const auto& part : c.parts)
      CHECK(contains(message, part));
  }
}

TEST_CASE("bad listen addresses") {
  const std::vector<std::string> bads = {
      "localhost",      "unix:",    "127.0.0.1:", ":4700", "127.0.0.1:70000",
      "127.0.0.1:http", "::1:4700", "[::1:4700",  "a b:1", "unix:/" + std::string(120, 'x')};
  for (const auto& bad : bads) {
    CAPTURE(bad);
    std::string yaml = minimal();
    yaml.replace(yaml.find("unix:cs.sock"), 12, "\"" + bad + "\"");
    const std::string message = error_of(yaml);
    CHECK(contains(message, "appliance.listen"));
    CHECK(contains(message, "got '"));
  }
  CHECK(parse_listen("*:4700", "/").host == "*");
  CHECK(parse_listen("127.0.0.1:0", "/").port == 0);
  CHECK(parse_listen("unix:/run/lk.sock", "/x").path == "/run/lk.sock");
  CHECK_THROWS_AS(parse_listen("nohost", "/"), ConfigError);
}

TEST_CASE("a missing configuration file") {
  try {
    (void)load_config("/nonexistent/lorakeep.yml");
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK(contains(e.what(), "/nonexistent/lorakeep.yml"));
    CHECK(contains(e.what(), "cannot read"));
  }
}

TEST_CASE("secrets: PIN from its file or LORAKEEP_PIN, cluster secret for TCP") {
  test::TempDir dir;
  const auto write = [&](const std::string& name, const std::string& content) {
    std::ofstream(dir.path() / name, std::ios::binary) << content;
  };
  write("pin.txt", "123456\n");
  write("short.secret", "only-15-bytes!!\n");
  write("good.secret", "a cluster secret of enough bytes\n");
  write("empty", "");
  const auto config = [&](const std::string& extra,
                          const std::string& pin = "    pin_file: pin.txt\n",
                          const std::string& listen = "unix:cs.sock") {
    return parse_config("appliance:\n  pkcs11:\n    module: " + module() +
                            "\n    token_label: t\n" + pin + "  listen: \"" + listen +
                            "\"\n  audit_log: a\n" + extra,
                        dir.path(), "lorakeep.yml");
  };

  SUBCASE("the PIN file, one newline dropped") {
    const auto s = load_secrets(config(""));
    CHECK(s.pin == pkcs11::SecretBytes::from_string("123456"));
    CHECK(s.cluster_psk.empty());
  }
  SUBCASE("no pin_file and no LORAKEEP_PIN") {
    ::unsetenv("LORAKEEP_PIN");
    try {
      (void)load_secrets(config("", ""));
      FAIL("no error");
    } catch (const ConfigError& e) {
      CHECK(contains(e.what(), "appliance.pkcs11.pin_file"));
      CHECK(contains(e.what(), "LORAKEEP_PIN"));
    }
  }
  SUBCASE("LORAKEEP_PIN is used, then removed from the environment") {
    ::setenv("LORAKEEP_PIN", "987654", 1);
    const auto s = load_secrets(config("", ""));
    CHECK(s.pin == pkcs11::SecretBytes::from_string("987654"));
    CHECK(std::getenv("LORAKEEP_PIN") == nullptr);
  }
  SUBCASE("a PIN file that is missing or empty") {
    const auto missing = config("", "    pin_file: nope\n");
    CHECK_THROWS_WITH_AS((void)load_secrets(missing),
                         doctest::Contains("appliance.pkcs11.pin_file"), ConfigError);
    const auto empty = config("", "    pin_file: empty\n");
    CHECK_THROWS_WITH_AS((void)load_secrets(empty), doctest::Contains("empty"), ConfigError);
  }
  SUBCASE("TCP needs a cluster secret of at least 16 bytes") {
    ::unsetenv("LORAKEEP_CLUSTER_SECRET");
    CHECK_THROWS_WITH_AS((void)load_secrets(config("", "    pin_file: pin.txt\n", "127.0.0.1:0")),
                         doctest::Contains("appliance.cluster_secret_file"), ConfigError);
    CHECK_THROWS_WITH_AS((void)load_secrets(config("  cluster_secret_file: short.secret\n",
                                                   "    pin_file: pin.txt\n", "127.0.0.1:0")),
                         doctest::Contains("at least 16 bytes"), ConfigError);
    const auto s = load_secrets(
        config("  cluster_secret_file: good.secret\n", "    pin_file: pin.txt\n", "127.0.0.1:0"));
    CHECK(s.cluster_psk.size() == 32);
    ::setenv("LORAKEEP_CLUSTER_SECRET", "a cluster secret of enough bytes", 1);
    const auto from_env = load_secrets(config("", "    pin_file: pin.txt\n", "127.0.0.1:0"));
    CHECK(from_env.cluster_psk == s.cluster_psk);  // the file's trailing newline is not secret
    CHECK(std::getenv("LORAKEEP_CLUSTER_SECRET") == nullptr);
  }
}

TEST_CASE("a user that does not exist is a clear error") {
  CHECK_THROWS_WITH_AS(
      (void)resolve_user("no-such-user-lorakeep"),
      doctest::Contains("appliance.user: there is no user 'no-such-user-lorakeep'"), ConfigError);
  CHECK(resolve_user("root").uid == 0);
}
