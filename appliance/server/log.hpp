// The appliance's operational log: spdlog to stderr, one JSON object per line. Callers
// pass fields, never key material, PINs or secrets.
#pragma once

#include <spdlog/common.h>
#include <nlohmann/json.hpp>

#include <string_view>

namespace lorakeep::appliance::server {

/// Logs `{"time":…,"level":…,"pid":…,"event":event, fields…}` on stderr. Never throws.
void log_event(spdlog::level::level_enum level, std::string_view event,
               const nlohmann::json& fields = nlohmann::json::object()) noexcept;

inline void log_info(std::string_view event,
                     const nlohmann::json& fields = nlohmann::json::object()) noexcept {
  log_event(spdlog::level::info, event, fields);
}
inline void log_warn(std::string_view event,
                     const nlohmann::json& fields = nlohmann::json::object()) noexcept {
  log_event(spdlog::level::warn, event, fields);
}
inline void log_error(std::string_view event,
                      const nlohmann::json& fields = nlohmann::json::object()) noexcept {
  log_event(spdlog::level::err, event, fields);
}

/// `j` as compact JSON; invalid UTF-8 (from a peer's strings) is replaced, never thrown.
std::string to_json_text(const nlohmann::json& j);

}  // namespace lorakeep::appliance::server
