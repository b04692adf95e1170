#include "tools/nsim/ns.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

namespace lorakeep::nsim {
namespace {

using nlohmann::json;

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (out.rfind("0X", 0) == 0) out.erase(0, 2);
  return out;
}

std::string hex(std::span<const std::uint8_t> b) {
  return lorawan::to_hex(b);
}

Result<Bytes> unhex(const std::string& text, std::string_view what) {
  auto decoded = lorawan::decode_hex(text, what);
  if (!decoded) return decoded.failure();
  return Bytes(decoded->begin(), decoded->end());
}

Result<Envelope> read_envelope(const json& j, const char* name) {
  if (!j.is_object()) return fail(Status::malformed, std::string(name) + ": not an object");
  Envelope e;
  if (const auto it = j.find("KEKLabel"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return fail(Status::malformed, std::string(name) + ".KEKLabel: not text");
    if (!it->get<std::string>().empty()) e.kek_label = it->get<std::string>();
  }
  const auto key = j.find("AESKey");
  if (key == j.end() || !key->is_string()) {
    return fail(Status::malformed, std::string(name) + ".AESKey: missing or not text");
  }
  auto bytes = unhex(key->get<std::string>(), std::string(name) + ".AESKey");
  if (!bytes) return bytes.failure();
  e.aes_key = std::move(*bytes);
  return e;
}

void add(JoinVerdict& v, std::string name, bool ok, std::string detail) {
  v.checks.push_back({std::move(name), ok, std::move(detail)});
}

/// One session key: present, under the expected KEK (or plaintext), equal to `want`.
void check_key(JoinVerdict& v, const char* name, const std::optional<Envelope>& got,
               const std::optional<Kek>& kek, const Key& want) {
  if (!got) {
    add(v, name, false, "missing from the answer");
    return;
  }
  if (kek) {
    if (got->kek_label != kek->label) {
      add(v, name, false,
          "KEKLabel " + (got->kek_label ? "'" + *got->kek_label + "'" : std::string("absent")) +
              ", expected '" + kek->label + "'");
      return;
    }
    const auto plain = rfc3394_unwrap(kek->key, got->aes_key);
    if (!plain) {
      add(v, name, false,
          "does not unwrap with KEK '" + kek->label + "' (RFC 3394 integrity check failed)");
      return;
    }
    if (!(*plain == want)) {
      add(v, name, false,
          "unwrapped with KEK '" + kek->label + "': differs from the device's derivation");
      return;
    }
    add(v, name, true, "unwrapped with KEK '" + kek->label + "': matches the device's derivation");
    return;
  }
  if (got->kek_label) {
    add(v, name, false, "wrapped under '" + *got->kek_label + "', but no KEK file was given");
    return;
  }
  const auto plain = Key::from(got->aes_key);
  if (!plain || !(*plain == want)) {
    add(v, name, false, "plaintext key differs from the device's derivation");
    return;
  }
  add(v, name, true, "delivered in plaintext (no KEK): matches the device's derivation");
}

void check_absent(JoinVerdict& v, const char* name, const std::optional<Envelope>& got,
                  const char* why) {
  if (got) add(v, name, false, std::string("present, but ") + why);
}

}  // namespace

std::string JoinReq::json() const {
  nlohmann::json j = {{"ProtocolVersion", protocol_version},
                      {"SenderID", net_id.hex()},
                      {"ReceiverID", join_eui.hex()},
                      {"TransactionID", transaction_id},
                      {"MessageType", "JoinReq"},
                      {"MACVersion", mac_version},
                      {"PHYPayload", hex(phy_payload)},
                      {"DevEUI", dev_eui.hex()},
                      {"DevAddr", dev_addr.hex()},
                      {"DLSettings", hex(std::span(&dl_settings, 1))},
                      {"RxDelay", rx_delay}};
  if (sender_ns_id) j["SenderNSID"] = sender_ns_id->hex();
  if (cf_list) j["CFList"] = hex(*cf_list);
  return j.dump();
}

JoinReq make_join_req(const Device& device, std::uint16_t dev_nonce, const lorawan::NetId& net_id,
                      const lorawan::DevAddr& dev_addr, std::uint32_t transaction_id) {
  JoinReq r;
  const bool one_one = lorawan::is_1_1(device.mac_version);
  r.protocol_version = one_one ? "1.1" : "1.0";
  r.net_id = net_id;
  // An NSID for this simulated Network Server: its NetID, padded.
  if (one_one) r.sender_ns_id = lorawan::NsId::from_uint(0x00000000FF000000ULL | net_id.to_uint());
  r.transaction_id = transaction_id;
  r.mac_version = std::string(lorawan::mac_version_name(device.mac_version));
  const auto phy = join_request(device, dev_nonce);
  r.phy_payload.assign(phy.begin(), phy.end());
  r.dev_eui = device.dev_eui;
  r.join_eui = device.join_eui;
  r.dev_addr = dev_addr;
  r.dl_settings = one_one ? 0x80 : 0x00;  // OptNeg for a 1.1 device
  r.rx_delay = 1;
  return r;
}

std::string AppSKeyReq::json() const {
  const nlohmann::json j = {
      {"ProtocolVersion", protocol_version}, {"SenderID", as_id},
      {"ReceiverID", join_eui.hex()},        {"TransactionID", transaction_id},
      {"MessageType", "AppSKeyReq"},         {"DevEUI", dev_eui.hex()},
      {"SessionKeyID", hex(session_key_id)}};
  return j.dump();
}

Result<Answer> parse_answer(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return fail(Status::malformed, "the answer is not a JSON object");
  }
  Answer a;
  const auto text = [&](const char* name, std::string& out) -> Result<Ok> {
    const auto it = j.find(name);
    if (it == j.end() || it->is_null()) return Ok{};
    if (!it->is_string()) return fail(Status::malformed, std::string(name) + ": not text");
    out = it->get<std::string>();
    return Ok{};
  };
  const auto number = [&](const char* name, std::optional<std::uint64_t>& out) -> Result<Ok> {
    const auto it = j.find(name);
    if (it == j.end() || it->is_null()) return Ok{};
    if (!it->is_number_unsigned()) {
      return fail(Status::malformed, std::string(name) + ": not a number");
    }
    out = it->get<std::uint64_t>();
    return Ok{};
  };
  for (const auto& [name, out] :
       {std::pair<const char*, std::string*>{"MessageType", &a.message_type},
        {"SenderID", &a.sender_id},
        {"ReceiverID", &a.receiver_id},
        {"ReceiverNSID", &a.receiver_ns_id},
        {"DevEUI", &a.dev_eui}}) {
    if (auto ok = text(name, *out); !ok) return ok.failure();
  }
  if (auto ok = number("TransactionID", a.transaction_id); !ok) return ok.failure();
  if (auto ok = number("Lifetime", a.lifetime); !ok) return ok.failure();
  if (const auto r = j.find("Result"); r != j.end()) {
    if (!r->is_object()) return fail(Status::malformed, "Result: not an object");
    const auto code = r->find("ResultCode");
    if (code == r->end() || !code->is_string()) {
      return fail(Status::malformed, "Result.ResultCode: missing or not text");
    }
    a.result_code = code->get<std::string>();
    if (const auto d = r->find("Description"); d != r->end() && d->is_string()) {
      a.description = d->get<std::string>();
    }
  }
  std::string phy;
  if (auto ok = text("PHYPayload", phy); !ok) return ok.failure();
  if (!phy.empty()) {
    auto bytes = unhex(phy, "PHYPayload");
    if (!bytes) return bytes.failure();
    a.phy_payload = std::move(*bytes);
  }
  std::string skid;
  if (auto ok = text("SessionKeyID", skid); !ok) return ok.failure();
  if (!skid.empty()) {
    auto bytes = unhex(skid, "SessionKeyID");
    if (!bytes) return bytes.failure();
    a.session_key_id = std::move(*bytes);
  }
  for (const auto& [name, out] :
       {std::pair<const char*, std::optional<Envelope>*>{"NwkSKey", &a.nwk_s_key},
        {"FNwkSIntKey", &a.f_nwk_s_int_key},
        {"SNwkSIntKey", &a.s_nwk_s_int_key},
        {"NwkSEncKey", &a.nwk_s_enc_key},
        {"AppSKey", &a.app_s_key}}) {
    const auto it = j.find(name);
    if (it == j.end() || it->is_null()) continue;
    auto e = read_envelope(*it, name);
    if (!e) return e.failure();
    *out = std::move(*e);
  }
  return a;
}

bool JoinVerdict::ok() const noexcept {
  return !checks.empty() &&
         std::all_of(checks.begin(), checks.end(), [](const Check& c) { return c.ok; });
}

std::string JoinVerdict::first_failure() const {
  for (const auto& c : checks) {
    if (!c.ok) return c.name;
  }
  return "";
}

JoinVerdict verify_join_answer(const Device& device, std::uint16_t dev_nonce,
                               const JoinReq& request, const Answer& answer,
                               const KeyExpectations& expect) {
  JoinVerdict v;
  if (answer.result_code != "Success") {
    add(v, "ResultCode", false,
        (answer.result_code.empty() ? std::string("no Result") : answer.result_code) +
            (answer.description.empty() ? "" : ": " + answer.description));
    return v;
  }
  add(v, "ResultCode", true, "Success");

  const bool echo_ok =
      answer.message_type == "JoinAns" && answer.transaction_id == request.transaction_id &&
      upper(answer.sender_id) == request.join_eui.hex() &&
      upper(answer.receiver_id) == request.net_id.hex() &&
      (!request.sender_ns_id || upper(answer.receiver_ns_id) == request.sender_ns_id->hex());
  add(v, "header", echo_ok,
      echo_ok ? "JoinAns; TransactionID, SenderID/ReceiverID" +
                    std::string(request.sender_ns_id ? ", ReceiverNSID" : "") + " echoed"
              : "MessageType '" + answer.message_type + "', TransactionID " +
                    (answer.transaction_id ? std::to_string(*answer.transaction_id) : "absent") +
                    ", SenderID '" + answer.sender_id + "', ReceiverID '" + answer.receiver_id +
                    "' do not echo the request");

  auto opened = open_join_accept(device, answer.phy_payload, dev_nonce);
  if (!opened) {
    add(v, "join-accept", false, opened.failure().message);
    return v;
  }
  const OpenedAccept& acc = *opened;
  v.accept = acc;
  add(v, "join-accept MIC", acc.mic_ok,
      acc.mic_ok ? std::string(acc.lorawan_1_1 ? "verifies under JSIntKey (LoRaWAN 1.1, OptNeg)"
                                               : "verifies under the root key (LoRaWAN 1.0)")
                 : "does not verify: the device would drop this join-accept");
  if (!acc.mic_ok) return v;
  const AcceptFields& f = acc.fields;
  add(v, "JoinNonce", f.join_nonce != 0, std::to_string(f.join_nonce));
  const bool fields_ok = f.net_id == request.net_id && f.dev_addr == request.dev_addr &&
                         f.dl_settings == request.dl_settings && f.rx_delay == request.rx_delay &&
                         f.cf_list == request.cf_list;
  add(v, "join-accept fields", fields_ok,
      fields_ok ? "NetID " + f.net_id.hex() + ", DevAddr " + f.dev_addr.hex() +
                      ", DLSettings, RxDelay and CFList as sent"
                : "NetID " + f.net_id.hex() + ", DevAddr " + f.dev_addr.hex() +
                      ": not what the JoinReq asked for");
  add(v, "Lifetime", answer.lifetime.has_value() && *answer.lifetime > 0,
      answer.lifetime ? std::to_string(*answer.lifetime) + " s" : "missing");
  add(v, "SessionKeyID", !answer.session_key_id.empty(),
      answer.session_key_id.empty() ? "missing"
                                    : std::to_string(answer.session_key_id.size()) + " bytes");

  const SessionKeys keys = derive_session_keys(device, f, dev_nonce);
  if (keys.lorawan_1_1) {
    check_key(v, "FNwkSIntKey", answer.f_nwk_s_int_key, expect.ns_kek, keys.f_nwk_s_int_key);
    check_key(v, "SNwkSIntKey", answer.s_nwk_s_int_key, expect.ns_kek, keys.s_nwk_s_int_key);
    check_key(v, "NwkSEncKey", answer.nwk_s_enc_key, expect.ns_kek, keys.nwk_s_enc_key);
    check_absent(v, "NwkSKey", answer.nwk_s_key, "a 1.1 join with OptNeg has no NwkSKey");
  } else {
    check_key(v, "NwkSKey", answer.nwk_s_key, expect.ns_kek, keys.nwk_s_key);
    for (const auto& [name, got] : {std::pair<const char*, const std::optional<Envelope>*>{
                                        "FNwkSIntKey", &answer.f_nwk_s_int_key},
                                    {"SNwkSIntKey", &answer.s_nwk_s_int_key},
                                    {"NwkSEncKey", &answer.nwk_s_enc_key}}) {
      check_absent(v, name, *got, "a 1.0 join has only NwkSKey");
    }
  }
  if (expect.as_kek) {
    check_key(v, "AppSKey", answer.app_s_key, expect.as_kek, keys.app_s_key);
  } else if (answer.app_s_key) {
    add(v, "AppSKey", false, "present, though no AS KEK was expected");
  }
  return v;
}

JoinVerdict verify_app_s_key_answer(const AppSKeyReq& request, const Answer& answer,
                                    const Kek& as_kek, const Key& app_s_key) {
  JoinVerdict v;
  if (answer.result_code != "Success") {
    add(v, "ResultCode", false,
        (answer.result_code.empty() ? std::string("no Result") : answer.result_code) +
            (answer.description.empty() ? "" : ": " + answer.description));
    return v;
  }
  add(v, "ResultCode", true, "Success");
  const bool echo_ok = answer.message_type == "AppSKeyAns" &&
                       answer.transaction_id == request.transaction_id &&
                       upper(answer.receiver_id) == upper(request.as_id) &&
                       upper(answer.dev_eui) == request.dev_eui.hex() &&
                       answer.session_key_id == request.session_key_id;
  add(v, "header", echo_ok,
      echo_ok ? "AppSKeyAns; TransactionID, DevEUI and SessionKeyID echoed"
              : "the answer does not echo the request");
  check_key(v, "AppSKey", answer.app_s_key, as_kek, app_s_key);
  return v;
}

}  // namespace lorakeep::nsim
