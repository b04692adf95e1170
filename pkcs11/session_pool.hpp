// A bounded, thread-safe pool of logged-in sessions on one token.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <vector>

#include "pkcs11/error.hpp"
#include "pkcs11/module.hpp"
#include "pkcs11/secret.hpp"
#include "pkcs11/session.hpp"

namespace lorakeep::pkcs11 {

/// Thrown by SessionPool::acquire when no session became free within the timeout.
class PoolTimeout : public std::runtime_error {
 public:
  PoolTimeout() : std::runtime_error("no PKCS#11 session became free before the deadline") {}
};

struct PoolStats {
  std::size_t capacity{};
  std::size_t in_use{};
  std::size_t open{};        // sessions currently open (idle or in use)
  std::uint64_t replaced{};  // lost sessions closed by the pool (counted when given back;
                             // the replacement opens on a later acquire)
  std::uint64_t timeouts{};  // acquire() calls that timed out
};

/// At most `capacity` sessions, opened lazily. `acquire` waits up to a timeout for one.
/// A session returned `lost()` (its last call failed with a session_lost/token_lost code:
/// CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_USER_NOT_LOGGED_IN,
/// CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT) is closed and a new one is opened and
/// logged in on the next acquire, without a restart. If opening fails (token still gone)
/// acquire throws that Error and the slot stays free for the next try.
///
/// A login refused for the PIN (class `pin`: wrong PIN, locked) is never retried: the pool
/// remembers the Error and every later acquire rethrows it at once, so a wrong PIN cannot
/// lock the token by retrying in a loop.
///
/// The token is found again by `selector` when a session is re-opened, since a token that
/// was removed and re-inserted may come back on another slot.
class SessionPool {
 public:
  SessionPool(const Module& module, TokenSelector selector, SecretBytes pin, std::size_t capacity);
  ~SessionPool();
  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;

  /// A checked-out session; returns it to the pool on destruction.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();
    Session& operator*() const noexcept { return *session_; }
    Session* operator->() const noexcept { return session_.get(); }

   private:
    friend class SessionPool;
    Lease(SessionPool& pool, std::unique_ptr<Session> session) noexcept
        : pool_(&pool), session_(std::move(session)) {}
    SessionPool* pool_;
    std::unique_ptr<Session> session_;
  };

  /// Waits at most `timeout` for a session. Throws PoolTimeout, or Error when a session
  /// cannot be opened (token gone, PIN refused).
  [[nodiscard]] Lease acquire(std::chrono::milliseconds timeout);

  /// Holds back new acquires, waits until every lease is given back, closes every session,
  /// runs `between` (e.g. Module::reinitialize), opens and logs in the sessions again and
  /// lets acquires go on. A call made while another is under way returns at once (false).
  /// Acquires waiting meanwhile keep their own timeouts. An exception from `between` or
  /// from opening is rethrown after acquires are let go (the sessions not opened then open
  /// on later acquires, as after a lost token).
  bool renew(const std::function<void()>& between);

  [[nodiscard]] PoolStats stats() const;
  [[nodiscard]] CK_SLOT_ID slot() const;

 private:
  void give_back(std::unique_ptr<Session> session) noexcept;
  std::unique_ptr<Session> open_session();  // called without the lock held

  const Module& module_;
  TokenSelector selector_;
  SecretBytes pin_;
  std::size_t capacity_;

  mutable std::mutex mutex_;
  std::condition_variable available_;
  std::condition_variable drained_;  // renew() waits here for in_use_ == 0
  bool renewing_ = false;
  std::vector<std::unique_ptr<Session>> idle_;
  std::size_t in_use_ = 0;  // leased + being opened
  std::uint64_t replaced_ = 0;
  std::uint64_t timeouts_ = 0;
  std::optional<CK_SLOT_ID> slot_;
  std::optional<Error> pin_failure_;
};

}  // namespace lorakeep::pkcs11
