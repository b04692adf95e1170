#include "host/registry/sqlite.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <exception>
#include <span>
#include <string>
#include <utility>

#include "host/registry/rows.hpp"
#include "host/registry/schema.hpp"
#include "host/registry/sqlite_registry.hpp"
#include "host/registry/writes.hpp"

namespace lorakeep::host::registry {
namespace {

// One transaction per this many devices in add_devices: big enough that the fsync is
// amortized, small enough that the write lock is not held for long.
constexpr std::size_t add_chunk = 10'000;

std::optional<Failure> check(const SqliteOptions& o) {
  const auto out_of_range = [](const char* name, std::size_t v, const char* range) {
    return fail(Status::malformed, std::string("registry: ") + name + " is " + std::to_string(v) +
                                       "; allowed " + range);
  };
  if (o.registry.dev_nonce_history < 1 || o.registry.dev_nonce_history > 65'536) {
    return out_of_range("dev_nonce_history", o.registry.dev_nonce_history, "1 to 65536");
  }
  if (o.registry.sessions_kept < 1 || o.registry.sessions_kept > 1024) {
    return out_of_range("sessions_kept", o.registry.sessions_kept, "1 to 1024");
  }
  if (o.registry.max_batch < 1 || o.registry.max_batch > 100'000) {
    return out_of_range("max_batch", o.registry.max_batch, "1 to 100000");
  }
  if (o.read_connections < 1 || o.read_connections > 64) {
    return out_of_range("read_connections", o.read_connections, "1 to 64");
  }
  if (o.path.empty()) return fail(Status::malformed, "registry: no database path");
  return std::nullopt;
}

std::optional<Failure> check(const Peer& p) {
  if (p.id.empty()) return fail(Status::malformed, "registry: a peer with an empty id");
  if (p.kek_label && p.kek_label->empty()) {
    return fail(Status::malformed, "registry: peer " + p.id + " has an empty KEK label");
  }
  return std::nullopt;
}

}  // namespace

SqliteRegistry::SqliteRegistry(const Options& options, sql::Db writer, std::vector<sql::Db> readers)
    : options_(options),
      writer_(std::move(writer), options.max_batch),
      readers_(std::move(readers)) {}

template <class T, class F>
Result<T> SqliteRegistry::read(F&& fn) {
  try {
    const auto lease = readers_.acquire();
    return std::forward<F>(fn)(lease.db());
  } catch (const std::exception& e) {
    return failure_of(e);
  } catch (...) {
    return fail(Status::internal, "registry: unknown exception in a read");
  }
}

// ---- devices ----

Result<std::optional<Device>> SqliteRegistry::find_device(const lorawan::DevEui& dev_eui) {
  return read<std::optional<Device>>([&](sql::Db& db) -> std::optional<Device> {
    auto q = db.query(rows::find_device);
    q.bind_blob(0, dev_eui.bytes());
    if (!q.step()) return std::nullopt;
    return rows::read_device(q);
  });
}

Result<AddOutcome> SqliteRegistry::add_device(const Device& device) {
  if (auto bad = rows::check(device)) return *bad;
  return writer_.run<AddOutcome>(1, [&](sql::Db& db) -> Result<AddOutcome> {
    return writes::insert_devices(db, std::span(&device, 1)).front();
  });
}

Result<std::vector<AddOutcome>> SqliteRegistry::add_devices(const std::vector<Device>& devices) {
  // Every device is checked before any is written: a bad one refuses the whole call.
  for (const auto& d : devices) {
    if (auto bad = rows::check(d)) return *bad;
  }
  try {
    std::vector<AddOutcome> outcomes;
    outcomes.reserve(devices.size());
    const std::span<const Device> all(devices);
    for (std::size_t at = 0; at < all.size(); at += add_chunk) {
      const auto chunk = all.subspan(at, std::min(add_chunk, all.size() - at));
      auto done = writer_.run<std::vector<AddOutcome>>(
          chunk.size(), [&](sql::Db& db) -> Result<std::vector<AddOutcome>> {
            return writes::insert_devices(db, chunk);
          });
      if (!done) {
        auto failure = done.failure();
        if (at > 0) failure.message += " (the first " + std::to_string(at) + " were added)";
        return failure;
      }
      outcomes.insert(outcomes.end(), done->begin(), done->end());
    }
    return outcomes;
  } catch (const std::exception& e) {
    return failure_of(e);
  }
}

Result<bool> SqliteRegistry::delete_device(const lorawan::DevEui& dev_eui) {
  return writer_.run<bool>(1, [&](sql::Db& db) -> Result<bool> {
    auto q = db.query(rows::delete_device);
    q.bind_blob(0, dev_eui.bytes());
    q.run();  // nonces and sessions go by ON DELETE CASCADE
    return db.changes() > 0;
  });
}

Result<std::vector<Device>> SqliteRegistry::list_devices(std::optional<lorawan::DevEui> after,
                                                         std::size_t limit) {
  if (limit == 0) return std::vector<Device>{};
  return read<std::vector<Device>>([&](sql::Db& db) {
    std::vector<Device> out;
    auto q = db.query(after ? rows::list_devices_after : rows::list_devices_first);
    int param = 0;
    if (after) q.bind_blob(param++, after->bytes());
    q.bind_int(param, rows::sql_count(limit));
    while (q.step())
      out.push_back(rows::read_device(q));
    return out;
  });
}

Result<std::uint64_t> SqliteRegistry::count_devices() {
  return read<std::uint64_t>([](sql::Db& db) {
    auto q = db.query(rows::count_devices);
    q.step_row();
    return static_cast<std::uint64_t>(q.integer(0));
  });
}

// ---- nonces and sessions ----

Result<std::optional<NonceState>> SqliteRegistry::nonce_state(const lorawan::DevEui& dev_eui) {
  return read<std::optional<NonceState>>([&](sql::Db& db) -> std::optional<NonceState> {
    auto q = db.query(rows::find_nonces);
    q.bind_blob(0, dev_eui.bytes());
    if (!q.step()) return std::nullopt;
    return rows::read_nonce_state(q);
  });
}

Result<CommitOutcome> SqliteRegistry::commit(const Commit& commit) {
  if (auto bad = writes::check(commit)) return *bad;
  return writer_.run<CommitOutcome>(
      1, [&](sql::Db& db) { return writes::apply_commit(db, commit, options_); });
}

Result<bool> SqliteRegistry::reset_nonces(const lorawan::DevEui& dev_eui) {
  return writer_.run<bool>(1, [&](sql::Db& db) -> Result<bool> {
    auto q = db.query(rows::reset_nonces);
    q.bind_blob(0, dev_eui.bytes());
    q.run();
    return db.changes() > 0;
  });
}

Result<std::optional<Session>> SqliteRegistry::find_session(const lorawan::DevEui& dev_eui,
                                                            const Bytes& session_key_id) {
  return read<std::optional<Session>>([&](sql::Db& db) -> std::optional<Session> {
    auto q = db.query(rows::find_session);
    q.bind_blob(0, dev_eui.bytes()).bind_blob(1, session_key_id);
    if (!q.step()) return std::nullopt;
    return rows::read_session(q);
  });
}

Result<std::vector<Session>> SqliteRegistry::sessions(const lorawan::DevEui& dev_eui) {
  return read<std::vector<Session>>([&](sql::Db& db) {
    std::vector<Session> out;
    auto q = db.query(rows::list_sessions);
    q.bind_blob(0, dev_eui.bytes());
    while (q.step())
      out.push_back(rows::read_session(q));
    return out;
  });
}

Result<bool> SqliteRegistry::replace_as_envelope(const lorawan::DevEui& dev_eui,
                                                 const Bytes& session_key_id,
                                                 const std::string& kek_label,
                                                 const Bytes& wrapped) {
  if (kek_label.empty()) return fail(Status::malformed, "registry: an envelope needs a KEK label");
  if (wrapped.size() != 24) {
    return fail(Status::malformed, "registry: an AppSKey wrapped under a KEK is 24 bytes, not " +
                                       std::to_string(wrapped.size()));
  }
  return writer_.run<bool>(1, [&](sql::Db& db) -> Result<bool> {
    auto q = db.query(rows::replace_as_envelope);
    q.bind_text(0, kek_label).bind_blob(1, wrapped).bind_blob(2, dev_eui.bytes());
    q.bind_blob(3, session_key_id);
    q.run();
    return db.changes() > 0;
  });
}

// ---- peers ----

Result<Ok> SqliteRegistry::put_peer(const Peer& peer) {
  if (auto bad = check(peer)) return *bad;
  return writer_.run<Ok>(1, [&](sql::Db& db) -> Result<Ok> {
    auto q = db.query(rows::put_peer);
    rows::bind(q, peer);
    q.run();
    return Ok{};
  });
}

Result<std::optional<Peer>> SqliteRegistry::find_peer(PeerKind kind, const std::string& id) {
  return read<std::optional<Peer>>([&](sql::Db& db) -> std::optional<Peer> {
    auto q = db.query(rows::find_peer);
    q.bind_text(0, rows::kind_code(kind)).bind_text(1, id);
    if (!q.step()) return std::nullopt;
    return rows::read_peer(q);
  });
}

Result<std::vector<Peer>> SqliteRegistry::list_peers() {
  return read<std::vector<Peer>>([](sql::Db& db) {
    std::vector<Peer> out;
    auto q = db.query(rows::list_peers);
    while (q.step())
      out.push_back(rows::read_peer(q));
    return out;
  });
}

Result<bool> SqliteRegistry::remove_peer(PeerKind kind, const std::string& id) {
  return writer_.run<bool>(1, [&](sql::Db& db) -> Result<bool> {
    auto q = db.query(rows::remove_peer);
    q.bind_text(0, rows::kind_code(kind)).bind_text(1, id);
    q.run();
    return db.changes() > 0;
  });
}

// ---- operations ----

Result<Ok> SqliteRegistry::audit(const AuditRecord& record) {
  return writer_.run<Ok>(1, [&](sql::Db& db) -> Result<Ok> {
    auto q = db.query(rows::append_audit);
    rows::bind(q, record);
    q.run();
    return Ok{};
  });
}

Result<std::vector<AuditRecord>> SqliteRegistry::audit_log(std::size_t limit) {
  if (limit == 0) return std::vector<AuditRecord>{};
  return read<std::vector<AuditRecord>>([&](sql::Db& db) {
    std::vector<AuditRecord> out;
    auto q = db.query(rows::read_audit);
    q.bind_int(0, rows::sql_count(limit));
    while (q.step())
      out.push_back(rows::read_audit_record(q));
    return out;
  });
}

Result<Ok> SqliteRegistry::ping() {
  return read<Ok>([](sql::Db& db) {
    schema::check_current(db);
    return Ok{};
  });
}

// ---- opening ----

Result<std::unique_ptr<Registry>> open_sqlite(const SqliteOptions& options) {
  if (auto bad = check(options)) return *bad;
  if (sqlite3_threadsafe() == 0) {
    return fail(Status::internal, "registry: libsqlite3 was built without thread support");
  }
  try {
    auto writer = schema::open_writer(options.path);
    std::vector<sql::Db> readers;
    readers.reserve(options.read_connections);
    for (std::size_t i = 0; i < options.read_connections; ++i) {
      readers.push_back(schema::open_reader(options.path));
    }
    std::unique_ptr<Registry> registry =
        std::make_unique<SqliteRegistry>(options.registry, std::move(writer), std::move(readers));
    return registry;
  } catch (const std::exception& e) {
    return failure_of(e);
  }
}

int sqlite_schema_version() noexcept {
  return schema::version();
}

}  // namespace lorakeep::host::registry
