#include "requests.hpp"

#include <doctest.h>

#include "openssl_ref.hpp"

namespace lorakeep::test {

Device make_device(ApplianceFixture& f) {
  Device d{random_bytes(16), random_bytes(16), {}, {}};
  d.wrapped_app_key = f.wrap_root(d.app_key);
  d.wrapped_nwk_key = f.wrap_root(d.nwk_key);
  return d;
}

std::string bytes(const Bytes& b) {
  return {b.begin(), b.end()};
}

std::string hex_bytes(const std::string& hex) {
  return bytes(from_hex(hex));
}

namespace {

void fill_accept(v1::AcceptFields& a, std::uint32_t join_nonce, std::uint32_t dl_settings) {
  a.set_join_nonce(join_nonce);
  a.set_net_id(hex_bytes(kNetId));
  a.set_dev_addr(hex_bytes(kDevAddr));
  a.set_dl_settings(dl_settings);
  a.set_rx_delay(1);
}

}  // namespace

v1::Request join_request(std::uint64_t id, const Device& d, const std::string& mac_version,
                         std::uint16_t dev_nonce, std::uint32_t join_nonce) {
  const bool v1_1 = mac_version == "1.1";
  auto r = request(id);
  auto& op = *r.mutable_join();
  op.set_mac_version(mac_version);
  op.set_phy_payload(
      bytes(make_join_request(v1_1 ? d.nwk_key : d.app_key, kJoinEui, kDevEui, dev_nonce)));
  op.set_dev_eui(hex_bytes(kDevEui));
  auto& w = *op.mutable_root_keys()->mutable_wrapped();
  w.set_app_key(bytes(d.wrapped_app_key));
  if (v1_1) w.set_nwk_key(bytes(d.wrapped_nwk_key));
  fill_accept(*op.mutable_accept(), join_nonce, v1_1 ? 0x80 : 0x03);
  op.mutable_ns()->set_kek_label("ns-kek");
  op.mutable_as()->set_kek_label("as-kek");
  op.set_store_app_s_key(true);
  return r;
}

v1::Request rejoin_request(std::uint64_t id, const Device& d, std::uint16_t rj_count,
                           std::uint32_t join_nonce) {
  Bytes phy{0xC0, 0x00};
  for (auto b : air(kNetId))
    phy.push_back(b);
  for (auto b : air(kDevEui))
    phy.push_back(b);
  phy.push_back(static_cast<std::uint8_t>(rj_count & 0xFF));
  phy.push_back(static_cast<std::uint8_t>(rj_count >> 8));
  // Type 0 is signed with SNwkSIntKey, which only the Network Server checks.
  const auto mic = ref::aes_cmac(random_bytes(16), phy);
  phy.insert(phy.end(), mic.begin(), mic.begin() + 4);
  auto r = request(id);
  auto& op = *r.mutable_rejoin();
  op.set_phy_payload(bytes(phy));
  op.set_join_eui(hex_bytes(kJoinEui));
  op.set_dev_eui(hex_bytes(kDevEui));
  auto& w = *op.mutable_root_keys()->mutable_wrapped();
  w.set_app_key(bytes(d.wrapped_app_key));
  w.set_nwk_key(bytes(d.wrapped_nwk_key));
  fill_accept(*op.mutable_accept(), join_nonce, 0x80);
  op.mutable_ns()->set_kek_label("ns-kek");
  op.mutable_as()->set_kek_label("as-kek");
  op.set_store_app_s_key(true);
  return r;
}

Bytes envelope_key(const Keks& keks, const v1::KeyEnvelope& e) {
  Bytes value(e.aes_key().begin(), e.aes_key().end());
  if (e.kek_label().empty()) return value;
  REQUIRE((e.kek_label() == "ns-kek" || e.kek_label() == "as-kek"));
  return ref::aes_key_unwrap(e.kek_label() == "ns-kek" ? keks.ns : keks.as, value);
}

void check_join_1_0(const Keks& f, const Bytes& key, const v1::JoinResult& r,
                    std::uint16_t dev_nonce, std::uint32_t join_nonce) {
  const Bytes accept(r.join_accept().begin(), r.join_accept().end());
  REQUIRE(accept.size() == 17);
  CHECK(accept[0] == 0x20);
  // LoRaWAN encrypts the join-accept with AES decrypt, so the device decrypts by encrypting.
  const Bytes plain = ref::aes_ecb_encrypt(key, Bytes(accept.begin() + 1, accept.end()));
  Bytes mic_input{0x20};
  mic_input.insert(mic_input.end(), plain.begin(), plain.end() - 4);
  const auto mic = ref::aes_cmac(key, mic_input);
  CHECK(Bytes(plain.end() - 4, plain.end()) == Bytes(mic.begin(), mic.begin() + 4));
  CHECK(plain[0] == (join_nonce & 0xFF));
  REQUIRE(r.has_nwk_s_key());
  CHECK(r.nwk_s_key().kek_label() == "ns-kek");
  CHECK(envelope_key(f, r.nwk_s_key()) ==
        ref::aes_ecb_encrypt(key, block_1_0(0x01, join_nonce, kNetId, dev_nonce)));
  REQUIRE(r.has_app_s_key());
  CHECK(r.app_s_key().kek_label() == "as-kek");
  CHECK(envelope_key(f, r.app_s_key()) ==
        ref::aes_ecb_encrypt(key, block_1_0(0x02, join_nonce, kNetId, dev_nonce)));
  CHECK(r.stored_app_s_key().size() == 24);
  CHECK(r.pkcs11_calls() > 0);
  CHECK(r.pkcs11_crypto_calls() > 0);
  CHECK(r.pkcs11_crypto_calls() <= r.pkcs11_calls());
}

}  // namespace lorakeep::test
