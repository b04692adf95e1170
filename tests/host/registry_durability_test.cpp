// The SQLite registry on real files, each test in its own temporary directory: durability
// across close and across a crash, files it must refuse, group commit under concurrency,
// bulk adds, and a group transaction that fails as a whole.
#include <doctest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <thread>

#include "host/registry/sqlite.hpp"
#include "host/registry/sqlite_registry.hpp"
#include "registry_fixture.hpp"

using namespace lorakeep;
using namespace lorakeep::host::registry;
using namespace lorakeep::registry_test;
using lorawan::MacVersion;

TEST_CASE("durability: everything is there after close and reopen; the files are 0600") {
  TempDir dir;
  Device d = wrapped(1, MacVersion::v1_1);
  d.allowed_net_ids = {lorawan::NetId::from_uint(0x600001)};
  const Commit c = join(d.dev_eui, 0, 1);
  const Peer p{PeerKind::network_server, "600001", "kek", false};
  {
    auto reg = open(dir);
    must(reg->add_device(d));
    must(reg->add_device(part(2)));
    REQUIRE(must(reg->commit(c)) == CommitOutcome::committed);
    must(reg->put_peer(p));
    must(reg->audit(AuditRecord{1, "a", "b", "c", "d"}));
    for (const char* suffix : {"", "-wal", "-shm"}) {
      struct stat st {};
      REQUIRE(::stat((dir.db().string() + suffix).c_str(), &st) == 0);
      CHECK_MESSAGE((st.st_mode & 0777) == 0600, suffix);
    }
  }
  auto reg = open(dir);
  CHECK(must(reg->find_device(d.dev_eui)) == d);
  CHECK(must(reg->find_device(eui(2))) == part(2));
  CHECK(state(*reg, d.dev_eui).generation == 1);
  CHECK(must(reg->find_session(d.dev_eui, c.session.session_key_id)) == c.session);
  CHECK(must(reg->find_peer(PeerKind::network_server, "600001")) == p);
  CHECK(must(reg->audit_log(10)).size() == 1);
  CHECK(sqlite_schema_version() >= 1);
}

TEST_CASE("durability: a commit survives a process that exits without closing") {
  TempDir dir;
  const auto dev = eui(1);
  { must(open(dir)->add_device(wrapped(1))); }
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // No doctest in the child: its verdict is the exit status. _exit skips every
    // destructor, so the writer thread and the connections are simply abandoned.
    auto reg = open_sqlite(SqliteOptions{dir.db(), {}, 1});
    if (!reg.ok()) ::_exit(2);
    auto r = (*reg)->commit(join(dev, 0, 7));
    ::_exit(r.ok() && *r == CommitOutcome::committed ? 0 : 3);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  auto reg = open(dir);
  CHECK(state(*reg, dev).generation == 1);
  CHECK(must(reg->find_session(dev, Bytes{0x5E, 7})).has_value());
}

namespace {

// What the migrations after `version` changed, undone: a registry as that version wrote it.
// Schema 3's sessions were a rowid table with a unique index; its ids follow `seq`.
std::string back_to(int version) {
  std::string sql =
      "CREATE TABLE sessions_v3 (id INTEGER PRIMARY KEY, dev_eui BLOB NOT NULL REFERENCES "
      "devices (dev_eui) ON DELETE CASCADE, session_key_id BLOB NOT NULL, stored_app_s_key "
      "BLOB NOT NULL, net_id BLOB NOT NULL CHECK (length(net_id) = 3), created_unix INTEGER "
      "NOT NULL, as_kek_label TEXT NOT NULL DEFAULT '', as_app_s_key BLOB NOT NULL DEFAULT "
      "x'', origin_request BLOB NOT NULL DEFAULT x'', origin_join_nonce INTEGER NOT NULL "
      "DEFAULT 0, origin_dl_settings INTEGER NOT NULL DEFAULT 0, UNIQUE (dev_eui, "
      "session_key_id)); "
      "INSERT INTO sessions_v3 (dev_eui, session_key_id, stored_app_s_key, net_id, "
      "created_unix, as_kek_label, as_app_s_key, origin_request, origin_join_nonce, "
      "origin_dl_settings) SELECT dev_eui, session_key_id, stored_app_s_key, net_id, "
      "created_unix, as_kek_label, as_app_s_key, origin_request, origin_join_nonce, "
      "origin_dl_settings FROM sessions ORDER BY seq; "
      "DROP TABLE sessions; ALTER TABLE sessions_v3 RENAME TO sessions; ";
  if (version < 3) {
    sql +=
        "ALTER TABLE sessions DROP COLUMN origin_request; "
        "ALTER TABLE sessions DROP COLUMN origin_join_nonce; "
        "ALTER TABLE sessions DROP COLUMN origin_dl_settings; ";
  }
  if (version < 2) {
    sql +=
        "ALTER TABLE sessions DROP COLUMN as_kek_label; "
        "ALTER TABLE sessions DROP COLUMN as_app_s_key; ";
  }
  return sql + "PRAGMA user_version = " + std::to_string(version);
}

}  // namespace

TEST_CASE("open: a registry from schema version 1, 2 or 3 is migrated, its sessions kept") {
  for (int version : {1, 2, 3}) {
    CAPTURE(version);
    TempDir dir;
    const auto dev = eui(1);
    Commit delivered = join(dev, 1, 2);
    delivered.session.stored_app_s_key.clear();
    delivered.session.as_kek_label = "as-kek";
    delivered.session.as_app_s_key = Bytes(24, 0xA5);
    delivered.session.origin = {Bytes(23, 0x00), 0x00ABCD, 0x03};
    Session old = session(dev, 1);
    if (version == 3) old.origin = {Bytes(23, 0x11), 0x000042, 0x02};
    if (version >= 2) {
      old.stored_app_s_key.clear();
      old.as_kek_label = "as-kek";
      old.as_app_s_key = Bytes(24, 0x5A);
    }
    {
      auto reg = open(dir);
      must(reg->add_device(wrapped(1)));
      Commit first = join(dev, 0, 1);
      first.session = old;
      REQUIRE(must(reg->commit(first)) == CommitOutcome::committed);
    }
    sql_exec(dir.db(), back_to(version).c_str());
    auto reg = open(dir);
    // Read back as it was written; the origin of a session from before schema 3 is empty.
    CHECK(must(reg->find_session(dev, Bytes{0x5E, 1})) == old);
    CHECK(must(reg->find_session(dev, Bytes{0x5E, 1}))->origin.request.empty() == (version < 3));
    // A session of the new kind is written and read back whole.
    REQUIRE(must(reg->commit(delivered)) == CommitOutcome::committed);
    CHECK(must(reg->find_session(dev, Bytes{0x5E, 2})) == delivered.session);
    reg.reset();
    CHECK(must(open(dir)->find_session(dev, Bytes{0x5E, 2})) == delivered.session);
  }
}

TEST_CASE("open: sessions from schema 3 keep their order; new ones come after them") {
  TempDir dir;
  const auto a = eui(1);
  const auto b = eui(2);
  {
    auto reg = open(dir);
    must(reg->add_device(wrapped(1)));
    must(reg->add_device(wrapped(2)));
    // All made in the same second: only the order of insertion tells them apart.
    REQUIRE(must(reg->commit(join(a, 0, 1))) == CommitOutcome::committed);
    REQUIRE(must(reg->commit(join(b, 0, 1))) == CommitOutcome::committed);
    REQUIRE(must(reg->commit(join(a, 1, 2))) == CommitOutcome::committed);
  }
  sql_exec(dir.db(), back_to(3).c_str());
  Options o;
  o.sessions_kept = 2;
  auto reg = open(dir, o);
  const auto ids = [&](const lorawan::DevEui& dev) {
    std::vector<Bytes> out;
    for (const auto& s : must(reg->sessions(dev)))
      out.push_back(s.session_key_id);
    return out;
  };
  CHECK(ids(a) == std::vector<Bytes>{{0x5E, 2}, {0x5E, 1}});
  REQUIRE(must(reg->commit(join(a, 2, 3))) == CommitOutcome::committed);
  // The newest is the one made after the migration; the oldest of a's is trimmed, b's stays.
  CHECK(ids(a) == std::vector<Bytes>{{0x5E, 3}, {0x5E, 2}});
  CHECK(ids(b) == std::vector<Bytes>{{0x5E, 1}});
}

TEST_CASE("writes: a join's commit puts about two pages in the WAL") {
  // What the disk pays per join (docs/benchmarks.md, "Fewer pages per join"): the nonce
  // row's page and the device's sessions page. A rowid sessions table with its unique index
  // put 4.4 there, since the new row, the index entry and the trimmed row each had a page.
  TempDir dir;
  constexpr std::uint64_t devices = 100;
  constexpr std::uint64_t rounds = 6;  // past sessions_kept (4): every later join trims one
  auto reg = open(dir);
  for (std::uint64_t n = 1; n <= devices; ++n)
    must(reg->add_device(wrapped(n)));
  // Devices in a scattered order (37 is coprime to 100), each join its own transaction.
  const auto one_round = [&](std::uint64_t round) {
    for (std::uint64_t i = 0; i < devices; ++i) {
      const auto dev = eui(1 + (i * 37) % devices);
      REQUIRE(must(reg->commit(join(dev, round, static_cast<std::uint8_t>(round + 1)))) ==
              CommitOutcome::committed);
    }
  };
  for (std::uint64_t round = 0; round + 1 < rounds; ++round)
    one_round(round);

  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(dir.db().c_str(), &db) == SQLITE_OK);
  // A first read opens the file and finds it in WAL mode; until then there is no WAL to check.
  REQUIRE(sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", nullptr, nullptr, nullptr) ==
          SQLITE_OK);
  int frames = -1;
  int copied = -1;
  // Everything copied: the writer's next transaction starts the WAL over.
  REQUIRE(sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, &frames, &copied) ==
          SQLITE_OK);
  one_round(rounds - 1);
  REQUIRE(sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied) ==
          SQLITE_OK);
  sqlite3_close(db);
  const double per_join = static_cast<double>(frames) / static_cast<double>(devices);
  CAPTURE(per_join);
  CHECK(per_join >= 1.0);
  CHECK(per_join <= 3.0);
  CHECK(must(reg->sessions(eui(1))).size() == Options{}.sessions_kept);
}

TEST_CASE("open: refuses newer schemas, non-SQLite files, other databases, bad options") {
  TempDir dir;
  { open(dir); }
  SUBCASE("a newer user_version") {
    sql_exec(dir.db(), "PRAGMA user_version = 99");
    const auto m = open_error(dir.db());
    CHECK(m.find("schema version 99") != std::string::npos);
    CHECK(m.find("newer") != std::string::npos);
  }
  SUBCASE("a file that is not SQLite") {
    const auto path = dir.db().parent_path() / "notes.txt";
    std::ofstream(path) << std::string(4096, 'x');
    CHECK(open_error(path).find("not an SQLite database") != std::string::npos);
  }
  SUBCASE("another program's SQLite database") {
    const auto path = dir.db().parent_path() / "other.db";
    sql_exec(path, "CREATE TABLE t (x)");
    CHECK(open_error(path).find("not a lorakeep registry") != std::string::npos);
  }
  SUBCASE("a directory that does not exist") {
    CHECK(open_error(dir.db().parent_path() / "no" / "such.db").find("cannot create") !=
          std::string::npos);
  }
  SUBCASE("options out of range") {
    SqliteOptions o{dir.db(), {}, 0};
    CHECK(open_sqlite(o).failure().status == Status::malformed);
    o.read_connections = 1;
    o.registry.sessions_kept = 0;
    CHECK(open_sqlite(o).failure().status == Status::malformed);
  }
}

TEST_CASE("concurrency: 16 threads × 200 commits share group transactions") {
  TempDir dir;
  auto reg = open(dir);
  constexpr std::uint64_t threads = 16;
  constexpr std::uint64_t per_thread = 200;
  for (std::uint64_t t = 0; t < threads; ++t)
    must(reg->add_device(wrapped(t)));
  auto& sqlite = dynamic_cast<SqliteRegistry&>(*reg);
  const auto tx_before = sqlite.transactions();
  std::atomic<std::uint64_t> committed{0};
  std::atomic<std::uint64_t> other{0};
  const auto t0 = std::chrono::steady_clock::now();
  {
    std::vector<std::jthread> pool;
    pool.reserve(threads);
    for (std::uint64_t t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        for (std::uint64_t i = 0; i < per_thread; ++i) {
          auto r = reg->commit(join(eui(t), i, static_cast<std::uint8_t>(i)));
          (r.ok() && *r == CommitOutcome::committed ? committed : other).fetch_add(1);
        }
      });
    }
  }
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  const auto tx = sqlite.transactions() - tx_before;
  CHECK(committed.load() == threads * per_thread);
  CHECK(other.load() == 0);
  CHECK(tx < threads * per_thread);  // grouped: never one transaction per commit
  const std::uint64_t total = threads * per_thread;
  MESSAGE(total << " commits in " << tx << " transactions, " << ms << " ms");
  for (std::uint64_t t = 0; t < threads; ++t) {
    const auto s = state(*reg, eui(t));
    CHECK(s.generation == per_thread);
    CHECK(s.join_nonce_last == per_thread);
    CHECK(must(reg->sessions(eui(t))).size() == Options{}.sessions_kept);
  }
}

TEST_CASE("concurrency: racing commits with one generation: exactly one wins") {
  TempDir dir;
  auto reg = open(dir);
  const auto dev = eui(1);
  must(reg->add_device(wrapped(1)));
  constexpr int racers = 8;
  std::atomic<int> committed{0};
  std::atomic<int> conflicts{0};
  std::latch start(racers);
  {
    std::vector<std::jthread> pool;
    pool.reserve(racers);
    for (int i = 0; i < racers; ++i) {
      pool.emplace_back([&, i] {
        start.arrive_and_wait();
        auto r = reg->commit(join(dev, 0, static_cast<std::uint8_t>(i)));
        if (r.ok() && *r == CommitOutcome::committed) committed.fetch_add(1);
        if (r.ok() && *r == CommitOutcome::conflict) conflicts.fetch_add(1);
      });
    }
  }
  CHECK(committed.load() == 1);
  CHECK(conflicts.load() == racers - 1);
  CHECK(state(*reg, dev).generation == 1);
  CHECK(must(reg->sessions(dev)).size() == 1);
}

TEST_CASE("bulk: 100,000 devices through add_devices") {
  TempDir dir;
  auto reg = open(dir);
  constexpr std::uint64_t n = 100'000;
  std::vector<Device> devices;
  devices.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i)
    devices.push_back(i % 10 == 0 ? part(i) : wrapped(i));
  const auto t0 = std::chrono::steady_clock::now();
  const auto outcomes = must(reg->add_devices(devices));
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE(n << " devices added in " << seconds << " s (" << static_cast<double>(n) / seconds
            << " devices/s)");
  CHECK(outcomes.size() == n);
  CHECK(std::all_of(outcomes.begin(), outcomes.end(),
                    [](AddOutcome o) { return o == AddOutcome::added; }));
  CHECK(must(reg->count_devices()) == n);
  CHECK(must(reg->find_device(eui(n - 1))) == devices.back());
  CHECK(must(reg->add_devices({devices[5], devices[99'999]})) ==
        std::vector{AddOutcome::already_present, AddOutcome::already_present});
}

TEST_CASE("a group transaction that cannot run fails every write in it, and writes nothing") {
  TempDir dir;
  auto reg = open(dir);
  const auto dev = eui(1);
  must(reg->add_device(wrapped(1)));
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(dir.db().c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  auto r = reg->commit(join(dev, 0, 1));  // waits out the busy timeout (5 s)
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().status == Status::internal);
  CHECK(r.failure().message.find("registry: ") == 0);
  MESSAGE(r.failure().message);
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  CHECK(state(*reg, dev) == NonceState{});
  CHECK(must(reg->commit(join(dev, 0, 1))) == CommitOutcome::committed);
}

TEST_CASE(
    "a schema migrated under a running registry: writes refused and not ready, nothing changed") {
  // A newer lorakeepctl migrates the file while this process (an older lorakeep-js) has it
  // open. It must not write against a schema it does not know, and must say why.
  TempDir dir;
  auto reg = open(dir);
  const auto dev = eui(1);
  must(reg->add_device(wrapped(1)));
  CHECK(must(reg->commit(join(dev, 0, 1))) == CommitOutcome::committed);
  CHECK(reg->ping().ok());
  const auto now = sqlite_schema_version();
  const NonceState before = state(*reg, dev);
  sql_exec(dir.db(), ("PRAGMA user_version = " + std::to_string(now + 1)).c_str());

  const auto r = reg->commit(join(dev, 1, 2));
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().status == Status::internal);
  CHECK(r.failure().message.find("schema changed to version " + std::to_string(now + 1)) !=
        std::string::npos);
  CHECK(r.failure().message.find("restart") != std::string::npos);
  const auto added = reg->add_device(wrapped(2));
  CHECK_FALSE(added.ok());
  const auto ping = reg->ping();
  REQUIRE_FALSE(ping.ok());
  CHECK(ping.failure().message.find("schema changed") != std::string::npos);
  CHECK(must(reg->find_device(eui(2))) == std::nullopt);
  CHECK(state(*reg, dev) == before);

  // Back to this release's version (as if the migration had been undone): all is as before.
  sql_exec(dir.db(), ("PRAGMA user_version = " + std::to_string(now)).c_str());
  CHECK(reg->ping().ok());
  CHECK(must(reg->commit(join(dev, 1, 2))) == CommitOutcome::committed);
}
