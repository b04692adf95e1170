// Token buckets per key (a SenderID, a DevEUI): requests over the limit are answered at
// once, without touching the registry's write path or the appliance.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

#include "host/js/config.hpp"

namespace lorakeep::host::js {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  /// `max_keys` bounds memory: when reached, buckets that are full again are dropped (a
  /// full bucket is the state of a key never seen).
  explicit RateLimiter(RateLimit limit, std::size_t max_keys = 1000000);

  /// Takes one token for `key`; false when its bucket is empty. Always true when the rate
  /// is 0 (unlimited).
  bool allow(const std::string& key, Clock::time_point now = Clock::now());

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point updated;
  };
  void prune(Clock::time_point now);

  RateLimit limit_;
  std::size_t max_keys_;
  std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace lorakeep::host::js
