// The published join vectors in tests/data/lorawan-join-kat.json, as frames: every MIC
// input there must parse and re-encode to the same bytes.
#include <doctest.h>

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "schemas/lorawan/frames.hpp"
#include "test_hex.hpp"

using namespace lorakeep;
using namespace lorakeep::lorawan;
using lorakeep::test::hexof;
using lorakeep::test::unhex;
using lorakeep::test::upper;
using nlohmann::json;

namespace {

const json& vectors() {
  static const json data = [] {
    std::ifstream in(LORAKEEP_TEST_DATA_DIR "/lorawan-join-kat.json");
    REQUIRE_MESSAGE(in.good(), "cannot open " LORAKEEP_TEST_DATA_DIR "/lorawan-join-kat.json");
    return json::parse(in);
  }();
  return data;
}

std::string str(const json& v, const char* key) {
  return v.at(key).get<std::string>();
}

std::vector<std::uint8_t> concat(std::vector<std::uint8_t> a, const std::vector<std::uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::uint16_t be16(const std::string& hex) {
  const auto b = unhex(hex);
  REQUIRE(b.size() == 2);
  return static_cast<std::uint16_t>((b[0] << 8U) | b[1]);
}

std::uint32_t be24(const std::string& hex) {
  const auto b = unhex(hex);
  REQUIRE(b.size() == 3);
  return (static_cast<std::uint32_t>(b[0]) << 16U) | (static_cast<std::uint32_t>(b[1]) << 8U) |
         b[2];
}

}  // namespace

TEST_SUITE("schemas") {
  TEST_CASE("join-request MIC inputs parse and re-encode") {
    int parsed = 0;
    for (const auto& v : vectors().at("join_request_mic")) {
      CAPTURE(str(v, "source"));
      const auto input = unhex(str(v, "mic_input"));
      REQUIRE(input.size() == 19);
      const auto phy = concat(input, unhex(str(v, "mic")));
      const auto r = JoinRequest::parse(phy);
      if ((input[0] & 0x03U) != 0) {
        // A MIC test vector over arbitrary bytes, not a frame: its MHDR names major 1.
        REQUIRE_FALSE(r.ok());
        CHECK(r.failure().message.find("major version") != std::string::npos);
        continue;
      }
      REQUIRE(r.ok());
      ++parsed;
      CHECK(hexof(r->mic_input()) == hexof(input));
      CHECK(hexof(r->encode()) == hexof(phy));
      CHECK(hexof(r->mic) == upper(str(v, "mic")));
    }
    CHECK(parsed >= 3);
  }

  TEST_CASE("join flow: the join-request's fields, big-endian in the vector") {
    for (const auto& v : vectors().at("join_flow")) {
      CAPTURE(str(v, "source"));
      const auto phy = unhex(str(v, "join_request"));
      const auto r = JoinRequest::parse(phy);
      REQUIRE(r.ok());
      CHECK(r->join_eui == JoinEui::from_hex(str(v, "join_eui")).value());
      CHECK(r->dev_eui == DevEui::from_hex(str(v, "dev_eui")).value());
      CHECK(r->join_eui.hex() == upper(str(v, "join_eui")));
      CHECK(r->dev_eui.hex() == upper(str(v, "dev_eui")));
      CHECK(r->dev_nonce.value == be16(str(v, "dev_nonce")));
      CHECK(hexof(r->mic) == upper(str(v, "join_request")).substr(38));
      CHECK(hexof(r->encode()) == upper(str(v, "join_request")));

      const auto version = parse_mac_version(str(v, "mac_version"));
      REQUIRE(version.ok());
      CHECK(is_1_1(*version));

      // The join-accept fields the Join Server fills in, and the plaintext they make.
      const JoinAcceptFields fields{JoinNonce::create(be24(str(v, "join_nonce"))).value(),
                                    NetId::from_hex(str(v, "net_id")).value(),
                                    DevAddr::from_hex(str(v, "dev_addr")).value(),
                                    DlSettings{unhex(str(v, "dl_settings")).at(0)},
                                    RxDelay{unhex(str(v, "rx_delay")).at(0)},
                                    std::nullopt};
      const auto plain = fields.encode_without_mic();
      CHECK(hexof(plain) ==
            "20"
            "010000"
            "FFFF42"
            "FFFFFF42"
            "FF"
            "42");
      CHECK(plain.size() + 4 == unhex(str(v, "join_accept")).size());
      CHECK(fields.dl_settings.opt_neg());
      CHECK(fields.dl_settings.rx1_dr_offset() == 7);
      CHECK(fields.dl_settings.rx2_data_rate() == 15);

      const auto input =
          join_accept_mic_input_1_1(join_req_type_join, r->join_eui, r->dev_nonce, fields);
      CHECK(hexof(input) ==
            "FF"
            "FFFFFFFFFFFFFF42"
            "0000" +
                hexof(plain));
    }
  }

  TEST_CASE("rejoin-request MIC inputs parse and re-encode identically") {
    int count = 0;
    for (const auto& v : vectors().at("rejoin_mic")) {
      CAPTURE(str(v, "source"));
      const auto input = unhex(str(v, "mic_input"));
      const auto phy = concat(input, {0xDE, 0xAD, 0xBE, 0xEF});
      const auto r = RejoinRequest::parse(phy);
      REQUIRE(r.ok());
      ++count;
      CHECK(r->type == v.at("rejoin_type").get<int>());
      CHECK(r->net_id.has_value() == (r->type != 1));
      CHECK(r->join_eui.has_value() == (r->type == 1));
      CHECK(r->mic_input() == input);
      CHECK(r->encode() == phy);
      CHECK(r->dev_eui.hex() == "0102030405060708");
      CHECK(r->rj_count.value == 0x0102);
      if (r->type == 1) {
        CHECK(r->join_eui->hex() == "0102030405060708");
      } else {
        CHECK(r->net_id->hex() == "010203");
      }
      // The MIC from the vector round trips too.
      const auto signed_phy = concat(input, unhex(str(v, "mic")));
      const auto s = RejoinRequest::parse(signed_phy);
      REQUIRE(s.ok());
      CHECK(s->encode() == signed_phy);
    }
    CHECK(count == 3);
  }

  TEST_CASE("join-accept plaintexts round trip through the fields") {
    int count = 0;
    for (const auto& v : vectors().at("join_accept")) {
      CAPTURE(str(v, "source"));
      const auto plain = unhex(str(v, "plaintext_without_mic"));
      const auto mic = unhex(str(v, "mic"));
      const auto a = JoinAccept::parse_plaintext(concat(plain, mic));
      REQUIRE(a.ok());
      ++count;
      CHECK(a->fields.encode_without_mic() == plain);
      CHECK(hexof(a->mic) == hexof(mic));

      const auto prefix_key = "mic_prefix(JoinReqType|JoinEUI|DevNonce, on-air)";
      if (v.contains(prefix_key)) {
        const auto prefix = unhex(str(v, prefix_key));
        REQUIRE(prefix.size() == 11);
        const auto join_eui =
            JoinEui::from_air(std::span<const std::uint8_t>(prefix).subspan<1, 8>());
        const DevNonce nonce{static_cast<std::uint16_t>(prefix[9] | (prefix[10] << 8U))};
        CHECK(join_accept_mic_input_1_1(prefix[0], join_eui, nonce, a->fields) ==
              concat(prefix, plain));
      }
    }
    CHECK(count == 4);
  }

  TEST_CASE("every id in the vectors parses as its type") {
    int ids = 0;
    for (const auto& group : {"session_keys", "js_keys", "join_flow"}) {
      for (const auto& v : vectors().at(group)) {
        if (v.contains("join_eui")) {
          CHECK(JoinEui::from_hex(str(v, "join_eui")).value().hex() == upper(str(v, "join_eui")));
          ++ids;
        }
        if (v.contains("dev_eui")) {
          CHECK(DevEui::from_hex(str(v, "dev_eui")).value().hex() == upper(str(v, "dev_eui")));
          ++ids;
        }
        if (v.contains("net_id")) {
          CHECK(NetId::from_hex(str(v, "net_id")).value().hex() == upper(str(v, "net_id")));
          ++ids;
        }
        if (v.contains("join_nonce")) {
          CHECK(JoinNonce::create(be24(str(v, "join_nonce"))).ok());
          ++ids;
        }
      }
    }
    CHECK(ids > 10);
  }
}
