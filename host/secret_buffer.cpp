#include "host/secret_buffer.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

namespace lorakeep::host {

SecretBuffer::SecretBuffer(std::span<const std::uint8_t> bytes) {
  if (bytes.empty()) return;
  data_ = new std::uint8_t[bytes.size()];
  size_ = bytes.size();
  std::copy(bytes.begin(), bytes.end(), data_);
}

SecretBuffer::~SecretBuffer() {
  clear();
}

SecretBuffer::SecretBuffer(SecretBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecretBuffer& SecretBuffer::operator=(SecretBuffer&& other) noexcept {
  if (this != &other) {
    clear();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void SecretBuffer::clear() noexcept {
  if (data_ != nullptr) {
    OPENSSL_cleanse(data_, size_);
    delete[] data_;
  }
  data_ = nullptr;
  size_ = 0;
}

namespace {

constexpr std::size_t max_secret_file = 4096;

// Clears the read buffer on every way out of from_file.
struct Wipe {
  std::array<std::uint8_t, max_secret_file + 1>& buffer;
  explicit Wipe(std::array<std::uint8_t, max_secret_file + 1>& b) : buffer(b) {}
  Wipe(const Wipe&) = delete;
  Wipe& operator=(const Wipe&) = delete;
  ~Wipe() { OPENSSL_cleanse(buffer.data(), buffer.size()); }
};

Failure unreadable(const std::string& path, const std::string& why) {
  return fail(Status::malformed, "cannot read the secret file " + path + ": " + why);
}

}  // namespace

Result<SecretBuffer> SecretBuffer::from_file(const std::string& path) {
  std::array<std::uint8_t, max_secret_file + 1> buffer{};
  const Wipe wipe(buffer);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return unreadable(path, std::strerror(errno));
  std::size_t used = 0;
  while (used < buffer.size()) {
    const ssize_t n = ::read(fd, buffer.data() + used, buffer.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int saved = errno;
      ::close(fd);
      return unreadable(path, std::strerror(saved));
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (used > max_secret_file) return unreadable(path, "larger than 4096 bytes");
  if (used > 0 && buffer[used - 1] == '\n') --used;
  if (used == 0) return unreadable(path, "it is empty");
  return SecretBuffer(std::span<const std::uint8_t>(buffer.data(), used));
}

}  // namespace lorakeep::host
