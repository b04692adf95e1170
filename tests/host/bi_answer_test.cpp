// The Backend Interfaces codec: answers read back field by field — headers swapped, tokens
// echoed, key envelopes, failures that write only what their echo holds.
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

/// The header of a 1.1 answer to header_1_1(): sender and receiver swapped, tokens echoed.
void check_answer_header_1_1(const json& out, int transaction_id, const char* type,
                             const char* receiver_token) {
  CHECK(out["ProtocolVersion"] == "1.1");
  CHECK(out["SenderID"] == "70B3D57ED0000000");
  CHECK(out["ReceiverID"] == "42FFFF");
  CHECK(out["TransactionID"] == transaction_id);
  CHECK(out["MessageType"] == type);
  CHECK(out["ReceiverToken"] == receiver_token);
  CHECK(out["ReceiverNSID"] == "70B3D57ED0000001");
}

}  // namespace

TEST_CASE("a join answer swaps the header, echoes the tokens and writes key envelopes") {
  const Header request = header_1_1();
  JoinAnswer a;
  a.phy_payload = {0x20, 0xAB};
  a.lifetime = 86400;
  a.f_nwk_s_int_key = KeyEnvelope{"kek-ns", Bytes(24, 0x11)};
  a.s_nwk_s_int_key = KeyEnvelope{"kek-ns", Bytes(24, 0x22)};
  a.nwk_s_enc_key = KeyEnvelope{"kek-ns", Bytes(24, 0x33)};
  a.app_s_key = KeyEnvelope{"", Bytes(16, 0xAB)};
  a.session_key_id = {0x01, 0x02};
  const json out = json::parse(encode_join_answer(request, a));
  CHECK(keys_of(out) == std::set<std::string>{"ProtocolVersion", "SenderID", "ReceiverID",
                                              "TransactionID", "MessageType", "ReceiverToken",
                                              "ReceiverNSID", "Result", "PHYPayload", "Lifetime",
                                              "FNwkSIntKey", "SNwkSIntKey", "NwkSEncKey", "AppSKey",
                                              "SessionKeyID"});
  check_answer_header_1_1(out, 0, "JoinAns", "AB01");
  CHECK(out["Result"] == json{{"ResultCode", "Success"}});
  CHECK(out["PHYPayload"] == "20AB");
  CHECK(out["Lifetime"] == 86400);
  CHECK(out["FNwkSIntKey"] == json{{"KEKLabel", "kek-ns"}, {"AESKey", std::string(48, '1')}});
  CHECK(out["SNwkSIntKey"]["AESKey"] == std::string(48, '2'));
  CHECK(out["NwkSEncKey"]["AESKey"] == std::string(48, '3'));
  // A plaintext key: no KEKLabel at all.
  CHECK(out["AppSKey"] == json{{"AESKey", "ABABABABABABABABABABABABABABABAB"}});
  CHECK(out["SessionKeyID"] == "0102");
}

TEST_CASE("a 1.0 join answer: NwkSKey, no ReceiverNSID, no SessionKeyID when empty") {
  Header request = parsed_as<JoinReq>(join_1_0()).header;
  request.transaction_id = 4294967295U;
  request.sender_ns_id = lorawan::NsId::from_uint(1);  // never written in 1.0
  JoinAnswer a;
  a.phy_payload = {0x20};
  a.nwk_s_key = KeyEnvelope{"k1", Bytes(24, 0xCD)};
  a.app_s_key = KeyEnvelope{"k2", Bytes(24, 0xEF)};
  const json out = json::parse(encode_join_answer(request, a));
  CHECK(keys_of(out) == std::set<std::string>{"ProtocolVersion", "SenderID", "ReceiverID",
                                              "TransactionID", "MessageType", "Result",
                                              "PHYPayload", "Lifetime", "NwkSKey", "AppSKey"});
  CHECK(out["ProtocolVersion"] == "1.0");
  CHECK(out["TransactionID"] == 4294967295U);
  CHECK(out["Lifetime"] == 0);
  CHECK(out["NwkSKey"] == json{{"KEKLabel", "k1"}, {"AESKey", repeat("CD", 24)}});
  CHECK(out["AppSKey"]["KEKLabel"] == "k2");

  request.type = MessageType::rejoin_req;
  CHECK(json::parse(encode_join_answer(request, a))["MessageType"] == "RejoinAns");
}

TEST_CASE("AppSKeyAns and HomeNSAns carry their fields") {
  const Header app = parsed_as<AppSKeyReq>(app_s_key_1_0()).header;
  const json a = json::parse(
      encode_app_s_key_answer(app, lorawan::DevEui::from_uint(0x0102030405060708),
                              KeyEnvelope{"as-kek", Bytes(24, 0x5A)}, Bytes{0xAB, 0xCD, 0xEF}));
  CHECK(keys_of(a) == std::set<std::string>{"ProtocolVersion", "SenderID", "ReceiverID",
                                            "TransactionID", "MessageType", "Result", "DevEUI",
                                            "AppSKey", "SessionKeyID"});
  CHECK(a["SenderID"] == "70B3D57ED0000000");
  CHECK(a["ReceiverID"] == "as.example.com");
  CHECK(a["TransactionID"] == 7);
  CHECK(a["MessageType"] == "AppSKeyAns");
  CHECK(a["DevEUI"] == "0102030405060708");
  CHECK(a["AppSKey"] == json{{"KEKLabel", "as-kek"}, {"AESKey", repeat("5A", 24)}});
  CHECK(a["SessionKeyID"] == "ABCDEF");

  Header home = parsed_as<HomeNSReq>(home_ns_1_1()).header;
  const auto net_id = lorawan::NetId::from_uint(0x000013);
  const auto hnsid = lorawan::NsId::from_uint(0x70B3D57ED0000013);
  json h = json::parse(encode_home_ns_answer(home, net_id, hnsid));
  CHECK(h["MessageType"] == "HomeNSAns");
  CHECK(h["TransactionID"] == 4294967295U);
  CHECK(h["HNetID"] == "000013");
  CHECK(h["HNSID"] == "70B3D57ED0000013");
  CHECK(h["ReceiverNSID"] == "0000000000000013");
  CHECK_FALSE(json::parse(encode_home_ns_answer(home, net_id, std::nullopt)).contains("HNSID"));
  home.version = Version::v1_0;
  h = json::parse(encode_home_ns_answer(home, net_id, hnsid));
  CHECK_FALSE(h.contains("HNSID"));
  CHECK_FALSE(h.contains("ReceiverNSID"));
  CHECK(h["ProtocolVersion"] == "1.0");
}

TEST_CASE("a failure answer writes only what its echo holds") {
  EchoHeader echo;
  echo.transaction_id = 42;
  json out = json::parse(encode_failure(echo, ResultCode::malformed, ""));
  CHECK(out == json{{"ProtocolVersion", "1.0"},
                    {"TransactionID", 42},
                    {"Result", {{"ResultCode", "MalformedRequest"}}}});

  echo.version = Version::v1_1;
  echo.sender_id = "000013";
  echo.message_type = "RejoinReq";
  echo.sender_ns_id = lorawan::NsId::from_uint(19);
  echo.dev_eui = lorawan::DevEui::from_uint(1);  // for logs only
  out = json::parse(encode_failure(echo, ResultCode::malformed, "DevAddr: missing"));
  CHECK(out == json{{"ProtocolVersion", "1.1"},
                    {"ReceiverID", "000013"},
                    {"TransactionID", 42},
                    {"MessageType", "RejoinAns"},
                    {"ReceiverNSID", "0000000000000013"},
                    {"Result",
                     {{"ResultCode", "MalformedMessage"}, {"Description", "DevAddr: missing"}}}});

  // Echo of a parsed request, 1.0: the 1.1-only code falls back.
  const EchoHeader full = echo_of(parsed_as<JoinReq>(join_1_0()).header);
  out = json::parse(encode_failure(full, ResultCode::frame_replayed, "DevNonce 0 reused"));
  CHECK(out["SenderID"] == "70B3D57ED0000000");
  CHECK(out["ReceiverID"] == "42FFFF");
  CHECK(out["MessageType"] == "JoinAns");
  CHECK(out["Result"]["ResultCode"] == "JoinReqFailed");
  CHECK(out["Result"]["Description"] == "DevNonce 0 reused");

  // Text that is not UTF-8 is replaced, not thrown over.
  const std::string text = encode_failure(EchoHeader{}, ResultCode::other, "bad \xff byte");
  CHECK(json::parse(text)["Result"]["ResultCode"] == "Other");
}

TEST_CASE("echo_of carries the header; a parse-then-answer round trip addresses the sender") {
  const Header h = header_1_1();
  const EchoHeader e = echo_of(h);
  CHECK(e.version == Version::v1_1);
  CHECK(e.sender_id == h.sender_id);
  CHECK(e.receiver_id == h.receiver_id);
  CHECK(e.transaction_id == h.transaction_id);
  CHECK(e.message_type == "JoinReq");
  CHECK(e.sender_token == h.sender_token);
  CHECK(e.sender_ns_id == h.sender_ns_id);
  CHECK_FALSE(e.dev_eui.has_value());

  json in = rejoin_1_1();
  in["TransactionID"] = 99;
  in["SenderToken"] = "0xdead";
  in["RxDelay"] = 99;
  const ParseError pe = error_of(in);
  const json out = json::parse(encode_failure(pe.echo, pe.code, pe.description));
  check_answer_header_1_1(out, 99, "RejoinAns", "DEAD");
  CHECK(out["Result"]["ResultCode"] == "MalformedMessage");
  CHECK(out["Result"]["Description"].get<std::string>().find("RxDelay") != std::string::npos);
}
