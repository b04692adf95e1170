// The PKCS#11 C header, included in one place. Only files under pkcs11/ include this.
#pragma once

#include <p11-kit/pkcs11.h>

namespace lorakeep::pkcs11 {

/// CK_UNAVAILABLE_INFORMATION without the header's C-style cast (-Wold-style-cast).
inline constexpr CK_ULONG kUnavailableInformation = ~CK_ULONG{0};

}  // namespace lorakeep::pkcs11
