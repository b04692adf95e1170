// A throwaway SoftHSMv2 token per test: its own directory, softhsm2.conf, token store and
// PINs, removed afterwards. The token is initialized through PKCS#11 itself (C_InitToken,
// C_InitPIN), so no PIN ever appears on a command line.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pkcs11/module.hpp"
#include "pkcs11/secret.hpp"
#include "pkcs11/session.hpp"

namespace lorakeep::test {

/// A fresh temporary directory, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

/// Test data shipped in tests/data (the directory is compiled in).
std::filesystem::path data_path(const std::string& name);

/// One TestToken at a time per process: SoftHSMv2 reads SOFTHSM2_CONF once, in
/// C_Initialize, and a second Module on the loaded library shares that initialization.
class TestToken {
 public:
  /// Creates the directory and configuration, points SOFTHSM2_CONF at it, loads the module
  /// (LORAKEEP_TEST_SOFTHSM_MODULE, compiled in from meson), initializes a token labelled
  /// `label` with random SO and user PINs, and opens nothing else.
  explicit TestToken(const std::string& label = "lorakeep-test");
  ~TestToken();
  TestToken(const TestToken&) = delete;
  TestToken& operator=(const TestToken&) = delete;

  [[nodiscard]] pkcs11::Module& module() noexcept { return *module_; }
  [[nodiscard]] CK_SLOT_ID slot() const noexcept { return slot_; }
  [[nodiscard]] pkcs11::TokenSelector selector() const;
  [[nodiscard]] const pkcs11::SecretBytes& user_pin() const noexcept { return user_pin_; }
  [[nodiscard]] const pkcs11::SecretBytes& so_pin() const noexcept { return so_pin_; }
  [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_.path(); }
  /// The softhsm2.conf path (for child processes: SOFTHSM2_CONF).
  [[nodiscard]] std::filesystem::path config_path() const;
  [[nodiscard]] static std::string module_path();

  /// A new user session, logged in.
  [[nodiscard]] pkcs11::Session user_session();
  /// A new security-officer session.
  [[nodiscard]] pkcs11::Session so_session();

 private:
  TempDir dir_;
  std::string label_;
  pkcs11::SecretBytes so_pin_;
  pkcs11::SecretBytes user_pin_;
  std::unique_ptr<pkcs11::Module> module_;
  CK_SLOT_ID slot_ = 0;
};

/// Random bytes from the OS (for test keys and PINs).
std::vector<std::uint8_t> random_bytes(std::size_t n);
/// Hex (any case) to bytes; throws on bad hex. For test data only.
std::vector<std::uint8_t> from_hex(std::string_view hex);
std::string to_hex(std::span<const std::uint8_t> bytes);

}  // namespace lorakeep::test
