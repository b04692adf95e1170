// tools/nsim's Network Server side: the JoinReq it sends, and that its checks of a JoinAns
// accept a right answer and catch each way an answer can be wrong. The Join Server here is
// played by a few lines of OpenSSL built on the vector-checked primitives.
#include <doctest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tools/nsim/ns.hpp"

using namespace lorakeep;
using namespace lorakeep::nsim;
using nlohmann::json;

namespace {

Key key_of(std::uint8_t fill) {
  Block b{};
  for (std::size_t i = 0; i < b.size(); ++i)
    b[i] = static_cast<std::uint8_t>(fill + i);
  return Key(b);
}

template <class Id>
Id id(const std::string& hex) {
  auto v = Id::from_hex(hex);
  REQUIRE(v.ok());
  return *v;
}

Device device(lorawan::MacVersion v) {
  Device d;
  d.mac_version = v;
  d.join_eui = id<lorawan::JoinEui>("70B3D57ED0000000");
  d.dev_eui = id<lorawan::DevEui>("0004A30B001C0530");
  d.app_key = key_of(0x10);
  if (lorawan::is_1_1(v)) d.nwk_key = key_of(0x40);
  return d;
}

Kek ns_kek() {
  return {"ns-kek", key_of(0x70)};
}
Kek as_kek() {
  return {"as-kek", key_of(0xA0)};
}

json envelope(const Kek& kek, const Key& k) {
  return {{"KEKLabel", kek.label}, {"AESKey", lorawan::to_hex(rfc3394_wrap(kek.key, k))}};
}

/// A Join Server's answer to `req`, computed independently of the checks under test.
json answer_for(const Device& d, std::uint16_t dev_nonce, const JoinReq& req,
                std::uint32_t join_nonce) {
  Bytes plain = {0x20, static_cast<std::uint8_t>(join_nonce),
                 static_cast<std::uint8_t>(join_nonce >> 8),
                 static_cast<std::uint8_t>(join_nonce >> 16)};
  const auto net = req.net_id.air();
  const auto addr = req.dev_addr.air();
  plain.insert(plain.end(), net.begin(), net.end());
  plain.insert(plain.end(), addr.begin(), addr.end());
  plain.push_back(req.dl_settings);
  plain.push_back(req.rx_delay);
  AcceptFields f;
  f.join_nonce = join_nonce;
  f.net_id = req.net_id;
  f.dev_addr = req.dev_addr;
  f.dl_settings = req.dl_settings;
  f.rx_delay = req.rx_delay;
  const bool one_one = lorawan::is_1_1(d.mac_version) && f.opt_neg();
  Block mic{};
  if (one_one) {
    Bytes input = {0xFF};
    const auto eui = d.join_eui.air();
    input.insert(input.end(), eui.begin(), eui.end());
    input.push_back(static_cast<std::uint8_t>(dev_nonce));
    input.push_back(static_cast<std::uint8_t>(dev_nonce >> 8));
    input.insert(input.end(), plain.begin(), plain.end());
    mic = aes_cmac(js_int_key(*d.nwk_key, d.dev_eui), input);
  } else {
    mic = aes_cmac(d.network_root(), plain);
  }
  Bytes body(plain.begin() + 1, plain.end());
  body.insert(body.end(), mic.begin(), mic.begin() + 4);
  Bytes sealed = aes_ecb_decrypt(d.network_root(), body);
  sealed.insert(sealed.begin(), 0x20);

  const SessionKeys k = derive_session_keys(d, f, dev_nonce);
  json a = {{"ProtocolVersion", req.protocol_version},
            {"SenderID", req.join_eui.hex()},
            {"ReceiverID", req.net_id.hex()},
            {"TransactionID", req.transaction_id},
            {"MessageType", "JoinAns"},
            {"Result", {{"ResultCode", "Success"}}},
            {"PHYPayload", lorawan::to_hex(sealed)},
            {"Lifetime", 3600},
            {"SessionKeyID", "0102030405060708"},
            {"AppSKey", envelope(as_kek(), k.app_s_key)}};
  if (req.sender_ns_id) a["ReceiverNSID"] = req.sender_ns_id->hex();
  if (one_one) {
    a["FNwkSIntKey"] = envelope(ns_kek(), k.f_nwk_s_int_key);
    a["SNwkSIntKey"] = envelope(ns_kek(), k.s_nwk_s_int_key);
    a["NwkSEncKey"] = envelope(ns_kek(), k.nwk_s_enc_key);
  } else {
    a["NwkSKey"] = envelope(ns_kek(), k.nwk_s_key);
  }
  return a;
}

JoinVerdict judge(const Device& d, std::uint16_t dn, const JoinReq& req, const json& a) {
  auto parsed = parse_answer(a.dump());
  REQUIRE(parsed.ok());
  return verify_join_answer(d, dn, req, *parsed, {ns_kek(), as_kek()});
}

std::string failed_detail(const JoinVerdict& v) {
  for (const auto& c : v.checks) {
    if (!c.ok) return c.name + ": " + c.detail;
  }
  return "";
}

}  // namespace

TEST_CASE("a JoinReq as a Network Server sends it") {
  const Device d11 = device(lorawan::MacVersion::v1_1);
  const JoinReq r =
      make_join_req(d11, 7, id<lorawan::NetId>("000013"), id<lorawan::DevAddr>("01020304"), 42);
  const json j = json::parse(r.json());
  CHECK(j["ProtocolVersion"] == "1.1");
  CHECK(j["MessageType"] == "JoinReq");
  CHECK(j["SenderID"] == "000013");
  CHECK(j["ReceiverID"] == "70B3D57ED0000000");
  CHECK(j.contains("SenderNSID"));
  CHECK(j["MACVersion"] == "1.1");
  CHECK(j["DLSettings"] == "80");
  CHECK(j["DevEUI"] == "0004A30B001C0530");
  CHECK(j["PHYPayload"].get<std::string>().size() == 46);
  CHECK(j["TransactionID"] == 42);

  const Device d10 = device(lorawan::MacVersion::v1_0_2);
  const json k = json::parse(
      make_join_req(d10, 7, id<lorawan::NetId>("000013"), id<lorawan::DevAddr>("01020304"), 43)
          .json());
  CHECK(k["ProtocolVersion"] == "1.0");
  CHECK_FALSE(k.contains("SenderNSID"));
  CHECK(k["DLSettings"] == "00");
  CHECK(k["MACVersion"] == "1.0.2");
}

TEST_CASE("a right JoinAns passes every check, 1.0.2, 1.0.4 and 1.1") {
  for (const auto v :
       {lorawan::MacVersion::v1_0_2, lorawan::MacVersion::v1_0_4, lorawan::MacVersion::v1_1}) {
    const std::string version(lorawan::mac_version_name(v));
    CAPTURE(version);
    const Device d = device(v);
    const JoinReq req =
        make_join_req(d, 300, id<lorawan::NetId>("000013"), id<lorawan::DevAddr>("26011234"), 9);
    const JoinVerdict verdict = judge(d, 300, req, answer_for(d, 300, req, 77));
    CHECK_MESSAGE(verdict.ok(), failed_detail(verdict));
    REQUIRE(verdict.accept.has_value());
    CHECK(verdict.accept->fields.join_nonce == 77);
    CHECK(verdict.accept->lorawan_1_1 == lorawan::is_1_1(v));
    // Nothing a check says holds key material: only names, labels and numbers.
    for (const auto& c : verdict.checks) {
      CHECK(c.detail.find(lorawan::to_hex(d.app_key.reveal())) == std::string::npos);
    }
  }
}

TEST_CASE("each way a JoinAns can be wrong is caught") {
  const Device d = device(lorawan::MacVersion::v1_1);
  const JoinReq req =
      make_join_req(d, 5, id<lorawan::NetId>("000013"), id<lorawan::DevAddr>("26011234"), 9);
  const json good = answer_for(d, 5, req, 3);

  SUBCASE("a refusal") {
    json a = good;
    a["Result"] = {{"ResultCode", "MICFailed"}, {"Description", "bad MIC"}};
    const auto v = judge(d, 5, req, a);
    CHECK_FALSE(v.ok());
    CHECK(v.first_failure() == "ResultCode");
    CHECK(v.checks[0].detail == "MICFailed: bad MIC");
  }
  SUBCASE("the join-accept's MIC") {
    json a = good;
    Bytes phy = parse_answer(a.dump())->phy_payload;
    REQUIRE(phy.size() == 17);
    phy[3] ^= 0x01;
    a["PHYPayload"] = lorawan::to_hex(phy);
    CHECK(judge(d, 5, req, a).first_failure() == "join-accept MIC");
  }
  SUBCASE("a join-accept for another DevNonce") {
    CHECK(judge(d, 6, req, good).first_failure() == "join-accept MIC");
  }
  SUBCASE("another DevAddr in the join-accept") {
    JoinReq other = req;
    other.dev_addr = id<lorawan::DevAddr>("26019999");
    CHECK(judge(d, 5, other, good).first_failure() == "join-accept fields");
  }
  SUBCASE("the TransactionID not echoed") {
    json a = good;
    a["TransactionID"] = 10;
    CHECK(judge(d, 5, req, a).first_failure() == "header");
  }
  SUBCASE("a key under another KEK label") {
    json a = good;
    a["SNwkSIntKey"]["KEKLabel"] = "other";
    CHECK(judge(d, 5, req, a).first_failure() == "SNwkSIntKey");
  }
  SUBCASE("a key that does not unwrap") {
    json a = good;
    a["NwkSEncKey"] = envelope(Kek{"ns-kek", key_of(0x01)}, key_of(0x02));
    const auto v = judge(d, 5, req, a);
    CHECK(v.first_failure() == "NwkSEncKey");
    CHECK(failed_detail(v).find("integrity") != std::string::npos);
  }
  SUBCASE("a key that unwraps to something else") {
    json a = good;
    a["FNwkSIntKey"] = envelope(ns_kek(), key_of(0x03));
    const auto v = judge(d, 5, req, a);
    CHECK(v.first_failure() == "FNwkSIntKey");
    CHECK(failed_detail(v).find("differs from the device's derivation") != std::string::npos);
  }
  SUBCASE("a missing AppSKey") {
    json a = good;
    a.erase("AppSKey");
    CHECK(judge(d, 5, req, a).first_failure() == "AppSKey");
  }
  SUBCASE("an extra NwkSKey in a 1.1 answer") {
    json a = good;
    a["NwkSKey"] = envelope(ns_kek(), key_of(0x05));
    CHECK(judge(d, 5, req, a).first_failure() == "NwkSKey");
  }
  SUBCASE("no SessionKeyID") {
    json a = good;
    a.erase("SessionKeyID");
    CHECK(judge(d, 5, req, a).first_failure() == "SessionKeyID");
  }
}

TEST_CASE("answers that are not JSON objects or carry bad hex are malformed") {
  CHECK_FALSE(parse_answer("not json").ok());
  CHECK_FALSE(parse_answer("[1]").ok());
  CHECK_FALSE(parse_answer(R"({"PHYPayload":"zz"})").ok());
  CHECK_FALSE(parse_answer(R"({"NwkSKey":{"KEKLabel":"x"}})").ok());
  CHECK_FALSE(parse_answer(R"({"TransactionID":"1"})").ok());
  auto a = parse_answer(R"({"Result":{"ResultCode":"UnknownDevEUI"},"TransactionID":3})");
  REQUIRE(a.ok());
  CHECK(a->result_code == "UnknownDevEUI");
  CHECK(a->transaction_id == 3U);
}

TEST_CASE("an AppSKeyAns is checked against the device's AppSKey") {
  AppSKeyReq req;
  req.as_id = "as.example.com";
  req.join_eui = id<lorawan::JoinEui>("70B3D57ED0000000");
  req.dev_eui = id<lorawan::DevEui>("0004A30B001C0530");
  req.transaction_id = 11;
  req.session_key_id = {1, 2, 3};
  const json j = json::parse(req.json());
  CHECK(j["MessageType"] == "AppSKeyReq");
  CHECK(j["SessionKeyID"] == "010203");
  const Key app = key_of(0x33);
  json a = {{"MessageType", "AppSKeyAns"},           {"SenderID", "70B3D57ED0000000"},
            {"ReceiverID", "as.example.com"},        {"TransactionID", 11},
            {"DevEUI", "0004A30B001C0530"},          {"SessionKeyID", "010203"},
            {"Result", {{"ResultCode", "Success"}}}, {"AppSKey", envelope(as_kek(), app)}};
  CHECK(verify_app_s_key_answer(req, *parse_answer(a.dump()), as_kek(), app).ok());
  CHECK_FALSE(verify_app_s_key_answer(req, *parse_answer(a.dump()), as_kek(), key_of(0x34)).ok());
  a["SessionKeyID"] = "010204";
  CHECK(verify_app_s_key_answer(req, *parse_answer(a.dump()), as_kek(), app).first_failure() ==
        "header");
}
