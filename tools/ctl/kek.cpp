// lorakeepctl kek import | list | delete: the KEKs agreed with Network and Application
// Servers (BI KEKLabel), token objects that can only wrap.
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "appliance/provision.hpp"
#include "tools/ctl/app.hpp"
#include "tools/ctl/output.hpp"
#include "tools/ctl/secret_input.hpp"
#include "tools/ctl/token_access.hpp"

namespace lorakeep::ctl {
namespace {

struct ImportOptions {
  std::string label;
  std::string key_file;
  std::string so_pin_file;
};

struct ListOptions {};

struct DeleteOptions {
  std::string label;
  bool force = false;
};

/// Peers (kind:id) that deliver keys under each KEK label; empty without a registry.
std::map<std::string, std::vector<std::string>> peers_by_kek(Context& ctx) {
  std::map<std::string, std::vector<std::string>> out;
  if (!ctx.has_join_server_section()) return out;
  const auto peers = must(ctx.registry().list_peers(), "listing the peers");
  for (const auto& p : peers) {
    if (!p.kek_label) continue;
    const char* kind = p.kind == host::registry::PeerKind::network_server ? "ns:" : "as:";
    out[*p.kek_label].push_back(kind + p.id);
  }
  // The token work may run in a forked child: no registry threads across the fork.
  ctx.close_registry();
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : ", ") + s;
  return out;
}

int run_import(Context& ctx, const ImportOptions& o) {
  const TokenJob job = trusted_key_job(ctx, o.so_pin_file);
  prepare_token_audit(ctx);
  pkcs11::SecretBytes key = read_key_file(o.key_file, "KEK", {16, 32});
  const std::size_t bits = key.size() * 8;
  std::string detail;
  const int code = run_on_token(
      ctx, job,
      [&](TokenSession& t) {
        const std::string object = std::string(appliance::kek_label_prefix) + o.label;
        if (t.session.find_key(object)) {
          throw CtlError(Exit::exists, "the token already holds a KEK labelled '" + o.label +
                                           "' (delete it first to replace it)");
        }
        must(appliance::import_key(t.session, appliance::KeyRole::kek, o.label, std::move(key),
                                   t.policy),
             "importing KEK '" + o.label + "'");
        t.audit_detail = "AES-" + std::to_string(bits) + " imported as " + object;
        if (ctx.json()) {
          print_json({{"label", o.label}, {"object", object}, {"bits", bits}, {"imported", true}});
        } else {
          std::cout << "KEK '" << o.label << "' imported as " << object << " (AES-" << bits
                    << ", sensitive, never extractable, wrap only"
                    << (t.policy.trusted_keks ? ", trusted" : "") << ")\n";
        }
        return 0;
      },
      detail);
  key.clear();
  return audit_token_action(ctx, code, "kek.import", o.label, detail);
}

int run_list(Context& ctx, const ListOptions& /*unused*/) {
  const auto users = peers_by_kek(ctx);
  std::string detail;
  return run_on_token(
      ctx, TokenJob{},
      [&](TokenSession& t) {
        const auto keys = list_key_objects(t);
        nlohmann::json list = nlohmann::json::array();
        Table table({"LABEL", "BITS", "POLICY", "USED BY"});
        for (const auto& k : keys) {
          if (k.role != appliance::KeyRole::kek) continue;
          const auto u = users.find(k.name);
          const std::vector<std::string> used =
              u == users.end() ? std::vector<std::string>{} : u->second;
          list.push_back({{"label", k.name},
                          {"object", k.label},
                          {"bits", k.attributes.value_len * 8},
                          {"policy", k.policy_problem ? *k.policy_problem : "ok"},
                          {"used_by", used}});
          table.row({k.name, std::to_string(k.attributes.value_len * 8),
                     k.policy_problem ? "FAILS: " + *k.policy_problem : "ok",
                     used.empty() ? "-" : joined(used)});
        }
        if (ctx.json()) {
          print_json(list);
        } else {
          table.print(std::cout);
        }
        return 0;
      },
      detail);
}

int run_delete(Context& ctx, const DeleteOptions& o) {
  const auto users = peers_by_kek(ctx);
  if (const auto u = users.find(o.label); u != users.end() && !o.force) {
    throw CtlError(Exit::exists, "KEK '" + o.label + "' is still used by " + joined(u->second) +
                                     ": change or remove those peers first, or give --force");
  }
  prepare_token_audit(ctx);
  std::string detail;
  const int code = run_on_token(
      ctx, TokenJob{},
      [&](TokenSession& t) {
        must(appliance::delete_key(t.session, appliance::KeyRole::kek, o.label),
             "deleting KEK '" + o.label + "'");
        t.audit_detail = "deleted" + std::string(o.force ? " (--force)" : "");
        if (ctx.json()) {
          print_json({{"label", o.label}, {"deleted", true}});
        } else {
          std::cout << "KEK '" << o.label << "' deleted from the token\n";
        }
        return 0;
      },
      detail);
  return audit_token_action(ctx, code, "kek.delete", o.label, detail);
}

}  // namespace

void register_kek(CLI::App& app, Context& ctx) {
  auto* group = app.add_subcommand("kek", "KEKs agreed with Network and Application Servers");
  group->require_subcommand(1);

  auto imp = std::make_shared<ImportOptions>();
  auto* c =
      add_command(*group, "import",
                  "Import a KEK from a file (32 or 64 hex digits, or 16 or 32 raw bytes) as "
                  "a non-extractable, wrap-only token object; the plaintext is wiped",
                  "  lorakeepctl kek import --label ns-000013 --key-file /root/ns-000013.kek\n"
                  "  shred -u /root/ns-000013.kek");
  c->add_option("--label", imp->label, "The BI KEKLabel (1-64 of A-Z a-z 0-9 - _ . : /)")
      ->required();
  c->add_option("--key-file", imp->key_file, "The file holding the KEK")->required();
  c->add_option("--so-pin-file", imp->so_pin_file,
                "The security officer's PIN file (only with appliance.trusted_keks)");
  on_parsed(c, ctx, imp, &run_import);

  auto list = std::make_shared<ListOptions>();
  c = add_command(*group, "list", "List the KEKs in the token and the peers using each",
                  "  lorakeepctl kek list --json");
  on_parsed(c, ctx, list, &run_list);

  auto del = std::make_shared<DeleteOptions>();
  c = add_command(*group, "delete",
                  "Delete a KEK from the token (refused while a peer still uses it)",
                  "  lorakeepctl kek delete --label ns-000013");
  c->add_option("--label", del->label, "The KEK's label")->required();
  c->add_flag("--force", del->force, "Delete even though peers still use it");
  on_parsed(c, ctx, del, &run_delete);
}

}  // namespace lorakeep::ctl
