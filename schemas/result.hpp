// Errors as values at module boundaries. The codes are what the appliance answers and
// what the Join Server maps onto Backend Interfaces result codes.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace lorakeep {

enum class Status : unsigned char {
  ok,
  malformed,          // a frame, value or request that does not parse
  mic_failed,         // a MIC that does not verify
  unknown_key,        // a KEK / part key / storage key label the token does not hold
  key_policy,         // a key whose attributes are weaker than lorakeep's policy, or a
                      // use the policy forbids (e.g. wrapping a root key)
  token_unavailable,  // the token or its session is gone, or no session within the deadline
  deadline,           // the request's deadline passed
  exhausted,          // a counter (JoinNonce, DevNonce, RJcount) has no next value
  internal,           // anything else: a bug or an unexpected token answer
};

[[nodiscard]] std::string_view status_name(Status s) noexcept;

struct Failure {
  Status status = Status::internal;
  std::string message;  // says what is wrong; never holds key material
};

/// A value or a Failure. `Result<void>` is not provided: use `Result<Ok>`.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT(google-explicit-constructor)
  Result(Failure failure) : v_(std::move(failure)) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const noexcept { return std::holds_alternative<T>(v_); }
  explicit operator bool() const noexcept { return ok(); }

  [[nodiscard]] T& value() & {
    assert(ok());
    return std::get<T>(v_);
  }
  [[nodiscard]] const T& value() const& {
    assert(ok());
    return std::get<T>(v_);
  }
  [[nodiscard]] T&& value() && {
    assert(ok());
    return std::get<T>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  [[nodiscard]] const Failure& failure() const& {
    assert(!ok());
    return std::get<Failure>(v_);
  }

 private:
  std::variant<T, Failure> v_;
};

struct Ok {};

inline Failure fail(Status s, std::string message) {
  return Failure{s, std::move(message)};
}

}  // namespace lorakeep
