// Thin RAII layer over the sqlite3 C API for the registry: an owned connection with a cache
// of prepared statements, and a Query that binds, steps and reads one cached statement and
// resets it when it goes out of scope (so no reader holds a WAL snapshot longer than it
// needs). Failures throw sql::Error, whose message starts "registry: "; the registry's
// public functions turn it into a Status::internal value.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace lorakeep::host::registry::sql {

/// A statement and what it does, for error messages ("registry: find device: <errmsg>").
struct Sql {
  std::string_view text;
  std::string_view what;
};

class Error : public std::runtime_error {
 public:
  Error(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  /// The (extended) SQLite result code; SQLITE_ERROR for failures that are not SQLite's.
  [[nodiscard]] int code() const noexcept { return code_; }

 private:
  int code_;
};

/// A prepared statement, finalized on destruction.
class Statement {
 public:
  explicit Statement(sqlite3_stmt* stmt) noexcept : stmt_(stmt) {}
  ~Statement();
  Statement(Statement&& other) noexcept : stmt_(other.stmt_) { other.stmt_ = nullptr; }
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  [[nodiscard]] sqlite3_stmt* get() const noexcept { return stmt_; }

 private:
  sqlite3_stmt* stmt_;
};

/// One use of a cached statement. Columns and parameters count from 0 (parameters are
/// shifted to SQLite's 1-based numbering here).
class Query {
 public:
  Query(sqlite3* db, sqlite3_stmt* stmt, std::string_view what) noexcept
      : db_(db), stmt_(stmt), what_(what) {}
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  Query(Query&&) = delete;
  Query& operator=(Query&&) = delete;

  Query& bind_int(int index, std::int64_t value);
  /// An empty span binds a zero-length blob, never NULL.
  Query& bind_blob(int index, std::span<const std::uint8_t> value);
  Query& bind_text(int index, std::string_view value);
  Query& bind_null(int index);

  /// Steps once: true when a row is there to read, false when the statement is done.
  bool step();
  /// Steps once and requires a row (an aggregate, a PRAGMA).
  void step_row();
  /// Steps to the end; for statements that return no rows.
  void run();

  [[nodiscard]] bool is_null(int column) const;
  [[nodiscard]] std::int64_t integer(int column) const;
  [[nodiscard]] std::vector<std::uint8_t> blob(int column) const;
  [[nodiscard]] std::string text(int column) const;

 private:
  [[noreturn]] void fail(int rc) const;
  void check_bind(int rc) const;

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  std::string_view what_;
};

/// An open connection. Used by one thread at a time.
class Db {
 public:
  /// sqlite3_open_v2 with `flags` (SQLITE_OPEN_*) plus extended result codes; the file
  /// must exist unless `flags` holds SQLITE_OPEN_CREATE.
  static Db open(const std::filesystem::path& path, int flags);
  ~Db();
  Db(Db&& other) noexcept;
  Db& operator=(Db&& other) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  /// Runs one or more statements that return nothing worth reading.
  void exec(const char* sql, std::string_view what);
  /// The statement, prepared once per connection and kept.
  [[nodiscard]] Query query(const Sql& sql);
  /// An integer PRAGMA or other single-value query.
  [[nodiscard]] std::int64_t single_integer(const char* sql, std::string_view what);
  /// Rows changed by the last INSERT, UPDATE or DELETE on this connection.
  [[nodiscard]] std::int64_t changes() const noexcept;
  /// True outside a transaction (SQLite rolls back by itself after some I/O errors).
  [[nodiscard]] bool autocommit() const noexcept;
  [[nodiscard]] sqlite3* get() const noexcept { return db_; }

 private:
  explicit Db(sqlite3* db) noexcept : db_(db) {}
  void close() noexcept;

  sqlite3* db_;
  std::unordered_map<std::string_view, Statement> cache_;
};

/// "registry: <what>: <sqlite3_errmsg>" with the code, as an Error to throw.
Error error(sqlite3* db, int rc, std::string_view what);

}  // namespace lorakeep::host::registry::sql
