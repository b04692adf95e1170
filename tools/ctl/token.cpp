// lorakeepctl token init | status | selftest: the storage key and the token's health.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "appliance/join.hpp"
#include "appliance/provision.hpp"
#include "tools/ctl/app.hpp"
#include "tools/ctl/output.hpp"
#include "tools/ctl/token_access.hpp"

namespace lorakeep::ctl {
namespace {

nlohmann::json token_json(const pkcs11::TokenInfo& t) {
  return {{"label", t.label},
          {"serial", t.serial},
          {"manufacturer", t.manufacturer},
          {"model", t.model},
          {"slot", t.slot}};
}

struct InitOptions {
  std::string so_pin_file;
};

int run_init(Context& ctx, const InitOptions& o) {
  const TokenJob job = trusted_key_job(ctx, o.so_pin_file);
  prepare_token_audit(ctx);
  std::string detail;
  const int code = run_on_token(
      ctx, job,
      [&ctx](TokenSession& t) {
        const auto created =
            must(appliance::create_storage_key(t.session, t.policy), "token " + t.token.label);
        const char* what = created.created ? "created" : "present";
        t.audit_detail = std::string("storage key ") + what + " on token '" + t.token.label +
                         "' (serial " + t.token.serial + ")";
        if (ctx.json()) {
          print_json({{"token", token_json(t.token)},
                      {"storage_key", appliance::storage_key_label},
                      {"created", created.created},
                      {"trusted_keks", t.policy.trusted_keks}});
        } else {
          std::cout << "token '" << t.token.label << "' (serial " << t.token.serial
                    << "): storage key " << appliance::storage_key_label << " "
                    << (created.created ? "created (AES-256, generated in the token)"
                                        : "already present; its policy checks out")
                    << "\n";
        }
        return 0;
      },
      detail);
  return audit_token_action(ctx, code, "token.init", std::string(appliance::storage_key_label),
                            detail);
}

struct CreateOptions {
  std::string so_pin_file;
};

int run_create(Context& ctx, const CreateOptions& o) {
  TokenJob job;
  job.create_token = true;
  if (!o.so_pin_file.empty()) job.so_pin_file = o.so_pin_file;
  prepare_token_audit(ctx);
  std::string detail;
  const int code = run_on_token(
      ctx, job,
      [&ctx](TokenSession& t) {
        const char* what = t.token_created ? "created" : "present";
        t.audit_detail = std::string("token ") + what + " (serial " + t.token.serial + ")";
        if (ctx.json()) {
          print_json({{"token", token_json(t.token)}, {"created", t.token_created}});
        } else {
          std::cout << "token '" << t.token.label << "' (serial " << t.token.serial << ", slot "
                    << t.token.slot << "): "
                    << (t.token_created ? "created, user PIN set from appliance.pkcs11.pin_file"
                                        : "already present, the user PIN logs in")
                    << "\nnext: lorakeepctl token init   (the storage key)\n";
        }
        return 0;
      },
      detail);
  return audit_token_action(ctx, code, "token.create",
                            ctx.appliance_config().pkcs11.token.label.value_or(""), detail);
}

int run_status(Context& ctx, const bool& /*unused*/) {
  std::string detail;
  return run_on_token(
      ctx, TokenJob{},
      [&ctx](TokenSession& t) {
        const auto keys = list_key_objects(t);
        bool storage = false;
        bool ok = true;
        for (const auto& k : keys) {
          if (k.role == appliance::KeyRole::storage && !k.policy_problem) storage = true;
          if (k.policy_problem) ok = false;
        }
        ok = ok && storage;
        if (ctx.json()) {
          nlohmann::json list = nlohmann::json::array();
          for (const auto& k : keys) {
            list.push_back({{"label", k.label},
                            {"role", k.role ? std::string(role_name(*k.role)) : "unknown"},
                            {"name", k.name},
                            {"bits", k.attributes.value_len * 8},
                            {"flags", describe_flags(k.attributes)},
                            {"policy", k.policy_problem ? *k.policy_problem : "ok"}});
          }
          print_json({{"token", token_json(t.token)},
                      {"trusted_keks", t.policy.trusted_keks},
                      {"storage_key", storage},
                      {"keys", list},
                      {"ok", ok}});
        } else {
          std::cout << "token      " << t.token.label << " (serial " << t.token.serial << ", "
                    << t.token.manufacturer << " " << t.token.model << ", slot " << t.token.slot
                    << ")\n"
                    << "module     " << t.config.pkcs11.module.string() << "\n"
                    << "policy     trusted KEKs " << (t.policy.trusted_keks ? "on" : "off") << "\n"
                    << "storage    "
                    << (storage ? "present, policy ok"
                                : "MISSING or failing the policy: run 'lorakeepctl token init'")
                    << "\n\n";
          Table table({"ROLE", "NAME", "BITS", "POLICY", "ATTRIBUTES"});
          for (const auto& k : keys) {
            table.row({k.role ? std::string(role_name(*k.role)) : "unknown", k.name,
                       std::to_string(k.attributes.value_len * 8),
                       k.policy_problem ? "FAILS: " + *k.policy_problem : "ok",
                       describe_flags(k.attributes)});
          }
          table.print(std::cout);
        }
        return ok ? 0 : static_cast<int>(Exit::check_failed);
      },
      detail);
}

int run_selftest(Context& ctx, const bool& /*unused*/) {
  std::string detail;
  return run_on_token(
      ctx, TokenJob{},
      [&ctx](TokenSession& t) {
        const auto result = appliance::self_test(t.session);
        const bool passed = result.ok();
        if (ctx.json()) {
          print_json({{"token", token_json(t.token)},
                      {"self_test", passed ? "passed" : "failed"},
                      {"message", passed ? "" : result.failure().message}});
        } else if (passed) {
          std::cout << "self-test passed on token '" << t.token.label
                    << "': RFC 4493 CMAC, RFC 3394 wrap, ECB derivation, LoRaWAN 1.0 and 1.1 "
                       "joins\n";
        } else {
          std::cout << "self-test FAILED on token '" << t.token.label
                    << "': " << result.failure().message << "\n";
        }
        return passed ? 0 : static_cast<int>(Exit::check_failed);
      },
      detail);
}

}  // namespace

void register_token(CLI::App& app, Context& ctx) {
  auto* group = app.add_subcommand("token", "The token: storage key, key objects, self-test");
  group->require_subcommand(1);

  auto create = std::make_shared<CreateOptions>();
  auto* c = add_command(*group, "create",
                        "Initialize the configured token on a free slot of the module "
                        "(C_InitToken with the security officer's PIN, then C_InitPIN with "
                        "appliance.pkcs11.pin_file); idempotent: a token with the configured "
                        "label is left as it is. For SoftHSMv2 and other software tokens; a "
                        "hardware HSM's token is set up with its vendor's tools",
                        "  lorakeepctl token create --so-pin-file /etc/lorakeep/so.pin\n"
                        "  lorakeepctl token init");
  c->add_option("--so-pin-file", create->so_pin_file,
                "The security officer's PIN for the new token, in a file (else "
                "LORAKEEP_SO_PIN)");
  on_parsed(c, ctx, create, &run_create);

  auto init = std::make_shared<InitOptions>();
  c = add_command(*group, "init",
                  "Create the storage key in the configured token (idempotent: an "
                  "existing one is checked against the key policy)",
                  "  lorakeepctl token init\n"
                  "  lorakeepctl token init --so-pin-file /etc/lorakeep/so.pin   # "
                  "trusted_keks: true");
  c->add_option("--so-pin-file", init->so_pin_file,
                "The security officer's PIN, in a file (only with appliance.trusted_keks; "
                "else LORAKEEP_SO_PIN)");
  on_parsed(c, ctx, init, &run_init);

  auto none = std::make_shared<bool>(false);
  c = add_command(*group, "status",
                  "Show the token and every lorakeep key object with its policy verdict "
                  "(exit 7 when a key fails the policy or the storage key is missing)",
                  "  lorakeepctl token status\n  lorakeepctl token status --json");
  on_parsed(c, ctx, none, &run_status);

  c = add_command(*group, "selftest",
                  "Run the known-answer tests through the token (exit 7 when one fails)",
                  "  lorakeepctl token selftest");
  on_parsed(c, ctx, none, &run_selftest);
}

}  // namespace lorakeep::ctl
