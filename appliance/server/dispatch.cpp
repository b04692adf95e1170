#include "appliance/server/dispatch.hpp"

#include <optional>
#include <utility>

#include "appliance/join.hpp"
#include "appliance/provision.hpp"
#include "appliance/server/convert.hpp"
#include "appliance/server/log.hpp"
#include "lorakeep_config.h"
#include "pkcs11/secret.hpp"
#include "schemas/lorawan/types.hpp"

namespace lorakeep::appliance::server {
namespace {

constexpr std::uint32_t protocol_version = 1;
constexpr std::uint32_t max_deadline_ms = 600'000;

std::span<const std::uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

Operation operation_of(const v1::Request& r) {
  switch (r.operation_case()) {
    case v1::Request::kJoin: {
      if (r.join().app_s_key_only()) return Operation::rederive_app_s_key;
      const auto version = lorawan::parse_mac_version(r.join().mac_version());
      return version && lorawan::is_1_1(*version) ? Operation::join_1_1 : Operation::join_1_0;
    }
    case v1::Request::kRejoin:
      return r.rejoin().app_s_key_only() ? Operation::rederive_app_s_key : Operation::rejoin;
    case v1::Request::kRewrapAppSKey:
      return Operation::rewrap_app_s_key;
    case v1::Request::kImportRootKey:
      return Operation::import_root_key;
    case v1::Request::kInfo:
      return Operation::info;
    case v1::Request::kStats:
      return Operation::stats;
    case v1::Request::OPERATION_NOT_SET:
      break;
  }
  return Operation::invalid;
}

std::vector<std::uint8_t> serialize(v1::Response& response) {
  std::string text = response.SerializeAsString();
  std::vector<std::uint8_t> out(text.begin(), text.end());
  wipe(text);
  return out;
}

}  // namespace

struct Dispatcher::Call {
  v1::Request request;
  v1::Response response;
  std::string peer;
  Clock::time_point received;
  Clock::time_point deadline;
  Operation op = Operation::invalid;
  pkcs11::CallCounts calls{};
  std::chrono::microseconds token_time{0};  // in the operation, on the session
  std::optional<AuditRecord> audit;         // set for operations that use keys

  void answer(v1::Code code, std::string message) {
    response.set_code(code);
    response.set_message(std::move(message));
  }
  void answer(const Failure& failure) { answer(code_of(failure.status), failure.message); }

  /// Starts the audit record of a key operation.
  AuditRecord& audited(const std::string& dev_eui) {
    audit.emplace();
    if (dev_eui.size() == lorawan::DevEui::size)
      audit->dev_eui = lorawan::to_hex(bytes_of(dev_eui));
    return *audit;
  }
};

std::uint64_t salvage_request_id(std::span<const std::uint8_t> p) noexcept {
  std::size_t i = 0;
  const auto varint = [&](std::uint64_t& v) {
    v = 0;
    for (unsigned shift = 0; shift < 64 && i < p.size(); shift += 7) {
      const std::uint8_t b = p[i++];
      v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  };
  while (i < p.size()) {
    std::uint64_t key = 0;
    std::uint64_t value = 0;
    if (!varint(key)) return 0;
    switch (key & 7) {
      case 0:
        if (!varint(value)) return 0;
        if ((key >> 3) == 2) return value;
        break;
      case 1:
        if (p.size() - i < 8) return 0;
        i += 8;
        break;
      case 2:
        if (!varint(value) || value > p.size() - i) return 0;
        i += static_cast<std::size_t>(value);
        break;
      case 5:
        if (p.size() - i < 4) return 0;
        i += 4;
        break;
      default:
        return 0;
    }
  }
  return 0;
}

std::vector<std::uint8_t> Dispatcher::bad_frame(std::string_view message) {
  v1::Response response;
  response.set_request_id(0);
  response.set_code(v1::MALFORMED);
  response.set_message(std::string(message));
  return serialize(response);
}

std::vector<std::uint8_t> Dispatcher::handle(std::span<std::uint8_t> payload, std::string_view peer,
                                             bool shutting_down,
                                             Clock::time_point received) noexcept {
  try {
    Call call;
    call.peer = std::string(peer);
    call.received = received;
    const bool parsed =
        call.request.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
    if (!parsed) call.response.set_request_id(salvage_request_id(payload));
    pkcs11::secure_zero(payload.data(), payload.size());

    if (!parsed) {
      call.answer(v1::MALFORMED, "the payload is not a lorakeep.crypto.v1.Request");
    } else {
      const auto& r = call.request;
      call.response.set_request_id(r.request_id());
      call.op = operation_of(r);
      if (r.protocol_version() != protocol_version) {
        call.op = Operation::invalid;
        call.answer(v1::VERSION_MISMATCH,
                    "this appliance speaks protocol version 1, the request says " +
                        std::to_string(r.protocol_version()));
      } else if (shutting_down) {
        call.answer(v1::SHUTTING_DOWN, "the appliance is shutting down: send this elsewhere");
      } else if (r.caller().size() > max_caller) {
        call.answer(v1::MALFORMED, "caller: at most " + std::to_string(max_caller) + " bytes");
      } else if (r.deadline_ms() > max_deadline_ms) {
        call.answer(v1::MALFORMED, "deadline_ms: at most " + std::to_string(max_deadline_ms));
      } else {
        call.deadline =
            received + (r.deadline_ms() == 0 ? ctx_.default_deadline
                                             : std::chrono::milliseconds(r.deadline_ms()));
        run(call);
      }
    }
    wipe_secrets(call.request);

    const auto latency =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - received);
    ctx_.stats.record(call.op, call.response.code(), latency, call.token_time, call.calls);
    if (call.audit) {
      call.audit->operation = std::string(operation_name(call.op));
      call.audit->caller = call.request.caller();
      call.audit->peer = call.peer;
      call.audit->result = v1::Code_Name(call.response.code());
      call.audit->request_id = call.response.request_id();
      call.audit->plaintext = delivers_plaintext(call.response);
      ctx_.audit.write(*call.audit);
    }
    const v1::Code code = call.response.code();
    if (code == v1::INTERNAL || code == v1::TOKEN_UNAVAILABLE) {
      log_warn("request_failed", {{"operation", operation_name(call.op)},
                                  {"code", v1::Code_Name(code)},
                                  {"message", call.response.message()},
                                  {"request_id", call.response.request_id()},
                                  {"peer", call.peer}});
    }
    auto out = serialize(call.response);
    wipe_secrets(call.response);
    return out;
  } catch (...) {
    // Out of memory or a bug: a bare answer if even that can be built, else nothing (the
    // connection then closes).
    try {
      v1::Response response;
      response.set_code(v1::INTERNAL);
      response.set_message("internal error");
      return serialize(response);
    } catch (...) {
      return {};
    }
  }
}

void Dispatcher::run(Call& call) {
  switch (call.request.operation_case()) {
    case v1::Request::kJoin:
      return run_join(call);
    case v1::Request::kRejoin:
      return run_rejoin(call);
    case v1::Request::kRewrapAppSKey:
      return run_rewrap(call);
    case v1::Request::kImportRootKey:
      return run_import(call);
    case v1::Request::kInfo:
      return run_info(call);
    case v1::Request::kStats:
      return run_stats(call);
    case v1::Request::OPERATION_NOT_SET:
      break;
  }
  call.answer(v1::UNKNOWN_OPERATION,
              "no operation set, or one this appliance does not know (protocol v1: join, rejoin, "
              "rewrap_app_s_key, import_root_key, info, stats)");
}

void Dispatcher::publish_pool() noexcept {
  try {
    const auto s = ctx_.pool.stats();
    auto& g = ctx_.stats.worker(ctx_.worker_slot);
    g.sessions_in_use.store(s.in_use, std::memory_order_relaxed);
    g.sessions_replaced.store(s.replaced, std::memory_order_relaxed);
    g.session_timeouts.store(s.timeouts, std::memory_order_relaxed);
  } catch (...) {
    // Statistics are not worth failing a request for.
  }
}

void Dispatcher::count_operation() noexcept {
  if (ctx_.reinitialize_after == 0 || !ctx_.reinitialize_module) return;
  const std::uint64_t n = operations_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n >= next_renewal_.load(std::memory_order_relaxed)) (void)reinitialize_token();
}

bool Dispatcher::reinitialize_token() noexcept {
  if (!ctx_.reinitialize_module) return false;
  // One renewal at a time in this worker; a thread that finds one under way goes on.
  const std::unique_lock renewing(renew_mutex_, std::try_to_lock);
  if (!renewing.owns_lock()) return false;
  // Done by another thread just now (a failed renewal leaves the mark where it was).
  if (!reinitialize_failed_.load(std::memory_order_relaxed) &&
      operations_.load(std::memory_order_relaxed) < next_renewal_.load(std::memory_order_relaxed)) {
    return false;
  }
  const auto start = Clock::now();
  const TokenLock lock(ctx_.stats, std::chrono::seconds(5));
  try {
    const bool done = ctx_.pool.renew([this] {
      // The session copies of the long-lived keys go with their sessions.
      ctx_.keys.forget();
      ctx_.reinitialize_module();
    });
    if (!done) return false;
  } catch (const std::exception& e) {
    reinitialize_failed_.store(true, std::memory_order_relaxed);
    log_error("token_reinitialize_failed", {{"worker", ctx_.worker_slot}, {"error", e.what()}});
    return false;
  }
  reinitialize_failed_.store(false, std::memory_order_relaxed);
  next_renewal_.store(operations_.load(std::memory_order_relaxed) + ctx_.reinitialize_after,
                      std::memory_order_relaxed);
  ctx_.stats.token_reinitialized();
  publish_pool();
  log_info("token_reinitialized",
           {{"worker", ctx_.worker_slot},
            {"operations", operations_.load(std::memory_order_relaxed)},
            {"ms",
             std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count()}});
  return true;
}

template <class Op>
void Dispatcher::with_session(Call& call, Op&& op) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(call.deadline - Clock::now());
  if (left.count() <= 0) {
    call.answer(v1::DEADLINE_EXCEEDED, "the request's deadline passed before it could start");
    return;
  }
  std::optional<pkcs11::SessionPool::Lease> lease;
  try {
    lease.emplace(ctx_.pool.acquire(left));
  } catch (const pkcs11::PoolTimeout&) {
    // The token is busy, not gone: cached handles stay valid.
    publish_pool();
    call.answer(v1::TOKEN_UNAVAILABLE, "no PKCS#11 session within the deadline");
    return;
  } catch (const pkcs11::Error& e) {
    ctx_.keys.forget();
    publish_pool();
    call.answer(v1::TOKEN_UNAVAILABLE, std::string("no PKCS#11 session: ") + e.what());
    // A module left uninitialized by a failed renewal: try again, once per request.
    if (reinitialize_failed_.load(std::memory_order_relaxed)) (void)reinitialize_token();
    return;
  }
  publish_pool();
  const pkcs11::CallCounts before = (*lease)->call_counts();
  const auto run = [&]() -> Result<Ok> {
    try {
      return op(**lease);
    } catch (const pkcs11::Error& e) {
      return token_failure(e, std::string(operation_name(call.op)));
    }
  };
  const auto started = Clock::now();
  Result<Ok> result = run();
  if (!result && result.failure().status == Status::unknown_key) {
    // A cached handle can name a key that is gone: its session copy went with a session
    // the token lost, or the key was replaced. Not the caller's fault, and the operation
    // has no effect to undo: look every key up afresh and do it once more. A key that is
    // really missing is missing again, and that answer stands.
    ctx_.keys.forget();
    result = run();
  }
  call.token_time = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);
  call.calls = (*lease)->call_counts() - before;
  lease.reset();
  publish_pool();
  count_operation();
  if (!result) {
    // A token that comes back may hand out other object handles; a cached handle that
    // names no key (its copy went with a lost session, or the key was replaced) is looked
    // up again by the next request.
    if (result.failure().status == Status::token_unavailable ||
        result.failure().status == Status::unknown_key) {
      ctx_.keys.forget();
    }
    call.answer(result.failure());
    return;
  }
  call.answer(v1::OK, "");
}

void Dispatcher::run_join(Call& call) {
  const auto& op = call.request.join();
  auto& audit = call.audited(op.dev_eui());
  if (op.has_root_keys() && op.root_keys().has_part()) {
    audit.key_label = op.root_keys().part().part_number();
  }
  if (op.has_ns() && !op.ns().kek_label().empty()) audit.keks.push_back(op.ns().kek_label());
  if (op.has_as() && !op.as().kek_label().empty()) audit.keks.push_back(op.as().kek_label());
  auto in = join_input(op);
  if (!in) return call.answer(in.failure());
  with_session(call, [&](pkcs11::Session& s) -> Result<Ok> {
    auto out = appliance::join(s, ctx_.keys, *in);
    if (!out) return out.failure();
    put_join_result(*out, *call.response.mutable_join());
    return Ok{};
  });
}

void Dispatcher::run_rejoin(Call& call) {
  const auto& op = call.request.rejoin();
  auto& audit = call.audited(op.dev_eui());
  if (op.has_root_keys() && op.root_keys().has_part()) {
    audit.key_label = op.root_keys().part().part_number();
  }
  if (op.has_ns() && !op.ns().kek_label().empty()) audit.keks.push_back(op.ns().kek_label());
  if (op.has_as() && !op.as().kek_label().empty()) audit.keks.push_back(op.as().kek_label());
  auto in = rejoin_input(op);
  if (!in) return call.answer(in.failure());
  with_session(call, [&](pkcs11::Session& s) -> Result<Ok> {
    auto out = appliance::rejoin(s, ctx_.keys, *in);
    if (!out) return out.failure();
    put_join_result(*out, *call.response.mutable_join());
    return Ok{};
  });
}

void Dispatcher::run_rewrap(Call& call) {
  const auto& op = call.request.rewrap_app_s_key();
  auto& audit = call.audited(op.dev_eui());
  if (!op.as().kek_label().empty()) audit.keks.push_back(op.as().kek_label());
  if (auto eui = checked_dev_eui(op.dev_eui(), "rewrap_app_s_key.dev_eui"); !eui) {
    return call.answer(eui.failure());
  }
  if (op.stored_app_s_key().size() != 24) {
    return call.answer(v1::MALFORMED,
                       "rewrap_app_s_key.stored_app_s_key: must be 24 bytes (RFC 3394 under the "
                       "storage key), got " +
                           std::to_string(op.stored_app_s_key().size()));
  }
  if (!op.has_as()) return call.answer(v1::MALFORMED, "rewrap_app_s_key.as: required");
  auto to = checked_delivery(op.as(), "rewrap_app_s_key.as");
  if (!to) return call.answer(to.failure());
  with_session(call, [&](pkcs11::Session& s) -> Result<Ok> {
    auto out = appliance::rewrap_app_s_key(s, ctx_.keys, bytes_of(op.stored_app_s_key()), *to);
    if (!out) return out.failure();
    put_envelope(out->app_s_key, *call.response.mutable_rewrap_app_s_key()->mutable_app_s_key());
    return Ok{};
  });
}

void Dispatcher::run_import(Call& call) {
  auto& op = *call.request.mutable_import_root_key();
  auto& audit = call.audited(op.dev_eui());
  if (op.has_plaintext()) {
    audit.plaintext_input = true;
    // Into zeroizing memory at once; the message's copy is wiped now, whatever follows.
    const pkcs11::SecretBytes key(bytes_of(op.plaintext()));
    wipe(*op.mutable_plaintext());
    if (auto eui = checked_dev_eui(op.dev_eui(), "import_root_key.dev_eui"); !eui) {
      return call.answer(eui.failure());
    }
    if (key.size() != 16) {
      return call.answer(v1::MALFORMED, "import_root_key.plaintext: must be 16 bytes, got " +
                                            std::to_string(key.size()));
    }
    return with_session(call, [&](pkcs11::Session& s) -> Result<Ok> {
      auto wrapped = appliance::import_root_key(s, ctx_.keys, key);
      if (!wrapped) return wrapped.failure();
      call.response.mutable_import_root_key()->set_wrapped(wrapped->data(), wrapped->size());
      return Ok{};
    });
  }
  if (auto eui = checked_dev_eui(op.dev_eui(), "import_root_key.dev_eui"); !eui) {
    return call.answer(eui.failure());
  }
  if (!op.has_transport_wrapped()) {
    return call.answer(v1::MALFORMED, "import_root_key: set plaintext or transport_wrapped");
  }
  const auto& t = op.transport_wrapped();
  audit.key_label = t.transport_kek_label();
  auto label = checked_label(t.transport_kek_label(),
                             "import_root_key.transport_wrapped.transport_kek_label");
  if (!label) return call.answer(label.failure());
  if (t.wrapped().size() != 24) {
    return call.answer(v1::MALFORMED,
                       "import_root_key.transport_wrapped.wrapped: must be 24 bytes (RFC 3394), "
                       "got " +
                           std::to_string(t.wrapped().size()));
  }
  with_session(call, [&](pkcs11::Session& s) -> Result<Ok> {
    auto wrapped = appliance::import_wrapped_root_key(s, ctx_.keys, *label, bytes_of(t.wrapped()));
    if (!wrapped) return wrapped.failure();
    call.response.mutable_import_root_key()->set_wrapped(wrapped->data(), wrapped->size());
    return Ok{};
  });
}

void Dispatcher::run_info(Call& call) {
  auto& info = *call.response.mutable_info();
  info.set_release(LORAKEEP_VERSION);
  info.add_protocol_versions(protocol_version);
  info.set_token_label(ctx_.info.token_label);
  info.set_token_model(ctx_.info.token_model);
  info.set_token_manufacturer(ctx_.info.token_manufacturer);
  info.set_self_test_passed(ctx_.info.self_test_passed);
  info.set_workers(ctx_.info.workers);
  info.set_sessions_per_worker(ctx_.info.sessions_per_worker);
  call.answer(v1::OK, "");
}

void Dispatcher::run_stats(Call& call) {
  ctx_.stats.fill(*call.response.mutable_stats(),
                  ctx_.info.workers * ctx_.info.sessions_per_worker);
  call.answer(v1::OK, "");
}

}  // namespace lorakeep::appliance::server
