#include "host/registry/sqlite_db.hpp"

#include <sqlite3.h>

#include <limits>
#include <utility>

#include "host/registry/page_cache.hpp"

namespace lorakeep::host::registry::sql {

Error error(sqlite3* db, int rc, std::string_view what) {
  std::string message = "registry: ";
  message += what;
  message += ": ";
  // sqlite3_errmsg describes the connection's last failure; for a failure that left no
  // connection, or a code the connection did not record, the generic text is all there is.
  if (db != nullptr && sqlite3_extended_errcode(db) == rc) {
    message += sqlite3_errmsg(db);
  } else {
    message += sqlite3_errstr(rc);
  }
  return Error(rc, message);
}

// ---- Statement ----

Statement::~Statement() {
  sqlite3_finalize(stmt_);
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    stmt_ = std::exchange(other.stmt_, nullptr);
  }
  return *this;
}

// ---- Query ----

Query::~Query() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void Query::fail(int rc) const {
  throw error(db_, rc, what_);
}

void Query::check_bind(int rc) const {
  if (rc != SQLITE_OK) fail(rc);
}

Query& Query::bind_int(int index, std::int64_t value) {
  check_bind(sqlite3_bind_int64(stmt_, index + 1, value));
  return *this;
}

Query& Query::bind_blob(int index, std::span<const std::uint8_t> value) {
  if (value.empty()) {
    check_bind(sqlite3_bind_zeroblob(stmt_, index + 1, 0));
  } else if (value.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    fail(SQLITE_TOOBIG);
  } else {
    check_bind(sqlite3_bind_blob(stmt_, index + 1, value.data(), static_cast<int>(value.size()),
                                 SQLITE_TRANSIENT));
  }
  return *this;
}

Query& Query::bind_text(int index, std::string_view value) {
  if (value.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) fail(SQLITE_TOOBIG);
  // A non-null pointer even for "": a null one would bind NULL.
  const char* data = value.empty() ? "" : value.data();
  check_bind(
      sqlite3_bind_text(stmt_, index + 1, data, static_cast<int>(value.size()), SQLITE_TRANSIENT));
  return *this;
}

Query& Query::bind_null(int index) {
  check_bind(sqlite3_bind_null(stmt_, index + 1));
  return *this;
}

bool Query::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail(rc);
}

void Query::step_row() {
  if (!step()) throw Error(SQLITE_ERROR, "registry: " + std::string(what_) + ": no row");
}

void Query::run() {
  while (step()) {
  }
}

bool Query::is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::int64_t Query::integer(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

std::vector<std::uint8_t> Query::blob(int column) const {
  // sqlite3_column_blob first, then the size: the order SQLite documents as safe.
  const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, column));
  const int size = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr || size <= 0) return {};
  return {data, data + size};
}

std::string Query::text(int column) const {
  const auto* data = sqlite3_column_text(stmt_, column);
  const int size = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr || size <= 0) return {};
  return {reinterpret_cast<const char*>(data), static_cast<std::size_t>(size)};
}

// ---- Db ----

Db Db::open(const std::filesystem::path& path, int flags) {
  registry::page_cache::install();  // before SQLite initialises; without it SQLite's cache serves
                                    // as is
  sqlite3* handle = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &handle, flags | SQLITE_OPEN_EXRESCODE, nullptr);
  Db db(handle);  // closes the handle SQLite hands back even on failure
  if (rc != SQLITE_OK) throw error(handle, rc, "cannot open " + path.string());
  return db;
}

Db::~Db() {
  close();
}

Db::Db(Db&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), cache_(std::move(other.cache_)) {}

Db& Db::operator=(Db&& other) noexcept {
  if (this != &other) {
    close();
    db_ = std::exchange(other.db_, nullptr);
    cache_ = std::move(other.cache_);
  }
  return *this;
}

void Db::close() noexcept {
  cache_.clear();  // statements first: a connection with live statements stays open
  sqlite3_close_v2(db_);
  db_ = nullptr;
}

void Db::exec(const char* sql, std::string_view what) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
  sqlite3_free(message);  // sqlite3_errmsg says the same
  if (rc != SQLITE_OK) throw error(db_, rc, what);
}

Query Db::query(const Sql& sql) {
  auto it = cache_.find(sql.text);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql.text.data(), static_cast<int>(sql.text.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    Statement owned(stmt);
    if (rc != SQLITE_OK) throw error(db_, rc, sql.what);
    it = cache_.emplace(sql.text, std::move(owned)).first;
  }
  return Query(db_, it->second.get(), sql.what);
}

std::int64_t Db::single_integer(const char* sql, std::string_view what) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
  Statement owned(stmt);
  if (rc != SQLITE_OK) throw error(db_, rc, what);
  Query q(db_, stmt, what);
  q.step_row();
  return q.integer(0);
}

std::int64_t Db::changes() const noexcept {
  return sqlite3_changes64(db_);
}

bool Db::autocommit() const noexcept {
  return sqlite3_get_autocommit(db_) != 0;
}

}  // namespace lorakeep::host::registry::sql
