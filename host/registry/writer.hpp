// The registry's one writer: a thread that owns the write connection and runs every write
// as a job. It takes whatever is queued (up to a weight of max_batch), runs it in one
// BEGIN IMMEDIATE … COMMIT with a SAVEPOINT around each job so that a job that fails
// leaves no trace, and only after the COMMIT (one fsync for the whole group) hands each
// caller its own outcome. If the transaction as a whole fails, every job in it fails.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "host/registry/sqlite_db.hpp"
#include "schemas/result.hpp"

namespace lorakeep::host::registry {

class Job {
 public:
  virtual ~Job() = default;
  Job() = default;
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;
  Job(Job&&) = delete;
  Job& operator=(Job&&) = delete;

  /// How much of a group's max_batch the job takes (a join: 1; a bulk insert: its size).
  [[nodiscard]] virtual std::size_t weight() const noexcept = 0;
  /// Runs inside the group's transaction; false when it failed, so that its savepoint is
  /// rolled back. The outcome is kept until deliver().
  virtual bool apply(sql::Db& db) noexcept = 0;
  /// Hands the caller the outcome apply() kept: the group is committed.
  virtual void deliver() noexcept = 0;
  /// Hands the caller `failure` instead: the group's transaction did not commit.
  virtual void deliver(const Failure& failure) noexcept = 0;
};

/// "registry: " + what the exception says (sql::Error's message already starts so).
Failure failure_of(const std::exception& e);

template <class T>
class TypedJob final : public Job {
 public:
  using Fn = std::function<Result<T>(sql::Db&)>;
  TypedJob(std::size_t weight, Fn fn) : weight_(weight), fn_(std::move(fn)) {}

  [[nodiscard]] std::size_t weight() const noexcept override { return weight_; }

  bool apply(sql::Db& db) noexcept override {
    try {
      outcome_.emplace(fn_(db));
    } catch (const std::exception& e) {
      outcome_.emplace(failure_of(e));
    } catch (...) {
      outcome_.emplace(fail(Status::internal, "registry: unknown exception in a write"));
    }
    return outcome_->ok();
  }

  void deliver() noexcept override {
    if (outcome_) {
      settle(std::move(*outcome_));
    } else {
      settle(fail(Status::internal, "registry: a write was never applied"));
    }
  }
  void deliver(const Failure& failure) noexcept override { settle(failure); }

  std::future<Result<T>> future() { return promise_.get_future(); }

 private:
  void settle(Result<T> r) noexcept {
    try {
      promise_.set_value(std::move(r));
    } catch (...) {  // NOLINT(bugprone-empty-catch): already settled; nothing to hand over
    }
  }

  std::size_t weight_;
  Fn fn_;
  std::optional<Result<T>> outcome_;
  std::promise<Result<T>> promise_;
};

class Writer {
 public:
  Writer(sql::Db db, std::size_t max_batch);
  /// Runs every job already queued, then stops the thread.
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  Writer(Writer&&) = delete;
  Writer& operator=(Writer&&) = delete;

  /// Queues `fn` and waits until its group transaction has committed (or failed).
  template <class T>
  Result<T> run(std::size_t weight, typename TypedJob<T>::Fn fn) {
    try {
      auto job = std::make_shared<TypedJob<T>>(weight, std::move(fn));
      auto done = job->future();
      if (auto refused = submit(job)) return *refused;
      return done.get();
    } catch (const std::exception& e) {
      return failure_of(e);
    }
  }

  /// Group transactions committed so far (for tests: far fewer than concurrent commits).
  [[nodiscard]] std::uint64_t transactions() const noexcept { return transactions_.load(); }

 private:
  std::optional<Failure> submit(std::shared_ptr<Job> job);
  void loop() noexcept;
  void run_group(std::vector<std::shared_ptr<Job>>& group) noexcept;
  std::optional<Failure> apply_all(std::vector<std::shared_ptr<Job>>& group);
  void roll_back() noexcept;

  sql::Db db_;
  std::size_t max_batch_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> transactions_{0};
  std::thread thread_;  // last: started once everything it uses exists
};

}  // namespace lorakeep::host::registry
