// LoRaWAN join cryptography as PKCS#11 operations on key handles: no root key and no
// session key exists in plaintext outside the token (DESIGN.md §2). Each operation takes
// what one Backend Interfaces request needs and returns a verdict, a sealed join-accept
// and KeyEnvelopes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "appliance/keys.hpp"
#include "pkcs11/session.hpp"
#include "pkcs11/stats.hpp"
#include "schemas/lorawan/frames.hpp"
#include "schemas/lorawan/types.hpp"
#include "schemas/result.hpp"

namespace lorakeep::appliance {

/// A device's root keys as the registry keeps them: RFC 3394-wrapped under the storage
/// key. 1.0.x devices have only the AppKey; 1.1 devices have both.
struct WrappedRootKeys {
  std::vector<std::uint8_t> app_key;  // 24 bytes
  std::vector<std::uint8_t> nwk_key;  // 24 bytes, 1.1 only
};

/// A secure-element device: its root keys are derived in the token from the part's root
/// key and the device's serial number (see derive_part_block).
struct PartRootKeys {
  std::string part_number;
  std::vector<std::uint8_t> serial;  // 1 to 12 bytes
};

using RootKeys = std::variant<WrappedRootKeys, PartRootKeys>;

/// Which root key a part-derived key is.
enum class RootKeyKind : std::uint8_t { app_key = 0x01, nwk_key = 0x02 };

/// The 16-byte derivation input of a part-derived root key, so that a manufacturer can
/// produce matching devices: key = AES-128-ECB-encrypt(part root key, block), block =
/// 'L' 'K' | kind (0x01 AppKey, 0x02 NwkKey) | serial length | serial | 0x00 padding.
Result<std::array<std::uint8_t, 16>> derive_part_block(RootKeyKind kind,
                                                       std::span<const std::uint8_t> serial);

/// How a session key reaches its receiver: wrapped under a KEK (BI KEKLabel), or in
/// plaintext only when the peer is configured so, explicitly.
struct Delivery {
  std::optional<std::string> kek_label;
  bool plaintext_allowed = false;
};

/// A BI KeyEnvelope: with a KEK label, `aes_key` is the RFC 3394 wrap (24 bytes); with an
/// empty label, the key itself (only when the Delivery allowed plaintext).
struct KeyEnvelope {
  std::string kek_label;
  std::vector<std::uint8_t> aes_key;
};

struct JoinInput {
  lorawan::MacVersion mac_version = lorawan::MacVersion::v1_0_2;
  std::vector<std::uint8_t> join_request;  // PHYPayload
  RootKeys root_keys;
  lorawan::JoinAcceptFields accept;  // OptNeg in accept.dl_settings (1.1)
  Delivery ns;                       // network session keys
  std::optional<Delivery> as;        // AppSKey for the AS, if it gets one in JoinAns
  bool store_app_s_key = true;       // AppSKey wrapped under the storage key
  // Only the AppSKey for `as` (required), derived again from a request already answered:
  // the MIC is verified as for a join, but no accept is built and no network key derived
  // (`ns` is ignored). An AppSKeyReq for a session whose AS's KEK has changed since.
  bool app_s_key_only = false;
};

/// For a rejoin the device's JoinEUI comes from the registry (type 0/2 requests do not
/// carry it). Rejoins are LoRaWAN 1.1 only.
struct RejoinInput {
  std::vector<std::uint8_t> rejoin_request;  // PHYPayload
  lorawan::JoinEui join_eui;
  RootKeys root_keys;
  lorawan::JoinAcceptFields accept;
  Delivery ns;
  std::optional<Delivery> as;
  bool store_app_s_key = true;
  bool app_s_key_only = false;  // as for JoinInput
};

struct JoinOutput {
  std::vector<std::uint8_t> join_accept;  // encrypted PHYPayload
  // 1.0.x, and 1.1 with OptNeg=0: NwkSKey. 1.1 with OptNeg: the three network keys.
  std::optional<KeyEnvelope> nwk_s_key;
  std::optional<KeyEnvelope> f_nwk_s_int_key;
  std::optional<KeyEnvelope> s_nwk_s_int_key;
  std::optional<KeyEnvelope> nwk_s_enc_key;
  std::optional<KeyEnvelope> app_s_key;        // for the AS, when asked
  std::vector<std::uint8_t> stored_app_s_key;  // under the storage key, when asked
  pkcs11::CallCounts calls;                    // PKCS#11 calls this operation made
};

/// A join-request → join-accept and session keys. Verifies the MIC (1.0.x AppKey, 1.1
/// NwkKey) in constant time first: a wrong MIC gives Status::mic_failed and nothing else
/// happens. The join-accept is encrypted with AES *decrypt* as LoRaWAN defines it.
Result<JoinOutput> join(pkcs11::Session& session, KeyDirectory& keys, const JoinInput& in);

/// A 1.1 rejoin-request (type 0, 1 or 2) → rejoin-accept (JSEncKey encryption, JSIntKey
/// MIC with JoinReqType = the rejoin type) and keys derived with RJcount0/RJcount1 in place
/// of the DevNonce. The type 1 MIC (JSIntKey) is verified here; type 0/2 MICs are the
/// Network Server's (SNwkSIntKey).
Result<JoinOutput> rejoin(pkcs11::Session& session, KeyDirectory& keys, const RejoinInput& in);

/// AppSKeyReq: a stored AppSKey (wrapped under the storage key) re-wrapped for the AS.
struct RewrapOutput {
  KeyEnvelope app_s_key;
  pkcs11::CallCounts calls;
};
Result<RewrapOutput> rewrap_app_s_key(pkcs11::Session& session, KeyDirectory& keys,
                                      std::span<const std::uint8_t> stored, const Delivery& to);

/// Known-answer tests through the token (RFC 4493 CMAC, RFC 3394 wrap, ECB derivation, a
/// LoRaWAN 1.0 and 1.1 join): the appliance serves only after they pass.
Result<Ok> self_test(pkcs11::Session& session);

}  // namespace lorakeep::appliance
