// KeyTemplate: which attributes it sends. Every flag is explicit because tokens' defaults
// are permissive.
#include <doctest.h>

#include <algorithm>
#include <cstring>

#include "pkcs11/key_template.hpp"

using namespace lorakeep::pkcs11;

namespace {

const CK_ATTRIBUTE* find(const std::vector<CK_ATTRIBUTE>& attrs, CK_ATTRIBUTE_TYPE type) {
  const auto it = std::find_if(attrs.begin(), attrs.end(),
                               [&](const CK_ATTRIBUTE& a) { return a.type == type; });
  return it == attrs.end() ? nullptr : &*it;
}

std::size_t count(const std::vector<CK_ATTRIBUTE>& attrs, CK_ATTRIBUTE_TYPE type) {
  return static_cast<std::size_t>(std::count_if(
      attrs.begin(), attrs.end(), [&](const CK_ATTRIBUTE& a) { return a.type == type; }));
}

template <typename T>
T value_of(const std::vector<CK_ATTRIBUTE>& attrs, CK_ATTRIBUTE_TYPE type) {
  const CK_ATTRIBUTE* a = find(attrs, type);
  REQUIRE(a != nullptr);
  REQUIRE(a->ulValueLen == sizeof(T));
  T v{};
  std::memcpy(&v, a->pValue, sizeof(T));
  return v;
}

constexpr std::array<CK_ATTRIBUTE_TYPE, 11> kFlags = {
    CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_ENCRYPT, CKA_DECRYPT,
    CKA_SIGN,  CKA_VERIFY,  CKA_WRAP,      CKA_UNWRAP,      CKA_DERIVE,
};

}  // namespace

TEST_CASE("defaults: an AES session key with every flag sent and false, but private") {
  const KeyTemplate t;
  const auto attrs = t.attributes();
  CHECK(value_of<CK_OBJECT_CLASS>(attrs, CKA_CLASS) == CKO_SECRET_KEY);
  CHECK(value_of<CK_KEY_TYPE>(attrs, CKA_KEY_TYPE) == CKK_AES);
  CHECK(value_of<CK_ULONG>(attrs, CKA_VALUE_LEN) == 16);
  for (const auto type : kFlags) {
    CAPTURE(type);
    CHECK(count(attrs, type) == 1);
    CHECK(value_of<CK_BBOOL>(attrs, type) == (type == CKA_PRIVATE ? CK_TRUE : CK_FALSE));
  }
  CHECK(find(attrs, CKA_LABEL) == nullptr);
  CHECK(find(attrs, CKA_TRUSTED) == nullptr);
  CHECK(find(attrs, CKA_WRAP_WITH_TRUSTED) == nullptr);
  CHECK(find(attrs, CKA_ALLOWED_MECHANISMS) == nullptr);
  CHECK(find(attrs, CKA_VALUE) == nullptr);
  CHECK(attrs.size() == 3 + kFlags.size());
}

TEST_CASE("setters switch their own flag only") {
  for (const auto type : kFlags) {
    CAPTURE(type);
    KeyTemplate t;
    switch (type) {
      case CKA_TOKEN:
        t.token(true);
        break;
      case CKA_PRIVATE:
        t.private_object(false);
        break;
      case CKA_SENSITIVE:
        t.sensitive(true);
        break;
      case CKA_EXTRACTABLE:
        t.extractable(true);
        break;
      case CKA_ENCRYPT:
        t.encrypt(true);
        break;
      case CKA_DECRYPT:
        t.decrypt(true);
        break;
      case CKA_SIGN:
        t.sign(true);
        break;
      case CKA_VERIFY:
        t.verify(true);
        break;
      case CKA_WRAP:
        t.wrap(true);
        break;
      case CKA_UNWRAP:
        t.unwrap(true);
        break;
      case CKA_DERIVE:
        t.derive(true);
        break;
      default:
        FAIL("unhandled flag");
    }
    const auto attrs = t.attributes();
    for (const auto other : kFlags) {
      const bool on_by_default = other == CKA_PRIVATE;
      const bool expected = (other == type) ? !on_by_default : on_by_default;
      CHECK(value_of<CK_BBOOL>(attrs, other) == (expected ? CK_TRUE : CK_FALSE));
    }
  }
}

TEST_CASE("length, label, trust, mechanisms and value") {
  KeyTemplate t(32);
  t.label("lorakeep/storage")
      .trusted(false)
      .wrap_with_trusted(true)
      .allowed_mechanisms({CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD})
      .value(SecretBytes::from_string("0123456789abcdef0123456789abcdef"));
  CHECK(t.value_len() == 32);

  const auto attrs = t.attributes();
  CHECK(value_of<CK_ULONG>(attrs, CKA_VALUE_LEN) == 32);
  const CK_ATTRIBUTE* label = find(attrs, CKA_LABEL);
  REQUIRE(label != nullptr);
  CHECK(std::string(static_cast<const char*>(label->pValue), label->ulValueLen) ==
        "lorakeep/storage");
  // Sent once set, even to false.
  CHECK(value_of<CK_BBOOL>(attrs, CKA_TRUSTED) == CK_FALSE);
  CHECK(value_of<CK_BBOOL>(attrs, CKA_WRAP_WITH_TRUSTED) == CK_TRUE);
  const CK_ATTRIBUTE* mechs = find(attrs, CKA_ALLOWED_MECHANISMS);
  REQUIRE(mechs != nullptr);
  REQUIRE(mechs->ulValueLen == 2 * sizeof(CK_MECHANISM_TYPE));
  const auto* list = static_cast<const CK_MECHANISM_TYPE*>(mechs->pValue);
  CHECK(list[0] == CKM_AES_KEY_WRAP);
  CHECK(list[1] == CKM_AES_KEY_WRAP_PAD);
  const CK_ATTRIBUTE* value = find(attrs, CKA_VALUE);
  REQUIRE(value != nullptr);
  CHECK(value->ulValueLen == 32);

  const auto without_length = t.attributes(false);
  CHECK(find(without_length, CKA_VALUE_LEN) == nullptr);
  CHECK(without_length.size() == attrs.size() - 1);
}

TEST_CASE("an empty label is still sent") {
  KeyTemplate t;
  t.label("");
  const auto attrs = t.attributes();
  const CK_ATTRIBUTE* label = find(attrs, CKA_LABEL);
  REQUIRE(label != nullptr);
  CHECK(label->ulValueLen == 0);
}
