// The attribute templates of every short-lived key the appliance creates, in one place, so
// that each role's policy (DESIGN.md §2) is written down once.
#pragma once

#include "appliance/keys.hpp"
#include "pkcs11/key_template.hpp"

namespace lorakeep::appliance::templates {

/// A device root key unwrapped (or part-derived) for one operation: sensitive, never
/// extractable, only the usages the operation needs.
struct RootUse {
  bool sign = false;     // join-request MIC, 1.0.x join-accept MIC
  bool decrypt = false;  // join-accept encryption (LoRaWAN encrypts with AES decrypt)
  bool derive = false;   // session keys, JS keys
};
pkcs11::KeyTemplate root_key(RootUse use);

/// A session key (NwkSKey, FNwkSIntKey, …, AppSKey): no usage at all, extractable only to
/// be wrapped. `plaintext` makes it non-sensitive, for a peer configured to receive keys
/// in the clear — the only way a key value ever leaves the token unwrapped.
pkcs11::KeyTemplate session_key(const Policy& policy, bool plaintext);

/// JSIntKey: CMAC only. JSEncKey: AES-ECB decrypt only (rejoin-accept encryption).
pkcs11::KeyTemplate js_int_key();
pkcs11::KeyTemplate js_enc_key();

/// A device root key on its way into the registry (key import): extractable so that the
/// storage key can wrap it, no usage.
pkcs11::KeyTemplate importing_root_key(const Policy& policy);

}  // namespace lorakeep::appliance::templates
