// Prometheus metrics of the Join Server: requests by message type, sender and result,
// latency histograms by message type, and whatever extra text the caller appends (the
// appliance's and the appliance client's statistics).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace lorakeep::host::js {

class Metrics {
 public:
  /// Counts one answered request. `sender` is the authenticated SenderID, or
  /// "unauthenticated"; `result` the ResultCode written (or "http_400", "http_413" …).
  void record(const std::string& message_type, const std::string& sender, const std::string& result,
              std::chrono::microseconds latency);

  /// The Prometheus text exposition (version 0.0.4) of what was recorded.
  [[nodiscard]] std::string render() const;

  static constexpr std::array<double, 12> bucket_bounds_s = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0};

 private:
  struct Histogram {
    std::array<std::uint64_t, bucket_bounds_s.size()> buckets{};
    std::uint64_t count = 0;
    double sum_s = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
};

/// `text` escaped for a Prometheus label value.
std::string label_value(const std::string& text);

}  // namespace lorakeep::host::js
