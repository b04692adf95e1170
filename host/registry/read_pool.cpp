#include "host/registry/read_pool.hpp"

#include <utility>

namespace lorakeep::host::registry {

ReadPool::ReadPool(std::vector<sql::Db> connections) : connections_(std::move(connections)) {
  free_.reserve(connections_.size());
  for (auto& c : connections_)
    free_.push_back(&c);
}

ReadPool::Lease ReadPool::acquire() {
  std::unique_lock lock(mu_);
  freed_.wait(lock, [this] { return !free_.empty(); });
  sql::Db* db = free_.back();
  free_.pop_back();
  return Lease(*this, db);
}

void ReadPool::give_back(sql::Db* db) noexcept {
  {
    const std::lock_guard lock(mu_);
    free_.push_back(db);  // never reallocates: reserved for every connection
  }
  freed_.notify_one();
}

}  // namespace lorakeep::host::registry
