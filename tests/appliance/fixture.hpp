// An appliance on a throwaway token (SoftHSMv2 or NSS softoken, LORAKEEP_TEST_TOKEN):
// storage key generated, an NS and an AS KEK imported with values the test knows (so it can
// check envelopes with OpenSSL).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "appliance/join.hpp"
#include "appliance/keys.hpp"
#include "appliance/provision.hpp"
#include "openssl_ref.hpp"
#include "token_fixture.hpp"
#include "token_policy.hpp"

namespace lorakeep::test {

using Bytes = std::vector<std::uint8_t>;

struct ApplianceFixture {
  /// The KeyDirectory's policy is token_policy(policy).
  explicit ApplianceFixture(appliance::Policy policy = {});

  /// A device root key as the registry would hold it (imported through the appliance).
  Bytes wrap_root(const Bytes& key);
  /// The key inside an envelope: unwrapped with the test's copy of the KEK (OpenSSL).
  Bytes open(const appliance::KeyEnvelope& envelope) const;

  TestToken token;
  pkcs11::Session session;
  appliance::KeyDirectory keys;
  Bytes kek_ns;
  Bytes kek_as;
  appliance::Delivery to_ns{std::string("ns-kek"), false};
  appliance::Delivery to_as{std::string("as-kek"), false};
};

/// A join-request PHYPayload with its MIC computed by OpenSSL under `key`.
Bytes make_join_request(const Bytes& key, const std::string& join_eui, const std::string& dev_eui,
                        std::uint16_t dev_nonce);

/// The 1.0.x session-key derivation input and the 1.1 one, in OpenSSL terms, for checks.
Bytes block_1_0(std::uint8_t prefix, std::uint32_t join_nonce, const std::string& net_id,
                std::uint16_t dev_nonce);
Bytes block_1_1(std::uint8_t prefix, std::uint32_t join_nonce, const std::string& join_eui,
                std::uint16_t dev_nonce);
/// BE display hex → air order (reversed) bytes.
Bytes air(const std::string& hex);

}  // namespace lorakeep::test
