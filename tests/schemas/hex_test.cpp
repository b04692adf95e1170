#include <doctest.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "schemas/lorawan/types.hpp"
#include "test_hex.hpp"

using namespace lorakeep;
using namespace lorakeep::lorawan;
using lorakeep::test::hexof;
using lorakeep::test::unhex;

namespace {

// The message for a hex value of the wrong number of bytes.
std::string wrong_size(std::string_view what, std::size_t size, std::size_t got) {
  return std::string(what) + " must be " + std::to_string(size) + " bytes of hex, got " +
         std::to_string(got);
}

// Every accepted spelling of one value, and its canonical form.
template <class Id>
void check_spellings(const std::string& upper_hex) {
  std::string lower = upper_hex;
  for (auto& c : lower) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  }
  std::string mixed = upper_hex;
  for (std::size_t i = 0; i < mixed.size(); i += 2)
    mixed[i] = lower[i];
  for (const std::string& text :
       {upper_hex, lower, mixed, "0x" + upper_hex, "0X" + upper_hex, "0x" + lower}) {
    CAPTURE(text);
    const auto id = Id::from_hex(text);
    REQUIRE(id.ok());
    CHECK(id->hex() == upper_hex);
    CHECK(hexof(id->bytes()) == upper_hex);
  }
}

// Every wrong length from 0 to N + 4 bytes (with and without 0x), and odd digit counts.
template <class Id>
void check_wrong_lengths(std::string_view what) {
  for (std::size_t n = 0; n <= Id::size + 4; ++n) {
    if (n == Id::size) continue;
    const std::string text(2 * n, 'a');
    for (const std::string& spelled : {text, "0x" + text}) {
      CAPTURE(spelled);
      const auto id = Id::from_hex(spelled);
      REQUIRE_FALSE(id.ok());
      CHECK(id.failure().status == Status::malformed);
      CHECK(id.failure().message == wrong_size(what, Id::size, n));
    }
  }
  for (std::size_t digits = 1; digits <= 2 * Id::size + 3; digits += 2) {
    const auto id = Id::from_hex(std::string(digits, '1'));
    REQUIRE_FALSE(id.ok());
    CHECK(id.failure().message == std::string(what) + " must be " + std::to_string(Id::size) +
                                      " bytes of hex, got " + std::to_string(digits) +
                                      " hex digits");
  }
}

template <class Id>
void check_non_hex(std::string_view what) {
  const std::string good(2 * Id::size, '0');
  for (const char bad : {'g', 'G', 'x', ' ', '-', ':', '.', '\0', '\n', '\xff'}) {
    for (std::size_t pos = 0; pos < good.size(); ++pos) {
      if (bad == 'x' && pos == 1) continue;  // "0x..." is a prefix (and then too short)
      std::string text = good;
      text[pos] = bad;
      CAPTURE(text);
      const auto id = Id::from_hex(text);
      REQUIRE_FALSE(id.ok());
      CHECK(id.failure().status == Status::malformed);
      CHECK(id.failure().message.find(std::string(what) + " must be") == 0);
      CHECK(id.failure().message.find(" at position " + std::to_string(pos)) != std::string::npos);
    }
  }
  // The position counts the 0x prefix; printable characters are quoted, others are not raw.
  const auto id = Id::from_hex("0x0G" + std::string(2 * Id::size - 2, '0'));
  REQUIRE_FALSE(id.ok());
  CHECK(id.failure().message == std::string(what) + " must be " + std::to_string(Id::size) +
                                    " bytes of hex, found 'G' at position 3");
  const auto ctl = Id::from_hex("\x01" + std::string(2 * Id::size - 1, '0'));
  REQUIRE_FALSE(ctl.ok());
  CHECK(ctl.failure().message.find("found byte 0x01 at position 0") != std::string::npos);
  // Only one prefix, only at the start, only with a zero.
  CHECK_FALSE(Id::from_hex("0x0x" + std::string(2 * Id::size, '0')).ok());
  CHECK_FALSE(Id::from_hex("x" + std::string(2 * Id::size, '0')).ok());
  CHECK_FALSE(Id::from_hex(std::string(2 * Id::size, '0') + "h").ok());
  CHECK_FALSE(Id::from_hex(" " + std::string(2 * Id::size, '0')).ok());
}

}  // namespace

TEST_SUITE("schemas") {
  TEST_CASE("the tags name the Backend Interfaces fields") {
    CHECK(JoinEuiTag::name() == "JoinEUI");
    CHECK(DevEuiTag::name() == "DevEUI");
    CHECK(NetIdTag::name() == "NetID");
    CHECK(DevAddrTag::name() == "DevAddr");
    CHECK(JoinEui::size == 8);
    CHECK(DevEui::size == 8);
    CHECK(NetId::size == 3);
    CHECK(DevAddr::size == 4);
  }

  TEST_CASE("hex in upper case, lower case and with 0x") {
    check_spellings<JoinEui>("70B3D57ED0000000");
    check_spellings<DevEui>("0102030405060708");
    check_spellings<DevEui>("ABCDEFABCDEF0189");
    check_spellings<NetId>("42FFFF");
    check_spellings<NetId>("00000A");
    check_spellings<DevAddr>("01020304");
    check_spellings<DevAddr>("FEDCBA98");
  }

  TEST_CASE("hex of the wrong length is malformed and says so") {
    check_wrong_lengths<JoinEui>("JoinEUI");
    check_wrong_lengths<DevEui>("DevEUI");
    check_wrong_lengths<NetId>("NetID");
    check_wrong_lengths<DevAddr>("DevAddr");
    const auto seven = DevEui::from_hex("01020304050607");
    REQUIRE_FALSE(seven.ok());
    CHECK(seven.failure().message == "DevEUI must be 8 bytes of hex, got 7");
    const auto bare = NetId::from_hex("0x");
    REQUIRE_FALSE(bare.ok());
    CHECK(bare.failure().message == "NetID must be 3 bytes of hex, got 0");
  }

  TEST_CASE("non-hex characters are malformed and located") {
    check_non_hex<JoinEui>("JoinEUI");
    check_non_hex<DevEui>("DevEUI");
    check_non_hex<NetId>("NetID");
    check_non_hex<DevAddr>("DevAddr");
  }

  TEST_CASE("a huge input gives a short message") {
    const auto id = DevEui::from_hex(std::string(1 << 20, 'F'));
    REQUIRE_FALSE(id.ok());
    CHECK(id.failure().message == "DevEUI must be 8 bytes of hex, got 524288");
  }

  TEST_CASE("air is the byte-reversed form") {
    const auto eui = JoinEui::from_hex("0102030405060708").value();
    CHECK(hexof(eui.air()) == "0807060504030201");
    const auto net = NetId::from_hex("C0FFEE").value();
    CHECK(hexof(net.air()) == "EEFFC0");
    const auto addr = DevAddr::from_hex("26011BDA").value();
    CHECK(hexof(addr.air()) == "DA1B0126");

    const std::array<std::uint8_t, 8> air{8, 7, 6, 5, 4, 3, 2, 1};
    const auto from_air = DevEui::from_air(air);
    CHECK(from_air.hex() == "0102030405060708");
    CHECK(from_air.air() == air);
    const auto from_bytes = DevEui::from_bytes(air);
    CHECK(from_bytes.hex() == "0807060504030201");
    CHECK(from_bytes.bytes() == air);
  }

  TEST_CASE("from_uint and to_uint are big-endian, N bytes") {
    CHECK(DevEui::from_uint(0x0102030405060708ULL).hex() == "0102030405060708");
    CHECK(DevEui::from_uint(0xFFFFFFFFFFFFFFFFULL).to_uint() == 0xFFFFFFFFFFFFFFFFULL);
    CHECK(NetId::from_uint(0x000013).hex() == "000013");
    CHECK(NetId::from_uint(0x12345678).hex() == "345678");  // higher bytes dropped
    CHECK(DevAddr::from_uint(0x26011BDA).to_uint() == 0x26011BDA);
    CHECK(JoinEui::from_hex("70B3D57ED0000000").value().to_uint() == 0x70B3D57ED0000000ULL);
    CHECK(JoinEui::from_uint(0).hex() == "0000000000000000");
  }

  TEST_CASE("ids compare by their big-endian value") {
    CHECK(DevEui::from_uint(1) < DevEui::from_uint(2));
    CHECK(DevEui::from_uint(0x0100) > DevEui::from_uint(0x00FF));
    CHECK(DevEui::from_hex("0xabcdef0123456789").value() ==
          DevEui::from_hex("ABCDEF0123456789").value());
    CHECK(NetId{} == NetId::from_uint(0));
  }

  TEST_CASE("normalize_hex gives canonical hex or a clear failure") {
    const auto n = normalize_hex("0xabCD01", 3, "NetID");
    REQUIRE(n.ok());
    CHECK(*n == "ABCD01");
    const auto one = normalize_hex("0f", 1, "DLSettings");
    REQUIRE(one.ok());
    CHECK(*one == "0F");
    const auto bad = normalize_hex("0f0f", 1, "DLSettings");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.failure().status == Status::malformed);
    CHECK(bad.failure().message == "DLSettings must be 1 byte of hex, got 2");
    const auto empty = normalize_hex("", 0, "SenderToken");
    REQUIRE(empty.ok());
    CHECK(empty->empty());
    const auto nonhex = normalize_hex("zz", 1, "X");
    REQUIRE_FALSE(nonhex.ok());
    CHECK(nonhex.failure().message == "X must be 1 byte of hex, found 'z' at position 0");
  }

  TEST_CASE("decode_hex decodes any whole number of bytes") {
    const auto d = decode_hex("0x00ff7F80", "PHYPayload");
    REQUIRE(d.ok());
    CHECK(*d == std::string("\x00\xff\x7f\x80", 4));
    const auto none = decode_hex("", "PHYPayload");
    REQUIRE(none.ok());
    CHECK(none->empty());
    const auto prefix_only = decode_hex("0X", "PHYPayload");
    REQUIRE(prefix_only.ok());
    CHECK(prefix_only->empty());
    const auto odd = decode_hex("abc", "PHYPayload");
    REQUIRE_FALSE(odd.ok());
    CHECK(odd.failure().status == Status::malformed);
    CHECK(odd.failure().message == "PHYPayload must be whole bytes of hex, got 3 hex digits");
    const auto bad = decode_hex("00q0", "PHYPayload");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.failure().message ==
          "PHYPayload must be whole bytes of hex, found 'q' at position 2");
    const std::string all = [] {
      std::string s;
      for (unsigned b = 0; b < 256; ++b)
        s += static_cast<char>(b);
      return s;
    }();
    const std::vector<std::uint8_t> all_bytes(all.begin(), all.end());
    const auto every = decode_hex(hexof(all_bytes), "x");
    REQUIRE(every.ok());
    CHECK(*every == all);
  }

  TEST_CASE("to_hex is upper case") {
    CHECK(to_hex({}).empty());
    const std::vector<std::uint8_t> bytes = unhex("00abcdef0f10ff");
    CHECK(to_hex(bytes) == "00ABCDEF0F10FF");
  }

  TEST_CASE("CFList is exactly 16 bytes of hex") {
    const std::string hex = "184F84E85684B85E84886684586E8400";
    const auto cf = CfList::from_hex(hex);
    REQUIRE(cf.ok());
    CHECK(hexof(cf->bytes) == hex);
    const auto lower = CfList::from_hex("0x" + std::string(32, 'a'));
    REQUIRE(lower.ok());
    CHECK(hexof(lower->bytes) == std::string(32, 'A'));
    for (std::size_t n = 0; n <= 20; ++n) {
      if (n == 16) continue;
      const auto wrong = CfList::from_hex(std::string(2 * n, '0'));
      REQUIRE_FALSE(wrong.ok());
      CHECK(wrong.failure().status == Status::malformed);
      CHECK(wrong.failure().message == wrong_size("CFList", 16, n));
    }
    CHECK_FALSE(CfList::from_hex(std::string(31, '0') + "g").ok());
  }
}
