// Known answers through the real PKCS#11 path (SoftHSMv2 or NSS softoken): AES-CMAC (RFC
// 4493), AES key wrap (RFC 3394), AES-ECB (FIPS-197) and key derivation by
// CKM_AES_ECB_ENCRYPT_DATA; and the mechanisms lorakeep avoids, and why.
#include <doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "pkcs11/error.hpp"
#include "token_fixture.hpp"

using namespace lorakeep;
using namespace lorakeep::pkcs11;
using test::from_hex;

namespace {

nlohmann::json kat(const char* section) {
  std::ifstream in(test::data_path("lorawan-join-kat.json"));
  REQUIRE(in.good());
  return nlohmann::json::parse(in).at(section);
}

std::vector<std::uint8_t> hex_field(const nlohmann::json& v, const char* name) {
  return from_hex(v.at(name).get<std::string>());
}

// An encrypt-only session key holding `value`, to compare other keys against by use.
OwnedKey encryption_key(Session& s, const std::vector<std::uint8_t>& value) {
  return s.create_key(KeyTemplate(value.size()).encrypt(true).value(SecretBytes(value)));
}

// Two keys are equal when they encrypt a random block alike (their values stay unread).
bool same_key(Session& s, KeyRef a, KeyRef b) {
  const auto block = test::random_bytes(16);
  return s.aes_ecb_encrypt(a, block) == s.aes_ecb_encrypt(b, block);
}

// FIPS-197 appendix C.1.
std::vector<std::uint8_t> fips_key() {
  return from_hex("000102030405060708090a0b0c0d0e0f");
}
std::vector<std::uint8_t> fips_plain() {
  return from_hex("00112233445566778899aabbccddeeff");
}
std::vector<std::uint8_t> fips_cipher() {
  return from_hex("69c4e0d86a7b0430d8cdb78070b4c55a");
}

}  // namespace

TEST_CASE("AES-CMAC matches RFC 4493") {
  test::TestToken token;
  auto s = token.user_session();
  const auto vectors = kat("cmac");
  REQUIRE(vectors.size() >= 3);
  for (const auto& v : vectors) {
    const auto key = hex_field(v, "key");
    const auto message = hex_field(v, "message");
    CAPTURE(message.size());
    const OwnedKey k = s.create_key(KeyTemplate(16).sign(true).value(SecretBytes(key)));
    const auto mac = s.aes_cmac(k, message);
    CHECK(test::to_hex(mac) == test::to_hex(hex_field(v, "cmac")));
  }
}

TEST_CASE("AES-CMAC twice in a row on one session") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey k = s.generate_aes_key(KeyTemplate(16).sign(true).sensitive(true));
  const auto data = test::random_bytes(37);
  CHECK(s.aes_cmac(k, data) == s.aes_cmac(k, data));
}

TEST_CASE("AES key wrap matches RFC 3394 both ways") {
  test::TestToken token;
  auto s = token.user_session();
  const auto vectors = kat("key_wrap");
  REQUIRE(vectors.size() >= 2);
  for (const auto& v : vectors) {
    const auto kek_value = hex_field(v, "kek");
    const auto key_value = hex_field(v, "key");
    const auto wrapped = hex_field(v, "wrapped");
    CAPTURE(v.at("source").get<std::string>());
    const OwnedKey kek = s.create_key(
        KeyTemplate(kek_value.size()).wrap(true).unwrap(true).value(SecretBytes(kek_value)));
    const OwnedKey key =
        s.create_key(KeyTemplate(16).encrypt(true).extractable(true).value(SecretBytes(key_value)));

    CHECK(test::to_hex(s.wrap(WrapMechanism::rfc3394, kek, key)) == test::to_hex(wrapped));

    const OwnedKey unwrapped =
        s.unwrap(WrapMechanism::rfc3394, kek, wrapped, KeyTemplate(16).encrypt(true));
    CHECK(same_key(s, unwrapped, key));
  }
}

TEST_CASE("AES-ECB matches FIPS-197 and decrypts back") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey k =
      s.create_key(KeyTemplate(16).encrypt(true).decrypt(true).value(SecretBytes(fips_key())));
  CHECK(s.aes_ecb_encrypt(k, fips_plain()) == fips_cipher());
  CHECK(s.aes_ecb_decrypt(k, fips_cipher()) == fips_plain());

  const auto blocks = test::random_bytes(64);
  CHECK(s.aes_ecb_decrypt(k, s.aes_ecb_encrypt(k, blocks)) == blocks);
}

TEST_CASE("AES-ECB refuses partial blocks before calling the token") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey k = s.generate_aes_key(KeyTemplate(16).encrypt(true).decrypt(true));
  const CallCounts before = s.call_counts();
  for (const std::size_t n : {0UL, 1UL, 15UL, 17UL, 33UL}) {
    CAPTURE(n);
    const std::vector<std::uint8_t> data(n);
    try {
      (void)s.aes_ecb_encrypt(k, data);
      FAIL("no exception");
    } catch (const Error& e) {
      CHECK(e.error_class() == ErrorClass::bad_input);
    }
    CHECK_THROWS_AS((void)s.aes_ecb_decrypt(k, data), Error);
  }
  CHECK((s.call_counts() - before).total() == 0);
  CHECK_FALSE(s.lost());
}

TEST_CASE("derive_aes_ecb gives the key AES-ECB(base, data), shown by using it") {
  test::TestToken token;
  auto s = token.user_session();

  SUBCASE("known answer: FIPS-197 key and block") {
    const OwnedKey base =
        s.create_key(KeyTemplate(16).derive(true).sensitive(true).value(SecretBytes(fips_key())));
    const auto plain = fips_plain();
    const std::span<const std::uint8_t, 16> data(plain.data(), 16);
    const OwnedKey derived = s.derive_aes_ecb(base, data, KeyTemplate(16).encrypt(true));
    const OwnedKey expected = encryption_key(s, fips_cipher());
    CHECK(same_key(s, derived, expected));
  }

  SUBCASE("a generated base key, the expected value computed in the token") {
    const OwnedKey base = s.generate_aes_key(
        KeyTemplate(16).derive(true).encrypt(true).sensitive(true).extractable(false));
    const auto data_bytes = test::random_bytes(16);
    const std::span<const std::uint8_t, 16> data(data_bytes.data(), 16);
    const OwnedKey derived =
        s.derive_aes_ecb(base, data, KeyTemplate(16).encrypt(true).sensitive(true));
    const OwnedKey expected = encryption_key(s, s.aes_ecb_encrypt(base, data_bytes));
    CHECK(same_key(s, derived, expected));

    // A different input gives a different key.
    auto other_bytes = data_bytes;
    other_bytes[0] ^= 1U;
    const std::span<const std::uint8_t, 16> other(other_bytes.data(), 16);
    const OwnedKey derived2 =
        s.derive_aes_ecb(base, other, KeyTemplate(16).encrypt(true).sensitive(true));
    CHECK_FALSE(same_key(s, derived2, expected));
  }
}

TEST_CASE("CKM_AES_KEY_WRAP_PAD round-trips, in another format on each token") {
  test::TestToken token;
  auto s = token.user_session();
  const OwnedKey kek = s.generate_aes_key(KeyTemplate(32).wrap(true).unwrap(true).sensitive(true));
  for (const CK_ULONG len : {16UL, 32UL}) {
    CAPTURE(len);
    const OwnedKey key =
        s.generate_aes_key(KeyTemplate(len).encrypt(true).extractable(true).sensitive(true));
    const auto wrapped = s.wrap(WrapMechanism::pad, kek, key);
    // SoftHSMv2: RFC 5649, 8 bytes of integrity data and no padding for whole blocks. NSS:
    // PKCS#7 padding to a multiple of 8 (a whole 8 bytes here), then RFC 3394. Hence
    // lorakeep wraps keys with CKM_AES_KEY_WRAP only.
    CHECK(wrapped.size() == (token.kind() == test::TokenKind::softhsm ? len + 8 : len + 16));
    const OwnedKey back =
        s.unwrap(WrapMechanism::pad, kek, wrapped, KeyTemplate(len).encrypt(true));
    // Compared by use: SoftHSMv2 2.6.1 leaves CKA_VALUE_LEN at 0 on unwrapped keys.
    CHECK(same_key(s, back, key));
  }
}

TEST_CASE("CKM_AES_CMAC by C_Sign works on every token; C_Verify and CMAC_GENERAL do not") {
  test::TestToken token;
  auto s = token.user_session();
  const auto vectors = kat("cmac");
  const auto& v = vectors.at(1);
  const OwnedKey k =
      s.create_key(KeyTemplate(16).sign(true).verify(true).value(SecretBytes(hex_field(v, "key"))));
  const auto message = hex_field(v, "message");
  const auto mac = s.aes_cmac(k, message);
  CHECK(test::to_hex(mac) == test::to_hex(hex_field(v, "cmac")));

  // Why lorakeep signs and compares the first 4 bytes itself (DESIGN.md §2): C_VerifyInit
  // with CKM_AES_CMAC is refused by NSS, and 4-byte CKM_AES_CMAC_GENERAL by both tokens.
  CK_FUNCTION_LIST_PTR f = token.module().functions();
  CK_MECHANISM cmac{CKM_AES_CMAC, nullptr, 0};
  const CK_RV verify = f->C_VerifyInit(s.handle(), &cmac, k.handle());
  if (verify == CKR_OK) {
    CHECK(token.kind() == test::TokenKind::softhsm);
    CHECK(f->C_Verify(s.handle(), const_cast<CK_BYTE_PTR>(message.data()), message.size(),
                      const_cast<CK_BYTE_PTR>(mac.data()), mac.size()) == CKR_OK);
  } else {
    CHECK(token.kind() == test::TokenKind::nss);
    CHECK(verify == CKR_MECHANISM_INVALID);
  }
  CK_ULONG four = 4;  // CK_MAC_GENERAL_PARAMS: the MAC length
  CK_MECHANISM general{CKM_AES_CMAC_GENERAL, &four, sizeof four};
  const CK_RV rv = f->C_SignInit(s.handle(), &general, k.handle());
  CHECK(rv == (token.kind() == test::TokenKind::softhsm ? CKR_MECHANISM_INVALID
                                                        : CKR_MECHANISM_PARAM_INVALID));
  // The session is still usable.
  CHECK(s.aes_cmac(k, message) == mac);
}

TEST_CASE("a mechanism is used even when C_GetMechanismInfo does not list it") {
  test::TestToken token;
  CK_FUNCTION_LIST_PTR f = token.module().functions();
  CK_MECHANISM_INFO info{};
  const CK_RV listed = f->C_GetMechanismInfo(token.slot(), CKM_AES_ECB_ENCRYPT_DATA, &info);
  // NSS does not list CKM_AES_ECB_ENCRYPT_DATA, SoftHSMv2 does; both derive with it.
  CHECK(listed == (token.kind() == test::TokenKind::softhsm ? CKR_OK : CKR_MECHANISM_INVALID));
  auto s = token.user_session();
  const OwnedKey base =
      s.create_key(KeyTemplate(16).derive(true).sensitive(true).value(SecretBytes(fips_key())));
  const auto plain = fips_plain();
  const OwnedKey derived = s.derive_aes_ecb(
      base, std::span<const std::uint8_t, 16>(plain.data(), 16), KeyTemplate(16).encrypt(true));
  const OwnedKey expected = encryption_key(s, fips_cipher());
  CHECK(same_key(s, derived, expected));
}
