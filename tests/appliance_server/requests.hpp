// Requests of protocol v1 for tests, and the independent (OpenSSL) checks of their answers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "client.hpp"
#include "fixture.hpp"

namespace lorakeep::test {

inline const std::string kJoinEui = "70B3D57ED0001234";
inline const std::string kDevEui = "0004A30B001C0530";
inline const std::string kNetId = "000013";
inline const std::string kDevAddr = "26011B5C";

/// A device with root keys the test knows, wrapped under the token's storage key.
struct Device {
  Bytes app_key;
  Bytes nwk_key;
  Bytes wrapped_app_key;
  Bytes wrapped_nwk_key;
};
Device make_device(ApplianceFixture& f);

std::string bytes(const Bytes& b);
std::string hex_bytes(const std::string& hex);  // big-endian hex → protobuf bytes

/// A JoinOp for `mac_version` ("1.0.2", "1.0.4", "1.1"): the join-request signed by AppKey
/// (1.0.x) or NwkKey (1.1), OptNeg set for 1.1, keys for the NS and AS under "ns-kek" and
/// "as-kek", the AppSKey stored.
v1::Request join_request(std::uint64_t id, const Device& d, const std::string& mac_version,
                         std::uint16_t dev_nonce, std::uint32_t join_nonce);
/// A type 0 rejoin-request of the device.
v1::Request rejoin_request(std::uint64_t id, const Device& d, std::uint16_t rj_count,
                           std::uint32_t join_nonce);

/// The test's copies of the KEKs "ns-kek" and "as-kek".
struct Keks {
  Bytes ns;
  Bytes as;
};
inline Keks keks_of(const ApplianceFixture& f) {
  return {f.kek_ns, f.kek_as};
}

/// The key in an envelope: unwrapped with the test's KEK (OpenSSL), or as given when plain.
Bytes envelope_key(const Keks& keks, const v1::KeyEnvelope& e);
inline Bytes envelope_key(const ApplianceFixture& f, const v1::KeyEnvelope& e) {
  return envelope_key(keks_of(f), e);
}

/// The 1.0.x checks by OpenSSL: the join-accept decrypts under `key`, its MIC verifies, the
/// NwkSKey and AppSKey in the envelopes are the derivations LoRaWAN 1.0 defines.
void check_join_1_0(const Keks& keks, const Bytes& key, const v1::JoinResult& r,
                    std::uint16_t dev_nonce, std::uint32_t join_nonce);
inline void check_join_1_0(const ApplianceFixture& f, const Bytes& key, const v1::JoinResult& r,
                           std::uint16_t dev_nonce, std::uint32_t join_nonce) {
  check_join_1_0(keks_of(f), key, r, dev_nonce, join_nonce);
}

}  // namespace lorakeep::test
