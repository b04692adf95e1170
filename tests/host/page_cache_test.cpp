// The page-cache wrapper (host/registry/page_cache.*) over SQLite's real cache: it answers a
// truncation itself only when no page at or above the limit can be cached, hands every other
// one to SQLite, and a database worked hard through it (page splits, deletes, a rolled-back
// growth) stays intact.
#include <doctest.h>
#include <sqlite3.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "host/registry/page_cache.hpp"
#include "host/registry/sqlite_db.hpp"
#include "registry_fixture.hpp"

using namespace lorakeep::host::registry;
using lorakeep::registry_test::TempDir;

namespace {

// SQLite's spare page number for the swaps of a split, with 4 KiB pages (btree.c).
constexpr unsigned spare_key = (0x40000000U / 4096U) + 1U;

// Opens (and closes) one connection, which installs the wrapper and initialises SQLite.
void ready() {
  static const bool done = [] {
    const TempDir dir;
    auto db = sql::Db::open(dir.db(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    return true;
  }();
  REQUIRE(done);
  REQUIRE(page_cache::installed());
}

// A cache made through the wrapper, as a pager makes one.
class DirectCache {
 public:
  DirectCache() : m_(page_cache::methods()), cache_(m_.xCreate(4096, 16, 1)) {
    REQUIRE(cache_ != nullptr);
    m_.xCachesize(cache_, 1000);
  }
  ~DirectCache() { m_.xDestroy(cache_); }
  DirectCache(const DirectCache&) = delete;
  DirectCache& operator=(const DirectCache&) = delete;

  // Fetches (creating) the page, stamps its buffer with `mark`, and unpins it.
  void put(unsigned key, std::uint32_t mark) {
    sqlite3_pcache_page* page = m_.xFetch(cache_, key, 2);
    REQUIRE(page != nullptr);
    std::memcpy(page->pBuf, &mark, sizeof mark);
    m_.xUnpin(cache_, page, 0);
  }
  // The page's mark, or 0 when the cache has no page under `key`.
  std::uint32_t mark(unsigned key) {
    sqlite3_pcache_page* page = m_.xFetch(cache_, key, 0);
    if (page == nullptr) return 0;
    std::uint32_t mark = 0;
    std::memcpy(&mark, page->pBuf, sizeof mark);
    m_.xUnpin(cache_, page, 0);
    return mark;
  }
  // A page held, as the pager holds one while it renames it.
  sqlite3_pcache_page* hold(unsigned key) {
    sqlite3_pcache_page* page = m_.xFetch(cache_, key, 0);
    REQUIRE(page != nullptr);
    return page;
  }
  void release(sqlite3_pcache_page* page) { m_.xUnpin(cache_, page, 0); }
  // sqlite3PcacheMove: look for a page under the new key (to drop it), then rename.
  void rename(sqlite3_pcache_page* page, unsigned from, unsigned to) {
    REQUIRE(m_.xFetch(cache_, to, 0) == nullptr);
    m_.xRekey(cache_, page, from, to);
  }
  void rename(unsigned from, unsigned to) {
    sqlite3_pcache_page* page = hold(from);
    rename(page, from, to);
    release(page);
  }
  void truncate(unsigned limit) { m_.xTruncate(cache_, limit); }
  int pages() { return m_.xPagecount(cache_); }

 private:
  const sqlite3_pcache_methods2& m_;
  sqlite3_pcache* cache_;
};

struct Counts {
  std::uint64_t skipped = page_cache::truncations_skipped();
  std::uint64_t passed = page_cache::truncations_passed();
  std::uint64_t avoided = page_cache::walks_avoided_count();
  [[nodiscard]] std::uint64_t skipped_since() const {
    return page_cache::truncations_skipped() - skipped;
  }
  [[nodiscard]] std::uint64_t passed_since() const {
    return page_cache::truncations_passed() - passed;
  }
  [[nodiscard]] std::uint64_t avoided_since() const {
    return page_cache::walks_avoided_count() - avoided;
  }
};

}  // namespace

TEST_CASE("page cache: a truncation with nothing at or above its limit is answered at once") {
  ready();
  DirectCache cache;
  for (unsigned key = 1; key <= 10; ++key)
    cache.put(key, key);
  const Counts before;
  cache.truncate(11);
  CHECK(before.skipped_since() == 1);
  CHECK(before.passed_since() == 0);
  CHECK(before.avoided_since() == 0);  // SQLite's cache would not have walked either
  CHECK(cache.pages() == 10);
  for (unsigned key = 1; key <= 10; ++key)
    CHECK(cache.mark(key) == key);
}

TEST_CASE("page cache: a split's swap through the spare number leaves nothing to walk") {
  ready();
  DirectCache cache;
  for (unsigned key = 1; key <= 10; ++key)
    cache.put(key, key);
  // balance_nonroot's swap of pages 6 and 7.
  sqlite3_pcache_page* six = cache.hold(6);
  sqlite3_pcache_page* seven = cache.hold(7);
  cache.rename(six, 6, spare_key);
  cache.rename(seven, 7, 6);
  cache.rename(six, spare_key, 7);
  cache.release(six);
  cache.release(seven);
  const Counts before;
  cache.truncate(11);
  CHECK(before.skipped_since() == 1);
  CHECK(before.avoided_since() == 1);
  CHECK(cache.mark(6) == 7);
  CHECK(cache.mark(7) == 6);
  CHECK(cache.pages() == 10);
}

TEST_CASE("page cache: a page that is at or above the limit reaches SQLite's cache and goes") {
  ready();
  DirectCache cache;
  for (unsigned key = 1; key <= 10; ++key)
    cache.put(key, key);

  SUBCASE("renamed to the spare number and left there") {
    cache.rename(5, spare_key);
    const Counts before;
    cache.truncate(11);
    CHECK(before.passed_since() == 1);
    CHECK(cache.mark(spare_key) == 0);
    CHECK(cache.pages() == 9);
    const Counts after;
    cache.truncate(11);  // gone now: nothing left to drop
    CHECK(after.skipped_since() == 1);
  }
  SUBCASE("fetched above the limit (a growth rolled back)") {
    cache.put(20, 20);
    const Counts before;
    cache.truncate(11);
    CHECK(before.passed_since() == 1);
    CHECK(cache.mark(20) == 0);
    CHECK(cache.pages() == 10);
  }
  SUBCASE("more pages renamed high than the wrapper lists") {
    for (unsigned i = 0; i < 6; ++i)
      cache.rename(1 + i, 300000 + i);
    const Counts before;
    cache.truncate(11);
    CHECK(before.passed_since() == 1);
    for (unsigned i = 0; i < 6; ++i)
      CHECK(cache.mark(300000 + i) == 0);
    CHECK(cache.pages() == 4);
  }
  SUBCASE("everything, as when a connection's cache is reset") {
    const Counts before;
    cache.truncate(1);
    CHECK(before.passed_since() == 1);
    CHECK(cache.pages() == 0);
  }
}

TEST_CASE("page cache: a table split, deleted from and rolled back through it stays intact") {
  ready();
  const TempDir dir;
  auto db = sql::Db::open(dir.db(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  db.exec(
      "PRAGMA journal_mode = WAL; PRAGMA cache_size = -65536; "
      "CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID",
      "set up");
  std::mt19937_64 rng(20261125);
  std::map<std::vector<std::uint8_t>, std::vector<std::uint8_t>> mirror;
  const auto random_bytes = [&rng](std::size_t n) {
    std::vector<std::uint8_t> out(n);
    for (auto& b : out)
      b = static_cast<std::uint8_t>(rng());
    return out;
  };
  const sql::Sql insert{"INSERT INTO t (k, v) VALUES (?1, ?2)", "insert"};
  const sql::Sql remove{"DELETE FROM t WHERE k = ?1", "delete"};
  // Transactions of 100 rows with random keys, each value `value_size` bytes.
  const auto insert_committed = [&](int transactions, std::size_t value_size) {
    for (int txn = 0; txn < transactions; ++txn) {
      db.exec("BEGIN", "begin");
      for (int i = 0; i < 100; ++i) {
        auto k = random_bytes(16);
        auto v = random_bytes(value_size);
        db.query(insert).bind_blob(0, k).bind_blob(1, v).run();
        mirror[k] = v;
      }
      db.exec("COMMIT", "commit");
    }
  };
  const Counts before;

  // Random keys: pages split all over the tree, and their numbers get swapped.
  insert_committed(200, 120);
  CHECK(before.avoided_since() > 0);  // splits swapped pages: walks SQLite's cache would make

  // Deletes free pages, which later splits take again out of order.
  int n = 0;
  db.exec("BEGIN", "begin");
  for (auto it = mirror.begin(); it != mirror.end();) {
    if (++n % 3 == 0) {
      db.query(remove).bind_blob(0, it->first).run();
      it = mirror.erase(it);
    } else {
      ++it;
    }
  }
  db.exec("COMMIT", "commit");

  // A growth rolled back: its pages above the file's size must leave the cache.
  const auto size_before = db.single_integer("PRAGMA page_count", "page count");
  const Counts rollback;
  db.exec("BEGIN", "begin");
  for (int i = 0; i < 3000; ++i) {
    db.query(insert).bind_blob(0, random_bytes(16)).bind_blob(1, random_bytes(400)).run();
  }
  CHECK(db.single_integer("PRAGMA page_count", "page count") > size_before);
  db.exec("ROLLBACK", "roll back");
  CHECK(rollback.passed_since() > 0);
  CHECK(db.single_integer("PRAGMA page_count", "page count") == size_before);

  insert_committed(20, 200);

  auto check = db.query({"PRAGMA integrity_check", "integrity check"});
  REQUIRE(check.step());
  CHECK(check.text(0) == "ok");
  auto rows = db.query({"SELECT k, v FROM t ORDER BY k", "read all"});
  auto expected = mirror.begin();
  std::size_t count = 0;
  while (rows.step()) {
    REQUIRE(expected != mirror.end());
    CHECK(rows.blob(0) == expected->first);
    CHECK(rows.blob(1) == expected->second);
    ++expected;
    ++count;
  }
  CHECK(count == mirror.size());
}
