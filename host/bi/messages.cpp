#include "host/bi/messages.hpp"

#include <array>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

namespace lorakeep::host::bi {
namespace {

using nlohmann::json;
// Answers keep the header first, in the order the specification lists the fields, so that
// a logged answer reads like the specification's examples.
using ojson = nlohmann::ordered_json;

// A Backend Interfaces message is two levels deep (VSExtension holds a vendor object);
// nothing a Join Server answers needs more. Deeper bodies are refused before nlohmann
// builds them, so no level of nesting costs more than one byte of scanning.
constexpr std::size_t max_depth = 32;
// Untrusted text quoted in a description is cut to this many characters.
constexpr std::size_t max_quoted = 32;
// LoRaWAN PHYPayloads fit in the radio's 8-bit length field.
constexpr std::size_t max_phy_payload = 255;
constexpr std::size_t max_session_key_id = 64;

constexpr std::array<MessageType, 4> request_types{MessageType::join_req, MessageType::rejoin_req,
                                                   MessageType::app_s_key_req,
                                                   MessageType::home_ns_req};

// At most max_quoted characters of untrusted text between single quotes: printable ASCII
// kept, anything else (and the quote and backslash) as \xNN, "..." when cut.
std::string quote_untrusted(std::string_view text) {
  static constexpr std::string_view digits = "0123456789ABCDEF";
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < max_quoted; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte >= 0x20 && byte < 0x7F && byte != '\'' && byte != '\\') {
      out += text[i];
    } else {
      out += "\\x";
      out += digits[byte >> 4U];
      out += digits[byte & 0x0FU];
    }
  }
  out += '\'';
  if (text.size() > max_quoted) out += "...";
  return out;
}

// Whether the brackets of `body` nest deeper than max_depth, brackets in strings not
// counted. Anything else wrong with the body is left for the parser to find.
bool nests_too_deep(std::string_view body) noexcept {
  std::size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return true;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return false;
}

// What a JSON value is, for "expected X, got Y".
std::string_view kind_of(const json& v) noexcept {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number with a fraction or exponent";
    case json::value_t::binary:
    case json::value_t::discarded:
      break;
  }
  return "an unexpected value";
}

Failure malformed(std::string message) {
  return fail(Status::malformed, std::move(message));
}

Failure wrong_type(std::string_view name, std::string_view expected, const json& got) {
  return malformed(std::string(name) + ": expected " + std::string(expected) + ", got " +
                   std::string(kind_of(got)));
}

// The member `name` of `body`, or nullptr when it is absent or null: optional fields may
// be written as null by serializers that do not omit empty values.
const json* member(const json& body, std::string_view name) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

// A required member: present and not null.
Result<const json*> required(const json& body, std::string_view name) {
  const json* v = member(body, name);
  if (v == nullptr) return malformed(std::string(name) + ": missing");
  return v;
}

Result<std::string> read_string(const json& body, std::string_view name) {
  auto v = required(body, name);
  if (!v) return v.failure();
  if (!(*v)->is_string()) return wrong_type(name, "a string", **v);
  return (*v)->get_ref<const std::string&>();
}

// An integer in 0..max. Floats (even 5.0) and booleans are refused: peers write these
// fields as integers, and a float would have to be rounded to be used.
Result<std::uint32_t> read_uint(const json& body, std::string_view name, std::uint32_t max) {
  auto v = required(body, name);
  if (!v) return v.failure();
  const json& n = **v;
  const std::string expected = "an integer in 0.." + std::to_string(max);
  if (!n.is_number_integer()) return wrong_type(name, expected, n);
  // nlohmann reads non-negative integers as unsigned, except "-0", which is signed zero.
  if (!n.is_number_unsigned() && n.get<std::int64_t>() < 0) {
    return malformed(std::string(name) + ": expected " + expected + ", got " +
                     std::to_string(n.get<std::int64_t>()));
  }
  const auto value = n.is_number_unsigned() ? n.get<std::uint64_t>()
                                            : static_cast<std::uint64_t>(n.get<std::int64_t>());
  if (value > max) {
    return malformed(std::string(name) + ": expected " + expected + ", got " +
                     std::to_string(value));
  }
  return static_cast<std::uint32_t>(value);
}

// Hex of any length within min_size..max_size bytes.
Result<Bytes> read_hex(const json& body, std::string_view name, std::size_t min_size,
                       std::size_t max_size) {
  auto text = read_string(body, name);
  if (!text) return text.failure();
  auto decoded = lorawan::decode_hex(*text, name);
  if (!decoded) return decoded.failure();
  if (decoded->size() < min_size || decoded->size() > max_size) {
    return malformed(std::string(name) + ": expected " + std::to_string(min_size) + " to " +
                     std::to_string(max_size) + " bytes of hex, got " +
                     std::to_string(decoded->size()));
  }
  return Bytes(decoded->begin(), decoded->end());
}

// Hex of exactly `size` bytes.
Result<Bytes> read_sized_hex(const json& body, std::string_view name, std::size_t size) {
  auto text = read_string(body, name);
  if (!text) return text.failure();
  auto canonical = lorawan::normalize_hex(*text, size, name);
  if (!canonical) return canonical.failure();
  auto decoded = lorawan::decode_hex(*canonical, name);
  if (!decoded) return decoded.failure();
  return Bytes(decoded->begin(), decoded->end());
}

// A FixedId, the message naming the JSON field (SenderNSID rather than the type's NSID).
template <class Id>
Result<Id> read_id(const json& body, std::string_view name) {
  auto text = read_string(body, name);
  if (!text) return text.failure();
  auto canonical = lorawan::normalize_hex(*text, Id::size, name);
  if (!canonical) return canonical.failure();
  return Id::from_hex(*canonical);
}

Result<Version> read_version(const json& body) {
  auto text = read_string(body, "ProtocolVersion");
  if (!text) return text.failure();
  if (*text == "1.0") return Version::v1_0;
  if (*text == "1.1") return Version::v1_1;
  return malformed("ProtocolVersion: " + quote_untrusted(*text) + " is not 1.0 or 1.1");
}

std::optional<MessageType> request_type(std::string_view name) noexcept {
  for (const MessageType t : request_types) {
    if (name == message_type_name(t)) return t;
  }
  return std::nullopt;
}

ParseError parse_error(int http_status, ResultCode code, std::string description,
                       EchoHeader echo = {}) {
  return ParseError{http_status, code, std::move(description), std::move(echo)};
}

ParseError malformed_error(const Failure& failure, const EchoHeader& echo) {
  return parse_error(200, ResultCode::malformed, failure.message, echo);
}

// The fields JoinReq and RejoinReq share, after the header.
std::variant<JoinReq, Failure> read_join_fields(const json& body, Header header) {
  auto mac_version_text = read_string(body, "MACVersion");
  if (!mac_version_text) return mac_version_text.failure();
  auto mac_version = lorawan::parse_mac_version(*mac_version_text);
  if (!mac_version) return mac_version.failure();
  auto phy_payload = read_hex(body, "PHYPayload", 1, max_phy_payload);
  if (!phy_payload) return phy_payload.failure();
  auto dev_eui = read_id<lorawan::DevEui>(body, "DevEUI");
  if (!dev_eui) return dev_eui.failure();
  auto dev_addr = read_id<lorawan::DevAddr>(body, "DevAddr");
  if (!dev_addr) return dev_addr.failure();
  auto dl_settings = read_sized_hex(body, "DLSettings", 1);
  if (!dl_settings) return dl_settings.failure();
  auto rx_delay = read_uint(body, "RxDelay", 15);
  if (!rx_delay) return rx_delay.failure();

  // CFList is optional: absent, null and "" all mean none.
  std::optional<lorawan::CfList> cf_list;
  if (const json* cf = member(body, "CFList")) {
    if (!cf->is_string()) return wrong_type("CFList", "a string of hex", *cf);
    if (const auto& text = cf->get_ref<const std::string&>(); !text.empty()) {
      auto parsed = lorawan::CfList::from_hex(text);
      if (!parsed) return parsed.failure();
      cf_list = *parsed;
    }
  }

  JoinReq out;
  out.header = std::move(header);
  out.mac_version = *mac_version;
  out.phy_payload = std::move(*phy_payload);
  out.dev_eui = *dev_eui;
  out.dev_addr = *dev_addr;
  out.dl_settings = lorawan::DlSettings{(*dl_settings)[0]};
  out.rx_delay = lorawan::RxDelay{static_cast<std::uint8_t>(*rx_delay)};
  out.cf_list = cf_list;
  return out;
}

// The request of type header.type, its header already read.
std::variant<Request, Failure> read_message(const json& body, Header header) {
  switch (header.type) {
    case MessageType::join_req:
    case MessageType::rejoin_req: {
      const bool rejoin = header.type == MessageType::rejoin_req;
      auto fields = read_join_fields(body, std::move(header));
      if (auto* f = std::get_if<Failure>(&fields)) return std::move(*f);
      auto& join = std::get<JoinReq>(fields);
      if (rejoin) return Request(RejoinReq{std::move(join)});
      return Request(std::move(join));
    }
    case MessageType::app_s_key_req: {
      auto dev_eui = read_id<lorawan::DevEui>(body, "DevEUI");
      if (!dev_eui) return dev_eui.failure();
      auto session_key_id = read_hex(body, "SessionKeyID", 1, max_session_key_id);
      if (!session_key_id) return session_key_id.failure();
      return Request(AppSKeyReq{std::move(header), *dev_eui, std::move(*session_key_id)});
    }
    case MessageType::home_ns_req: {
      auto dev_eui = read_id<lorawan::DevEui>(body, "DevEUI");
      if (!dev_eui) return dev_eui.failure();
      return Request(HomeNSReq{std::move(header), *dev_eui});
    }
  }
  return malformed("MessageType: not a request a Join Server answers");
}

ojson key_envelope(const KeyEnvelope& envelope) {
  ojson out = ojson::object();
  // A plaintext key has no KEKLabel: the field is left out (as The Things Stack writes
  // it) rather than written "" (as ChirpStack does); both read an absent label as none.
  if (!envelope.kek_label.empty()) out["KEKLabel"] = envelope.kek_label;
  out["AESKey"] = lorawan::to_hex(envelope.aes_key);
  return out;
}

// The answer's header and Result, addressed from what `echo` holds.
ojson answer_base(const EchoHeader& echo, ResultCode code, std::string_view description) {
  const Version version = echo.version.value_or(Version::v1_0);
  ojson out = ojson::object();
  out["ProtocolVersion"] = version_name(version);
  if (echo.receiver_id) out["SenderID"] = *echo.receiver_id;
  if (echo.sender_id) out["ReceiverID"] = *echo.sender_id;
  if (echo.transaction_id) out["TransactionID"] = *echo.transaction_id;
  // Only the four requests a Join Server answers name an answer type; for anything else
  // (absent, misspelt, another service's request) MessageType is left out rather than
  // echoing the sender's text back as a type.
  if (echo.message_type) {
    if (const auto type = request_type(*echo.message_type)) {
      out["MessageType"] = answer_type_name(*type);
    }
  }
  if (echo.sender_token) out["ReceiverToken"] = lorawan::to_hex(*echo.sender_token);
  if (version == Version::v1_1 && echo.sender_ns_id) {
    out["ReceiverNSID"] = echo.sender_ns_id->hex();
  }
  ojson result = ojson::object();
  result["ResultCode"] = result_code_name(code, version);
  if (!description.empty()) result["Description"] = description;
  out["Result"] = std::move(result);
  return out;
}

// Compact JSON. Invalid UTF-8 (only possible in caller-supplied text such as a
// description) is replaced rather than thrown over.
std::string dump(const ojson& j) {
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

}  // namespace

std::string_view version_name(Version v) noexcept {
  return v == Version::v1_1 ? "1.1" : "1.0";
}

std::string_view result_code_name(ResultCode code, Version version) noexcept {
  const bool v1_1 = version == Version::v1_1;
  switch (code) {
    case ResultCode::success:
      return "Success";
    case ResultCode::mic_failed:
      return "MICFailed";
    case ResultCode::join_req_failed:
      return "JoinReqFailed";
    case ResultCode::no_roaming_agreement:
      return "NoRoamingAgreement";
    case ResultCode::dev_roaming_disallowed:
      return "DevRoamingDisallowed";
    case ResultCode::roaming_act_disallowed:
      return "RoamingActDisallowed";
    case ResultCode::activation_disallowed:
      return "ActivationDisallowed";
    case ResultCode::unknown_dev_eui:
      return "UnknownDevEUI";
    case ResultCode::unknown_dev_addr:
      return "UnknownDevAddr";
    case ResultCode::unknown_sender:
      return "UnknownSender";
    case ResultCode::unknown_receiver:
      return "UnknownReceiver";
    case ResultCode::deferred:
      return "Deferred";
    case ResultCode::xmit_failed:
      return "XmitFailed";
    case ResultCode::invalid_fport:
      return "InvalidFPort";
    case ResultCode::invalid_protocol_version:
      return "InvalidProtocolVersion";
    case ResultCode::stale_device_profile:
      return "StaleDeviceProfile";
    case ResultCode::malformed:
      return v1_1 ? "MalformedMessage" : "MalformedRequest";
    case ResultCode::frame_size_error:
      return "FrameSizeError";
    case ResultCode::other:
      return "Other";
    case ResultCode::no_action:
      return v1_1 ? "NoAction" : "Other";
    case ResultCode::frame_replayed:
      return v1_1 ? "FrameReplayed" : "JoinReqFailed";
  }
  return "Other";  // a value cast from outside the enumeration
}

std::optional<ResultCode> parse_result_code(std::string_view name) noexcept {
  static constexpr std::array<std::pair<std::string_view, ResultCode>, 23> names{{
      {"Success", ResultCode::success},
      {"MICFailed", ResultCode::mic_failed},
      {"JoinReqFailed", ResultCode::join_req_failed},
      {"NoRoamingAgreement", ResultCode::no_roaming_agreement},
      {"DevRoamingDisallowed", ResultCode::dev_roaming_disallowed},
      {"RoamingActDisallowed", ResultCode::roaming_act_disallowed},
      {"ActivationDisallowed", ResultCode::activation_disallowed},
      {"UnknownDevEUI", ResultCode::unknown_dev_eui},
      {"UnknownDevAddr", ResultCode::unknown_dev_addr},
      {"UnknownSender", ResultCode::unknown_sender},
      {"UnknownReceiver", ResultCode::unknown_receiver},
      {"UnkownReceiver", ResultCode::unknown_receiver},  // the specification's spelling
      {"Deferred", ResultCode::deferred},
      {"XmitFailed", ResultCode::xmit_failed},
      {"InvalidFPort", ResultCode::invalid_fport},
      {"InvalidProtocolVersion", ResultCode::invalid_protocol_version},
      {"StaleDeviceProfile", ResultCode::stale_device_profile},
      {"MalformedRequest", ResultCode::malformed},
      {"MalformedMessage", ResultCode::malformed},
      {"FrameSizeError", ResultCode::frame_size_error},
      {"Other", ResultCode::other},
      {"NoAction", ResultCode::no_action},
      {"FrameReplayed", ResultCode::frame_replayed},
  }};
  for (const auto& [spelling, code] : names) {
    if (name == spelling) return code;
  }
  return std::nullopt;
}

std::string_view message_type_name(MessageType t) noexcept {
  switch (t) {
    case MessageType::join_req:
      return "JoinReq";
    case MessageType::rejoin_req:
      return "RejoinReq";
    case MessageType::app_s_key_req:
      return "AppSKeyReq";
    case MessageType::home_ns_req:
      return "HomeNSReq";
  }
  return "JoinReq";  // a value cast from outside the enumeration
}

std::string_view answer_type_name(MessageType t) noexcept {
  switch (t) {
    case MessageType::join_req:
      return "JoinAns";
    case MessageType::rejoin_req:
      return "RejoinAns";
    case MessageType::app_s_key_req:
      return "AppSKeyAns";
    case MessageType::home_ns_req:
      return "HomeNSAns";
  }
  return "JoinAns";  // a value cast from outside the enumeration
}

const Header& header_of(const Request& request) noexcept {
  return std::visit([](const auto& m) -> const Header& { return m.header; }, request);
}

EchoHeader echo_of(const Header& header) {
  EchoHeader echo;
  echo.version = header.version;
  echo.sender_id = header.sender_id;
  echo.receiver_id = header.receiver_id;
  echo.transaction_id = header.transaction_id;
  echo.message_type = std::string(message_type_name(header.type));
  echo.sender_token = header.sender_token;
  echo.sender_ns_id = header.sender_ns_id;
  return echo;
}

std::variant<Request, ParseError> parse_request(std::string_view body) {
  if (nests_too_deep(body)) {
    return parse_error(400, ResultCode::malformed,
                       "body nests deeper than " + std::to_string(max_depth) + " levels");
  }
  // Without exceptions: a body that is not JSON comes back discarded.
  const json doc = json::parse(body, nullptr, false);
  if (doc.is_discarded()) return parse_error(400, ResultCode::malformed, "body is not JSON");
  if (!doc.is_object()) {
    return parse_error(400, ResultCode::malformed,
                       "body is " + std::string(kind_of(doc)) + ", not a JSON object");
  }

  // Every header field is read before any is judged, so that a failure answer is
  // addressed with all of them that are usable.
  auto version = read_version(doc);
  auto sender_id = read_string(doc, "SenderID");
  auto receiver_id = read_string(doc, "ReceiverID");
  auto transaction_id = read_uint(doc, "TransactionID", std::numeric_limits<std::uint32_t>::max());
  auto type_name = read_string(doc, "MessageType");
  // SenderToken is optional; "" is taken as no token, so no empty ReceiverToken is echoed.
  std::optional<Result<Bytes>> sender_token;
  if (member(doc, "SenderToken") != nullptr) {
    sender_token = read_hex(doc, "SenderToken", 0, std::numeric_limits<std::size_t>::max());
  }
  std::optional<Result<lorawan::NsId>> sender_ns_id;
  if (member(doc, "SenderNSID") != nullptr) {
    sender_ns_id = read_id<lorawan::NsId>(doc, "SenderNSID");
  }

  EchoHeader echo;
  if (version) echo.version = *version;
  if (sender_id) echo.sender_id = *sender_id;
  if (receiver_id) echo.receiver_id = *receiver_id;
  if (transaction_id) echo.transaction_id = *transaction_id;
  if (type_name) echo.message_type = *type_name;
  if (sender_token && *sender_token && !(*sender_token)->empty()) {
    echo.sender_token = **sender_token;
  }
  if (sender_ns_id && *sender_ns_id) echo.sender_ns_id = **sender_ns_id;
  if (auto dev_eui = read_id<lorawan::DevEui>(doc, "DevEUI")) echo.dev_eui = *dev_eui;

  if (!version) {
    return parse_error(200, ResultCode::invalid_protocol_version, version.failure().message, echo);
  }
  if (!sender_id) return malformed_error(sender_id.failure(), echo);
  if (!receiver_id) return malformed_error(receiver_id.failure(), echo);
  if (!transaction_id) return malformed_error(transaction_id.failure(), echo);
  if (!type_name) return malformed_error(type_name.failure(), echo);
  const auto type = request_type(*type_name);
  if (!type) {
    return parse_error(
        200, ResultCode::malformed,
        "MessageType: " + quote_untrusted(*type_name) + " is not a request a Join Server answers",
        echo);
  }
  if (sender_token && !*sender_token) return malformed_error(sender_token->failure(), echo);

  Header header;
  header.version = *version;
  header.sender_id = std::move(*sender_id);
  header.receiver_id = std::move(*receiver_id);
  header.transaction_id = *transaction_id;
  header.type = *type;
  header.sender_token = echo.sender_token;
  // SenderNSID is a 1.1 field: a 1.0 message's is ignored like any unknown field. In 1.1
  // every request from a Network Server carries it; an AppSKeyReq comes from an AS.
  if (*version == Version::v1_1) {
    if (sender_ns_id && !*sender_ns_id) return malformed_error(sender_ns_id->failure(), echo);
    if (!sender_ns_id && *type != MessageType::app_s_key_req) {
      return parse_error(200, ResultCode::malformed,
                         "SenderNSID: missing (required from a Network Server in 1.1)", echo);
    }
    header.sender_ns_id = echo.sender_ns_id;
  }

  auto message = read_message(doc, std::move(header));
  if (auto* f = std::get_if<Failure>(&message)) return malformed_error(*f, echo);
  return std::get<Request>(std::move(message));
}

std::string encode_join_answer(const Header& request, const JoinAnswer& answer) {
  ojson out = answer_base(echo_of(request), ResultCode::success, {});
  out["PHYPayload"] = lorawan::to_hex(answer.phy_payload);
  out["Lifetime"] = answer.lifetime;
  const std::array<std::pair<const char*, const std::optional<KeyEnvelope>*>, 5> keys{{
      {"NwkSKey", &answer.nwk_s_key},
      {"FNwkSIntKey", &answer.f_nwk_s_int_key},
      {"SNwkSIntKey", &answer.s_nwk_s_int_key},
      {"NwkSEncKey", &answer.nwk_s_enc_key},
      {"AppSKey", &answer.app_s_key},
  }};
  for (const auto& [name, key] : keys) {
    if (key->has_value()) out[name] = key_envelope(**key);
  }
  if (!answer.session_key_id.empty()) {
    out["SessionKeyID"] = lorawan::to_hex(answer.session_key_id);
  }
  return dump(out);
}

std::string encode_app_s_key_answer(const Header& request, const lorawan::DevEui& dev_eui,
                                    const KeyEnvelope& app_s_key, const Bytes& session_key_id) {
  ojson out = answer_base(echo_of(request), ResultCode::success, {});
  out["DevEUI"] = dev_eui.hex();
  out["AppSKey"] = key_envelope(app_s_key);
  out["SessionKeyID"] = lorawan::to_hex(session_key_id);
  return dump(out);
}

std::string encode_home_ns_answer(const Header& request, const lorawan::NetId& h_net_id,
                                  const std::optional<lorawan::NsId>& hnsid) {
  ojson out = answer_base(echo_of(request), ResultCode::success, {});
  out["HNetID"] = h_net_id.hex();
  if (request.version == Version::v1_1 && hnsid) out["HNSID"] = hnsid->hex();
  return dump(out);
}

std::string encode_failure(const EchoHeader& echo, ResultCode code, std::string_view description) {
  return dump(answer_base(echo, code, description));
}

}  // namespace lorakeep::host::bi
