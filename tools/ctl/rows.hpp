// Bulk import files: CSV with a header line, or JSON lines (one object a line), both with
// the field names of field_names(). Field text lands in WipedStrings; messages never quote a
// value (it may be a key), only field names and counts.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "tools/ctl/device_spec.hpp"

namespace lorakeep::ctl {

enum class Format { csv, jsonl };

/// By extension (.csv; .jsonl, .ndjson, .json), else by the first character that is not
/// blank: '{' means JSON lines.
Format detect_format(const std::filesystem::path& file, std::string_view text);
std::string_view format_name(Format f) noexcept;

struct Row {
  std::size_t line = 0;              // 1-based line in the file
  std::optional<std::string> error;  // the row could not be read at all
  Fields fields;
};

/// Calls `each` for every data row (blank lines and lines starting with '#' are skipped).
/// A CSV header that cannot be used (unknown or repeated column, a required one missing)
/// throws CtlError (usage) naming `name` and the line.
void read_rows(Format format, std::string_view text, const std::string& name,
               const std::function<void(Row&&)>& each);

}  // namespace lorakeep::ctl
