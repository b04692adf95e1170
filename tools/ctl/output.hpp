// Output: human tables by default, JSON for scripts (--json). Nothing printed here ever
// holds key material: callers pass names, labels, identifiers and counts only.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lorakeep::ctl {

/// Columns aligned to their widest cell; the header underlined by the spacing alone.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void row(std::vector<std::string> cells);
  [[nodiscard]] bool empty() const noexcept { return rows_.empty(); }
  void print(std::ostream& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

/// One JSON document on a line of stdout; invalid UTF-8 is replaced, never thrown at.
void print_json(const nlohmann::json& j);
std::string dump_json(const nlohmann::json& j);

/// "12,345".
std::string thousands(std::size_t n);

}  // namespace lorakeep::ctl
