// lorakeepctl join-test: acts as a Network Server for one join. Builds the device's
// join-request from its key file, POSTs the JoinReq over mTLS with the NS's certificate,
// then checks the JoinAns as the device and the NS would (tools/nsim): the join-accept's
// MIC and fields, and each session key unwrapped with the KEK file and compared with the
// device's own derivation. Optionally fetches the AppSKey as the AS (AppSKeyReq) and checks
// it too. Prints each step; never a key.
#include <openssl/rand.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "tools/ctl/app.hpp"
#include "tools/ctl/ca_map.hpp"
#include "tools/ctl/output.hpp"
#include "tools/ctl/secret_input.hpp"
#include "tools/nsim/https_client.hpp"
#include "tools/nsim/ns.hpp"

namespace lorakeep::ctl {
namespace {

using Clock = std::chrono::steady_clock;

struct JoinTestOptions {
  std::string url;
  std::string ca;
  std::string cert;
  std::string key;
  std::string net_id;
  std::string dev_eui;
  std::string join_eui;
  std::string mac_version;
  std::string app_key_file;
  std::string nwk_key_file;
  std::optional<unsigned> dev_nonce;
  std::string nonce_state;
  std::string dev_addr;
  bool no_opt_neg = false;
  unsigned rx_delay = 1;
  std::string cf_list;
  std::string kek_file;
  std::string kek_label;
  std::string as_kek_file;
  std::string as_kek_label;
  std::string as_id;
  std::string as_cert;
  std::string as_key;
  unsigned timeout_ms = 10000;
};

template <class Id>
Id parse_id(const std::string& text, const std::string& option) {
  auto id = Id::from_hex(text);
  if (!id) throw CtlError(Exit::usage, option + ": " + id.failure().message);
  return *id;
}

nsim::Key key_from_file(const std::string& file, const char* what,
                        std::initializer_list<std::size_t> sizes) {
  const pkcs11::SecretBytes secret = read_key_file(file, what, sizes);
  auto key = nsim::Key::from(secret.reveal());
  if (!key) throw CtlError(Exit::usage, file + ": " + what + ": not 16 or 32 bytes");
  return *key;
}

std::uint32_t random_u32() {
  std::uint32_t v = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1) {
    throw CtlError(Exit::failure, "no random bytes from OpenSSL");
  }
  return v;
}

/// The nonce state file: {"<DevEUI>": last DevNonce sent}. Read, advanced and written
/// back before the request goes out, so a lost answer never leads to a DevNonce reused.
std::uint16_t next_counter_nonce(const std::string& file, const lorawan::DevEui& dev_eui) {
  nlohmann::json state = nlohmann::json::object();
  std::ifstream in(file);
  if (in.good()) {
    state = nlohmann::json::parse(in, nullptr, false);
    if (state.is_discarded() || !state.is_object()) {
      throw CtlError(Exit::usage, "--nonce-state " + file + ": not a JSON object");
    }
  }
  std::uint32_t next = 1;
  if (const auto it = state.find(dev_eui.hex()); it != state.end()) {
    if (!it->is_number_unsigned()) {
      throw CtlError(Exit::usage,
                     "--nonce-state " + file + ": " + dev_eui.hex() + ": not a number");
    }
    next = it->get<std::uint32_t>() + 1;
  }
  if (next > 0xFFFF) {
    throw CtlError(Exit::failure, "DevEUI " + dev_eui.hex() +
                                      " has used every DevNonce (65535): reset its nonces "
                                      "(lorakeepctl device reset-nonces) and the state file");
  }
  state[dev_eui.hex()] = next;
  write_file_atomically(file, state.dump(1) + "\n", 0600);
  return static_cast<std::uint16_t>(next);
}

struct Step {
  std::string name;
  bool ok;
  std::string detail;
};

int run_join_test(Context& ctx, const JoinTestOptions& o) {
  std::signal(SIGPIPE, SIG_IGN);
  const auto version = lorawan::parse_mac_version(o.mac_version);
  if (!version) throw CtlError(Exit::usage, "--mac-version: " + version.failure().message);
  const bool one_one = lorawan::is_1_1(*version);
  const bool counter = lorawan::dev_nonce_is_counter(*version);

  nsim::Device device;
  device.mac_version = *version;
  device.dev_eui = parse_id<lorawan::DevEui>(o.dev_eui, "--dev-eui");
  device.join_eui = parse_id<lorawan::JoinEui>(o.join_eui, "--join-eui");
  const auto net_id = parse_id<lorawan::NetId>(o.net_id, "--net-id");
  const auto url = nsim::Url::parse(o.url);
  if (!url) throw CtlError(Exit::usage, "--url: " + url.failure().message);
  if (one_one && o.nwk_key_file.empty()) {
    throw CtlError(Exit::usage, "--nwk-key-file: a LoRaWAN 1.1 device has two root keys");
  }
  if (!one_one && !o.nwk_key_file.empty()) {
    throw CtlError(Exit::usage, "--nwk-key-file: only a LoRaWAN 1.1 device has a NwkKey");
  }
  const bool app_s_key_req = !o.as_id.empty();
  if (app_s_key_req && (o.as_cert.empty() || o.as_key.empty() || o.as_kek_file.empty())) {
    throw CtlError(Exit::usage,
                   "--as-id needs --as-cert, --as-key and --as-kek-file (the AS's certificate "
                   "and KEK)");
  }
  if (counter && !o.dev_nonce && o.nonce_state.empty()) {
    throw CtlError(Exit::usage, "a LoRaWAN " + o.mac_version +
                                    " device's DevNonce is a counter: give --dev-nonce N or "
                                    "--nonce-state FILE");
  }
  if (o.dev_nonce && *o.dev_nonce > 0xFFFF) {
    throw CtlError(Exit::usage, "--dev-nonce: 0 to 65535");
  }
  std::optional<nsim::Block> cf_list;
  if (!o.cf_list.empty()) {
    auto cf = lorawan::CfList::from_hex(o.cf_list);
    if (!cf) throw CtlError(Exit::usage, "--cf-list: " + cf.failure().message);
    cf_list = cf->bytes;
  }

  device.app_key = key_from_file(o.app_key_file, "AppKey", {16});
  if (one_one) device.nwk_key = key_from_file(o.nwk_key_file, "NwkKey", {16});
  nsim::KeyExpectations expect;
  if (!o.kek_file.empty()) {
    expect.ns_kek = nsim::Kek{o.kek_label, key_from_file(o.kek_file, "KEK", {16, 32})};
  }
  if (!o.as_kek_file.empty()) {
    expect.as_kek = nsim::Kek{o.as_kek_label, key_from_file(o.as_kek_file, "AS KEK", {16, 32})};
  }
  auto tls = nsim::TlsContext::create({o.ca, o.cert, o.key});
  if (!tls) throw CtlError(Exit::usage, tls.failure().message);

  std::string nonce_source;
  std::uint16_t dev_nonce = 0;
  if (o.dev_nonce) {
    dev_nonce = static_cast<std::uint16_t>(*o.dev_nonce);
    nonce_source = "given";
  } else if (counter) {
    dev_nonce = next_counter_nonce(o.nonce_state, device.dev_eui);
    nonce_source = "counter, from " + o.nonce_state;
  } else {
    dev_nonce = static_cast<std::uint16_t>(random_u32());
    nonce_source = "random";
  }
  const lorawan::DevAddr dev_addr = o.dev_addr.empty()
                                        ? lorawan::DevAddr::from_uint(random_u32())
                                        : parse_id<lorawan::DevAddr>(o.dev_addr, "--dev-addr");
  nsim::JoinReq request =
      nsim::make_join_req(device, dev_nonce, net_id, dev_addr, random_u32() & 0x7FFFFFFF);
  if (o.no_opt_neg) request.dl_settings = 0x00;
  request.rx_delay = static_cast<std::uint8_t>(o.rx_delay);
  request.cf_list = cf_list;

  const bool human = !ctx.json();
  nlohmann::json report = {{"url", o.url},
                           {"dev_eui", device.dev_eui.hex()},
                           {"join_eui", device.join_eui.hex()},
                           {"mac_version", o.mac_version},
                           {"net_id", net_id.hex()},
                           {"dev_nonce", dev_nonce},
                           {"dev_nonce_source", nonce_source},
                           {"transaction_id", request.transaction_id},
                           {"dev_addr", dev_addr.hex()},
                           {"opt_neg", (request.dl_settings & 0x80) != 0}};
  if (human) {
    std::cout << "join-test: DevEUI " << device.dev_eui.hex() << " (LoRaWAN " << o.mac_version
              << ") through NetID " << net_id.hex() << " at " << o.url << "\n"
              << "  JoinReq: BI " << request.protocol_version << ", DevNonce " << dev_nonce << " ("
              << nonce_source << "), DevAddr " << dev_addr.hex() << ", TransactionID "
              << request.transaction_id
              << (one_one ? std::string(", OptNeg ") + (o.no_opt_neg ? "off" : "on") : "") << "\n";
  }

  nsim::HttpsClient client(*tls, *url, std::chrono::milliseconds(o.timeout_ms));
  const auto start = Clock::now();
  auto response = client.post(request.json());
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (!response) {
    report["error"] = response.failure().message;
    report["success"] = false;
    if (human) {
      std::cout << "  FAIL  no answer: " << response.failure().message << "\n"
                << "result: the join did not happen (no answer from the Join Server)\n";
    } else {
      print_json(report);
    }
    return static_cast<int>(Exit::unavailable);
  }
  report["http_status"] = response->status;
  report["latency_ms"] = ms;
  std::array<char, 32> took{};
  std::snprintf(took.data(), took.size(), "%.1f ms", ms);
  if (human) std::cout << "  HTTP " << response->status << " in " << took.data() << "\n";

  nsim::JoinVerdict verdict;
  std::optional<nsim::Answer> answer;
  if (response->status != 200) {
    verdict.checks.push_back(
        {"HTTP status", false, std::to_string(response->status) + " (every BI answer is 200)"});
  } else if (auto parsed = nsim::parse_answer(response->body); !parsed) {
    verdict.checks.push_back({"answer", false, parsed.failure().message});
  } else {
    answer = std::move(*parsed);
    report["result_code"] = answer->result_code;
    report["description"] = answer->description;
    // Without --kek-label the label the answer names is the one checked for the rest.
    if (expect.ns_kek && expect.ns_kek->label.empty()) {
      for (const auto* e : {&answer->nwk_s_key, &answer->f_nwk_s_int_key}) {
        if (*e && (*e)->kek_label) expect.ns_kek->label = *(*e)->kek_label;
      }
    }
    if (expect.as_kek && expect.as_kek->label.empty() && answer->app_s_key &&
        answer->app_s_key->kek_label) {
      expect.as_kek->label = *answer->app_s_key->kek_label;
    }
    verdict = nsim::verify_join_answer(device, dev_nonce, request, *answer, expect);
  }

  const bool joined = verdict.ok();
  std::optional<nsim::JoinVerdict> as_verdict;
  if (joined && app_s_key_req) {
    auto as_tls = nsim::TlsContext::create({o.ca, o.as_cert, o.as_key});
    if (!as_tls) throw CtlError(Exit::usage, as_tls.failure().message);
    nsim::AppSKeyReq req;
    req.protocol_version = request.protocol_version;
    req.as_id = o.as_id;
    req.join_eui = device.join_eui;
    req.transaction_id = random_u32() & 0x7FFFFFFF;
    req.dev_eui = device.dev_eui;
    req.session_key_id = answer->session_key_id;
    nsim::HttpsClient as_client(*as_tls, *url, std::chrono::milliseconds(o.timeout_ms));
    auto as_response = as_client.post(req.json());
    as_verdict.emplace();
    if (!as_response) {
      as_verdict->checks.push_back({"AppSKeyReq", false, as_response.failure().message});
    } else if (auto parsed = nsim::parse_answer(as_response->body); !parsed) {
      as_verdict->checks.push_back(
          {"AppSKeyReq", false,
           "HTTP " + std::to_string(as_response->status) + ": " + parsed.failure().message});
    } else {
      const auto keys = nsim::derive_session_keys(device, verdict.accept->fields, dev_nonce);
      nsim::Kek as_kek = *expect.as_kek;
      if (as_kek.label.empty() && parsed->app_s_key && parsed->app_s_key->kek_label) {
        as_kek.label = *parsed->app_s_key->kek_label;
      }
      *as_verdict = nsim::verify_app_s_key_answer(req, *parsed, as_kek, keys.app_s_key);
    }
  }

  const auto checks_json = [](const nsim::JoinVerdict& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& c : v.checks)
      a.push_back({{"name", c.name}, {"ok", c.ok}, {"detail", c.detail}});
    return a;
  };
  report["checks"] = checks_json(verdict);
  if (verdict.accept) {
    report["join_nonce"] = verdict.accept->fields.join_nonce;
    report["lorawan_1_1_keys"] = verdict.accept->lorawan_1_1;
  }
  if (answer && !answer->session_key_id.empty()) {
    report["session_key_id"] = lorawan::to_hex(answer->session_key_id);
  }
  if (as_verdict)
    report["app_s_key_req"] = {{"as_id", o.as_id}, {"checks", checks_json(*as_verdict)}};
  const bool success = joined && (!as_verdict || as_verdict->ok());
  report["success"] = success;

  if (!human) {
    print_json(report);
  } else {
    const auto print = [](const nsim::JoinVerdict& v) {
      std::size_t width = 0;
      for (const auto& c : v.checks)
        width = std::max(width, c.name.size());
      for (const auto& c : v.checks) {
        std::cout << "  " << (c.ok ? "ok    " : "FAIL  ") << c.name
                  << std::string(width - c.name.size() + 2, ' ') << c.detail << "\n";
      }
    };
    print(verdict);
    if (as_verdict) {
      std::cout << "  AppSKeyReq as " << o.as_id << ":\n";
      print(*as_verdict);
    }
    if (success) {
      std::cout << "result: the join succeeded and every check held\n";
    } else if (!answer || answer->result_code != "Success") {
      std::cout << "result: the join was refused"
                << (answer && !answer->result_code.empty() ? " (" + answer->result_code + ")" : "")
                << "\n";
    } else {
      std::cout << "result: the Join Server answered Success, but "
                << (joined ? "the AppSKeyReq check '" + as_verdict->first_failure() + "'"
                           : "the check '" + verdict.first_failure() + "'")
                << " failed\n";
    }
  }
  if (success) return 0;
  if (!answer || answer->result_code != "Success") return static_cast<int>(Exit::failure);
  return static_cast<int>(Exit::check_failed);
}

}  // namespace

void register_join_test(CLI::App& app, Context& ctx) {
  auto o = std::make_shared<JoinTestOptions>();
  auto* c = add_command(
      app, "join-test",
      "Act as a Network Server for one join: build the device's join-request from its key "
      "file, send the JoinReq over mTLS, then check the answer as the device and the NS "
      "would (join-accept MIC and fields, each session key unwrapped with the KEK and compared "
      "with the device's derivation). Prints each step, never a key. Exit 0: joined and every "
      "check held; 1: refused (the ResultCode says why); 5: no answer; 7: answered Success "
      "but a check failed",
      "  lorakeepctl join-test --url https://127.0.0.1:8443/ --ca js-ca.pem \\\n"
      "    --cert ns.pem --cert-key-file ns.key --net-id 000013 --dev-eui 0004A30B001C0530 \\\n"
      "    --join-eui 70B3D57ED0000000 --mac-version 1.1 --app-key-file dev.app \\\n"
      "    --nwk-key-file dev.nwk --nonce-state nonces.json --kek-file ns.kek \\\n"
      "    --as-kek-file as.kek");
  c->add_option("--url", o->url, "The Join Server, https://HOST:PORT/")->required();
  c->add_option("--ca", o->ca, "PEM: the CA of the Join Server's certificate")->required();
  c->add_option("--cert", o->cert, "PEM: the Network Server's client certificate")->required();
  c->add_option("--cert-key-file", o->key,
                "PEM: the private key of --cert (a file; never the key itself)")
      ->required();
  c->add_option("--net-id", o->net_id, "The Network Server's NetID (SenderID)")->required();
  c->add_option("--dev-eui", o->dev_eui, "The device's DevEUI")->required();
  c->add_option("--join-eui", o->join_eui, "The device's JoinEUI")->required();
  c->add_option("--mac-version", o->mac_version, "1.0, 1.0.1 … 1.0.4, 1.1")->required();
  c->add_option("--app-key-file", o->app_key_file, "The device's AppKey (32 hex digits)")
      ->required();
  c->add_option("--nwk-key-file", o->nwk_key_file, "The device's NwkKey (LoRaWAN 1.1)");
  c->add_option("--dev-nonce", o->dev_nonce,
                "The DevNonce (default: random for 1.0.0-1.0.3; a counter device needs this or "
                "--nonce-state)");
  c->add_option("--nonce-state", o->nonce_state,
                "A JSON file of the last DevNonce sent per DevEUI: the next is used and saved "
                "before sending");
  c->add_option("--dev-addr", o->dev_addr, "The DevAddr to assign (default: random)");
  c->add_flag("--no-opt-neg", o->no_opt_neg,
              "Leave OptNeg off in DLSettings (a 1.1 device then joins as 1.0)");
  c->add_option("--rx-delay", o->rx_delay, "RxDelay")->check(CLI::Range(0, 255));
  c->add_option("--cf-list", o->cf_list, "A CFList to send (32 hex digits)");
  c->add_option("--kek-file", o->kek_file,
                "The NS's KEK (without it, plaintext network keys are expected)");
  c->add_option("--kek-label", o->kek_label,
                "The KEKLabel expected on the network keys (default: the one the answer names)");
  c->add_option("--as-kek-file", o->as_kek_file,
                "The AS's KEK: the AppSKey is expected in the JoinAns under it");
  c->add_option("--as-kek-label", o->as_kek_label, "The KEKLabel expected on the AppSKey");
  c->add_option("--as-id", o->as_id,
                "Then fetch the AppSKey as this Application Server (AppSKeyReq)");
  c->add_option("--as-cert", o->as_cert, "PEM: the AS's client certificate");
  c->add_option("--as-cert-key-file", o->as_key, "PEM: the private key of --as-cert (a file)");
  c->add_option("--timeout-ms", o->timeout_ms, "How long to wait for each answer")
      ->check(CLI::Range(1, 600000));
  on_parsed(c, ctx, o, &run_join_test);
}

}  // namespace lorakeep::ctl
