// Loading a PKCS#11 module, initializing it, and finding tokens.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pkcs11/ck.hpp"
#include "pkcs11/secret.hpp"
#include "pkcs11/stats.hpp"

namespace lorakeep::pkcs11 {

/// Which token to use: by label or by serial number (as the token reports them, trailing
/// blanks removed), or by slot id. Exactly one is set.
struct TokenSelector {
  std::optional<std::string> label;
  std::optional<std::string> serial;
  std::optional<CK_SLOT_ID> slot;
};

struct TokenInfo {
  CK_SLOT_ID slot{};
  std::string label;         // blanks trimmed
  std::string serial;        // blanks trimmed
  std::string manufacturer;  // blanks trimmed
  std::string model;         // blanks trimmed
  bool initialized{};
  bool user_pin_initialized{};
  bool login_required{};
};

/// A loaded and initialized PKCS#11 module. Move-only; the destructor calls C_Finalize and
/// dlcloses the library, which stays mapped (RTLD_NODELETE: not every module survives being
/// unloaded). C_Initialize is always called with CKF_OS_LOCKING_OK (SoftHSMv2 crashes under
/// threads without it) and with the configured reserved string, which NSS softoken needs
/// (`configdir='sql:DIR' ...`; without it NSS answers CKR_ARGUMENTS_BAD). A module
/// finalized this way can be initialized again in the same process, with another reserved
/// string (SoftHSMv2 and NSS 3.87 both allow it).
class Module {
 public:
  struct Options {
    std::filesystem::path path;           // e.g. /usr/lib/softhsm/libsofthsm2.so
    std::optional<std::string> reserved;  // C_Initialize pReserved (NSS parameters); the
                                          // module parses it: NSS crashes on a string
                                          // without configdir
  };

  explicit Module(const Options& options);
  /// Uses an existing function list (a fake one in tests); nothing is dlopened. The list
  /// must outlive the module. C_Initialize and C_Finalize are still called through it.
  explicit Module(CK_FUNCTION_LIST_PTR functions, std::optional<std::string> reserved = {});
  ~Module();

  Module(Module&&) noexcept;
  Module& operator=(Module&&) noexcept;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  [[nodiscard]] CK_FUNCTION_LIST_PTR functions() const noexcept { return fns_; }

  /// Slots, with a token present only by default.
  [[nodiscard]] std::vector<CK_SLOT_ID> slots(bool token_present = true) const;
  [[nodiscard]] TokenInfo token_info(CK_SLOT_ID slot) const;
  /// The slot of the one token matching `selector`; throws Error (class token_lost, a
  /// message naming what was looked for) when none or more than one matches.
  [[nodiscard]] CK_SLOT_ID find_token(const TokenSelector& selector) const;
  /// The first slot whose token is not initialized yet (SoftHSMv2 always offers one).
  [[nodiscard]] std::optional<CK_SLOT_ID> free_slot() const;
  /// C_InitToken with the SO PIN and a label (padded to 32 blanks here). Slot ids can change
  /// afterwards (SoftHSMv2 renumbers): find the token again by label.
  void init_token(CK_SLOT_ID slot, const SecretBytes& so_pin, std::string_view label) const;
  /// C_CloseAllSessions on a slot: every session of this application is lost (tests and
  /// fault drills use it to show that the pool recovers).
  void close_all_sessions(CK_SLOT_ID slot) const;

  /// C_Finalize, then C_Initialize with the same arguments: everything the module held for
  /// this process (sessions, session objects, logins) is gone. The caller must have closed
  /// or abandoned every Session first and must not call the module meanwhile. Throws Error
  /// when C_Initialize fails; the module is then unusable until a later call succeeds.
  void reinitialize();

  /// Calls made through this module, all sessions together.
  [[nodiscard]] CallCounts call_counts() const noexcept { return counts_->snapshot(); }
  /// Used by Session to count module-wide; not for other callers.
  [[nodiscard]] AtomicCallCounts& counters() const noexcept { return *counts_; }

 private:
  void initialize(const std::optional<std::string>& reserved);
  void release() noexcept;

  void* library_ = nullptr;  // dlopen handle, null for a borrowed function list
  CK_FUNCTION_LIST_PTR fns_ = nullptr;
  // False when C_Initialize said CKR_CRYPTOKI_ALREADY_INITIALIZED: someone else in the
  // process owns the library's initialization, and finalizing it would pull it from under them.
  bool finalize_ = false;
  std::optional<std::string> reserved_;  // C_Initialize's pReserved, kept for reinitialize()
  std::unique_ptr<AtomicCallCounts> counts_;
};

}  // namespace lorakeep::pkcs11
