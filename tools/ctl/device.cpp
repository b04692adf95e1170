// lorakeepctl device add | import | list | show | delete | reset-nonces.
#include <ctime>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tools/ctl/app.hpp"
#include "tools/ctl/device_import.hpp"
#include "tools/ctl/device_spec.hpp"
#include "tools/ctl/output.hpp"
#include "tools/ctl/secret_input.hpp"

namespace lorakeep::ctl {
namespace reg = host::registry;

namespace {

struct AddOptions {
  std::string dev_eui, join_eui, mac_version, app_key_file, nwk_key_file, part_number, serial,
      home_net_id, hnsid, as_id;
  std::vector<std::string> allowed_net_ids;
};

struct ListOptions {
  std::string after;
  std::size_t limit = 0;  // 0: all
};

struct OneDevice {
  std::string dev_eui;
};

lorawan::DevEui parse_dev_eui(const std::string& text) {
  auto id = lorawan::DevEui::from_hex(text);
  if (!id) throw CtlError(Exit::usage, "--dev-eui: " + id.failure().message);
  return *id;
}

void put(Fields& f, const char* name, const std::string& value) {
  WipedString w(value.size());
  w.str() = value;
  f.emplace_back(name, std::move(w));
}

/// A key file's 16 bytes as hex text in a WipedString, so that options and import rows go
/// through the same checks.
void put_key_file(Fields& f, const char* name, const std::string& file) {
  const pkcs11::SecretBytes key = read_key_file(file, name, {16});
  static constexpr std::array<char, 16> digits = {'0', '1', '2', '3', '4', '5', '6', '7',
                                                  '8', '9', 'A', 'B', 'C', 'D', 'E', 'F'};
  WipedString hex(2 * key.size());
  for (const std::uint8_t b : key.reveal()) {
    hex.str() += digits[b >> 4];
    hex.str() += digits[b & 0x0F];
  }
  f.emplace_back(name, std::move(hex));
}

std::string utc(std::int64_t unix_time) {
  const auto t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  std::array<char, 32> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf.data();
}

int run_add(Context& ctx, const AddOptions& o) {
  Fields f;
  put(f, "dev_eui", o.dev_eui);
  put(f, "join_eui", o.join_eui);
  put(f, "mac_version", o.mac_version);
  put(f, "home_net_id", o.home_net_id);
  put(f, "hnsid", o.hnsid);
  put(f, "as_id", o.as_id);
  put(f, "part_number", o.part_number);
  put(f, "serial", o.serial);
  std::string allowed;
  for (const auto& n : o.allowed_net_ids)
    allowed += (allowed.empty() ? "" : " ") + n;
  put(f, "allowed_net_ids", allowed);
  if (!o.app_key_file.empty()) put_key_file(f, "app_key", o.app_key_file);
  if (!o.nwk_key_file.empty()) put_key_file(f, "nwk_key", o.nwk_key_file);
  auto spec = make_device(f);
  f.clear();
  if (!spec) throw CtlError(Exit::usage, spec.failure().message);

  auto& registry = ctx.registry();
  const auto& eui = spec->device.dev_eui;
  if (must(registry.find_device(eui), "reading the registry")) {
    throw CtlError(Exit::exists, "device " + eui.hex() +
                                     " is already in the registry (delete it first to change it)");
  }
  if (spec->needs_wrap()) {
    must(appliance_ready(ctx.appliance(1), ctx.actor(), appliance_check_deadline), "lorakeep-cs");
    must(wrap_keys(ctx.appliance(1), ctx.actor(), ctx.appliance_deadline(), *spec),
         "wrapping the root keys of " + eui.hex());
  }
  const auto outcome = must(registry.add_device(spec->device), "adding " + eui.hex());
  if (outcome == reg::AddOutcome::already_present) {
    throw CtlError(Exit::exists, "device " + eui.hex() + " was added meanwhile by someone else");
  }
  const auto& d = spec->device;
  ctx.audit("device.add", eui.hex(),
            "mac=" + std::string(lorawan::mac_version_name(d.mac_version)) +
                " keys=" + describe_keys(d) + " home=" + d.home_net_id.hex());
  if (ctx.json()) {
    print_json({{"added", true}, {"device", device_json(d)}});
  } else {
    std::cout << "device " << eui.hex() << " added: LoRaWAN "
              << lorawan::mac_version_name(d.mac_version) << ", " << describe_keys(d)
              << (std::holds_alternative<reg::WrappedRootKeys>(d.root_keys)
                      ? " under the storage key"
                      : "")
              << ", home NetID " << d.home_net_id.hex() << "\n";
  }
  return 0;
}

int run_list(Context& ctx, const ListOptions& o) {
  auto& registry = ctx.registry();
  std::optional<lorawan::DevEui> after;
  if (!o.after.empty()) {
    auto id = lorawan::DevEui::from_hex(o.after);
    if (!id) throw CtlError(Exit::usage, "--after: " + id.failure().message);
    after = *id;
  }
  constexpr std::size_t page = 1000;
  std::size_t shown = 0;
  Table table({"DEVEUI", "JOINEUI", "MAC", "ROOT KEYS", "HOME", "AS-ID", "ALLOWED"});
  if (ctx.json()) std::cout << "[";
  for (;;) {
    std::size_t want = page;
    if (o.limit != 0) want = std::min(page, o.limit - shown);
    if (want == 0) break;
    const auto devices = must(registry.list_devices(after, want), "listing the devices");
    for (const auto& d : devices) {
      if (ctx.json()) {
        std::cout << (shown == 0 ? "" : ",") << dump_json(device_json(d));
      } else {
        std::string allowed;
        for (const auto& n : d.allowed_net_ids)
          allowed += (allowed.empty() ? "" : " ") + n.hex();
        table.row({d.dev_eui.hex(), d.join_eui.hex(),
                   std::string(lorawan::mac_version_name(d.mac_version)), describe_keys(d),
                   d.home_net_id.hex(), d.as_id.value_or("-"), allowed.empty() ? "-" : allowed});
      }
      ++shown;
    }
    if (devices.size() < want) break;
    after = devices.back().dev_eui;
  }
  if (ctx.json()) {
    std::cout << "]\n";
  } else {
    table.print(std::cout);
  }
  return 0;
}

int run_show(Context& ctx, const OneDevice& o) {
  const auto eui = parse_dev_eui(o.dev_eui);
  auto& registry = ctx.registry();
  const auto device = must(registry.find_device(eui), "reading the registry");
  if (!device) throw CtlError(Exit::not_found, "no device " + eui.hex() + " in the registry");
  const auto state = must(registry.nonce_state(eui), "reading the nonces");
  const auto sessions = must(registry.sessions(eui), "reading the sessions");
  const reg::NonceState nonces = state.value_or(reg::NonceState{});
  if (ctx.json()) {
    nlohmann::json s = nlohmann::json::array();
    for (const auto& x : sessions) {
      s.push_back({{"session_key_id", lorawan::to_hex(x.session_key_id)},
                   {"net_id", x.net_id.hex()},
                   {"created", utc(x.created_unix)},
                   {"app_s_key_stored", !x.stored_app_s_key.empty()},
                   {"app_s_key_as_kek_label",
                    x.as_app_s_key.empty() ? nlohmann::json() : nlohmann::json(x.as_kek_label)}});
    }
    nlohmann::json history = nonces.dev_nonce_history;
    print_json({{"device", device_json(*device)},
                {"nonces",
                 {{"generation", nonces.generation},
                  {"join_nonce_last", nonces.join_nonce_last},
                  {"dev_nonce_last", nonces.dev_nonce_last ? nlohmann::json(*nonces.dev_nonce_last)
                                                           : nlohmann::json()},
                  {"dev_nonce_history", history},
                  {"rj_count1_last", nonces.rj_count1_last ? nlohmann::json(*nonces.rj_count1_last)
                                                           : nlohmann::json()}}},
                {"sessions", s}});
    return 0;
  }
  const auto& d = *device;
  std::string allowed;
  for (const auto& n : d.allowed_net_ids)
    allowed += (allowed.empty() ? "" : " ") + n.hex();
  std::cout << "DevEUI            " << d.dev_eui.hex() << "\n"
            << "JoinEUI           " << d.join_eui.hex() << "\n"
            << "MAC version       " << lorawan::mac_version_name(d.mac_version)
            << (lorawan::dev_nonce_is_counter(d.mac_version) ? " (DevNonce counter)"
                                                             : " (random DevNonce)")
            << "\n"
            << "root keys         " << describe_keys(d) << "\n"
            << "home NetID        " << d.home_net_id.hex() << "\n"
            << "HNSID             " << (d.hnsid ? d.hnsid->hex() : "-") << "\n"
            << "AS-ID             " << d.as_id.value_or("-") << "\n"
            << "allowed NetIDs    " << (allowed.empty() ? "-" : allowed) << "\n"
            << "JoinNonce last    " << nonces.join_nonce_last << "\n"
            << "DevNonce last     "
            << (nonces.dev_nonce_last ? std::to_string(*nonces.dev_nonce_last) : "-") << "\n"
            << "DevNonces kept    " << nonces.dev_nonce_history.size() << "\n"
            << "RJcount1 last     "
            << (nonces.rj_count1_last ? std::to_string(*nonces.rj_count1_last) : "-") << "\n"
            << "sessions          " << sessions.size() << "\n";
  if (!sessions.empty()) {
    std::cout << "\n";
    Table t({"SESSION KEY ID", "NETID", "CREATED", "APPSKEY KEPT"});
    for (const auto& x : sessions) {
      std::string kept = "no";
      if (!x.stored_app_s_key.empty()) {
        kept = "under the storage key";
      } else if (!x.as_app_s_key.empty()) {
        kept = "as delivered, under " + x.as_kek_label;
      }
      t.row({lorawan::to_hex(x.session_key_id), x.net_id.hex(), utc(x.created_unix), kept});
    }
    t.print(std::cout);
  }
  return 0;
}

int run_delete(Context& ctx, const OneDevice& o) {
  const auto eui = parse_dev_eui(o.dev_eui);
  auto& registry = ctx.registry();
  const auto device = must(registry.find_device(eui), "reading the registry");
  if (!device) throw CtlError(Exit::not_found, "no device " + eui.hex() + " in the registry");
  const auto sessions = must(registry.sessions(eui), "reading the sessions");
  if (!must(registry.delete_device(eui), "deleting " + eui.hex())) {
    throw CtlError(Exit::not_found, "no device " + eui.hex() + " in the registry");
  }
  ctx.audit("device.delete", eui.hex(),
            "mac=" + std::string(lorawan::mac_version_name(device->mac_version)) +
                " keys=" + describe_keys(*device) + " sessions=" + std::to_string(sessions.size()));
  if (ctx.json()) {
    print_json({{"dev_eui", eui.hex()}, {"deleted", true}, {"sessions_deleted", sessions.size()}});
  } else {
    std::cout << "device " << eui.hex() << " deleted, with its nonces and " << sessions.size()
              << " session(s)\n";
  }
  return 0;
}

int run_reset_nonces(Context& ctx, const OneDevice& o) {
  const auto eui = parse_dev_eui(o.dev_eui);
  auto& registry = ctx.registry();
  const auto before = must(registry.nonce_state(eui), "reading the nonces");
  if (!before) throw CtlError(Exit::not_found, "no device " + eui.hex() + " in the registry");
  if (!must(registry.reset_nonces(eui), "resetting the nonces of " + eui.hex())) {
    throw CtlError(Exit::not_found, "no device " + eui.hex() + " in the registry");
  }
  const auto& s = *before;
  const std::string detail =
      "before: dev_nonce_last=" +
      (s.dev_nonce_last ? std::to_string(*s.dev_nonce_last) : std::string("none")) +
      " dev_nonce_history=" + std::to_string(s.dev_nonce_history.size()) + " rj_count1_last=" +
      (s.rj_count1_last ? std::to_string(*s.rj_count1_last) : std::string("none")) +
      "; join_nonce_last=" + std::to_string(s.join_nonce_last) + " kept";
  ctx.audit("device.reset-nonces", eui.hex(), detail);
  if (ctx.json()) {
    print_json({{"dev_eui", eui.hex()},
                {"reset", true},
                {"join_nonce_last", s.join_nonce_last},
                {"dev_nonces_forgotten", s.dev_nonce_history.size() + (s.dev_nonce_last ? 1 : 0)}});
  } else {
    std::cout << "device " << eui.hex()
              << ": DevNonces and RJcount1 forgotten; the JoinNonce stays at " << s.join_nonce_last
              << " (audited)\n";
  }
  return 0;
}

}  // namespace

void register_device(CLI::App& app, Context& ctx) {
  auto* group = app.add_subcommand("device", "Devices in the registry");
  group->require_subcommand(1);

  auto add = std::make_shared<AddOptions>();
  auto* c = add_command(
      *group, "add",
      "Add a device: its root keys are wrapped under the storage key by lorakeep-cs (which "
      "must be running) before they reach the registry",
      "  lorakeepctl device add --dev-eui 0004A30B001C0530 --join-eui 70B3D57ED0000000 \\\n"
      "      --mac-version 1.0.3 --app-key-file app.key --home-net-id 000013\n"
      "  lorakeepctl device add --dev-eui 0004A30B001C0531 --join-eui 70B3D57ED0000000 \\\n"
      "      --mac-version 1.1 --part-number ATECC608-TNGLORA --serial 0123456789AB \\\n"
      "      --home-net-id 000013 --as-id as.example.com --allowed-net-id 600010");
  c->add_option("--dev-eui", add->dev_eui, "DevEUI (16 hex digits)")->required();
  c->add_option("--join-eui", add->join_eui, "JoinEUI (16 hex digits)")->required();
  c->add_option("--mac-version", add->mac_version, "1.0, 1.0.1 ... 1.0.4, 1.1 (or 1.1.0)")
      ->required();
  auto* app_key = c->add_option("--app-key-file", add->app_key_file,
                                "File with the AppKey (32 hex digits or 16 raw bytes)");
  auto* nwk_key =
      c->add_option("--nwk-key-file", add->nwk_key_file, "File with the NwkKey (LoRaWAN 1.1)");
  auto* part = c->add_option("--part-number", add->part_number,
                             "Secure-element part number (its root key: lorakeepctl part import)");
  auto* serial = c->add_option("--serial", add->serial, "The device's serial (hex, 1-12 bytes)");
  for (auto* k : {app_key, nwk_key}) {
    k->excludes(part);
    k->excludes(serial);
  }
  nwk_key->needs(app_key);
  part->needs(serial);
  serial->needs(part);
  c->add_option("--home-net-id", add->home_net_id, "The home Network Server's NetID")->required();
  c->add_option("--hnsid", add->hnsid, "The home NS-ID (BI 1.1 HNSID, 16 hex digits)");
  c->add_option("--as-id", add->as_id, "The Application Server that may fetch its AppSKey");
  c->add_option("--allowed-net-id", add->allowed_net_ids,
                "Another NetID that may activate it (repeat for more)");
  on_parsed(c, ctx, add, &run_add);

  add_import_command(*group, ctx);

  auto list = std::make_shared<ListOptions>();
  c = add_command(*group, "list", "List devices in DevEUI order",
                  "  lorakeepctl device list --limit 50\n"
                  "  lorakeepctl device list --after 0004A30B001C0530 --json");
  c->add_option("--after", list->after, "Start after this DevEUI");
  c->add_option("--limit", list->limit, "At most this many (default: all)");
  on_parsed(c, ctx, list, &run_list);

  auto show = std::make_shared<OneDevice>();
  c = add_command(*group, "show", "Show a device, its nonce state and its sessions",
                  "  lorakeepctl device show --dev-eui 0004A30B001C0530");
  c->add_option("--dev-eui", show->dev_eui, "DevEUI")->required();
  on_parsed(c, ctx, show, &run_show);

  auto del = std::make_shared<OneDevice>();
  c = add_command(*group, "delete", "Delete a device with its nonces and sessions (audited)",
                  "  lorakeepctl device delete --dev-eui 0004A30B001C0530");
  c->add_option("--dev-eui", del->dev_eui, "DevEUI")->required();
  on_parsed(c, ctx, del, &run_delete);

  auto reset = std::make_shared<OneDevice>();
  c = add_command(*group, "reset-nonces",
                  "Forget a device's DevNonces and RJcount1, e.g. after a device reset its "
                  "counter; the JoinNonce never goes back (audited)",
                  "  lorakeepctl device reset-nonces --dev-eui 0004A30B001C0530");
  c->add_option("--dev-eui", reset->dev_eui, "DevEUI")->required();
  on_parsed(c, ctx, reset, &run_reset_nonces);
}

}  // namespace lorakeep::ctl
