// lorakeep.yml is read by every program (lorakeep-cs, lorakeep-js, lorakeepctl), each its
// own section. This reader gives them the same refusals: every wrong value is an error that
// names the file, the line, the key and what it expects.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

namespace lorakeep::config {

/// A configuration that cannot be used. what() names the file, the line when known, the key
/// and what it expects, e.g. "lorakeep.yml:7: join_server.listen: expected HOST:PORT".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// `text` quoted for a message: at most 64 characters, control characters as '?'.
std::string shown(std::string_view text);

/// Parses YAML text; a syntax error is a ConfigError naming `name` and the line.
YAML::Node load_yaml(const std::string& text, const std::string& name);
/// Reads a whole file (ConfigError when it cannot be read).
std::string read_file(const std::filesystem::path& file);

/// Reads typed values out of YAML nodes; relative paths are taken from `base`.
class Reader {
 public:
  Reader(std::string name, std::filesystem::path base);

  [[noreturn]] void error(const YAML::Node& at, std::string_view key, std::string_view what) const;

  /// The entries of a mapping, refusing keys not in `allowed` (any key when `allowed` is
  /// empty) and keys given twice.
  [[nodiscard]] std::map<std::string, YAML::Node> mapping(
      const YAML::Node& node, std::string_view key,
      std::initializer_list<std::string_view> allowed) const;
  /// A non-empty scalar without NUL bytes.
  [[nodiscard]] std::string string(const YAML::Node& node, std::string_view key) const;
  [[nodiscard]] std::uint64_t integer(const YAML::Node& node, std::string_view key,
                                      std::uint64_t min, std::uint64_t max) const;
  [[nodiscard]] double number(const YAML::Node& node, std::string_view key, double min,
                              double max) const;
  [[nodiscard]] bool boolean(const YAML::Node& node, std::string_view key) const;
  [[nodiscard]] std::filesystem::path path(const YAML::Node& node, std::string_view key) const;

  [[nodiscard]] const std::filesystem::path& base() const noexcept { return base_; }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

 private:
  std::string name_;
  std::filesystem::path base_;
};

}  // namespace lorakeep::config
