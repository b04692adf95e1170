// LoRaWAN Backend Interfaces (TS002 1.0 and 1.1) messages as the Join Server receives and
// answers them: parsed once into validated values, answers written with the header rules
// of the request's version. JSON by nlohmann-json; nothing here talks to a network.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "schemas/lorawan/types.hpp"

namespace lorakeep::host::bi {

using Bytes = std::vector<std::uint8_t>;

enum class Version { v1_0, v1_1 };
/// "1.0" / "1.1".
std::string_view version_name(Version v) noexcept;

/// Result codes of TS002 1.0 and 1.1. `malformed` is written MalformedRequest in 1.0 and
/// MalformedMessage in 1.1.
enum class ResultCode {
  success,
  mic_failed,
  join_req_failed,
  no_roaming_agreement,
  dev_roaming_disallowed,
  roaming_act_disallowed,
  activation_disallowed,
  unknown_dev_eui,
  unknown_dev_addr,
  unknown_sender,
  unknown_receiver,
  deferred,
  xmit_failed,
  invalid_fport,
  invalid_protocol_version,
  stale_device_profile,
  malformed,
  frame_size_error,
  other,
  no_action,       // 1.1
  frame_replayed,  // 1.1
};

/// The name written in an answer of `version`: malformed → "MalformedRequest" (1.0) or
/// "MalformedMessage" (1.1); unknown_receiver → "UnknownReceiver"; a 1.1-only code in a
/// 1.0 answer → its nearest 1.0 code (frame_replayed → "JoinReqFailed", no_action → "Other").
std::string_view result_code_name(ResultCode code, Version version) noexcept;
/// Reads a ResultCode as peers write it, in either version: "MalformedRequest" and
/// "MalformedMessage" → malformed; "UnknownReceiver" and the specification's
/// "UnkownReceiver" → unknown_receiver. Exact case. std::nullopt when unknown.
std::optional<ResultCode> parse_result_code(std::string_view name) noexcept;

enum class MessageType { join_req, rejoin_req, app_s_key_req, home_ns_req };
/// "JoinReq", "RejoinReq", "AppSKeyReq", "HomeNSReq".
std::string_view message_type_name(MessageType t) noexcept;
/// "JoinAns", "RejoinAns", "AppSKeyAns", "HomeNSAns".
std::string_view answer_type_name(MessageType t) noexcept;

/// The header of a request, validated.
struct Header {
  Version version = Version::v1_0;
  std::string sender_id;    // as sent (trimmed of nothing); NetID hex for an NS, AS-ID for an AS
  std::string receiver_id;  // as sent
  std::uint32_t transaction_id = 0;
  MessageType type = MessageType::join_req;
  std::optional<Bytes> sender_token;          // echoed as ReceiverToken
  std::optional<lorawan::NsId> sender_ns_id;  // 1.1; echoed as ReceiverNSID
};

struct JoinReq {
  Header header;
  lorawan::MacVersion mac_version = lorawan::MacVersion::v1_0_2;
  Bytes phy_payload;
  lorawan::DevEui dev_eui;
  lorawan::DevAddr dev_addr;
  lorawan::DlSettings dl_settings;
  lorawan::RxDelay rx_delay;
  std::optional<lorawan::CfList> cf_list;
};
/// Same fields; PHYPayload is a rejoin-request.
struct RejoinReq : JoinReq {};

struct AppSKeyReq {
  Header header;
  lorawan::DevEui dev_eui;
  Bytes session_key_id;
};

struct HomeNSReq {
  Header header;
  lorawan::DevEui dev_eui;
};

using Request = std::variant<JoinReq, RejoinReq, AppSKeyReq, HomeNSReq>;
const Header& header_of(const Request& request) noexcept;

/// What could be read of a request's header, to address a failure answer. Every field is
/// the request's own value when it was present and of the right type, else empty.
struct EchoHeader {
  std::optional<Version> version;  // absent (unknown or missing): the answer says "1.0"
  std::optional<std::string> sender_id;
  std::optional<std::string> receiver_id;
  std::optional<std::uint32_t> transaction_id;
  std::optional<std::string> message_type;  // as sent; "JoinReq" → answered "JoinAns"
  std::optional<Bytes> sender_token;
  std::optional<lorawan::NsId> sender_ns_id;
  std::optional<lorawan::DevEui> dev_eui;  // for logs, when the body had a valid one
};
EchoHeader echo_of(const Header& header);

/// A request that cannot be served as sent.
struct ParseError {
  /// 400 when the body is not a JSON object at all (no Result can be addressed);
  /// otherwise 200 with a failure answer built from `echo`.
  int http_status = 200;
  ResultCode code = ResultCode::malformed;
  std::string description;  // names the field and what is wrong, e.g. "DevEUI: expected 8 bytes of
                            // hex, got 7"
  EchoHeader echo;
};

/// Parses a request body.
/// - not JSON, or JSON but not an object → http_status 400, malformed.
/// - ProtocolVersion missing or not "1.0"/"1.1" → invalid_protocol_version.
/// - MessageType missing or not one of the four requests → malformed ("MessageType:
///   'X' is not a request a Join Server answers").
/// - any required field missing or of the wrong JSON type, any hex of the wrong length or
///   with a non-hex digit, TransactionID not an integer in 0..2^32-1, RxDelay not an
///   integer in 0..15, MACVersion unknown → malformed, the description naming the field.
/// - 1.1 JoinReq/RejoinReq/HomeNSReq without SenderNSID → malformed.
/// Hex is accepted in either case with or without "0x". Unknown fields and VSExtension
/// are ignored. CFList may be absent, null or "" (no CFList). SessionKeyID: 1 to 64 bytes.
std::variant<Request, ParseError> parse_request(std::string_view body);

/// A session key as delivered: wrapped under `kek_label`, or plaintext without one.
struct KeyEnvelope {
  std::string kek_label;  // empty: aes_key is the key itself
  Bytes aes_key;
};

/// JoinAns / RejoinAns on success. Absent keys are not written.
struct JoinAnswer {
  Bytes phy_payload;
  std::uint32_t lifetime = 0;                  // seconds
  std::optional<KeyEnvelope> nwk_s_key;        // 1.0.x (and 1.1 with OptNeg = 0)
  std::optional<KeyEnvelope> f_nwk_s_int_key;  // 1.1
  std::optional<KeyEnvelope> s_nwk_s_int_key;
  std::optional<KeyEnvelope> nwk_s_enc_key;
  std::optional<KeyEnvelope> app_s_key;
  Bytes session_key_id;
};

// Every answer: ProtocolVersion of the request; SenderID = the request's ReceiverID and
// ReceiverID = its SenderID; TransactionID echoed; MessageType the answer's;
// ReceiverToken = the request's SenderToken when it had one; in 1.1 ReceiverNSID = the
// request's SenderNSID when it had one; "Result": {"ResultCode": ...} (plus
// "Description" when not empty). Hex upper case without 0x. Compact JSON.

/// JoinAns or RejoinAns (after the request's type), Result Success.
std::string encode_join_answer(const Header& request, const JoinAnswer& answer);
/// AppSKeyAns, Result Success, with DevEUI, AppSKey and SessionKeyID.
std::string encode_app_s_key_answer(const Header& request, const lorawan::DevEui& dev_eui,
                                    const KeyEnvelope& app_s_key, const Bytes& session_key_id);
/// HomeNSAns, Result Success, HNetID; in 1.1 also HNSID when given.
std::string encode_home_ns_answer(const Header& request, const lorawan::NetId& h_net_id,
                                  const std::optional<lorawan::NsId>& hnsid);
/// A failure answer: the header rules above from what `echo` holds (fields it lacks are
/// left out; MessageType "XAns" for a request "XReq", left out otherwise), Result with
/// `code` named for the version and `description`.
std::string encode_failure(const EchoHeader& echo, ResultCode code, std::string_view description);

}  // namespace lorakeep::host::bi
