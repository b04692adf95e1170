#include "schemas/lorawan/frames.hpp"

#include <algorithm>
#include <string>
#include <string_view>

namespace lorakeep::lorawan {
namespace {

constexpr std::uint8_t mtype_join_request = 0;
constexpr std::uint8_t mtype_join_accept = 1;
constexpr std::uint8_t mtype_rejoin_request = 6;

constexpr std::uint8_t mtype_of(std::uint8_t mhdr) noexcept {
  return static_cast<std::uint8_t>(mhdr >> 5U);
}
constexpr std::uint8_t major_of(std::uint8_t mhdr) noexcept {
  return static_cast<std::uint8_t>(mhdr & 0x03U);
}
constexpr std::uint8_t rfu_of(std::uint8_t mhdr) noexcept {
  return static_cast<std::uint8_t>(mhdr & mhdr_rfu_mask);
}

Failure wrong_length(std::string_view frame, std::string_view expected, std::size_t got) {
  return fail(Status::malformed, std::string(frame) + " must be " + std::string(expected) +
                                     " bytes, got " + std::to_string(got));
}

// MType and Major of a frame's first byte; RFU bits are the receiver's to ignore.
std::optional<Failure> check_mhdr(std::uint8_t mhdr, std::uint8_t mtype, std::string_view frame) {
  if (mtype_of(mhdr) != mtype) {
    return fail(Status::malformed,
                "MType " + std::to_string(mtype_of(mhdr)) + " is not a " + std::string(frame));
  }
  if (major_of(mhdr) != 0) {
    return fail(Status::malformed, std::string(frame) + " has major version " +
                                       std::to_string(major_of(mhdr)) +
                                       "; only 0 (LoRaWAN R1) is defined");
  }
  return std::nullopt;
}

// Little-endian 16 bits from a span whose length the caller checked.
DevNonce le16(std::span<const std::uint8_t, 2> b) noexcept {
  return DevNonce{static_cast<std::uint16_t>(b[0] | (b[1] << 8U))};
}

Mic mic_of(std::span<const std::uint8_t, 4> b) noexcept {
  Mic mic{};
  std::copy(b.begin(), b.end(), mic.begin());
  return mic;
}

template <class Bytes>
void append(std::vector<std::uint8_t>& out, const Bytes& bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

}  // namespace

// --- JoinRequest: MHDR(1) JoinEUI(8) DevEUI(8) DevNonce(2) MIC(4) ---

Result<JoinRequest> JoinRequest::parse(std::span<const std::uint8_t> phy) {
  constexpr std::string_view frame = "join-request";
  if (phy.empty()) return wrong_length(frame, "23", 0);
  if (auto failure = check_mhdr(phy[0], mtype_join_request, frame)) return std::move(*failure);
  if (phy.size() != size) return wrong_length(frame, "23", phy.size());

  JoinRequest r;
  r.mhdr_rfu = rfu_of(phy[0]);
  r.join_eui = JoinEui::from_air(phy.subspan<1, 8>());
  r.dev_eui = DevEui::from_air(phy.subspan<9, 8>());
  r.dev_nonce = le16(phy.subspan<17, 2>());
  r.mic = mic_of(phy.subspan<19, 4>());
  return r;
}

std::array<std::uint8_t, 19> JoinRequest::mic_input() const {
  std::array<std::uint8_t, 19> out{};
  out[0] = static_cast<std::uint8_t>(mhdr_join_request | rfu_of(mhdr_rfu));
  const auto join = join_eui.air();
  const auto dev = dev_eui.air();
  const auto nonce = dev_nonce.air();
  auto it = std::copy(join.begin(), join.end(), out.begin() + 1);
  it = std::copy(dev.begin(), dev.end(), it);
  std::copy(nonce.begin(), nonce.end(), it);
  return out;
}

std::array<std::uint8_t, JoinRequest::size> JoinRequest::encode() const {
  std::array<std::uint8_t, size> out{};
  const auto input = mic_input();
  auto it = std::copy(input.begin(), input.end(), out.begin());
  std::copy(mic.begin(), mic.end(), it);
  return out;
}

// --- RejoinRequest ---
// Type 0, 2: MHDR(1) type(1) NetID(3) DevEUI(8) RJcount0(2) MIC(4)
// Type 1:    MHDR(1) type(1) JoinEUI(8) DevEUI(8) RJcount1(2) MIC(4)

Result<RejoinRequest> RejoinRequest::parse(std::span<const std::uint8_t> phy) {
  constexpr std::string_view frame = "rejoin-request";
  if (phy.empty()) return wrong_length(frame, "19 or 24", 0);
  if (auto failure = check_mhdr(phy[0], mtype_rejoin_request, frame)) {
    return std::move(*failure);
  }
  if (phy.size() < 2) return wrong_length(frame, "19 or 24", phy.size());

  RejoinRequest r;
  r.mhdr_rfu = rfu_of(phy[0]);
  r.type = phy[1];
  switch (r.type) {
    case 0:
    case 2:
      if (phy.size() != size_type_0_2) {
        return wrong_length("rejoin-request type " + std::to_string(r.type), "19", phy.size());
      }
      r.net_id = NetId::from_air(phy.subspan<2, 3>());
      r.dev_eui = DevEui::from_air(phy.subspan<5, 8>());
      r.rj_count = le16(phy.subspan<13, 2>());
      r.mic = mic_of(phy.subspan<15, 4>());
      return r;
    case 1:
      if (phy.size() != size_type_1) {
        return wrong_length("rejoin-request type 1", "24", phy.size());
      }
      r.join_eui = JoinEui::from_air(phy.subspan<2, 8>());
      r.dev_eui = DevEui::from_air(phy.subspan<10, 8>());
      r.rj_count = le16(phy.subspan<18, 2>());
      r.mic = mic_of(phy.subspan<20, 4>());
      return r;
    default:
      return fail(Status::malformed, "rejoin type " + std::to_string(r.type) + " is not defined");
  }
}

std::vector<std::uint8_t> RejoinRequest::mic_input() const {
  std::vector<std::uint8_t> out;
  const bool type_0_2 = (type == 0 || type == 2) && net_id.has_value();
  const bool type_1 = type == 1 && join_eui.has_value();
  if (!type_0_2 && !type_1) return out;

  out.reserve(size_type_1);
  out.push_back(static_cast<std::uint8_t>(mhdr_rejoin_request | rfu_of(mhdr_rfu)));
  out.push_back(type);
  if (type_1) {
    append(out, join_eui->air());
  } else {
    append(out, net_id->air());
  }
  append(out, dev_eui.air());
  append(out, rj_count.air());
  return out;
}

std::vector<std::uint8_t> RejoinRequest::encode() const {
  std::vector<std::uint8_t> out = mic_input();
  if (!out.empty()) append(out, mic);
  return out;
}

// --- Join-accept ---
// MHDR(1) JoinNonce(3) NetID(3) DevAddr(4) DLSettings(1) RxDelay(1) [CFList(16)] MIC(4)

std::vector<std::uint8_t> JoinAcceptFields::encode_without_mic() const {
  std::vector<std::uint8_t> out;
  out.reserve(JoinAccept::size_with_cf_list - 4);
  out.push_back(mhdr_join_accept);
  append(out, join_nonce.air());
  append(out, net_id.air());
  append(out, dev_addr.air());
  out.push_back(dl_settings.byte);
  out.push_back(rx_delay.byte);
  if (cf_list) append(out, cf_list->bytes);
  return out;
}

Result<JoinAccept> JoinAccept::parse_plaintext(std::span<const std::uint8_t> plaintext) {
  constexpr std::string_view frame = "join-accept";
  if (plaintext.empty()) return wrong_length(frame, "17 or 33", 0);
  if (auto failure = check_mhdr(plaintext[0], mtype_join_accept, frame)) return std::move(*failure);
  if (plaintext.size() != size_without_cf_list && plaintext.size() != size_with_cf_list) {
    return wrong_length(frame, "17 or 33", plaintext.size());
  }

  auto nonce = JoinNonce::create(static_cast<std::uint32_t>(plaintext[1]) |
                                 (static_cast<std::uint32_t>(plaintext[2]) << 8U) |
                                 (static_cast<std::uint32_t>(plaintext[3]) << 16U));
  if (!nonce) return nonce.failure();  // cannot happen: three bytes fit 24 bits

  JoinAccept a;
  a.fields.join_nonce = *nonce;
  a.fields.net_id = NetId::from_air(plaintext.subspan<4, 3>());
  a.fields.dev_addr = DevAddr::from_air(plaintext.subspan<7, 4>());
  a.fields.dl_settings = DlSettings{plaintext[11]};
  a.fields.rx_delay = RxDelay{plaintext[12]};
  if (plaintext.size() == size_with_cf_list) {
    CfList cf;
    const auto bytes = plaintext.subspan<13, 16>();
    std::copy(bytes.begin(), bytes.end(), cf.bytes.begin());
    a.fields.cf_list = cf;
  }
  a.mic = mic_of(plaintext.last<4>());
  return a;
}

std::vector<std::uint8_t> join_accept_mic_input_1_1(std::uint8_t join_req_type,
                                                    const JoinEui& join_eui, DevNonce dev_nonce,
                                                    const JoinAcceptFields& fields) {
  std::vector<std::uint8_t> out;
  out.reserve(1 + JoinEui::size + 2 + JoinAccept::size_with_cf_list - 4);
  out.push_back(join_req_type);
  append(out, join_eui.air());
  append(out, dev_nonce.air());
  append(out, fields.encode_without_mic());
  return out;
}

}  // namespace lorakeep::lorawan
