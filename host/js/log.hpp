// lorakeep-js's log: one JSON object per line on stderr, with the TransactionID, SenderID
// and DevEUI of the request when known. Callers pass fields, never key material.
#pragma once

#include <spdlog/common.h>
#include <nlohmann/json.hpp>

#include <string_view>

namespace lorakeep::host::js {

void set_log_level(spdlog::level::level_enum level) noexcept;
/// Logs `{"time":…,"level":…,"pid":…,"event":event, fields…}`. Never throws.
void log_event(spdlog::level::level_enum level, std::string_view event,
               const nlohmann::json& fields = nlohmann::json::object()) noexcept;

}  // namespace lorakeep::host::js
