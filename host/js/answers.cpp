#include "host/js/answers.hpp"

#include <sstream>
#include <variant>

#include "host/js/log.hpp"
#include "host/js/metrics.hpp"

namespace lorakeep::host::js {
namespace {

using bi::ResultCode;

Result<std::optional<crypto::v1::Delivery>> delivery(registry::Registry& registry,
                                                     registry::PeerKind kind,
                                                     const std::string& id) {
  auto peer = registry.find_peer(kind, id);
  if (!peer) return peer.failure();
  if (!peer->has_value()) return std::optional<crypto::v1::Delivery>();
  crypto::v1::Delivery out;
  if ((*peer)->kek_label) {
    out.set_kek_label(*(*peer)->kek_label);
  } else if ((*peer)->plaintext_keys) {
    out.set_plaintext_allowed(true);
    log_event(spdlog::level::warn, "plaintext_key_delivery",
              {{"peer", id},
               {"kind", kind == registry::PeerKind::network_server ? "ns" : "as"},
               {"why", "the peer is configured for plaintext keys (no KEK)"}});
  } else {
    return std::optional<crypto::v1::Delivery>();
  }
  return std::optional<crypto::v1::Delivery>(std::move(out));
}

}  // namespace

Answer failure(const bi::EchoHeader& echo, ResultCode code, std::string description) {
  Answer a;
  a.body = bi::encode_failure(echo, code, description);
  a.code = code;
  a.description = std::move(description);
  return a;
}

std::string shown_id(const std::string& id) {
  std::string out = "'";
  for (const char c : id.substr(0, 32)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u >= 0x7F) ? '?' : c;
  }
  if (id.size() > 32) out += "...";
  return out + "'";
}

Answer registry_failure(const bi::EchoHeader& echo, const Failure& f) {
  log_event(spdlog::level::err, "registry_failure", {{"detail", f.message}});
  return failure(echo, ResultCode::other, "registry unavailable; nothing was changed");
}

Answer unknown_device(const bi::EchoHeader& echo, const lorawan::DevEui& dev_eui) {
  return failure(echo, ResultCode::unknown_dev_eui,
                 "DevEUI " + dev_eui.hex() + " is not known to this Join Server");
}

Answer appliance_unreachable(const bi::EchoHeader& echo, const Failure& f) {
  log_event(spdlog::level::err, "appliance_unreachable", {{"detail", f.message}});
  return failure(
      echo, echo.message_type == "AppSKeyReq" ? ResultCode::other : ResultCode::join_req_failed,
      "the Join Server's crypto appliance did not answer in time; no nonce was used, "
      "the device may try again");
}

Answer appliance_refusal(const bi::EchoHeader& echo, const crypto::v1::Response& response) {
  const std::string why = response.message().substr(0, 200);
  const ResultCode fallback =
      echo.message_type == "AppSKeyReq" ? ResultCode::other : ResultCode::join_req_failed;
  switch (response.code()) {
    case crypto::v1::MIC_FAILED:
      return failure(echo, ResultCode::mic_failed,
                     "MIC does not verify with the device's root key");
    case crypto::v1::MALFORMED:
      return failure(echo, ResultCode::malformed, "PHYPayload: " + why);
    case crypto::v1::UNKNOWN_KEY:
      return failure(echo, fallback,
                     "a key the answer needs is not in the Join Server's token: " + why);
    case crypto::v1::KEY_POLICY:
      return failure(echo, fallback, "key policy refused the operation: " + why);
    case crypto::v1::EXHAUSTED:
      return failure(echo, fallback, "a counter is exhausted: " + why);
    case crypto::v1::TOKEN_UNAVAILABLE:
    case crypto::v1::DEADLINE_EXCEEDED:
    case crypto::v1::SHUTTING_DOWN:
      log_event(spdlog::level::err, "appliance_unavailable", {{"detail", why}});
      return failure(echo, fallback,
                     "the Join Server's token is unavailable; no nonce was used, the device may "
                     "try again");
    default:
      log_event(spdlog::level::err, "appliance_error",
                {{"code", crypto::v1::Code_Name(response.code())}, {"detail", why}});
      return failure(echo, ResultCode::other, "internal error in the Join Server's appliance");
  }
}

bi::KeyEnvelope envelope(const crypto::v1::KeyEnvelope& from) {
  bi::KeyEnvelope out;
  out.kek_label = from.kek_label();
  out.aes_key.assign(from.aes_key().begin(), from.aes_key().end());
  return out;
}

Result<std::optional<crypto::v1::Delivery>> ns_delivery(registry::Registry& registry,
                                                        const lorawan::NetId& net_id) {
  return delivery(registry, registry::PeerKind::network_server, net_id.hex());
}

Result<std::optional<crypto::v1::Delivery>> as_delivery(registry::Registry& registry,
                                                        const std::string& as_id) {
  return delivery(registry, registry::PeerKind::application_server, as_id);
}

std::string render_client_stats(const ClientStats& s) {
  std::ostringstream out;
  const auto counter = [&](const char* name, const char* help, std::uint64_t value) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n"
        << name << " " << value << "\n";
  };
  counter("lorakeep_js_appliance_calls_total", "Requests sent to lorakeep-cs.", s.calls);
  counter("lorakeep_js_appliance_unanswered_total", "Requests no appliance answered in time.",
          s.calls_unanswered);
  counter("lorakeep_js_appliance_connects_total", "Connections opened to lorakeep-cs.", s.connects);
  counter("lorakeep_js_appliance_connect_failures_total", "Connects or handshakes that failed.",
          s.connect_failures);
  counter("lorakeep_js_appliance_retries_total", "Requests sent again after a failed attempt.",
          s.retries);
  return out.str();
}

std::string render_appliance_stats(const crypto::v1::StatsResult& s) {
  std::ostringstream out;
  out << "# HELP lorakeep_cs_operations_total Operations of the appliance by result.\n"
      << "# TYPE lorakeep_cs_operations_total counter\n";
  for (const auto& op : s.operations()) {
    out << "lorakeep_cs_operations_total{operation=\"" << label_value(op.operation())
        << "\",result=\"" << label_value(op.result()) << "\"} " << op.count() << "\n";
  }
  out << "# HELP lorakeep_cs_operation_pkcs11_calls_total PKCS#11 calls by operation.\n"
      << "# TYPE lorakeep_cs_operation_pkcs11_calls_total counter\n";
  for (const auto& op : s.operations()) {
    out << "lorakeep_cs_operation_pkcs11_calls_total{operation=\"" << label_value(op.operation())
        << "\",result=\"" << label_value(op.result()) << "\",kind=\"all\"} " << op.pkcs11_calls()
        << "\n"
        << "lorakeep_cs_operation_pkcs11_calls_total{operation=\"" << label_value(op.operation())
        << "\",result=\"" << label_value(op.result()) << "\",kind=\"crypto\"} "
        << op.pkcs11_crypto_calls() << "\n";
  }
  out << "# HELP lorakeep_cs_sessions PKCS#11 sessions of the appliance.\n"
      << "# TYPE lorakeep_cs_sessions gauge\n"
      << "lorakeep_cs_sessions{state=\"capacity\"} " << s.sessions_capacity() << "\n"
      << "lorakeep_cs_sessions{state=\"in_use\"} " << s.sessions_in_use() << "\n"
      << "# HELP lorakeep_cs_pkcs11_calls_total PKCS#11 calls of the appliance.\n"
      << "# TYPE lorakeep_cs_pkcs11_calls_total counter\n"
      << "lorakeep_cs_pkcs11_calls_total " << s.pkcs11_calls_total() << "\n"
      << "# HELP lorakeep_cs_sessions_replaced_total Sessions replaced after a token error.\n"
      << "# TYPE lorakeep_cs_sessions_replaced_total counter\n"
      << "lorakeep_cs_sessions_replaced_total " << s.sessions_replaced() << "\n"
      << "# HELP lorakeep_cs_session_timeouts_total Requests that found no session in time.\n"
      << "# TYPE lorakeep_cs_session_timeouts_total counter\n"
      << "lorakeep_cs_session_timeouts_total " << s.session_timeouts() << "\n";
  const auto n = std::min(s.latency_bucket_bounds_us_size(), s.latency_bucket_counts_size());
  if (n > 0) {
    out << "# HELP lorakeep_cs_latency_us_bucket Appliance operation latency (cumulative counts).\n"
        << "# TYPE lorakeep_cs_latency_us_bucket gauge\n";
    for (int i = 0; i < n; ++i) {
      out << "lorakeep_cs_latency_us_bucket{le=\"" << s.latency_bucket_bounds_us(i) << "\"} "
          << s.latency_bucket_counts(i) << "\n";
    }
  }
  return out.str();
}

namespace {

void set_root_keys(const registry::Device& device, crypto::v1::RootKeys& out) {
  if (const auto* w = std::get_if<registry::WrappedRootKeys>(&device.root_keys)) {
    auto* wrapped = out.mutable_wrapped();
    wrapped->set_app_key(w->app_key.data(), w->app_key.size());
    if (!w->nwk_key.empty()) wrapped->set_nwk_key(w->nwk_key.data(), w->nwk_key.size());
  } else {
    const auto& p = std::get<registry::PartRootKeys>(device.root_keys);
    auto* part = out.mutable_part();
    part->set_part_number(p.part_number);
    part->set_serial(p.serial.data(), p.serial.size());
  }
}

}  // namespace

void set_key_op(crypto::v1::Request& op, bool rejoin, const registry::Device& device,
                const bi::Bytes& phy_payload, crypto::v1::AcceptFields accept,
                const crypto::v1::Delivery* ns, const crypto::v1::Delivery* as,
                bool store_app_s_key) {
  // The fields JoinOp and RejoinOp share.
  const auto fill = [&](auto& o) {
    o.set_phy_payload(phy_payload.data(), phy_payload.size());
    const auto& eui = device.dev_eui.bytes();
    o.set_dev_eui(eui.data(), eui.size());
    set_root_keys(device, *o.mutable_root_keys());
    *o.mutable_accept() = std::move(accept);
    if (ns) {
      *o.mutable_ns() = *ns;
    } else {
      o.set_app_s_key_only(true);
    }
    if (as) *o.mutable_as() = *as;
    o.set_store_app_s_key(store_app_s_key);
  };
  if (rejoin) {
    auto& r = *op.mutable_rejoin();
    r.set_join_eui(device.join_eui.bytes().data(), device.join_eui.bytes().size());
    fill(r);
  } else {
    auto& j = *op.mutable_join();
    j.set_mac_version(std::string(lorawan::mac_version_name(device.mac_version)));
    fill(j);
  }
}

}  // namespace lorakeep::host::js
