// SQLite's own page cache, wrapped so that a write transaction's end does not walk the whole
// cache for nothing. Why and how: page_cache.cpp, docs/benchmarks.md (*Spread over a
// million*).
#pragma once

#include <cstdint>

struct sqlite3_pcache_methods2;

namespace lorakeep::host::registry::page_cache {

/// Installs the wrapper as this process's SQLite page cache. It must run before SQLite is
/// initialised, so sql::Db::open calls it (once) before its first connection. Returns whether
/// the wrapper is in place; when SQLite was initialised earlier by something else, SQLite's
/// cache stays as it is and nothing else changes.
bool install() noexcept;

/// Whether install() put the wrapper in place.
bool installed() noexcept;

/// Truncations answered without SQLite's cache, since no page at or above the limit exists.
std::uint64_t truncations_skipped() noexcept;

/// Truncations handed to SQLite's cache, which had (or may have had) a page to drop.
std::uint64_t truncations_passed() noexcept;

/// Of the skipped truncations, those where SQLite's cache would have walked every page: its
/// highest key was above the limit (a page had been renamed to a spare number and back).
std::uint64_t walks_avoided_count() noexcept;

/// The wrapper's methods, for tests that drive a cache directly. Valid after install().
const sqlite3_pcache_methods2& methods() noexcept;

}  // namespace lorakeep::host::registry::page_cache
