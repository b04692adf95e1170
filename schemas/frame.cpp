#include "schemas/frame.hpp"

#include <string>

namespace lorakeep::frame {

Result<std::uint32_t> parse_header(std::span<const std::uint8_t, header_size> header) {
  const std::uint32_t length =
      static_cast<std::uint32_t>(header[0]) << 24 | static_cast<std::uint32_t>(header[1]) << 16 |
      static_cast<std::uint32_t>(header[2]) << 8 | static_cast<std::uint32_t>(header[3]);
  if (length == 0) return fail(Status::malformed, "a frame announces an empty payload");
  if (length > max_payload) {
    return fail(Status::malformed, "a frame announces " + std::to_string(length) +
                                       " bytes, more than the limit of " +
                                       std::to_string(max_payload));
  }
  return length;
}

Result<std::vector<std::uint8_t>> encode(std::span<const std::uint8_t> payload) {
  if (payload.empty() || payload.size() > max_payload) {
    return fail(Status::malformed, "a frame payload must be 1 to " + std::to_string(max_payload) +
                                       " bytes, got " + std::to_string(payload.size()));
  }
  const auto n = static_cast<std::uint32_t>(payload.size());
  std::vector<std::uint8_t> out;
  out.reserve(header_size + payload.size());
  out.push_back(static_cast<std::uint8_t>(n >> 24));
  out.push_back(static_cast<std::uint8_t>(n >> 16));
  out.push_back(static_cast<std::uint8_t>(n >> 8));
  out.push_back(static_cast<std::uint8_t>(n));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

Result<Ok> Decoder::feed(std::span<const std::uint8_t> bytes) {
  if (failed_) return fail(Status::malformed, "the stream already failed");
  // Compact before growing, so a long-lived connection does not accumulate.
  if (start_ > 0 && start_ == buffer_.size()) {
    buffer_.clear();
    start_ = 0;
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
  return scan();
}

Result<Ok> Decoder::scan() {
  if (pending() < header_size) return Ok{};
  const std::span<const std::uint8_t, header_size> header(buffer_.data() + start_, header_size);
  auto length = parse_header(header);
  if (!length) {
    failed_ = true;
    return length.failure();
  }
  return Ok{};
}

bool Decoder::has_payload() const noexcept {
  if (failed_ || pending() < header_size) return false;
  const std::span<const std::uint8_t, header_size> header(buffer_.data() + start_, header_size);
  auto length = parse_header(header);
  return length.ok() && pending() >= header_size + *length;
}

std::vector<std::uint8_t> Decoder::take_payload() {
  if (!has_payload()) return {};
  const std::span<const std::uint8_t, header_size> header(buffer_.data() + start_, header_size);
  const std::uint32_t length = *parse_header(header);
  const auto begin = buffer_.begin() + static_cast<std::ptrdiff_t>(start_ + header_size);
  std::vector<std::uint8_t> payload(begin, begin + length);
  start_ += header_size + length;
  if (start_ == buffer_.size()) {
    buffer_.clear();
    start_ = 0;
  } else if (auto next = scan(); !next) {
    // The following frame's header is already known to be bad; has_payload() is false now.
  }
  return payload;
}

}  // namespace lorakeep::frame
