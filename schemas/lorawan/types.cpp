#include "schemas/lorawan/types.hpp"

#include <algorithm>
#include <array>
#include <string>
#include <utility>

namespace lorakeep::lorawan {
namespace {

constexpr std::string_view upper_digits = "0123456789ABCDEF";

// The value of one hex digit, or -1.
int nibble(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// One character of untrusted input, safe to put in a message and a log line.
std::string describe_char(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x20 && byte < 0x7F) return std::string{'\'', c, '\''};
  return std::string{"byte 0x", 7} + upper_digits[byte >> 4U] + upper_digits[byte & 0x0FU];
}

// At most `limit` characters of untrusted text, printable ASCII kept and the rest as \xNN.
std::string quote_bounded(std::string_view text, std::size_t limit) {
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size() && i < limit; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte >= 0x20 && byte < 0x7F && byte != '"' && byte != '\\') {
      out += text[i];
    } else {
      out += "\\x";
      out += upper_digits[byte >> 4U];
      out += upper_digits[byte & 0x0FU];
    }
  }
  out += '"';
  if (text.size() > limit) out += "...";
  return out;
}

std::string bytes_of_hex(std::size_t size) {
  return std::to_string(size) + (size == 1 ? " byte of hex" : " bytes of hex");
}

// The digits of `text` after an optional 0x/0X, once every one is a hex digit and there is
// an even number of them. `expected` completes "<what> must be ..." in a message.
Result<std::string_view> hex_digits(std::string_view text, std::string_view what,
                                    std::string_view expected) {
  std::string_view digits = text;
  if (digits.size() >= 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    digits.remove_prefix(2);
  }
  const std::size_t prefix = text.size() - digits.size();
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (nibble(digits[i]) < 0) {
      return fail(Status::malformed, std::string(what) + " must be " + std::string(expected) +
                                         ", found " + describe_char(digits[i]) + " at position " +
                                         std::to_string(prefix + i));
    }
  }
  if (digits.size() % 2 != 0) {
    return fail(Status::malformed, std::string(what) + " must be " + std::string(expected) +
                                       ", got " + std::to_string(digits.size()) + " hex digits");
  }
  return digits;
}

// As hex_digits, and exactly `size` bytes of them.
Result<std::string_view> sized_hex_digits(std::string_view text, std::size_t size,
                                          std::string_view what) {
  const std::string expected = bytes_of_hex(size);
  auto digits = hex_digits(text, what, expected);
  if (!digits) return digits;
  if (digits->size() / 2 != size) {
    return fail(Status::malformed, std::string(what) + " must be " + expected + ", got " +
                                       std::to_string(digits->size() / 2));
  }
  return digits;
}

// Decodes digits hex_digits accepted into `out`, which holds exactly half as many bytes.
void decode_digits(std::string_view digits, std::span<std::uint8_t> out) noexcept {
  for (std::size_t i = 0; i < out.size() && 2 * i + 1 < digits.size(); ++i) {
    out[i] = static_cast<std::uint8_t>((nibble(digits[2 * i]) << 4) | nibble(digits[2 * i + 1]));
  }
}

}  // namespace

Result<std::string> normalize_hex(std::string_view text, std::size_t size, std::string_view what) {
  auto digits = sized_hex_digits(text, size, what);
  if (!digits) return digits.failure();
  std::string out(digits->size(), '0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = upper_digits[static_cast<std::size_t>(nibble((*digits)[i]))];
  }
  return out;
}

Result<std::string> decode_hex(std::string_view text, std::string_view what) {
  auto digits = hex_digits(text, what, "whole bytes of hex");
  if (!digits) return digits.failure();
  std::string out(digits->size() / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<char>((nibble((*digits)[2 * i]) << 4) | nibble((*digits)[2 * i + 1]));
  }
  return out;
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
  std::string out;
  out.reserve(2 * bytes.size());
  for (const std::uint8_t b : bytes) {
    out += upper_digits[b >> 4U];
    out += upper_digits[b & 0x0FU];
  }
  return out;
}

// --- FixedId ---

template <std::size_t N, class Tag>
Result<FixedId<N, Tag>> FixedId<N, Tag>::from_hex(std::string_view text) {
  auto digits = sized_hex_digits(text, N, Tag::name());
  if (!digits) return digits.failure();
  FixedId id;
  decode_digits(*digits, id.be_);
  return id;
}

template <std::size_t N, class Tag>
FixedId<N, Tag> FixedId<N, Tag>::from_bytes(std::span<const std::uint8_t, N> big_endian) noexcept {
  FixedId id;
  std::copy(big_endian.begin(), big_endian.end(), id.be_.begin());
  return id;
}

template <std::size_t N, class Tag>
FixedId<N, Tag> FixedId<N, Tag>::from_air(std::span<const std::uint8_t, N> little_endian) noexcept {
  FixedId id;
  std::reverse_copy(little_endian.begin(), little_endian.end(), id.be_.begin());
  return id;
}

template <std::size_t N, class Tag>
FixedId<N, Tag> FixedId<N, Tag>::from_uint(std::uint64_t v) noexcept {
  FixedId id;
  for (std::size_t i = 0; i < N; ++i) {
    id.be_[N - 1 - i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
  return id;
}

template <std::size_t N, class Tag>
std::array<std::uint8_t, N> FixedId<N, Tag>::air() const noexcept {
  std::array<std::uint8_t, N> out{};
  std::reverse_copy(be_.begin(), be_.end(), out.begin());
  return out;
}

template <std::size_t N, class Tag>
std::string FixedId<N, Tag>::hex() const {
  return to_hex(be_);
}

template <std::size_t N, class Tag>
std::uint64_t FixedId<N, Tag>::to_uint() const noexcept {
  std::uint64_t v = 0;
  for (const std::uint8_t b : be_)
    v = (v << 8U) | b;
  return v;
}

template class FixedId<8, JoinEuiTag>;
template class FixedId<8, DevEuiTag>;
template class FixedId<3, NetIdTag>;
template class FixedId<4, DevAddrTag>;
template class FixedId<8, NsIdTag>;

// --- JoinNonce ---

Result<JoinNonce> JoinNonce::create(std::uint32_t value) {
  if (value > max) {
    return fail(Status::malformed, "JoinNonce " + std::to_string(value) +
                                       " does not fit in 24 bits (max " + std::to_string(max) +
                                       ")");
  }
  JoinNonce n;
  n.v_ = value;
  return n;
}

std::array<std::uint8_t, 3> JoinNonce::air() const noexcept {
  return {static_cast<std::uint8_t>(v_ & 0xFFU), static_cast<std::uint8_t>((v_ >> 8U) & 0xFFU),
          static_cast<std::uint8_t>((v_ >> 16U) & 0xFFU)};
}

// --- MacVersion ---

Result<MacVersion> parse_mac_version(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, MacVersion>, 8> spellings{{
      {"1.0", MacVersion::v1_0},
      {"1.0.0", MacVersion::v1_0},
      {"1.0.1", MacVersion::v1_0_1},
      {"1.0.2", MacVersion::v1_0_2},
      {"1.0.3", MacVersion::v1_0_3},
      {"1.0.4", MacVersion::v1_0_4},
      {"1.1", MacVersion::v1_1},
      {"1.1.0", MacVersion::v1_1},
  }};
  for (const auto& [spelling, version] : spellings) {
    if (text == spelling) return version;
  }
  return fail(Status::malformed,
              "MACVersion " + quote_bounded(text, 16) +
                  " is not one of 1.0, 1.0.0, 1.0.1, 1.0.2, 1.0.3, 1.0.4, 1.1, 1.1.0");
}

std::string_view mac_version_name(MacVersion v) noexcept {
  switch (v) {
    case MacVersion::v1_0:
      return "1.0";
    case MacVersion::v1_0_1:
      return "1.0.1";
    case MacVersion::v1_0_2:
      return "1.0.2";
    case MacVersion::v1_0_3:
      return "1.0.3";
    case MacVersion::v1_0_4:
      return "1.0.4";
    case MacVersion::v1_1:
      return "1.1";
  }
  return "unknown";  // a value cast from outside the enumeration
}

// --- CfList ---

Result<CfList> CfList::from_hex(std::string_view text) {
  auto digits = sized_hex_digits(text, 16, "CFList");
  if (!digits) return digits.failure();
  CfList cf;
  decode_digits(*digits, cf.bytes);
  return cf;
}

}  // namespace lorakeep::lorawan
