// The Join Server's answers (DESIGN.md §3): authenticate the sender, authorize it for the
// device, pre-check nonces against the registry, one appliance request per join, commit
// the nonces and the session durably, and only then answer. A failure changes no state.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "host/appliance_client.hpp"
#include "host/bi/messages.hpp"
#include "host/js/answers.hpp"
#include "host/js/config.hpp"
#include "host/js/https_server.hpp"
#include "host/js/metrics.hpp"
#include "host/js/rate_limit.hpp"
#include "host/js/sender_auth.hpp"
#include "host/registry/registry.hpp"

namespace lorakeep::host::js {

struct ServiceOptions {
  Config::Mode mode = Config::Mode::join_server;
  std::uint32_t lifetime_s = 86400 * 7;
  bool keep_app_s_key_always = true;  // Config::keep_app_s_key_always
  std::chrono::milliseconds appliance_deadline{2000};
  std::vector<lorawan::NetId> home_ns_req_net_ids;  // empty: any authenticated NS
  RateLimit per_sender;
  RateLimit per_dev_eui;
  /// Attempts of one join when a concurrent join of the same device commits first.
  unsigned commit_attempts = 3;
};

/// The current sender CA map (it is reloaded while the server runs).
using CaMapSource = std::function<std::shared_ptr<const SenderCaMap>()>;

class JoinService {
 public:
  /// `appliance` may be null only in identity mode.
  JoinService(ServiceOptions options, registry::Registry& registry, ApplianceClient* appliance,
              CaMapSource ca_map, Metrics& metrics);

  /// POST of a Backend Interfaces message: HTTP 200 with an answer carrying a Result, or
  /// HTTP 400 when the body is not a JSON object.
  HttpResponse handle(const HttpRequest& request);
  /// GET /healthz: the process serves.
  static HttpResponse healthz();
  /// GET /readyz: 200 when the registry answers and (join_server mode) an appliance does.
  HttpResponse readyz();
  /// GET /metrics: Prometheus text, with the appliance's statistics when it answers.
  HttpResponse metrics();

 private:
  Answer dispatch(const bi::Request& request, const std::string& sender);
  Answer join(const bi::JoinReq& request, const lorawan::NetId& net_id, bool rejoin);
  Answer app_s_key(const bi::AppSKeyReq& request, const std::string& as_id);
  /// The session's AppSKey derived again in the token from what it was derived from, for an
  /// AS whose KEK is no longer the one its JoinAns envelope is under.
  Answer app_s_key_again(const bi::AppSKeyReq& request, const std::string& as_id,
                         const registry::Device& device, const registry::Session& kept,
                         const crypto::v1::Delivery& to);
  Answer home_ns(const bi::HomeNSReq& request, const lorawan::NetId& net_id);
  std::mutex& device_lock(const lorawan::DevEui& dev_eui);

  ServiceOptions options_;
  registry::Registry& registry_;
  ApplianceClient* appliance_;
  CaMapSource ca_map_;
  Metrics& metrics_;
  RateLimiter sender_limit_;
  RateLimiter device_limit_;
  // Joins of one device are serialized in this process, so that concurrent requests do
  // not race to the appliance only to lose at commit; the registry's generation check
  // still decides between processes.
  std::array<std::mutex, 1024> device_locks_;
};

}  // namespace lorakeep::host::js
