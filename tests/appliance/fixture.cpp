#include "fixture.hpp"

#include <doctest.h>

#include <algorithm>

namespace lorakeep::test {

ApplianceFixture::ApplianceFixture(appliance::Policy policy)
    : session(token.user_session()),
      keys(token_policy(policy)),
      kek_ns(random_bytes(16)),
      kek_as(random_bytes(16)) {
  REQUIRE(appliance::create_storage_key(session, keys.policy()).ok());
  REQUIRE(appliance::import_key(session, appliance::KeyRole::kek, "ns-kek",
                                pkcs11::SecretBytes(kek_ns), keys.policy())
              .ok());
  REQUIRE(appliance::import_key(session, appliance::KeyRole::kek, "as-kek",
                                pkcs11::SecretBytes(kek_as), keys.policy())
              .ok());
}

Bytes ApplianceFixture::wrap_root(const Bytes& key) {
  auto wrapped = appliance::import_root_key(session, keys, pkcs11::SecretBytes(key));
  REQUIRE_MESSAGE(wrapped.ok(), (wrapped.ok() ? "" : wrapped.failure().message));
  return *wrapped;
}

Bytes ApplianceFixture::open(const appliance::KeyEnvelope& envelope) const {
  if (envelope.kek_label.empty()) return envelope.aes_key;
  const Bytes& kek = envelope.kek_label == "ns-kek" ? kek_ns : kek_as;
  return ref::aes_key_unwrap(kek, envelope.aes_key);
}

Bytes air(const std::string& hex) {
  auto b = from_hex(hex);
  std::reverse(b.begin(), b.end());
  return b;
}

Bytes make_join_request(const Bytes& key, const std::string& join_eui, const std::string& dev_eui,
                        std::uint16_t dev_nonce) {
  Bytes phy{0x00};
  for (auto b : air(join_eui))
    phy.push_back(b);
  for (auto b : air(dev_eui))
    phy.push_back(b);
  phy.push_back(static_cast<std::uint8_t>(dev_nonce & 0xFF));
  phy.push_back(static_cast<std::uint8_t>(dev_nonce >> 8));
  const auto mic = ref::aes_cmac(key, phy);
  phy.insert(phy.end(), mic.begin(), mic.begin() + 4);
  return phy;
}

namespace {
Bytes block(std::uint8_t prefix, std::uint32_t join_nonce, const Bytes& middle,
            std::uint16_t dev_nonce) {
  Bytes b(16, 0);
  std::size_t at = 0;
  b[at++] = prefix;
  b[at++] = static_cast<std::uint8_t>(join_nonce & 0xFF);
  b[at++] = static_cast<std::uint8_t>((join_nonce >> 8) & 0xFF);
  b[at++] = static_cast<std::uint8_t>((join_nonce >> 16) & 0xFF);
  for (auto m : middle)
    b.at(at++) = m;
  b.at(at++) = static_cast<std::uint8_t>(dev_nonce & 0xFF);
  b.at(at++) = static_cast<std::uint8_t>(dev_nonce >> 8);
  return b;
}
}  // namespace

Bytes block_1_0(std::uint8_t prefix, std::uint32_t join_nonce, const std::string& net_id,
                std::uint16_t dev_nonce) {
  return block(prefix, join_nonce, air(net_id), dev_nonce);
}

Bytes block_1_1(std::uint8_t prefix, std::uint32_t join_nonce, const std::string& join_eui,
                std::uint16_t dev_nonce) {
  return block(prefix, join_nonce, air(join_eui), dev_nonce);
}

}  // namespace lorakeep::test
