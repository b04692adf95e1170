#include <doctest.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "schemas/lorawan/frames.hpp"
#include "test_hex.hpp"

using namespace lorakeep;
using namespace lorakeep::lorawan;
using lorakeep::test::hexof;
using lorakeep::test::unhex;

namespace {

// Frames are built in vectors of exactly their size so that ASan catches any read past
// the end.
std::vector<std::uint8_t> frame(std::uint8_t mhdr, std::size_t size, std::uint8_t fill = 0x5A) {
  std::vector<std::uint8_t> f(size, fill);
  if (size > 0) f[0] = mhdr;
  return f;
}

template <std::size_t N>
std::vector<std::uint8_t> as_vector(const std::array<std::uint8_t, N>& bytes) {
  return {bytes.begin(), bytes.end()};
}

constexpr std::string_view join_request_hex =
    "00"
    "0807060504030201"
    "1817161514131211"
    "3412"
    "A1B2C3D4";
// Type 0: NetID 0x030201, DevEUI 1112131415161718, RJcount0 0x3412.
constexpr std::string_view rejoin_0_hex =
    "C000"
    "010203"
    "1817161514131211"
    "1234"
    "A1B2C3D4";
// Type 1: JoinEUI 0102030405060708, DevEUI 1112131415161718, RJcount1 0x3412.
constexpr std::string_view rejoin_1_hex =
    "C001"
    "0807060504030201"
    "1817161514131211"
    "1234"
    "A1B2C3D4";

JoinAcceptFields sample_fields() {
  JoinAcceptFields f{JoinNonce::create(0x010203).value(),
                     NetId::from_uint(0x112233),
                     DevAddr::from_uint(0x26011BDA),
                     DlSettings{0x85},
                     RxDelay{0x01},
                     std::nullopt};
  return f;
}

}  // namespace

TEST_SUITE("schemas") {
  // --- join-request ---

  TEST_CASE("join-request fields are little-endian on air") {
    const auto phy = unhex(join_request_hex);
    const auto r = JoinRequest::parse(phy);
    REQUIRE(r.ok());
    CHECK(r->join_eui.hex() == "0102030405060708");
    CHECK(r->dev_eui.hex() == "1112131415161718");
    CHECK(r->dev_nonce.value == 0x1234);
    CHECK(hexof(r->mic) == "A1B2C3D4");
    CHECK(r->mhdr_rfu == 0);
    CHECK(hexof(r->mic_input()) == join_request_hex.substr(0, 38));
    CHECK(hexof(r->encode()) == join_request_hex);
  }

  TEST_CASE("join-request encode is parse's inverse") {
    JoinRequest r;
    r.join_eui = JoinEui::from_hex("70B3D57ED0000000").value();
    r.dev_eui = DevEui::from_hex("0004A30B001C0530").value();
    r.dev_nonce = DevNonce{0xBEEF};
    r.mic = {1, 2, 3, 4};
    const auto phy = r.encode();
    CHECK(hexof(phy) ==
          "00"
          "000000D07ED5B370"
          "30051C000BA30400"
          "EFBE"
          "01020304");
    const auto back = JoinRequest::parse(phy);
    REQUIRE(back.ok());
    CHECK(back->join_eui == r.join_eui);
    CHECK(back->dev_eui == r.dev_eui);
    CHECK(back->dev_nonce == r.dev_nonce);
    CHECK(back->mic == r.mic);
  }

  TEST_CASE("join-request of every wrong length is malformed") {
    for (std::size_t n = 0; n <= 40; ++n) {
      if (n == JoinRequest::size) continue;
      CAPTURE(n);
      const auto r = JoinRequest::parse(frame(mhdr_join_request, n));
      REQUIRE_FALSE(r.ok());
      CHECK(r.failure().status == Status::malformed);
      CHECK(r.failure().message == "join-request must be 23 bytes, got " + std::to_string(n));
    }
  }

  TEST_CASE("join-request with another MType is malformed") {
    for (unsigned mtype = 1; mtype < 8; ++mtype) {
      for (const std::size_t n : {std::size_t{1}, std::size_t{17}, std::size_t{23}}) {
        const auto r = JoinRequest::parse(frame(static_cast<std::uint8_t>(mtype << 5U), n));
        REQUIRE_FALSE(r.ok());
        CHECK(r.failure().status == Status::malformed);
        CHECK(r.failure().message == "MType " + std::to_string(mtype) + " is not a join-request");
      }
    }
  }

  TEST_CASE("join-request with another major version is malformed") {
    for (unsigned major = 1; major < 4; ++major) {
      const auto r = JoinRequest::parse(frame(static_cast<std::uint8_t>(major), 23));
      REQUIRE_FALSE(r.ok());
      CHECK(r.failure().status == Status::malformed);
      CHECK(r.failure().message == "join-request has major version " + std::to_string(major) +
                                       "; only 0 (LoRaWAN R1) is defined");
    }
  }

  TEST_CASE("join-request RFU bits are accepted and kept for the MIC") {
    for (unsigned rfu = 1; rfu < 8; ++rfu) {
      auto phy = unhex(join_request_hex);
      phy[0] = static_cast<std::uint8_t>(rfu << 2U);
      const auto r = JoinRequest::parse(phy);
      REQUIRE(r.ok());
      CHECK(r->mhdr_rfu == phy[0]);
      CHECK(r->mic_input()[0] == phy[0]);
      CHECK(as_vector(r->encode()) == phy);
    }
  }

  // --- rejoin-request ---

  TEST_CASE("rejoin-request type 0 and 2 fields") {
    for (const std::uint8_t type : {std::uint8_t{0}, std::uint8_t{2}}) {
      auto phy = unhex(rejoin_0_hex);
      phy[1] = type;
      const auto r = RejoinRequest::parse(phy);
      REQUIRE(r.ok());
      CHECK(r->type == type);
      REQUIRE(r->net_id.has_value());
      CHECK(r->net_id->hex() == "030201");
      CHECK_FALSE(r->join_eui.has_value());
      CHECK(r->dev_eui.hex() == "1112131415161718");
      CHECK(r->rj_count.value == 0x3412);
      CHECK(hexof(r->mic) == "A1B2C3D4");
      const std::vector<std::uint8_t> input(phy.begin(), phy.end() - 4);
      CHECK(r->mic_input() == input);
      CHECK(r->encode() == phy);
    }
  }

  TEST_CASE("rejoin-request type 1 fields") {
    const auto phy = unhex(rejoin_1_hex);
    const auto r = RejoinRequest::parse(phy);
    REQUIRE(r.ok());
    CHECK(r->type == 1);
    REQUIRE(r->join_eui.has_value());
    CHECK(r->join_eui->hex() == "0102030405060708");
    CHECK_FALSE(r->net_id.has_value());
    CHECK(r->dev_eui.hex() == "1112131415161718");
    CHECK(r->rj_count.value == 0x3412);
    CHECK(hexof(r->mic_input()) == rejoin_1_hex.substr(0, 40));
    CHECK(r->encode() == phy);
  }

  TEST_CASE("rejoin-request of every wrong length is malformed") {
    for (std::size_t n = 0; n <= 40; ++n) {
      CAPTURE(n);
      if (n < 2) {
        const auto r = RejoinRequest::parse(frame(mhdr_rejoin_request, n));
        REQUIRE_FALSE(r.ok());
        CHECK(r.failure().message ==
              "rejoin-request must be 19 or 24 bytes, got " + std::to_string(n));
        continue;
      }
      for (const std::uint8_t type : {std::uint8_t{0}, std::uint8_t{1}, std::uint8_t{2}}) {
        const std::size_t right = type == 1 ? 24 : 19;
        if (n == right) continue;
        auto phy = frame(mhdr_rejoin_request, n);
        phy[1] = type;
        const auto r = RejoinRequest::parse(phy);
        REQUIRE_FALSE(r.ok());
        CHECK(r.failure().status == Status::malformed);
        CHECK(r.failure().message == "rejoin-request type " + std::to_string(type) + " must be " +
                                         std::to_string(right) + " bytes, got " +
                                         std::to_string(n));
      }
    }
  }

  TEST_CASE("rejoin types 3 to 255 are not defined") {
    for (unsigned type = 3; type < 256; ++type) {
      for (const std::size_t n : {std::size_t{2}, std::size_t{19}, std::size_t{24}}) {
        auto phy = frame(mhdr_rejoin_request, n);
        phy[1] = static_cast<std::uint8_t>(type);
        const auto r = RejoinRequest::parse(phy);
        REQUIRE_FALSE(r.ok());
        CHECK(r.failure().status == Status::malformed);
        CHECK(r.failure().message == "rejoin type " + std::to_string(type) + " is not defined");
      }
    }
  }

  TEST_CASE("rejoin-request with another MType or major version is malformed") {
    for (unsigned mtype = 0; mtype < 8; ++mtype) {
      if (mtype == 6) continue;
      const auto r = RejoinRequest::parse(frame(static_cast<std::uint8_t>(mtype << 5U), 19, 0));
      REQUIRE_FALSE(r.ok());
      CHECK(r.failure().message == "MType " + std::to_string(mtype) + " is not a rejoin-request");
    }
    for (unsigned major = 1; major < 4; ++major) {
      const auto r = RejoinRequest::parse(frame(static_cast<std::uint8_t>(0xC0 | major), 19, 0));
      REQUIRE_FALSE(r.ok());
      CHECK(r.failure().message == "rejoin-request has major version " + std::to_string(major) +
                                       "; only 0 (LoRaWAN R1) is defined");
    }
    auto phy = unhex(rejoin_0_hex);
    phy[0] = 0xC0 | 0x14;  // RFU bits: accepted and kept
    const auto r = RejoinRequest::parse(phy);
    REQUIRE(r.ok());
    CHECK(r->encode() == phy);
  }

  TEST_CASE("rejoin-request encode of inconsistent fields is empty") {
    RejoinRequest r;
    r.type = 0;  // no NetID
    CHECK(r.mic_input().empty());
    CHECK(r.encode().empty());
    r.type = 1;
    r.net_id = NetId::from_uint(1);  // type 1 needs a JoinEUI
    CHECK(r.encode().empty());
    r.type = 3;
    r.join_eui = JoinEui::from_uint(1);
    CHECK(r.encode().empty());
    r.type = 1;
    CHECK(r.encode().size() == RejoinRequest::size_type_1);
    r.type = 2;
    CHECK(r.encode().size() == RejoinRequest::size_type_0_2);
  }

  // --- join-accept ---

  TEST_CASE("join-accept encode_without_mic: 13 bytes, little-endian fields") {
    const auto f = sample_fields();
    CHECK(hexof(f.encode_without_mic()) ==
          "20"
          "030201"
          "332211"
          "DA1B0126"
          "85"
          "01");
  }

  TEST_CASE("join-accept encode_without_mic with a CFList: 29 bytes, CFList as given") {
    auto f = sample_fields();
    f.cf_list = CfList::from_hex("184F84E85684B85E84886684586E8400").value();
    const auto plain = f.encode_without_mic();
    CHECK(plain.size() == 29);
    CHECK(hexof(plain) ==
          "20030201332211DA1B01268501"
          "184F84E85684B85E84886684586E8400");
  }

  TEST_CASE("join-accept parse_plaintext is encode's inverse") {
    for (const bool with_cf : {false, true}) {
      auto f = sample_fields();
      if (with_cf) f.cf_list = CfList::from_hex(std::string(30, '1') + "00").value();
      auto plain = f.encode_without_mic();
      plain.insert(plain.end(), {0xDE, 0xAD, 0xBE, 0xEF});
      const auto a = JoinAccept::parse_plaintext(plain);
      REQUIRE(a.ok());
      CHECK(a->fields.join_nonce == f.join_nonce);
      CHECK(a->fields.net_id == f.net_id);
      CHECK(a->fields.dev_addr == f.dev_addr);
      CHECK(a->fields.dl_settings.byte == f.dl_settings.byte);
      CHECK(a->fields.rx_delay.byte == f.rx_delay.byte);
      CHECK(a->fields.cf_list.has_value() == with_cf);
      if (with_cf) CHECK(a->fields.cf_list->bytes == f.cf_list->bytes);
      CHECK(hexof(a->mic) == "DEADBEEF");
      CHECK(a->fields.encode_without_mic() == f.encode_without_mic());
    }
  }

  TEST_CASE("join-accept of every wrong length is malformed") {
    for (std::size_t n = 0; n <= 40; ++n) {
      if (n == 17 || n == 33) continue;
      CAPTURE(n);
      const auto a = JoinAccept::parse_plaintext(frame(mhdr_join_accept, n));
      REQUIRE_FALSE(a.ok());
      CHECK(a.failure().status == Status::malformed);
      CHECK(a.failure().message == "join-accept must be 17 or 33 bytes, got " + std::to_string(n));
    }
  }

  TEST_CASE("join-accept with another MType or major version is malformed") {
    for (unsigned mtype = 0; mtype < 8; ++mtype) {
      if (mtype == 1) continue;
      const auto a = JoinAccept::parse_plaintext(frame(static_cast<std::uint8_t>(mtype << 5U), 17));
      REQUIRE_FALSE(a.ok());
      CHECK(a.failure().message == "MType " + std::to_string(mtype) + " is not a join-accept");
    }
    for (unsigned major = 1; major < 4; ++major) {
      const auto a =
          JoinAccept::parse_plaintext(frame(static_cast<std::uint8_t>(0x20 | major), 33));
      REQUIRE_FALSE(a.ok());
      CHECK(a.failure().message == "join-accept has major version " + std::to_string(major) +
                                       "; only 0 (LoRaWAN R1) is defined");
    }
  }

  TEST_CASE("1.1 join-accept MIC input layout") {
    const auto f = sample_fields();
    const auto input = join_accept_mic_input_1_1(
        join_req_type_join, JoinEui::from_hex("0102030405060708").value(), DevNonce{0xABCD}, f);
    CHECK(hexof(input) ==
          "FF"
          "0807060504030201"
          "CDAB"
          "20030201332211DA1B01268501");
    const auto rejoin = join_accept_mic_input_1_1(2, JoinEui::from_uint(0), DevNonce{1}, f);
    CHECK(rejoin.size() == 1 + 8 + 2 + 13);
    CHECK(rejoin[0] == 2);
  }

  TEST_CASE("every MHDR and length: parsers fail cleanly or succeed consistently") {
    for (unsigned mhdr = 0; mhdr < 256; ++mhdr) {
      for (std::size_t n = 0; n <= 40; ++n) {
        for (const std::uint8_t second : {std::uint8_t{0}, std::uint8_t{1}, std::uint8_t{2}}) {
          auto phy = frame(static_cast<std::uint8_t>(mhdr), n, 0x33);
          if (n > 1) phy[1] = second;
          const auto jr = JoinRequest::parse(phy);
          if (jr.ok()) {
            CHECK(as_vector(jr->encode()) == phy);
          } else {
            CHECK(jr.failure().status == Status::malformed);
          }
          const auto rj = RejoinRequest::parse(phy);
          if (rj.ok()) {
            CHECK(rj->encode() == phy);
          } else {
            CHECK(rj.failure().status == Status::malformed);
          }
          const auto ja = JoinAccept::parse_plaintext(phy);
          if (ja.ok()) {
            CHECK(ja->fields.encode_without_mic().size() + 4 == n);
          } else {
            CHECK(ja.failure().status == Status::malformed);
          }
        }
      }
    }
  }
}
