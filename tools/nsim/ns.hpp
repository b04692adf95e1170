// The Network Server's and Application Server's side of Backend Interfaces: a JoinReq or
// AppSKeyReq as JSON, the answer read back, and every check a careful NS makes of a JoinAns
// — the header echoed, the join-accept opened and its MIC verified as the device does, the
// fields as asked, and each session key unwrapped with the KEK and compared with the
// device's own derivation. Checks name what they compared, never a key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "schemas/lorawan/types.hpp"
#include "schemas/result.hpp"
#include "tools/nsim/device.hpp"

namespace lorakeep::nsim {

/// A JoinReq as a Network Server sends it for `device`.
struct JoinReq {
  std::string protocol_version = "1.0";  // "1.0" or "1.1" (1.1 adds SenderNSID)
  lorawan::NetId net_id;                 // SenderID
  std::optional<lorawan::NsId> sender_ns_id;
  std::uint32_t transaction_id = 0;
  std::string mac_version;  // as sent, e.g. "1.0.2", "1.1"
  Bytes phy_payload;        // the join-request
  lorawan::DevEui dev_eui;
  lorawan::JoinEui join_eui;  // ReceiverID
  lorawan::DevAddr dev_addr;
  std::uint8_t dl_settings = 0;
  std::uint8_t rx_delay = 1;
  std::optional<Block> cf_list;

  [[nodiscard]] std::string json() const;
};

/// The JoinReq a Network Server sends for a device's join-request with DevNonce `dev_nonce`:
/// BI 1.1 with OptNeg for a 1.1 device, BI 1.0 otherwise.
JoinReq make_join_req(const Device& device, std::uint16_t dev_nonce, const lorawan::NetId& net_id,
                      const lorawan::DevAddr& dev_addr, std::uint32_t transaction_id);

/// An AppSKeyReq from an Application Server.
struct AppSKeyReq {
  std::string protocol_version = "1.0";
  std::string as_id;          // SenderID
  lorawan::JoinEui join_eui;  // ReceiverID
  std::uint32_t transaction_id = 0;
  lorawan::DevEui dev_eui;
  Bytes session_key_id;
  [[nodiscard]] std::string json() const;
};

struct Envelope {
  std::optional<std::string> kek_label;  // absent: aes_key is the key itself
  Bytes aes_key;
};

/// Any BI answer, as far as join-test and bench read it.
struct Answer {
  std::string message_type;
  std::string result_code;  // "" when there is no Result at all
  std::string description;
  std::optional<std::uint64_t> transaction_id;
  std::string sender_id;
  std::string receiver_id;
  std::string receiver_ns_id;
  Bytes phy_payload;
  std::optional<std::uint64_t> lifetime;
  std::optional<Envelope> nwk_s_key;
  std::optional<Envelope> f_nwk_s_int_key;
  std::optional<Envelope> s_nwk_s_int_key;
  std::optional<Envelope> nwk_s_enc_key;
  std::optional<Envelope> app_s_key;
  Bytes session_key_id;
  std::string dev_eui;
};

/// Reads an answer body; Status::malformed when it is not a JSON object or a field has the
/// wrong type or bad hex (the message names the field).
Result<Answer> parse_answer(std::string_view body);

/// A KEK the simulator holds, with the BI KEKLabel it is agreed under.
struct Kek {
  std::string label;
  Key key;
};

struct Check {
  std::string name;  // "join-accept MIC", "NwkSKey", …
  bool ok = false;
  std::string detail;  // what was compared or what differs; never key material
};

struct JoinVerdict {
  std::vector<Check> checks;
  std::optional<OpenedAccept> accept;  // when the join-accept could be opened
  /// Every check held (ResultCode Success included).
  [[nodiscard]] bool ok() const noexcept;
  /// The first check that failed ("" when all held).
  [[nodiscard]] std::string first_failure() const;
};

/// What to expect of the session keys.
struct KeyExpectations {
  std::optional<Kek> ns_kek;  // absent: the NS keys are expected in plaintext
  std::optional<Kek> as_kek;  // absent: no AppSKey is expected in the JoinAns
};

/// Checks a JoinAns for `request`, sent for `device` with `dev_nonce`, step by step: the
/// ResultCode, the echoed header, the join-accept (length, MIC, NetID, DevAddr, DLSettings,
/// RxDelay, CFList), Lifetime and SessionKeyID, then each session key: the KEKLabel, the
/// RFC 3394 unwrap, and equality with the device's derivation.
JoinVerdict verify_join_answer(const Device& device, std::uint16_t dev_nonce,
                               const JoinReq& request, const Answer& answer,
                               const KeyExpectations& expect);

/// Checks an AppSKeyAns: Success, the echo, the SessionKeyID, and the AppSKey unwrapped
/// with `as_kek` equal to `app_s_key` (the device's derivation).
JoinVerdict verify_app_s_key_answer(const AppSKeyReq& request, const Answer& answer,
                                    const Kek& as_kek, const Key& app_s_key);

}  // namespace lorakeep::nsim
