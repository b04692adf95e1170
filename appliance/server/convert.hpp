// Requests of protocol v1 → the appliance's validated inputs, and its outputs → answers.
// Every field is checked before use; a refusal is Status::malformed with a message naming
// the field as the .proto does ("join.accept.net_id: …").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "appliance/join.hpp"
#include "crypto.pb.h"
#include "schemas/lorawan/types.hpp"
#include "schemas/result.hpp"

namespace lorakeep::appliance::server {

namespace v1 = crypto::v1;

/// Labels (KEK, transport KEK, part number): 1 to 64 printable ASCII characters, no blanks.
Result<std::string> checked_label(const std::string& text, std::string_view field);
/// An EUI-64 given as 8 bytes, big-endian.
Result<lorawan::DevEui> checked_dev_eui(const std::string& bytes, std::string_view field);
Result<Delivery> checked_delivery(const v1::Delivery& d, std::string_view field);

/// A JoinOp: the MAC version, the frame (and that its DevEUI is `dev_eui`), the root keys
/// the version needs, the accept fields and deliveries.
Result<JoinInput> join_input(const v1::JoinOp& op);
Result<RejoinInput> rejoin_input(const v1::RejoinOp& op);

/// Fills `out` from `in`. Plaintext keys in `in` are copied, then wiped in `in`.
void put_join_result(JoinOutput& in, v1::JoinResult& out);
void put_envelope(KeyEnvelope& in, v1::KeyEnvelope& out);

/// Whether an answer carries a session key in the clear (an envelope without a KEK label).
bool delivers_plaintext(const v1::Response& response);

/// Overwrites plaintext key bytes in a request (ImportRootKeyOp.plaintext) or an answer
/// (envelopes without a KEK label) before the message is freed.
void wipe_secrets(v1::Request& request) noexcept;
void wipe_secrets(v1::Response& response) noexcept;
/// Overwrites a protobuf bytes field in place (OPENSSL_cleanse), then empties it.
void wipe(std::string& bytes) noexcept;

v1::Code code_of(Status status) noexcept;

}  // namespace lorakeep::appliance::server
