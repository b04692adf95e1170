#include "tools/ctl/device_spec.hpp"

#include <algorithm>
#include <set>

#include "tools/ctl/secret_input.hpp"

namespace lorakeep::ctl {
namespace reg = host::registry;

namespace {

bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t' || c == ';' || c == ',' || c == '|';
}

const WipedString* field(const Fields& fields, std::string_view name) {
  for (const auto& [k, v] : fields) {
    if (k == name && !v.view().empty()) return &v;
  }
  return nullptr;
}

template <class Id>
Result<std::optional<Id>> optional_id(const Fields& fields, std::string_view name) {
  const auto* f = field(fields, name);
  if (f == nullptr) return std::optional<Id>();
  auto id = Id::from_hex(f->view());
  if (!id) return fail(Status::malformed, std::string(name) + ": " + id.failure().message);
  return std::optional<Id>(*id);
}

template <class Id>
Result<Id> required_id(const Fields& fields, std::string_view name) {
  auto id = optional_id<Id>(fields, name);
  if (!id) return id.failure();
  if (!id->has_value()) return fail(Status::malformed, std::string(name) + ": missing");
  return **id;
}

}  // namespace

const std::vector<std::string>& field_names() {
  static const std::vector<std::string> names = {
      "dev_eui", "join_eui",    "mac_version", "app_key", "nwk_key",        "part_number",
      "serial",  "home_net_id", "hnsid",       "as_id",   "allowed_net_ids"};
  return names;
}

Result<std::string> check_as_id(std::string_view text, std::string_view what) {
  if (text.empty() || text.size() > 255) {
    return fail(Status::malformed, std::string(what) + ": 1 to 255 characters");
  }
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F) {
      return fail(Status::malformed, std::string(what) + ": printable ASCII without blanks only");
    }
  }
  return std::string(text);
}

Result<std::string> check_label(std::string_view text, std::string_view what) {
  if (text.empty() || text.size() > 64) {
    return fail(Status::malformed, std::string(what) + ": 1 to 64 characters");
  }
  for (const char c : text) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == ':' || c == '/';
    if (!ok) return fail(Status::malformed, std::string(what) + ": only A-Z a-z 0-9 - _ . : /");
  }
  return std::string(text);
}

Result<DeviceSpec> make_device(const Fields& fields) {
  DeviceSpec spec;
  reg::Device& d = spec.device;

  auto dev_eui = required_id<lorawan::DevEui>(fields, "dev_eui");
  if (!dev_eui) return dev_eui.failure();
  d.dev_eui = *dev_eui;
  auto join_eui = required_id<lorawan::JoinEui>(fields, "join_eui");
  if (!join_eui) return join_eui.failure();
  d.join_eui = *join_eui;

  const auto* mac = field(fields, "mac_version");
  if (mac == nullptr) return fail(Status::malformed, "mac_version: missing");
  auto version = lorawan::parse_mac_version(mac->view());
  if (!version) return fail(Status::malformed, "mac_version: " + version.failure().message);
  d.mac_version = *version;

  auto home = required_id<lorawan::NetId>(fields, "home_net_id");
  if (!home) return home.failure();
  d.home_net_id = *home;

  auto hnsid = optional_id<lorawan::NsId>(fields, "hnsid");
  if (!hnsid) return hnsid.failure();
  d.hnsid = *hnsid;

  if (const auto* as = field(fields, "as_id")) {
    auto id = check_as_id(as->view(), "as_id");
    if (!id) return id.failure();
    d.as_id = *id;
  }

  if (const auto* allowed = field(fields, "allowed_net_ids")) {
    const std::string_view text = allowed->view();
    std::set<lorawan::NetId> seen;
    std::size_t i = 0;
    while (i < text.size()) {
      while (i < text.size() && is_blank(text[i]))
        ++i;
      std::size_t j = i;
      while (j < text.size() && !is_blank(text[j]))
        ++j;
      if (j > i) {
        auto id = lorawan::NetId::from_hex(text.substr(i, j - i));
        if (!id) return fail(Status::malformed, "allowed_net_ids: " + id.failure().message);
        if (seen.insert(*id).second) d.allowed_net_ids.push_back(*id);
      }
      i = j;
    }
  }

  const auto* app = field(fields, "app_key");
  const auto* nwk = field(fields, "nwk_key");
  const auto* part = field(fields, "part_number");
  const auto* serial = field(fields, "serial");
  const bool one_one = lorawan::is_1_1(d.mac_version);
  if (app != nullptr || nwk != nullptr) {
    if (part != nullptr || serial != nullptr) {
      return fail(Status::malformed,
                  "give either app_key (and nwk_key) or part_number and serial, not both");
    }
    if (app == nullptr) return fail(Status::malformed, "app_key: missing (nwk_key given)");
    auto key = secret_from_hex(app->view(), 16, "app_key");
    if (!key) return key.failure();
    spec.app_key = std::move(*key);
    if (one_one) {
      if (nwk == nullptr) {
        return fail(Status::malformed, "nwk_key: missing: a LoRaWAN 1.1 device has two root keys");
      }
      auto nkey = secret_from_hex(nwk->view(), 16, "nwk_key");
      if (!nkey) return nkey.failure();
      spec.nwk_key = std::move(*nkey);
    } else if (nwk != nullptr) {
      return fail(Status::malformed, "nwk_key: only LoRaWAN 1.1 devices have one (this is " +
                                         std::string(lorawan::mac_version_name(d.mac_version)) +
                                         ")");
    }
    d.root_keys = reg::WrappedRootKeys{};
  } else if (part != nullptr || serial != nullptr) {
    if (part == nullptr) return fail(Status::malformed, "part_number: missing (serial given)");
    if (serial == nullptr) return fail(Status::malformed, "serial: missing (part_number given)");
    auto number = check_label(part->view(), "part_number");
    if (!number) return number.failure();
    auto bytes = lorawan::decode_hex(serial->view(), "serial");
    if (!bytes) return fail(Status::malformed, bytes.failure().message);
    if (bytes->empty() || bytes->size() > 12) {
      return fail(Status::malformed, "serial: 1 to 12 bytes (2 to 24 hex digits), got " +
                                         std::to_string(bytes->size()));
    }
    d.root_keys = reg::PartRootKeys{*number, reg::Bytes(bytes->begin(), bytes->end())};
  } else {
    return fail(Status::malformed,
                "no root keys: give app_key (and nwk_key for 1.1), or "
                "part_number and serial");
  }
  return spec;
}

namespace {

Failure appliance_failure(const crypto::v1::Response& r) {
  const std::string message = "lorakeep-cs answered " + crypto::v1::Code_Name(r.code()) +
                              (r.message().empty() ? "" : ": " + r.message());
  switch (r.code()) {
    case crypto::v1::MALFORMED:
      return fail(Status::malformed, message);
    case crypto::v1::UNKNOWN_KEY:
      return fail(Status::unknown_key, message);
    case crypto::v1::KEY_POLICY:
      return fail(Status::key_policy, message);
    case crypto::v1::TOKEN_UNAVAILABLE:
    case crypto::v1::DEADLINE_EXCEEDED:
    case crypto::v1::SHUTTING_DOWN:
      return fail(Status::token_unavailable, message);
    default:
      return fail(Status::internal, message);
  }
}

Result<reg::Bytes> wrap_one(host::ApplianceClient& client, const std::string& caller,
                            std::chrono::milliseconds deadline, const lorawan::DevEui& dev_eui,
                            const pkcs11::SecretBytes& key) {
  crypto::v1::Request request;
  request.set_caller(caller);
  auto* op = request.mutable_import_root_key();
  op->set_dev_eui(dev_eui.bytes().data(), dev_eui.bytes().size());
  const auto plain = key.reveal();
  op->set_plaintext(plain.data(), plain.size());
  auto answer = client.call(std::move(request), deadline);
  // The request was moved into the call, which wipes its plaintext, the serialized request
  // and the frame when it returns (host::ApplianceClient::call).
  if (!answer) return answer.failure();
  if (answer->code() != crypto::v1::OK) return appliance_failure(*answer);
  const std::string& wrapped = answer->import_root_key().wrapped();
  if (wrapped.size() != 24) {
    return fail(Status::internal, "lorakeep-cs answered a wrapped key of " +
                                      std::to_string(wrapped.size()) + " bytes, not 24");
  }
  return reg::Bytes(wrapped.begin(), wrapped.end());
}

}  // namespace

Result<Ok> appliance_ready(host::ApplianceClient& client, const std::string& caller,
                           std::chrono::milliseconds deadline) {
  crypto::v1::Request request;
  request.set_caller(caller);
  request.mutable_info();
  auto answer = client.call(std::move(request), deadline);
  if (!answer) return answer.failure();
  if (answer->code() != crypto::v1::OK) return appliance_failure(*answer);
  if (!answer->info().self_test_passed()) {
    return fail(Status::key_policy, "lorakeep-cs reports that its self-test did not pass");
  }
  return Ok{};
}

Result<Ok> wrap_keys(host::ApplianceClient& client, const std::string& caller,
                     std::chrono::milliseconds deadline, DeviceSpec& spec) {
  if (!spec.app_key) return Ok{};
  reg::WrappedRootKeys wrapped;
  auto app = wrap_one(client, caller, deadline, spec.device.dev_eui, *spec.app_key);
  if (!app) return app.failure();
  wrapped.app_key = std::move(*app);
  if (spec.nwk_key) {
    auto nwk = wrap_one(client, caller, deadline, spec.device.dev_eui, *spec.nwk_key);
    if (!nwk) return nwk.failure();
    wrapped.nwk_key = std::move(*nwk);
  }
  spec.app_key.reset();
  spec.nwk_key.reset();
  spec.device.root_keys = std::move(wrapped);
  return Ok{};
}

nlohmann::json device_json(const reg::Device& d) {
  nlohmann::json keys;
  if (const auto* w = std::get_if<reg::WrappedRootKeys>(&d.root_keys)) {
    keys = {
        {"kind", "wrapped"}, {"app_key", !w->app_key.empty()}, {"nwk_key", !w->nwk_key.empty()}};
  } else if (const auto* p = std::get_if<reg::PartRootKeys>(&d.root_keys)) {
    keys = {
        {"kind", "part"}, {"part_number", p->part_number}, {"serial", lorawan::to_hex(p->serial)}};
  }
  nlohmann::json allowed = nlohmann::json::array();
  for (const auto& n : d.allowed_net_ids)
    allowed.push_back(n.hex());
  return {{"dev_eui", d.dev_eui.hex()},
          {"join_eui", d.join_eui.hex()},
          {"mac_version", lorawan::mac_version_name(d.mac_version)},
          {"root_keys", keys},
          {"home_net_id", d.home_net_id.hex()},
          {"hnsid", d.hnsid ? nlohmann::json(d.hnsid->hex()) : nlohmann::json()},
          {"as_id", d.as_id ? nlohmann::json(*d.as_id) : nlohmann::json()},
          {"allowed_net_ids", allowed}};
}

std::string describe_keys(const reg::Device& d) {
  if (const auto* w = std::get_if<reg::WrappedRootKeys>(&d.root_keys)) {
    return w->nwk_key.empty() ? "wrapped AppKey" : "wrapped AppKey+NwkKey";
  }
  if (const auto* p = std::get_if<reg::PartRootKeys>(&d.root_keys)) {
    return "part " + p->part_number + " serial " + lorawan::to_hex(p->serial);
  }
  return "?";
}

}  // namespace lorakeep::ctl
