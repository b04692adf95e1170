#include "tools/ctl/secret_input.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <iostream>
#include <string>
#include <system_error>
#include <utility>

#include "tools/ctl/app.hpp"

namespace lorakeep::ctl {
namespace fs = std::filesystem;

namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

class Fd {
 public:
  explicit Fd(int fd) noexcept : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&&) = delete;
  Fd& operator=(Fd&&) = delete;
  [[nodiscard]] int get() const noexcept { return fd_; }

 private:
  int fd_;
};

std::string errno_text(int err) {
  return std::generic_category().message(err);
}

}  // namespace

SecretText SecretText::read(const fs::path& file, std::size_t max_bytes) {
  const Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) {
    throw CtlError(Exit::usage, "cannot read " + file.string() + ": " + errno_text(errno));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    throw CtlError(Exit::usage, "cannot read " + file.string() + ": " + errno_text(errno));
  }
  if (!S_ISREG(st.st_mode)) throw CtlError(Exit::usage, file.string() + " is not a regular file");
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size > max_bytes) {
    throw CtlError(Exit::usage,
                   file.string() + " is larger than " + std::to_string(max_bytes) + " bytes");
  }
  SecretText out;
  // One more byte than the size, to notice a file that grew meanwhile without reallocating.
  out.bytes_.resize(size + 1);
  std::size_t got = 0;
  while (got < out.bytes_.size()) {
    const ssize_t n = ::read(fd.get(), out.bytes_.data() + got, out.bytes_.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw CtlError(Exit::usage, "cannot read " + file.string() + ": " + errno_text(errno));
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > size) throw CtlError(Exit::usage, file.string() + " changed while it was read");
  pkcs11::secure_zero(out.bytes_.data() + got, out.bytes_.size() - got);
  out.bytes_.resize(got);  // shrinking never reallocates
  return out;
}

SecretText::~SecretText() {
  pkcs11::secure_zero(bytes_.data(), bytes_.capacity());
}

SecretText::SecretText(SecretText&& other) noexcept : bytes_(std::move(other.bytes_)) {
  other.bytes_.clear();
}

SecretText& SecretText::operator=(SecretText&& other) noexcept {
  if (this != &other) {
    pkcs11::secure_zero(bytes_.data(), bytes_.capacity());
    bytes_ = std::move(other.bytes_);
    other.bytes_.clear();
  }
  return *this;
}

Result<pkcs11::SecretBytes> secret_from_hex(std::string_view text, std::size_t size,
                                            std::string_view what) {
  if (text.size() >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
  }
  if (text.size() != 2 * size) {
    return fail(Status::malformed, std::string(what) + ": expected " + std::to_string(2 * size) +
                                       " hex digits, got " + std::to_string(text.size()));
  }
  std::vector<std::uint8_t> bytes(size);
  bool bad = false;
  for (std::size_t i = 0; i < size; ++i) {
    const int hi = hex_value(text[2 * i]);
    const int lo = hex_value(text[2 * i + 1]);
    // No early exit: the time taken does not depend on where a bad digit is.
    bad = bad || hi < 0 || lo < 0;
    bytes[i] = static_cast<std::uint8_t>(((hi & 0x0F) << 4) | (lo & 0x0F));
  }
  pkcs11::SecretBytes out(bytes);
  pkcs11::secure_zero(bytes.data(), bytes.size());
  if (bad) return fail(Status::malformed, std::string(what) + ": not hexadecimal");
  return out;
}

pkcs11::SecretBytes read_key_file(const fs::path& file, std::string_view what,
                                  std::initializer_list<std::size_t> sizes) {
  struct stat st {};
  if (::stat(file.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    std::array<char, 8> mode{};
    std::snprintf(mode.data(), mode.size(), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    std::cerr << "lorakeepctl: warning: " << file.string()
              << " is readable by group or others (mode " << mode.data()
              << "); keep key files at 0600\n";
  }
  const SecretText text = SecretText::read(file, 4096);
  std::string_view v = text.view();
  std::string sizes_text;
  for (const std::size_t n : sizes) {
    if (!sizes_text.empty()) sizes_text += " or ";
    sizes_text += std::to_string(n);
  }
  // Hex first: a raw key whose bytes all happen to be hex digits is vanishingly unlikely.
  std::string_view trimmed = v;
  while (!trimmed.empty() && is_blank(trimmed.front()))
    trimmed.remove_prefix(1);
  while (!trimmed.empty() && is_blank(trimmed.back()))
    trimmed.remove_suffix(1);
  bool all_hex = !trimmed.empty();
  for (const char c : trimmed)
    all_hex = all_hex && hex_value(c) >= 0;
  for (const std::size_t n : sizes) {
    if (all_hex && trimmed.size() == 2 * n) {
      return must(secret_from_hex(trimmed, n, what), file.string());
    }
  }
  for (const std::size_t n : sizes) {
    if (v.size() == n) {
      return pkcs11::SecretBytes(std::span(reinterpret_cast<const std::uint8_t*>(v.data()), n));
    }
  }
  throw CtlError(Exit::usage, file.string() + ": " + std::string(what) + ": expected " +
                                  sizes_text + " bytes, as hex or raw (the file holds " +
                                  std::to_string(v.size()) + " bytes)");
}

}  // namespace lorakeep::ctl
