// Key material read from files (KEKs, part keys, device keys, bulk import files): into
// memory that is wiped when dropped, decoded without ever quoting the text in a message.
#pragma once

#include <cstddef>
#include <filesystem>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "pkcs11/secret.hpp"
#include "schemas/result.hpp"

namespace lorakeep::ctl {

/// A whole file's bytes, wiped on destruction. Move-only.
class SecretText {
 public:
  /// Reads a regular file of at most `max_bytes` in one buffer that never grows (so no
  /// stale copies are left in freed memory). Throws CtlError (usage) naming the file.
  static SecretText read(const std::filesystem::path& file, std::size_t max_bytes);

  SecretText() = default;
  ~SecretText();
  SecretText(SecretText&& other) noexcept;
  SecretText& operator=(SecretText&& other) noexcept;
  SecretText(const SecretText&) = delete;
  SecretText& operator=(const SecretText&) = delete;

  [[nodiscard]] std::string_view view() const noexcept { return {bytes_.data(), bytes_.size()}; }

 private:
  std::vector<char> bytes_;
};

/// Exactly `size` bytes of hex (either case, an optional "0x") into SecretBytes. Failures
/// are Status::malformed saying what is wrong ("app_key: expected 32 hex digits, got 31";
/// "app_key: not hexadecimal") and never quote the text.
Result<pkcs11::SecretBytes> secret_from_hex(std::string_view text, std::size_t size,
                                            std::string_view what);

/// A key file: 2n hex digits (surrounding blanks and one newline allowed) or n raw bytes,
/// n one of `sizes`. Warns on stderr when the file is readable by group or others. Throws
/// CtlError (usage) naming the file and what is wrong, never its content.
pkcs11::SecretBytes read_key_file(const std::filesystem::path& file, std::string_view what,
                                  std::initializer_list<std::size_t> sizes);

}  // namespace lorakeep::ctl
