// lorakeep-cs refuses to start, loudly and before it listens, when the token is not fit to
// serve (weak or missing storage key) or the configuration is wrong.
#include <doctest.h>

#include <fstream>
#include <sstream>

#include "process_harness.hpp"

using namespace lorakeep;
using namespace lorakeep::test;
using namespace std::chrono_literals;

namespace {

/// Starts lorakeep-cs, expects it to end on its own with a non-zero status; returns stderr.
std::string refused(Installation& in, const std::filesystem::path& config, int expected_status) {
  CsProcess cs(config, in.logs.path());
  CHECK_FALSE(cs.wait_ready(90s));
  const auto status = cs.wait_exit(60s);
  REQUIRE_MESSAGE(status, cs.stderr_text());
  CHECK(*status == expected_status);
  CHECK_FALSE(std::filesystem::exists(in.dir.path() / "cs.sock"));
  CHECK_MESSAGE(sanitizer_clean(cs.stderr_text()), cs.stderr_text());
  return cs.stderr_text();
}

}  // namespace

TEST_CASE("a weak storage key (extractable): no start, no socket") {
  Installation in(StorageKey::weak);
  const auto config = in.write_config("unix:cs.sock");
  in.hand_over();
  const auto err = refused(in, config, 1);
  CHECK_MESSAGE(err.find("lorakeep-cs: refusing to start: storage key:") != std::string::npos, err);
  CHECK(err.find("is extractable") != std::string::npos);
}

TEST_CASE("no storage key: no start, no socket") {
  Installation in(StorageKey::missing);
  const auto config = in.write_config("unix:cs.sock");
  in.hand_over();
  const auto err = refused(in, config, 1);
  CHECK_MESSAGE(err.find("the token holds no storage key 'lorakeep/storage'") != std::string::npos,
                err);
}

TEST_CASE("a wrong PIN: no start") {
  Installation in;
  const auto config = in.write_config("unix:cs.sock");
  std::ofstream(in.dir.path() / "pin") << "not-the-pin\n";
  in.hand_over();
  const auto err = refused(in, config, 1);
  CHECK_MESSAGE(err.find("CKR_PIN_INCORRECT") != std::string::npos, err);
  CHECK(err.find("not-the-pin") == std::string::npos);
}

TEST_CASE("a module that cannot be initialized: no start") {
  Installation in;
  auto config = in.write_config("unix:cs.sock");
  std::string yaml;
  {
    std::ifstream original(config);
    std::stringstream text;
    text << original.rdbuf();
    yaml = text.str();
  }
  std::string expected;
  if (in.token.kind() == TokenKind::nss) {
    // Without its reserved string NSS refuses C_Initialize.
    const auto at = yaml.find("    init_args: ");
    REQUIRE(at != std::string::npos);
    yaml.erase(at, yaml.find('\n', at) + 1 - at);
    expected = "C_Initialize failed: CKR_ARGUMENTS_BAD";
  } else {
    // SoftHSMv2 without its configuration file.
    const auto at = yaml.find("softhsm2.conf");
    REQUIRE(at != std::string::npos);
    yaml.replace(at, 13, "missing.conf");
    expected = "C_Initialize failed: CKR_";
  }
  std::ofstream(config) << yaml;
  in.hand_over();
  const auto err = refused(in, config, 1);
  CHECK_MESSAGE(err.find("lorakeep-cs: refusing to start:") != std::string::npos, err);
  CHECK_MESSAGE(err.find(expected) != std::string::npos, err);
}

TEST_CASE("configuration errors exit 2 with the key named") {
  Installation in;
  SUBCASE("an unknown key") {
    const auto config = in.write_config("unix:cs.sock", "  wrokers: 2\n");
    in.hand_over();
    const auto err = refused(in, config, 2);
    CHECK_MESSAGE(err.find("appliance.wrokers: unknown key") != std::string::npos, err);
  }
  SUBCASE("a user that does not exist") {
    auto config = in.write_config("unix:cs.sock");
    {
      std::ifstream original(config);
      std::stringstream text;
      text << original.rdbuf();
      std::string yaml = text.str();
      yaml.replace(yaml.find("user: nobody"), 12, "user: no-such-user-lorakeep");
      std::ofstream(config) << yaml;
    }
    in.hand_over();
    const auto err = refused(in, config, 2);
    CHECK_MESSAGE(
        err.find("appliance.user: there is no user 'no-such-user-lorakeep'") != std::string::npos,
        err);
  }
  SUBCASE("TCP with a cluster secret too short") {
    const auto config = in.write_config("127.0.0.1:0");
    std::ofstream(in.dir.path() / "cluster.secret") << "short\n";
    in.hand_over();
    const auto err = refused(in, config, 2);
    CHECK_MESSAGE(err.find("at least 16 bytes") != std::string::npos, err);
  }
}
