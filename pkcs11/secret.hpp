// Secret bytes (keys, PINs): move-only, zeroized on destruction, never printed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace lorakeep::pkcs11 {

/// Overwrites memory in a way the optimizer cannot remove.
void secure_zero(void* p, std::size_t n) noexcept;

/// Constant-time equality of two byte ranges (lengths are not secret).
[[nodiscard]] bool constant_time_equal(std::span<const std::uint8_t> a,
                                       std::span<const std::uint8_t> b) noexcept;

/// A key or PIN. There is no operator<<, no implicit conversion and no hex: reaching the
/// bytes needs the explicit, greppable `reveal()`.
class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(std::span<const std::uint8_t> bytes);
  /// Takes the bytes of `text` (a PIN read from a file); the caller zeroizes its copy.
  static SecretBytes from_string(std::string_view text);
  /// Reads a secret from a file, dropping one trailing newline; throws std::runtime_error
  /// naming the file (never its content) when it cannot be read or is empty.
  static SecretBytes from_file(const char* path);
  ~SecretBytes();

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  [[nodiscard]] SecretBytes clone() const { return SecretBytes(reveal()); }
  [[nodiscard]] std::span<const std::uint8_t> reveal() const noexcept { return bytes_; }
  [[nodiscard]] std::size_t size() const noexcept { return bytes_.size(); }
  [[nodiscard]] bool empty() const noexcept { return bytes_.empty(); }
  void clear() noexcept;

  friend bool operator==(const SecretBytes& a, const SecretBytes& b) noexcept {
    return constant_time_equal(a.bytes_, b.bytes_);
  }

 private:
  std::vector<std::uint8_t> bytes_;
};

}  // namespace lorakeep::pkcs11
