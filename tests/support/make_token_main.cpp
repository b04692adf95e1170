// lorakeep-test-token: sets up a SoftHSMv2 token for a test that runs lorakeep-cs as a separate
// process — the token directory and softhsm2.conf, the token with the given user PIN, the
// storage key, and KEKs — then prints the softhsm2.conf path. Unlike TestToken, the
// directory stays: the test owns it.
//
//   lorakeep-test-token --dir DIR --pin-file FILE [--label LABEL] [--kek LABEL=HEXFILE]...
//
// The PIN and KEKs come from files, never from the command line. The SO PIN is random and
// forgotten: nothing in these tests needs the security officer afterwards.
#include <stdlib.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
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
  std::string label = "lorakeep-cs-test";
  std::vector<std::pair<std::string, fs::path>> keks;
};

[[noreturn]] void usage(const std::string& why) {
  throw std::invalid_argument(why +
                              "\nusage: lorakeep-test-token --dir DIR --pin-file FILE "
                              "[--label LABEL] [--kek LABEL=HEXFILE]...");
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

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    fs::create_directories(o.dir / "tokens");
    const fs::path conf = fs::absolute(o.dir / "softhsm2.conf");
    {
      std::ofstream out(conf);
      out << "directories.tokendir = " << fs::absolute(o.dir / "tokens").string() << "\n"
          << "objectstore.backend = file\n"
          << "log.level = ERROR\n"
          << "slots.removable = false\n";
      if (!out) throw std::runtime_error("cannot write " + conf.string());
    }
    if (::setenv("SOFTHSM2_CONF", conf.c_str(), 1) != 0) throw std::runtime_error("setenv");

    const auto user_pin = pkcs11::SecretBytes::from_file(o.pin_file.c_str());
    const pkcs11::SecretBytes so_pin(test::random_bytes(16));
    pkcs11::Module module(pkcs11::Module::Options{test::TestToken::module_path(), {}});
    const auto free = module.free_slot();
    if (!free) throw std::runtime_error("SoftHSMv2 offers no free slot");
    module.init_token(*free, so_pin, o.label);
    pkcs11::TokenSelector selector;
    selector.label = o.label;
    const auto slot = module.find_token(selector);
    {
      pkcs11::Session so(module, slot, so_pin, pkcs11::Session::SecurityOfficer{});
      so.init_user_pin(user_pin);
    }
    pkcs11::Session session(module, slot, user_pin);
    must(appliance::create_storage_key(session, {}), "creating the storage key");
    for (const auto& [label, file] : o.keks) {
      must(appliance::import_key(session, appliance::KeyRole::kek, label, read_hex_key(file), {}),
           "importing KEK " + label);
    }
    std::cout << conf.string() << '\n';
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "lorakeep-test-token: " << e.what() << '\n';
    return 2;
  }
}
