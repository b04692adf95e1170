// rv_name, classify and Error, and the call counters: no token needed.
#include <doctest.h>

#include <string>

#include "pkcs11/error.hpp"
#include "pkcs11/stats.hpp"

using namespace lorakeep::pkcs11;

TEST_CASE("rv_name names the standard codes") {
  CHECK(rv_name(CKR_OK) == "CKR_OK");
  CHECK(rv_name(CKR_PIN_INCORRECT) == "CKR_PIN_INCORRECT");
  CHECK(rv_name(CKR_SESSION_HANDLE_INVALID) == "CKR_SESSION_HANDLE_INVALID");
  CHECK(rv_name(CKR_KEY_FUNCTION_NOT_PERMITTED) == "CKR_KEY_FUNCTION_NOT_PERMITTED");
  CHECK(rv_name(CKR_CRYPTOKI_ALREADY_INITIALIZED) == "CKR_CRYPTOKI_ALREADY_INITIALIZED");
  CHECK(rv_name(CKR_FUNCTION_REJECTED) == "CKR_FUNCTION_REJECTED");
  CHECK(rv_name(CKR_PUBLIC_KEY_INVALID) == "CKR_PUBLIC_KEY_INVALID");
}

TEST_CASE("rv_name gives unknown and vendor codes in hex") {
  CHECK(rv_name(0x4242UL) == "CKR_0x4242");
  CHECK(rv_name(0x80000001UL) == "CKR_0x80000001");
  // NSS softoken's two C_Initialize failures are named.
  CHECK(rv_name(0xCE534351UL) == "CKR_NSS_CERTDB_FAILED");
  CHECK(rv_name(0xCE534352UL) == "CKR_NSS_KEYDB_FAILED");
  CHECK(classify(0xCE534351UL) == ErrorClass::other);
}

TEST_CASE("classify follows the classes documented in error.hpp") {
  CHECK(classify(CKR_SESSION_HANDLE_INVALID) == ErrorClass::session_lost);
  CHECK(classify(CKR_SESSION_CLOSED) == ErrorClass::session_lost);
  CHECK(classify(CKR_USER_NOT_LOGGED_IN) == ErrorClass::session_lost);

  CHECK(classify(CKR_DEVICE_REMOVED) == ErrorClass::token_lost);
  CHECK(classify(CKR_TOKEN_NOT_PRESENT) == ErrorClass::token_lost);
  CHECK(classify(CKR_DEVICE_ERROR) == ErrorClass::token_lost);
  CHECK(classify(CKR_SLOT_ID_INVALID) == ErrorClass::token_lost);

  CHECK(classify(CKR_PIN_INCORRECT) == ErrorClass::pin);
  CHECK(classify(CKR_PIN_LOCKED) == ErrorClass::pin);
  CHECK(classify(CKR_PIN_INVALID) == ErrorClass::pin);
  CHECK(classify(CKR_PIN_LEN_RANGE) == ErrorClass::pin);
  CHECK(classify(CKR_PIN_EXPIRED) == ErrorClass::pin);

  // The same refusal in the words of two tokens lands in one class.
  CHECK(classify(CKR_KEY_FUNCTION_NOT_PERMITTED) == ErrorClass::key_policy);
  CHECK(classify(CKR_KEY_TYPE_INCONSISTENT) == ErrorClass::key_policy);
  CHECK(classify(CKR_KEY_UNEXTRACTABLE) == ErrorClass::key_policy);
  CHECK(classify(CKR_KEY_NOT_WRAPPABLE) == ErrorClass::key_policy);
  CHECK(classify(CKR_ATTRIBUTE_SENSITIVE) == ErrorClass::key_policy);
  CHECK(classify(CKR_WRAPPING_KEY_TYPE_INCONSISTENT) == ErrorClass::key_policy);
  CHECK(classify(CKR_MECHANISM_INVALID) == ErrorClass::key_policy);

  CHECK(classify(CKR_DATA_LEN_RANGE) == ErrorClass::bad_input);
  CHECK(classify(CKR_DATA_INVALID) == ErrorClass::bad_input);
  CHECK(classify(CKR_ENCRYPTED_DATA_INVALID) == ErrorClass::bad_input);
  CHECK(classify(CKR_WRAPPED_KEY_INVALID) == ErrorClass::bad_input);
  CHECK(classify(CKR_WRAPPED_KEY_LEN_RANGE) == ErrorClass::bad_input);
  CHECK(classify(CKR_ARGUMENTS_BAD) == ErrorClass::bad_input);
  CHECK(classify(CKR_TEMPLATE_INCOMPLETE) == ErrorClass::bad_input);
  CHECK(classify(CKR_TEMPLATE_INCONSISTENT) == ErrorClass::bad_input);
  CHECK(classify(CKR_ATTRIBUTE_VALUE_INVALID) == ErrorClass::bad_input);
  CHECK(classify(CKR_SIGNATURE_INVALID) == ErrorClass::bad_input);

  // A handle naming no key, in the words of SoftHSMv2 and of NSS.
  CHECK(classify(CKR_OBJECT_HANDLE_INVALID) == ErrorClass::not_found);
  CHECK(classify(CKR_KEY_HANDLE_INVALID) == ErrorClass::not_found);
  CHECK(classify(CKR_WRAPPING_KEY_HANDLE_INVALID) == ErrorClass::not_found);

  CHECK(classify(CKR_HOST_MEMORY) == ErrorClass::resource);
  CHECK(classify(CKR_DEVICE_MEMORY) == ErrorClass::resource);
  CHECK(classify(CKR_SESSION_COUNT) == ErrorClass::resource);

  CHECK(classify(CKR_GENERAL_ERROR) == ErrorClass::other);
  CHECK(classify(CKR_FUNCTION_FAILED) == ErrorClass::other);
  CHECK(classify(0x4242UL) == ErrorClass::other);
}

TEST_CASE("class_name") {
  CHECK(class_name(ErrorClass::session_lost) == "session_lost");
  CHECK(class_name(ErrorClass::key_policy) == "key_policy");
  CHECK(class_name(ErrorClass::other) == "other");
}

TEST_CASE("Error keeps the call, the code and its class") {
  const Error e(CKR_PIN_INCORRECT, "C_Login");
  CHECK(std::string(e.what()) == "C_Login failed: CKR_PIN_INCORRECT");
  CHECK(e.rv() == CKR_PIN_INCORRECT);
  CHECK(e.call() == "C_Login");
  CHECK(e.error_class() == ErrorClass::pin);

  const Error own("data must be a multiple of 16 bytes", ErrorClass::bad_input);
  CHECK(std::string(own.what()) == "data must be a multiple of 16 bytes");
  CHECK(own.error_class() == ErrorClass::bad_input);
  CHECK(own.call().empty());
  CHECK(own.rv() == CKR_GENERAL_ERROR);
}

TEST_CASE("fn_name and is_crypto") {
  CHECK(fn_name(Fn::Initialize) == "C_Initialize");
  CHECK(fn_name(Fn::GetAttributeValue) == "C_GetAttributeValue");
  CHECK(fn_name(Fn::DeriveKey) == "C_DeriveKey");
  for (std::size_t i = 0; i < static_cast<std::size_t>(Fn::count_); ++i) {
    CHECK(fn_name(static_cast<Fn>(i)).substr(0, 2) == "C_");
  }
  CHECK(is_crypto(Fn::Sign));
  CHECK(is_crypto(Fn::Encrypt));
  CHECK(is_crypto(Fn::DeriveKey));
  CHECK(is_crypto(Fn::WrapKey));
  CHECK_FALSE(is_crypto(Fn::SignInit));
  CHECK_FALSE(is_crypto(Fn::Login));
  CHECK_FALSE(is_crypto(Fn::FindObjects));
}

TEST_CASE("CallCounts totals and differences") {
  AtomicCallCounts counts;
  counts.add(Fn::SignInit);
  counts.add(Fn::Sign);
  counts.add(Fn::Sign);
  const CallCounts before = counts.snapshot();
  CHECK(before.of(Fn::Sign) == 2);
  CHECK(before.total() == 3);
  CHECK(before.crypto() == 2);

  counts.add(Fn::DeriveKey);
  counts.add(Fn::Login);
  const CallCounts diff = counts.snapshot() - before;
  CHECK(diff.total() == 2);
  CHECK(diff.crypto() == 1);
  CHECK(diff.of(Fn::Login) == 1);
  CHECK(diff.of(Fn::Sign) == 0);
}
