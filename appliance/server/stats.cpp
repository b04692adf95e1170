#include "appliance/server/stats.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <csignal>

#include <cerrno>
#include <new>
#include <system_error>
#include <thread>

namespace lorakeep::appliance::server {

namespace v1 = crypto::v1;

std::string_view operation_name(Operation op) noexcept {
  switch (op) {
    case Operation::join_1_0:
      return "join_1_0";
    case Operation::join_1_1:
      return "join_1_1";
    case Operation::rejoin:
      return "rejoin";
    case Operation::rewrap_app_s_key:
      return "rewrap_app_s_key";
    case Operation::rederive_app_s_key:
      return "rederive_app_s_key";
    case Operation::import_root_key:
      return "import_root_key";
    case Operation::info:
      return "info";
    case Operation::stats:
      return "stats";
    case Operation::invalid:
      return "invalid";
    case Operation::count_:
      break;
  }
  return "invalid";
}

SharedStats::SharedStats() {
  void* p =
      ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap statistics");
  shared_ = new (p) Shared();
}

SharedStats::~SharedStats() {
  shared_->~Shared();
  ::munmap(shared_, sizeof(Shared));
}

void SharedStats::record(Operation op, v1::Code code, std::chrono::microseconds latency,
                         std::chrono::microseconds token,
                         const pkcs11::CallCounts& calls) noexcept {
  const auto o = static_cast<std::size_t>(op);
  const auto c = static_cast<std::size_t>(code);
  if (o >= shared_->cells.size() || c >= shared_->cells[o].size()) return;
  const auto us = static_cast<std::uint64_t>(latency.count() < 0 ? 0 : latency.count());
  Cell& cell = shared_->cells[o][c];
  cell.count.fetch_add(1, std::memory_order_relaxed);
  cell.latency_us_sum.fetch_add(us, std::memory_order_relaxed);
  cell.token_us_sum.fetch_add(static_cast<std::uint64_t>(token.count() < 0 ? 0 : token.count()),
                              std::memory_order_relaxed);
  cell.pkcs11_calls.fetch_add(calls.total(), std::memory_order_relaxed);
  cell.pkcs11_crypto_calls.fetch_add(calls.crypto(), std::memory_order_relaxed);
  shared_->pkcs11_calls_total.fetch_add(calls.total(), std::memory_order_relaxed);
  std::size_t bucket = 0;
  while (bucket < latency_bounds_us.size() && us > latency_bounds_us[bucket])
    ++bucket;
  shared_->latency_buckets[bucket].fetch_add(1, std::memory_order_relaxed);
}

void SharedStats::connection_refused() noexcept {
  shared_->connections_refused.fetch_add(1, std::memory_order_relaxed);
}

void SharedStats::token_reinitialized() noexcept {
  shared_->token_reinitializations.fetch_add(1, std::memory_order_relaxed);
}

bool SharedStats::lock_token(std::chrono::milliseconds timeout) noexcept {
  const auto self = static_cast<std::int32_t>(::getpid());
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::int32_t holder = 0;
    if (shared_->token_lock_holder.compare_exchange_strong(holder, self)) return true;
    if (holder == self) return false;  // this process holds it already: not re-entrant
    // A worker killed while holding it: take it over.
    if (holder != self && ::kill(holder, 0) != 0 && errno == ESRCH &&
        shared_->token_lock_holder.compare_exchange_strong(holder, self)) {
      return true;
    }
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void SharedStats::unlock_token() noexcept {
  std::int32_t self = static_cast<std::int32_t>(::getpid());
  shared_->token_lock_holder.compare_exchange_strong(self, 0);
}

WorkerGauges& SharedStats::worker(std::size_t index) noexcept {
  return shared_->workers[index % max_workers];
}

void SharedStats::retire_worker(std::size_t index) noexcept {
  WorkerGauges& w = worker(index);
  shared_->retired_sessions_replaced.fetch_add(w.sessions_replaced.exchange(0),
                                               std::memory_order_relaxed);
  shared_->retired_session_timeouts.fetch_add(w.session_timeouts.exchange(0),
                                              std::memory_order_relaxed);
  w.sessions_in_use.store(0);
  w.connections_open.store(0);
}

void SharedStats::fill(v1::StatsResult& out, std::uint32_t capacity) const {
  constexpr auto relaxed = std::memory_order_relaxed;
  for (std::size_t o = 0; o < shared_->cells.size(); ++o) {
    for (std::size_t c = 0; c < shared_->cells[o].size(); ++c) {
      const Cell& cell = shared_->cells[o][c];
      const std::uint64_t count = cell.count.load(relaxed);
      if (count == 0) continue;
      auto* s = out.add_operations();
      s->set_operation(std::string(operation_name(static_cast<Operation>(o))));
      s->set_result(v1::Code_Name(static_cast<v1::Code>(c)));
      s->set_count(count);
      s->set_latency_us_sum(cell.latency_us_sum.load(relaxed));
      s->set_token_us_sum(cell.token_us_sum.load(relaxed));
      s->set_pkcs11_calls(cell.pkcs11_calls.load(relaxed));
      s->set_pkcs11_crypto_calls(cell.pkcs11_crypto_calls.load(relaxed));
    }
  }
  out.set_pkcs11_calls_total(shared_->pkcs11_calls_total.load(relaxed));
  out.set_sessions_capacity(capacity);
  std::uint64_t in_use = 0;
  std::uint64_t replaced = shared_->retired_sessions_replaced.load(relaxed);
  std::uint64_t timeouts = shared_->retired_session_timeouts.load(relaxed);
  std::int64_t open = 0;
  for (const WorkerGauges& w : shared_->workers) {
    in_use += w.sessions_in_use.load(relaxed);
    replaced += w.sessions_replaced.load(relaxed);
    timeouts += w.session_timeouts.load(relaxed);
    open += w.connections_open.load(relaxed);
  }
  out.set_sessions_in_use(static_cast<std::uint32_t>(in_use));
  out.set_sessions_replaced(replaced);
  out.set_session_timeouts(timeouts);
  out.set_connections_open(static_cast<std::uint64_t>(open < 0 ? 0 : open));
  out.set_connections_refused(shared_->connections_refused.load(relaxed));
  out.set_token_reinitializations(shared_->token_reinitializations.load(relaxed));
  // Cumulative, as "<= bound" says; the last bound is UINT64_MAX (+Inf).
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b < shared_->latency_buckets.size(); ++b) {
    cumulative += shared_->latency_buckets[b].load(relaxed);
    out.add_latency_bucket_bounds_us(b < latency_bounds_us.size() ? latency_bounds_us[b]
                                                                  : UINT64_MAX);
    out.add_latency_bucket_counts(cumulative);
  }
}

}  // namespace lorakeep::appliance::server
