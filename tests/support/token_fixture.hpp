// A throwaway token per test, on either of the two PKCS#11 implementations the tests run
// on (LORAKEEP_TEST_TOKEN): SoftHSMv2 — its own directory, softhsm2.conf and token store,
// initialized through PKCS#11 itself (C_InitToken, C_InitPIN) — or NSS softoken — its own
// database made by certutil with a random password given in a file. No PIN ever appears on
// a command line; the directory is removed afterwards.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
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

/// The PKCS#11 implementations the tests run on.
enum class TokenKind { softhsm, nss };

/// The token of this test run: LORAKEEP_TEST_TOKEN=softhsm (the default when unset) or nss.
/// Any other value throws std::invalid_argument, so a misspelt run cannot pass unnoticed.
TokenKind token_kind();
std::string_view kind_name(TokenKind kind) noexcept;
/// Parses "softhsm" or "nss"; nullopt otherwise.
std::optional<TokenKind> parse_kind(std::string_view name) noexcept;

/// The module library of a kind (compiled in from meson: softhsm_module, nss_module).
std::string module_path(TokenKind kind);

/// SoftHSMv2: writes `dir`/softhsm2.conf with its token store in `dir`/tokens; returns the
/// file's absolute path (for SOFTHSM2_CONF).
std::filesystem::path write_softhsm_conf(const std::filesystem::path& dir);
/// NSS: creates an empty SQL database in `dir` (created if missing) with `password`, by
/// `certutil -N -d sql:DIR -f FILE` — the password in a file of `dir` that is removed
/// afterwards, never on the command line. Throws std::runtime_error with certutil's output.
/// Sets NSS_MIN_MP_PBE_ITERATION_COUNT and NSS_MAX_MP_PBE_ITERATION_COUNT to 1 in this
/// process's environment (unless set): keys stored from here on are encrypted with a
/// one-iteration PBKDF2, cheap to read back — right for a throwaway test token only.
void create_nss_database(const std::filesystem::path& dir, const pkcs11::SecretBytes& password);
/// NSS: the C_Initialize reserved string for the database in `dir`. A non-empty `label`
/// becomes the key token's label (dbTokenDescription); empty keeps NSS's own, "NSS
/// Certificate DB". Throws std::invalid_argument for a label NSS cannot take (over 32 bytes,
/// or holding a quote).
std::string nss_init_args(const std::filesystem::path& dir, const std::string& label);

/// One TestToken at a time per process. SoftHSMv2 reads SOFTHSM2_CONF once, in C_Initialize,
/// and a second Module on the loaded library shares that initialization (and its token
/// directory). NSS softoken is one database per initialization: a second NSS TestToken
/// while one lives throws std::logic_error.
class TestToken {
 public:
  /// A token of token_kind(): creates the directory, loads the module and makes a token
  /// labelled `label` with a random user PIN (and, on SoftHSMv2, a random SO PIN); opens
  /// no session.
  explicit TestToken(const std::string& label = "lorakeep-test");
  TestToken(TokenKind kind, const std::string& label);
  ~TestToken();
  TestToken(const TestToken&) = delete;
  TestToken& operator=(const TestToken&) = delete;

  [[nodiscard]] TokenKind kind() const noexcept { return kind_; }
  [[nodiscard]] pkcs11::Module& module() noexcept { return *module_; }
  [[nodiscard]] CK_SLOT_ID slot() const noexcept { return slot_; }
  [[nodiscard]] pkcs11::TokenSelector selector() const;
  [[nodiscard]] const std::string& label() const noexcept { return label_; }
  [[nodiscard]] const pkcs11::SecretBytes& user_pin() const noexcept { return user_pin_; }
  /// Empty on NSS, which has no security officer once its database has a password.
  [[nodiscard]] const pkcs11::SecretBytes& so_pin() const noexcept { return so_pin_; }
  [[nodiscard]] bool has_security_officer() const noexcept { return kind_ == TokenKind::softhsm; }
  [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_.path(); }
  /// How another process loads this token: the module and the C_Initialize reserved string
  /// (NSS: configdir=…), plus environment() set before loading (SoftHSMv2: SOFTHSM2_CONF).
  [[nodiscard]] pkcs11::Module::Options module_options() const;
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> environment() const;
  /// The module library of token_kind().
  [[nodiscard]] static std::string module_path();

  /// A new user session, logged in.
  [[nodiscard]] pkcs11::Session user_session();
  /// A new security-officer session (SoftHSMv2 only: throws std::logic_error on NSS).
  [[nodiscard]] pkcs11::Session so_session();

 private:
  void make_softhsm();
  void make_nss();

  TempDir dir_;
  TokenKind kind_;
  std::string label_;
  pkcs11::SecretBytes so_pin_;
  pkcs11::SecretBytes user_pin_;
  std::optional<std::string> init_args_;
  std::unique_ptr<pkcs11::Module> module_;
  CK_SLOT_ID slot_ = 0;
};

/// Random bytes from the OS (for test keys and PINs).
std::vector<std::uint8_t> random_bytes(std::size_t n);
/// Hex (any case) to bytes; throws on bad hex. For test data only.
std::vector<std::uint8_t> from_hex(std::string_view hex);
std::string to_hex(std::span<const std::uint8_t> bytes);

}  // namespace lorakeep::test
