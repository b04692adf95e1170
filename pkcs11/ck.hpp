// The PKCS#11 C header, included in one place. Only files under pkcs11/ include this.
#pragma once

#include <p11-kit/pkcs11.h>
