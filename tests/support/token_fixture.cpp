#include "token_fixture.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
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

// NSS softoken keeps one database per initialization of the (never unloaded) library.
int g_live_nss_tokens = 0;

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs argv (no shell) with stdin from /dev/null and stdout+stderr into `log`; its status.
int run(const std::vector<std::string>& argv, const std::filesystem::path& log) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ::posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::system_error(rc, std::generic_category(), "cannot run " + argv[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "waitpid");
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TokenKind token_kind() {
  const char* value = std::getenv("LORAKEEP_TEST_TOKEN");
  if (value == nullptr || *value == '\0') return TokenKind::softhsm;
  if (const auto kind = parse_kind(value)) return *kind;
  throw std::invalid_argument(std::string("LORAKEEP_TEST_TOKEN must be softhsm or nss, not '") +
                              value + "'");
}

std::string_view kind_name(TokenKind kind) noexcept {
  return kind == TokenKind::nss ? "nss" : "softhsm";
}

std::optional<TokenKind> parse_kind(std::string_view name) noexcept {
  if (name == "softhsm") return TokenKind::softhsm;
  if (name == "nss") return TokenKind::nss;
  return std::nullopt;
}

std::string module_path(TokenKind kind) {
  return kind == TokenKind::nss ? LORAKEEP_TEST_NSS_MODULE : LORAKEEP_TEST_SOFTHSM_MODULE;
}

std::filesystem::path write_softhsm_conf(const std::filesystem::path& dir) {
  const auto tokens = std::filesystem::absolute(dir / "tokens");
  std::filesystem::create_directories(tokens);
  auto conf = std::filesystem::absolute(dir / "softhsm2.conf");
  std::ofstream out(conf);
  out << "directories.tokendir = " << tokens.string() << "\n"
      << "objectstore.backend = file\n"
      << "log.level = ERROR\n"
      << "slots.removable = false\n";
  if (!out) throw std::runtime_error("cannot write " + conf.string());
  return conf;
}

void create_nss_database(const std::filesystem::path& dir, const pkcs11::SecretBytes& password) {
  // NSS encrypts every secret attribute it stores with a key from PBKDF2 over the password,
  // 10,000 iterations by default, and repeats the PBKDF2 whenever another process reads the
  // key (~1.5 ms per use of a KEK in lorakeep-cs). A throwaway test database needs none of
  // that cost; set before certutil runs and before this process stores any key. A value the
  // caller set is kept.
  for (const char* name : {"NSS_MIN_MP_PBE_ITERATION_COUNT", "NSS_MAX_MP_PBE_ITERATION_COUNT"}) {
    if (::setenv(name, "1", 0) != 0) {
      throw std::system_error(errno, std::generic_category(), std::string("setenv ") + name);
    }
  }
  std::filesystem::create_directories(dir);
  const auto absolute = std::filesystem::absolute(dir);
  const auto file = absolute / ".password";
  const auto log = absolute / ".certutil.log";
  {
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + file.string());
    const auto bytes = password.reveal();
    const bool written =
        ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()) &&
        ::write(fd, "\n", 1) == 1;
    ::close(fd);
    if (!written) throw std::runtime_error("cannot write " + file.string());
  }
  int status = 0;
  try {
    status = run(
        {LORAKEEP_TEST_CERTUTIL, "-N", "-d", "sql:" + absolute.string(), "-f", file.string()}, log);
  } catch (...) {
    std::filesystem::remove(file);
    throw;
  }
  std::filesystem::remove(file);
  const std::string output = read_text(log);
  std::filesystem::remove(log);
  if (status != 0) {
    throw std::runtime_error("certutil -N failed with status " + std::to_string(status) + ": " +
                             output);
  }
}

std::string nss_init_args(const std::filesystem::path& dir, const std::string& label) {
  if (label.size() > 32 || label.find_first_of("'\"") != std::string::npos) {
    throw std::invalid_argument("an NSS token label has at most 32 bytes and no quotes");
  }
  std::string args = "configdir='sql:" + std::filesystem::absolute(dir).string() +
                     "' certPrefix='' keyPrefix='' secmod='secmod.db' flags=";
  if (!label.empty()) args += " dbTokenDescription='" + label + "'";
  return args;
}

TestToken::TestToken(const std::string& label) : TestToken(token_kind(), label) {}

TestToken::TestToken(TokenKind kind, const std::string& label)
    : kind_(kind), label_(label), user_pin_(random_pin()) {
  if (kind_ == TokenKind::nss) {
    make_nss();
  } else {
    make_softhsm();
  }
}

void TestToken::make_softhsm() {
  so_pin_ = random_pin();
  const auto conf = write_softhsm_conf(dir_.path());
  // SoftHSMv2 reads the variable in C_Initialize, so it must be set before the module loads.
  if (::setenv("SOFTHSM2_CONF", conf.c_str(), 1) != 0) {
    throw std::system_error(errno, std::generic_category(), "setenv SOFTHSM2_CONF");
  }
  module_ = std::make_unique<pkcs11::Module>(module_options());
  const auto free = module_->free_slot();
  if (!free) throw std::runtime_error("SoftHSMv2 offers no free slot");
  module_->init_token(*free, so_pin_, label_);
  // SoftHSMv2 renumbers slots after C_InitToken.
  slot_ = module_->find_token(selector());
  pkcs11::Session so(*module_, slot_, so_pin_, pkcs11::Session::SecurityOfficer{});
  so.init_user_pin(user_pin_);
}

void TestToken::make_nss() {
  if (g_live_nss_tokens > 0) {
    throw std::logic_error(
        "one NSS TestToken at a time: NSS softoken has one database per "
        "initialization");
  }
  const auto db = dir_.path() / "nssdb";
  create_nss_database(db, user_pin_);
  init_args_ = nss_init_args(db, label_);
  module_ = std::make_unique<pkcs11::Module>(module_options());
  slot_ = module_->find_token(selector());
  ++g_live_nss_tokens;
}

TestToken::~TestToken() {
  // The module first: SoftHSMv2 may still write to the token directory until C_Finalize.
  module_.reset();
  if (kind_ == TokenKind::nss) --g_live_nss_tokens;
}

pkcs11::TokenSelector TestToken::selector() const {
  pkcs11::TokenSelector s;
  s.label = label_;
  return s;
}

pkcs11::Module::Options TestToken::module_options() const {
  return {test::module_path(kind_), init_args_};
}

std::vector<std::pair<std::string, std::string>> TestToken::environment() const {
  if (kind_ == TokenKind::nss) return {};
  return {{"SOFTHSM2_CONF", std::filesystem::absolute(dir_.path() / "softhsm2.conf").string()}};
}

std::string TestToken::module_path() {
  return test::module_path(token_kind());
}

pkcs11::Session TestToken::user_session() {
  return {*module_, slot_, user_pin_};
}

pkcs11::Session TestToken::so_session() {
  if (!has_security_officer()) {
    throw std::logic_error(
        "NSS softoken has no security officer (C_Login as CKU_SO: "
        "CKR_USER_TYPE_INVALID)");
  }
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
