#include "schemas/config/yaml_reader.hpp"

#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

namespace lorakeep::config {

namespace fs = std::filesystem;

std::string shown(std::string_view text) {
  constexpr std::size_t limit = 64;
  std::string out = "'";
  for (const char c : text.substr(0, limit)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7F) ? '?' : c;
  }
  if (text.size() > limit) out += "...";
  return out + "'";
}

YAML::Node load_yaml(const std::string& text, const std::string& name) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(name + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg);
  }
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(file.string() + ": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Reader::Reader(std::string name, fs::path base) : name_(std::move(name)), base_(std::move(base)) {}

void Reader::error(const YAML::Node& at, std::string_view key, std::string_view what) const {
  std::string where = name_;
  if (at.IsDefined() && at.Mark().line >= 0) where += ":" + std::to_string(at.Mark().line + 1);
  throw ConfigError(where + ": " + std::string(key) + ": " + std::string(what));
}

std::map<std::string, YAML::Node> Reader::mapping(
    const YAML::Node& node, std::string_view key,
    std::initializer_list<std::string_view> allowed) const {
  if (!node.IsMap()) error(node, key, "expected a mapping of keys to values");
  std::map<std::string, YAML::Node> out;
  for (const auto& entry : node) {
    // Copies: the iterator's pair is a temporary (GCC 12 warns of dangling references).
    const YAML::Node k = entry.first;
    const YAML::Node v = entry.second;
    if (!k.IsScalar()) error(k, key, "expected plain keys");
    const std::string& name = k.Scalar();
    const std::string full = std::string(key) + "." + name;
    bool known = allowed.size() == 0;
    for (const auto a : allowed)
      known = known || a == name;
    if (!known) {
      std::string list;
      for (const auto a : allowed)
        list += (list.empty() ? "" : ", ") + std::string(a);
      error(k, full, "unknown key (known keys here: " + list + ")");
    }
    if (!out.emplace(name, v).second) error(k, full, "given twice");
  }
  return out;
}

std::string Reader::string(const YAML::Node& node, std::string_view key) const {
  if (!node.IsScalar()) error(node, key, "expected a string");
  if (node.Scalar().empty()) error(node, key, "expected a non-empty string");
  if (node.Scalar().find('\0') != std::string::npos) error(node, key, "contains a NUL byte");
  return node.Scalar();
}

std::uint64_t Reader::integer(const YAML::Node& node, std::string_view key, std::uint64_t min,
                              std::uint64_t max) const {
  const std::string expected =
      "expected an integer from " + std::to_string(min) + " to " + std::to_string(max);
  if (!node.IsScalar()) error(node, key, expected);
  const std::string& text = node.Scalar();
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value < min ||
      value > max) {
    error(node, key, expected + ", got " + shown(text));
  }
  return value;
}

double Reader::number(const YAML::Node& node, std::string_view key, double min, double max) const {
  std::ostringstream expected;
  expected << "expected a number from " << min << " to " << max;
  if (!node.IsScalar()) error(node, key, expected.str());
  const std::string& text = node.Scalar();
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() ||
      !std::isfinite(value) || value < min || value > max) {
    error(node, key, expected.str() + ", got " + shown(text));
  }
  return value;
}

bool Reader::boolean(const YAML::Node& node, std::string_view key) const {
  bool value = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
    error(node, key, "expected true or false, got " + shown(node.IsScalar() ? node.Scalar() : ""));
  }
  return value;
}

fs::path Reader::path(const YAML::Node& node, std::string_view key) const {
  const fs::path p = string(node, key);
  return p.is_absolute() ? p : (base_ / p).lexically_normal();
}

}  // namespace lorakeep::config
