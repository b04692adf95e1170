#include "host/js/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace lorakeep::host::js {
namespace {

spdlog::logger& logger() {
  static const std::shared_ptr<spdlog::logger> instance = [] {
    auto l = std::make_shared<spdlog::logger>("lorakeep-js",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
    // %v is the event and its fields, already JSON ("event":…,…).
    l->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","pid":%P,%v})",
                   spdlog::pattern_time_type::utc);
    l->set_level(spdlog::level::info);
    l->flush_on(spdlog::level::info);
    return l;
  }();
  return *instance;
}

}  // namespace

void set_log_level(spdlog::level::level_enum level) noexcept {
  try {
    logger().set_level(level);
  } catch (...) {
    // Keep the level there is.
  }
}

void log_event(spdlog::level::level_enum level, std::string_view event,
               const nlohmann::json& fields) noexcept {
  try {
    if (!logger().should_log(level)) return;
    nlohmann::json line = nlohmann::json::object();
    line["event"] = std::string(event);
    if (fields.is_object()) {
      for (const auto& [key, value] : fields.items())
        line[key] = value;
    }
    std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    logger().log(level, "{}", std::string_view(text).substr(1, text.size() - 2));
  } catch (...) {
    // A log line is not worth a crash.
  }
}

}  // namespace lorakeep::host::js
