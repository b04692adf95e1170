#include "pkcs11/module.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <stdexcept>
#include <utility>

#include "pkcs11/error.hpp"

namespace lorakeep::pkcs11 {

namespace {

void check(AtomicCallCounts& counts, CK_RV rv, Fn fn) {
  counts.add(fn);
  if (rv != CKR_OK) throw Error(rv, fn_name(fn));
}

// Token strings are fixed-size, blank-padded and not NUL-terminated.
template <std::size_t N>
std::string trimmed(const unsigned char (&field)[N]) {
  std::string s(reinterpret_cast<const char*>(field), N);
  const auto end = s.find_last_not_of(std::string_view(" \0", 2));
  s.erase(end == std::string::npos ? 0 : end + 1);
  return s;
}

std::string describe(const TokenSelector& selector) {
  if (selector.label) return "labelled \"" + *selector.label + "\"";
  if (selector.serial) return "with serial \"" + *selector.serial + "\"";
  if (selector.slot) return "in slot " + std::to_string(*selector.slot);
  return "(no selector)";
}

}  // namespace

Module::Module(const Options& options) : counts_(std::make_unique<AtomicCallCounts>()) {
  // RTLD_NODELETE: the library stays mapped after dlclose. Some modules cannot be unloaded
  // safely — NSS softoken keeps NSPR state that C_Finalize does not free, vendor libraries
  // may leave threads running — and a process needs its module for its whole life anyway.
  library_ = ::dlopen(options.path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (library_ == nullptr) {
    const char* why = ::dlerror();
    throw Error("cannot load PKCS#11 module " + options.path.string() + ": " +
                    (why != nullptr ? why : "unknown error"),
                ErrorClass::other);
  }
  try {
    // POSIX guarantees that a data pointer from dlsym converts to a function pointer.
    auto* get_list = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(library_, "C_GetFunctionList"));
    if (get_list == nullptr) {
      throw Error(options.path.string() + " is not a PKCS#11 module (no C_GetFunctionList)",
                  ErrorClass::other);
    }
    CK_FUNCTION_LIST_PTR list = nullptr;
    const CK_RV rv = get_list(&list);
    if (rv != CKR_OK) throw Error(rv, "C_GetFunctionList");
    if (list == nullptr) {
      throw Error("C_GetFunctionList returned no function list", ErrorClass::other);
    }
    fns_ = list;
    initialize(options.reserved);
  } catch (...) {
    ::dlclose(library_);
    library_ = nullptr;
    fns_ = nullptr;
    throw;
  }
}

// By value as declared in module.hpp (the agreed interface).
Module::Module(CK_FUNCTION_LIST_PTR functions,
               std::optional<std::string> reserved)  // NOLINT(performance-unnecessary-value-param)
    : fns_(functions), counts_(std::make_unique<AtomicCallCounts>()) {
  if (fns_ == nullptr) throw std::invalid_argument("Module: null function list");
  initialize(reserved);
}

void Module::initialize(const std::optional<std::string>& reserved) {
  reserved_ = reserved;
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  // The module only reads the string during the call (NSS copies its parameters).
  args.pReserved = reserved_ ? const_cast<char*>(reserved_->c_str()) : nullptr;
  const CK_RV rv = fns_->C_Initialize(&args);
  counts_->add(Fn::Initialize);
  if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    // Another Module (or library) in this process initialized it and will finalize it.
    finalize_ = false;
    return;
  }
  if (rv != CKR_OK) throw Error(rv, "C_Initialize");
  finalize_ = true;
}

void Module::reinitialize() {
  if (fns_ == nullptr) throw Error("the module was moved from", ErrorClass::other);
  if (!finalize_) return;  // not ours to finalize: someone else initialized it
  fns_->C_Finalize(nullptr);
  counts_->add(Fn::Finalize);
  finalize_ = false;
  const std::optional<std::string> reserved = reserved_;
  initialize(reserved);
}

Module::~Module() {
  release();
}

void Module::release() noexcept {
  if (fns_ != nullptr && finalize_) {
    fns_->C_Finalize(nullptr);
    counts_->add(Fn::Finalize);
  }
  if (library_ != nullptr) ::dlclose(library_);
  library_ = nullptr;
  fns_ = nullptr;
  finalize_ = false;
}

Module::Module(Module&& other) noexcept
    : library_(std::exchange(other.library_, nullptr)),
      fns_(std::exchange(other.fns_, nullptr)),
      finalize_(std::exchange(other.finalize_, false)),
      reserved_(std::move(other.reserved_)),
      counts_(std::move(other.counts_)) {}

Module& Module::operator=(Module&& other) noexcept {
  if (this != &other) {
    release();
    library_ = std::exchange(other.library_, nullptr);
    fns_ = std::exchange(other.fns_, nullptr);
    finalize_ = std::exchange(other.finalize_, false);
    reserved_ = std::move(other.reserved_);
    counts_ = std::move(other.counts_);
  }
  return *this;
}

std::vector<CK_SLOT_ID> Module::slots(bool token_present) const {
  const CK_BBOOL present = token_present ? CK_TRUE : CK_FALSE;
  std::vector<CK_SLOT_ID> out;
  // Slots can appear between the two calls; ask again until the list fits.
  for (;;) {
    CK_ULONG n = 0;
    check(*counts_, fns_->C_GetSlotList(present, nullptr, &n), Fn::GetSlotList);
    out.resize(n);
    const CK_RV rv = fns_->C_GetSlotList(present, out.data(), &n);
    if (rv == CKR_BUFFER_TOO_SMALL) {
      counts_->add(Fn::GetSlotList);
      continue;
    }
    check(*counts_, rv, Fn::GetSlotList);
    out.resize(n);
    return out;
  }
}

TokenInfo Module::token_info(CK_SLOT_ID slot) const {
  CK_TOKEN_INFO info{};
  check(*counts_, fns_->C_GetTokenInfo(slot, &info), Fn::GetTokenInfo);
  TokenInfo out;
  out.slot = slot;
  out.label = trimmed(info.label);
  out.serial = trimmed(info.serialNumber);
  out.manufacturer = trimmed(info.manufacturerID);
  out.model = trimmed(info.model);
  out.initialized = (info.flags & CKF_TOKEN_INITIALIZED) != 0;
  out.user_pin_initialized = (info.flags & CKF_USER_PIN_INITIALIZED) != 0;
  out.login_required = (info.flags & CKF_LOGIN_REQUIRED) != 0;
  return out;
}

CK_SLOT_ID Module::find_token(const TokenSelector& selector) const {
  const int set = (selector.label ? 1 : 0) + (selector.serial ? 1 : 0) + (selector.slot ? 1 : 0);
  if (set != 1) {
    throw Error("a token selector names exactly one of label, serial or slot",
                ErrorClass::bad_input);
  }
  const auto present = slots(true);
  if (selector.slot) {
    if (std::find(present.begin(), present.end(), *selector.slot) != present.end()) {
      return *selector.slot;
    }
    throw Error("no token " + describe(selector), ErrorClass::token_lost);
  }
  std::vector<CK_SLOT_ID> matches;
  for (const CK_SLOT_ID slot : present) {
    const TokenInfo info = token_info(slot);
    // An uninitialized token has a blank label and a serial that is not yet its own.
    if (!info.initialized) continue;
    if ((selector.label && info.label == *selector.label) ||
        (selector.serial && info.serial == *selector.serial)) {
      matches.push_back(slot);
    }
  }
  if (matches.empty()) throw Error("no token " + describe(selector), ErrorClass::token_lost);
  if (matches.size() > 1) {
    throw Error(std::to_string(matches.size()) + " tokens " + describe(selector),
                ErrorClass::token_lost);
  }
  return matches.front();
}

std::optional<CK_SLOT_ID> Module::free_slot() const {
  for (const CK_SLOT_ID slot : slots(true)) {
    if (!token_info(slot).initialized) return slot;
  }
  return std::nullopt;
}

void Module::init_token(CK_SLOT_ID slot, const SecretBytes& so_pin, std::string_view label) const {
  std::array<CK_UTF8CHAR, 32> padded{};
  if (label.size() > padded.size()) {
    throw Error("token label longer than 32 bytes", ErrorClass::bad_input);
  }
  padded.fill(' ');
  std::copy(label.begin(), label.end(), padded.begin());
  const auto pin = so_pin.reveal();
  check(*counts_,
        fns_->C_InitToken(slot, const_cast<CK_UTF8CHAR*>(pin.data()), pin.size(), padded.data()),
        Fn::InitToken);
}

void Module::close_all_sessions(CK_SLOT_ID slot) const {
  check(*counts_, fns_->C_CloseAllSessions(slot), Fn::CloseAllSessions);
}

}  // namespace lorakeep::pkcs11
