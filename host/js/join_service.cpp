#include "host/js/join_service.hpp"

#include <algorithm>
#include <sstream>

#include "host/js/answers.hpp"
#include "host/js/log.hpp"

namespace lorakeep::host::js {
namespace {

using bi::ResultCode;
using Clock = std::chrono::steady_clock;

/// The message type for metrics: the request's, when it named a known one.
std::string metric_type(const bi::EchoHeader& echo) {
  if (!echo.message_type) return "unknown";
  for (const auto t : {bi::MessageType::join_req, bi::MessageType::rejoin_req,
                       bi::MessageType::app_s_key_req, bi::MessageType::home_ns_req}) {
    if (*echo.message_type == bi::message_type_name(t)) return *echo.message_type;
  }
  return "unknown";
}

bool from_network_server(bi::MessageType t) {
  return t != bi::MessageType::app_s_key_req;
}

}  // namespace

JoinService::JoinService(ServiceOptions options, registry::Registry& registry,
                         ApplianceClient* appliance, CaMapSource ca_map, Metrics& metrics)
    : options_(std::move(options)),
      registry_(registry),
      appliance_(appliance),
      ca_map_(std::move(ca_map)),
      metrics_(metrics),
      sender_limit_(options_.per_sender),
      device_limit_(options_.per_dev_eui) {}

std::mutex& JoinService::device_lock(const lorawan::DevEui& dev_eui) {
  return device_locks_[dev_eui.to_uint() % device_locks_.size()];
}

HttpResponse JoinService::handle(const HttpRequest& request) {
  const auto started = Clock::now();
  auto parsed = bi::parse_request(request.body);
  bi::EchoHeader echo;
  std::string sender = "unauthenticated";
  Answer answer;
  int http_status = 200;

  if (auto* error = std::get_if<bi::ParseError>(&parsed)) {
    echo = error->echo;
    answer.code = error->code;
    answer.description = error->description;
    if (error->http_status != 200) {
      http_status = error->http_status;
      nlohmann::json body = {{"error", error->description}};
      answer.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
      answer.body = bi::encode_failure(echo, error->code, error->description);
    }
  } else {
    const bi::Request& message = std::get<bi::Request>(parsed);
    const bi::Header& header = bi::header_of(message);
    echo = bi::echo_of(header);
    std::visit([&](const auto& m) { echo.dev_eui = m.dev_eui; }, message);
    const auto map = ca_map_();
    if (request.client_cert == nullptr) {
      answer = failure(echo, ResultCode::unknown_sender,
                       "no client certificate: every Backend Interfaces message needs one");
    } else if (map == nullptr || !map->verify(header.sender_id, request.client_cert)) {
      answer = failure(echo, ResultCode::unknown_sender,
                       "the client certificate is not from a CA configured for SenderID " +
                           shown_id(header.sender_id));
    } else if (from_network_server(header.type) && !lorawan::NetId::from_hex(header.sender_id)) {
      answer = failure(echo, ResultCode::unknown_sender,
                       "SenderID of a " + std::string(bi::message_type_name(header.type)) +
                           " is a Network Server's NetID (6 hex digits), got " +
                           shown_id(header.sender_id));
    } else {
      sender = SenderCaMap::normalize(header.sender_id);
      if (!sender_limit_.allow(sender)) {
        answer = failure(echo, ResultCode::other, "rate limit of SenderID " + sender + " exceeded");
      } else {
        answer = dispatch(message, sender);
      }
    }
  }

  const auto latency =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);
  const std::string result =
      http_status == 200
          ? std::string(bi::result_code_name(answer.code, echo.version.value_or(bi::Version::v1_0)))
          : "http_" + std::to_string(http_status);
  metrics_.record(metric_type(echo), sender, result, latency);

  nlohmann::json fields = {{"message_type", echo.message_type.value_or("")},
                           {"sender_id", sender},
                           {"result", result},
                           {"latency_us", latency.count()},
                           {"remote", request.remote}};
  if (echo.transaction_id) fields["transaction_id"] = *echo.transaction_id;
  if (echo.dev_eui) fields["dev_eui"] = echo.dev_eui->hex();
  if (!answer.description.empty()) fields["description"] = answer.description;
  log_event(answer.code == ResultCode::success ? spdlog::level::info : spdlog::level::warn,
            "request", fields);
  return {http_status, "application/json", std::move(answer.body)};
}

Answer JoinService::dispatch(const bi::Request& message, const std::string& sender) {
  const bi::EchoHeader echo = bi::echo_of(bi::header_of(message));
  if (const auto* h = std::get_if<bi::HomeNSReq>(&message)) {
    return home_ns(*h, *lorawan::NetId::from_hex(sender));
  }
  if (options_.mode == Config::Mode::identity || appliance_ == nullptr) {
    return failure(echo, ResultCode::other,
                   "this server answers only HomeNSReq (identity mode); send " +
                       std::string(bi::message_type_name(bi::header_of(message).type)) +
                       " to the Join Server");
  }
  if (const auto* j = std::get_if<bi::JoinReq>(&message)) {
    return join(*j, *lorawan::NetId::from_hex(sender), false);
  }
  if (const auto* r = std::get_if<bi::RejoinReq>(&message)) {
    return join(*r, *lorawan::NetId::from_hex(sender), true);
  }
  return app_s_key(std::get<bi::AppSKeyReq>(message), sender);
}

Answer JoinService::home_ns(const bi::HomeNSReq& request, const lorawan::NetId& net_id) {
  const bi::EchoHeader echo = bi::echo_of(request.header);
  const auto& allowed = options_.home_ns_req_net_ids;
  if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), net_id) == allowed.end()) {
    return failure(echo, ResultCode::activation_disallowed,
                   "NetID " + net_id.hex() + " may not send HomeNSReq to this server");
  }
  auto device = registry_.find_device(request.dev_eui);
  if (!device) return registry_failure(echo, device.failure());
  if (!device->has_value()) return unknown_device(echo, request.dev_eui);
  const registry::Device& d = **device;
  return {bi::encode_home_ns_answer(request.header, d.home_net_id, d.hnsid), ResultCode::success,
          ""};
}

Answer JoinService::app_s_key(const bi::AppSKeyReq& request, const std::string& as_id) {
  const bi::EchoHeader echo = bi::echo_of(request.header);
  auto device = registry_.find_device(request.dev_eui);
  if (!device) return registry_failure(echo, device.failure());
  // Another AS's device is answered exactly as an unknown one: nothing about other
  // tenants' devices leaks.
  if (!device->has_value() || (*device)->as_id != as_id) {
    return unknown_device(echo, request.dev_eui);
  }
  auto session = registry_.find_session(request.dev_eui, request.session_key_id);
  if (!session) return registry_failure(echo, session.failure());
  if (!session->has_value() ||
      ((*session)->stored_app_s_key.empty() && (*session)->as_app_s_key.empty())) {
    return failure(echo, ResultCode::unknown_dev_eui,
                   "DevEUI " + request.dev_eui.hex() + " has no session with this SessionKeyID");
  }
  const registry::Session& kept = **session;
  auto delivery = as_delivery(registry_, as_id);
  if (!delivery) return registry_failure(echo, delivery.failure());
  if (!delivery->has_value()) {
    return failure(echo, ResultCode::other,
                   "no AppSKey delivery configured for AS-ID " + shown_id(as_id) +
                       ": give it a KEK (lorakeepctl peer add --as-id … --kek-label …)");
  }
  if (kept.stored_app_s_key.empty()) {
    // The JoinAns took the key to the AS under a KEK: the same envelope again, with no token
    // call — but only while it is under the KEK this AS has now. A KEK only wraps, so an
    // envelope under an earlier one cannot be re-wrapped (and is not shown): the token
    // derives the key again.
    if (kept.as_kek_label != (*delivery)->kek_label()) {
      if (kept.origin.request.empty()) {
        return failure(echo, ResultCode::other,
                       "the AppSKey of this session went to the AS in the JoinAns under an "
                       "earlier KEK, and the session predates what deriving it again needs "
                       "(registry schema 3); the device's next join delivers it under AS-ID " +
                           shown_id(as_id) + "'s current KEK");
      }
      return app_s_key_again(request, as_id, **device, kept, **delivery);
    }
    crypto::v1::KeyEnvelope same;
    same.set_kek_label(kept.as_kek_label);
    same.set_aes_key(kept.as_app_s_key.data(), kept.as_app_s_key.size());
    return {bi::encode_app_s_key_answer(request.header, request.dev_eui, envelope(same),
                                        request.session_key_id),
            ResultCode::success, ""};
  }

  crypto::v1::Request op;
  op.set_caller("as:" + as_id);
  auto* rewrap = op.mutable_rewrap_app_s_key();
  const auto& eui = request.dev_eui.bytes();
  rewrap->set_dev_eui(eui.data(), eui.size());
  const auto& stored = kept.stored_app_s_key;
  rewrap->set_stored_app_s_key(stored.data(), stored.size());
  *rewrap->mutable_as() = **delivery;
  auto response = appliance_->call(std::move(op), options_.appliance_deadline);
  if (!response) return appliance_unreachable(echo, response.failure());
  if (response->code() != crypto::v1::OK || !response->has_rewrap_app_s_key()) {
    return appliance_refusal(echo, *response);
  }
  return {bi::encode_app_s_key_answer(request.header, request.dev_eui,
                                      envelope(response->rewrap_app_s_key().app_s_key()),
                                      request.session_key_id),
          ResultCode::success, ""};
}

Answer JoinService::app_s_key_again(const bi::AppSKeyReq& request, const std::string& as_id,
                                    const registry::Device& device, const registry::Session& kept,
                                    const crypto::v1::Delivery& to) {
  const bi::EchoHeader echo = bi::echo_of(request.header);
  const registry::SessionOrigin& origin = kept.origin;
  crypto::v1::Request op;
  op.set_caller("as:" + as_id);
  // Only the JoinNonce, the NetID and OptNeg enter the AppSKey; the appliance builds no
  // accept, so the DevAddr and RxDelay are left at zero.
  crypto::v1::AcceptFields accept;
  accept.set_join_nonce(origin.join_nonce);
  accept.set_net_id(kept.net_id.bytes().data(), kept.net_id.bytes().size());
  accept.set_dev_addr(std::string(4, '\0'));
  accept.set_dl_settings(origin.dl_settings);
  // MType 110: a rejoin-request (LoRaWAN 1.1 §4.2.1).
  const bool rejoin = (origin.request.front() >> 5) == 0b110;
  set_key_op(op, rejoin, device, origin.request, std::move(accept), nullptr, &to, false);
  auto response = appliance_->call(std::move(op), options_.appliance_deadline);
  if (!response) return appliance_unreachable(echo, response.failure());
  if (response->code() != crypto::v1::OK || !response->has_join() ||
      !response->join().has_app_s_key()) {
    return appliance_refusal(echo, *response);
  }
  log_event(spdlog::level::info, "app_s_key_derived_again",
            {{"dev_eui", request.dev_eui.hex()}, {"as_id", shown_id(as_id)}});
  // Kept, so that the next AppSKeyReq is answered from it with no token call (until the KEK
  // changes again). The answer does not depend on it: a registry that fails here costs the
  // next request another derivation, no more. An AS now given plaintext keys gets the key
  // derived each time: a plaintext key is never kept.
  const auto& derived = response->join().app_s_key();
  if (!derived.kek_label().empty()) {
    const registry::Bytes wrapped(derived.aes_key().begin(), derived.aes_key().end());
    if (auto kept_again = registry_.replace_as_envelope(request.dev_eui, kept.session_key_id,
                                                        derived.kek_label(), wrapped);
        !kept_again) {
      log_event(spdlog::level::warn, "app_s_key_not_kept",
                {{"dev_eui", request.dev_eui.hex()}, {"reason", kept_again.failure().message}});
    }
  }
  return {
      bi::encode_app_s_key_answer(request.header, request.dev_eui,
                                  envelope(response->join().app_s_key()), request.session_key_id),
      ResultCode::success, ""};
}

HttpResponse JoinService::healthz() {
  return {200, "application/json", R"({"status":"serving"})"};
}

HttpResponse JoinService::readyz() {
  nlohmann::json body = nlohmann::json::object();
  bool ready = true;
  if (auto ping = registry_.ping(); ping) {
    body["registry"] = "ok";
  } else {
    body["registry"] = ping.failure().message;
    ready = false;
  }
  if (appliance_ != nullptr) {
    crypto::v1::Request info;
    info.mutable_info();
    auto answer = appliance_->call(std::move(info), options_.appliance_deadline);
    if (answer && answer->code() == crypto::v1::OK && answer->info().self_test_passed()) {
      body["appliance"] = "ok";
    } else {
      body["appliance"] = answer ? "self-test not passed or refused" : answer.failure().message;
      ready = false;
    }
  }
  body["status"] = ready ? "ready" : "not ready";
  return {ready ? 200 : 503, "application/json",
          body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}

HttpResponse JoinService::metrics() {
  std::string text = metrics_.render();
  if (appliance_ != nullptr) {
    text += render_client_stats(appliance_->stats());
    crypto::v1::Request stats;
    stats.mutable_stats();
    auto answer = appliance_->call(std::move(stats), std::chrono::milliseconds(500));
    text +=
        "# HELP lorakeep_cs_up Whether an appliance answered the statistics request.\n"
        "# TYPE lorakeep_cs_up gauge\n";
    const bool up = answer && answer->code() == crypto::v1::OK && answer->has_stats();
    text += std::string("lorakeep_cs_up ") + (up ? "1" : "0") + "\n";
    if (up) text += render_appliance_stats(answer->stats());
  }
  return {200, "text/plain; version=0.0.4", std::move(text)};
}

}  // namespace lorakeep::host::js
