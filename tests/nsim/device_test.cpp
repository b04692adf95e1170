// tools/nsim's device side against every published vector in tests/data/lorawan-join-kat.json
// (RFC 4493, RFC 3394, The Things Stack, ChirpStack, lora-packet): the simulator is what
// lorakeepctl join-test and bench trust to judge the Join Server, so it is checked against
// numbers nobody here computed.
#include <doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "token_fixture.hpp"
#include "tools/nsim/device.hpp"

using namespace lorakeep;
using namespace lorakeep::nsim;
using nlohmann::json;

namespace {

json vectors() {
  std::ifstream in(test::data_path("lorawan-join-kat.json"));
  REQUIRE(in.good());
  return json::parse(in);
}

Bytes from_hex(const std::string& text) {
  auto decoded = lorawan::decode_hex(text, "vector");
  REQUIRE(decoded.ok());
  return Bytes(decoded->begin(), decoded->end());
}

Key key(const std::string& text) {
  const Bytes b = from_hex(text);
  auto k = Key::from(b);
  REQUIRE(k.has_value());
  return *k;
}

std::string hex_of(const Key& k) {
  return lorawan::to_hex(k.reveal());
}

/// The first 4 bytes of a CMAC, as a LoRaWAN MIC, in hex.
std::string mic_hex(const Block& mac) {
  return lorawan::to_hex(std::span(mac).first(4));
}

std::uint32_t u24(const std::string& hex) {
  return static_cast<std::uint32_t>(std::stoul(hex, nullptr, 16));
}
std::uint16_t u16(const std::string& hex) {
  return static_cast<std::uint16_t>(std::stoul(hex, nullptr, 16));
}

template <class Id>
Id id(const std::string& hex) {
  auto v = Id::from_hex(hex);
  REQUIRE(v.ok());
  return *v;
}

}  // namespace

TEST_CASE("AES-CMAC: RFC 4493 vectors") {
  const json all = vectors()["cmac"];  // a copy: the document is a temporary
  for (const auto& v : all) {
    const std::string vector_text = v.dump();
    CAPTURE(vector_text);
    const Block mac = aes_cmac(key(v["key"]), from_hex(v["message"]));
    CHECK(lorawan::to_hex(mac) == v["cmac"].get<std::string>());
  }
}

TEST_CASE("RFC 3394: wrap and unwrap vectors, and a wrong KEK refused") {
  const json all = vectors()["key_wrap"];  // a copy: the document is a temporary
  for (const auto& v : all) {
    const std::string vector_text = v.dump();
    CAPTURE(vector_text);
    const Key kek = key(v["kek"]);
    const Key plain = key(v["key"]);
    CHECK(lorawan::to_hex(rfc3394_wrap(kek, plain)) == v["wrapped"].get<std::string>());
    const auto opened = rfc3394_unwrap(kek, from_hex(v["wrapped"]));
    REQUIRE(opened.has_value());
    CHECK(*opened == plain);
    Bytes damaged = from_hex(v["wrapped"]);
    damaged[5] ^= 0x01;
    CHECK_FALSE(rfc3394_unwrap(kek, damaged).has_value());
    CHECK_FALSE(rfc3394_unwrap(key("00000000000000000000000000000000"), from_hex(v["wrapped"]))
                    .has_value());
    CHECK_FALSE(rfc3394_unwrap(kek, Bytes(23, 0)).has_value());
  }
}

TEST_CASE("session keys: The Things Stack, ChirpStack and lora-packet vectors") {
  const auto all = vectors()["session_keys"];
  REQUIRE(all.size() >= 9);
  for (const auto& v : all) {
    const std::string vector_text = v.dump();
    CAPTURE(vector_text);
    Device d;
    AcceptFields a;
    a.join_nonce = u24(v["join_nonce"]);
    const std::uint16_t dn = u16(v["dev_nonce"]);
    const auto& expect = v["expect"];
    if (v["lorawan"] == "1.0") {
      d.mac_version = lorawan::MacVersion::v1_0_2;
      d.app_key = key(v["nwk_key"]);
      a.net_id = id<lorawan::NetId>(v["net_id"]);
      const SessionKeys k = derive_session_keys(d, a, dn);
      CHECK_FALSE(k.lorawan_1_1);
      if (expect.contains("NwkSKey")) CHECK(hex_of(k.nwk_s_key) == expect["NwkSKey"]);
      if (expect.contains("AppSKey")) CHECK(hex_of(k.app_s_key) == expect["AppSKey"]);
    } else {
      d.mac_version = lorawan::MacVersion::v1_1;
      d.nwk_key = key(v["nwk_key"]);
      d.app_key = v.contains("app_key") ? key(v["app_key"]) : *d.nwk_key;
      d.join_eui = id<lorawan::JoinEui>(v["join_eui"]);
      a.dl_settings = 0x80;
      const SessionKeys k = derive_session_keys(d, a, dn);
      CHECK(k.lorawan_1_1);
      CHECK(hex_of(k.f_nwk_s_int_key) == expect["FNwkSIntKey"]);
      CHECK(hex_of(k.s_nwk_s_int_key) == expect["SNwkSIntKey"]);
      CHECK(hex_of(k.nwk_s_enc_key) == expect["NwkSEncKey"]);
      if (v.contains("app_key")) CHECK(hex_of(k.app_s_key) == expect["AppSKey"]);
    }
  }
}

TEST_CASE("a 1.1 device without OptNeg derives 1.0-style, both keys from the NwkKey") {
  // LoRaWAN 1.1 §6.2.3; the 1.0 vector of The Things Stack with its key as the NwkKey.
  const auto all = vectors()["session_keys"];
  const auto& v = all[1];
  REQUIRE(v["lorawan"] == "1.0");
  Device d;
  d.mac_version = lorawan::MacVersion::v1_1;
  d.nwk_key = key(v["nwk_key"]);
  d.app_key = key("000102030405060708090A0B0C0D0E0F");  // not used without OptNeg
  AcceptFields a;
  a.join_nonce = u24(v["join_nonce"]);
  a.net_id = id<lorawan::NetId>(v["net_id"]);
  a.dl_settings = 0x00;
  const SessionKeys k = derive_session_keys(d, a, u16(v["dev_nonce"]));
  CHECK_FALSE(k.lorawan_1_1);
  CHECK(hex_of(k.nwk_s_key) == v["expect"]["NwkSKey"]);
  CHECK(hex_of(k.app_s_key) == v["expect"]["AppSKey"]);
}

TEST_CASE("JS keys: The Things Stack and lora-packet vectors") {
  const json all = vectors()["js_keys"];  // a copy: the document is a temporary
  for (const auto& v : all) {
    const std::string vector_text = v.dump();
    CAPTURE(vector_text);
    const auto dev_eui = id<lorawan::DevEui>(v["dev_eui"]);
    CHECK(hex_of(js_int_key(key(v["nwk_key"]), dev_eui)) == v["JSIntKey"]);
    CHECK(hex_of(js_enc_key(key(v["nwk_key"]), dev_eui)) == v["JSEncKey"]);
  }
}

TEST_CASE("join-request MIC vectors") {
  const json all = vectors()["join_request_mic"];  // a copy: the document is a temporary
  for (const auto& v : all) {
    const std::string vector_text = v.dump();
    CAPTURE(vector_text);
    const Bytes input = from_hex(v["mic_input"]);
    REQUIRE(input.size() == 19);
    CHECK(mic_hex(aes_cmac(key(v["key"]), input)) == v["mic"]);
    if (input[0] != 0x00) continue;  // a MIC vector over bytes that are no join-request
    // The same bytes as the device builds them.
    Device d;
    d.app_key = key(v["key"]);
    d.join_eui = lorawan::JoinEui::from_air(std::span<const std::uint8_t, 8>(input.data() + 1, 8));
    d.dev_eui = lorawan::DevEui::from_air(std::span<const std::uint8_t, 8>(input.data() + 9, 8));
    const auto dn = static_cast<std::uint16_t>(input[17] | (input[18] << 8));
    const auto frame = join_request(d, dn);
    CHECK(lorawan::to_hex(frame) == lorawan::to_hex(input) + v["mic"].get<std::string>());
  }
}

TEST_CASE("join-accept vectors open on the device, and a changed byte fails the MIC") {
  const json all = vectors()["join_accept"];  // a copy: the document is a temporary
  for (const auto& v : all) {
    const std::string vector_text = v.dump();
    CAPTURE(vector_text);
    const Bytes plain = from_hex(v["plaintext_without_mic"]);
    Bytes mic_input;
    for (const auto& [name, value] : v.items()) {
      if (name.rfind("mic_prefix", 0) == 0) mic_input = from_hex(value.get<std::string>());
    }
    mic_input.insert(mic_input.end(), plain.begin(), plain.end());
    CHECK(mic_hex(aes_cmac(key(v["key"]), mic_input)) == v["mic"]);
    if (!v.contains("phy_payload")) continue;
    Device d;
    d.mac_version = lorawan::MacVersion::v1_0_2;
    d.app_key = key(v["key"]);
    const Bytes phy = from_hex(v["phy_payload"]);
    auto opened = open_join_accept(d, phy, 0);
    REQUIRE(opened.ok());
    CHECK(opened->mic_ok);
    CHECK_FALSE(opened->lorawan_1_1);
    const AcceptFields& f = opened->fields;
    CHECK(f.join_nonce ==
          static_cast<std::uint32_t>(plain[1] | (plain[2] << 8) | (plain[3] << 16)));
    CHECK(f.net_id ==
          lorawan::NetId::from_air(std::span<const std::uint8_t, 3>(plain.data() + 4, 3)));
    CHECK(f.dev_addr ==
          lorawan::DevAddr::from_air(std::span<const std::uint8_t, 4>(plain.data() + 7, 4)));
    CHECK(f.dl_settings == plain[11]);
    CHECK(f.rx_delay == plain[12]);
    // The Join Server's side: sealing the plaintext with AES decrypt gives the vector.
    Bytes body(plain.begin() + 1, plain.end());
    const Bytes mic = from_hex(v["mic"]);
    body.insert(body.end(), mic.begin(), mic.end());
    Bytes sealed = aes_ecb_decrypt(d.app_key, body);
    sealed.insert(sealed.begin(), plain[0]);
    CHECK(lorawan::to_hex(sealed) == lorawan::to_hex(phy));
    Bytes damaged = phy;
    damaged[6] ^= 0x40;
    auto bad = open_join_accept(d, damaged, 0);
    REQUIRE(bad.ok());
    CHECK_FALSE(bad->mic_ok);
    CHECK_FALSE(open_join_accept(d, std::span(phy).first(16), 0).ok());
  }
}

TEST_CASE("the LoRaWAN 1.1 join flow vector, as the device sees it") {
  const json all = vectors()["join_flow"];  // a copy: the document is a temporary
  for (const auto& v : all) {
    const std::string vector_text = v.dump();
    CAPTURE(vector_text);
    Device d;
    d.mac_version = lorawan::MacVersion::v1_1;
    d.app_key = key(v["app_key"]);
    d.nwk_key = key(v["nwk_key"]);
    d.join_eui = id<lorawan::JoinEui>(v["join_eui"]);
    d.dev_eui = id<lorawan::DevEui>(v["dev_eui"]);
    const std::uint16_t dn = u16(v["dev_nonce"]);
    CHECK(lorawan::to_hex(join_request(d, dn)) == v["join_request"]);
    auto opened = open_join_accept(d, from_hex(v["join_accept"]), dn);
    REQUIRE(opened.ok());
    CHECK(opened->mic_ok);
    CHECK(opened->lorawan_1_1);
    CHECK(opened->fields.join_nonce == u24(v["join_nonce"]));
    CHECK(opened->fields.net_id.hex() == v["net_id"]);
    CHECK(opened->fields.dev_addr.hex() == v["dev_addr"]);
    // Another DevNonce changes the 1.1 MIC input: the device would drop the accept.
    auto other =
        open_join_accept(d, from_hex(v["join_accept"]), static_cast<std::uint16_t>(dn + 1));
    REQUIRE(other.ok());
    CHECK_FALSE(other->mic_ok);
    const SessionKeys k = derive_session_keys(d, opened->fields, dn);
    const auto& e = v["expect"];
    CHECK(hex_of(k.f_nwk_s_int_key) == e["FNwkSIntKey"]);
    CHECK(hex_of(k.s_nwk_s_int_key) == e["SNwkSIntKey"]);
    CHECK(hex_of(k.nwk_s_enc_key) == e["NwkSEncKey"]);
    CHECK(hex_of(k.app_s_key) == e["AppSKey"]);
  }
}

TEST_CASE("seeded keys: the documented construction, distinct per DevEUI and kind") {
  const Key seed = key("000102030405060708090A0B0C0D0E0F");
  const auto eui = id<lorawan::DevEui>("BE11000000000001");
  Block block{};
  block[0] = 0x01;
  const auto& be = eui.bytes();
  std::copy(be.begin(), be.end(), block.begin() + 1);
  CHECK(hex_of(seeded_key(seed, 0x01, eui)) == lorawan::to_hex(aes_ecb_encrypt(seed, block)));
  CHECK_FALSE(seeded_key(seed, 0x01, eui) == seeded_key(seed, 0x02, eui));
  CHECK_FALSE(seeded_key(seed, 0x01, eui) ==
              seeded_key(seed, 0x01, id<lorawan::DevEui>("BE11000000000002")));
}

TEST_CASE("Key: 16 or 32 bytes, constant-time equality") {
  CHECK_FALSE(Key::from(Bytes(15, 0)).has_value());
  CHECK(Key::from(Bytes(16, 0)).has_value());
  CHECK(Key::from(Bytes(32, 0))->size() == 32);
  CHECK_FALSE(*Key::from(Bytes(16, 0)) == *Key::from(Bytes(32, 0)));
  const Key a = key("000102030405060708090A0B0C0D0E0F");
  Key b = a;
  CHECK(a == b);
  b = key("000102030405060708090A0B0C0D0E00");
  CHECK_FALSE(a == b);
}
