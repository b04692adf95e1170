// The appliance's key policy as the test's token needs it. Header-only: tests/support links
// pkcs11/ alone, and only tests that use appliance/ include this.
#pragma once

#include "appliance/keys.hpp"
#include "token_fixture.hpp"

namespace lorakeep::test {

/// `base` with appliance::Policy::allowed_mechanisms off on NSS softoken, which cannot store
/// CKA_ALLOWED_MECHANISMS on token objects.
inline appliance::Policy token_policy(appliance::Policy base = {}) {
  base.allowed_mechanisms = token_kind() != TokenKind::nss;
  return base;
}

}  // namespace lorakeep::test
