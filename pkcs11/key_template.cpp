#include "pkcs11/key_template.hpp"

#include <utility>

namespace lorakeep::pkcs11 {

KeyTemplate::KeyTemplate(CK_ULONG value_len) : value_len_(value_len) {}

namespace {

constexpr CK_BBOOL to_bbool(bool on) noexcept {
  return on ? CK_TRUE : CK_FALSE;
}

// The C API takes non-const pointers even for input templates; the token only reads them.
template <typename T>
CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE type, const T& value) noexcept {
  return {type, const_cast<T*>(&value), sizeof(T)};
}

}  // namespace

KeyTemplate& KeyTemplate::label(std::string value) {
  label_ = std::move(value);
  has_label_ = true;
  return *this;
}

KeyTemplate& KeyTemplate::token(bool on) {
  flags_.token = to_bbool(on);
  return *this;
}
KeyTemplate& KeyTemplate::private_object(bool on) {
  flags_.private_object = to_bbool(on);
  return *this;
}
KeyTemplate& KeyTemplate::sensitive(bool on) {
  flags_.sensitive = to_bbool(on);
  return *this;
}
KeyTemplate& KeyTemplate::extractable(bool on) {
  flags_.extractable = to_bbool(on);
  return *this;
}
KeyTemplate& KeyTemplate::encrypt(bool on) {
  flags_.encrypt = to_bbool(on);
  return *this;
}
KeyTemplate& KeyTemplate::decrypt(bool on) {
  flags_.decrypt = to_bbool(on);
  return *this;
}
KeyTemplate& KeyTemplate::sign(bool on) {
  flags_.sign = to_bbool(on);
  return *this;
}
KeyTemplate& KeyTemplate::verify(bool on) {
  flags_.verify = to_bbool(on);
  return *this;
}
KeyTemplate& KeyTemplate::wrap(bool on) {
  flags_.wrap = to_bbool(on);
  return *this;
}
KeyTemplate& KeyTemplate::unwrap(bool on) {
  flags_.unwrap = to_bbool(on);
  return *this;
}
KeyTemplate& KeyTemplate::derive(bool on) {
  flags_.derive = to_bbool(on);
  return *this;
}
KeyTemplate& KeyTemplate::trusted(bool on) {
  flags_.trusted = to_bbool(on);
  flags_.trusted_set = true;
  return *this;
}
KeyTemplate& KeyTemplate::wrap_with_trusted(bool on) {
  flags_.wrap_with_trusted = to_bbool(on);
  flags_.wrap_with_trusted_set = true;
  return *this;
}

KeyTemplate& KeyTemplate::allowed_mechanisms(std::vector<CK_MECHANISM_TYPE> mechanisms) {
  mechanisms_ = std::move(mechanisms);
  return *this;
}

KeyTemplate& KeyTemplate::value(SecretBytes key) {
  value_ = std::move(key);
  return *this;
}

std::vector<CK_ATTRIBUTE> KeyTemplate::attributes(bool with_length) const {
  std::vector<CK_ATTRIBUTE> out;
  out.reserve(20);
  out.push_back(attr(CKA_CLASS, class_));
  out.push_back(attr(CKA_KEY_TYPE, key_type_));
  if (with_length) out.push_back(attr(CKA_VALUE_LEN, value_len_));
  if (has_label_) {
    out.push_back({CKA_LABEL, const_cast<char*>(label_.data()), label_.size()});
  }
  out.push_back(attr(CKA_TOKEN, flags_.token));
  out.push_back(attr(CKA_PRIVATE, flags_.private_object));
  out.push_back(attr(CKA_SENSITIVE, flags_.sensitive));
  out.push_back(attr(CKA_EXTRACTABLE, flags_.extractable));
  out.push_back(attr(CKA_ENCRYPT, flags_.encrypt));
  out.push_back(attr(CKA_DECRYPT, flags_.decrypt));
  out.push_back(attr(CKA_SIGN, flags_.sign));
  out.push_back(attr(CKA_VERIFY, flags_.verify));
  out.push_back(attr(CKA_WRAP, flags_.wrap));
  out.push_back(attr(CKA_UNWRAP, flags_.unwrap));
  out.push_back(attr(CKA_DERIVE, flags_.derive));
  // Sent only on request: a user session may not set CKA_TRUSTED at all, even to false,
  // and tokens without CKA_WRAP_WITH_TRUSTED refuse an attribute they do not know.
  if (flags_.trusted_set) out.push_back(attr(CKA_TRUSTED, flags_.trusted));
  if (flags_.wrap_with_trusted_set) {
    out.push_back(attr(CKA_WRAP_WITH_TRUSTED, flags_.wrap_with_trusted));
  }
  if (!mechanisms_.empty()) {
    out.push_back({CKA_ALLOWED_MECHANISMS, const_cast<CK_MECHANISM_TYPE*>(mechanisms_.data()),
                   mechanisms_.size() * sizeof(CK_MECHANISM_TYPE)});
  }
  if (value_) {
    const auto bytes = value_->reveal();
    out.push_back({CKA_VALUE, const_cast<std::uint8_t*>(bytes.data()), bytes.size()});
  }
  return out;
}

}  // namespace lorakeep::pkcs11
