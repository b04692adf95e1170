// Joins, rejoins and AppSKey re-wraps through the appliance on the token (SoftHSMv2 or NSS
// softoken), checked against OpenSSL; the refusals (bad MIC, bad frames, key delivery
// policy) and the call counts.
#include <doctest.h>

#include "appliance/join.hpp"
#include "fixture.hpp"

using namespace lorakeep;
using namespace lorakeep::test;
using lorawan::MacVersion;

namespace {

constexpr const char* join_eui = "70B3D57ED0001234";
constexpr const char* dev_eui = "0004A30B001C0530";
constexpr const char* net_id = "000013";

lorawan::JoinAcceptFields fields(std::uint32_t join_nonce, std::uint8_t dl, bool cf_list) {
  lorawan::JoinAcceptFields f{*lorawan::JoinNonce::create(join_nonce),
                              *lorawan::NetId::from_hex(net_id),
                              *lorawan::DevAddr::from_hex("26011B5C"),
                              lorawan::DlSettings{dl},
                              lorawan::RxDelay{1},
                              std::nullopt};
  if (cf_list) f.cf_list = *lorawan::CfList::from_hex("184F84E85684B85E84886684586E8400");
  return f;
}

/// What a device computes for a 1.0.x-style accept (OpenSSL): MIC over MHDR|fields, then
/// AES-decrypt of fields|MIC.
Bytes expected_accept_1_0(const Bytes& key, const lorawan::JoinAcceptFields& f) {
  const auto plain = f.encode_without_mic();
  const auto mic = ref::aes_cmac(key, plain);
  Bytes body(plain.begin() + 1, plain.end());
  body.insert(body.end(), mic.begin(), mic.begin() + 4);
  auto sealed = ref::aes_ecb_decrypt(key, body);
  sealed.insert(sealed.begin(), plain.front());
  return sealed;
}

Bytes js_key(std::uint8_t prefix, const Bytes& nwk_key) {
  Bytes block{prefix};
  for (auto b : air(dev_eui))
    block.push_back(b);
  block.resize(16, 0);
  return ref::aes_ecb_encrypt(nwk_key, block);
}

Bytes js_enc_key(const Bytes& nwk_key) {
  return js_key(0x05, nwk_key);
}

Bytes js_int_key(const Bytes& nwk_key) {
  return js_key(0x06, nwk_key);
}

Bytes expected_accept_1_1(const Bytes& nwk_key, const Bytes& enc_key, std::uint8_t join_req_type,
                          std::uint16_t dev_nonce, const lorawan::JoinAcceptFields& f) {
  const auto js_int = js_int_key(nwk_key);
  Bytes mic_input{join_req_type};
  for (auto b : air(join_eui))
    mic_input.push_back(b);
  mic_input.push_back(static_cast<std::uint8_t>(dev_nonce & 0xFF));
  mic_input.push_back(static_cast<std::uint8_t>(dev_nonce >> 8));
  const auto plain = f.encode_without_mic();
  mic_input.insert(mic_input.end(), plain.begin(), plain.end());
  const auto mic = ref::aes_cmac(js_int, mic_input);
  Bytes body(plain.begin() + 1, plain.end());
  body.insert(body.end(), mic.begin(), mic.begin() + 4);
  auto sealed = ref::aes_ecb_decrypt(enc_key, body);
  sealed.insert(sealed.begin(), plain.front());
  return sealed;
}

/// A rejoin-request of `type` (type 1 signed with JSIntKey; types 0/2 with SNwkSIntKey,
/// which only the NS checks: a random key here).
Bytes make_rejoin(std::uint8_t type, std::uint16_t rj, const Bytes& js_int) {
  Bytes phy{0xC0, type};
  const auto middle = type == 1 ? air(join_eui) : air(net_id);
  phy.insert(phy.end(), middle.begin(), middle.end());
  for (auto b : air(dev_eui))
    phy.push_back(b);
  phy.push_back(static_cast<std::uint8_t>(rj & 0xFF));
  phy.push_back(static_cast<std::uint8_t>(rj >> 8));
  const auto mic = ref::aes_cmac(type == 1 ? js_int : random_bytes(16), phy);
  phy.insert(phy.end(), mic.begin(), mic.begin() + 4);
  return phy;
}

std::string message(const Failure& f) {
  return f.message;
}

}  // namespace

TEST_CASE("LoRaWAN 1.0.x joins: accept, NwkSKey for the NS, AppSKey for the AS and storage") {
  ApplianceFixture f;
  for (auto version :
       {MacVersion::v1_0, MacVersion::v1_0_2, MacVersion::v1_0_3, MacVersion::v1_0_4}) {
    for (bool cf : {false, true}) {
      const std::string version_name(lorawan::mac_version_name(version));
      CAPTURE(version_name);
      CAPTURE(cf);
      const auto app_key = random_bytes(16);
      appliance::JoinInput in;
      in.mac_version = version;
      in.join_request = make_join_request(app_key, join_eui, dev_eui, 0x1234);
      in.root_keys = appliance::WrappedRootKeys{f.wrap_root(app_key), {}};
      in.accept = fields(0x00ABCD, 0x03, cf);
      in.ns = f.to_ns;
      in.as = f.to_as;
      auto out = appliance::join(f.session, f.keys, in);
      REQUIRE_MESSAGE(out.ok(), (out.ok() ? "" : message(out.failure())));
      CHECK(out->join_accept == expected_accept_1_0(app_key, in.accept));
      REQUIRE(out->nwk_s_key);
      CHECK(out->nwk_s_key->kek_label == "ns-kek");
      CHECK(f.open(*out->nwk_s_key) ==
            ref::aes_ecb_encrypt(app_key, block_1_0(0x01, 0x00ABCD, net_id, 0x1234)));
      REQUIRE(out->app_s_key);
      const auto app_s_key =
          ref::aes_ecb_encrypt(app_key, block_1_0(0x02, 0x00ABCD, net_id, 0x1234));
      CHECK(f.open(*out->app_s_key) == app_s_key);
      CHECK_FALSE(out->f_nwk_s_int_key);
      // The stored copy re-wraps to the same AppSKey for the AS (AppSKeyReq).
      REQUIRE(out->stored_app_s_key.size() == 24);
      auto rewrapped =
          appliance::rewrap_app_s_key(f.session, f.keys, out->stored_app_s_key, f.to_as);
      REQUIRE(rewrapped.ok());
      CHECK(f.open(rewrapped->app_s_key) == app_s_key);
    }
  }
}

TEST_CASE("LoRaWAN 1.1 joins with OptNeg, and the OptNeg=0 fallback") {
  ApplianceFixture f;
  const auto nwk_key = random_bytes(16);
  const auto app_key = random_bytes(16);
  appliance::JoinInput in;
  in.mac_version = MacVersion::v1_1;
  in.join_request = make_join_request(nwk_key, join_eui, dev_eui, 42);
  in.root_keys = appliance::WrappedRootKeys{f.wrap_root(app_key), f.wrap_root(nwk_key)};
  in.ns = f.to_ns;
  in.as = f.to_as;

  SUBCASE("OptNeg set") {
    in.accept = fields(7, 0x80, true);
    auto out = appliance::join(f.session, f.keys, in);
    REQUIRE_MESSAGE(out.ok(), (out.ok() ? "" : message(out.failure())));
    CHECK(out->join_accept == expected_accept_1_1(nwk_key, nwk_key, 0xFF, 42, in.accept));
    REQUIRE((out->f_nwk_s_int_key && out->s_nwk_s_int_key && out->nwk_s_enc_key && out->app_s_key));
    CHECK(f.open(*out->f_nwk_s_int_key) ==
          ref::aes_ecb_encrypt(nwk_key, block_1_1(1, 7, join_eui, 42)));
    CHECK(f.open(*out->s_nwk_s_int_key) ==
          ref::aes_ecb_encrypt(nwk_key, block_1_1(3, 7, join_eui, 42)));
    CHECK(f.open(*out->nwk_s_enc_key) ==
          ref::aes_ecb_encrypt(nwk_key, block_1_1(4, 7, join_eui, 42)));
    CHECK(f.open(*out->app_s_key) == ref::aes_ecb_encrypt(app_key, block_1_1(2, 7, join_eui, 42)));
    CHECK_FALSE(out->nwk_s_key);
  }
  SUBCASE("OptNeg clear: the device behaves as 1.0, keys from NwkKey") {
    in.accept = fields(7, 0x00, false);
    auto out = appliance::join(f.session, f.keys, in);
    REQUIRE(out.ok());
    CHECK(out->join_accept == expected_accept_1_0(nwk_key, in.accept));
    REQUIRE((out->nwk_s_key && out->app_s_key));
    CHECK(f.open(*out->nwk_s_key) == ref::aes_ecb_encrypt(nwk_key, block_1_0(1, 7, net_id, 42)));
    CHECK(f.open(*out->app_s_key) == ref::aes_ecb_encrypt(nwk_key, block_1_0(2, 7, net_id, 42)));
  }
}

TEST_CASE("a wrong MIC is refused before anything else happens") {
  ApplianceFixture f;
  const auto key = random_bytes(16);
  for (auto version : {MacVersion::v1_0_2, MacVersion::v1_1}) {
    appliance::JoinInput in;
    in.mac_version = version;
    in.join_request = make_join_request(random_bytes(16), join_eui, dev_eui, 1);  // other key
    in.root_keys = appliance::WrappedRootKeys{f.wrap_root(key), f.wrap_root(key)};
    in.accept = fields(1, version == MacVersion::v1_1 ? 0x80 : 0x00, false);
    in.ns = f.to_ns;
    auto out = appliance::join(f.session, f.keys, in);
    REQUIRE_FALSE(out.ok());
    CHECK(out.failure().status == Status::mic_failed);
    // MIC verification is the only crypto done: the root key unwrap and one CMAC.
  }
}

TEST_CASE("bad frames are rejected with a clear error") {
  ApplianceFixture f;
  const auto key = random_bytes(16);
  auto good = make_join_request(key, join_eui, dev_eui, 1);
  appliance::JoinInput in;
  in.root_keys = appliance::WrappedRootKeys{f.wrap_root(key), {}};
  in.accept = fields(1, 0, false);
  in.ns = f.to_ns;
  for (std::size_t n = 0; n < 40; ++n) {
    if (n == good.size()) continue;
    Bytes phy = good;
    phy.resize(n, 0);
    in.join_request = phy;
    auto out = appliance::join(f.session, f.keys, in);
    REQUIRE_FALSE(out.ok());
    CHECK(out.failure().status == Status::malformed);
    CHECK(out.failure().message.find("23") != std::string::npos);
  }
  in.join_request = good;
  in.join_request[0] = 0x20;  // MType join-accept
  auto wrong_type = appliance::join(f.session, f.keys, in);
  REQUIRE_FALSE(wrong_type.ok());
  CHECK(wrong_type.failure().status == Status::malformed);
  in.join_request[0] = 0x01;  // major version 1
  auto wrong_major = appliance::join(f.session, f.keys, in);
  REQUIRE_FALSE(wrong_major.ok());
  CHECK(wrong_major.failure().status == Status::malformed);
  // A stored root key that is not 24 bytes, or does not unwrap under the storage key.
  in.join_request = good;
  in.root_keys = appliance::WrappedRootKeys{random_bytes(16), {}};
  CHECK(appliance::join(f.session, f.keys, in).failure().status == Status::malformed);
  in.root_keys = appliance::WrappedRootKeys{random_bytes(24), {}};
  auto corrupt = appliance::join(f.session, f.keys, in);
  REQUIRE_FALSE(corrupt.ok());
  CHECK(corrupt.failure().status == Status::internal);
  CHECK(corrupt.failure().message.find("does not unwrap under the storage key") !=
        std::string::npos);
  CHECK(corrupt.failure().message.find("CKR_") != std::string::npos);
}

TEST_CASE("key delivery: a KEK, or plaintext only when allowed for that peer") {
  ApplianceFixture f;
  const auto key = random_bytes(16);
  appliance::JoinInput in;
  in.mac_version = MacVersion::v1_0_2;
  in.join_request = make_join_request(key, join_eui, dev_eui, 9);
  in.root_keys = appliance::WrappedRootKeys{f.wrap_root(key), {}};
  in.accept = fields(3, 0, false);

  in.ns = appliance::Delivery{std::nullopt, false};
  auto refused = appliance::join(f.session, f.keys, in);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.failure().status == Status::key_policy);

  in.ns = appliance::Delivery{std::string("nobody"), false};
  auto unknown = appliance::join(f.session, f.keys, in);
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.failure().status == Status::unknown_key);

  in.ns = appliance::Delivery{std::nullopt, true};
  in.as = appliance::Delivery{std::nullopt, true};
  auto plain = appliance::join(f.session, f.keys, in);
  REQUIRE(plain.ok());
  CHECK(plain->nwk_s_key->kek_label.empty());
  CHECK(plain->nwk_s_key->aes_key == ref::aes_ecb_encrypt(key, block_1_0(1, 3, net_id, 9)));
  CHECK(plain->app_s_key->aes_key == ref::aes_ecb_encrypt(key, block_1_0(2, 3, net_id, 9)));
  // AppSKeyReq to a plaintext AS.
  auto re = appliance::rewrap_app_s_key(f.session, f.keys, plain->stored_app_s_key,
                                        appliance::Delivery{std::nullopt, true});
  REQUIRE(re.ok());
  CHECK(re->app_s_key.aes_key == plain->app_s_key->aes_key);
  // A KEK label that is a part key or the storage key is not a KEK.
  auto not_kek = appliance::rewrap_app_s_key(f.session, f.keys, plain->stored_app_s_key,
                                             appliance::Delivery{std::string("../storage"), false});
  CHECK_FALSE(not_kek.ok());
}

TEST_CASE("rejoin types 0, 1 and 2") {
  ApplianceFixture f;
  const auto nwk_key = random_bytes(16);
  const auto app_key = random_bytes(16);
  const Bytes js_enc = js_enc_key(nwk_key);
  const Bytes js_int = js_int_key(nwk_key);

  for (std::uint8_t type : {std::uint8_t{0}, std::uint8_t{1}, std::uint8_t{2}}) {
    const int type_number = type;
    CAPTURE(type_number);
    const std::uint16_t rj = type == 1 ? 5 : 300;
    appliance::RejoinInput in;
    in.rejoin_request = make_rejoin(type, rj, js_int);
    in.join_eui = *lorawan::JoinEui::from_hex(join_eui);
    in.root_keys = appliance::WrappedRootKeys{f.wrap_root(app_key), f.wrap_root(nwk_key)};
    in.accept = fields(77, 0x80, type == 2);
    in.ns = f.to_ns;
    in.as = f.to_as;
    auto out = appliance::rejoin(f.session, f.keys, in);
    REQUIRE_MESSAGE(out.ok(), (out.ok() ? "" : message(out.failure())));
    CHECK(out->join_accept == expected_accept_1_1(nwk_key, js_enc, type, rj, in.accept));
    CHECK(f.open(*out->f_nwk_s_int_key) ==
          ref::aes_ecb_encrypt(nwk_key, block_1_1(1, 77, join_eui, rj)));
    CHECK(f.open(*out->app_s_key) == ref::aes_ecb_encrypt(app_key, block_1_1(2, 77, join_eui, rj)));

    if (type == 1) {
      auto bad = in;
      bad.rejoin_request.back() ^= 0x01;
      auto refused = appliance::rejoin(f.session, f.keys, bad);
      REQUIRE_FALSE(refused.ok());
      CHECK(refused.failure().status == Status::mic_failed);
      auto other_eui = in;
      other_eui.join_eui = *lorawan::JoinEui::from_hex("0000000000000001");
      CHECK(appliance::rejoin(f.session, f.keys, other_eui).failure().status == Status::malformed);
    }
  }
}

TEST_CASE("app_s_key_only: the AppSKey of an answered request, derived again for another KEK") {
  ApplianceFixture f;
  const auto nwk_key = random_bytes(16);
  const auto app_key = random_bytes(16);
  // The AS's KEK has changed: the key now goes under "ns-kek", which the test can open too.
  const appliance::Delivery new_kek{std::string("ns-kek"), false};
  using pkcs11::Fn;

  for (auto [version, dl] : {std::pair{MacVersion::v1_0_2, std::uint8_t{0x03}},
                             std::pair{MacVersion::v1_1, std::uint8_t{0x80}},
                             std::pair{MacVersion::v1_1, std::uint8_t{0x00}}}) {
    const std::string version_name(lorawan::mac_version_name(version));
    const int dl_settings = dl;
    CAPTURE(version_name);
    CAPTURE(dl_settings);
    const bool v1_1 = lorawan::is_1_1(version);
    appliance::JoinInput in;
    in.mac_version = version;
    in.join_request = make_join_request(v1_1 ? nwk_key : app_key, join_eui, dev_eui, 0x0102);
    appliance::WrappedRootKeys wrapped{f.wrap_root(app_key), {}};
    if (v1_1) wrapped.nwk_key = f.wrap_root(nwk_key);
    in.root_keys = wrapped;
    in.accept = fields(0x000777, dl, false);
    in.ns = f.to_ns;
    in.as = f.to_as;
    in.store_app_s_key = false;
    auto joined = appliance::join(f.session, f.keys, in);
    REQUIRE(joined.ok());
    REQUIRE(joined->app_s_key);
    const auto app_s_key = f.open(*joined->app_s_key);
    // What a device computes (OpenSSL): 1.1 with OptNeg from AppKey and the JoinEUI, else
    // from the 1.0 root key (1.1 without OptNeg: NwkKey) and the NetID.
    const auto expected =
        v1_1 && (dl & 0x80) != 0
            ? ref::aes_ecb_encrypt(app_key, block_1_1(2, 0x000777, join_eui, 0x0102))
            : ref::aes_ecb_encrypt(v1_1 ? nwk_key : app_key,
                                   block_1_0(2, 0x000777, net_id, 0x0102));
    CHECK(app_s_key == expected);

    auto again_in = in;
    again_in.app_s_key_only = true;
    again_in.ns = appliance::Delivery{};  // ignored: no network key is derived
    again_in.as = new_kek;
    again_in.accept = fields(0x000777, dl, false);
    again_in.accept.dev_addr = *lorawan::DevAddr::from_hex("00000000");  // not used
    auto again = appliance::join(f.session, f.keys, again_in);
    REQUIRE_MESSAGE(again.ok(), (again.ok() ? "" : message(again.failure())));
    REQUIRE(again->app_s_key);
    CHECK(again->app_s_key->kek_label == "ns-kek");
    CHECK(f.open(*again->app_s_key) == expected);
    CHECK(again->join_accept.empty());
    CHECK_FALSE(again->nwk_s_key);
    CHECK_FALSE(again->f_nwk_s_int_key);
    CHECK(again->stored_app_s_key.empty());
    // The MIC check, one derivation, one wrap, besides the root-key unwraps.
    CHECK(again->calls.crypto() - again->calls.of(Fn::UnwrapKey) == 3);

    // A request that does not verify under the root keys (they were replaced) is refused.
    auto replaced = again_in;
    replaced.root_keys =
        appliance::WrappedRootKeys{f.wrap_root(random_bytes(16)), f.wrap_root(random_bytes(16))};
    auto refused = appliance::join(f.session, f.keys, replaced);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.failure().status == Status::mic_failed);
    // Without an AS to deliver to there is nothing to do.
    auto nowhere = again_in;
    nowhere.as.reset();
    auto malformed = appliance::join(f.session, f.keys, nowhere);
    REQUIRE_FALSE(malformed.ok());
    CHECK(malformed.failure().status == Status::malformed);
  }

  SUBCASE("rejoins, types 0 and 1") {
    const Bytes js_int = js_int_key(nwk_key);
    for (std::uint8_t type : {std::uint8_t{0}, std::uint8_t{1}}) {
      const int type_number = type;
      CAPTURE(type_number);
      const std::uint16_t rj = type == 1 ? 9 : 400;
      appliance::RejoinInput in;
      in.rejoin_request = make_rejoin(type, rj, js_int);
      in.join_eui = *lorawan::JoinEui::from_hex(join_eui);
      in.root_keys = appliance::WrappedRootKeys{f.wrap_root(app_key), f.wrap_root(nwk_key)};
      in.accept = fields(88, 0x80, false);
      in.as = new_kek;
      in.store_app_s_key = false;
      in.app_s_key_only = true;
      auto out = appliance::rejoin(f.session, f.keys, in);
      REQUIRE_MESSAGE(out.ok(), (out.ok() ? "" : message(out.failure())));
      REQUIRE(out->app_s_key);
      CHECK(f.open(*out->app_s_key) ==
            ref::aes_ecb_encrypt(app_key, block_1_1(2, 88, join_eui, rj)));
      CHECK(out->join_accept.empty());
      CHECK_FALSE(out->f_nwk_s_int_key);
      if (type == 1) {
        auto bad = in;
        bad.rejoin_request.back() ^= 0x01;
        CHECK(appliance::rejoin(f.session, f.keys, bad).failure().status == Status::mic_failed);
      }
    }
  }
}

TEST_CASE("secure-element parts: root keys derived from the part key and the serial") {
  ApplianceFixture f;
  const auto part_key = random_bytes(16);
  REQUIRE(appliance::import_key(f.session, appliance::KeyRole::part, "SE-050",
                                pkcs11::SecretBytes(part_key), f.keys.policy())
              .ok());
  const Bytes serial = from_hex("0102030405060708");
  auto block = appliance::derive_part_block(appliance::RootKeyKind::app_key, serial);
  REQUIRE(block.ok());
  CHECK(lorawan::to_hex(*block) ==
        "4C4B01080102030405060708"
        "00000000");
  const auto app_key = ref::aes_ecb_encrypt(part_key, *block);

  appliance::JoinInput in;
  in.mac_version = MacVersion::v1_0_4;
  in.join_request = make_join_request(app_key, join_eui, dev_eui, 11);
  in.root_keys = appliance::PartRootKeys{"SE-050", serial};
  in.accept = fields(5, 0, false);
  in.ns = f.to_ns;
  auto out = appliance::join(f.session, f.keys, in);
  REQUIRE_MESSAGE(out.ok(), (out.ok() ? "" : message(out.failure())));
  CHECK(out->join_accept == expected_accept_1_0(app_key, in.accept));

  in.root_keys = appliance::PartRootKeys{"SE-999", serial};
  CHECK(appliance::join(f.session, f.keys, in).failure().status == Status::unknown_key);
  CHECK_FALSE(appliance::derive_part_block(appliance::RootKeyKind::app_key, Bytes(13, 1)).ok());
  CHECK_FALSE(appliance::derive_part_block(appliance::RootKeyKind::app_key, Bytes{}).ok());
}

TEST_CASE("PKCS#11 calls per operation") {
  ApplianceFixture f;
  const auto key = random_bytes(16);
  appliance::JoinInput in;
  in.mac_version = MacVersion::v1_0_2;
  in.join_request = make_join_request(key, join_eui, dev_eui, 2);
  in.root_keys = appliance::WrappedRootKeys{f.wrap_root(key), f.wrap_root(key)};
  in.accept = fields(1, 0, false);
  in.ns = f.to_ns;
  // Warm the key directory (token object look-ups are cached after the first use).
  REQUIRE(appliance::join(f.session, f.keys, in).ok());

  auto out = appliance::join(f.session, f.keys, in);
  REQUIRE(out.ok());
  using pkcs11::Fn;
  // 1.0.x, NS key + stored AppSKey: MIC check, accept MIC, accept encryption, two
  // derivations, two wraps = 7 crypto calls besides the one root-key unwrap.
  CHECK(out->calls.of(Fn::UnwrapKey) == 1);
  CHECK(out->calls.crypto() - out->calls.of(Fn::UnwrapKey) == 7);
  CHECK(out->calls.of(Fn::FindObjectsInit) == 0);

  in.mac_version = MacVersion::v1_1;
  in.join_request = make_join_request(key, join_eui, dev_eui, 3);
  in.accept = fields(2, 0x80, false);
  out = appliance::join(f.session, f.keys, in);
  REQUIRE(out.ok());
  // 1.1: MIC check, JSIntKey, accept MIC, encryption, four derivations, three NS wraps and
  // the storage wrap = 12, besides unwrapping NwkKey and AppKey once each.
  CHECK(out->calls.of(Fn::UnwrapKey) == 2);
  CHECK(out->calls.crypto() - out->calls.of(Fn::UnwrapKey) == 12);
}

TEST_CASE("key import: a root key wrapped under a transport KEK joins like the original") {
  ApplianceFixture f;
  const auto transport = random_bytes(16);
  REQUIRE(appliance::import_key(f.session, appliance::KeyRole::transport, "factory-1",
                                pkcs11::SecretBytes(transport), f.keys.policy())
              .ok());
  const auto app_key = random_bytes(16);
  // The manufacturer's side: RFC 3394 under the transport KEK, done here with OpenSSL.
  const auto shipped = ref::aes_key_wrap(transport, app_key);
  auto stored = appliance::import_wrapped_root_key(f.session, f.keys, "factory-1", shipped);
  REQUIRE_MESSAGE(stored.ok(), (stored.ok() ? "" : stored.failure().message));
  CHECK(stored->size() == 24);
  CHECK(*stored != shipped);

  appliance::JoinInput in;
  in.mac_version = MacVersion::v1_0_3;
  in.join_request = make_join_request(app_key, join_eui, dev_eui, 77);
  in.root_keys = appliance::WrappedRootKeys{*stored, {}};
  in.accept = fields(9, 0, false);
  in.ns = f.to_ns;
  auto out = appliance::join(f.session, f.keys, in);
  REQUIRE_MESSAGE(out.ok(), (out.ok() ? "" : message(out.failure())));
  CHECK(out->join_accept == expected_accept_1_0(app_key, in.accept));

  // A tampered shipment, an unknown transport KEK, a KEK of the wrong role, a short input.
  auto tampered = shipped;
  tampered[5] ^= 0x40;
  CHECK_FALSE(appliance::import_wrapped_root_key(f.session, f.keys, "factory-1", tampered).ok());
  CHECK(appliance::import_wrapped_root_key(f.session, f.keys, "factory-2", shipped)
            .failure()
            .status == Status::unknown_key);
  CHECK(appliance::import_wrapped_root_key(f.session, f.keys, "ns-kek", shipped).failure().status ==
        Status::unknown_key);
  CHECK(appliance::import_wrapped_root_key(f.session, f.keys, "factory-1", Bytes(16, 0))
            .failure()
            .status == Status::malformed);
  // A plaintext root key of the wrong size.
  CHECK(appliance::import_root_key(f.session, f.keys, pkcs11::SecretBytes(random_bytes(32)))
            .failure()
            .status == Status::malformed);
}
