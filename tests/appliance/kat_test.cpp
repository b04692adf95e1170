// Every published vector in tests/data/lorawan-join-kat.json, computed through the token
// (SoftHSMv2 or NSS softoken) by the appliance's own code paths (import, unwrap, derive,
// wrap), and the envelopes opened with OpenSSL.
#include <doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "appliance/root_keys.hpp"
#include "appliance/session_key.hpp"
#include "fixture.hpp"

using namespace lorakeep;
using namespace lorakeep::test;
using nlohmann::json;

namespace {

json vectors() {
  std::ifstream in(data_path("lorawan-join-kat.json"));
  REQUIRE(in.good());
  return json::parse(in);
}

std::uint32_t u24(const std::string& hex) {
  return static_cast<std::uint32_t>(std::stoul(hex, nullptr, 16));
}
std::uint16_t u16(const std::string& hex) {
  return static_cast<std::uint16_t>(std::stoul(hex, nullptr, 16));
}

/// Derives with `base` and the block, delivers to the NS KEK, opens with OpenSSL.
Bytes derive_through_token(ApplianceFixture& f, pkcs11::KeyRef base, const Bytes& block) {
  std::array<std::uint8_t, 16> b{};
  std::copy(block.begin(), block.end(), b.begin());
  auto key = appliance::SessionKey::derive(f.session, base, b, f.keys.policy(), false);
  REQUIRE(key.ok());
  auto envelope = key->deliver(f.session, f.keys, f.to_ns);
  REQUIRE(envelope.ok());
  CHECK(envelope->aes_key.size() == 24);
  return f.open(*envelope);
}

pkcs11::OwnedKey loaded(ApplianceFixture& f, const Bytes& key, appliance::templates::RootUse use) {
  appliance::WrappedRootKeys root{f.wrap_root(key), f.wrap_root(key)};
  auto k = appliance::load_root_key(f.session, f.keys, root, appliance::RootKeyKind::app_key, use);
  REQUIRE(k.ok());
  return std::move(*k);
}

}  // namespace

TEST_CASE("session key vectors (The Things Stack) derive in the token") {
  ApplianceFixture f;
  const auto all = vectors()["session_keys"];
  REQUIRE(all.size() >= 9);
  for (const auto& v : all) {
    const std::string vector_text = v.dump();
    CAPTURE(vector_text);
    const auto jn = u24(v["join_nonce"]);
    const auto dn = u16(v["dev_nonce"]);
    auto nwk = loaded(f, from_hex(v["nwk_key"].get<std::string>()), {.derive = true});
    const auto& expect = v["expect"];
    if (v["lorawan"] == "1.0") {
      const std::string net_id = v["net_id"];
      if (expect.contains("NwkSKey")) {
        CHECK(lorawan::to_hex(derive_through_token(f, nwk, block_1_0(0x01, jn, net_id, dn))) ==
              expect["NwkSKey"].get<std::string>());
      }
      if (expect.contains("AppSKey")) {
        CHECK(lorawan::to_hex(derive_through_token(f, nwk, block_1_0(0x02, jn, net_id, dn))) ==
              expect["AppSKey"].get<std::string>());
      }
    } else {
      const std::string eui = v["join_eui"];
      CHECK(lorawan::to_hex(derive_through_token(f, nwk, block_1_1(0x01, jn, eui, dn))) ==
            expect["FNwkSIntKey"].get<std::string>());
      CHECK(lorawan::to_hex(derive_through_token(f, nwk, block_1_1(0x03, jn, eui, dn))) ==
            expect["SNwkSIntKey"].get<std::string>());
      CHECK(lorawan::to_hex(derive_through_token(f, nwk, block_1_1(0x04, jn, eui, dn))) ==
            expect["NwkSEncKey"].get<std::string>());
      if (v.contains("app_key")) {
        auto app = loaded(f, from_hex(v["app_key"].get<std::string>()), {.derive = true});
        CHECK(lorawan::to_hex(derive_through_token(f, app, block_1_1(0x02, jn, eui, dn))) ==
              expect["AppSKey"].get<std::string>());
      }
    }
  }
}

TEST_CASE("JS key vectors derive in the token") {
  ApplianceFixture f;
  const auto all = vectors();
  for (const auto& v : all["js_keys"]) {
    const std::string vector_text = v.dump();
    CAPTURE(vector_text);
    auto nwk = loaded(f, from_hex(v["nwk_key"].get<std::string>()), {.derive = true});
    auto dev_eui = lorawan::DevEui::from_hex(v["dev_eui"].get<std::string>());
    REQUIRE(dev_eui.ok());
    const auto int_block = appliance::js_key_block(0x06, *dev_eui);
    const auto enc_block = appliance::js_key_block(0x05, *dev_eui);
    CHECK(
        lorawan::to_hex(derive_through_token(f, nwk, Bytes(int_block.begin(), int_block.end()))) ==
        v["JSIntKey"].get<std::string>());
    CHECK(
        lorawan::to_hex(derive_through_token(f, nwk, Bytes(enc_block.begin(), enc_block.end()))) ==
        v["JSEncKey"].get<std::string>());
  }
}

TEST_CASE("join-request, join-accept and rejoin MIC vectors through the token") {
  ApplianceFixture f;
  const auto all = vectors();
  for (const auto& v : all["join_request_mic"]) {
    const std::string vector_text = v.dump();
    CAPTURE(vector_text);
    auto key = loaded(f, from_hex(v["key"].get<std::string>()), {.sign = true});
    const auto mac = f.session.aes_cmac(key, from_hex(v["mic_input"].get<std::string>()));
    CHECK(lorawan::to_hex(std::span(mac).first(4)) == v["mic"].get<std::string>());
  }
  for (const auto& v : all["rejoin_mic"]) {
    const std::string vector_text = v.dump();
    CAPTURE(vector_text);
    auto key = loaded(f, from_hex(v["key"].get<std::string>()), {.sign = true});
    const auto mac = f.session.aes_cmac(key, from_hex(v["mic_input"].get<std::string>()));
    CHECK(lorawan::to_hex(std::span(mac).first(4)) == v["mic"].get<std::string>());
  }
  for (const auto& v : all["join_accept"]) {
    const std::string vector_text = v.dump();
    CAPTURE(vector_text);
    auto key = loaded(f, from_hex(v["key"].get<std::string>()), {.sign = true, .decrypt = true});
    auto plain = from_hex(v["plaintext_without_mic"].get<std::string>());
    Bytes mic_input;
    for (const auto& [name, value] : v.items()) {
      if (name.rfind("mic_prefix", 0) == 0) mic_input = from_hex(value.get<std::string>());
    }
    mic_input.insert(mic_input.end(), plain.begin(), plain.end());
    const auto mac = f.session.aes_cmac(key, mic_input);
    CHECK(lorawan::to_hex(std::span(mac).first(4)) == v["mic"].get<std::string>());
    if (v.contains("phy_payload")) {
      // Through the appliance's own join-accept builder: a 1.0.2 join whose accept fields
      // are those of the vector.
      auto parsed = lorawan::JoinAccept::parse_plaintext([&] {
        Bytes p = plain;
        p.insert(p.end(), mac.begin(), mac.begin() + 4);
        return p;
      }());
      REQUIRE(parsed.ok());
      appliance::JoinInput in;
      in.mac_version = lorawan::MacVersion::v1_0_2;
      const auto root = from_hex(v["key"].get<std::string>());
      in.join_request = make_join_request(root, "0102030405060708", "1112131415161718", 7);
      in.root_keys = appliance::WrappedRootKeys{f.wrap_root(root), {}};
      in.accept = parsed->fields;
      in.ns = f.to_ns;
      auto out = appliance::join(f.session, f.keys, in);
      REQUIRE(out.ok());
      CHECK(lorawan::to_hex(out->join_accept) == v["phy_payload"].get<std::string>());
    }
  }
}

TEST_CASE("the LoRaWAN 1.1 join flow vector end to end") {
  ApplianceFixture f;
  const auto all = vectors();
  for (const auto& v : all["join_flow"]) {
    const std::string vector_text = v.dump();
    CAPTURE(vector_text);
    appliance::JoinInput in;
    in.mac_version = lorawan::MacVersion::v1_1;
    in.join_request = from_hex(v["join_request"].get<std::string>());
    in.root_keys =
        appliance::WrappedRootKeys{f.wrap_root(from_hex(v["app_key"].get<std::string>())),
                                   f.wrap_root(from_hex(v["nwk_key"].get<std::string>()))};
    auto jn = lorawan::JoinNonce::create(u24(v["join_nonce"]));
    auto net_id = lorawan::NetId::from_hex(v["net_id"].get<std::string>());
    auto dev_addr = lorawan::DevAddr::from_hex(v["dev_addr"].get<std::string>());
    REQUIRE((jn.ok() && net_id.ok() && dev_addr.ok()));
    in.accept = {*jn,
                 *net_id,
                 *dev_addr,
                 lorawan::DlSettings{from_hex(v["dl_settings"].get<std::string>())[0]},
                 lorawan::RxDelay{from_hex(v["rx_delay"].get<std::string>())[0]},
                 std::nullopt};
    in.ns = f.to_ns;
    in.as = f.to_as;
    auto out = appliance::join(f.session, f.keys, in);
    REQUIRE_MESSAGE(out.ok(), (out.ok() ? "" : out.failure().message));
    CHECK(lorawan::to_hex(out->join_accept) == v["join_accept"].get<std::string>());
    const auto& e = v["expect"];
    REQUIRE((out->f_nwk_s_int_key && out->s_nwk_s_int_key && out->nwk_s_enc_key && out->app_s_key));
    CHECK(lorawan::to_hex(f.open(*out->f_nwk_s_int_key)) == e["FNwkSIntKey"].get<std::string>());
    CHECK(lorawan::to_hex(f.open(*out->s_nwk_s_int_key)) == e["SNwkSIntKey"].get<std::string>());
    CHECK(lorawan::to_hex(f.open(*out->nwk_s_enc_key)) == e["NwkSEncKey"].get<std::string>());
    CHECK(lorawan::to_hex(f.open(*out->app_s_key)) == e["AppSKey"].get<std::string>());
    CHECK_FALSE(out->nwk_s_key.has_value());
  }
}

TEST_CASE("self-test passes on the token") {
  TestToken token;
  auto session = token.user_session();
  auto result = appliance::self_test(session);
  CHECK_MESSAGE(result.ok(), (result.ok() ? "" : result.failure().message));
}
