#include <doctest.h>

#include <array>
#include <cstdint>
#include <string>

#include "schemas/lorawan/types.hpp"

using namespace lorakeep;
using namespace lorakeep::lorawan;

TEST_SUITE("schemas") {
  TEST_CASE("JoinNonce accepts 0 .. 0xFFFFFF") {
    for (const std::uint32_t v : {0U, 1U, 0x123456U, 0xFFFFFEU, 0xFFFFFFU}) {
      const auto n = JoinNonce::create(v);
      REQUIRE(n.ok());
      CHECK(n->value() == v);
    }
  }

  TEST_CASE("JoinNonce rejects values above 24 bits as malformed") {
    for (const std::uint32_t v : {0x1000000U, 0x1234567U, 0xFFFFFFFFU}) {
      const auto n = JoinNonce::create(v);
      REQUIRE_FALSE(n.ok());
      CHECK(n.failure().status == Status::malformed);
      CHECK(n.failure().message.find("JoinNonce " + std::to_string(v)) == 0);
      CHECK(n.failure().message.find("24 bits") != std::string::npos);
    }
  }

  TEST_CASE("JoinNonce air is little-endian, 3 bytes") {
    CHECK(JoinNonce::create(0x010203).value().air() == std::array<std::uint8_t, 3>{3, 2, 1});
    CHECK(JoinNonce::create(0xFFFFFF).value().air() ==
          std::array<std::uint8_t, 3>{0xFF, 0xFF, 0xFF});
    CHECK(JoinNonce::create(0).value().air() == std::array<std::uint8_t, 3>{0, 0, 0});
    CHECK(JoinNonce::create(1).value() < JoinNonce::create(2).value());
  }

  TEST_CASE("DevNonce air is little-endian") {
    CHECK(DevNonce{0x0102}.air() == std::array<std::uint8_t, 2>{0x02, 0x01});
    CHECK(DevNonce{0xFF00}.air() == std::array<std::uint8_t, 2>{0x00, 0xFF});
    CHECK(DevNonce{1} < DevNonce{2});
    CHECK(DevNonce{5} == DevNonce{5});
  }

  TEST_CASE("MAC version spellings of The Things Stack and ChirpStack") {
    struct Case {
      const char* text;
      MacVersion version;
    };
    for (const Case c : {Case{"1.0", MacVersion::v1_0}, Case{"1.0.0", MacVersion::v1_0},
                         Case{"1.0.1", MacVersion::v1_0_1}, Case{"1.0.2", MacVersion::v1_0_2},
                         Case{"1.0.3", MacVersion::v1_0_3}, Case{"1.0.4", MacVersion::v1_0_4},
                         Case{"1.1", MacVersion::v1_1}, Case{"1.1.0", MacVersion::v1_1}}) {
      CAPTURE(c.text);
      const auto v = parse_mac_version(c.text);
      REQUIRE(v.ok());
      CHECK(*v == c.version);
    }
  }

  TEST_CASE("other MAC versions are malformed, named in the message") {
    for (const char* text : {"", "1", "1.", "1.0.5", "1.1.1", "1.2", "2.0", " 1.0", "1.0 ",
                             "1.0.3a", "v1.0.3", "1.00", "1.0.0.0", "1,0", "1.0.2-b"}) {
      CAPTURE(text);
      const auto v = parse_mac_version(text);
      REQUIRE_FALSE(v.ok());
      CHECK(v.failure().status == Status::malformed);
      CHECK(v.failure().message ==
            "MACVersion \"" + std::string(text) +
                "\" is not one of 1.0, 1.0.0, 1.0.1, 1.0.2, 1.0.3, 1.0.4, 1.1, 1.1.0");
    }
  }

  TEST_CASE("a long or binary MAC version is quoted bounded and escaped") {
    const std::string long_text(10000, 'A');
    const auto v = parse_mac_version(long_text);
    REQUIRE_FALSE(v.ok());
    CHECK(v.failure().message.find("\"AAAAAAAAAAAAAAAA\"...") != std::string::npos);
    CHECK(v.failure().message.size() < 120);

    const auto b = parse_mac_version(std::string_view("1.\0\n\"\x80", 6));
    REQUIRE_FALSE(b.ok());
    CHECK(b.failure().message.find(R"("1.\x00\x0A\x22\x80")") != std::string::npos);
  }

  TEST_CASE("mac_version_name and the version predicates") {
    CHECK(mac_version_name(MacVersion::v1_0) == "1.0");
    CHECK(mac_version_name(MacVersion::v1_0_1) == "1.0.1");
    CHECK(mac_version_name(MacVersion::v1_0_2) == "1.0.2");
    CHECK(mac_version_name(MacVersion::v1_0_3) == "1.0.3");
    CHECK(mac_version_name(MacVersion::v1_0_4) == "1.0.4");
    CHECK(mac_version_name(MacVersion::v1_1) == "1.1");
    for (const auto v : {MacVersion::v1_0, MacVersion::v1_0_1, MacVersion::v1_0_2,
                         MacVersion::v1_0_3, MacVersion::v1_0_4, MacVersion::v1_1}) {
      const auto round = parse_mac_version(mac_version_name(v));
      REQUIRE(round.ok());
      CHECK(*round == v);
    }
    CHECK(is_1_1(MacVersion::v1_1));
    CHECK_FALSE(is_1_1(MacVersion::v1_0_4));
    CHECK(dev_nonce_is_counter(MacVersion::v1_0_4));
    CHECK(dev_nonce_is_counter(MacVersion::v1_1));
    CHECK_FALSE(dev_nonce_is_counter(MacVersion::v1_0_3));
    CHECK_FALSE(dev_nonce_is_counter(MacVersion::v1_0));
  }

  TEST_CASE("DLSettings bit accessors") {
    CHECK_FALSE(DlSettings{0x00}.opt_neg());
    CHECK(DlSettings{0x80}.opt_neg());
    CHECK(DlSettings{0x70}.rx1_dr_offset() == 7);
    CHECK(DlSettings{0x70}.rx2_data_rate() == 0);
    CHECK(DlSettings{0x0F}.rx2_data_rate() == 15);
    CHECK(DlSettings{0x0F}.rx1_dr_offset() == 0);
    const DlSettings all{0xFF};
    CHECK(all.opt_neg());
    CHECK(all.rx1_dr_offset() == 7);
    CHECK(all.rx2_data_rate() == 15);
    const DlSettings mixed{0xA3};  // 1 010 0011
    CHECK(mixed.opt_neg());
    CHECK(mixed.rx1_dr_offset() == 2);
    CHECK(mixed.rx2_data_rate() == 3);
    // Every byte: the three fields put back together give the byte.
    for (unsigned b = 0; b < 256; ++b) {
      const DlSettings d{static_cast<std::uint8_t>(b)};
      const unsigned rebuilt = (d.opt_neg() ? 0x80U : 0U) |
                               (static_cast<unsigned>(d.rx1_dr_offset()) << 4U) | d.rx2_data_rate();
      CHECK(rebuilt == b);
    }
  }
}
