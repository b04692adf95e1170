// LoRaWAN frames the Join Server handles: join-request, rejoin-request (types 0, 1, 2),
// join-accept. Parsers check every length, MType and major version before reading.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "schemas/lorawan/types.hpp"
#include "schemas/result.hpp"

namespace lorakeep::lorawan {

using Mic = std::array<std::uint8_t, 4>;

inline constexpr std::uint8_t mhdr_join_request = 0x00;    // MType 000, Major 00
inline constexpr std::uint8_t mhdr_join_accept = 0x20;     // MType 001
inline constexpr std::uint8_t mhdr_rejoin_request = 0xC0;  // MType 110
/// MHDR bits 4..2: RFU. Receivers ignore them (parsers accept any value), but a MIC covers
/// the byte as sent, so requests keep them (`mhdr_rfu`) for mic_input() and encode().
inline constexpr std::uint8_t mhdr_rfu_mask = 0x1C;

/// JoinReqType in the 1.1 join-accept MIC: 0xFF for a join-request, else the rejoin type.
inline constexpr std::uint8_t join_req_type_join = 0xFF;

/// MHDR | JoinEUI | DevEUI | DevNonce | MIC — 23 bytes.
struct JoinRequest {
  static constexpr std::size_t size = 23;
  JoinEui join_eui;
  DevEui dev_eui;
  DevNonce dev_nonce;
  Mic mic{};
  std::uint8_t mhdr_rfu = 0;  // received MHDR & mhdr_rfu_mask (bits in place)

  /// Checks MType (000), Major (00) and the length (23) before reading anything else;
  /// every failure is Status::malformed with a message saying which.
  static Result<JoinRequest> parse(std::span<const std::uint8_t> phy);
  /// The 19 bytes the MIC covers: MHDR | JoinEUI | DevEUI | DevNonce (air order).
  [[nodiscard]] std::array<std::uint8_t, 19> mic_input() const;
  [[nodiscard]] std::array<std::uint8_t, size> encode() const;
};

/// Type 0 and 2: MHDR | type | NetID | DevEUI | RJcount0 | MIC — 19 bytes.
/// Type 1:       MHDR | type | JoinEUI | DevEUI | RJcount1 | MIC — 24 bytes.
struct RejoinRequest {
  static constexpr std::size_t size_type_0_2 = 19;
  static constexpr std::size_t size_type_1 = 24;
  std::uint8_t type = 0;            // 0, 1 or 2
  std::optional<NetId> net_id;      // types 0 and 2
  std::optional<JoinEui> join_eui;  // type 1
  DevEui dev_eui;
  DevNonce rj_count;  // RJcount0 (types 0, 2) or RJcount1 (type 1)
  Mic mic{};
  std::uint8_t mhdr_rfu = 0;  // received MHDR & mhdr_rfu_mask (bits in place)

  /// Checks MType (110), Major (00), the rejoin type (0, 1, 2) and that type's length before
  /// reading the fields; every failure is Status::malformed. Sets exactly the optional the
  /// type carries.
  static Result<RejoinRequest> parse(std::span<const std::uint8_t> phy);
  /// Every byte before the MIC. Empty when the fields are inconsistent: `type` not 0, 1 or
  /// 2, or the optional its type needs (net_id for 0 and 2, join_eui for 1) not set. The
  /// other optional is not encoded.
  [[nodiscard]] std::vector<std::uint8_t> mic_input() const;
  /// mic_input() then the MIC; empty when mic_input() is.
  [[nodiscard]] std::vector<std::uint8_t> encode() const;
};

/// The fields of a join-accept, as the Join Server fills them in.
struct JoinAcceptFields {
  JoinNonce join_nonce;
  NetId net_id;
  DevAddr dev_addr;
  DlSettings dl_settings;
  RxDelay rx_delay;
  std::optional<CfList> cf_list;

  /// MHDR | JoinNonce | NetID | DevAddr | DLSettings | RxDelay | CFList — 13 or 29 bytes,
  /// the plaintext before the MIC (the 1.0.x MIC input).
  [[nodiscard]] std::vector<std::uint8_t> encode_without_mic() const;
};

/// A decrypted join-accept: MHDR | fields | MIC — 17 or 33 bytes.
struct JoinAccept {
  static constexpr std::size_t size_without_cf_list = 17;
  static constexpr std::size_t size_with_cf_list = 33;
  JoinAcceptFields fields;
  Mic mic{};

  /// Checks MType (001), Major (00) and the length (17 or 33) before reading; failures are
  /// Status::malformed. MHDR RFU bits are ignored (encode_without_mic writes 0x20).
  static Result<JoinAccept> parse_plaintext(std::span<const std::uint8_t> plaintext);
};

/// The 1.1 (OptNeg) join-accept MIC input:
/// JoinReqType | JoinEUI | DevNonce | MHDR | JoinNonce | NetID | DevAddr | DLSettings |
/// RxDelay | CFList (DevNonce is RJcount for a rejoin).
std::vector<std::uint8_t> join_accept_mic_input_1_1(std::uint8_t join_req_type,
                                                    const JoinEui& join_eui, DevNonce dev_nonce,
                                                    const JoinAcceptFields& fields);

}  // namespace lorakeep::lorawan
