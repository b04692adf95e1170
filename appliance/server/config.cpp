#include "appliance/server/config.hpp"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <fstream>
#include <initializer_list>
#include <map>
#include <sstream>
#include <variant>

#include <sys/un.h>

namespace lorakeep::appliance::server {
namespace {

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

/// Reads typed values out of YAML nodes; every refusal names the file, line and key.
class Reader {
 public:
  Reader(std::string name, fs::path base) : name_(std::move(name)), base_(std::move(base)) {}

  [[noreturn]] void error(const YAML::Node& at, std::string_view key, std::string_view what) const {
    std::string where = name_;
    if (at.IsDefined() && at.Mark().line >= 0) where += ":" + std::to_string(at.Mark().line + 1);
    throw ConfigError(where + ": " + std::string(key) + ": " + std::string(what));
  }

  /// The entries of a mapping, refusing keys not in `allowed` and keys given twice.
  std::map<std::string, YAML::Node> mapping(const YAML::Node& node, std::string_view key,
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

  std::string string(const YAML::Node& node, std::string_view key) const {
    if (!node.IsScalar()) error(node, key, "expected a string");
    if (node.Scalar().empty()) error(node, key, "expected a non-empty string");
    if (node.Scalar().find('\0') != std::string::npos) error(node, key, "contains a NUL byte");
    return node.Scalar();
  }

  std::uint64_t integer(const YAML::Node& node, std::string_view key, std::uint64_t min,
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

  bool boolean(const YAML::Node& node, std::string_view key) const {
    bool value = false;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
      error(node, key,
            "expected true or false, got " + shown(node.IsScalar() ? node.Scalar() : ""));
    }
    return value;
  }

  fs::path path(const YAML::Node& node, std::string_view key) const {
    const fs::path p = string(node, key);
    return p.is_absolute() ? p : (base_ / p).lexically_normal();
  }

  [[nodiscard]] const fs::path& base() const noexcept { return base_; }

 private:
  std::string name_;
  fs::path base_;
};

bool valid_env_name(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  for (const char c : name) {
    const bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

void read_pkcs11(const Reader& r, const YAML::Node& node, Pkcs11Config& out) {
  const std::string key = "appliance.pkcs11";
  const auto entries =
      r.mapping(node, key,
                {"module", "init_args", "token_label", "token_serial", "slot", "pin_file",
                 "environment", "allowed_mechanisms", "reinitialize_after"});
  const auto at = [&](const char* name) -> const YAML::Node* {
    const auto it = entries.find(name);
    return it == entries.end() ? nullptr : &it->second;
  };
  if (const auto* m = at("module")) {
    out.module = r.path(*m, key + ".module");
    std::error_code ec;
    if (!fs::is_regular_file(out.module, ec)) {
      r.error(*m, key + ".module", "no such file: " + out.module.string());
    }
  } else {
    r.error(node, key + ".module", "missing: the path of the PKCS#11 library");
  }
  if (const auto* a = at("init_args")) out.init_args = r.string(*a, key + ".init_args");

  int selectors = 0;
  if (const auto* l = at("token_label")) {
    out.token.label = r.string(*l, key + ".token_label");
    if (out.token.label->size() > 32) {
      r.error(*l, key + ".token_label", "a token label has at most 32 characters");
    }
    ++selectors;
  }
  if (const auto* s = at("token_serial")) {
    out.token.serial = r.string(*s, key + ".token_serial");
    ++selectors;
  }
  if (const auto* s = at("slot")) {
    out.token.slot = static_cast<CK_SLOT_ID>(r.integer(*s, key + ".slot", 0, 0xFFFFFFFFu));
    ++selectors;
  }
  if (selectors != 1) {
    r.error(node, key,
            selectors == 0 ? "name the token with one of token_label, token_serial or slot"
                           : "give exactly one of token_label, token_serial or slot, not several");
  }
  if (const auto* p = at("pin_file")) out.pin_file = r.path(*p, key + ".pin_file");
  if (const auto* m = at("allowed_mechanisms")) {
    out.allowed_mechanisms = r.boolean(*m, key + ".allowed_mechanisms");
  }
  if (const auto* m = at("reinitialize_after")) {
    out.reinitialize_after = r.integer(*m, key + ".reinitialize_after", 0, 1'000'000'000);
  }
  if (const auto* e = at("environment")) {
    const auto vars = r.mapping(*e, key + ".environment", {});
    for (const auto& [name, value] : vars) {
      std::string full = key;
      full += ".environment.";
      full += name;
      if (!valid_env_name(name)) {
        r.error(*e, full, "not a valid environment variable name (letters, digits, '_')");
      }
      if (!value.IsScalar()) r.error(value, full, "expected a string value");
      out.environment.emplace_back(name, value.Scalar());
    }
  }
}

}  // namespace

std::string ListenAddress::to_string() const {
  if (kind == Kind::unix_socket) return "unix:" + path.string();
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

namespace {

/// The listen address, or why `text` is not one.
std::variant<ListenAddress, std::string> listen_or_problem(std::string_view text,
                                                           const fs::path& base_dir) {
  ListenAddress out;
  if (text.starts_with("unix:")) {
    const fs::path p(text.substr(5));
    if (p.empty()) return std::string("expected unix:PATH with a path");
    out.kind = ListenAddress::Kind::unix_socket;
    out.path = p.is_absolute() ? p : (base_dir / p).lexically_normal();
    if (out.path.string().size() >= sizeof(sockaddr_un{}.sun_path)) {
      return "a Unix socket path has at most " +
             std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes";
    }
    return out;
  }
  out.kind = ListenAddress::Kind::tcp;
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    return std::string("expected \"unix:PATH\" or \"HOST:PORT\"");
  }
  std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  if (host.starts_with('[')) {
    if (!host.ends_with(']') || host.size() < 3) {
      return std::string("an IPv6 host is written [ADDRESS]");
    }
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return std::string("an IPv6 host is written [ADDRESS]:PORT");
  }
  for (const char c : host) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == ':' || c == '*' || c == '%' || c == '_';
    if (!ok) return std::string("the host has a character no host name or address has");
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc{} || end != port.data() + port.size() || value > 65535) {
    return std::string("the port must be a number from 0 to 65535");
  }
  out.host = std::string(host);
  out.port = static_cast<std::uint16_t>(value);
  return out;
}

}  // namespace

ListenAddress parse_listen(std::string_view text, const fs::path& base_dir, std::string_view key) {
  auto parsed = listen_or_problem(text, base_dir);
  if (auto* problem = std::get_if<std::string>(&parsed)) {
    throw ConfigError(std::string(key) + ": " + *problem + ", got " + shown(text));
  }
  return std::get<ListenAddress>(std::move(parsed));
}

Config parse_config(const std::string& yaml, const fs::path& base_dir, const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    throw ConfigError(name + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg);
  }
  const Reader r(name, base_dir);
  if (!root.IsMap() || !root["appliance"]) {
    throw ConfigError(name + ": no 'appliance:' section (lorakeep-cs reads its settings there)");
  }
  // Other top-level sections belong to the other programs sharing the file.
  const auto entries =
      r.mapping(root["appliance"], "appliance",
                {"pkcs11", "listen", "cluster_secret_file", "workers", "sessions_per_worker",
                 "audit_log", "user", "trusted_keks", "request_deadline_ms", "max_connections",
                 "idle_timeout_ms", "handshake_timeout_ms", "require_memory_lock"});
  const auto at = [&](const char* key) -> const YAML::Node* {
    const auto it = entries.find(key);
    return it == entries.end() ? nullptr : &it->second;
  };
  const auto required = [&](const char* key, const char* what) -> const YAML::Node& {
    const auto* n = at(key);
    if (n == nullptr) r.error(root["appliance"], std::string("appliance.") + key, what);
    return *n;
  };

  Config c;
  c.file = base_dir / name;
  read_pkcs11(r, required("pkcs11", "missing: the pkcs11: section (module, token, PIN)"), c.pkcs11);
  {
    const auto& node = required("listen", "missing: \"unix:PATH\" or \"HOST:PORT\"");
    const std::string text = r.string(node, "appliance.listen");
    auto parsed = listen_or_problem(text, base_dir);
    if (auto* problem = std::get_if<std::string>(&parsed)) {
      r.error(node, "appliance.listen", *problem + ", got " + shown(text));
    }
    c.listen = std::get<ListenAddress>(std::move(parsed));
  }
  if (const auto* n = at("cluster_secret_file")) {
    c.cluster_secret_file = r.path(*n, "appliance.cluster_secret_file");
  }
  if (const auto* n = at("workers")) {
    c.workers = static_cast<unsigned>(r.integer(*n, "appliance.workers", 1, 64));
  }
  if (const auto* n = at("sessions_per_worker")) {
    c.sessions_per_worker =
        static_cast<unsigned>(r.integer(*n, "appliance.sessions_per_worker", 1, 1024));
  }
  c.audit_log =
      r.path(required("audit_log", "missing: the path of the audit log"), "appliance.audit_log");
  if (const auto* n = at("user")) c.user = r.string(*n, "appliance.user");
  if (const auto* n = at("trusted_keks")) c.trusted_keks = r.boolean(*n, "appliance.trusted_keks");
  if (const auto* n = at("request_deadline_ms")) {
    c.request_deadline =
        std::chrono::milliseconds(r.integer(*n, "appliance.request_deadline_ms", 1, 600'000));
  }
  if (const auto* n = at("max_connections")) {
    c.max_connections = r.integer(*n, "appliance.max_connections", 1, 16384);
  }
  if (const auto* n = at("idle_timeout_ms")) {
    c.idle_timeout =
        std::chrono::milliseconds(r.integer(*n, "appliance.idle_timeout_ms", 10, 86'400'000));
  }
  if (const auto* n = at("handshake_timeout_ms")) {
    c.handshake_timeout =
        std::chrono::milliseconds(r.integer(*n, "appliance.handshake_timeout_ms", 10, 600'000));
  }
  if (const auto* n = at("require_memory_lock")) {
    c.require_memory_lock = r.boolean(*n, "appliance.require_memory_lock");
  }
  return c;
}

appliance::Policy key_policy(const Config& config) {
  appliance::Policy p;
  p.trusted_keks = config.trusted_keks;
  p.allowed_mechanisms = config.pkcs11.allowed_mechanisms;
  return p;
}

Config load_config(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(file.string() + ": cannot read the configuration file");
  std::ostringstream text;
  text << in.rdbuf();
  const fs::path absolute = fs::absolute(file);
  auto c = parse_config(text.str(), absolute.parent_path(), file.string());
  c.file = absolute;
  return c;
}

}  // namespace lorakeep::appliance::server
