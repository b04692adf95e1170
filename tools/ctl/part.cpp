// lorakeepctl part import | list: secure-element part root keys, from which the token
// derives the root keys of pre-provisioned devices (docs/join-crypto.md).
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "appliance/provision.hpp"
#include "tools/ctl/app.hpp"
#include "tools/ctl/output.hpp"
#include "tools/ctl/secret_input.hpp"
#include "tools/ctl/token_access.hpp"

namespace lorakeep::ctl {
namespace {

struct ImportOptions {
  std::string part_number;
  std::string key_file;
};

struct ListOptions {};

int run_import(Context& ctx, const ImportOptions& o) {
  prepare_token_audit(ctx);
  // The derivation is AES-128-ECB under the part key: 16 bytes.
  pkcs11::SecretBytes key = read_key_file(o.key_file, "part root key", {16});
  std::string detail;
  const int code = run_on_token(
      ctx, TokenJob{},
      [&](TokenSession& t) {
        const std::string object = std::string(appliance::part_key_label_prefix) + o.part_number;
        if (t.session.find_key(object)) {
          throw CtlError(Exit::exists,
                         "the token already holds the root key of part '" + o.part_number + "'");
        }
        must(appliance::import_key(t.session, appliance::KeyRole::part, o.part_number,
                                   std::move(key), t.policy),
             "importing the root key of part '" + o.part_number + "'");
        t.audit_detail = "AES-128 imported as " + object;
        if (ctx.json()) {
          print_json({{"part_number", o.part_number}, {"object", object}, {"imported", true}});
        } else {
          std::cout << "root key of part '" << o.part_number << "' imported as " << object
                    << " (AES-128, sensitive, never extractable, derive only)\n";
        }
        return 0;
      },
      detail);
  key.clear();
  return audit_token_action(ctx, code, "part.import", o.part_number, detail);
}

int run_list(Context& ctx, const ListOptions& /*unused*/) {
  std::string detail;
  return run_on_token(
      ctx, TokenJob{},
      [&](TokenSession& t) {
        nlohmann::json list = nlohmann::json::array();
        Table table({"PART NUMBER", "BITS", "POLICY"});
        for (const auto& k : list_key_objects(t)) {
          if (k.role != appliance::KeyRole::part) continue;
          list.push_back({{"part_number", k.name},
                          {"object", k.label},
                          {"bits", k.attributes.value_len * 8},
                          {"policy", k.policy_problem ? *k.policy_problem : "ok"}});
          table.row({k.name, std::to_string(k.attributes.value_len * 8),
                     k.policy_problem ? "FAILS: " + *k.policy_problem : "ok"});
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

}  // namespace

void register_part(CLI::App& app, Context& ctx) {
  auto* group = app.add_subcommand("part", "Secure-element part root keys");
  group->require_subcommand(1);

  auto imp = std::make_shared<ImportOptions>();
  auto* c = add_command(*group, "import",
                        "Import a part's root key from a file (32 hex digits or 16 raw bytes) "
                        "as a non-extractable, derive-only token object",
                        "  lorakeepctl part import --part-number ATECC608-TNGLORA "
                        "--key-file /root/part.key");
  c->add_option("--part-number", imp->part_number,
                "The part number (1-64 of A-Z a-z 0-9 - _ . : /)")
      ->required();
  c->add_option("--key-file", imp->key_file, "The file holding the part root key")->required();
  on_parsed(c, ctx, imp, &run_import);

  auto list = std::make_shared<ListOptions>();
  c = add_command(*group, "list", "List the part root keys in the token",
                  "  lorakeepctl part list");
  on_parsed(c, ctx, list, &run_list);
}

}  // namespace lorakeep::ctl
