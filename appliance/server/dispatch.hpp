// One request → one answer: parse, check the version, validate every field, take a PKCS#11
// session within the request's deadline, run the appliance operation, map its Status onto
// the protocol's Code, count it and audit it. Thread-safe: one Dispatcher serves every
// connection of a worker.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "appliance/keys.hpp"
#include "appliance/server/audit.hpp"
#include "appliance/server/stats.hpp"
#include "crypto.pb.h"
#include "pkcs11/session_pool.hpp"

namespace lorakeep::appliance::server {

/// What InfoOp reports, fixed when the worker starts.
struct ServiceInfo {
  std::uint32_t workers = 1;
  std::uint32_t sessions_per_worker = 1;
  bool self_test_passed = false;
  std::string token_label;
  std::string token_model;
  std::string token_manufacturer;
};

struct DispatchContext {
  pkcs11::SessionPool& pool;
  KeyDirectory& keys;
  SharedStats& stats;
  std::size_t worker_slot;  // this worker's gauges in `stats`
  AuditLog& audit;
  ServiceInfo info;
  std::chrono::milliseconds default_deadline{2000};
  /// After this many token operations the worker renews its sessions around
  /// `reinitialize_module` (C_Finalize + C_Initialize); 0 or an empty function: never.
  std::uint64_t reinitialize_after = 0;
  std::function<void()> reinitialize_module;
};

/// The caller field's limit (it goes to the audit log).
inline constexpr std::size_t max_caller = 256;

class Dispatcher {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Dispatcher(DispatchContext context)
      : ctx_(std::move(context)), next_renewal_(ctx_.reinitialize_after) {}

  /// Closes every session, finalizes and initializes the module again and lets requests
  /// go on (they wait meanwhile, within their deadlines). False when it failed or another
  /// thread was doing it; a failure is logged and tried again by the next request.
  bool reinitialize_token() noexcept;

  /// Answers one payload (a serialized Request) received at `received` from `peer`. The
  /// payload is overwritten afterwards: it may hold a plaintext root key. With
  /// `shutting_down`, every request is answered SHUTTING_DOWN. Never throws; the answer is
  /// a serialized Response.
  std::vector<std::uint8_t> handle(std::span<std::uint8_t> payload, std::string_view peer,
                                   bool shutting_down, Clock::time_point received) noexcept;

  /// The answer to a frame whose header is invalid (request_id 0, MALFORMED).
  static std::vector<std::uint8_t> bad_frame(std::string_view message);

 private:
  struct Call;  // one request in progress (dispatch.cpp)

  void run(Call& call);
  void run_join(Call& call);
  void run_rejoin(Call& call);
  void run_rewrap(Call& call);
  void run_import(Call& call);
  void run_info(Call& call);
  void run_stats(Call& call);

  /// Runs `op` on a session taken from the pool within the call's deadline.
  template <class Op>
  void with_session(Call& call, Op&& op);
  void publish_pool() noexcept;
  /// Counts one token operation; renews the module every reinitialize_after of them.
  void count_operation() noexcept;

  DispatchContext ctx_;
  std::atomic<std::uint64_t> operations_{0};
  std::atomic<std::uint64_t> next_renewal_{0};  // operations_ at which to renew (ctor sets it)
  std::atomic<bool> reinitialize_failed_{false};
  std::mutex renew_mutex_;  // held by the thread renewing the module
};

/// The request_id of a payload that does not parse as a Request, if its field 2 can be
/// read before the damage; 0 otherwise.
std::uint64_t salvage_request_id(std::span<const std::uint8_t> payload) noexcept;

}  // namespace lorakeep::appliance::server
