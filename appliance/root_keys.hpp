// Device root keys (AppKey, NwkKey) brought into the token for one operation.
#pragma once

#include "appliance/join.hpp"
#include "appliance/keys.hpp"
#include "appliance/templates.hpp"
#include "pkcs11/session.hpp"
#include "schemas/result.hpp"

namespace lorakeep::appliance {

/// Unwraps the registry's copy under the storage key, or derives it from the part root key
/// and the serial, into a session object with only the usages in `use`. Destroyed when the
/// returned key goes out of scope.
Result<pkcs11::OwnedKey> load_root_key(pkcs11::Session& session, KeyDirectory& keys,
                                       const RootKeys& root, RootKeyKind kind,
                                       templates::RootUse use);

}  // namespace lorakeep::appliance
