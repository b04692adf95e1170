#include "pkcs11/stats.hpp"

namespace lorakeep::pkcs11 {

namespace {

// clang-format off
constexpr std::array<std::string_view, static_cast<std::size_t>(Fn::count_)> kFnNames = {
    "C_Initialize", "C_Finalize", "C_GetInfo", "C_GetSlotList", "C_GetSlotInfo",
    "C_GetTokenInfo", "C_GetMechanismInfo", "C_InitToken", "C_InitPIN", "C_OpenSession",
    "C_CloseSession", "C_CloseAllSessions", "C_Login", "C_Logout", "C_CreateObject",
    "C_DestroyObject", "C_GetAttributeValue", "C_FindObjectsInit", "C_FindObjects",
    "C_FindObjectsFinal", "C_EncryptInit", "C_Encrypt", "C_DecryptInit", "C_Decrypt",
    "C_SignInit", "C_Sign", "C_GenerateKey", "C_WrapKey", "C_UnwrapKey", "C_DeriveKey",
    "C_GetSessionInfo", "C_CopyObject",
};
// clang-format on

}  // namespace

std::string_view fn_name(Fn f) noexcept {
  const auto i = static_cast<std::size_t>(f);
  return i < kFnNames.size() ? kFnNames[i] : std::string_view("C_?");
}

bool is_crypto(Fn f) noexcept {
  switch (f) {
    case Fn::Encrypt:
    case Fn::Decrypt:
    case Fn::Sign:
    case Fn::GenerateKey:
    case Fn::WrapKey:
    case Fn::UnwrapKey:
    case Fn::DeriveKey:
      return true;
    default:
      return false;
  }
}

std::uint64_t CallCounts::total() const noexcept {
  std::uint64_t sum = 0;
  for (const auto n : by_fn)
    sum += n;
  return sum;
}

std::uint64_t CallCounts::crypto() const noexcept {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < by_fn.size(); ++i) {
    if (is_crypto(static_cast<Fn>(i))) sum += by_fn[i];
  }
  return sum;
}

CallCounts CallCounts::operator-(const CallCounts& earlier) const noexcept {
  CallCounts diff;
  for (std::size_t i = 0; i < by_fn.size(); ++i)
    diff.by_fn[i] = by_fn[i] - earlier.by_fn[i];
  return diff;
}

CallCounts AtomicCallCounts::snapshot() const noexcept {
  CallCounts copy;
  for (std::size_t i = 0; i < by_fn_.size(); ++i) {
    copy.by_fn[i] = by_fn_[i].load(std::memory_order_relaxed);
  }
  return copy;
}

}  // namespace lorakeep::pkcs11
