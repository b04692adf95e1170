// Counting PKCS#11 calls: per session and per module, so the appliance can report how
// many token round trips each join costs.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace lorakeep::pkcs11 {

/// The C_* functions this layer calls. `crypto` ones do cryptography in the token.
// One enumerator per line would triple the length of this list.
// clang-format off
enum class Fn : std::uint8_t {
  Initialize, Finalize, GetInfo, GetSlotList, GetSlotInfo, GetTokenInfo, GetMechanismInfo,
  InitToken, InitPIN, OpenSession, CloseSession, CloseAllSessions, Login, Logout,
  CreateObject, DestroyObject, GetAttributeValue, FindObjectsInit, FindObjects,
  FindObjectsFinal, EncryptInit, Encrypt, DecryptInit, Decrypt, SignInit, Sign,
  GenerateKey, WrapKey, UnwrapKey, DeriveKey, GetSessionInfo, CopyObject,
  count_  // not a function
};
// clang-format on

[[nodiscard]] std::string_view fn_name(Fn f) noexcept;
/// Encrypt, Decrypt, Sign, GenerateKey, WrapKey, UnwrapKey, DeriveKey.
[[nodiscard]] bool is_crypto(Fn f) noexcept;

/// Plain counters: one session is used by one thread at a time.
struct CallCounts {
  std::array<std::uint64_t, static_cast<std::size_t>(Fn::count_)> by_fn{};

  [[nodiscard]] std::uint64_t of(Fn f) const noexcept { return by_fn[static_cast<std::size_t>(f)]; }
  [[nodiscard]] std::uint64_t total() const noexcept;
  [[nodiscard]] std::uint64_t crypto() const noexcept;
  [[nodiscard]] CallCounts operator-(const CallCounts& earlier) const noexcept;
};

/// Thread-safe counters for a whole module (all sessions).
class AtomicCallCounts {
 public:
  void add(Fn f) noexcept {
    by_fn_[static_cast<std::size_t>(f)].fetch_add(1, std::memory_order_relaxed);
  }
  [[nodiscard]] CallCounts snapshot() const noexcept;

 private:
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(Fn::count_)> by_fn_{};
};

}  // namespace lorakeep::pkcs11
