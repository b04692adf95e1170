#include "appliance/templates.hpp"

#include <vector>

namespace lorakeep::appliance::templates {

pkcs11::KeyTemplate root_key(RootUse use) {
  std::vector<CK_MECHANISM_TYPE> mechanisms;
  if (use.sign) mechanisms.push_back(CKM_AES_CMAC);
  if (use.decrypt) mechanisms.push_back(CKM_AES_ECB);
  if (use.derive) mechanisms.push_back(CKM_AES_ECB_ENCRYPT_DATA);
  pkcs11::KeyTemplate t(16);
  t.sensitive(true).extractable(false).sign(use.sign).decrypt(use.decrypt).derive(use.derive);
  t.allowed_mechanisms(std::move(mechanisms));
  return t;
}

pkcs11::KeyTemplate session_key(const Policy& policy, bool plaintext) {
  pkcs11::KeyTemplate t(16);
  t.sensitive(!plaintext).extractable(true);
  if (policy.trusted_keks) t.wrap_with_trusted(true);
  return t;
}

pkcs11::KeyTemplate js_int_key() {
  pkcs11::KeyTemplate t(16);
  t.sensitive(true).extractable(false).sign(true).allowed_mechanisms({CKM_AES_CMAC});
  return t;
}

pkcs11::KeyTemplate js_enc_key() {
  pkcs11::KeyTemplate t(16);
  t.sensitive(true).extractable(false).decrypt(true).allowed_mechanisms({CKM_AES_ECB});
  return t;
}

pkcs11::KeyTemplate importing_root_key(const Policy& policy) {
  pkcs11::KeyTemplate t(16);
  t.sensitive(true).extractable(true);
  if (policy.trusted_keks) t.wrap_with_trusted(true);
  return t;
}

}  // namespace lorakeep::appliance::templates
