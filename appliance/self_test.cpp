// Known-answer tests through the token, run before the appliance serves. The vectors are
// published ones (RFC 4493, RFC 3394, The Things Stack's LoRaWAN crypto tests), so a token
// or a build that computes something else is caught before any device is answered.
#include <array>
#include <string>

#include "appliance/join.hpp"
#include "appliance/session_key.hpp"
#include "pkcs11/key_template.hpp"
#include "pkcs11/secret.hpp"

namespace lorakeep::appliance {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes hex(std::string_view h) {
  Bytes out;
  out.reserve(h.size() / 2);
  auto nibble = [](char c) {
    return static_cast<std::uint8_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  };
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(nibble(h[i]) << 4 | nibble(h[i + 1])));
  }
  return out;
}

pkcs11::OwnedKey test_key(pkcs11::Session& s, std::string_view value, bool sign, bool decrypt,
                          bool derive, bool wrap, bool extractable) {
  pkcs11::KeyTemplate t(16);
  t.sensitive(true).extractable(extractable).sign(sign).decrypt(decrypt).derive(derive).wrap(wrap);
  t.value(pkcs11::SecretBytes(hex(value)));
  return s.create_key(t);
}

Failure kat_failed(std::string_view which) {
  return fail(Status::internal,
              "self-test failed: " + std::string(which) + " does not match its known answer");
}

bool same(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  return pkcs11::constant_time_equal(a, b);
}

}  // namespace

Result<Ok> self_test(pkcs11::Session& s) {
  try {
    {  // RFC 4493 §4, example 2: AES-CMAC of one block.
      auto key = test_key(s, "2b7e151628aed2a6abf7158809cf4f3c", true, false, false, false, false);
      const auto mac = s.aes_cmac(key, hex("6bc1bee22e409f96e93d7e117393172a"));
      if (!same(mac, hex("070a16b46b4d4144f79bdd9dd04a287c"))) return kat_failed("AES-CMAC");
    }
    {  // RFC 3394 §4.1: 128-bit key wrapped under a 128-bit KEK.
      auto kek = test_key(s, "000102030405060708090A0B0C0D0E0F", false, false, false, true, false);
      auto key = test_key(s, "00112233445566778899AABBCCDDEEFF", false, false, false, false, true);
      const auto wrapped = s.wrap(pkcs11::WrapMechanism::rfc3394, kek, key);
      if (!same(wrapped, hex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"))) {
        return kat_failed("AES key wrap (RFC 3394)");
      }
    }
    {  // The Things Stack join_messages_test: 1.0 join-accept MIC and encryption.
      auto key = test_key(s, "01010101010101010101010101010101", true, true, false, false, false);
      const auto plain = hex("20030201030201040302010001");
      const auto mic = s.aes_cmac(key, plain);
      if (!same(std::span(mic).first(4), hex("32F54AB3"))) return kat_failed("join-accept MIC");
      Bytes body(plain.begin() + 1, plain.end());
      body.insert(body.end(), mic.begin(), mic.begin() + 4);
      const auto sealed = s.aes_ecb_decrypt(key, body);
      if (!same(sealed, hex("C9FBB259E11649096A568A9E3B7117C3"))) {
        return kat_failed("join-accept encryption");
      }
    }
    {  // The Things Stack key_derivation_test: JSIntKey derived in the token, checked by use.
      auto nwk = test_key(s, "BEC499C69E9C939E413B663961636C61", false, false, true, false, false);
      const auto dev_eui = lorawan::DevEui::from_hex("0042004213424341");
      if (!dev_eui) return kat_failed("DevEUI parsing");
      pkcs11::KeyTemplate t(16);
      t.sensitive(true).extractable(false).sign(true);
      auto derived = s.derive_aes_ecb(nwk, js_key_block(0x06, *dev_eui), t);
      auto expected =
          test_key(s, "CB8E9EE114C3FB5CE472A5AA13AB1855", true, false, false, false, false);
      const auto probe = hex("6c6f72616b6565702073656c66746573");
      if (!same(s.aes_cmac(derived, probe), s.aes_cmac(expected, probe))) {
        return kat_failed("JSIntKey derivation (CKM_AES_ECB_ENCRYPT_DATA)");
      }
    }
    return Ok{};
  } catch (const pkcs11::Error& e) {
    return token_failure(e, "self-test");
  }
}

}  // namespace lorakeep::appliance
