// Sample Backend Interfaces messages and small helpers shared by the codec tests
// (bi_test.cpp: requests and result codes; bi_answer_test.cpp: answers).
#pragma once

#include <doctest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <variant>

#include "host/bi/messages.hpp"

namespace lorakeep::host::bi::samples {

using json = nlohmann::json;

// The Things Stack's client test message (BACKEND-INTERFACES.md).
constexpr const char* wire_example =
    R"({"ProtocolVersion":"1.0","TransactionID":0,"MessageType":"JoinReq","SenderID":"42FFFF",
 "ReceiverID":"70B3D57ED0000000","MACVersion":"1.0.3",
 "PHYPayload":"00000000D07ED5B370080706050403020100003851F0B6",
 "DevEUI":"0102030405060708","DevAddr":"01020304","DLSettings":"00","RxDelay":5})";

inline json join_1_0() {
  return json::parse(wire_example);
}
inline json join_1_1() {
  json j = join_1_0();
  j["ProtocolVersion"] = "1.1";
  j["MACVersion"] = "1.1.0";
  j["SenderNSID"] = "0x70b3d57ed0000001";
  return j;
}
inline json rejoin_1_1() {
  json j = join_1_1();
  j["MessageType"] = "RejoinReq";
  j["PHYPayload"] = "C0000000000000000000000000000000000000";
  return j;
}
inline json app_s_key_1_0() {
  return {{"ProtocolVersion", "1.0"},         {"SenderID", "as.example.com"},
          {"ReceiverID", "70B3D57ED0000000"}, {"TransactionID", 7},
          {"MessageType", "AppSKeyReq"},      {"DevEUI", "0102030405060708"},
          {"SessionKeyID", "0xabcdef"}};
}
inline json home_ns_1_1() {
  return {{"ProtocolVersion", "1.1"},         {"SenderID", "000013"},
          {"ReceiverID", "70B3D57ED0000000"}, {"TransactionID", 4294967295U},
          {"MessageType", "HomeNSReq"},       {"DevEUI", "0102030405060708"},
          {"SenderNSID", "0000000000000013"}};
}

inline std::variant<Request, ParseError> parse(const json& j) {
  return parse_request(j.dump());
}

template <class T>
inline T parsed_as(const json& j) {
  auto r = parse(j);
  const auto* e = std::get_if<ParseError>(&r);
  REQUIRE_MESSAGE(e == nullptr, (e != nullptr ? e->description : ""));
  const auto& request = std::get<Request>(r);
  REQUIRE(std::holds_alternative<T>(request));
  return std::get<T>(request);
}

inline ParseError error_of_body(std::string_view body) {
  auto r = parse_request(body);
  REQUIRE(std::holds_alternative<ParseError>(r));
  return std::get<ParseError>(r);
}
inline ParseError error_of(const json& j) {
  return error_of_body(j.dump());
}

// A 200 malformed whose description names `field`.
inline void check_malformed(const json& j, std::string_view field) {
  CAPTURE(j.dump());
  const ParseError e = error_of(j);
  CHECK(e.http_status == 200);
  CHECK(e.code == ResultCode::malformed);
  CHECK_MESSAGE(e.description.find(field) != std::string::npos, e.description);
}

inline std::string repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i)
    out += s;
  return out;
}

inline std::set<std::string> keys_of(const json& j) {
  std::set<std::string> out;
  for (const auto& [k, v] : j.items())
    out.insert(k);
  return out;
}

inline Header header_1_1() {
  auto r = parsed_as<JoinReq>(join_1_1());
  r.header.sender_token = Bytes{0xAB, 0x01};
  return r.header;
}

}  // namespace lorakeep::host::bi::samples
