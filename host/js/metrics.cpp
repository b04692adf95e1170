#include "host/js/metrics.hpp"

#include <sstream>

namespace lorakeep::host::js {

std::string label_value(const std::string& text) {
  std::string out;
  for (const char c : text.substr(0, 64)) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) >= 0x20) {
      out += c;
    }
  }
  return out;
}

void Metrics::record(const std::string& message_type, const std::string& sender,
                     const std::string& result, std::chrono::microseconds latency) {
  const double seconds = static_cast<double>(latency.count()) / 1e6;
  const std::lock_guard lock(mutex_);
  ++requests_[{message_type, sender, result}];
  Histogram& h = latency_[message_type];
  for (std::size_t i = 0; i < bucket_bounds_s.size(); ++i) {
    if (seconds <= bucket_bounds_s[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum_s += seconds;
}

std::string Metrics::render() const {
  std::ostringstream out;
  const std::lock_guard lock(mutex_);
  out << "# HELP lorakeep_js_requests_total Backend Interfaces requests answered.\n"
      << "# TYPE lorakeep_js_requests_total counter\n";
  for (const auto& [key, count] : requests_) {
    const auto& [type, sender, result] = key;
    out << "lorakeep_js_requests_total{message_type=\"" << label_value(type) << "\",sender=\""
        << label_value(sender) << "\",result=\"" << label_value(result) << "\"} " << count << "\n";
  }
  out << "# HELP lorakeep_js_request_duration_seconds Time from request to answer.\n"
      << "# TYPE lorakeep_js_request_duration_seconds histogram\n";
  for (const auto& [type, h] : latency_) {
    const std::string label = "message_type=\"" + label_value(type) + "\"";
    for (std::size_t i = 0; i < bucket_bounds_s.size(); ++i) {
      out << "lorakeep_js_request_duration_seconds_bucket{" << label << ",le=\""
          << bucket_bounds_s[i] << "\"} " << h.buckets[i] << "\n";
    }
    out << "lorakeep_js_request_duration_seconds_bucket{" << label << ",le=\"+Inf\"} " << h.count
        << "\n"
        << "lorakeep_js_request_duration_seconds_sum{" << label << "} " << h.sum_s << "\n"
        << "lorakeep_js_request_duration_seconds_count{" << label << "} " << h.count << "\n";
  }
  return out.str();
}

}  // namespace lorakeep::host::js
