#include "host/registry/writer.hpp"

#include "host/registry/schema.hpp"

namespace lorakeep::host::registry {
namespace {

constexpr sql::Sql begin{"BEGIN IMMEDIATE", "begin a group of writes"};
constexpr sql::Sql commit{"COMMIT", "commit a group of writes"};
constexpr sql::Sql rollback{"ROLLBACK", "roll back a group of writes"};
constexpr sql::Sql savepoint{"SAVEPOINT job", "begin a write"};
constexpr sql::Sql release{"RELEASE job", "end a write"};
constexpr sql::Sql rollback_to{"ROLLBACK TO job", "undo a failed write"};

}  // namespace

Failure failure_of(const std::exception& e) {
  std::string message = e.what();
  if (message.rfind("registry: ", 0) != 0) message.insert(0, "registry: ");
  return fail(Status::internal, std::move(message));
}

Writer::Writer(sql::Db db, std::size_t max_batch)
    : db_(std::move(db)), max_batch_(max_batch), thread_([this] { loop(); }) {}

Writer::~Writer() {
  {
    const std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

std::optional<Failure> Writer::submit(std::shared_ptr<Job> job) {
  {
    const std::lock_guard lock(mu_);
    if (stopping_) return fail(Status::internal, "registry: closing; write refused");
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
  return std::nullopt;
}

void Writer::loop() noexcept {
  std::vector<std::shared_ptr<Job>> group;
  for (;;) {
    group.clear();
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to drain
      // Everything queued while the last group was being fsync'd goes into this one.
      std::size_t total = 0;
      while (!queue_.empty()) {
        const std::size_t w = queue_.front()->weight();
        if (!group.empty() && total + w > max_batch_) break;
        total += w;
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    run_group(group);
  }
}

void Writer::run_group(std::vector<std::shared_ptr<Job>>& group) noexcept {
  std::optional<Failure> failed;
  try {
    failed = apply_all(group);
  } catch (const std::exception& e) {
    failed = failure_of(e);
  } catch (...) {
    failed = fail(Status::internal, "registry: unknown exception in a group of writes");
  }
  if (failed) {
    roll_back();
    for (auto& job : group)
      job->deliver(*failed);
    return;
  }
  transactions_.fetch_add(1);
  for (auto& job : group)
    job->deliver();
}

std::optional<Failure> Writer::apply_all(std::vector<std::shared_ptr<Job>>& group) {
  db_.query(begin).run();
  schema::check_current(db_);  // inside the write lock: no migration can slip in after it
  for (auto& job : group) {
    db_.query(savepoint).run();
    const bool ok = job->apply(db_);
    // Some errors (disk full, I/O) make SQLite roll back the whole transaction itself:
    // the jobs before this one are gone too.
    if (db_.autocommit()) {
      return fail(Status::internal,
                  "registry: a write failed and SQLite rolled back its group transaction");
    }
    if (!ok) db_.query(rollback_to).run();
    db_.query(release).run();
  }
  db_.query(commit).run();
  return std::nullopt;
}

void Writer::roll_back() noexcept {
  if (db_.autocommit()) return;
  try {
    db_.query(rollback).run();
  } catch (...) {  // NOLINT(bugprone-empty-catch): the group has failed already; keep going
  }
}

}  // namespace lorakeep::host::registry
