#include "host/registry/writes.hpp"

#include <string>

#include "host/registry/rows.hpp"

namespace lorakeep::host::registry::writes {
namespace {

constexpr std::size_t max_session_key_id = 64;

Failure malformed(const Commit& c, const std::string& what) {
  return fail(Status::malformed, "registry: commit for " + c.dev_eui.hex() + ": " + what);
}

}  // namespace

std::optional<Failure> check(const Commit& c) {
  if (c.join_nonce > lorawan::JoinNonce::max) {
    return malformed(c, "JoinNonce " + std::to_string(c.join_nonce) + " is above 24 bits");
  }
  const auto id_size = c.session.session_key_id.size();
  if (id_size == 0 || id_size > max_session_key_id) {
    return malformed(c,
                     "a SessionKeyID of " + std::to_string(id_size) + " bytes (1 to 64 allowed)");
  }
  if (c.session.dev_eui != c.dev_eui) {
    return malformed(c, "the session is for DevEUI " + c.session.dev_eui.hex());
  }
  return std::nullopt;
}

Result<CommitOutcome> apply_commit(sql::Db& db, const Commit& c, const Options& options) {
  std::optional<NonceState> found;
  {
    auto q = db.query(rows::find_nonces);
    q.bind_blob(0, c.dev_eui.bytes());
    if (q.step()) found = rows::read_nonce_state(q);
  }
  if (!found) return CommitOutcome::unknown_device;
  NonceState state = std::move(*found);
  if (state.generation != c.expected_generation) return CommitOutcome::conflict;

  if (c.join_nonce <= state.join_nonce_last) {
    return malformed(c, "JoinNonce " + std::to_string(c.join_nonce) +
                            " is not above the last one handed out, " +
                            std::to_string(state.join_nonce_last));
  }
  state.join_nonce_last = c.join_nonce;
  if (c.dev_nonce) {
    // The join flow checked this against the state of this very generation; a DevNonce
    // that is not fresh here is a caller's bug, and accepting it twice is never right.
    const auto verdict =
        check_dev_nonce(state, lorawan::DevNonce{*c.dev_nonce}, c.dev_nonce_is_counter);
    if (verdict != DevNonceVerdict::fresh) {
      return malformed(c, "DevNonce " + std::to_string(*c.dev_nonce) +
                              (verdict == DevNonceVerdict::replayed ? " was already accepted"
                                                                    : " does not increase"));
    }
    if (c.dev_nonce_is_counter) {
      state.dev_nonce_last = *c.dev_nonce;
    } else {
      auto& history = state.dev_nonce_history;
      history.push_back(*c.dev_nonce);
      if (history.size() > options.dev_nonce_history) {
        const auto excess = static_cast<std::ptrdiff_t>(history.size() - options.dev_nonce_history);
        history.erase(history.begin(), history.begin() + excess);
      }
    }
  }
  if (c.rj_count1) {
    // The same reasoning for a rejoin type 1: its RJcount1 must increase (1.1 §6.2.4.2).
    if (state.rj_count1_last && *c.rj_count1 <= *state.rj_count1_last) {
      return malformed(c, "RJcount1 " + std::to_string(*c.rj_count1) + " does not increase (last " +
                              std::to_string(*state.rj_count1_last) + ")");
    }
    state.rj_count1_last = *c.rj_count1;
  }
  ++state.generation;

  {
    auto q = db.query(rows::update_nonces);
    rows::bind(q, state);
    q.bind_blob(5, c.dev_eui.bytes());
    q.run();
  }
  {
    auto q = db.query(rows::insert_session);
    rows::bind(q, c.dev_eui, c.session);
    q.run();
  }
  if (db.changes() == 0) {
    // The savepoint around this write undoes the nonce update above.
    return malformed(c, "SessionKeyID already stored for this device");
  }
  {
    auto q = db.query(rows::trim_sessions);
    q.bind_blob(0, c.dev_eui.bytes());
    q.bind_int(1, rows::sql_count(options.sessions_kept));
    q.run();
  }
  return CommitOutcome::committed;
}

std::vector<AddOutcome> insert_devices(sql::Db& db, std::span<const Device> devices) {
  std::vector<AddOutcome> outcomes;
  outcomes.reserve(devices.size());
  for (const auto& d : devices) {
    {
      auto q = db.query(rows::insert_device);
      rows::bind(q, d);
      q.run();
    }
    if (db.changes() == 0) {
      outcomes.push_back(AddOutcome::already_present);
      continue;
    }
    auto q = db.query(rows::insert_nonces);
    q.bind_blob(0, d.dev_eui.bytes());
    q.run();
    outcomes.push_back(AddOutcome::added);
  }
  return outcomes;
}

}  // namespace lorakeep::host::registry::writes
