// Pieces of the Join Server's answers shared by its message handlers: failure answers for
// each way a request can fail, key envelopes and deliveries from the appliance's types, and
// the appliance's statistics as Prometheus text.
#pragma once

#include <string>

#include "crypto.pb.h"
#include "host/appliance_client.hpp"
#include "host/bi/messages.hpp"
#include "host/registry/registry.hpp"
#include "schemas/result.hpp"

namespace lorakeep::host::js {

/// An answer body with its Result, and a description for the log.
struct Answer {
  std::string body;
  bi::ResultCode code = bi::ResultCode::success;
  std::string description;
};

/// A failure answer addressed by `echo`.
Answer failure(const bi::EchoHeader& echo, bi::ResultCode code, std::string description);
/// A sender-provided identifier quoted for a description: at most 32 characters.
std::string shown_id(const std::string& id);
/// The registry failed: Other, "registry unavailable" (the detail goes to the log only).
Answer registry_failure(const bi::EchoHeader& echo, const Failure& failure);
/// UnknownDevEUI, worded the same whether the device is absent or another tenant's.
Answer unknown_device(const bi::EchoHeader& echo, const lorawan::DevEui& dev_eui);
/// No appliance answered within the deadline.
Answer appliance_unreachable(const bi::EchoHeader& echo, const Failure& failure);
/// The appliance answered with a Code other than OK: MICFailed, MalformedRequest, or
/// JoinReqFailed saying why.
Answer appliance_refusal(const bi::EchoHeader& echo, const crypto::v1::Response& response);

bi::KeyEnvelope envelope(const crypto::v1::KeyEnvelope& from);
/// How session keys reach the Network Server `net_id`, from its peer record: under its KEK,
/// in plaintext when it is configured so, or std::nullopt when neither.
Result<std::optional<crypto::v1::Delivery>> ns_delivery(registry::Registry& registry,
                                                        const lorawan::NetId& net_id);
/// The same for an Application Server.
Result<std::optional<crypto::v1::Delivery>> as_delivery(registry::Registry& registry,
                                                        const std::string& as_id);

/// A JoinOp, or a RejoinOp when `rejoin`, for `device` and the request `phy_payload`: its
/// root keys, the accept fields, the deliveries. Without `ns`, an `app_s_key_only` one: the
/// AppSKey of a request answered before, derived again for `as`.
void set_key_op(crypto::v1::Request& op, bool rejoin, const registry::Device& device,
                const bi::Bytes& phy_payload, crypto::v1::AcceptFields accept,
                const crypto::v1::Delivery* ns, const crypto::v1::Delivery* as,
                bool store_app_s_key);

std::string render_client_stats(const ClientStats& stats);
std::string render_appliance_stats(const crypto::v1::StatsResult& stats);

}  // namespace lorakeep::host::js
