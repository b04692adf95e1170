// Frames of the host <-> appliance protocol: a 4-byte big-endian length, then that many
// bytes of a protobuf message (lorakeep.crypto.v1.Request or Response). Every length is
// checked before anything is allocated or read.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "schemas/result.hpp"

namespace lorakeep::frame {

inline constexpr std::size_t header_size = 4;
/// The largest payload either side accepts. A join request is a few hundred bytes; the
/// largest answer (stats) a few KiB.
inline constexpr std::uint32_t max_payload = 64 * 1024;

/// The payload length a header announces; malformed when it is 0 or above `max_payload`.
Result<std::uint32_t> parse_header(std::span<const std::uint8_t, header_size> header);

/// Header + payload. The payload must not exceed max_payload (checked: malformed).
Result<std::vector<std::uint8_t>> encode(std::span<const std::uint8_t> payload);

/// Splits a byte stream into payloads, for callers that read in arbitrary chunks (and the
/// fuzzer). After a malformed header the decoder stays failed: the connection must close.
class Decoder {
 public:
  /// Appends bytes. Returns malformed (and fails for good) on an invalid header.
  Result<Ok> feed(std::span<const std::uint8_t> bytes);
  /// The next complete payload, if one is buffered.
  [[nodiscard]] bool has_payload() const noexcept;
  std::vector<std::uint8_t> take_payload();
  [[nodiscard]] bool failed() const noexcept { return failed_; }
  /// Bytes buffered that do not form a whole frame yet.
  [[nodiscard]] std::size_t pending() const noexcept { return buffer_.size() - start_; }

 private:
  Result<Ok> scan();
  std::vector<std::uint8_t> buffer_;
  std::size_t start_ = 0;
  bool failed_ = false;
};

}  // namespace lorakeep::frame
