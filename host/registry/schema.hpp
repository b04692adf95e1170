// The registry's schema, its numbered migrations and how connections are opened.
#pragma once

#include <filesystem>

#include "host/registry/sqlite_db.hpp"

namespace lorakeep::host::registry::schema {

/// PRAGMA application_id of a lorakeep registry ("LKRG"), so that another program's SQLite
/// file is refused rather than migrated.
inline constexpr std::int64_t application_id = 0x4C4B5247;

/// The number of migrations this release knows: the user_version it writes.
int version() noexcept;

/// Opens the write connection: creates the file (mode 0600) when missing, checks that it is
/// SQLite and a lorakeep registry no newer than this release, switches it to WAL, and
/// applies the missing migrations in one transaction. Throws sql::Error naming the file.
sql::Db open_writer(const std::filesystem::path& path);

/// Opens a read connection (query_only) to a registry open_writer has prepared.
sql::Db open_reader(const std::filesystem::path& path);

/// Throws sql::Error when the registry's schema is no longer this release's: another
/// program (a newer lorakeepctl) migrated it after this process opened it. The writer checks
/// inside each group's transaction, so nothing is written against a schema it does not
/// know; the readiness check calls it too.
void check_current(sql::Db& db);

}  // namespace lorakeep::host::registry::schema
