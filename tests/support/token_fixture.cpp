#include "token_fixture.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <system_error>

#include "pkcs11/error.hpp"

namespace lorakeep::test {

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
  pattern += "/lorakeep-test-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::filesystem::path data_path(const std::string& name) {
  return std::filesystem::path(LORAKEEP_TEST_DATA_DIR) / name;
}

namespace {

// A printable random PIN, so a child process can read it from a file like an operator's.
pkcs11::SecretBytes random_pin() {
  auto raw = random_bytes(16);
  std::string text = to_hex(raw);
  auto pin = pkcs11::SecretBytes::from_string(text);
  pkcs11::secure_zero(raw.data(), raw.size());
  pkcs11::secure_zero(text.data(), text.size());
  return pin;
}

}  // namespace

TestToken::TestToken(const std::string& label)
    : label_(label), so_pin_(random_pin()), user_pin_(random_pin()) {
  std::filesystem::create_directory(dir_.path() / "tokens");
  {
    std::ofstream conf(config_path());
    conf << "directories.tokendir = " << (dir_.path() / "tokens").string() << "\n"
         << "objectstore.backend = file\n"
         << "log.level = ERROR\n"
         << "slots.removable = false\n";
    if (!conf) throw std::runtime_error("cannot write " + config_path().string());
  }
  // SoftHSMv2 reads the variable in C_Initialize, so it must be set before the module loads.
  if (::setenv("SOFTHSM2_CONF", config_path().c_str(), 1) != 0) {
    throw std::system_error(errno, std::generic_category(), "setenv SOFTHSM2_CONF");
  }
  module_ = std::make_unique<pkcs11::Module>(pkcs11::Module::Options{module_path(), {}});
  const auto free = module_->free_slot();
  if (!free) throw std::runtime_error("SoftHSMv2 offers no free slot");
  module_->init_token(*free, so_pin_, label_);
  // SoftHSMv2 renumbers slots after C_InitToken.
  slot_ = module_->find_token(selector());
  pkcs11::Session so(*module_, slot_, so_pin_, pkcs11::Session::SecurityOfficer{});
  so.init_user_pin(user_pin_);
}

TestToken::~TestToken() {
  // The module first: SoftHSMv2 may still write to the token directory until C_Finalize.
  module_.reset();
}

pkcs11::TokenSelector TestToken::selector() const {
  pkcs11::TokenSelector s;
  s.label = label_;
  return s;
}

std::filesystem::path TestToken::config_path() const {
  return dir_.path() / "softhsm2.conf";
}

std::string TestToken::module_path() {
  return LORAKEEP_TEST_SOFTHSM_MODULE;
}

pkcs11::Session TestToken::user_session() {
  return {*module_, slot_, user_pin_};
}

pkcs11::Session TestToken::so_session() {
  return {*module_, slot_, so_pin_, pkcs11::Session::SecurityOfficer{}};
}

std::vector<std::uint8_t> random_bytes(std::size_t n) {
  std::vector<std::uint8_t> out(n);
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::getrandom(out.data() + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw std::system_error(errno, std::generic_category(), "getrandom");
    got += static_cast<std::size_t>(r);
  }
  return out;
}

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  throw std::invalid_argument(std::string("not a hex digit: '") + c + "'");
}

}  // namespace

std::vector<std::uint8_t> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) throw std::invalid_argument("odd number of hex digits");
  std::vector<std::uint8_t> out(hex.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<std::uint8_t>(hex_digit(hex[2 * i]) * 16 + hex_digit(hex[2 * i + 1]));
  }
  return out;
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
  static constexpr std::string_view digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const std::uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 0x0f];
  }
  return out;
}

}  // namespace lorakeep::test
