// The Backend Interfaces codec: requests as peers send them (and as attackers might) and
// result codes per version. Answers: bi_answer_test.cpp.
#include <doctest.h>

#include <array>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "bi_samples.hpp"
#include "host/bi/messages.hpp"

using namespace lorakeep;
using namespace lorakeep::host::bi;
using namespace lorakeep::host::bi::samples;

namespace {

constexpr std::array<std::pair<ResultCode, std::string_view>, 18> common_codes{{
    {ResultCode::success, "Success"},
    {ResultCode::mic_failed, "MICFailed"},
    {ResultCode::join_req_failed, "JoinReqFailed"},
    {ResultCode::no_roaming_agreement, "NoRoamingAgreement"},
    {ResultCode::dev_roaming_disallowed, "DevRoamingDisallowed"},
    {ResultCode::roaming_act_disallowed, "RoamingActDisallowed"},
    {ResultCode::activation_disallowed, "ActivationDisallowed"},
    {ResultCode::unknown_dev_eui, "UnknownDevEUI"},
    {ResultCode::unknown_dev_addr, "UnknownDevAddr"},
    {ResultCode::unknown_sender, "UnknownSender"},
    {ResultCode::unknown_receiver, "UnknownReceiver"},
    {ResultCode::deferred, "Deferred"},
    {ResultCode::xmit_failed, "XmitFailed"},
    {ResultCode::invalid_fport, "InvalidFPort"},
    {ResultCode::invalid_protocol_version, "InvalidProtocolVersion"},
    {ResultCode::stale_device_profile, "StaleDeviceProfile"},
    {ResultCode::frame_size_error, "FrameSizeError"},
    {ResultCode::other, "Other"},
}};

}  // namespace

TEST_CASE("result codes are named for the answer's version") {
  for (const auto& entry : common_codes) {
    const ResultCode code = entry.first;
    const std::string_view name = entry.second;
    CAPTURE(name);
    CHECK(result_code_name(code, Version::v1_0) == name);
    CHECK(result_code_name(code, Version::v1_1) == name);
    CHECK(parse_result_code(name) == code);
  }
  CHECK(result_code_name(ResultCode::malformed, Version::v1_0) == "MalformedRequest");
  CHECK(result_code_name(ResultCode::malformed, Version::v1_1) == "MalformedMessage");
  CHECK(result_code_name(ResultCode::no_action, Version::v1_1) == "NoAction");
  CHECK(result_code_name(ResultCode::frame_replayed, Version::v1_1) == "FrameReplayed");
  // 1.1-only codes fall back to their nearest 1.0 code.
  CHECK(result_code_name(ResultCode::no_action, Version::v1_0) == "Other");
  CHECK(result_code_name(ResultCode::frame_replayed, Version::v1_0) == "JoinReqFailed");
}

TEST_CASE("result codes are read in either version's spelling, exact case only") {
  CHECK(parse_result_code("MalformedRequest") == ResultCode::malformed);
  CHECK(parse_result_code("MalformedMessage") == ResultCode::malformed);
  CHECK(parse_result_code("UnknownReceiver") == ResultCode::unknown_receiver);
  CHECK(parse_result_code("UnkownReceiver") == ResultCode::unknown_receiver);
  CHECK(parse_result_code("NoAction") == ResultCode::no_action);
  CHECK(parse_result_code("FrameReplayed") == ResultCode::frame_replayed);
  for (const char* bad : {"", "success", "SUCCESS", "Unknown", "MalformedJoin", "Success "}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_result_code(bad).has_value());
  }
}

TEST_CASE("version and message type names") {
  CHECK(version_name(Version::v1_0) == "1.0");
  CHECK(version_name(Version::v1_1) == "1.1");
  using T = MessageType;
  for (const auto& [type, req, ans] : {std::tuple{T::join_req, "JoinReq", "JoinAns"},
                                       std::tuple{T::rejoin_req, "RejoinReq", "RejoinAns"},
                                       std::tuple{T::app_s_key_req, "AppSKeyReq", "AppSKeyAns"},
                                       std::tuple{T::home_ns_req, "HomeNSReq", "HomeNSAns"}}) {
    CHECK(message_type_name(type) == req);
    CHECK(answer_type_name(type) == ans);
  }
}

TEST_CASE("the wire example parses into a 1.0 JoinReq") {
  auto r = parse_request(wire_example);
  REQUIRE(std::holds_alternative<Request>(r));
  const auto& request = std::get<Request>(r);
  REQUIRE(std::holds_alternative<JoinReq>(request));
  const auto& j = std::get<JoinReq>(request);
  CHECK(&header_of(request) == &j.header);
  CHECK(j.header.version == Version::v1_0);
  CHECK(j.header.sender_id == "42FFFF");
  CHECK(j.header.receiver_id == "70B3D57ED0000000");
  CHECK(j.header.transaction_id == 0);
  CHECK(j.header.type == MessageType::join_req);
  CHECK_FALSE(j.header.sender_token.has_value());
  CHECK_FALSE(j.header.sender_ns_id.has_value());
  CHECK(j.mac_version == lorawan::MacVersion::v1_0_3);
  CHECK(lorawan::to_hex(j.phy_payload) == "00000000D07ED5B370080706050403020100003851F0B6");
  CHECK(j.dev_eui.hex() == "0102030405060708");
  CHECK(j.dev_addr.hex() == "01020304");
  CHECK(j.dl_settings.byte == 0);
  CHECK(j.rx_delay.byte == 5);
  CHECK_FALSE(j.cf_list.has_value());
}

TEST_CASE("a 1.1 JoinReq: SenderNSID, SenderToken, lower case and 0x hex") {
  json in = join_1_1();
  in["SenderToken"] = "0xab01";
  in["DevEUI"] = "0x0a0b0c0d0e0f1011";
  in["DevAddr"] = "0X0a0b0c0d";
  in["DLSettings"] = "8f";
  in["RxDelay"] = 15;
  in["CFList"] = "0x184f84e85684b85e84886684586e8400";
  const auto j = parsed_as<JoinReq>(in);
  CHECK(j.header.version == Version::v1_1);
  REQUIRE(j.header.sender_ns_id.has_value());
  CHECK(j.header.sender_ns_id->hex() == "70B3D57ED0000001");
  REQUIRE(j.header.sender_token.has_value());
  CHECK(*j.header.sender_token == Bytes{0xAB, 0x01});
  CHECK(j.mac_version == lorawan::MacVersion::v1_1);
  CHECK(j.dev_eui.hex() == "0A0B0C0D0E0F1011");
  CHECK(j.dev_addr.hex() == "0A0B0C0D");
  CHECK(j.dl_settings.opt_neg());
  CHECK(j.dl_settings.rx2_data_rate() == 15);
  CHECK(j.rx_delay.byte == 15);
  REQUIRE(j.cf_list.has_value());
  CHECK(lorawan::to_hex(j.cf_list->bytes) == "184F84E85684B85E84886684586E8400");
}

TEST_CASE("RejoinReq, AppSKeyReq and HomeNSReq parse into their types") {
  const auto rejoin = parsed_as<RejoinReq>(rejoin_1_1());
  CHECK(rejoin.header.type == MessageType::rejoin_req);
  CHECK(rejoin.phy_payload.size() == 19);

  const auto app = parsed_as<AppSKeyReq>(app_s_key_1_0());
  CHECK(app.header.type == MessageType::app_s_key_req);
  CHECK(app.header.sender_id == "as.example.com");
  CHECK(app.header.transaction_id == 7);
  CHECK(app.dev_eui.hex() == "0102030405060708");
  CHECK(app.session_key_id == Bytes{0xAB, 0xCD, 0xEF});
  // An AS sends no SenderNSID, in 1.1 too.
  json app_1_1 = app_s_key_1_0();
  app_1_1["ProtocolVersion"] = "1.1";
  CHECK_FALSE(parsed_as<AppSKeyReq>(app_1_1).header.sender_ns_id.has_value());

  const auto home = parsed_as<HomeNSReq>(home_ns_1_1());
  CHECK(home.header.transaction_id == 4294967295U);
  CHECK(home.dev_eui.hex() == "0102030405060708");
  CHECK(home.header.sender_ns_id->hex() == "0000000000000013");
}

TEST_CASE("every MACVersion spelling of The Things Stack and ChirpStack is accepted") {
  using lorawan::MacVersion;
  for (const auto& [text, v] :
       std::vector<std::pair<const char*, MacVersion>>{{"1.0", MacVersion::v1_0},
                                                       {"1.0.0", MacVersion::v1_0},
                                                       {"1.0.1", MacVersion::v1_0_1},
                                                       {"1.0.2", MacVersion::v1_0_2},
                                                       {"1.0.3", MacVersion::v1_0_3},
                                                       {"1.0.4", MacVersion::v1_0_4},
                                                       {"1.1", MacVersion::v1_1},
                                                       {"1.1.0", MacVersion::v1_1}}) {
    json in = join_1_0();
    in["MACVersion"] = text;
    CHECK(parsed_as<JoinReq>(in).mac_version == v);
  }
  for (const char* bad : {"", "1.2", "1.0.5", "v1.0.3", "1.0.3 "}) {
    json in = join_1_0();
    in["MACVersion"] = bad;
    check_malformed(in, "MACVersion");
  }
}

TEST_CASE("every required field missing is malformed, naming the field") {
  const std::vector<std::pair<json, std::vector<const char*>>> messages{
      {join_1_1(),
       {"SenderID", "ReceiverID", "TransactionID", "MessageType", "SenderNSID", "MACVersion",
        "PHYPayload", "DevEUI", "DevAddr", "DLSettings", "RxDelay"}},
      {rejoin_1_1(),
       {"SenderID", "ReceiverID", "TransactionID", "MessageType", "SenderNSID", "MACVersion",
        "PHYPayload", "DevEUI", "DevAddr", "DLSettings", "RxDelay"}},
      {app_s_key_1_0(),
       {"SenderID", "ReceiverID", "TransactionID", "MessageType", "DevEUI", "SessionKeyID"}},
      {home_ns_1_1(),
       {"SenderID", "ReceiverID", "TransactionID", "MessageType", "SenderNSID", "DevEUI"}},
  };
  for (const auto& [message, fields] : messages) {
    for (const char* field : fields) {
      json in = message;
      in.erase(field);
      check_malformed(in, field);
      in[field] = nullptr;  // null is as good as absent
      check_malformed(in, field);
    }
  }
}

TEST_CASE("ProtocolVersion missing or unknown is InvalidProtocolVersion") {
  for (const json& v : {json("1.2"), json("1.0.0"), json(""), json(1.0), json(1), json(true),
                        json::array({"1.0"}), json(nullptr)}) {
    json in = join_1_0();
    in["ProtocolVersion"] = v;
    CAPTURE(v.dump());
    const ParseError e = error_of(in);
    CHECK(e.http_status == 200);
    CHECK(e.code == ResultCode::invalid_protocol_version);
    CHECK(e.description.find("ProtocolVersion") != std::string::npos);
    CHECK_FALSE(e.echo.version.has_value());
    CHECK(e.echo.transaction_id == 0U);  // the rest of the header still addresses the answer
  }
  json in = join_1_0();
  in.erase("ProtocolVersion");
  const ParseError e = error_of(in);
  CHECK(e.code == ResultCode::invalid_protocol_version);
  const json answer = json::parse(encode_failure(e.echo, e.code, e.description));
  CHECK(answer["ProtocolVersion"] == "1.0");
  CHECK(answer["Result"]["ResultCode"] == "InvalidProtocolVersion");
}

TEST_CASE("wrong JSON types are malformed, naming the field") {
  const std::vector<const char*> string_fields{"SenderID",   "ReceiverID", "MessageType",
                                               "MACVersion", "PHYPayload", "DevEUI",
                                               "DevAddr",    "DLSettings", "CFList"};
  for (const char* field : string_fields) {
    for (const json& v : {json(5), json(-1), json(1.5), json(true), json::array({"00"}),
                          json::object({{"a", "00"}})}) {
      json in = join_1_0();
      in[field] = v;
      check_malformed(in, field);
    }
  }
  for (const char* field : {"TransactionID", "RxDelay"}) {
    for (const json& v : {json("5"), json(5.0), json(0.5), json(true), json(false),
                          json::array({5}), json::object({{"v", 5}})}) {
      json in = join_1_0();
      in[field] = v;
      check_malformed(in, field);
    }
  }
  for (const json& v : {json(1), json::array(), json(false)}) {
    json in = join_1_1();
    in["SenderNSID"] = v;
    check_malformed(in, "SenderNSID");
    in = join_1_0();
    in["SenderToken"] = v;
    check_malformed(in, "SenderToken");
    in = app_s_key_1_0();
    in["SessionKeyID"] = v;
    check_malformed(in, "SessionKeyID");
  }
}

TEST_CASE("TransactionID is an integer in 0..2^32-1") {
  auto with = [](const char* value) {
    std::string body = join_1_0().dump();
    const std::string from = "\"TransactionID\":0";
    body.replace(body.find(from), from.size(), std::string("\"TransactionID\":") + value);
    return body;
  };
  auto tid = [&](const char* value) {
    auto r = parse_request(with(value));
    REQUIRE(std::holds_alternative<Request>(r));
    return header_of(std::get<Request>(r)).transaction_id;
  };
  CHECK(tid("4294967295") == 4294967295U);
  CHECK(tid("-0") == 0U);
  for (const char* bad : {"4294967296", "-1", "-4294967295", "18446744073709551615",
                          "18446744073709551616", "1e3", "1.0", "0.5", "1E0", "-0.0"}) {
    CAPTURE(bad);
    const ParseError e = error_of_body(with(bad));
    CHECK(e.code == ResultCode::malformed);
    CHECK(e.description.find("TransactionID") != std::string::npos);
    CHECK_FALSE(e.echo.transaction_id.has_value());
  }
}

TEST_CASE("RxDelay is an integer in 0..15") {
  json in = join_1_0();
  in["RxDelay"] = 0;
  CHECK(parsed_as<JoinReq>(in).rx_delay.byte == 0);
  for (const json& bad : {json(16), json(255), json(-1), json(15.0)}) {
    in["RxDelay"] = bad;
    check_malformed(in, "RxDelay");
  }
}

TEST_CASE("hex of the wrong length or with a bad digit is malformed") {
  const std::vector<std::pair<const char*, std::vector<const char*>>> cases{
      {"DevEUI",
       {"01020304050607", "010203040506070809", "010203040506070", "01020304050607GG", "0x", "",
        "0x0x0102030405060708", " 0102030405060708", "01 02 03 04 05 06 07 08"}},
      {"DevAddr", {"010203", "0102030405", "0102030Z"}},
      {"DLSettings", {"", "0000", "0", "G0"}},
      {"PHYPayload", {"", "0x", "0", "00000000D07ED5B37008070605040302010000385 F0B6"}},
      {"CFList", {"00", "184F84E85684B85E84886684586E840000", "184F84E85684B85E84886684586E84ZZ"}},
      {"SenderToken", {"0", "xyz"}},
  };
  for (const auto& [field, values] : cases) {
    for (const char* v : values) {
      json in = join_1_0();
      in[field] = v;
      check_malformed(in, field);
    }
  }
  json in = join_1_0();
  in["DevEUI"] = "01020304050607";
  CHECK(error_of(in).description == "DevEUI must be 8 bytes of hex, got 7");
  in = join_1_1();
  in["SenderNSID"] = "70B3D57ED00000";
  check_malformed(in, "SenderNSID");
  in = join_1_0();
  in["PHYPayload"] = std::string(512, 'A');
  check_malformed(in, "PHYPayload");  // 256 bytes: more than a radio frame holds
  in["PHYPayload"] = std::string(510, 'A');
  CHECK(parsed_as<JoinReq>(in).phy_payload.size() == 255);
}

TEST_CASE("SessionKeyID holds 1 to 64 bytes") {
  json in = app_s_key_1_0();
  for (const auto& bad : {std::string(), std::string("0x"), std::string(130, '0')}) {
    in["SessionKeyID"] = bad;
    check_malformed(in, "SessionKeyID");
  }
  in["SessionKeyID"] = std::string(128, 'f');
  CHECK(parsed_as<AppSKeyReq>(in).session_key_id == Bytes(64, 0xFF));
}

TEST_CASE("an unknown MessageType is malformed and its answer names no type") {
  for (const char* type : {"JoinAns", "PRStartReq", "joinreq", "", "XmitDataReq"}) {
    json in = join_1_0();
    in["MessageType"] = type;
    const ParseError e = error_of(in);
    CHECK(e.code == ResultCode::malformed);
    CHECK(e.description.find("is not a request a Join Server answers") != std::string::npos);
    CHECK(e.echo.message_type == std::string(type));
    const json answer = json::parse(encode_failure(e.echo, e.code, e.description));
    CHECK_FALSE(answer.contains("MessageType"));
    CHECK(answer["TransactionID"] == 0);
    CHECK(answer["Result"]["ResultCode"] == "MalformedRequest");
  }
}

TEST_CASE("a body that is not a JSON object is HTTP 400") {
  for (const char* body : {"", "   ", "not json", "{", R"({"a":1,})", "[]", "[1,2]", "5", "-1.5",
                           "\"JoinReq\"", "null", "true", "{}{}", "{\"a\":\"\xff\"}"}) {
    CAPTURE(body);
    const ParseError e = error_of_body(body);
    CHECK(e.http_status == 400);
    CHECK(e.code == ResultCode::malformed);
    CHECK_FALSE(e.description.empty());
    CHECK_FALSE(e.echo.transaction_id.has_value());
  }
  CHECK(error_of_body("{}").http_status == 200);  // an object, however empty, gets an answer
}

TEST_CASE("deep nesting and large bodies are refused or read without harm") {
  CHECK(error_of_body(std::string(1'000'000, '[')).http_status == 400);
  CHECK(error_of_body(std::string(100'000, '{')).http_status == 400);
  json in = join_1_0();
  json deep = "bottom";
  for (int i = 0; i < 20; ++i)
    deep = json::array({deep});
  in["VSExtension"] = {{"VendorID", "0001"}, {"Object", deep}};
  CHECK(parsed_as<JoinReq>(in).dev_eui.hex() == "0102030405060708");
  for (int i = 0; i < 20; ++i)
    deep = json::object({{"x", deep}});
  in["VSExtension"] = {{"VendorID", "0001"}, {"Object", deep}};
  CHECK(error_of(in).http_status == 400);
  // Brackets inside strings are not nesting, escaped quotes included.
  in = join_1_0();
  in["Note"] = std::string(10'000, '[') + "\\\"" + std::string(10'000, '{');
  CHECK(parsed_as<JoinReq>(in).rx_delay.byte == 5);
  in["Note"] = std::string(4'000'000, 'x');
  CHECK(parsed_as<JoinReq>(in).rx_delay.byte == 5);
}

TEST_CASE("SenderNSID is ignored in 1.0 (its absence in 1.1: the required-fields case)") {
  json in = join_1_0();
  in["SenderNSID"] = "not hex at all";
  CHECK_FALSE(parsed_as<JoinReq>(in).header.sender_ns_id.has_value());
  in["SenderNSID"] = "70B3D57ED0000001";
  CHECK_FALSE(parsed_as<JoinReq>(in).header.sender_ns_id.has_value());
}

TEST_CASE("VSExtension and unknown fields are ignored; CFList absent, null or empty") {
  json in = join_1_0();
  in["VSExtension"] = {{"VendorID", "00000001"}, {"Object", {{"anything", {1, 2.5, nullptr}}}}};
  in["ReceiverToken"] = 17;
  in["Lifetime"] = "x";
  in["SomeFutureField"] = json::array();
  CHECK_FALSE(parsed_as<JoinReq>(in).cf_list.has_value());
  in["VSExtension"] = "not even an object";
  CHECK_FALSE(parsed_as<JoinReq>(in).cf_list.has_value());
  in["CFList"] = nullptr;
  CHECK_FALSE(parsed_as<JoinReq>(in).cf_list.has_value());
  in["CFList"] = "";
  CHECK_FALSE(parsed_as<JoinReq>(in).cf_list.has_value());
  in["SenderToken"] = "";
  CHECK_FALSE(parsed_as<JoinReq>(in).header.sender_token.has_value());
  in["SenderToken"] = nullptr;
  CHECK_FALSE(parsed_as<JoinReq>(in).header.sender_token.has_value());
}

TEST_CASE("a failure's echo holds every usable header field and a valid DevEUI") {
  json in = join_1_1();
  in["SenderToken"] = "0a0b";
  in["DevAddr"] = "bad";
  ParseError e = error_of(in);
  CHECK(e.description.find("DevAddr") != std::string::npos);
  CHECK(e.echo.version == Version::v1_1);
  CHECK(e.echo.sender_id == "42FFFF");
  CHECK(e.echo.receiver_id == "70B3D57ED0000000");
  CHECK(e.echo.transaction_id == 0U);
  CHECK(e.echo.message_type == "JoinReq");
  CHECK(e.echo.sender_token == Bytes{0x0A, 0x0B});
  CHECK(e.echo.sender_ns_id->hex() == "70B3D57ED0000001");
  CHECK(e.echo.dev_eui->hex() == "0102030405060708");

  // A field that fails leaves only its own slot empty, wherever it comes in the order.
  in = join_1_0();
  in["SenderID"] = 42;
  in["DevEUI"] = "00";
  e = error_of(in);
  CHECK(e.description.find("SenderID") != std::string::npos);
  CHECK_FALSE(e.echo.sender_id.has_value());
  CHECK_FALSE(e.echo.dev_eui.has_value());
  CHECK(e.echo.receiver_id == "70B3D57ED0000000");
  CHECK(e.echo.message_type == "JoinReq");
}

TEST_CASE("descriptions quote at most 32 characters of the sender's text") {
  const std::string attack = "<script>" + std::string(200, 'A') + "</script>";
  for (const char* field : {"ProtocolVersion", "MessageType", "MACVersion", "DevEUI", "PHYPayload",
                            "DLSettings", "CFList", "SenderNSID"}) {
    json in = join_1_1();
    in[field] = attack;
    const ParseError e = error_of(in);
    CAPTURE(e.description);
    CHECK(e.description.find(attack.substr(0, 33)) == std::string::npos);
    CHECK(e.description.find(std::string(33, 'A')) == std::string::npos);
    CHECK(e.description.size() < 160);
  }
  json in = join_1_0();
  in["MessageType"] = std::string("Join\nReq'\x01");
  CHECK(error_of(in).description ==
        "MessageType: 'Join\\x0AReq\\x27\\x01' is not a request a Join Server answers");
}
