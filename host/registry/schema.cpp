#include "host/registry/schema.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <string>
#include <system_error>

namespace lorakeep::host::registry::schema {
namespace {

// Migration N (1-based) takes user_version N-1 to N. Append only: a released step never
// changes, since files out there have already run it.
constexpr std::array<const char*, 4> migrations = {
    // 1: the first schema. DevEUIs, JoinEUIs, NetIDs and NSIDs are big-endian blobs, so that
    // blob order is DevEUI order. Root keys are either the wrapped keys or the part number
    // and serial. allowed_net_ids packs 3-byte NetIDs; dev_nonce_history packs big-endian
    // uint16s, oldest first (one blob read and written per join beats a child table).
    R"sql(
CREATE TABLE devices (
  dev_eui BLOB PRIMARY KEY NOT NULL CHECK (length(dev_eui) = 8),
  join_eui BLOB NOT NULL CHECK (length(join_eui) = 8),
  mac_version TEXT NOT NULL,
  app_key BLOB,
  nwk_key BLOB,
  part_number TEXT,
  serial BLOB,
  home_net_id BLOB NOT NULL CHECK (length(home_net_id) = 3),
  allowed_net_ids BLOB NOT NULL DEFAULT x'' CHECK (length(allowed_net_ids) % 3 = 0),
  hnsid BLOB CHECK (hnsid IS NULL OR length(hnsid) = 8),
  as_id TEXT,
  CHECK ((app_key IS NULL) != (part_number IS NULL)),
  CHECK ((part_number IS NULL) = (serial IS NULL))
) WITHOUT ROWID;

CREATE TABLE nonces (
  dev_eui BLOB PRIMARY KEY NOT NULL REFERENCES devices (dev_eui) ON DELETE CASCADE,
  generation INTEGER NOT NULL DEFAULT 0,
  join_nonce_last INTEGER NOT NULL DEFAULT 0,
  dev_nonce_last INTEGER,
  dev_nonce_history BLOB NOT NULL DEFAULT x'' CHECK (length(dev_nonce_history) % 2 = 0),
  rj_count1_last INTEGER
) WITHOUT ROWID;

CREATE TABLE sessions (
  id INTEGER PRIMARY KEY,
  dev_eui BLOB NOT NULL REFERENCES devices (dev_eui) ON DELETE CASCADE,
  session_key_id BLOB NOT NULL,
  stored_app_s_key BLOB NOT NULL,
  net_id BLOB NOT NULL CHECK (length(net_id) = 3),
  created_unix INTEGER NOT NULL,
  UNIQUE (dev_eui, session_key_id)
);

CREATE TABLE peers (
  kind TEXT NOT NULL CHECK (kind IN ('ns', 'as')),
  id TEXT NOT NULL,
  kek_label TEXT,
  plaintext_keys INTEGER NOT NULL CHECK (plaintext_keys IN (0, 1)),
  PRIMARY KEY (kind, id)
) WITHOUT ROWID;

CREATE TABLE audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  time_unix INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  subject TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
)sql",
    // 2: a session keeps the AppSKey as the JoinAns delivered it to the AS, under the AS's
    // KEK (label and RFC 3394 wrap), so that an AppSKeyReq is answered with no token call
    // and no join pays a second wrap under the storage key. Empty in sessions from before.
    R"sql(
ALTER TABLE sessions ADD COLUMN as_kek_label TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN as_app_s_key BLOB NOT NULL DEFAULT x'';
)sql",
    // 3: what a session's keys were derived from besides the device record (the request as
    // received, the accept's JoinNonce and DLSettings), so that an AppSKeyReq from an AS
    // whose KEK changed since the JoinAns is answered by deriving the AppSKey again in the
    // token. Empty in sessions from before: those are refused as until now.
    R"sql(
ALTER TABLE sessions ADD COLUMN origin_request BLOB NOT NULL DEFAULT x'';
ALTER TABLE sessions ADD COLUMN origin_join_nonce INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN origin_dl_settings INTEGER NOT NULL DEFAULT 0;
)sql",
    // 4: sessions clustered by device (WITHOUT ROWID, keyed by DevEUI and SessionKeyID), so
    // that a join's new session, the old one it trims and the key lookup share one page.
    // With a rowid table and a separate unique index they were three pages of every join's
    // commit: 4.4 pages went to the WAL per join, 2.2 now (docs/benchmarks.md, "Fewer pages
    // per join"). `seq` orders a device's sessions as `id` did (the old ids carry over).
    R"sql(
CREATE TABLE sessions_by_device (
  dev_eui BLOB NOT NULL REFERENCES devices (dev_eui) ON DELETE CASCADE,
  session_key_id BLOB NOT NULL,
  seq INTEGER NOT NULL,
  stored_app_s_key BLOB NOT NULL,
  net_id BLOB NOT NULL CHECK (length(net_id) = 3),
  created_unix INTEGER NOT NULL,
  as_kek_label TEXT NOT NULL DEFAULT '',
  as_app_s_key BLOB NOT NULL DEFAULT x'',
  origin_request BLOB NOT NULL DEFAULT x'',
  origin_join_nonce INTEGER NOT NULL DEFAULT 0,
  origin_dl_settings INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (dev_eui, session_key_id)
) WITHOUT ROWID;
INSERT INTO sessions_by_device
  SELECT dev_eui, session_key_id, id, stored_app_s_key, net_id, created_unix, as_kek_label,
         as_app_s_key, origin_request, origin_join_nonce, origin_dl_settings FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_by_device RENAME TO sessions;
)sql",
};

// Long enough to ride out lorakeepctl's short write transactions from another process.
constexpr int busy_timeout_ms = 5000;

constexpr int open_flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;

bool is_not_a_database(const sql::Error& e) {
  return (e.code() & 0xFF) == SQLITE_NOTADB;
}

// Created here rather than by SQLite so that the mode is 0600 from the first byte; SQLite
// gives the -wal and -shm files the database file's mode.
void create_private(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) {
    ::close(fd);
    return;
  }
  const int err = errno;
  if (err == EEXIST) return;
  throw sql::Error(SQLITE_CANTOPEN, "registry: cannot create " + path.string() + ": " +
                                        std::generic_category().message(err));
}

std::string hex32(std::int64_t v) {
  std::array<char, 16> buf{};
  std::snprintf(buf.data(), buf.size(), "0x%08llX", static_cast<unsigned long long>(v));
  return buf.data();
}

constexpr sql::Sql read_user_version{"PRAGMA user_version", "read user_version"};

// The schema version the file says (prepared once per connection: the writer reads it in
// every group).
std::int64_t user_version(sql::Db& db) {
  auto q = db.query(read_user_version);
  q.step_row();
  return q.integer(0);
}

// Refuses another program's database and a schema newer than this release's.
void check_identity(sql::Db& db, const std::string& name) {
  const auto app = db.single_integer("PRAGMA application_id", "read application_id");
  const auto on_file = user_version(db);
  const auto objects = db.single_integer("SELECT count(*) FROM sqlite_schema", "read schema");
  const bool ours = app == application_id || (app == 0 && objects == 0);
  if (!ours) {
    throw sql::Error(SQLITE_ERROR, "registry: " + name +
                                       " is not a lorakeep registry (application_id " + hex32(app) +
                                       ", " + std::to_string(objects) + " schema objects)");
  }
  if (on_file > version() || on_file < 0) {
    throw sql::Error(SQLITE_ERROR, "registry: " + name + " has schema version " +
                                       std::to_string(on_file) + ", newer than this release's " +
                                       std::to_string(version()) + "; upgrade lorakeep");
  }
}

void migrate(sql::Db& db, const std::string& name) {
  db.exec("BEGIN IMMEDIATE", "begin the migration of " + name);
  try {
    // Again inside the write lock: another process may have migrated meanwhile.
    check_identity(db, name);
    const auto from = user_version(db);
    for (auto step = static_cast<std::size_t>(from); step < migrations.size(); ++step) {
      db.exec(migrations.at(step), "migration " + std::to_string(step + 1) + " of " + name);
    }
    if (from < version()) {
      db.exec(("PRAGMA user_version = " + std::to_string(version())).c_str(), "set user_version");
      db.exec(("PRAGMA application_id = " + std::to_string(application_id)).c_str(),
              "set application_id");
    }
    db.exec("COMMIT", "commit the migration of " + name);
  } catch (...) {
    if (!db.autocommit()) {
      try {
        db.exec("ROLLBACK", "roll back the migration");
      } catch (const sql::Error&) {  // NOLINT(bugprone-empty-catch): the first error says more
      }
    }
    throw;
  }
}

}  // namespace

void check_current(sql::Db& db) {
  const std::int64_t now = user_version(db);
  if (now == version()) return;
  throw sql::Error(SQLITE_ERROR,
                   "registry: its schema changed to version " + std::to_string(now) +
                       " while this process had it open (this release knows " +
                       std::to_string(version()) +
                       "): another program migrated it; restart with the release that did");
}

int version() noexcept {
  return static_cast<int>(migrations.size());
}

sql::Db open_writer(const std::filesystem::path& path) {
  const std::string name = path.string();
  create_private(path);
  auto db = sql::Db::open(path, open_flags);
  sqlite3_busy_timeout(db.get(), busy_timeout_ms);
  try {
    // The first statement reads the header: where a file that is not SQLite shows.
    check_identity(db, name);
  } catch (const sql::Error& e) {
    if (is_not_a_database(e)) {
      throw sql::Error(e.code(), "registry: " + name + " is not an SQLite database");
    }
    throw;
  }
  {
    auto q = db.query({"PRAGMA journal_mode = WAL", "switch to WAL"});
    if (!q.step() || q.text(0) != "wal") {
      throw sql::Error(SQLITE_ERROR, "registry: " + name + " cannot be switched to WAL mode");
    }
  }
  // FULL: in WAL mode a commit is durable when COMMIT returns (the WAL is fsync'd).
  db.exec(
      "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; "
      "PRAGMA cache_size = -65536",
      "configure " + name);
  migrate(db, name);
  return db;
}

sql::Db open_reader(const std::filesystem::path& path) {
  auto db = sql::Db::open(path, open_flags);
  sqlite3_busy_timeout(db.get(), busy_timeout_ms);
  db.exec("PRAGMA query_only = ON; PRAGMA cache_size = -65536",
          "configure a reader of " + path.string());
  return db;
}

}  // namespace lorakeep::host::registry::schema
