// Secret bytes on the host (the cluster secret, the TLS PSK derived from it): move-only,
// zeroized with OPENSSL_cleanse on destruction. host/ never links pkcs11/ (DESIGN.md §1), so
// this is the host's own small counterpart of pkcs11::SecretBytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "schemas/result.hpp"

namespace lorakeep::host {

/// A key or secret. No operator<<, no hex, no implicit conversion: the bytes are reached
/// only through the explicit, greppable `reveal()`.
class SecretBuffer {
 public:
  SecretBuffer() = default;
  explicit SecretBuffer(std::span<const std::uint8_t> bytes);
  /// Reads a secret file (at most 4096 bytes), dropping exactly one trailing newline.
  /// Fails (malformed) when the file cannot be read, is too large or is empty; the message
  /// names the file, never its content.
  static Result<SecretBuffer> from_file(const std::string& path);
  ~SecretBuffer();

  SecretBuffer(SecretBuffer&& other) noexcept;
  SecretBuffer& operator=(SecretBuffer&& other) noexcept;
  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;

  [[nodiscard]] std::span<const std::uint8_t> reveal() const noexcept { return {data_, size_}; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  /// Zeroizes and frees the bytes.
  void clear() noexcept;

 private:
  // A raw allocation rather than std::vector: a vector that grows leaves unzeroized copies
  // behind in freed memory.
  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace lorakeep::host
