// Helpers of the SQLite registry's tests (registry_test.cpp, registry_durability_test.cpp):
// a temporary directory, devices, sessions and commits made up for a test, raw SQL.
#pragma once

#include <doctest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "host/registry/sqlite.hpp"

namespace lorakeep::registry_test {

using namespace lorakeep::host::registry;
using lorawan::MacVersion;

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
inline T must(Result<T> r) {
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? std::string() : r.failure().message));
  return std::move(r).value();
}

inline std::unique_ptr<Registry> open(const TempDir& dir, Options o = {}) {
  return must(open_sqlite(SqliteOptions{dir.db(), o, 4}));
}

inline std::string open_error(const std::filesystem::path& path) {
  auto r = open_sqlite(SqliteOptions{path, {}, 1});
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().status == Status::internal);
  CHECK(r.failure().message.rfind("registry: ", 0) == 0);
  return r.failure().message;
}

inline lorawan::DevEui eui(std::uint64_t n) {
  return lorawan::DevEui::from_uint(0x0004A30B00000000ULL + n);
}

inline Device wrapped(std::uint64_t n, MacVersion v = MacVersion::v1_0_4) {
  Device d;
  d.join_eui = lorawan::JoinEui::from_uint(0x70B3D57ED0000000ULL + n);
  d.dev_eui = eui(n);
  d.mac_version = v;
  d.root_keys = WrappedRootKeys{Bytes(24, static_cast<std::uint8_t>(n)),
                                v == MacVersion::v1_1 ? Bytes(24, 0xEE) : Bytes{}};
  d.home_net_id = lorawan::NetId::from_uint(0x000013);
  return d;
}

inline Device part(std::uint64_t n) {
  Device d = wrapped(n, MacVersion::v1_0_2);
  d.root_keys = PartRootKeys{"ATECC608B-TNGLORA", Bytes{0x01, 0x23, 0x45, 0x67, 0x89, 0xAB}};
  return d;
}

inline Session session(const lorawan::DevEui& dev, std::uint8_t id, std::int64_t created = 1000) {
  return Session{Bytes{0x5E, id}, dev, Bytes(24, id), lorawan::NetId::from_uint(0x000013), created};
}

// A join of a counter device: the next JoinNonce and DevNonce after `generation` joins.
inline Commit join(const lorawan::DevEui& dev, std::uint64_t generation, std::uint8_t id,
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

inline NonceState state(Registry& r, const lorawan::DevEui& dev) {
  auto s = must(r.nonce_state(dev));
  REQUIRE(s.has_value());
  return *s;
}

inline void sql_exec(const std::filesystem::path& path, const char* sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  const std::string message = sqlite3_errmsg(db);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, message);
}

}  // namespace lorakeep::registry_test
