// Validated LoRaWAN value types. Each is built by a factory that checks it, so an invalid
// value cannot exist. Byte order: the canonical form (`bytes()`, hex) is big-endian, as in
// Backend Interfaces JSON; `air()` is the little-endian order on the radio.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "schemas/result.hpp"

namespace lorakeep::lorawan {

/// Parses hex as Backend Interfaces peers send it: either case, an optional "0x"/"0X",
/// exactly `size` bytes. The message names `what` ("DevEUI") and the length found.
/// On success: the same value as canonical hex (upper case, no "0x", 2 * size digits).
/// Failures are Status::malformed; a message quotes at most one offending character.
Result<std::string> normalize_hex(std::string_view text, std::size_t size, std::string_view what);
/// Decodes hex (any case, optional 0x) of any even length, including none.
/// On success: the decoded bytes, one `char` per byte. Failures are Status::malformed.
Result<std::string> decode_hex(std::string_view text, std::string_view what);
/// Upper-case hex of bytes.
std::string to_hex(std::span<const std::uint8_t> bytes);

/// N bytes, big-endian canonical. Tag makes JoinEui and DevEui different types.
/// Tag supplies `static constexpr std::string_view name()`, the Backend Interfaces field
/// name ("DevEUI") that from_hex's messages use. N is at most 8 (to_uint fits).
template <std::size_t N, class Tag>
class FixedId {
  static_assert(N >= 1 && N <= 8);

 public:
  static constexpr std::size_t size = N;
  static Result<FixedId> from_hex(std::string_view text);
  static FixedId from_bytes(std::span<const std::uint8_t, N> big_endian) noexcept;
  static FixedId from_air(std::span<const std::uint8_t, N> little_endian) noexcept;
  /// For counters and tests: the value as a big-endian integer of N bytes (the low N bytes
  /// of `v`; higher bytes are dropped).
  static FixedId from_uint(std::uint64_t v) noexcept;

  [[nodiscard]] const std::array<std::uint8_t, N>& bytes() const noexcept { return be_; }
  [[nodiscard]] std::array<std::uint8_t, N> air() const noexcept;
  [[nodiscard]] std::string hex() const;  // upper case, no 0x
  [[nodiscard]] std::uint64_t to_uint() const noexcept;

  // clang-tidy 14 takes the `0` of a synthesized `(a <=> b) < 0` for a null pointer.
  // NOLINTNEXTLINE(modernize-use-nullptr)
  friend auto operator<=>(const FixedId&, const FixedId&) = default;

 private:
  std::array<std::uint8_t, N> be_{};
};

struct JoinEuiTag {
  static constexpr std::string_view name() noexcept { return "JoinEUI"; }
};
struct DevEuiTag {
  static constexpr std::string_view name() noexcept { return "DevEUI"; }
};
struct NetIdTag {
  static constexpr std::string_view name() noexcept { return "NetID"; }
};
struct DevAddrTag {
  static constexpr std::string_view name() noexcept { return "DevAddr"; }
};
/// A Network Server identifier (Backend Interfaces 1.1 NSID: HNSID, SenderNSID), an EUI-64.
struct NsIdTag {
  static constexpr std::string_view name() noexcept { return "NSID"; }
};
using JoinEui = FixedId<8, JoinEuiTag>;
using DevEui = FixedId<8, DevEuiTag>;
using NetId = FixedId<3, NetIdTag>;
using DevAddr = FixedId<4, DevAddrTag>;
using NsId = FixedId<8, NsIdTag>;
// Defined once, in types.cpp.
extern template class FixedId<8, JoinEuiTag>;
extern template class FixedId<8, DevEuiTag>;
extern template class FixedId<3, NetIdTag>;
extern template class FixedId<4, DevAddrTag>;
extern template class FixedId<8, NsIdTag>;

/// A 16-bit DevNonce (1.0.4/1.1: a counter; before: random). Also RJcount0/RJcount1.
struct DevNonce {
  std::uint16_t value = 0;
  [[nodiscard]] std::array<std::uint8_t, 2> air() const noexcept {
    return {static_cast<std::uint8_t>(value & 0xFF), static_cast<std::uint8_t>(value >> 8)};
  }
  // clang-tidy 14 takes the `0` of a synthesized `(a <=> b) < 0` for a null pointer.
  // NOLINTNEXTLINE(modernize-use-nullptr)
  friend auto operator<=>(const DevNonce&, const DevNonce&) = default;
};

/// A 24-bit JoinNonce (AppNonce in 1.0.x).
class JoinNonce {
 public:
  static constexpr std::uint32_t max = 0xFFFFFF;
  /// A value above `max` is Status::malformed (it is not a JoinNonce at all); running out
  /// of next values is the caller's Status::exhausted.
  static Result<JoinNonce> create(std::uint32_t value);
  [[nodiscard]] std::uint32_t value() const noexcept { return v_; }
  [[nodiscard]] std::array<std::uint8_t, 3> air() const noexcept;
  // clang-tidy 14 takes the `0` of a synthesized `(a <=> b) < 0` for a null pointer.
  // NOLINTNEXTLINE(modernize-use-nullptr)
  friend auto operator<=>(const JoinNonce&, const JoinNonce&) = default;

 private:
  std::uint32_t v_ = 0;
};

enum class MacVersion : std::uint8_t { v1_0, v1_0_1, v1_0_2, v1_0_3, v1_0_4, v1_1 };

/// Accepts "1.0", "1.0.0", "1.0.1" … "1.0.4", "1.1", "1.1.0" (The Things Stack and
/// ChirpStack spellings); anything else is malformed, the message quoting at most 16
/// characters of `text`.
Result<MacVersion> parse_mac_version(std::string_view text);
/// "1.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4", "1.1".
std::string_view mac_version_name(MacVersion v) noexcept;
/// LoRaWAN 1.1 key hierarchy (NwkKey + AppKey, JS keys, four session keys).
inline bool is_1_1(MacVersion v) noexcept {
  return v == MacVersion::v1_1;
}
/// DevNonce is a counter (1.0.4 and 1.1) rather than random.
inline bool dev_nonce_is_counter(MacVersion v) noexcept {
  return v == MacVersion::v1_0_4 || v == MacVersion::v1_1;
}

/// DLSettings: OptNeg (bit 7), RX1DRoffset (bits 6..4), RX2DataRate (bits 3..0).
struct DlSettings {
  std::uint8_t byte = 0;
  [[nodiscard]] bool opt_neg() const noexcept { return (byte & 0x80) != 0; }
  [[nodiscard]] std::uint8_t rx1_dr_offset() const noexcept { return (byte >> 4) & 0x07; }
  [[nodiscard]] std::uint8_t rx2_data_rate() const noexcept { return byte & 0x0F; }
};

/// RxDelay: the byte as sent (bits 3..0 the delay in seconds, 0 meaning 1; RFU bits are
/// carried unchanged, as in the specification's join-accept).
struct RxDelay {
  std::uint8_t byte = 0;
};

/// CFList: 16 bytes, last byte CFListType. Carried as given.
struct CfList {
  std::array<std::uint8_t, 16> bytes{};
  /// Exactly 16 bytes of hex, as normalize_hex accepts it.
  static Result<CfList> from_hex(std::string_view text);
};

}  // namespace lorakeep::lorawan
