// The registry's writes, as the writer thread runs them inside a group transaction (each
// in its own savepoint: a write that fails is rolled back and the others stay).
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "host/registry/registry.hpp"
#include "host/registry/sqlite_db.hpp"

namespace lorakeep::host::registry::writes {

/// Status::malformed for what can be judged without the database: a JoinNonce above
/// 24 bits, a SessionKeyID outside 1 to 64 bytes, a session of another device.
std::optional<Failure> check(const Commit& commit);

/// The commit of registry.hpp: reads the device's nonce row, refuses a moved generation
/// (conflict), a vanished device (unknown_device), a JoinNonce not above the last, a
/// DevNonce check_dev_nonce does not call fresh or an RJcount1 not above the last
/// (malformed), then writes the nonce state,
/// the session, and drops the sessions beyond options.sessions_kept.
Result<CommitOutcome> apply_commit(sql::Db& db, const Commit& commit, const Options& options);

/// Inserts the devices (already checked) with fresh nonce state; outcomes in order.
std::vector<AddOutcome> insert_devices(sql::Db& db, std::span<const Device> devices);

}  // namespace lorakeep::host::registry::writes
