#include "pkcs11/session_pool.hpp"

#include <stdexcept>
#include <utility>

#include "pkcs11/error.hpp"

namespace lorakeep::pkcs11 {

SessionPool::SessionPool(const Module& module, TokenSelector selector, SecretBytes pin,
                         std::size_t capacity)
    : module_(module), selector_(std::move(selector)), pin_(std::move(pin)), capacity_(capacity) {
  if (capacity_ == 0) throw std::invalid_argument("SessionPool: capacity must be at least 1");
  idle_.reserve(capacity_);
}

// Leases must be returned first (they point at the pool); idle sessions close here.
SessionPool::~SessionPool() = default;

SessionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)), session_(std::move(other.session_)) {}

SessionPool::Lease::~Lease() {
  if (pool_ != nullptr && session_) pool_->give_back(std::move(session_));
}

SessionPool::Lease SessionPool::acquire(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mutex_);
  const auto ready = [this] {
    return pin_failure_.has_value() ||
           (!renewing_ && (!idle_.empty() || idle_.size() + in_use_ < capacity_));
  };
  if (!available_.wait_until(lock, deadline, ready)) {
    ++timeouts_;
    throw PoolTimeout();
  }
  // Never C_Login again with a PIN the token refused: that is how tokens get locked.
  if (pin_failure_) throw *pin_failure_;
  if (!idle_.empty()) {
    auto session = std::move(idle_.back());
    idle_.pop_back();
    ++in_use_;
    return {*this, std::move(session)};
  }

  // Reserve the place, then open without the lock: opening and logging in are token calls
  // that other threads should not wait behind.
  ++in_use_;
  lock.unlock();
  try {
    auto session = open_session();
    return {*this, std::move(session)};
  } catch (const Error& e) {
    lock.lock();
    --in_use_;
    if (renewing_ && in_use_ == 0) drained_.notify_all();
    if (e.error_class() == ErrorClass::pin && !pin_failure_) pin_failure_ = e;
    lock.unlock();
    // Waiters either take the freed place or learn about the PIN failure.
    available_.notify_all();
    throw;
  } catch (...) {
    lock.lock();
    --in_use_;
    if (renewing_ && in_use_ == 0) drained_.notify_all();
    lock.unlock();
    available_.notify_one();
    throw;
  }
}

std::unique_ptr<Session> SessionPool::open_session() {
  // Every time, since a token removed and inserted again may be on another slot.
  const CK_SLOT_ID slot = module_.find_token(selector_);
  {
    const std::lock_guard lock(mutex_);
    slot_ = slot;
  }
  return std::make_unique<Session>(module_, slot, pin_);
}

void SessionPool::give_back(std::unique_ptr<Session> session) noexcept {
  std::unique_ptr<Session> discard;
  {
    const std::lock_guard lock(mutex_);
    --in_use_;
    if (renewing_ && in_use_ == 0) drained_.notify_all();
    if (session->lost()) {
      ++replaced_;
      discard = std::move(session);
    } else {
      idle_.push_back(std::move(session));
    }
  }
  available_.notify_one();
  // C_CloseSession outside the lock; the replacement is opened by the next acquire.
  discard.reset();
}

bool SessionPool::renew(const std::function<void()>& between) {
  std::vector<std::unique_ptr<Session>> closing;
  {
    std::unique_lock lock(mutex_);
    if (renewing_) return false;
    renewing_ = true;
    drained_.wait(lock, [this] { return in_use_ == 0; });
    closing.swap(idle_);
  }
  const auto resume = [this] {
    {
      const std::lock_guard lock(mutex_);
      renewing_ = false;
    }
    available_.notify_all();
  };
  try {
    closing.clear();  // C_CloseSession each, before the module is finalized
    between();
    // Logged in now, while the caller may still hold off other processes (see renew's
    // callers), rather than at some later acquire.
    std::vector<std::unique_ptr<Session>> opened;
    for (std::size_t i = 0; i < capacity_; ++i)
      opened.push_back(open_session());
    const std::lock_guard lock(mutex_);
    for (auto& s : opened)
      idle_.push_back(std::move(s));
  } catch (...) {
    resume();
    throw;
  }
  resume();
  return true;
}

PoolStats SessionPool::stats() const {
  const std::lock_guard lock(mutex_);
  return {capacity_, in_use_, idle_.size() + in_use_, replaced_, timeouts_};
}

CK_SLOT_ID SessionPool::slot() const {
  {
    const std::lock_guard lock(mutex_);
    if (slot_) return *slot_;
  }
  return module_.find_token(selector_);
}

}  // namespace lorakeep::pkcs11
