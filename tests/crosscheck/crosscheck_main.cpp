// The C++ half of the randomized cross-check: reads cases (JSON lines, from run.py) on
// stdin, runs each through the appliance on a throwaway token (LORAKEEP_TEST_TOKEN: SoftHSMv2
// or NSS softoken), and writes the answers (JSON lines) on stdout for run.py to compare with
// python3-cryptography.
// With arguments (--appliance ADDRESS ...) it asks a running lorakeep-cs instead
// (remote_mode.hpp).
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "appliance/join.hpp"
#include "appliance/keys.hpp"
#include "appliance/provision.hpp"
#include "remote_mode.hpp"
#include "token_fixture.hpp"
#include "token_policy.hpp"

using namespace lorakeep;
using nlohmann::json;

namespace {

using Bytes = std::vector<std::uint8_t>;

template <class T>
T must(Result<T> r, const char* what) {
  if (!r.ok()) throw std::runtime_error(std::string(what) + ": " + r.failure().message);
  return std::move(r).value();
}

/// KEKs are token objects: import each distinct value once per run.
class Keks {
 public:
  explicit Keks(pkcs11::Session& s) : session_(s) {}
  std::string label_for(const std::string& hex) {
    if (auto it = labels_.find(hex); it != labels_.end()) return it->second;
    auto label = "kek-" + std::to_string(labels_.size());
    must(appliance::import_key(session_, appliance::KeyRole::kek, label,
                               pkcs11::SecretBytes(test::from_hex(hex)), test::token_policy()),
         "importing a KEK");
    labels_.emplace(hex, label);
    return label;
  }

 private:
  pkcs11::Session& session_;
  std::map<std::string, std::string> labels_{};
};

lorawan::JoinAcceptFields accept_fields(const json& c) {
  lorawan::JoinAcceptFields f{
      must(lorawan::JoinNonce::create(static_cast<std::uint32_t>(
               std::stoul(c["join_nonce"].get<std::string>(), nullptr, 16))),
           "JoinNonce"),
      must(lorawan::NetId::from_hex(c["net_id"].get<std::string>()), "NetID"),
      must(lorawan::DevAddr::from_hex(c["dev_addr"].get<std::string>()), "DevAddr"),
      lorawan::DlSettings{test::from_hex(c["dl_settings"].get<std::string>()).at(0)},
      lorawan::RxDelay{test::from_hex(c["rx_delay"].get<std::string>()).at(0)},
      std::nullopt};
  if (c.contains("cf_list")) {
    f.cf_list = must(lorawan::CfList::from_hex(c["cf_list"].get<std::string>()), "CFList");
  }
  return f;
}

json answer(const json& c, pkcs11::Session& session, appliance::KeyDirectory& keys, Keks& keks) {
  json a{{"id", c["id"]}};
  const bool is_1_1 = c["mac_version"] == "1.1";
  appliance::WrappedRootKeys root;
  root.app_key =
      must(appliance::import_root_key(
               session, keys, pkcs11::SecretBytes(test::from_hex(c["app_key"].get<std::string>()))),
           "importing AppKey");
  if (is_1_1) {
    root.nwk_key = must(
        appliance::import_root_key(
            session, keys, pkcs11::SecretBytes(test::from_hex(c["nwk_key"].get<std::string>()))),
        "importing NwkKey");
  }
  const appliance::Delivery ns{keks.label_for(c["kek_ns"]), false};
  const appliance::Delivery as{keks.label_for(c["kek_as"]), false};
  Result<appliance::JoinOutput> out = fail(Status::internal, "not run");
  if (c["kind"] == "rejoin") {
    appliance::RejoinInput in;
    in.rejoin_request = test::from_hex(c["phy_payload"].get<std::string>());
    in.join_eui = must(lorawan::JoinEui::from_hex(c["join_eui"].get<std::string>()), "JoinEUI");
    in.root_keys = root;
    in.accept = accept_fields(c);
    in.ns = ns;
    in.as = as;
    out = appliance::rejoin(session, keys, in);
  } else {
    appliance::JoinInput in;
    in.mac_version = must(lorawan::parse_mac_version(c["mac_version"].get<std::string>()), "MAC");
    in.join_request = test::from_hex(c["phy_payload"].get<std::string>());
    in.root_keys = root;
    in.accept = accept_fields(c);
    in.ns = ns;
    in.as = as;
    out = appliance::join(session, keys, in);
  }
  if (!out.ok()) {
    a["mic_ok"] = false;
    if (out.failure().status != Status::mic_failed) a["error"] = out.failure().message;
    return a;
  }
  a["mic_ok"] = true;
  a["join_accept"] = lorawan::to_hex(out->join_accept);
  json k = json::object();
  auto put = [&](const char* name, const std::optional<appliance::KeyEnvelope>& e) {
    if (e) k[name] = lorawan::to_hex(e->aes_key);
  };
  put("NwkSKey", out->nwk_s_key);
  put("FNwkSIntKey", out->f_nwk_s_int_key);
  put("SNwkSIntKey", out->s_nwk_s_int_key);
  put("NwkSEncKey", out->nwk_s_enc_key);
  put("AppSKey", out->app_s_key);
  a["keys"] = k;
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) return crosscheck::run_remote(argc, argv);
  try {
    test::TestToken token("crosscheck");
    auto session = token.user_session();
    must(appliance::create_storage_key(session, test::token_policy()), "creating the storage key");
    appliance::KeyDirectory keys(test::token_policy());
    Keks keks(session);
    crosscheck::answer_lines([&](const json& c) { return answer(c, session, keys, keks); });
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "crosscheck: " << e.what() << '\n';
    return 2;
  }
}
