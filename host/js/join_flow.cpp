// JoinReq and RejoinReq: DESIGN.md §3 step by step.
#include <openssl/rand.h>

#include <ctime>

#include "host/js/join_service.hpp"
#include "host/js/log.hpp"
#include "schemas/lorawan/frames.hpp"

namespace lorakeep::host::js {
namespace {

using bi::ResultCode;

/// What a join or rejoin-request says, as far as the Join Server's checks go.
struct Frame {
  lorawan::DevEui dev_eui;
  std::optional<lorawan::JoinEui> join_eui;    // join-request, rejoin type 1
  std::optional<lorawan::DevNonce> dev_nonce;  // join-request
  std::optional<std::uint32_t> rj_count1;      // rejoin type 1
  int rejoin_type = -1;                        // -1: a join-request
};

Result<Frame> read_frame(const bi::Bytes& phy, bool rejoin) {
  Frame f;
  if (rejoin) {
    auto r = lorawan::RejoinRequest::parse(phy);
    if (!r) return r.failure();
    f.dev_eui = r->dev_eui;
    f.join_eui = r->join_eui;
    f.rejoin_type = r->type;
    if (r->type == 1) f.rj_count1 = r->rj_count.value;
  } else {
    auto j = lorawan::JoinRequest::parse(phy);
    if (!j) return j.failure();
    f.dev_eui = j->dev_eui;
    f.join_eui = j->join_eui;
    f.dev_nonce = j->dev_nonce;
  }
  return f;
}

void set_accept(const bi::JoinReq& request, const lorawan::NetId& net_id, std::uint32_t join_nonce,
                crypto::v1::AcceptFields& out) {
  out.set_join_nonce(join_nonce);
  out.set_net_id(net_id.bytes().data(), net_id.bytes().size());
  out.set_dev_addr(request.dev_addr.bytes().data(), request.dev_addr.bytes().size());
  out.set_dl_settings(request.dl_settings.byte);
  out.set_rx_delay(request.rx_delay.byte);
  if (request.cf_list)
    out.set_cf_list(request.cf_list->bytes.data(), request.cf_list->bytes.size());
}

bi::Bytes new_session_key_id() {
  bi::Bytes id(16);
  if (RAND_bytes(id.data(), static_cast<int>(id.size())) != 1) return {};
  return id;
}

bool may_activate(const registry::Device& device, const lorawan::NetId& net_id) {
  if (device.home_net_id == net_id) return true;
  for (const auto& allowed : device.allowed_net_ids) {
    if (allowed == net_id) return true;
  }
  return false;
}

}  // namespace

Answer JoinService::join(const bi::JoinReq& request, const lorawan::NetId& net_id, bool rejoin) {
  const bi::EchoHeader echo = bi::echo_of(request.header);
  auto frame = read_frame(request.phy_payload, rejoin);
  if (!frame) return failure(echo, ResultCode::malformed, "PHYPayload: " + frame.failure().message);
  if (frame->dev_eui != request.dev_eui) {
    return failure(echo, ResultCode::malformed,
                   "PHYPayload: its DevEUI " + frame->dev_eui.hex() + " is not DevEUI " +
                       request.dev_eui.hex());
  }
  auto found = registry_.find_device(request.dev_eui);
  if (!found) return registry_failure(echo, found.failure());
  // A JoinEUI that is not the device's is answered as an unknown device: the pair
  // (JoinEUI, DevEUI) names the device.
  if (!found->has_value() || (frame->join_eui && *frame->join_eui != (*found)->join_eui)) {
    return unknown_device(echo, request.dev_eui);
  }
  const registry::Device& device = **found;
  if (!may_activate(device, net_id)) {
    return failure(echo, ResultCode::activation_disallowed,
                   "NetID " + net_id.hex() + " may not activate DevEUI " + device.dev_eui.hex());
  }
  if (lorawan::is_1_1(device.mac_version) != lorawan::is_1_1(request.mac_version)) {
    return failure(echo, ResultCode::join_req_failed,
                   "MACVersion " + std::string(lorawan::mac_version_name(request.mac_version)) +
                       " does not match the device's registered " +
                       std::string(lorawan::mac_version_name(device.mac_version)));
  }
  if (rejoin && !lorawan::is_1_1(device.mac_version)) {
    return failure(echo, ResultCode::join_req_failed,
                   "a rejoin-request needs a LoRaWAN 1.1 device; DevEUI " + device.dev_eui.hex() +
                       " is " + std::string(lorawan::mac_version_name(device.mac_version)));
  }
  if (!device_limit_.allow(device.dev_eui.hex())) {
    return failure(echo, ResultCode::other,
                   "rate limit of DevEUI " + device.dev_eui.hex() + " exceeded");
  }
  auto ns = ns_delivery(registry_, net_id);
  if (!ns) return registry_failure(echo, ns.failure());
  if (!ns->has_value()) {
    return failure(echo, ResultCode::join_req_failed,
                   "no session-key delivery configured for NetID " + net_id.hex() +
                       ": give it a KEK (lorakeepctl peer add --net-id " + net_id.hex() +
                       " --kek-label …)");
  }
  std::optional<crypto::v1::Delivery> as;
  if (device.as_id) {
    auto a = as_delivery(registry_, *device.as_id);
    if (!a) return registry_failure(echo, a.failure());
    // The AS gets the AppSKey in the JoinAns only under its KEK; otherwise it asks later
    // with AppSKeyReq.
    if (a->has_value() && !(*a)->kek_label().empty()) as = **a;
  }

  const bool counter = lorawan::dev_nonce_is_counter(device.mac_version);
  const std::lock_guard serial(device_lock(device.dev_eui));
  for (unsigned attempt = 0; attempt < options_.commit_attempts; ++attempt) {
    auto state = registry_.nonce_state(device.dev_eui);
    if (!state) return registry_failure(echo, state.failure());
    if (!state->has_value()) return unknown_device(echo, request.dev_eui);
    const registry::NonceState& s = **state;
    if (frame->dev_nonce) {
      switch (registry::check_dev_nonce(s, *frame->dev_nonce, counter)) {
        case registry::DevNonceVerdict::fresh:
          break;
        case registry::DevNonceVerdict::replayed:
          return failure(echo, ResultCode::frame_replayed,
                         "DevNonce " + std::to_string(frame->dev_nonce->value) +
                             " was already used by DevEUI " + device.dev_eui.hex());
        case registry::DevNonceVerdict::not_increasing:
          return failure(echo, ResultCode::frame_replayed,
                         "DevNonce " + std::to_string(frame->dev_nonce->value) +
                             " is not above the last one accepted (" +
                             std::to_string(s.dev_nonce_last.value_or(0)) + ")");
      }
    }
    if (frame->rj_count1 && s.rj_count1_last && *frame->rj_count1 <= *s.rj_count1_last) {
      return failure(echo, ResultCode::frame_replayed,
                     "RJcount1 " + std::to_string(*frame->rj_count1) +
                         " does not increase (last accepted " + std::to_string(*s.rj_count1_last) +
                         "); the rejoin-request is ignored");
    }
    if (s.join_nonce_last >= lorawan::JoinNonce::max) {
      return failure(echo, ResultCode::join_req_failed,
                     "JoinNonce exhausted: DevEUI " + device.dev_eui.hex() +
                         " has used all 16,777,215 JoinNonces and needs new root keys");
    }
    const std::uint32_t join_nonce = s.join_nonce_last + 1;

    crypto::v1::Request op;
    op.set_caller("ns:" + net_id.hex());
    // Without an AS delivery in the JoinAns, the AS can only get its key by AppSKeyReq, so
    // the appliance wraps it under the storage key. With one, the envelope the AS gets is
    // what an AppSKeyReq returns later: kept as it is, it costs no second wrap.
    crypto::v1::AcceptFields accept;
    set_accept(request, net_id, join_nonce, accept);
    set_key_op(op, rejoin, device, request.phy_payload, std::move(accept), &**ns,
               as ? &*as : nullptr, !as);
    auto response = appliance_->call(std::move(op), options_.appliance_deadline);
    if (!response) return appliance_unreachable(echo, response.failure());
    if (response->code() != crypto::v1::OK || !response->has_join()) {
      return appliance_refusal(echo, *response);
    }
    const crypto::v1::JoinResult& result = response->join();

    registry::Commit commit;
    commit.dev_eui = device.dev_eui;
    commit.expected_generation = s.generation;
    commit.join_nonce = join_nonce;
    if (frame->dev_nonce) commit.dev_nonce = frame->dev_nonce->value;
    commit.dev_nonce_is_counter = counter;
    commit.rj_count1 = frame->rj_count1;
    commit.session.session_key_id = new_session_key_id();
    if (commit.session.session_key_id.empty()) {
      return failure(echo, ResultCode::other, "no random bytes for a SessionKeyID");
    }
    commit.session.dev_eui = device.dev_eui;
    commit.session.stored_app_s_key.assign(result.stored_app_s_key().begin(),
                                           result.stored_app_s_key().end());
    if (as && options_.keep_app_s_key_always && result.has_app_s_key() &&
        !result.app_s_key().kek_label().empty()) {
      commit.session.as_kek_label = result.app_s_key().kek_label();
      commit.session.as_app_s_key.assign(result.app_s_key().aes_key().begin(),
                                         result.app_s_key().aes_key().end());
    }
    commit.session.origin = {request.phy_payload, join_nonce, request.dl_settings.byte};
    commit.session.net_id = net_id;
    commit.session.created_unix = static_cast<std::int64_t>(std::time(nullptr));
    auto outcome = registry_.commit(commit);
    if (!outcome) return registry_failure(echo, outcome.failure());
    if (*outcome == registry::CommitOutcome::unknown_device) {
      return unknown_device(echo, request.dev_eui);
    }
    if (*outcome == registry::CommitOutcome::conflict) {
      log_event(spdlog::level::info, "join_conflict",
                {{"dev_eui", device.dev_eui.hex()}, {"attempt", attempt + 1}});
      continue;  // another instance committed first: read the state again
    }

    bi::JoinAnswer answer;
    answer.phy_payload.assign(result.join_accept().begin(), result.join_accept().end());
    answer.lifetime = options_.lifetime_s;
    if (result.has_nwk_s_key()) answer.nwk_s_key = envelope(result.nwk_s_key());
    if (result.has_f_nwk_s_int_key()) answer.f_nwk_s_int_key = envelope(result.f_nwk_s_int_key());
    if (result.has_s_nwk_s_int_key()) answer.s_nwk_s_int_key = envelope(result.s_nwk_s_int_key());
    if (result.has_nwk_s_enc_key()) answer.nwk_s_enc_key = envelope(result.nwk_s_enc_key());
    if (result.has_app_s_key()) answer.app_s_key = envelope(result.app_s_key());
    answer.session_key_id = commit.session.session_key_id;
    return {bi::encode_join_answer(request.header, answer), ResultCode::success, ""};
  }
  return failure(
      echo, ResultCode::join_req_failed,
      "concurrent joins of DevEUI " + device.dev_eui.hex() + " kept winning the commit; try again");
}

}  // namespace lorakeep::host::js
