#include "pkcs11/secret.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace lorakeep::pkcs11 {

void secure_zero(void* p, std::size_t n) noexcept {
  if (p != nullptr && n != 0) explicit_bzero(p, n);
}

bool constant_time_equal(std::span<const std::uint8_t> a,
                         std::span<const std::uint8_t> b) noexcept {
  if (a.size() != b.size()) return false;
  // volatile keeps the compiler from turning the loop into an early-exit memcmp.
  volatile std::uint8_t diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff = static_cast<std::uint8_t>(diff | (a[i] ^ b[i]));
  return diff == 0;
}

SecretBytes::SecretBytes(std::span<const std::uint8_t> bytes)
    : bytes_(bytes.begin(), bytes.end()) {}

SecretBytes SecretBytes::from_string(std::string_view text) {
  return SecretBytes(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

namespace {

// Clears a stack buffer on every way out of from_file.
template <std::size_t N>
struct ZeroOnExit {
  std::array<std::uint8_t, N>& buffer;
  ~ZeroOnExit() { secure_zero(buffer.data(), buffer.size()); }
};

[[noreturn]] void fail(const char* path, const char* why) {
  throw std::runtime_error(std::string("cannot read secret from ") + path + ": " + why);
}

}  // namespace

SecretBytes SecretBytes::from_file(const char* path) {
  // A PIN or key file is small; a fixed buffer avoids vector growth leaving copies of the
  // secret in freed memory.
  constexpr std::size_t kMax = 4096;
  std::array<std::uint8_t, kMax + 1> buffer{};
  const ZeroOnExit<kMax + 1> wipe{buffer};

  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::strerror(errno));
  std::size_t used = 0;
  while (used < buffer.size()) {
    const ssize_t n = ::read(fd, buffer.data() + used, buffer.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int saved = errno;
      ::close(fd);
      fail(path, std::strerror(saved));
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (used > kMax) fail(path, "larger than 4096 bytes");

  if (used > 0 && buffer[used - 1] == '\n') {
    --used;
    if (used > 0 && buffer[used - 1] == '\r') --used;
  }
  if (used == 0) fail(path, "empty");
  return SecretBytes(std::span<const std::uint8_t>(buffer.data(), used));
}

SecretBytes::~SecretBytes() {
  clear();
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept : bytes_(std::move(other.bytes_)) {
  other.bytes_.clear();
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    clear();
    bytes_ = std::move(other.bytes_);
    other.bytes_.clear();
  }
  return *this;
}

void SecretBytes::clear() noexcept {
  secure_zero(bytes_.data(), bytes_.size());
  bytes_.clear();
}

}  // namespace lorakeep::pkcs11
