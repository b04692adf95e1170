#include "remote_mode.hpp"

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "crypto.pb.h"
#include "host/appliance_client.hpp"
#include "token_fixture.hpp"

namespace lorakeep::crosscheck {

namespace {

using nlohmann::json;
namespace pb = crypto::v1;

struct Options {
  std::string address;
  std::optional<std::string> secret_file;
  std::chrono::milliseconds deadline{10000};
};

[[noreturn]] void usage(const std::string& why) {
  throw std::invalid_argument(why +
                              "\nusage: lorakeep-crosscheck [--appliance ADDRESS "
                              "[--secret-file FILE] [--deadline-ms N]]");
}

Options parse(int argc, char** argv) {
  Options o;
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (i + 1 >= args.size()) usage("missing value after " + a);
    const std::string& v = args[++i];
    if (a == "--appliance") {
      o.address = v;
    } else if (a == "--secret-file") {
      o.secret_file = v;
    } else if (a == "--deadline-ms") {
      o.deadline = std::chrono::milliseconds(std::stoul(v));
    } else {
      usage("unknown argument " + a);
    }
  }
  if (o.address.empty()) usage("--appliance is required");
  return o;
}

std::string bytes_of(const json& c, const char* name) {
  const auto raw = test::from_hex(c.at(name).get<std::string>());
  return {raw.begin(), raw.end()};
}

std::string hex(const std::string& bytes) {
  return test::to_hex(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
}

std::uint32_t byte_of(const json& c, const char* name) {
  return test::from_hex(c.at(name).get<std::string>()).at(0);
}

class Remote {
 public:
  Remote(host::ApplianceClient& client, std::chrono::milliseconds deadline)
      : client_(client), deadline_(deadline) {}

  // Sends a request; a transport failure or a code other than OK/MIC_FAILED throws, with the
  // appliance's message, and becomes the case's "error".
  pb::Response call(pb::Request request, const char* doing) {
    request.set_caller("lorakeep-crosscheck");
    auto r = client_.call(std::move(request), deadline_);
    if (!r) throw std::runtime_error(std::string(doing) + ": " + r.failure().message);
    if (r->code() != pb::OK && r->code() != pb::MIC_FAILED) {
      throw std::runtime_error(std::string(doing) + ": " + pb::Code_Name(r->code()) + ": " +
                               r->message());
    }
    return std::move(r).value();
  }

  std::string import_root_key(const json& c, const char* name) {
    pb::Request q;
    q.mutable_import_root_key()->set_dev_eui(bytes_of(c, "dev_eui"));
    q.mutable_import_root_key()->set_plaintext(bytes_of(c, name));
    auto r = call(std::move(q), "importing a root key");
    if (r.code() != pb::OK || !r.has_import_root_key()) {
      throw std::runtime_error("importing a root key: no ImportRootKeyResult");
    }
    return r.import_root_key().wrapped();
  }

 private:
  host::ApplianceClient& client_;
  std::chrono::milliseconds deadline_;
};

void fill_accept(const json& c, pb::AcceptFields& a) {
  a.set_join_nonce(
      static_cast<std::uint32_t>(std::stoul(c.at("join_nonce").get<std::string>(), nullptr, 16)));
  a.set_net_id(bytes_of(c, "net_id"));
  a.set_dev_addr(bytes_of(c, "dev_addr"));
  a.set_dl_settings(byte_of(c, "dl_settings"));
  a.set_rx_delay(byte_of(c, "rx_delay"));
  if (c.contains("cf_list")) a.set_cf_list(bytes_of(c, "cf_list"));
}

template <class Op>
void fill_common(const json& c, Op& op, const std::string& app_key, const std::string& nwk_key) {
  op.set_phy_payload(bytes_of(c, "phy_payload"));
  op.set_dev_eui(bytes_of(c, "dev_eui"));
  auto* wrapped = op.mutable_root_keys()->mutable_wrapped();
  wrapped->set_app_key(app_key);
  if (!nwk_key.empty()) wrapped->set_nwk_key(nwk_key);
  fill_accept(c, *op.mutable_accept());
  op.mutable_ns()->set_kek_label(c.at("kek_ns_label").get<std::string>());
  op.mutable_as()->set_kek_label(c.at("kek_as_label").get<std::string>());
  op.set_store_app_s_key(true);
}

json answer(const json& c, Remote& remote) {
  json a{{"id", c.at("id")}};
  if (!c.contains("kek_ns_label") || !c.contains("kek_as_label")) {
    throw std::runtime_error("the remote mode needs KEK labels in each case (run.py --fixed-keks)");
  }
  const bool is_1_1 = c.at("mac_version") == "1.1";
  const std::string app_key = remote.import_root_key(c, "app_key");
  const std::string nwk_key = is_1_1 ? remote.import_root_key(c, "nwk_key") : std::string();

  pb::Request q;
  if (c.at("kind") == "rejoin") {
    auto* op = q.mutable_rejoin();
    fill_common(c, *op, app_key, nwk_key);
    op->set_join_eui(bytes_of(c, "join_eui"));
  } else {
    auto* op = q.mutable_join();
    fill_common(c, *op, app_key, nwk_key);
    op->set_mac_version(c.at("mac_version").get<std::string>());
  }
  const auto r = remote.call(std::move(q), "join");
  if (r.code() == pb::MIC_FAILED) {
    a["mic_ok"] = false;
    return a;
  }
  if (!r.has_join()) throw std::runtime_error("join: OK without a JoinResult");
  const auto& j = r.join();
  a["mic_ok"] = true;
  a["join_accept"] = hex(j.join_accept());
  json keys = json::object();
  json labels = json::object();
  auto put = [&](const char* name, bool present, const pb::KeyEnvelope& e) {
    if (!present) return;
    keys[name] = hex(e.aes_key());
    labels[name] = e.kek_label();
  };
  put("NwkSKey", j.has_nwk_s_key(), j.nwk_s_key());
  put("FNwkSIntKey", j.has_f_nwk_s_int_key(), j.f_nwk_s_int_key());
  put("SNwkSIntKey", j.has_s_nwk_s_int_key(), j.s_nwk_s_int_key());
  put("NwkSEncKey", j.has_nwk_s_enc_key(), j.nwk_s_enc_key());
  put("AppSKey", j.has_app_s_key(), j.app_s_key());
  a["keys"] = keys;
  a["kek_labels"] = labels;

  // The AS asks again later (AppSKeyReq): the stored copy, re-wrapped under its KEK.
  if (j.stored_app_s_key().empty()) {
    a["rewrap"] = json{{"error", "the join answer holds no stored AppSKey"}};
    return a;
  }
  pb::Request w;
  auto* op = w.mutable_rewrap_app_s_key();
  op->set_dev_eui(bytes_of(c, "dev_eui"));
  op->set_stored_app_s_key(j.stored_app_s_key());
  op->mutable_as()->set_kek_label(c.at("kek_as_label").get<std::string>());
  const auto rw = remote.call(std::move(w), "re-wrapping the stored AppSKey");
  if (rw.code() != pb::OK || !rw.has_rewrap_app_s_key()) {
    a["rewrap"] = json{{"error", "no RewrapAppSKeyResult"}};
    return a;
  }
  a["rewrap"] = json{{"AppSKey", hex(rw.rewrap_app_s_key().app_s_key().aes_key())}};
  return a;
}

}  // namespace

int run_remote(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    host::ClientOptions co;
    co.endpoints = {o.address};
    co.connections_per_endpoint = 1;
    if (o.secret_file) {
      auto secret = host::SecretBuffer::from_file(*o.secret_file);
      if (!secret) throw std::runtime_error(secret.failure().message);
      co.cluster_secret = std::move(secret).value();
    }
    auto client = host::ApplianceClient::create(std::move(co));
    if (!client) throw std::runtime_error(client.failure().message);
    Remote remote(**client, o.deadline);
    answer_lines([&](const json& c) { return answer(c, remote); });
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "crosscheck (remote): " << e.what() << '\n';
    return 2;
  }
}

void answer_lines(const std::function<json(const json&)>& answer) {
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    const auto c = json::parse(line);
    json a;
    try {
      a = answer(c);
    } catch (const std::exception& e) {
      a = json{{"id", c.value("id", -1)}, {"mic_ok", false}, {"error", e.what()}};
    }
    std::cout << a.dump() << '\n';
  }
  std::cout.flush();
}

}  // namespace lorakeep::crosscheck
