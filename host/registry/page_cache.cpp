// Why this exists. When a B-tree page splits, SQLite (btree.c, balance_nonroot) puts the new
// sibling pages in ascending page-number order by swapping their numbers through a spare
// number, the page of the 1 GiB "pending byte" (262,145 with 4 KiB pages). Renaming a cached
// page to that number raises the page cache's highest key, and at the end of the write
// transaction SQLite asks the cache to drop every page above the database's size. Its cache
// (pcache1Truncate) only knows that highest key, so, with 262,145 far above the size, it walks
// every hash bucket and every cached page to find none. With the registry's writer holding a
// 64 MiB cache of a large registry, that walk was 6-7 % of lorakeep-js's CPU with joins spread
// over a million devices (docs/benchmarks.md, *Spread over a million*); with 1,000 devices the
// cache is small and the walk cheap.
//
// The wrapper leaves every page operation to SQLite's cache and follows only which keys can be
// present: the highest key ever fetched, and the few keys pages were renamed to above it (the
// spare number, until the swap moves the page on). A truncation with nothing at or above its
// limit is answered at once; any other goes to SQLite's cache, which then drops exactly what it
// would have. The bookkeeping errs one way only: when unsure, it passes the truncation on.
#include "host/registry/page_cache.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <new>

namespace lorakeep::host::registry::page_cache {
namespace {

sqlite3_pcache_methods2 base{};  // SQLite's own cache, as SQLITE_CONFIG_GETPCACHE2 gave it
std::atomic<bool> in_place{false};
std::atomic<std::uint64_t> skipped{0};
std::atomic<std::uint64_t> passed{0};
std::atomic<std::uint64_t> walks_avoided{0};

// One cache of one connection's pager. SQLite calls a cache's methods from one thread at a
// time (the connection's), so this needs no lock of its own.
struct Cache {
  sqlite3_pcache* inner = nullptr;
  unsigned ceiling = 0;         // every fetched key is at most this
  unsigned sqlite_highest = 0;  // SQLite's cache's own highest key, mirrored (for the counter)
  // Keys above the ceiling that a page was renamed to and still holds. A split uses one at
  // a time; if more are ever in use, the ceiling absorbs the rest (err on passing on).
  std::array<unsigned, 4> renamed{};
  std::size_t renamed_count = 0;

  [[nodiscard]] bool may_hold_from(unsigned limit) const noexcept {
    if (ceiling >= limit) return true;
    return std::any_of(renamed.begin(),
                       renamed.begin() + static_cast<std::ptrdiff_t>(renamed_count),
                       [limit](unsigned key) { return key >= limit; });
  }

  void forget_renamed(unsigned key) noexcept {
    auto* const end = renamed.begin() + static_cast<std::ptrdiff_t>(renamed_count);
    auto* const it = std::find(renamed.begin(), end, key);
    if (it == end) return;
    *it = *(end - 1);
    --renamed_count;
  }

  void renamed_to(unsigned key) noexcept {
    if (key <= ceiling) return;
    if (renamed_count < renamed.size()) {
      renamed[renamed_count++] = key;
    } else {
      ceiling = key;
    }
  }

  // After SQLite's cache dropped every page at or above limit.
  void truncated_at(unsigned limit) noexcept {
    ceiling = std::min(ceiling, limit == 0 ? 0U : limit - 1);
    auto* const end = std::remove_if(renamed.begin(),
                                     renamed.begin() + static_cast<std::ptrdiff_t>(renamed_count),
                                     [limit](unsigned key) { return key >= limit; });
    renamed_count = static_cast<std::size_t>(end - renamed.begin());
  }
};

Cache* cache_of(sqlite3_pcache* p) noexcept {
  return reinterpret_cast<Cache*>(p);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
}

int init(void* /*unused*/) {
  return base.xInit != nullptr ? base.xInit(base.pArg) : SQLITE_OK;
}

void shutdown(void* /*unused*/) {
  if (base.xShutdown != nullptr) base.xShutdown(base.pArg);
}

sqlite3_pcache* create(int page_size, int extra_size, int purgeable) {
  sqlite3_pcache* inner = base.xCreate(page_size, extra_size, purgeable);
  if (inner == nullptr) return nullptr;
  auto* cache = new (std::nothrow) Cache{inner};
  if (cache == nullptr) {
    base.xDestroy(inner);
    return nullptr;
  }
  return reinterpret_cast<sqlite3_pcache*>(
      cache);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
}

void cachesize(sqlite3_pcache* p, int pages) {
  base.xCachesize(cache_of(p)->inner, pages);
}

int pagecount(sqlite3_pcache* p) {
  return base.xPagecount(cache_of(p)->inner);
}

sqlite3_pcache_page* fetch(sqlite3_pcache* p, unsigned key, int create_flag) {
  Cache* cache = cache_of(p);
  sqlite3_pcache_page* page = base.xFetch(cache->inner, key, create_flag);
  // No page back means none under this key (SQLite looks up the spare number that way
  // before renaming a page to it): nothing to follow.
  if (page != nullptr) {
    cache->ceiling = std::max(cache->ceiling, key);
    cache->forget_renamed(key);  // now covered by the ceiling
    cache->sqlite_highest = std::max(cache->sqlite_highest, key);
  }
  return page;
}

void unpin(sqlite3_pcache* p, sqlite3_pcache_page* page, int discard) {
  base.xUnpin(cache_of(p)->inner, page, discard);
}

void rekey(sqlite3_pcache* p, sqlite3_pcache_page* page, unsigned old_key, unsigned new_key) {
  Cache* cache = cache_of(p);
  base.xRekey(cache->inner, page, old_key, new_key);
  cache->forget_renamed(old_key);
  cache->renamed_to(new_key);
  cache->sqlite_highest = std::max(cache->sqlite_highest, new_key);
}

void truncate(sqlite3_pcache* p, unsigned limit) {
  Cache* cache = cache_of(p);
  if (!cache->may_hold_from(limit)) {
    skipped.fetch_add(1, std::memory_order_relaxed);
    // SQLite's cache would have walked its hash table: its highest key is above the limit.
    if (limit <= cache->sqlite_highest) walks_avoided.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  passed.fetch_add(1, std::memory_order_relaxed);
  base.xTruncate(cache->inner, limit);
  cache->truncated_at(limit);
  if (limit <= cache->sqlite_highest) cache->sqlite_highest = limit == 0 ? 0U : limit - 1;
}

void destroy(sqlite3_pcache* p) {
  Cache* cache = cache_of(p);
  base.xDestroy(cache->inner);
  delete cache;
}

void shrink(sqlite3_pcache* p) {
  if (base.xShrink != nullptr) base.xShrink(cache_of(p)->inner);
}

sqlite3_pcache_methods2 wrapper{};

}  // namespace

bool install() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    sqlite3_pcache_methods2 own{};
    if (sqlite3_config(SQLITE_CONFIG_GETPCACHE2, &own) != SQLITE_OK || own.xCreate == nullptr) {
      return;  // SQLite is initialised already: its cache stays
    }
    base = own;
    wrapper = sqlite3_pcache_methods2{base.iVersion, nullptr,   init,  shutdown, create,
                                      cachesize,     pagecount, fetch, unpin,    rekey,
                                      truncate,      destroy,   shrink};
    in_place = sqlite3_config(SQLITE_CONFIG_PCACHE2, &wrapper) == SQLITE_OK;
  });
  return in_place;
}

bool installed() noexcept {
  return in_place;
}

std::uint64_t truncations_skipped() noexcept {
  return skipped.load(std::memory_order_relaxed);
}

std::uint64_t truncations_passed() noexcept {
  return passed.load(std::memory_order_relaxed);
}

std::uint64_t walks_avoided_count() noexcept {
  return walks_avoided.load(std::memory_order_relaxed);
}

const sqlite3_pcache_methods2& methods() noexcept {
  return wrapper;
}

}  // namespace lorakeep::host::registry::page_cache
