#include "appliance/server/convert.hpp"

#include <openssl/crypto.h>

#include <optional>
#include <span>
#include <string>

#include "schemas/lorawan/frames.hpp"

namespace lorakeep::appliance::server {
namespace {

using Bytes = std::vector<std::uint8_t>;

std::span<const std::uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

Failure bad(std::string_view field, const std::string& why) {
  return fail(Status::malformed, std::string(field) + ": " + why);
}

std::string got(std::size_t n) {
  return ", got " + std::to_string(n);
}

std::string field_of(std::string_view parent, std::string_view name) {
  return std::string(parent) + "." + std::string(name);
}

template <class Id>
Result<Id> fixed(const std::string& bytes, std::string_view field) {
  if (bytes.size() != Id::size) {
    return bad(field, "must be " + std::to_string(Id::size) + " bytes" + got(bytes.size()));
  }
  return Id::from_bytes(std::span<const std::uint8_t, Id::size>(
      reinterpret_cast<const std::uint8_t*>(bytes.data()), Id::size));
}

Result<lorawan::JoinAcceptFields> accept_fields(const v1::AcceptFields& a,
                                                std::string_view parent) {
  auto join_nonce = lorawan::JoinNonce::create(a.join_nonce());
  if (!join_nonce) {
    return bad(field_of(parent, "join_nonce"),
               "must be at most 0xFFFFFF (24 bits), got " + std::to_string(a.join_nonce()));
  }
  auto net_id = fixed<lorawan::NetId>(a.net_id(), field_of(parent, "net_id"));
  if (!net_id) return net_id.failure();
  auto dev_addr = fixed<lorawan::DevAddr>(a.dev_addr(), field_of(parent, "dev_addr"));
  if (!dev_addr) return dev_addr.failure();
  if (a.dl_settings() > 0xFF) {
    return bad(field_of(parent, "dl_settings"),
               "must be one byte (0 to 255), got " + std::to_string(a.dl_settings()));
  }
  if (a.rx_delay() > 0xFF) {
    return bad(field_of(parent, "rx_delay"),
               "must be one byte (0 to 255), got " + std::to_string(a.rx_delay()));
  }
  lorawan::JoinAcceptFields f{*join_nonce,
                              *net_id,
                              *dev_addr,
                              lorawan::DlSettings{static_cast<std::uint8_t>(a.dl_settings())},
                              lorawan::RxDelay{static_cast<std::uint8_t>(a.rx_delay())},
                              std::nullopt};
  if (!a.cf_list().empty()) {
    if (a.cf_list().size() != 16) {
      return bad(field_of(parent, "cf_list"),
                 "must be empty or 16 bytes" + got(a.cf_list().size()));
    }
    lorawan::CfList cf;
    const auto b = bytes_of(a.cf_list());
    std::copy(b.begin(), b.end(), cf.bytes.begin());
    f.cf_list = cf;
  }
  return f;
}

Result<RootKeys> root_keys(const v1::RootKeys& r, bool needs_nwk_key, std::string_view parent) {
  if (r.has_wrapped()) {
    const auto& w = r.wrapped();
    const std::string base = field_of(parent, "wrapped");
    if (w.app_key().size() != 24) {
      return bad(field_of(base, "app_key"),
                 "must be 24 bytes (RFC 3394 under the storage key)" + got(w.app_key().size()));
    }
    if (needs_nwk_key ? w.nwk_key().size() != 24
                      : !w.nwk_key().empty() && w.nwk_key().size() != 24) {
      return bad(field_of(base, "nwk_key"),
                 std::string(needs_nwk_key ? "must be 24 bytes for LoRaWAN 1.1"
                                           : "must be empty or 24 bytes") +
                     got(w.nwk_key().size()));
    }
    const auto app = bytes_of(w.app_key());
    const auto nwk = bytes_of(w.nwk_key());
    return RootKeys{WrappedRootKeys{Bytes(app.begin(), app.end()), Bytes(nwk.begin(), nwk.end())}};
  }
  if (r.has_part()) {
    const std::string base = field_of(parent, "part");
    auto part = checked_label(r.part().part_number(), field_of(base, "part_number"));
    if (!part) return part.failure();
    const auto& serial = r.part().serial();
    if (serial.empty() || serial.size() > 12) {
      return bad(field_of(base, "serial"), "must be 1 to 12 bytes" + got(serial.size()));
    }
    const auto s = bytes_of(serial);
    return RootKeys{PartRootKeys{*part, Bytes(s.begin(), s.end())}};
  }
  return bad(parent, "set wrapped or part");
}

}  // namespace

Result<std::string> checked_label(const std::string& text, std::string_view field) {
  if (text.empty() || text.size() > 64) {
    return bad(field, "must be 1 to 64 characters" + got(text.size()));
  }
  for (const char c : text) {
    if (c < 0x21 || c > 0x7E) return bad(field, "must be printable ASCII without blanks");
  }
  return text;
}

Result<lorawan::DevEui> checked_dev_eui(const std::string& bytes, std::string_view field) {
  return fixed<lorawan::DevEui>(bytes, field);
}

Result<Delivery> checked_delivery(const v1::Delivery& d, std::string_view field) {
  Delivery out;
  out.plaintext_allowed = d.plaintext_allowed();
  if (!d.kek_label().empty()) {
    auto label = checked_label(d.kek_label(), field_of(field, "kek_label"));
    if (!label) return label.failure();
    out.kek_label = *label;
  }
  return out;
}

namespace {

/// Where a join's or rejoin's keys go (ns, as, store_app_s_key, app_s_key_only), into a
/// JoinInput or RejoinInput.
template <typename Op, typename Input>
Result<Ok> set_key_plan(const Op& op, const std::string& name, Input& in) {
  in.store_app_s_key = op.store_app_s_key();
  in.app_s_key_only = op.app_s_key_only();
  if (op.app_s_key_only()) {
    if (!op.has_as()) return bad(name + ".as", "required with app_s_key_only");
    if (op.store_app_s_key()) {
      return bad(name + ".store_app_s_key", "must not be set with app_s_key_only");
    }
  } else if (!op.has_ns()) {
    return bad(name + ".ns", "required");
  }
  if (op.has_ns()) {
    auto ns = checked_delivery(op.ns(), name + ".ns");
    if (!ns) return ns.failure();
    in.ns = *ns;
  }
  if (op.has_as()) {
    auto as = checked_delivery(op.as(), name + ".as");
    if (!as) return as.failure();
    in.as = *as;
  }
  return Ok{};
}

}  // namespace

Result<JoinInput> join_input(const v1::JoinOp& op) {
  JoinInput in;
  auto version = lorawan::parse_mac_version(op.mac_version());
  if (!version) return bad("join.mac_version", version.failure().message);
  in.mac_version = *version;
  auto request = lorawan::JoinRequest::parse(bytes_of(op.phy_payload()));
  if (!request) return bad("join.phy_payload", request.failure().message);
  auto dev_eui = checked_dev_eui(op.dev_eui(), "join.dev_eui");
  if (!dev_eui) return dev_eui.failure();
  if (*dev_eui != request->dev_eui) {
    return bad("join.dev_eui", "is not the DevEUI of the join-request in phy_payload");
  }
  const auto phy = bytes_of(op.phy_payload());
  in.join_request.assign(phy.begin(), phy.end());
  if (!op.has_root_keys()) return bad("join.root_keys", "required");
  auto root = root_keys(op.root_keys(), lorawan::is_1_1(in.mac_version), "join.root_keys");
  if (!root) return root.failure();
  in.root_keys = std::move(*root);
  if (!op.has_accept()) return bad("join.accept", "required");
  auto accept = accept_fields(op.accept(), "join.accept");
  if (!accept) return accept.failure();
  in.accept = *accept;
  if (auto ok = set_key_plan(op, "join", in); !ok) return ok.failure();
  return in;
}

Result<RejoinInput> rejoin_input(const v1::RejoinOp& op) {
  auto request = lorawan::RejoinRequest::parse(bytes_of(op.phy_payload()));
  if (!request) return bad("rejoin.phy_payload", request.failure().message);
  auto join_eui = fixed<lorawan::JoinEui>(op.join_eui(), "rejoin.join_eui");
  if (!join_eui) return join_eui.failure();
  auto dev_eui = checked_dev_eui(op.dev_eui(), "rejoin.dev_eui");
  if (!dev_eui) return dev_eui.failure();
  if (*dev_eui != request->dev_eui) {
    return bad("rejoin.dev_eui", "is not the DevEUI of the rejoin-request in phy_payload");
  }
  if (!op.has_root_keys()) return bad("rejoin.root_keys", "required");
  auto root = root_keys(op.root_keys(), true, "rejoin.root_keys");
  if (!root) return root.failure();
  if (!op.has_accept()) return bad("rejoin.accept", "required");
  auto accept = accept_fields(op.accept(), "rejoin.accept");
  if (!accept) return accept.failure();
  const auto phy = bytes_of(op.phy_payload());
  RejoinInput in;
  in.rejoin_request.assign(phy.begin(), phy.end());
  in.join_eui = *join_eui;
  in.root_keys = std::move(*root);
  in.accept = *accept;
  if (auto ok = set_key_plan(op, "rejoin", in); !ok) return ok.failure();
  return in;
}

void put_envelope(KeyEnvelope& in, v1::KeyEnvelope& out) {
  out.set_kek_label(in.kek_label);
  out.set_aes_key(in.aes_key.data(), in.aes_key.size());
  pkcs11::secure_zero(in.aes_key.data(), in.aes_key.size());
}

void put_join_result(JoinOutput& in, v1::JoinResult& out) {
  out.set_join_accept(in.join_accept.data(), in.join_accept.size());
  if (in.nwk_s_key) put_envelope(*in.nwk_s_key, *out.mutable_nwk_s_key());
  if (in.f_nwk_s_int_key) put_envelope(*in.f_nwk_s_int_key, *out.mutable_f_nwk_s_int_key());
  if (in.s_nwk_s_int_key) put_envelope(*in.s_nwk_s_int_key, *out.mutable_s_nwk_s_int_key());
  if (in.nwk_s_enc_key) put_envelope(*in.nwk_s_enc_key, *out.mutable_nwk_s_enc_key());
  if (in.app_s_key) put_envelope(*in.app_s_key, *out.mutable_app_s_key());
  out.set_stored_app_s_key(in.stored_app_s_key.data(), in.stored_app_s_key.size());
  out.set_pkcs11_calls(static_cast<std::uint32_t>(in.calls.total()));
  out.set_pkcs11_crypto_calls(static_cast<std::uint32_t>(in.calls.crypto()));
}

namespace {

template <class F>
void for_each_envelope(v1::Response& r, F&& f) {
  if (r.has_join()) {
    auto* j = r.mutable_join();
    if (j->has_nwk_s_key()) f(*j->mutable_nwk_s_key());
    if (j->has_f_nwk_s_int_key()) f(*j->mutable_f_nwk_s_int_key());
    if (j->has_s_nwk_s_int_key()) f(*j->mutable_s_nwk_s_int_key());
    if (j->has_nwk_s_enc_key()) f(*j->mutable_nwk_s_enc_key());
    if (j->has_app_s_key()) f(*j->mutable_app_s_key());
  }
  if (r.has_rewrap_app_s_key() && r.rewrap_app_s_key().has_app_s_key()) {
    f(*r.mutable_rewrap_app_s_key()->mutable_app_s_key());
  }
}

}  // namespace

bool delivers_plaintext(const v1::Response& response) {
  const auto plain = [](bool present, const v1::KeyEnvelope& e) {
    return present && e.kek_label().empty() && !e.aes_key().empty();
  };
  if (response.has_join()) {
    const auto& j = response.join();
    return plain(j.has_nwk_s_key(), j.nwk_s_key()) ||
           plain(j.has_f_nwk_s_int_key(), j.f_nwk_s_int_key()) ||
           plain(j.has_s_nwk_s_int_key(), j.s_nwk_s_int_key()) ||
           plain(j.has_nwk_s_enc_key(), j.nwk_s_enc_key()) ||
           plain(j.has_app_s_key(), j.app_s_key());
  }
  if (response.has_rewrap_app_s_key()) {
    const auto& r = response.rewrap_app_s_key();
    return plain(r.has_app_s_key(), r.app_s_key());
  }
  return false;
}

void wipe(std::string& bytes) noexcept {
  if (!bytes.empty()) OPENSSL_cleanse(bytes.data(), bytes.size());
  bytes.clear();
}

void wipe_secrets(v1::Request& request) noexcept {
  if (request.has_import_root_key() && request.import_root_key().has_plaintext()) {
    wipe(*request.mutable_import_root_key()->mutable_plaintext());
  }
}

void wipe_secrets(v1::Response& response) noexcept {
  for_each_envelope(response, [](v1::KeyEnvelope& e) {
    if (e.kek_label().empty()) wipe(*e.mutable_aes_key());
  });
}

v1::Code code_of(Status status) noexcept {
  switch (status) {
    case Status::ok:
      return v1::OK;
    case Status::malformed:
      return v1::MALFORMED;
    case Status::mic_failed:
      return v1::MIC_FAILED;
    case Status::unknown_key:
      return v1::UNKNOWN_KEY;
    case Status::key_policy:
      return v1::KEY_POLICY;
    case Status::token_unavailable:
      return v1::TOKEN_UNAVAILABLE;
    case Status::deadline:
      return v1::DEADLINE_EXCEEDED;
    case Status::exhausted:
      return v1::EXHAUSTED;
    case Status::internal:
      return v1::INTERNAL;
  }
  return v1::INTERNAL;
}

}  // namespace lorakeep::appliance::server
