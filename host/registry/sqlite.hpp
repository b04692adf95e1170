// The SQLite registry: one file, WAL, synchronous=FULL. Reads run on a small pool of
// connections; every write goes through one writer thread that groups whatever is queued
// into a single transaction (group commit). Schema migrations are numbered
// (PRAGMA user_version); a file newer than this release knows is refused.
#pragma once

#include <filesystem>
#include <memory>

#include "host/registry/registry.hpp"

namespace lorakeep::host::registry {

struct SqliteOptions {
  std::filesystem::path path;
  Options registry;
  std::size_t read_connections = 4;  // 1 to 64
};

/// Opens (creating when missing, with mode 0600) and migrates the database. Fails with
/// Status::internal naming the file and what is wrong (cannot open, not a lorakeep
/// registry, schema version N newer than this release's M, …).
Result<std::unique_ptr<Registry>> open_sqlite(const SqliteOptions& options);

/// The schema version this release writes.
int sqlite_schema_version() noexcept;

}  // namespace lorakeep::host::registry
