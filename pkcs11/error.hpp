// Every PKCS#11 failure as one exception type that keeps the CKR_* name and the call.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "pkcs11/ck.hpp"

namespace lorakeep::pkcs11 {

/// The name of a return value, e.g. "CKR_PIN_INCORRECT"; "CKR_0x…" when unknown (vendor
/// codes too). An unknown code's name lives in a per-thread buffer: copy it before this
/// thread names another unknown code.
[[nodiscard]] std::string_view rv_name(CK_RV rv) noexcept;

/// Tokens disagree on which code they return for the same refusal (NSS says
/// CKR_KEY_TYPE_INCONSISTENT where SoftHSM says CKR_KEY_FUNCTION_NOT_PERMITTED), so callers
/// decide by class, never by a single code.
enum class ErrorClass {
  session_lost,  // SESSION_HANDLE_INVALID, SESSION_CLOSED, USER_NOT_LOGGED_IN
  token_lost,    // DEVICE_REMOVED, TOKEN_NOT_PRESENT, DEVICE_ERROR, SLOT_ID_INVALID
  pin,           // PIN_INCORRECT, PIN_LOCKED, PIN_INVALID, PIN_LEN_RANGE, PIN_EXPIRED
  key_policy,    // KEY_FUNCTION_NOT_PERMITTED, KEY_TYPE_INCONSISTENT, KEY_UNEXTRACTABLE,
                 // KEY_NOT_WRAPPABLE, ATTRIBUTE_SENSITIVE, WRAPPING_KEY_SIZE_RANGE/TYPE_*,
                 // MECHANISM_INVALID for a key ...
  bad_input,     // DATA_LEN_RANGE, DATA_INVALID, ENCRYPTED_DATA_*, WRAPPED_KEY_*, ARGUMENTS_BAD,
                 // TEMPLATE_*, ATTRIBUTE_VALUE_INVALID, SIGNATURE_*
  not_found,     // OBJECT_HANDLE_INVALID, KEY_HANDLE_INVALID, WRAPPING_KEY_HANDLE_INVALID
  resource,      // HOST_MEMORY, DEVICE_MEMORY, SESSION_COUNT
  other,
};

[[nodiscard]] ErrorClass classify(CK_RV rv) noexcept;
[[nodiscard]] std::string_view class_name(ErrorClass c) noexcept;

class Error : public std::runtime_error {
 public:
  /// `call` is the function that failed, e.g. "C_Login".
  Error(CK_RV rv, std::string_view call);
  /// A failure detected by this layer itself (no token call), with its own message;
  /// rv() is then CKR_GENERAL_ERROR and call() is empty.
  Error(std::string message, ErrorClass cls);

  [[nodiscard]] CK_RV rv() const noexcept { return rv_; }
  [[nodiscard]] const std::string& call() const noexcept { return call_; }
  [[nodiscard]] ErrorClass error_class() const noexcept { return class_; }

 private:
  CK_RV rv_;
  std::string call_;
  ErrorClass class_;
};

}  // namespace lorakeep::pkcs11
