#include "appliance/server/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace lorakeep::appliance::server {
namespace {

std::shared_ptr<spdlog::logger> make_logger() {
  auto logger = std::make_shared<spdlog::logger>("lorakeep-cs",
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  // %v is the event and its fields, already JSON ("event":…,…).
  logger->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","pid":%P,%v})",
                      spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  return logger;
}

spdlog::logger& logger() {
  static const std::shared_ptr<spdlog::logger> instance = make_logger();
  return *instance;
}

}  // namespace

std::string to_json_text(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void log_event(spdlog::level::level_enum level, std::string_view event,
               const nlohmann::json& fields) noexcept {
  try {
    nlohmann::json line = nlohmann::json::object();
    line["event"] = std::string(event);
    if (fields.is_object()) {
      for (const auto& [key, value] : fields.items())
        line[key] = value;
    }
    std::string text = to_json_text(line);
    // The pattern supplies the braces.
    text = text.substr(1, text.size() - 2);
    logger().log(level, "{}", text);
  } catch (...) {
    // A log line is not worth a crash.
  }
}

}  // namespace lorakeep::appliance::server
