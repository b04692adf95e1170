// Counters shared by every worker process: a MAP_SHARED anonymous mapping made by the
// master before it forks, holding only lock-free atomics, so any worker answers StatsOp
// with totals over all workers.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "crypto.pb.h"
#include "pkcs11/stats.hpp"

namespace lorakeep::appliance::server {

/// What a request was, for the statistics (StatsResult.operations[].operation).
enum class Operation : std::uint8_t {
  join_1_0,
  join_1_1,
  rejoin,
  rewrap_app_s_key,
  rederive_app_s_key,  // a join or rejoin with app_s_key_only
  import_root_key,
  info,
  stats,
  invalid,  // a payload that does not parse, an unknown operation or protocol version
  count_
};
[[nodiscard]] std::string_view operation_name(Operation op) noexcept;

/// Upper bounds (µs) of the latency histogram; a last, unbounded bucket follows.
inline constexpr std::array<std::uint64_t, 14> latency_bounds_us = {
    100,    250,    500,     1'000,   2'500,   5'000,     10'000,
    25'000, 50'000, 100'000, 250'000, 500'000, 1'000'000, 2'500'000};

inline constexpr std::size_t max_workers = 64;

/// One worker's gauges; the master zeroes them when it replaces a dead worker.
struct WorkerGauges {
  std::atomic<std::uint64_t> sessions_in_use{0};
  std::atomic<std::uint64_t> sessions_replaced{0};  // this worker's pool, since it started
  std::atomic<std::uint64_t> session_timeouts{0};   // idem
  std::atomic<std::int64_t> connections_open{0};
};

class SharedStats {
 public:
  /// Maps the counters, zeroed. Throws std::system_error when mmap fails.
  SharedStats();
  ~SharedStats();
  SharedStats(const SharedStats&) = delete;
  SharedStats& operator=(const SharedStats&) = delete;

  /// `token`: the part of `latency` spent on the PKCS#11 session.
  void record(Operation op, crypto::v1::Code code, std::chrono::microseconds latency,
              std::chrono::microseconds token, const pkcs11::CallCounts& calls) noexcept;
  void connection_refused() noexcept;
  void token_reinitialized() noexcept;

  /// One worker at a time may (re)initialize the module and log in: SoftHSMv2 rewrites its
  /// token files at C_Login while another process's C_Initialize reads them, and that
  /// process then sees no token. Waits up to `timeout`; a holder that died is overruled.
  /// False when the time ran out (the caller goes on regardless: a retry follows).
  bool lock_token(std::chrono::milliseconds timeout) noexcept;
  void unlock_token() noexcept;
  /// Worker `index` (< max_workers).
  [[nodiscard]] WorkerGauges& worker(std::size_t index) noexcept;
  /// Before a new worker takes over slot `index`: its pool counters move to the totals.
  void retire_worker(std::size_t index) noexcept;

  /// Totals over all workers; `capacity` is workers × sessions_per_worker.
  void fill(crypto::v1::StatsResult& out, std::uint32_t capacity) const;

 private:
  struct Cell {
    std::atomic<std::uint64_t> count{0};
    std::atomic<std::uint64_t> latency_us_sum{0};
    std::atomic<std::uint64_t> token_us_sum{0};
    std::atomic<std::uint64_t> pkcs11_calls{0};
    std::atomic<std::uint64_t> pkcs11_crypto_calls{0};
  };
  struct Shared {
    std::array<std::array<Cell, crypto::v1::Code_ARRAYSIZE>,
               static_cast<std::size_t>(Operation::count_)>
        cells;
    std::array<std::atomic<std::uint64_t>, latency_bounds_us.size() + 1> latency_buckets{};
    std::atomic<std::uint64_t> pkcs11_calls_total{0};
    std::atomic<std::uint64_t> connections_refused{0};
    std::atomic<std::uint64_t> token_reinitializations{0};
    std::atomic<std::int32_t> token_lock_holder{0};  // pid, 0: free
    std::atomic<std::uint64_t> retired_sessions_replaced{0};
    std::atomic<std::uint64_t> retired_session_timeouts{0};
    std::array<WorkerGauges, max_workers> workers;
  };
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free &&
                    std::atomic<std::int64_t>::is_always_lock_free &&
                    std::atomic<std::int32_t>::is_always_lock_free,
                "counters shared between processes must be lock-free");

  Shared* shared_ = nullptr;
};

/// SharedStats::lock_token for a scope; release() ends it early.
class TokenLock {
 public:
  TokenLock(SharedStats& stats, std::chrono::milliseconds timeout) noexcept
      : stats_(stats), held_(stats.lock_token(timeout)) {}
  ~TokenLock() { release(); }
  TokenLock(const TokenLock&) = delete;
  TokenLock& operator=(const TokenLock&) = delete;
  void release() noexcept {
    if (held_) stats_.unlock_token();
    held_ = false;
  }

 private:
  SharedStats& stats_;
  bool held_;
};

}  // namespace lorakeep::appliance::server
