// A fixed pool of read connections (WAL readers): each is lent to one thread at a time.
#pragma once

#include <condition_variable>
#include <mutex>
#include <vector>

#include "host/registry/sqlite_db.hpp"

namespace lorakeep::host::registry {

class ReadPool {
 public:
  explicit ReadPool(std::vector<sql::Db> connections);

  /// A connection on loan; back in the pool when the lease goes.
  class Lease {
   public:
    Lease(ReadPool& pool, sql::Db* db) noexcept : pool_(pool), db_(db) {}
    ~Lease() { pool_.give_back(db_); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease(Lease&&) = delete;
    Lease& operator=(Lease&&) = delete;
    [[nodiscard]] sql::Db& db() const noexcept { return *db_; }

   private:
    ReadPool& pool_;
    sql::Db* db_;
  };

  /// Waits until a connection is free.
  [[nodiscard]] Lease acquire();

 private:
  void give_back(sql::Db* db) noexcept;

  std::vector<sql::Db> connections_;
  std::mutex mu_;
  std::condition_variable freed_;
  std::vector<sql::Db*> free_;
};

}  // namespace lorakeep::host::registry
