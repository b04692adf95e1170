#include "host/js/config.hpp"

#include <charconv>

namespace lorakeep::host::js {
namespace {

namespace fs = std::filesystem;
using config::Reader;

const YAML::Node* entry(const std::map<std::string, YAML::Node>& entries, const char* name) {
  const auto it = entries.find(name);
  return it == entries.end() ? nullptr : &it->second;
}

std::chrono::milliseconds millis(const Reader& r, const YAML::Node& n, const std::string& key,
                                 std::uint64_t min, std::uint64_t max) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(r.integer(n, key, min, max)));
}

void read_listen(const Reader& r, const YAML::Node& n, Config& c) {
  const std::string key = "join_server.listen";
  const std::string text = r.string(n, key);
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    r.error(n, key, "expected HOST:PORT (\"[V6]:PORT\" for IPv6), got " + config::shown(text));
  }
  std::string host = text.substr(0, colon);
  if (host.starts_with('[')) {
    if (!host.ends_with(']') || host.size() < 3)
      r.error(n, key, "an IPv6 host is written [ADDRESS]");
  } else if (host.find(':') != std::string::npos) {
    r.error(n, key, "an IPv6 host is written [ADDRESS]:PORT");
  }
  for (const char ch : host) {
    const bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                    (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == ':' || ch == '[' ||
                    ch == ']';
    if (!ok) r.error(n, key, "the host has a character no host name or address has");
  }
  const std::string port = text.substr(colon + 1);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc{} || end != port.data() + port.size() || value > 65535) {
    r.error(n, key, "the port must be a number from 0 to 65535, got " + config::shown(port));
  }
  c.listen_host = host;
  c.listen_port = static_cast<std::uint16_t>(value);
}

RateLimit read_rate(const Reader& r, const YAML::Node& n, const std::string& key) {
  const auto e = r.mapping(n, key, {"rate", "burst"});
  RateLimit out;
  const auto* rate = entry(e, "rate");
  const auto* burst = entry(e, "burst");
  if (rate == nullptr || burst == nullptr) {
    r.error(n, key, "give both rate (requests per second, 0 for unlimited) and burst");
  }
  out.rate = r.number(*rate, key + ".rate", 0, 1e9);
  out.burst = r.number(*burst, key + ".burst", 1, 1e9);
  return out;
}

void read_appliance(const Reader& r, const YAML::Node& n, Config& c) {
  const std::string key = "join_server.appliance";
  const auto e = r.mapping(
      n, key, {"endpoints", "cluster_secret_file", "connections_per_endpoint", "deadline_ms"});
  if (const auto* ep = entry(e, "endpoints")) {
    if (!ep->IsSequence() || ep->size() == 0) {
      r.error(*ep, key + ".endpoints", "expected a list of addresses (unix:PATH or HOST:PORT)");
    }
    for (const auto& item : *ep) {
      std::string address = r.string(item, key + ".endpoints");
      if (address.starts_with("unix:")) {
        const fs::path p(address.substr(5));
        if (p.empty()) r.error(item, key + ".endpoints", "expected unix:PATH with a path");
        address = "unix:" + (p.is_absolute() ? p : (r.base() / p).lexically_normal()).string();
      }
      c.appliance_endpoints.push_back(address);
    }
  } else {
    r.error(n, key + ".endpoints", "missing: where lorakeep-cs listens (e.g. unix:cs.sock)");
  }
  if (const auto* s = entry(e, "cluster_secret_file")) {
    c.cluster_secret_file = r.path(*s, key + ".cluster_secret_file");
  }
  if (const auto* v = entry(e, "connections_per_endpoint")) {
    c.connections_per_endpoint =
        static_cast<std::size_t>(r.integer(*v, key + ".connections_per_endpoint", 1, 1024));
  }
  if (const auto* v = entry(e, "deadline_ms")) {
    c.appliance_deadline = millis(r, *v, key + ".deadline_ms", 10, 600000);
  }
}

void read_registry(const Reader& r, const YAML::Node& n, Config& c) {
  const std::string key = "join_server.registry";
  const auto e = r.mapping(n, key, {"sqlite", "dev_nonce_history", "sessions_kept"});
  if (const auto* p = entry(e, "sqlite")) {
    c.registry = r.path(*p, key + ".sqlite");
  } else {
    r.error(n, key + ".sqlite", "missing: the path of the SQLite registry file");
  }
  if (const auto* v = entry(e, "dev_nonce_history")) {
    c.dev_nonce_history =
        static_cast<std::size_t>(r.integer(*v, key + ".dev_nonce_history", 1, 65536));
  }
  if (const auto* v = entry(e, "sessions_kept")) {
    c.sessions_kept = static_cast<std::size_t>(r.integer(*v, key + ".sessions_kept", 1, 1024));
  }
}

}  // namespace

Config parse_config(const std::string& yaml, const fs::path& base_dir, const std::string& name) {
  const YAML::Node root = config::load_yaml(yaml, name);
  const Reader r(name, base_dir);
  if (!root.IsMap() || !root["join_server"]) {
    r.error(root, "join_server", "missing: lorakeep-js reads the join_server section");
  }
  const YAML::Node js = root["join_server"];
  const auto e = r.mapping(
      js, "join_server",
      {"mode", "listen", "tls", "sender_ca_map", "threads", "max_body_bytes", "request_timeout_ms",
       "keep_alive_timeout_ms", "reload_interval_s", "registry", "appliance", "lifetime_s",
       "keep_app_s_key", "home_ns_req_net_ids", "rate_limits", "log_level"});
  Config c;
  c.file = fs::path(name);
  if (const auto* m = entry(e, "mode")) {
    const std::string mode = r.string(*m, "join_server.mode");
    if (mode == "join_server") {
      c.mode = Config::Mode::join_server;
    } else if (mode == "identity") {
      c.mode = Config::Mode::identity;
    } else {
      r.error(*m, "join_server.mode",
              "expected join_server or identity, got " + config::shown(mode));
    }
  }
  if (const auto* l = entry(e, "listen")) read_listen(r, *l, c);
  if (const auto* t = entry(e, "tls")) {
    const auto te = r.mapping(*t, "join_server.tls", {"certificate", "private_key"});
    const auto* cert = entry(te, "certificate");
    const auto* key = entry(te, "private_key");
    if (cert == nullptr || key == nullptr) {
      r.error(*t, "join_server.tls", "give both certificate and private_key (PEM files)");
    }
    c.tls_certificate = r.path(*cert, "join_server.tls.certificate");
    c.tls_private_key = r.path(*key, "join_server.tls.private_key");
  } else {
    r.error(js, "join_server.tls", "missing: the server's certificate and private key");
  }
  if (const auto* m = entry(e, "sender_ca_map")) {
    c.sender_ca_map = r.path(*m, "join_server.sender_ca_map");
  } else {
    r.error(js, "join_server.sender_ca_map", "missing: the sender CA map (config.yml)");
  }
  if (const auto* v = entry(e, "threads")) {
    c.threads = static_cast<std::size_t>(r.integer(*v, "join_server.threads", 2, 1024));
  }
  if (const auto* v = entry(e, "max_body_bytes")) {
    c.max_body_bytes =
        static_cast<std::size_t>(r.integer(*v, "join_server.max_body_bytes", 1024, 1048576));
  }
  if (const auto* v = entry(e, "request_timeout_ms")) {
    c.request_timeout = millis(r, *v, "join_server.request_timeout_ms", 100, 600000);
  }
  if (const auto* v = entry(e, "keep_alive_timeout_ms")) {
    c.keep_alive_timeout = millis(r, *v, "join_server.keep_alive_timeout_ms", 100, 3600000);
  }
  if (const auto* v = entry(e, "reload_interval_s")) {
    c.reload_interval = std::chrono::seconds(
        static_cast<std::int64_t>(r.integer(*v, "join_server.reload_interval_s", 1, 3600)));
  }
  if (const auto* g = entry(e, "registry")) {
    read_registry(r, *g, c);
  } else {
    r.error(js, "join_server.registry", "missing: the registry (sqlite: FILE)");
  }
  if (const auto* a = entry(e, "appliance")) {
    read_appliance(r, *a, c);
  } else if (c.mode == Config::Mode::join_server) {
    r.error(js, "join_server.appliance", "missing: lorakeep-cs endpoints (mode join_server)");
  }
  if (const auto* v = entry(e, "lifetime_s")) {
    c.lifetime_s =
        static_cast<std::uint32_t>(r.integer(*v, "join_server.lifetime_s", 1, 0xFFFFFFFFu));
  }
  if (const auto* v = entry(e, "keep_app_s_key")) {
    const std::string keep = r.string(*v, "join_server.keep_app_s_key");
    if (keep == "always") {
      c.keep_app_s_key_always = true;
    } else if (keep == "when_not_delivered") {
      c.keep_app_s_key_always = false;
    } else {
      r.error(*v, "join_server.keep_app_s_key",
              "expected always or when_not_delivered, got " + config::shown(keep));
    }
  }
  if (const auto* v = entry(e, "home_ns_req_net_ids")) {
    if (!v->IsSequence())
      r.error(*v, "join_server.home_ns_req_net_ids", "expected a list of NetIDs");
    for (const auto& item : *v) {
      auto id = lorawan::NetId::from_hex(r.string(item, "join_server.home_ns_req_net_ids"));
      if (!id) r.error(item, "join_server.home_ns_req_net_ids", id.failure().message);
      c.home_ns_req_net_ids.push_back(*id);
    }
  }
  if (const auto* v = entry(e, "rate_limits")) {
    const auto re = r.mapping(*v, "join_server.rate_limits", {"per_sender", "per_dev_eui"});
    if (const auto* s = entry(re, "per_sender")) {
      c.per_sender = read_rate(r, *s, "join_server.rate_limits.per_sender");
    }
    if (const auto* d = entry(re, "per_dev_eui")) {
      c.per_dev_eui = read_rate(r, *d, "join_server.rate_limits.per_dev_eui");
    }
  }
  if (const auto* v = entry(e, "log_level")) {
    c.log_level = r.string(*v, "join_server.log_level");
    if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warn" &&
        c.log_level != "error") {
      r.error(*v, "join_server.log_level", "expected debug, info, warn or error");
    }
  }
  return c;
}

Config load_config(const fs::path& file) {
  Config c = parse_config(config::read_file(file),
                          file.parent_path().empty() ? "." : file.parent_path(), file.string());
  c.file = file;
  return c;
}

}  // namespace lorakeep::host::js
