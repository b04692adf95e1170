// The SQLite registry on real files, each test in its own temporary directory: devices,
// nonce rules, commits (CAS on the generation), sessions, peers and audit.
#include <doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <random>

#include "host/registry/sqlite.hpp"
#include "registry_fixture.hpp"

using namespace lorakeep;
using namespace lorakeep::host::registry;
using namespace lorakeep::registry_test;
using lorawan::MacVersion;

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

TEST_CASE("sessions: the AS's envelope is replaced in place, and only where one is kept") {
  TempDir dir;
  auto reg = open(dir);
  const auto dev = eui(1);
  must(reg->add_device(wrapped(1)));
  must(reg->add_device(wrapped(2)));
  // Session 1 keeps the envelope the JoinAns carried; session 2 an AppSKey under the
  // storage key; device 2's session 1 an envelope too.
  Commit delivered = join(dev, 0, 1);
  delivered.session.stored_app_s_key.clear();
  delivered.session.as_kek_label = "as-kek";
  delivered.session.as_app_s_key = Bytes(24, 0xA1);
  REQUIRE(must(reg->commit(delivered)) == CommitOutcome::committed);
  REQUIRE(must(reg->commit(join(dev, 1, 2))) == CommitOutcome::committed);
  Commit other = join(eui(2), 0, 1);
  other.session = delivered.session;
  other.session.dev_eui = eui(2);
  REQUIRE(must(reg->commit(other)) == CommitOutcome::committed);

  const Bytes rewrapped(24, 0xB2);
  CHECK(must(reg->replace_as_envelope(dev, Bytes{0x5E, 1}, "as-new-kek", rewrapped)));
  auto s1 = must(reg->find_session(dev, Bytes{0x5E, 1}));
  REQUIRE(s1.has_value());
  CHECK(s1->as_kek_label == "as-new-kek");
  CHECK(s1->as_app_s_key == rewrapped);
  CHECK(s1->stored_app_s_key.empty());
  CHECK(s1->origin == delivered.session.origin);
  // The session under the storage key, another device's, and a dropped one: unchanged.
  CHECK_FALSE(must(reg->replace_as_envelope(dev, Bytes{0x5E, 2}, "as-new-kek", rewrapped)));
  const auto s2 = must(reg->find_session(dev, Bytes{0x5E, 2}));
  REQUIRE(s2.has_value());
  CHECK(s2->as_app_s_key.empty());
  CHECK(s2->as_kek_label.empty());
  CHECK(must(reg->find_session(eui(2), Bytes{0x5E, 1}))->as_kek_label == "as-kek");
  CHECK_FALSE(must(reg->replace_as_envelope(dev, Bytes{0x5E, 9}, "as-new-kek", rewrapped)));
  // Malformed: nothing written.
  const auto no_label = reg->replace_as_envelope(dev, Bytes{0x5E, 1}, "", rewrapped);
  REQUIRE_FALSE(no_label);
  CHECK(no_label.failure().status == Status::malformed);
  const auto short_wrap = reg->replace_as_envelope(dev, Bytes{0x5E, 1}, "x", Bytes(16, 1));
  REQUIRE_FALSE(short_wrap);
  CHECK(short_wrap.failure().status == Status::malformed);
  CHECK(must(reg->find_session(dev, Bytes{0x5E, 1}))->as_kek_label == "as-new-kek");
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
