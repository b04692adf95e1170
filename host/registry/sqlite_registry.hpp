// The SQLite Registry behind open_sqlite (sqlite.hpp). Private to host/registry and its
// tests: everyone else holds a Registry.
#pragma once

#include <cstdint>
#include <vector>

#include "host/registry/read_pool.hpp"
#include "host/registry/registry.hpp"
#include "host/registry/sqlite_db.hpp"
#include "host/registry/writer.hpp"

namespace lorakeep::host::registry {

class SqliteRegistry final : public Registry {
 public:
  /// `writer` migrated (schema::open_writer), `readers` at least one.
  SqliteRegistry(const Options& options, sql::Db writer, std::vector<sql::Db> readers);
  /// Drains the queued writes, then closes the readers and the write connection.
  ~SqliteRegistry() override = default;
  SqliteRegistry(const SqliteRegistry&) = delete;
  SqliteRegistry& operator=(const SqliteRegistry&) = delete;
  SqliteRegistry(SqliteRegistry&&) = delete;
  SqliteRegistry& operator=(SqliteRegistry&&) = delete;

  Result<std::optional<Device>> find_device(const lorawan::DevEui& dev_eui) override;
  Result<AddOutcome> add_device(const Device& device) override;
  Result<std::vector<AddOutcome>> add_devices(const std::vector<Device>& devices) override;
  Result<bool> delete_device(const lorawan::DevEui& dev_eui) override;
  Result<std::vector<Device>> list_devices(std::optional<lorawan::DevEui> after,
                                           std::size_t limit) override;
  Result<std::uint64_t> count_devices() override;

  Result<std::optional<NonceState>> nonce_state(const lorawan::DevEui& dev_eui) override;
  Result<CommitOutcome> commit(const Commit& commit) override;
  Result<bool> reset_nonces(const lorawan::DevEui& dev_eui) override;
  Result<std::optional<Session>> find_session(const lorawan::DevEui& dev_eui,
                                              const Bytes& session_key_id) override;
  Result<std::vector<Session>> sessions(const lorawan::DevEui& dev_eui) override;
  Result<bool> replace_as_envelope(const lorawan::DevEui& dev_eui, const Bytes& session_key_id,
                                   const std::string& kek_label, const Bytes& wrapped) override;

  Result<Ok> put_peer(const Peer& peer) override;
  Result<std::optional<Peer>> find_peer(PeerKind kind, const std::string& id) override;
  Result<std::vector<Peer>> list_peers() override;
  Result<bool> remove_peer(PeerKind kind, const std::string& id) override;

  Result<Ok> audit(const AuditRecord& record) override;
  Result<std::vector<AuditRecord>> audit_log(std::size_t limit) override;
  Result<Ok> ping() override;

  /// Group transactions the writer has committed: concurrent commits share them.
  [[nodiscard]] std::uint64_t transactions() const noexcept { return writer_.transactions(); }

 private:
  /// Runs `fn(db)` on a pooled read connection; exceptions become Status::internal.
  template <class T, class F>
  Result<T> read(F&& fn);

  Options options_;
  // Declared so that the readers close before the writer (which drains its queue first):
  // the last connection to close checkpoints the WAL.
  Writer writer_;
  ReadPool readers_;
};

}  // namespace lorakeep::host::registry
