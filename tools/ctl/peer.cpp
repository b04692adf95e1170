// lorakeepctl peer add | list | remove: who may call (the CA that vouches for each sender, in
// the sender CA map) and how its session keys are delivered (the registry's peers).
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "host/js/sender_auth.hpp"
#include "tools/ctl/app.hpp"
#include "tools/ctl/ca_map.hpp"
#include "tools/ctl/output.hpp"
#include "tools/ctl/secret_input.hpp"

namespace lorakeep::ctl {
namespace fs = std::filesystem;
using host::registry::Peer;
using host::registry::PeerKind;

namespace {

struct Who {
  std::string net_id;
  std::string as_id;
};

struct AddOptions {
  Who who;
  std::string ca;
  std::string kek_label;
  bool plaintext_keys = false;
};

struct RemoveOptions {
  Who who;
};

struct ListOptions {};

struct Sender {
  PeerKind kind = PeerKind::network_server;
  std::string id;  // NetID upper-case hex, or the AS-ID
  [[nodiscard]] std::string shown() const {
    return (kind == PeerKind::network_server ? "NS " : "AS ") + id;
  }
};

Sender sender_of(const Who& w) {
  if (w.net_id.empty() && w.as_id.empty()) {
    throw CtlError(Exit::usage, "give --net-id NETID or --as-id AS-ID");
  }
  if (!w.net_id.empty()) {
    auto id = lorawan::NetId::from_hex(w.net_id);
    if (!id) throw CtlError(Exit::usage, "--net-id: " + id.failure().message);
    return {PeerKind::network_server, id->hex()};
  }
  const std::string& a = w.as_id;
  if (a.empty() || a.size() > 255) throw CtlError(Exit::usage, "--as-id: 1 to 255 characters");
  for (const char c : a) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F) {
      throw CtlError(Exit::usage, "--as-id: printable ASCII without blanks only");
    }
  }
  if (lorawan::NetId::from_hex(a)) {
    throw CtlError(Exit::usage, "--as-id '" + a +
                                    "' reads as a NetID, and would share that NetID's entry in "
                                    "the sender CA map");
  }
  return {PeerKind::application_server, a};
}

void check_kek_label(const std::string& label) {
  if (label.empty() || label.size() > 64) {
    throw CtlError(Exit::usage, "--kek-label: 1 to 64 characters");
  }
  for (const char c : label) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == ':' || c == '/';
    if (!ok) throw CtlError(Exit::usage, "--kek-label: only A-Z a-z 0-9 - _ . : /");
  }
}

struct BioFree {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct InfoStackFree {
  void operator()(STACK_OF(X509_INFO) * s) const noexcept {
    sk_X509_INFO_pop_free(s, X509_INFO_free);
  }
};

/// The CA file's text once it is known to hold PEM certificates and no private key.
std::string read_ca(const fs::path& file) {
  const SecretText text = SecretText::read(file, 1 << 20);
  std::string pem(text.view());
  if (pem.find("PRIVATE KEY-----") != std::string::npos) {
    throw CtlError(Exit::usage,
                   file.string() + " holds a private key: give only the CA certificate(s)");
  }
  const std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  const std::unique_ptr<STACK_OF(X509_INFO), InfoStackFree> infos(
      bio ? PEM_X509_INFO_read_bio(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  int certificates = 0;
  if (infos) {
    for (int i = 0; i < sk_X509_INFO_num(infos.get()); ++i) {
      if (sk_X509_INFO_value(infos.get(), i)->x509 != nullptr) ++certificates;
    }
  }
  if (certificates == 0) {
    throw CtlError(Exit::usage, file.string() + " holds no PEM certificate");
  }
  return pem;
}

std::optional<std::string> read_optional(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  return std::string(SecretText::read(file, 1 << 20).view());
}

std::string delivery_of(const Peer& p) {
  if (p.kek_label) return "KEK " + *p.kek_label;
  if (p.plaintext_keys) return "PLAINTEXT";
  return p.kind == PeerKind::network_server ? "none (joins refused)" : "AppSKeyReq only";
}

int run_add(Context& ctx, const AddOptions& o) {
  const Sender s = sender_of(o.who);
  if (!o.kek_label.empty()) check_kek_label(o.kek_label);
  const auto& config = ctx.join_server_config();
  CaMap map = CaMap::load(config.sender_ca_map);
  const auto old_entry = map.find(s.id);
  std::optional<std::string> pem;
  if (!o.ca.empty()) {
    pem = read_ca(o.ca);
  } else if (!old_entry) {
    throw CtlError(Exit::usage, "--ca FILE is required: the sender CA map " + map.file().string() +
                                    " has no CA for " + s.shown());
  }
  auto& registry = ctx.registry();
  const auto existing = must(registry.find_peer(s.kind, s.id), "reading the peers");

  std::string ca_entry = old_entry.value_or("");
  const fs::path managed = map.folder() / CaMap::managed_name(s.id);
  std::optional<std::string> old_managed;
  if (pem) {
    old_managed = read_optional(managed);
    write_file_atomically(managed, *pem, 0644);
    ca_entry = CaMap::managed_name(s.id);
    map.put(s.id, ca_entry);
  }
  const auto undo = [&] {
    map.restore();
    if (pem) {
      try {
        if (old_managed) {
          write_file_atomically(managed, *old_managed, 0644);
        } else {
          fs::remove(managed);
        }
      } catch (...) {  // NOLINT(bugprone-empty-catch): the first failure is reported
      }
    }
  };
  Peer peer;
  peer.kind = s.kind;
  peer.id = s.id;
  if (!o.kek_label.empty()) peer.kek_label = o.kek_label;
  peer.plaintext_keys = o.plaintext_keys;
  try {
    if (pem) {
      map.save();
      if (auto loaded = host::js::SenderCaMap::load(map.file()); !loaded) {
        throw CtlError(Exit::failure, "the sender CA map would not load, left as it was: " +
                                          loaded.failure().message);
      }
    }
    must(registry.put_peer(peer), "saving the peer");
  } catch (...) {
    undo();
    throw;
  }
  const std::string detail =
      "kind=" + std::string(s.kind == PeerKind::network_server ? "ns" : "as") +
      " delivery=" + delivery_of(peer) + " ca=" + ca_entry +
      (existing.has_value() ? " (replaced)" : "");
  ctx.audit("peer.add", s.id, detail);
  if (ctx.json()) {
    print_json({{"kind", s.kind == PeerKind::network_server ? "ns" : "as"},
                {"id", s.id},
                {"kek_label", o.kek_label.empty() ? nlohmann::json() : nlohmann::json(o.kek_label)},
                {"plaintext_keys", o.plaintext_keys},
                {"ca", ca_entry},
                {"sender_ca_map", map.file().string()},
                {"replaced", existing.has_value()}});
  } else {
    std::cout << s.shown() << (existing.has_value() ? " updated" : " added") << ": session keys "
              << delivery_of(peer) << "; CA " << ca_entry << " in " << map.file().string() << "\n";
    if (pem) {
      std::cout << "lorakeep-js loads the CA within join_server.reload_interval_s ("
                << config.reload_interval.count() << " s) or on SIGHUP\n";
    }
  }
  if (o.plaintext_keys) {
    std::cerr << "lorakeepctl: warning: " << s.shown()
              << " receives session keys in plaintext (no KEK); lorakeep-js logs every such "
                 "delivery\n";
  } else if (o.kek_label.empty() && s.kind == PeerKind::network_server) {
    std::cerr << "lorakeepctl: warning: " << s.shown()
              << " has no KEK: its joins are refused until one is set (--kek-label)\n";
  }
  return 0;
}

int run_remove(Context& ctx, const RemoveOptions& o) {
  const Sender s = sender_of(o.who);
  const auto& config = ctx.join_server_config();
  CaMap map = CaMap::load(config.sender_ca_map);
  const auto entry = map.find(s.id);
  auto& registry = ctx.registry();
  const auto peer = must(registry.find_peer(s.kind, s.id), "reading the peers");
  if (!peer.has_value() && !entry) {
    throw CtlError(Exit::not_found,
                   "no peer " + s.shown() + " in the registry or in " + map.file().string());
  }
  if (entry) {
    map.remove(s.id);
    map.save();
    if (auto loaded = host::js::SenderCaMap::load(map.file()); !loaded) {
      map.restore();
      throw CtlError(Exit::failure, "the sender CA map would not load, left as it was: " +
                                        loaded.failure().message);
    }
  }
  try {
    must(registry.remove_peer(s.kind, s.id), "removing the peer");
  } catch (...) {
    map.restore();
    throw;
  }
  // The CA file goes only when lorakeepctl made it; an operator's own file stays.
  bool removed_file = false;
  if (entry && *entry == CaMap::managed_name(s.id)) {
    std::error_code ec;
    removed_file = fs::remove(map.resolve(*entry), ec);
  }
  ctx.audit("peer.remove", s.id,
            "kind=" + std::string(s.kind == PeerKind::network_server ? "ns" : "as") +
                (entry ? " ca=" + *entry : ""));
  if (ctx.json()) {
    print_json({{"kind", s.kind == PeerKind::network_server ? "ns" : "as"},
                {"id", s.id},
                {"removed_from_registry", peer.has_value()},
                {"removed_from_ca_map", entry.has_value()},
                {"ca_file_removed", removed_file}});
  } else {
    std::cout << s.shown() << " removed"
              << (peer.has_value() ? "" : " (it was only in the sender CA map)")
              << (entry ? "" : " (it had no entry in the sender CA map)") << "\n";
  }
  return 0;
}

int run_list(Context& ctx, const ListOptions& /*unused*/) {
  const auto& config = ctx.join_server_config();
  const CaMap map = CaMap::load(config.sender_ca_map);
  const auto peers = must(ctx.registry().list_peers(), "listing the peers");
  nlohmann::json list = nlohmann::json::array();
  Table table({"KIND", "ID", "SESSION KEYS", "CA"});
  std::set<std::string> seen;
  for (const auto& p : peers) {
    const auto ca = map.find(p.id);
    seen.insert(host::js::SenderCaMap::normalize(p.id));
    const char* kind = p.kind == PeerKind::network_server ? "ns" : "as";
    list.push_back({{"kind", kind},
                    {"id", p.id},
                    {"kek_label", p.kek_label ? nlohmann::json(*p.kek_label) : nlohmann::json()},
                    {"plaintext_keys", p.plaintext_keys},
                    {"ca", ca ? nlohmann::json(*ca) : nlohmann::json()}});
    table.row({kind, p.id, delivery_of(p), ca.value_or("MISSING (the sender is refused)")});
  }
  // CA entries without a registry peer: authenticated, but no key delivery configured.
  for (const auto& [k, v] : map.entries()) {
    if (seen.contains(host::js::SenderCaMap::normalize(k))) continue;
    list.push_back({{"kind", nullptr},
                    {"id", k},
                    {"kek_label", nullptr},
                    {"plaintext_keys", false},
                    {"ca", v}});
    table.row({"-", k, "not in the registry", v});
  }
  if (ctx.json()) {
    print_json(list);
  } else {
    table.print(std::cout);
  }
  return 0;
}

void add_who(CLI::App* c, Who& who) {
  auto* net = c->add_option("--net-id", who.net_id, "A Network Server's NetID (6 hex digits)");
  auto* as = c->add_option("--as-id", who.as_id, "An Application Server's AS-ID");
  net->excludes(as);
  as->excludes(net);
}

}  // namespace

void register_peer(CLI::App& app, Context& ctx) {
  auto* group = app.add_subcommand("peer", "Network and Application Servers that may call");
  group->require_subcommand(1);

  auto add = std::make_shared<AddOptions>();
  auto* c = add_command(
      *group, "add",
      "Add or update a peer: the CA for its client certificates (copied next to the sender CA "
      "map as ca-<id>.pem) and how it receives session keys",
      "  lorakeepctl peer add --net-id 000013 --ca ns-ca.pem --kek-label ns-000013\n"
      "  lorakeepctl peer add --as-id as.example.com --ca as-ca.pem --kek-label as-kek");
  add_who(c, add->who);
  c->add_option("--ca", add->ca,
                "PEM file of the CA certificate(s); required unless the map has one already");
  auto* kek = c->add_option("--kek-label", add->kek_label,
                            "Deliver session keys wrapped under this KEK (lorakeepctl kek import)");
  auto* plain = c->add_flag("--plaintext-keys", add->plaintext_keys,
                            "Deliver session keys in plaintext (no KEK; logged on every use)");
  kek->excludes(plain);
  plain->excludes(kek);
  on_parsed(c, ctx, add, &run_add);

  auto list = std::make_shared<ListOptions>();
  c = add_command(*group, "list", "List the peers, their key delivery and CA",
                  "  lorakeepctl peer list --json");
  on_parsed(c, ctx, list, &run_list);

  auto rm = std::make_shared<RemoveOptions>();
  c = add_command(*group, "remove",
                  "Remove a peer from the registry and the sender CA map (and its copied CA file)",
                  "  lorakeepctl peer remove --net-id 000013");
  add_who(c, rm->who);
  on_parsed(c, ctx, rm, &run_remove);
}

}  // namespace lorakeep::ctl
