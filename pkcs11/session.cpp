#include "pkcs11/session.hpp"

#include <algorithm>
#include <array>
#include <string>
#include <utility>

#include "pkcs11/error.hpp"

namespace lorakeep::pkcs11 {

namespace {

// The C API takes non-const pointers for input buffers; the token only reads them. Tokens
// refuse a null pointer even with length 0 (SoftHSMv2: CKR_ARGUMENTS_BAD), so an empty
// input points at a dummy byte.
CK_BYTE_PTR input(std::span<const std::uint8_t> data) noexcept {
  static CK_BYTE empty = 0;
  return data.empty() ? &empty : const_cast<CK_BYTE_PTR>(data.data());
}

CK_MECHANISM mechanism(CK_MECHANISM_TYPE type) noexcept {
  return {type, nullptr, 0};
}

CK_MECHANISM_TYPE wrap_mechanism(WrapMechanism mech) noexcept {
  return mech == WrapMechanism::rfc3394 ? CKM_AES_KEY_WRAP : CKM_AES_KEY_WRAP_PAD;
}

void require_blocks(std::span<const std::uint8_t> data, const char* what) {
  if (data.empty() || data.size() % 16 != 0) {
    throw Error(std::string(what) + ": data must be a non-empty multiple of 16 bytes, got " +
                    std::to_string(data.size()),
                ErrorClass::bad_input);
  }
}

}  // namespace

// --- OwnedKey ---

OwnedKey::OwnedKey(OwnedKey&& other) noexcept
    : session_(std::exchange(other.session_, nullptr)),
      handle_(std::exchange(other.handle_, CK_INVALID_HANDLE)) {}

OwnedKey& OwnedKey::operator=(OwnedKey&& other) noexcept {
  if (this != &other) {
    reset();
    session_ = std::exchange(other.session_, nullptr);
    handle_ = std::exchange(other.handle_, CK_INVALID_HANDLE);
  }
  return *this;
}

CK_OBJECT_HANDLE OwnedKey::release() noexcept {
  session_ = nullptr;
  return std::exchange(handle_, CK_INVALID_HANDLE);
}

void OwnedKey::reset() noexcept {
  if (session_ != nullptr && handle_ != CK_INVALID_HANDLE) {
    try {
      session_->destroy(handle_);
    } catch (...) {  // NOLINT(bugprone-empty-catch): see the class comment
    }
  }
  session_ = nullptr;
  handle_ = CK_INVALID_HANDLE;
}

// --- Session: life cycle ---

Session::Session(const Module& module, CK_SLOT_ID slot, const SecretBytes& pin)
    : module_(&module), fns_(module.functions()), slot_(slot) {
  open(pin, CKU_USER);
}

Session::Session(const Module& module, CK_SLOT_ID slot, const SecretBytes& so_pin,
                 SecurityOfficer /*unused*/)
    : module_(&module), fns_(module.functions()), slot_(slot) {
  open(so_pin, CKU_SO);
}

void Session::open(const SecretBytes& pin, CK_USER_TYPE user) {
  // Only a successful call's handle is kept, so close() never sees a stray value.
  CK_SESSION_HANDLE opened = CK_INVALID_HANDLE;
  check(fns_->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &opened),
        Fn::OpenSession);
  handle_ = opened;
  if (pin.empty()) return;
  const auto bytes = pin.reveal();
  const CK_RV rv =
      fns_->C_Login(handle_, user, const_cast<CK_UTF8CHAR_PTR>(bytes.data()), bytes.size());
  try {
    if (rv != CKR_USER_ALREADY_LOGGED_IN) {
      check(rv, Fn::Login);
    } else {
      count(Fn::Login);
      if (user == CKU_SO) require_so_state();
    }
  } catch (...) {
    // The constructor fails, so no destructor will close the session.
    close();
    throw;
  }
}

void Session::require_so_state() {
  // NSS answers CKR_USER_ALREADY_LOGGED_IN to an SO login while the *user* is logged in
  // (PKCS#11 says USER_ANOTHER_ALREADY_LOGGED_IN), so the session's state decides.
  CK_SESSION_INFO info{};
  check(fns_->C_GetSessionInfo(handle_, &info), Fn::GetSessionInfo);
  if (info.state != CKS_RW_SO_FUNCTIONS) {
    throw Error(
        "C_Login as security officer answered CKR_USER_ALREADY_LOGGED_IN, but the session is "
        "not the security officer's (another user is logged in)",
        ErrorClass::other);
  }
}

void Session::close() noexcept {
  if (fns_ == nullptr || handle_ == CK_INVALID_HANDLE) return;
  // A lost session's handle is already invalid; the token's answer changes nothing here.
  fns_->C_CloseSession(handle_);
  count(Fn::CloseSession);
  handle_ = CK_INVALID_HANDLE;
}

Session::~Session() {
  close();
}

// A moved-from session keeps its module but no handle: using it by mistake fails with
// CKR_SESSION_HANDLE_INVALID instead of crashing (an OwnedKey may still point at it).
Session::Session(Session&& other) noexcept
    : module_(other.module_),
      fns_(other.fns_),
      slot_(other.slot_),
      handle_(std::exchange(other.handle_, CK_INVALID_HANDLE)),
      lost_(other.lost_),
      counts_(other.counts_) {}

Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    close();
    module_ = other.module_;
    fns_ = other.fns_;
    slot_ = other.slot_;
    handle_ = std::exchange(other.handle_, CK_INVALID_HANDLE);
    lost_ = other.lost_;
    counts_ = other.counts_;
  }
  return *this;
}

void Session::count(Fn fn) noexcept {
  ++counts_.by_fn[static_cast<std::size_t>(fn)];
  if (module_ != nullptr) module_->counters().add(fn);
}

void Session::check(CK_RV rv, Fn fn) {
  count(fn);
  if (rv == CKR_OK) return;
  Error error(rv, fn_name(fn));
  const ErrorClass cls = error.error_class();
  if (cls == ErrorClass::session_lost || cls == ErrorClass::token_lost) lost_ = true;
  throw error;
}

void Session::init_user_pin(const SecretBytes& pin) {
  const auto bytes = pin.reveal();
  check(fns_->C_InitPIN(handle_, const_cast<CK_UTF8CHAR_PTR>(bytes.data()), bytes.size()),
        Fn::InitPIN);
}

// --- objects ---

OwnedKey Session::generate_aes_key(const KeyTemplate& tmpl) {
  auto attrs = tmpl.attributes(true);
  CK_MECHANISM mech = mechanism(CKM_AES_KEY_GEN);
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  check(fns_->C_GenerateKey(handle_, &mech, attrs.data(), attrs.size(), &key), Fn::GenerateKey);
  return {*this, key};
}

OwnedKey Session::create_key(const KeyTemplate& tmpl) {
  // CKA_VALUE_LEN is derived from CKA_VALUE; PKCS#11 forbids giving it to C_CreateObject.
  auto attrs = tmpl.attributes(false);
  bool has_value = false;
  for (const auto& a : attrs)
    has_value = has_value || a.type == CKA_VALUE;
  if (!has_value) throw Error("create_key: the template has no value", ErrorClass::bad_input);
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  check(fns_->C_CreateObject(handle_, attrs.data(), attrs.size(), &key), Fn::CreateObject);
  return {*this, key};
}

KeyRef Session::copy_to_session_object(KeyRef key) {
  CK_BBOOL no = CK_FALSE;
  std::array<CK_ATTRIBUTE, 1> changes{{{CKA_TOKEN, &no, sizeof no}}};
  CK_OBJECT_HANDLE copy = CK_INVALID_HANDLE;
  check(fns_->C_CopyObject(handle_, key.handle, changes.data(), changes.size(), &copy),
        Fn::CopyObject);
  return {copy};
}

void Session::destroy(CK_OBJECT_HANDLE handle) {
  check(fns_->C_DestroyObject(handle_, handle), Fn::DestroyObject);
}

namespace {

// C_FindObjectsFinal on every way out, or the session stays in a find operation.
class FindOperation {
 public:
  FindOperation(Session& session, CK_FUNCTION_LIST_PTR fns, std::vector<CK_ATTRIBUTE>& attrs)
      : session_(session), fns_(fns) {
    session_.check(fns_->C_FindObjectsInit(session_.handle(), attrs.data(), attrs.size()),
                   Fn::FindObjectsInit);
  }
  ~FindOperation() {
    fns_->C_FindObjectsFinal(session_.handle());
    session_.count(Fn::FindObjectsFinal);
  }
  FindOperation(const FindOperation&) = delete;
  FindOperation& operator=(const FindOperation&) = delete;

 private:
  Session& session_;
  CK_FUNCTION_LIST_PTR fns_;
};

}  // namespace

std::vector<KeyRef> Session::find_keys(std::string_view label, Objects scope) {
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_BBOOL yes = CK_TRUE;
  std::vector<CK_ATTRIBUTE> attrs = {
      {CKA_CLASS, &cls, sizeof cls},
      {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
  };
  if (scope == Objects::token_only) attrs.push_back({CKA_TOKEN, &yes, sizeof yes});
  std::vector<KeyRef> found;
  const FindOperation op(*this, fns_, attrs);
  std::array<CK_OBJECT_HANDLE, 32> batch{};
  for (;;) {
    CK_ULONG n = 0;
    check(fns_->C_FindObjects(handle_, batch.data(), batch.size(), &n), Fn::FindObjects);
    for (CK_ULONG i = 0; i < n && i < batch.size(); ++i) {
      found.push_back({batch[i]});
    }
    if (n < batch.size()) break;
  }
  return found;
}

std::optional<KeyRef> Session::find_key(std::string_view label, Objects scope) {
  const auto keys = find_keys(label, scope);
  if (keys.empty()) return std::nullopt;
  if (keys.size() > 1) {
    throw Error(
        std::to_string(keys.size()) + " secret keys are labelled \"" + std::string(label) + "\"",
        ErrorClass::other);
  }
  return keys.front();
}

std::vector<std::uint8_t> Session::attribute(CK_OBJECT_HANDLE handle, CK_ATTRIBUTE_TYPE type) {
  CK_ATTRIBUTE a{type, nullptr, 0};
  check(fns_->C_GetAttributeValue(handle_, handle, &a, 1), Fn::GetAttributeValue);
  if (a.ulValueLen == kUnavailableInformation) {
    throw Error("C_GetAttributeValue gave no length for attribute " + std::to_string(type),
                ErrorClass::other);
  }
  std::vector<std::uint8_t> value(a.ulValueLen);
  a.pValue = value.data();
  check(fns_->C_GetAttributeValue(handle_, handle, &a, 1), Fn::GetAttributeValue);
  value.resize(a.ulValueLen);
  return value;
}

KeyAttributes Session::attributes(KeyRef key) {
  KeyAttributes out;
  CK_BBOOL token = CK_FALSE, priv = CK_FALSE, sensitive = CK_FALSE, extractable = CK_FALSE,
           always_sensitive = CK_FALSE, never_extractable = CK_FALSE, encrypt = CK_FALSE,
           decrypt = CK_FALSE, sign = CK_FALSE, verify = CK_FALSE, wrap = CK_FALSE,
           unwrap = CK_FALSE, derive = CK_FALSE, trusted = CK_FALSE, wrap_with_trusted = CK_FALSE;
  // The label's length first (no buffer), its bytes in a second call: NSS 3.87 copies an
  // attribute whole whatever ulValueLen says, so a buffer too small would overflow.
  std::vector<CK_ATTRIBUTE> attrs = {
      {CKA_CLASS, &out.object_class, sizeof out.object_class},
      {CKA_KEY_TYPE, &out.key_type, sizeof out.key_type},
      {CKA_VALUE_LEN, &out.value_len, sizeof out.value_len},
      {CKA_TOKEN, &token, sizeof(CK_BBOOL)},
      {CKA_PRIVATE, &priv, sizeof(CK_BBOOL)},
      {CKA_SENSITIVE, &sensitive, sizeof(CK_BBOOL)},
      {CKA_EXTRACTABLE, &extractable, sizeof(CK_BBOOL)},
      {CKA_ALWAYS_SENSITIVE, &always_sensitive, sizeof(CK_BBOOL)},
      {CKA_NEVER_EXTRACTABLE, &never_extractable, sizeof(CK_BBOOL)},
      {CKA_ENCRYPT, &encrypt, sizeof(CK_BBOOL)},
      {CKA_DECRYPT, &decrypt, sizeof(CK_BBOOL)},
      {CKA_SIGN, &sign, sizeof(CK_BBOOL)},
      {CKA_VERIFY, &verify, sizeof(CK_BBOOL)},
      {CKA_WRAP, &wrap, sizeof(CK_BBOOL)},
      {CKA_UNWRAP, &unwrap, sizeof(CK_BBOOL)},
      {CKA_DERIVE, &derive, sizeof(CK_BBOOL)},
      {CKA_LABEL, nullptr, 0},
      // Last two: optional, a token without them answers CKR_ATTRIBUTE_TYPE_INVALID.
      {CKA_TRUSTED, &trusted, sizeof(CK_BBOOL)},
      {CKA_WRAP_WITH_TRUSTED, &wrap_with_trusted, sizeof(CK_BBOOL)},
  };
  constexpr std::size_t kLabel = 16;
  constexpr std::size_t kOptional = 17;

  CK_RV rv = fns_->C_GetAttributeValue(handle_, key.handle, attrs.data(), attrs.size());
  if (rv == CKR_ATTRIBUTE_TYPE_INVALID) {
    // Tolerated only when what is missing is optional; the rest was filled in.
    bool only_optional = true;
    for (std::size_t i = 0; i < kOptional; ++i) {
      only_optional = only_optional && attrs[i].ulValueLen != kUnavailableInformation;
    }
    if (only_optional) {
      count(Fn::GetAttributeValue);
      rv = CKR_OK;
    }
  }
  check(rv, Fn::GetAttributeValue);
  std::string label(attrs[kLabel].ulValueLen, '\0');
  if (!label.empty()) {
    CK_ATTRIBUTE one{CKA_LABEL, label.data(), label.size()};
    check(fns_->C_GetAttributeValue(handle_, key.handle, &one, 1), Fn::GetAttributeValue);
    label.resize(std::min<std::size_t>(one.ulValueLen, label.size()));
  }
  out.label = std::move(label);
  out.token = token == CK_TRUE;
  out.private_object = priv == CK_TRUE;
  out.sensitive = sensitive == CK_TRUE;
  out.extractable = extractable == CK_TRUE;
  out.always_sensitive = always_sensitive == CK_TRUE;
  out.never_extractable = never_extractable == CK_TRUE;
  out.encrypt = encrypt == CK_TRUE;
  out.decrypt = decrypt == CK_TRUE;
  out.sign = sign == CK_TRUE;
  out.verify = verify == CK_TRUE;
  out.wrap = wrap == CK_TRUE;
  out.unwrap = unwrap == CK_TRUE;
  out.derive = derive == CK_TRUE;
  out.trusted = attrs[kOptional].ulValueLen != kUnavailableInformation && trusted == CK_TRUE;
  out.wrap_with_trusted =
      attrs[kOptional + 1].ulValueLen != kUnavailableInformation && wrap_with_trusted == CK_TRUE;
  return out;
}

// --- cryptography ---

std::array<std::uint8_t, 16> Session::aes_cmac(KeyRef key, std::span<const std::uint8_t> data) {
  CK_MECHANISM mech = mechanism(CKM_AES_CMAC);
  check(fns_->C_SignInit(handle_, &mech, key.handle), Fn::SignInit);
  // Always a real 16-byte buffer: SoftHSMv2 leaves the operation active after a failed
  // C_Sign(NULL, 0), which would make the session's next C_SignInit fail.
  std::array<std::uint8_t, 16> mac{};
  CK_ULONG len = mac.size();
  check(fns_->C_Sign(handle_, input(data), data.size(), mac.data(), &len), Fn::Sign);
  if (len != mac.size()) {
    throw Error("C_Sign(CKM_AES_CMAC) returned " + std::to_string(len) + " bytes, not 16",
                ErrorClass::other);
  }
  return mac;
}

std::vector<std::uint8_t> Session::aes_ecb_encrypt(KeyRef key, std::span<const std::uint8_t> data) {
  require_blocks(data, "aes_ecb_encrypt");
  CK_MECHANISM mech = mechanism(CKM_AES_ECB);
  check(fns_->C_EncryptInit(handle_, &mech, key.handle), Fn::EncryptInit);
  std::vector<std::uint8_t> out(data.size());
  CK_ULONG len = out.size();
  check(fns_->C_Encrypt(handle_, input(data), data.size(), out.data(), &len), Fn::Encrypt);
  out.resize(len);
  return out;
}

std::vector<std::uint8_t> Session::aes_ecb_decrypt(KeyRef key, std::span<const std::uint8_t> data) {
  require_blocks(data, "aes_ecb_decrypt");
  CK_MECHANISM mech = mechanism(CKM_AES_ECB);
  check(fns_->C_DecryptInit(handle_, &mech, key.handle), Fn::DecryptInit);
  std::vector<std::uint8_t> out(data.size());
  CK_ULONG len = out.size();
  check(fns_->C_Decrypt(handle_, input(data), data.size(), out.data(), &len), Fn::Decrypt);
  out.resize(len);
  return out;
}

OwnedKey Session::derive_aes_ecb(KeyRef base, std::span<const std::uint8_t, 16> data,
                                 const KeyTemplate& tmpl) {
  CK_KEY_DERIVATION_STRING_DATA params{const_cast<CK_BYTE_PTR>(data.data()), data.size()};
  CK_MECHANISM mech{CKM_AES_ECB_ENCRYPT_DATA, &params, sizeof params};
  auto attrs = tmpl.attributes(true);
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  check(fns_->C_DeriveKey(handle_, &mech, base.handle, attrs.data(), attrs.size(), &key),
        Fn::DeriveKey);
  return {*this, key};
}

std::vector<std::uint8_t> Session::wrap(WrapMechanism mech, KeyRef kek, KeyRef key) {
  CK_MECHANISM m = mechanism(wrap_mechanism(mech));
  // Room for an AES-256 key with RFC 5649 padding, so the usual case is one call.
  std::vector<std::uint8_t> out(64);
  CK_ULONG len = out.size();
  CK_RV rv = fns_->C_WrapKey(handle_, &m, kek.handle, key.handle, out.data(), &len);
  if (rv == CKR_BUFFER_TOO_SMALL) {
    count(Fn::WrapKey);
    out.resize(len);
    rv = fns_->C_WrapKey(handle_, &m, kek.handle, key.handle, out.data(), &len);
  }
  check(rv, Fn::WrapKey);
  out.resize(len);
  return out;
}

OwnedKey Session::unwrap(WrapMechanism mech, KeyRef kek, std::span<const std::uint8_t> wrapped,
                         const KeyTemplate& tmpl) {
  CK_MECHANISM m = mechanism(wrap_mechanism(mech));
  // The length comes from the wrapped data; SoftHSMv2 refuses CKA_VALUE_LEN here
  // (CKR_ATTRIBUTE_READ_ONLY), as PKCS#11 allows.
  auto attrs = tmpl.attributes(false);
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  check(fns_->C_UnwrapKey(handle_, &m, kek.handle, input(wrapped), wrapped.size(), attrs.data(),
                          attrs.size(), &key),
        Fn::UnwrapKey);
  return {*this, key};
}

}  // namespace lorakeep::pkcs11
