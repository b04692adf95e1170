#include "appliance/join.hpp"

#include <optional>
#include <string>
#include <utility>

#include "appliance/root_keys.hpp"
#include "appliance/session_key.hpp"
#include "appliance/templates.hpp"
#include "pkcs11/secret.hpp"

namespace lorakeep::appliance {
namespace {

using lorawan::DevNonce;
using lorawan::JoinAcceptFields;
using lorawan::MacVersion;

// Derivation prefixes (LoRaWAN 1.0.x §6.2.5, 1.1 §6.2.2).
constexpr std::uint8_t prefix_nwk_s_key = 0x01;  // 1.1: FNwkSIntKey
constexpr std::uint8_t prefix_app_s_key = 0x02;
constexpr std::uint8_t prefix_s_nwk_s_int_key = 0x03;
constexpr std::uint8_t prefix_nwk_s_enc_key = 0x04;
constexpr std::uint8_t prefix_js_enc_key = 0x05;
constexpr std::uint8_t prefix_js_int_key = 0x06;

Result<Ok> verify_mic(pkcs11::Session& session, pkcs11::KeyRef key,
                      std::span<const std::uint8_t> input, const lorawan::Mic& mic) {
  try {
    const auto full = session.aes_cmac(key, input);
    if (!pkcs11::constant_time_equal(std::span(full).first<4>(), mic)) {
      return fail(Status::mic_failed, "the MIC does not verify");
    }
    return Ok{};
  } catch (const pkcs11::Error& e) {
    return token_failure(e, "verifying the MIC");
  }
}

/// MHDR | AES-decrypt(enc_key, fields | MIC): the join-accept as the device receives it.
Result<std::vector<std::uint8_t>> seal_accept(pkcs11::Session& session, pkcs11::KeyRef mic_key,
                                              std::span<const std::uint8_t> mic_input,
                                              pkcs11::KeyRef enc_key,
                                              const JoinAcceptFields& fields) {
  try {
    const auto plain = fields.encode_without_mic();
    const auto mic = session.aes_cmac(mic_key, mic_input);
    std::vector<std::uint8_t> body(plain.begin() + 1, plain.end());
    body.insert(body.end(), mic.begin(), mic.begin() + 4);
    auto sealed = session.aes_ecb_decrypt(enc_key, body);
    sealed.insert(sealed.begin(), plain.front());
    return sealed;
  } catch (const pkcs11::Error& e) {
    return token_failure(e, "building the join-accept");
  }
}

/// The session keys of one activation and where they go.
struct KeyPlan {
  const Delivery* ns = nullptr;  // null only when !network
  const Delivery* as = nullptr;  // null: the AS gets no AppSKey in this answer
  bool store = false;
  // false: the AppSKey alone, derived again for an AS (app_s_key_only): no accept, no
  // network keys.
  bool network = true;
};

KeyPlan plan_of(const Delivery& ns, const std::optional<Delivery>& as, bool store,
                bool app_s_key_only) {
  return {app_s_key_only ? nullptr : &ns, as ? &*as : nullptr, store, !app_s_key_only};
}

Result<Ok> check_plan(const KeyPlan& plan) {
  if (!plan.network && !plan.as) {
    return fail(Status::malformed, "app_s_key_only needs the AS delivery (as)");
  }
  if (plan.network) {
    if (auto ok = check_delivery(*plan.ns, "Network Server"); !ok) return ok;
  }
  if (plan.as) {
    if (auto ok = check_delivery(*plan.as, "Application Server"); !ok) return ok;
  }
  return Ok{};
}

bool wants_plaintext(const Delivery* to) {
  return to && !to->kek_label && to->plaintext_allowed;
}

Result<KeyEnvelope> derive_and_deliver(pkcs11::Session& session, KeyDirectory& keys,
                                       pkcs11::KeyRef base,
                                       const std::array<std::uint8_t, 16>& block,
                                       const Delivery& to) {
  auto key = SessionKey::derive(session, base, block, keys.policy(), wants_plaintext(&to));
  if (!key) return key.failure();
  return key->deliver(session, keys, to);
}

/// AppSKey: derived once, then wrapped for the AS and for storage as asked.
Result<Ok> derive_app_s_key(pkcs11::Session& session, KeyDirectory& keys, pkcs11::KeyRef base,
                            const std::array<std::uint8_t, 16>& block, const KeyPlan& plan,
                            JoinOutput& out) {
  if (!plan.as && !plan.store) return Ok{};
  auto key = SessionKey::derive(session, base, block, keys.policy(), wants_plaintext(plan.as));
  if (!key) return key.failure();
  if (plan.as) {
    auto envelope = key->deliver(session, keys, *plan.as);
    if (!envelope) return envelope.failure();
    out.app_s_key = std::move(*envelope);
  }
  if (plan.store) {
    auto stored = key->store(session, keys);
    if (!stored) return stored.failure();
    out.stored_app_s_key = std::move(*stored);
  }
  return Ok{};
}

/// LoRaWAN 1.0.x session keys, also used by a 1.1 device when OptNeg is 0 (LoRaWAN 1.1
/// §6.2.3: it then derives as a 1.0 device, both keys from NwkKey).
Result<Ok> derive_1_0(pkcs11::Session& session, KeyDirectory& keys, pkcs11::KeyRef root,
                      const JoinAcceptFields& f, DevNonce dev_nonce, const KeyPlan& plan,
                      JoinOutput& out) {
  const auto net_id = f.net_id.air();
  if (plan.network) {
    auto nwk = derive_and_deliver(
        session, keys, root, session_key_block(prefix_nwk_s_key, f.join_nonce, net_id, dev_nonce),
        *plan.ns);
    if (!nwk) return nwk.failure();
    out.nwk_s_key = std::move(*nwk);
  }
  return derive_app_s_key(session, keys, root,
                          session_key_block(prefix_app_s_key, f.join_nonce, net_id, dev_nonce),
                          plan, out);
}

/// LoRaWAN 1.1 session keys (OptNeg set): three network keys from NwkKey, AppSKey from
/// AppKey, with the JoinEUI in place of the NetID.
Result<Ok> derive_1_1(pkcs11::Session& session, KeyDirectory& keys, pkcs11::KeyRef nwk_key,
                      pkcs11::KeyRef app_key, const lorawan::JoinEui& join_eui,
                      const JoinAcceptFields& f, DevNonce dev_nonce, const KeyPlan& plan,
                      JoinOutput& out) {
  const auto eui = join_eui.air();
  const std::pair<std::uint8_t, std::optional<KeyEnvelope>*> network[] = {
      {prefix_nwk_s_key, &out.f_nwk_s_int_key},
      {prefix_s_nwk_s_int_key, &out.s_nwk_s_int_key},
      {prefix_nwk_s_enc_key, &out.nwk_s_enc_key},
  };
  // Without network keys (app_s_key_only), the AppSKey alone.
  if (plan.network) {
    for (const auto& [prefix, slot] : network) {
      auto envelope =
          derive_and_deliver(session, keys, nwk_key,
                             session_key_block(prefix, f.join_nonce, eui, dev_nonce), *plan.ns);
      if (!envelope) return envelope.failure();
      *slot = std::move(*envelope);
    }
  }
  return derive_app_s_key(session, keys, app_key,
                          session_key_block(prefix_app_s_key, f.join_nonce, eui, dev_nonce), plan,
                          out);
}

Result<std::pair<pkcs11::OwnedKey, pkcs11::OwnedKey>> derive_js_keys(pkcs11::Session& session,
                                                                     pkcs11::KeyRef nwk_key,
                                                                     const lorawan::DevEui& dev_eui,
                                                                     bool with_enc) {
  try {
    auto js_int = session.derive_aes_ecb(nwk_key, js_key_block(prefix_js_int_key, dev_eui),
                                         templates::js_int_key());
    pkcs11::OwnedKey js_enc;
    if (with_enc) {
      js_enc = session.derive_aes_ecb(nwk_key, js_key_block(prefix_js_enc_key, dev_eui),
                                      templates::js_enc_key());
    }
    return std::pair{std::move(js_int), std::move(js_enc)};
  } catch (const pkcs11::Error& e) {
    return token_failure(e, "deriving the JS keys");
  }
}

Result<JoinOutput> join_1_0(pkcs11::Session& session, KeyDirectory& keys, const JoinInput& in,
                            const lorawan::JoinRequest& req, const KeyPlan& plan) {
  auto app_key = load_root_key(session, keys, in.root_keys, RootKeyKind::app_key,
                               {.sign = true, .decrypt = true, .derive = true});
  if (!app_key) return app_key.failure();
  const auto mic_input = req.mic_input();
  if (auto ok = verify_mic(session, *app_key, mic_input, req.mic); !ok) return ok.failure();
  JoinOutput out;
  if (plan.network) {
    const auto plain = in.accept.encode_without_mic();
    auto sealed = seal_accept(session, *app_key, plain, *app_key, in.accept);
    if (!sealed) return sealed.failure();
    out.join_accept = std::move(*sealed);
  }
  if (auto ok = derive_1_0(session, keys, *app_key, in.accept, req.dev_nonce, plan, out); !ok) {
    return ok.failure();
  }
  return out;
}

Result<JoinOutput> join_1_1(pkcs11::Session& session, KeyDirectory& keys, const JoinInput& in,
                            const lorawan::JoinRequest& req, const KeyPlan& plan) {
  const bool opt_neg = in.accept.dl_settings.opt_neg();
  auto nwk_key = load_root_key(session, keys, in.root_keys, RootKeyKind::nwk_key,
                               {.sign = true, .decrypt = true, .derive = true});
  if (!nwk_key) return nwk_key.failure();
  const auto request_mic_input = req.mic_input();
  if (auto ok = verify_mic(session, *nwk_key, request_mic_input, req.mic); !ok) {
    return ok.failure();
  }
  JoinOutput out;
  if (!opt_neg) {
    // The Network Server runs this 1.1 device as a 1.0 device.
    if (plan.network) {
      const auto plain = in.accept.encode_without_mic();
      auto sealed = seal_accept(session, *nwk_key, plain, *nwk_key, in.accept);
      if (!sealed) return sealed.failure();
      out.join_accept = std::move(*sealed);
    }
    if (auto ok = derive_1_0(session, keys, *nwk_key, in.accept, req.dev_nonce, plan, out); !ok) {
      return ok.failure();
    }
    return out;
  }
  auto app_key = load_root_key(session, keys, in.root_keys, RootKeyKind::app_key, {.derive = true});
  if (!app_key) return app_key.failure();
  if (plan.network) {
    auto js = derive_js_keys(session, *nwk_key, req.dev_eui, false);
    if (!js) return js.failure();
    const auto mic_input = lorawan::join_accept_mic_input_1_1(
        lorawan::join_req_type_join, req.join_eui, req.dev_nonce, in.accept);
    auto sealed = seal_accept(session, js->first, mic_input, *nwk_key, in.accept);
    if (!sealed) return sealed.failure();
    out.join_accept = std::move(*sealed);
  }
  if (auto ok = derive_1_1(session, keys, *nwk_key, *app_key, req.join_eui, in.accept,
                           req.dev_nonce, plan, out);
      !ok) {
    return ok.failure();
  }
  return out;
}

}  // namespace

Result<JoinOutput> join(pkcs11::Session& session, KeyDirectory& keys, const JoinInput& in) {
  const auto before = session.call_counts();
  auto req = lorawan::JoinRequest::parse(in.join_request);
  if (!req) return req.failure();
  const KeyPlan plan = plan_of(in.ns, in.as, in.store_app_s_key, in.app_s_key_only);
  if (auto ok = check_plan(plan); !ok) return ok.failure();
  auto out = lorawan::is_1_1(in.mac_version) ? join_1_1(session, keys, in, *req, plan)
                                             : join_1_0(session, keys, in, *req, plan);
  if (out) out->calls = session.call_counts() - before;
  return out;
}

Result<JoinOutput> rejoin(pkcs11::Session& session, KeyDirectory& keys, const RejoinInput& in) {
  const auto before = session.call_counts();
  auto req = lorawan::RejoinRequest::parse(in.rejoin_request);
  if (!req) return req.failure();
  if (req->type == 1 && req->join_eui != in.join_eui) {
    return fail(Status::malformed, "the rejoin-request's JoinEUI is not the device's");
  }
  if (!in.accept.dl_settings.opt_neg()) {
    return fail(Status::malformed, "a rejoin-accept is a LoRaWAN 1.1 frame: OptNeg must be set");
  }
  const KeyPlan plan = plan_of(in.ns, in.as, in.store_app_s_key, in.app_s_key_only);
  if (auto ok = check_plan(plan); !ok) return ok.failure();

  auto nwk_key = load_root_key(session, keys, in.root_keys, RootKeyKind::nwk_key, {.derive = true});
  if (!nwk_key) return nwk_key.failure();
  // JSIntKey signs a type 1 request and the accept; JSEncKey only encrypts the accept.
  std::optional<std::pair<pkcs11::OwnedKey, pkcs11::OwnedKey>> js;
  if (plan.network || req->type == 1) {
    auto derived = derive_js_keys(session, *nwk_key, req->dev_eui, plan.network);
    if (!derived) return derived.failure();
    js = std::move(*derived);
  }
  if (req->type == 1) {
    if (auto ok = verify_mic(session, js->first, req->mic_input(), req->mic); !ok) {
      return ok.failure();
    }
  }
  auto app_key = load_root_key(session, keys, in.root_keys, RootKeyKind::app_key, {.derive = true});
  if (!app_key) return app_key.failure();
  JoinOutput out;
  if (plan.network) {
    const auto mic_input =
        lorawan::join_accept_mic_input_1_1(req->type, in.join_eui, req->rj_count, in.accept);
    auto sealed = seal_accept(session, js->first, mic_input, js->second, in.accept);
    if (!sealed) return sealed.failure();
    out.join_accept = std::move(*sealed);
  }
  if (auto ok = derive_1_1(session, keys, *nwk_key, *app_key, in.join_eui, in.accept, req->rj_count,
                           plan, out);
      !ok) {
    return ok.failure();
  }
  out.calls = session.call_counts() - before;
  return out;
}

Result<RewrapOutput> rewrap_app_s_key(pkcs11::Session& session, KeyDirectory& keys,
                                      std::span<const std::uint8_t> stored, const Delivery& to) {
  const auto before = session.call_counts();
  if (auto ok = check_delivery(to, "Application Server"); !ok) return ok.failure();
  auto key = SessionKey::from_storage(session, keys, stored, wants_plaintext(&to));
  if (!key) return key.failure();
  auto envelope = key->deliver(session, keys, to);
  if (!envelope) return envelope.failure();
  return RewrapOutput{std::move(*envelope), session.call_counts() - before};
}

}  // namespace lorakeep::appliance
