#include "tools/ctl/rows.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <set>
#include <vector>

#include "tools/ctl/app.hpp"

namespace lorakeep::ctl {
namespace {

bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\r';
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_space(s.back()))
    s.remove_suffix(1);
  return s;
}

/// A field name for a message: at most 32 printable characters.
std::string shown_name(std::string_view name) {
  std::string out = "'";
  for (const char c : name.substr(0, 32)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u >= 0x7F) ? '?' : c;
  }
  if (name.size() > 32) out += "...";
  return out + "'";
}

bool known_field(std::string_view name) {
  const auto& names = field_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

// ---- CSV ----

/// Splits one CSV line (RFC 4180 quoting, no line breaks inside quotes); fields trimmed.
std::optional<std::string> split_csv(std::string_view line, std::vector<WipedString>& out) {
  std::size_t i = 0;
  for (;;) {
    WipedString field(line.size() - std::min(i, line.size()));
    while (i < line.size() && is_space(line[i]))
      ++i;
    if (i < line.size() && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field.str() += '"';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        field.str() += line[i++];
      }
      if (!closed) return "unterminated quoted field " + std::to_string(out.size() + 1);
      while (i < line.size() && is_space(line[i]))
        ++i;
      if (i < line.size() && line[i] != ',') {
        return "characters after the closing quote of field " + std::to_string(out.size() + 1);
      }
    } else {
      const std::size_t start = i;
      while (i < line.size() && line[i] != ',')
        ++i;
      field.str().append(trim(line.substr(start, i - start)));
    }
    out.push_back(std::move(field));
    if (i >= line.size()) return std::nullopt;
    ++i;  // the comma
  }
}

std::vector<std::string> csv_header(std::string_view line, const std::string& where) {
  std::vector<WipedString> cells;
  if (auto error = split_csv(line, cells)) throw CtlError(Exit::usage, where + ": " + *error);
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (auto& c : cells) {
    std::string name(c.view());
    std::transform(name.begin(), name.end(), name.begin(), [](char ch) {
      return static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    });
    if (!known_field(name)) {
      std::string known;
      for (const auto& n : field_names())
        known += (known.empty() ? "" : ", ") + n;
      std::string message = where;
      message.append(": unknown column ").append(shown_name(name));
      message.append(" (columns: ").append(known).append(")");
      throw CtlError(Exit::usage, message);
    }
    if (!seen.insert(name).second) {
      throw CtlError(Exit::usage, where + ": column " + shown_name(name) + " given twice");
    }
    names.push_back(name);
  }
  for (const char* required : {"dev_eui", "join_eui", "mac_version", "home_net_id"}) {
    if (!seen.contains(required)) {
      throw CtlError(Exit::usage, where + ": no column " + std::string(required) +
                                      " (a header line naming the columns comes first)");
    }
  }
  if (!seen.contains("app_key") && !seen.contains("part_number")) {
    throw CtlError(Exit::usage, where +
                                    ": no root-key column: app_key (and nwk_key) or "
                                    "part_number and serial");
  }
  return names;
}

// ---- JSON lines ----

class JsonLine {
 public:
  explicit JsonLine(std::string_view text) : s_(text) {}

  std::optional<std::string> parse(Fields& out) {
    skip();
    if (!eat('{')) return "not a JSON object";
    skip();
    std::set<std::string> seen;
    if (eat('}')) return finish();
    for (;;) {
      skip();
      WipedString name(s_.size());
      if (peek() != '"') return "expected a field name in double quotes";
      if (auto e = string(name)) return e;
      skip();
      if (!eat(':')) return "expected ':' after field " + shown_name(name.view());
      skip();
      const std::string key(name.view());
      if (!known_field(key)) return "unknown field " + shown_name(key);
      if (!seen.insert(key).second) return "field " + shown_name(key) + " given twice";
      WipedString value(s_.size());
      if (auto e = value_of(key, value)) return e;
      out.emplace_back(key, std::move(value));
      skip();
      if (eat('}')) return finish();
      if (!eat(',')) return "expected ',' or '}' after field " + shown_name(key);
    }
  }

 private:
  std::optional<std::string> finish() {
    skip();
    if (i_ != s_.size()) return "characters after the object";
    return std::nullopt;
  }

  std::optional<std::string> value_of(const std::string& key, WipedString& value) {
    if (peek() == '"') return string(value);
    if (s_.substr(i_, 4) == "null") {
      i_ += 4;
      return std::nullopt;
    }
    if (peek() == '[' && key == "allowed_net_ids") {
      ++i_;
      skip();
      if (eat(']')) return std::nullopt;
      for (;;) {
        skip();
        if (peek() != '"') return key + ": expected a list of strings";
        if (!value.view().empty()) value.str() += ' ';
        if (auto e = string(value)) return e;
        skip();
        if (eat(']')) return std::nullopt;
        if (!eat(',')) return key + ": expected ',' or ']'";
      }
    }
    return key +
           (key == "allowed_net_ids" ? ": expected a list of strings" : ": expected a string");
  }

  /// A JSON string appended to `out` (whose capacity covers the rest of the line).
  std::optional<std::string> string(WipedString& out) {
    ++i_;  // the opening quote
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return std::nullopt;
      if (static_cast<unsigned char>(c) < 0x20) return "a control character inside a string";
      if (c != '\\') {
        out.str() += c;
        continue;
      }
      if (i_ >= s_.size()) break;
      const char e = s_[i_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out.str() += e;
          break;
        case 'b':
          out.str() += '\b';
          break;
        case 'f':
          out.str() += '\f';
          break;
        case 'n':
          out.str() += '\n';
          break;
        case 'r':
          out.str() += '\r';
          break;
        case 't':
          out.str() += '\t';
          break;
        case 'u': {
          const auto cp = hex4();
          if (!cp) return "a bad \\u escape";
          // Field values are ASCII; anything else only has to fail validation later.
          out.str() += *cp < 0x80 ? static_cast<char>(*cp) : '?';
          break;
        }
        default:
          return "a bad escape in a string";
      }
    }
    return "an unterminated string";
  }

  std::optional<std::uint32_t> hex4() {
    if (i_ + 4 > s_.size()) return std::nullopt;
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        return std::nullopt;
      }
    }
    return v;
  }

  void skip() {
    while (i_ < s_.size() && (is_space(s_[i_]) || s_[i_] == '\n'))
      ++i_;
  }
  [[nodiscard]] char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++i_;
    return true;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace

Format detect_format(const std::filesystem::path& file, std::string_view text) {
  std::string ext = file.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  });
  if (ext == ".csv") return Format::csv;
  if (ext == ".jsonl" || ext == ".ndjson" || ext == ".json") return Format::jsonl;
  for (const char c : text) {
    if (is_space(c) || c == '\n') continue;
    return c == '{' ? Format::jsonl : Format::csv;
  }
  return Format::csv;
}

std::string_view format_name(Format f) noexcept {
  return f == Format::csv ? "csv" : "jsonl";
}

void read_rows(Format format, std::string_view text, const std::string& name,
               const std::function<void(Row&&)>& each) {
  // Spreadsheet programs start their CSV exports with a UTF-8 byte order mark.
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  std::optional<std::vector<std::string>> header;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::string_view t = trim(line);
    if (t.empty() || t.front() == '#') continue;
    if (format == Format::csv && !header) {
      header = csv_header(line, name + ":" + std::to_string(line_no));
      continue;
    }
    Row row;
    row.line = line_no;
    if (format == Format::jsonl) {
      JsonLine parser(line);
      row.error = parser.parse(row.fields);
    } else {
      std::vector<WipedString> cells;
      row.error = split_csv(line, cells);
      if (!row.error && cells.size() != header->size()) {
        row.error = "expected " + std::to_string(header->size()) + " fields, got " +
                    std::to_string(cells.size());
      }
      if (!row.error) {
        for (std::size_t i = 0; i < cells.size(); ++i) {
          row.fields.emplace_back((*header)[i], std::move(cells[i]));
        }
      }
    }
    if (row.error) row.fields.clear();
    each(std::move(row));
  }
  if (format == Format::csv && !header) {
    throw CtlError(Exit::usage, name + ": no header line (the column names come first)");
  }
}

}  // namespace lorakeep::ctl
