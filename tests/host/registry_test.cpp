// The SQLite registry on real files, each test in its own temporary directory: devices,
// nonce rules, commits (CAS on the generation, group commit under concurrency), sessions,
// peers, audit, durability across close and across a crash, and files it must refuse.
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
#include <random>
#include <thread>

#include "host/registry/sqlite.hpp"
#include "host/registry/sqlite_registry.hpp"

using namespace lorakeep;
using namespace lorakeep::host::registry;
using lorawan::MacVersion;

namespace {

class TempDir {
 public:
  TempDir() {
    std::string name = (std::filesystem::temp_directory_path() / "lorakeep-registry-XXXXXX");
    REQUIRE(::mkdtemp(name.data()) != nullptr);
    path_ = name;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] std::filesystem::path db() const { return path_ / "registry.db"; }

 private:
  std::filesystem::path path_;
};

template <class T>
T must(Result<T> r) {
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? std::string() : r.failure().message));
  return std::move(r).value();
}

std::unique_ptr<Registry> open(const TempDir& dir, Options o = {}) {
  return must(open_sqlite(SqliteOptions{dir.db(), o, 4}));
}

std::string open_error(const std::filesystem::path& path) {
  auto r = open_sqlite(SqliteOptions{path, {}, 1});
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().status == Status::internal);
  CHECK(r.failure().message.rfind("registry: ", 0) == 0);
  return r.failure().message;
}

lorawan::DevEui eui(std::uint64_t n) {
  return lorawan::DevEui::from_uint(0x0004A30B00000000ULL + n);
}

Device wrapped(std::uint64_t n, MacVersion v = MacVersion::v1_0_4) {
  Device d;
  d.join_eui = lorawan::JoinEui::from_uint(0x70B3D57ED0000000ULL + n);
  d.dev_eui = eui(n);
  d.mac_version = v;
  d.root_keys = WrappedRootKeys{Bytes(24, static_cast<std::uint8_t>(n)),
                                v == MacVersion::v1_1 ? Bytes(24, 0xEE) : Bytes{}};
  d.home_net_id = lorawan::NetId::from_uint(0x000013);
  return d;
}

Device part(std::uint64_t n) {
  Device d = wrapped(n, MacVersion::v1_0_2);
  d.root_keys = PartRootKeys{"ATECC608B-TNGLORA", Bytes{0x01, 0x23, 0x45, 0x67, 0x89, 0xAB}};
  return d;
}

Session session(const lorawan::DevEui& dev, std::uint8_t id, std::int64_t created = 1000) {
  return Session{Bytes{0x5E, id}, dev, Bytes(24, id), lorawan::NetId::from_uint(0x000013), created};
}

// A join of a counter device: the next JoinNonce and DevNonce after `generation` joins.
Commit join(const lorawan::DevEui& dev, std::uint64_t generation, std::uint8_t id,
            std::int64_t created = 1000) {
  Commit c;
  c.dev_eui = dev;
  c.expected_generation = generation;
  c.join_nonce = static_cast<std::uint32_t>(generation + 1);
  c.dev_nonce = static_cast<std::uint16_t>(generation + 1);
  c.dev_nonce_is_counter = true;
  c.session = session(dev, id, created);
  return c;
}

NonceState state(Registry& r, const lorawan::DevEui& dev) {
  auto s = must(r.nonce_state(dev));
  REQUIRE(s.has_value());
  return *s;
}

void sql_exec(const std::filesystem::path& path, const char* sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  const std::string message = sqlite3_errmsg(db);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, message);
}

}  // namespace

TEST_CASE("check_dev_nonce: counter and random rules") {
  NonceState s;
  const auto nonce = [](std::uint16_t v) { return lorawan::DevNonce{v}; };
  CHECK(check_dev_nonce(s, nonce(0), true) == DevNonceVerdict::fresh);  // first ever
  s.dev_nonce_last = 10;
  CHECK(check_dev_nonce(s, nonce(11), true) == DevNonceVerdict::fresh);
  CHECK(check_dev_nonce(s, nonce(0xFFFF), true) == DevNonceVerdict::fresh);
  CHECK(check_dev_nonce(s, nonce(10), true) == DevNonceVerdict::replayed);
  CHECK(check_dev_nonce(s, nonce(9), true) == DevNonceVerdict::not_increasing);
  CHECK(check_dev_nonce(s, nonce(0), true) == DevNonceVerdict::not_increasing);

  NonceState r;
  CHECK(check_dev_nonce(r, nonce(0x1234), false) == DevNonceVerdict::fresh);
  r.dev_nonce_history = {0x1234, 7, 0xFFFF};
  CHECK(check_dev_nonce(r, nonce(0x1234), false) == DevNonceVerdict::replayed);
  CHECK(check_dev_nonce(r, nonce(0xFFFF), false) == DevNonceVerdict::replayed);
  CHECK(check_dev_nonce(r, nonce(6), false) == DevNonceVerdict::fresh);  // lower is fine
}

TEST_CASE("devices: every field round-trips, wrapped and part variants") {
  TempDir dir;
  auto reg = open(dir);
  Device full = wrapped(1, MacVersion::v1_1);
  full.hnsid = lorawan::NsId::from_uint(0x0102030405060708ULL);
  full.allowed_net_ids = {lorawan::NetId::from_uint(0x600001), lorawan::NetId::from_uint(0x000000),
                          lorawan::NetId::from_uint(0xFFFFFF)};
  full.as_id = "as.example.com";
  const Device bare = part(2);  // no HNSID, no AS-ID, no allowed NetIDs
  CHECK(must(reg->add_device(full)) == AddOutcome::added);
  CHECK(must(reg->add_device(bare)) == AddOutcome::added);
  CHECK(must(reg->find_device(full.dev_eui)) == full);
  CHECK(must(reg->find_device(bare.dev_eui)) == bare);
  CHECK_FALSE(must(reg->find_device(eui(3))).has_value());
  CHECK(state(*reg, full.dev_eui) == NonceState{});  // fresh state
  for (auto v : {MacVersion::v1_0, MacVersion::v1_0_1, MacVersion::v1_0_3}) {
    const Device d = wrapped(10 + static_cast<std::uint64_t>(v), v);
    REQUIRE(must(reg->add_device(d)) == AddOutcome::added);
    CHECK(must(reg->find_device(d.dev_eui)) == d);
  }
}

TEST_CASE("devices: adding twice leaves the first; invalid devices are malformed") {
  TempDir dir;
  auto reg = open(dir);
  const Device first = wrapped(1);
  Device second = part(1);
  second.as_id = "other";
  CHECK(must(reg->add_device(first)) == AddOutcome::added);
  CHECK(must(reg->add_device(second)) == AddOutcome::already_present);
  CHECK(must(reg->find_device(first.dev_eui)) == first);
  auto both = must(reg->add_devices({second, wrapped(2), wrapped(2)}));
  CHECK(both ==
        std::vector{AddOutcome::already_present, AddOutcome::added, AddOutcome::already_present});

  Device short_key = wrapped(5);
  std::get<WrappedRootKeys>(short_key.root_keys).app_key.resize(16);
  Device no_nwk = wrapped(6, MacVersion::v1_1);
  std::get<WrappedRootKeys>(no_nwk.root_keys).nwk_key.clear();
  Device long_serial = part(7);
  std::get<PartRootKeys>(long_serial.root_keys).serial.resize(13);
  for (const auto& bad : {short_key, no_nwk, long_serial}) {
    auto r = reg->add_device(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.failure().status == Status::malformed);
    // One bad device refuses the whole batch.
    auto batch = reg->add_devices({wrapped(8), bad});
    REQUIRE_FALSE(batch.ok());
    CHECK(batch.failure().status == Status::malformed);
  }
  CHECK(must(reg->count_devices()) == 2);
}

TEST_CASE("devices: list pagination in DevEUI order, and count") {
  TempDir dir;
  auto reg = open(dir);
  std::vector<Device> devices;
  for (std::uint64_t n = 0; n < 25; ++n)
    devices.push_back(n % 2 == 0 ? wrapped(n * 7) : part(n * 7));
  std::shuffle(devices.begin(), devices.end(), std::mt19937(42));
  must(reg->add_devices(devices));
  CHECK(must(reg->count_devices()) == 25);

  std::vector<Device> seen;
  std::optional<lorawan::DevEui> after;
  std::vector<std::size_t> pages;
  for (;;) {
    auto page = must(reg->list_devices(after, 10));
    pages.push_back(page.size());
    if (page.empty()) break;
    after = page.back().dev_eui;
    seen.insert(seen.end(), page.begin(), page.end());
  }
  CHECK(pages == std::vector<std::size_t>{10, 10, 5, 0});
  std::sort(devices.begin(), devices.end(),
            [](const Device& a, const Device& b) { return a.dev_eui < b.dev_eui; });
  CHECK(seen == devices);
  CHECK(must(reg->list_devices(std::nullopt, 0)).empty());
}

TEST_CASE("devices: delete removes nonce state and sessions") {
  TempDir dir;
  auto reg = open(dir);
  const auto dev = eui(1);
  must(reg->add_device(wrapped(1)));
  must(reg->add_device(wrapped(2)));
  REQUIRE(must(reg->commit(join(dev, 0, 1))) == CommitOutcome::committed);
  REQUIRE(must(reg->commit(join(eui(2), 0, 1))) == CommitOutcome::committed);
  CHECK(must(reg->delete_device(dev)));
  CHECK_FALSE(must(reg->delete_device(dev)));
  CHECK_FALSE(must(reg->find_device(dev)).has_value());
  CHECK_FALSE(must(reg->nonce_state(dev)).has_value());
  CHECK(must(reg->sessions(dev)).empty());
  CHECK_FALSE(must(reg->find_session(dev, Bytes{0x5E, 1})).has_value());
  // Added again, it starts afresh; the other device is untouched.
  must(reg->add_device(wrapped(1)));
  CHECK(state(*reg, dev) == NonceState{});
  CHECK(must(reg->sessions(eui(2))).size() == 1);
}

TEST_CASE("commit: success, conflict, unknown device, malformed") {
  TempDir dir;
  auto reg = open(dir);
  const auto dev = eui(1);
  must(reg->add_device(wrapped(1)));

  SUBCASE("success bumps the generation and stores the session") {
    Commit c = join(dev, 0, 1, 1234);
    c.rj_count1 = 77;
    REQUIRE(must(reg->commit(c)) == CommitOutcome::committed);
    const auto s = state(*reg, dev);
    CHECK(s.generation == 1);
    CHECK(s.join_nonce_last == 1);
    CHECK(s.dev_nonce_last == std::optional<std::uint16_t>(1));
    CHECK(s.rj_count1_last == std::optional<std::uint32_t>(77));
    CHECK(must(reg->find_session(dev, c.session.session_key_id)) == c.session);
    CHECK(must(reg->sessions(dev)) == std::vector{c.session});
  }
  SUBCASE("a stale generation is a conflict and changes nothing") {
    REQUIRE(must(reg->commit(join(dev, 0, 1))) == CommitOutcome::committed);
    const auto before = state(*reg, dev);
    Commit stale = join(dev, 0, 2);
    stale.join_nonce = 5;
    stale.dev_nonce = 5;
    CHECK(must(reg->commit(stale)) == CommitOutcome::conflict);
    CHECK(state(*reg, dev) == before);
    CHECK_FALSE(must(reg->find_session(dev, stale.session.session_key_id)).has_value());
  }
  SUBCASE("a deleted device is unknown_device") {
    must(reg->delete_device(dev));
    CHECK(must(reg->commit(join(dev, 0, 1))) == CommitOutcome::unknown_device);
  }
  SUBCASE("a JoinNonce that does not increase, and other bad commits, are malformed") {
    Commit first = join(dev, 0, 1);  // JoinNonce 1
    first.rj_count1 = 9;
    REQUIRE(must(reg->commit(first)) == CommitOutcome::committed);
    const auto before = state(*reg, dev);
    Commit same = join(dev, 1, 2);
    same.join_nonce = 1;
    Commit too_big = join(dev, 1, 3);
    too_big.join_nonce = 0x1000000;
    Commit replay = join(dev, 1, 4);
    replay.dev_nonce = 1;  // the DevNonce already accepted
    Commit rj_replay = join(dev, 1, 7);
    rj_replay.dev_nonce.reset();
    rj_replay.rj_count1 = 9;  // the last one accepted
    // A SessionKeyID the device already has.
    Commit reused_id = join(dev, 1, 1);
    Commit other = join(dev, 1, 5);
    other.session.dev_eui = eui(9);
    Commit empty_id = join(dev, 1, 6);
    empty_id.session.session_key_id.clear();
    for (const auto& c : {same, too_big, replay, rj_replay, reused_id, other, empty_id}) {
      auto r = reg->commit(c);
      REQUIRE_FALSE(r.ok());
      CHECK(r.failure().status == Status::malformed);
      CHECK(r.failure().message.rfind("registry: ", 0) == 0);
    }
    CHECK(state(*reg, dev) == before);
    CHECK(must(reg->sessions(dev)).size() == 1);
    CHECK(must(reg->commit(join(dev, 1, 2))) == CommitOutcome::committed);
  }
}

TEST_CASE("commit: random DevNonces go to a bounded history, oldest evicted") {
  TempDir dir;
  Options o;
  o.dev_nonce_history = 3;
  auto reg = open(dir, o);
  const auto dev = eui(1);
  must(reg->add_device(wrapped(1, MacVersion::v1_0_2)));
  const std::vector<std::uint16_t> nonces = {0xBEEF, 3, 0x8000, 1};
  for (std::size_t i = 0; i < nonces.size(); ++i) {
    Commit c = join(dev, i, static_cast<std::uint8_t>(i));
    c.dev_nonce = nonces[i];
    c.dev_nonce_is_counter = false;
    REQUIRE(must(reg->commit(c)) == CommitOutcome::committed);
  }
  const auto s = state(*reg, dev);
  CHECK(s.dev_nonce_history == std::vector<std::uint16_t>{3, 0x8000, 1});
  CHECK_FALSE(s.dev_nonce_last.has_value());
  CHECK(check_dev_nonce(s, lorawan::DevNonce{3}, false) == DevNonceVerdict::replayed);
  CHECK(check_dev_nonce(s, lorawan::DevNonce{0xBEEF}, false) == DevNonceVerdict::fresh);
  Commit again = join(dev, 4, 9);
  again.dev_nonce = 0x8000;
  again.dev_nonce_is_counter = false;
  CHECK(reg->commit(again).failure().status == Status::malformed);
}

TEST_CASE("sessions: only the newest sessions_kept stay; other devices' ids are not found") {
  TempDir dir;
  Options o;
  o.sessions_kept = 2;
  auto reg = open(dir, o);
  const auto dev = eui(1);
  must(reg->add_device(wrapped(1)));
  must(reg->add_device(wrapped(2)));
  const std::vector<std::int64_t> created = {100, 300, 200, 300};
  for (std::size_t i = 0; i < created.size(); ++i) {
    REQUIRE(must(reg->commit(join(dev, i, static_cast<std::uint8_t>(i), created[i]))) ==
            CommitOutcome::committed);
  }
  // Newest first; of two made at 300, the later insertion is newer. 100 and 200 are gone.
  const auto kept = must(reg->sessions(dev));
  REQUIRE(kept.size() == 2);
  CHECK(kept[0].session_key_id == Bytes{0x5E, 3});
  CHECK(kept[1].session_key_id == Bytes{0x5E, 1});
  CHECK_FALSE(must(reg->find_session(dev, Bytes{0x5E, 0})).has_value());
  CHECK_FALSE(must(reg->find_session(dev, Bytes{0x5E, 2})).has_value());
  CHECK_FALSE(must(reg->find_session(eui(2), Bytes{0x5E, 3})).has_value());
  CHECK(must(reg->sessions(eui(2))).empty());
}

TEST_CASE("reset_nonces forgets DevNonces and RJcount1, keeps the JoinNonce, bumps generation") {
  TempDir dir;
  auto reg = open(dir);
  const auto dev = eui(1);
  must(reg->add_device(wrapped(1)));
  Commit c = join(dev, 0, 1);
  c.join_nonce = 500;
  c.rj_count1 = 3;
  REQUIRE(must(reg->commit(c)) == CommitOutcome::committed);
  CHECK(must(reg->reset_nonces(dev)));
  const auto s = state(*reg, dev);
  CHECK(s.generation == 2);
  CHECK(s.join_nonce_last == 500);
  CHECK_FALSE(s.dev_nonce_last.has_value());
  CHECK(s.dev_nonce_history.empty());
  CHECK_FALSE(s.rj_count1_last.has_value());
  CHECK(must(reg->sessions(dev)).size() == 1);  // sessions stay
  CHECK_FALSE(must(reg->reset_nonces(eui(2))));
  // The old expected generation no longer matches.
  CHECK(must(reg->commit(join(dev, 1, 2))) == CommitOutcome::conflict);
}

TEST_CASE("peers: put, replace, find, list, remove") {
  TempDir dir;
  auto reg = open(dir);
  const Peer ns{PeerKind::network_server, "000013", "kek-ns-000013", false};
  const Peer as{PeerKind::application_server, "as.example.com", std::nullopt, true};
  const Peer same_id_as{PeerKind::application_server, "000013", std::nullopt, false};
  must(reg->put_peer(ns));
  must(reg->put_peer(as));
  must(reg->put_peer(same_id_as));
  CHECK(must(reg->find_peer(PeerKind::network_server, "000013")) == ns);
  CHECK(must(reg->find_peer(PeerKind::application_server, "000013")) == same_id_as);
  Peer replaced = ns;
  replaced.kek_label.reset();
  replaced.plaintext_keys = true;
  must(reg->put_peer(replaced));
  CHECK(must(reg->find_peer(PeerKind::network_server, "000013")) == replaced);
  CHECK(must(reg->list_peers()) == std::vector{replaced, same_id_as, as});
  CHECK(must(reg->remove_peer(PeerKind::network_server, "000013")));
  CHECK_FALSE(must(reg->remove_peer(PeerKind::network_server, "000013")));
  CHECK_FALSE(must(reg->find_peer(PeerKind::network_server, "000013")).has_value());
  CHECK(must(reg->list_peers()).size() == 2);
  CHECK(reg->put_peer(Peer{PeerKind::network_server, "", {}, false}).failure().status ==
        Status::malformed);
}

TEST_CASE("audit: appended records read back newest first; the table refuses changes") {
  TempDir dir;
  auto reg = open(dir);
  for (int i = 0; i < 5; ++i) {
    must(reg->audit(AuditRecord{1700000000 + i, "lorakeepctl:root", "device.reset-nonces",
                                "0004A30B00000001", "try " + std::to_string(i)}));
  }
  const auto last3 = must(reg->audit_log(3));
  REQUIRE(last3.size() == 3);
  CHECK(last3[0].detail == "try 4");
  CHECK(last3[2].detail == "try 2");
  CHECK(last3[0].time_unix == 1700000004);
  CHECK(last3[0].actor == "lorakeepctl:root");
  CHECK(last3[0].action == "device.reset-nonces");
  CHECK(last3[0].subject == "0004A30B00000001");
  CHECK(must(reg->audit_log(100)).size() == 5);
  must(reg->ping());
  reg.reset();
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(dir.db().c_str(), &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db, "DELETE FROM audit", nullptr, nullptr, nullptr) != SQLITE_OK);
  CHECK(sqlite3_exec(db, "UPDATE audit SET detail = ''", nullptr, nullptr, nullptr) != SQLITE_OK);
  sqlite3_close(db);
}

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
