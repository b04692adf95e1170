// lorakeep-test-token: sets up a token for a test that runs lorakeep-cs as a separate
// process — SoftHSMv2 (its directory and softhsm2.conf, a token with the given user PIN) or
// NSS softoken (a database made by certutil whose password is the PIN) — then the storage
// key and KEKs, and prints how to load the token as one JSON object:
//
//   {"kind": "nss", "module": "/usr/lib/…/libsoftokn3.so", "init_args": "configdir='sql:…' …",
//    "token_label": "NSS Certificate DB", "allowed_mechanisms": false, "environment": {}}
//
// (the keys of lorakeep.yml's appliance.pkcs11 section; "init_args" is null for SoftHSMv2,
// whose "environment" holds SOFTHSM2_CONF). Unlike TestToken, the directory stays: the
// test owns it. tests/support/test_token.py wraps this for Python tests.
//
//   lorakeep-test-token --dir DIR --pin-file FILE [--kind softhsm|nss] [--label LABEL]
//                       [--kek LABEL=HEXFILE]...
//
// --dir is SoftHSMv2's token directory or NSS's database directory (created if missing). An
// NSS database made here stores its keys under a one-iteration PBKDF2 (token_fixture.hpp,
// create_nss_database): fast to use, for tests only.
// --label defaults to "lorakeep-cs-test" on SoftHSMv2 and to NSS's own "NSS Certificate DB".
// The PIN and KEKs come from files, never from the command line. SoftHSMv2's SO PIN is random
// and forgotten: nothing in these tests needs the security officer afterwards.
#include <stdlib.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "appliance/keys.hpp"
#include "appliance/provision.hpp"
#include "pkcs11/module.hpp"
#include "pkcs11/secret.hpp"
#include "pkcs11/session.hpp"
#include "token_fixture.hpp"

using namespace lorakeep;
namespace fs = std::filesystem;

namespace {

struct Options {
  fs::path dir;
  fs::path pin_file;
  test::TokenKind kind = test::TokenKind::softhsm;
  std::optional<std::string> label;
  std::vector<std::pair<std::string, fs::path>> keks;
};

[[noreturn]] void usage(const std::string& why) {
  throw std::invalid_argument(why +
                              "\nusage: lorakeep-test-token --dir DIR --pin-file FILE "
                              "[--kind softhsm|nss] [--label LABEL] [--kek LABEL=HEXFILE]...");
}

Options parse(int argc, char** argv) {
  Options o;
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (i + 1 >= args.size()) usage("missing value after " + a);
    const std::string& v = args[++i];
    if (a == "--dir") {
      o.dir = v;
    } else if (a == "--pin-file") {
      o.pin_file = v;
    } else if (a == "--label") {
      o.label = v;
    } else if (a == "--kind") {
      const auto kind = test::parse_kind(v);
      if (!kind) usage("--kind is softhsm or nss");
      o.kind = *kind;
    } else if (a == "--kek") {
      const auto eq = v.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == v.size())
        usage("--kek wants LABEL=HEXFILE");
      o.keks.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else {
      usage("unknown argument " + a);
    }
  }
  if (o.dir.empty() || o.pin_file.empty()) usage("--dir and --pin-file are required");
  return o;
}

// A key file holds hex (any case), surrounding whitespace ignored.
pkcs11::SecretBytes read_hex_key(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  std::stringstream text;
  text << in.rdbuf();
  std::string hex;
  for (const char c : text.str()) {
    if (std::isspace(static_cast<unsigned char>(c)) == 0) hex += c;
  }
  auto bytes = test::from_hex(hex);
  pkcs11::SecretBytes key(bytes);
  pkcs11::secure_zero(bytes.data(), bytes.size());
  pkcs11::secure_zero(hex.data(), hex.size());
  return key;
}

template <class T>
T must(Result<T> r, const std::string& what) {
  if (!r.ok()) throw std::runtime_error(what + ": " + r.failure().message);
  return std::move(r).value();
}

/// Where the token is and how to load it; the storage key and KEKs are made through it.
struct Made {
  pkcs11::Module::Options load;
  std::string label;
  nlohmann::json environment = nlohmann::json::object();
};

Made make_softhsm(const Options& o, const pkcs11::SecretBytes& user_pin) {
  const fs::path conf = test::write_softhsm_conf(o.dir);
  if (::setenv("SOFTHSM2_CONF", conf.c_str(), 1) != 0) throw std::runtime_error("setenv");
  Made made{{test::module_path(test::TokenKind::softhsm), std::nullopt},
            o.label.value_or("lorakeep-cs-test")};
  made.environment["SOFTHSM2_CONF"] = conf.string();
  const pkcs11::SecretBytes so_pin(test::random_bytes(16));
  const pkcs11::Module module(made.load);
  const auto free = module.free_slot();
  if (!free) throw std::runtime_error("SoftHSMv2 offers no free slot");
  module.init_token(*free, so_pin, made.label);
  pkcs11::TokenSelector selector;
  selector.label = made.label;
  pkcs11::Session so(module, module.find_token(selector), so_pin,
                     pkcs11::Session::SecurityOfficer{});
  so.init_user_pin(user_pin);
  return made;
}

Made make_nss(const Options& o, const pkcs11::SecretBytes& user_pin) {
  test::create_nss_database(o.dir, user_pin);
  const std::string label = o.label.value_or("");
  return {{test::module_path(test::TokenKind::nss), test::nss_init_args(o.dir, label)},
          label.empty() ? "NSS Certificate DB" : label};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    const auto user_pin = pkcs11::SecretBytes::from_file(o.pin_file.c_str());
    const Made made =
        o.kind == test::TokenKind::nss ? make_nss(o, user_pin) : make_softhsm(o, user_pin);
    appliance::Policy policy;
    // NSS softoken cannot store CKA_ALLOWED_MECHANISMS on token objects.
    policy.allowed_mechanisms = o.kind != test::TokenKind::nss;
    {
      const pkcs11::Module module(made.load);
      pkcs11::TokenSelector selector;
      selector.label = made.label;
      pkcs11::Session session(module, module.find_token(selector), user_pin);
      must(appliance::create_storage_key(session, policy), "creating the storage key");
      for (const auto& [label, file] : o.keks) {
        must(appliance::import_key(session, appliance::KeyRole::kek, label, read_hex_key(file),
                                   policy),
             "importing KEK " + label);
      }
    }
    const nlohmann::json out = {
        {"kind", test::kind_name(o.kind)},
        {"module", made.load.path.string()},
        {"init_args", made.load.reserved ? nlohmann::json(*made.load.reserved) : nullptr},
        {"token_label", made.label},
        {"allowed_mechanisms", policy.allowed_mechanisms},
        {"environment", made.environment},
    };
    std::cout << out.dump() << '\n';
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "lorakeep-test-token: " << e.what() << '\n';
    return 2;
  }
}
