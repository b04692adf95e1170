// The registry's SQL statements and the mapping between their rows and the registry's
// value types. Reading a row that breaks a value type's rules (a corrupt or hand-edited
// file) throws sql::Error rather than building an invalid value.
#pragma once

#include <optional>
#include <string_view>

#include "host/registry/registry.hpp"
#include "host/registry/sqlite_db.hpp"

namespace lorakeep::host::registry::rows {

// ---- devices: columns and parameters 0..10 in this order ----
inline constexpr sql::Sql find_device{
    "SELECT dev_eui, join_eui, mac_version, app_key, nwk_key, part_number, serial, "
    "home_net_id, allowed_net_ids, hnsid, as_id FROM devices WHERE dev_eui = ?",
    "find device"};
inline constexpr sql::Sql list_devices_first{
    "SELECT dev_eui, join_eui, mac_version, app_key, nwk_key, part_number, serial, "
    "home_net_id, allowed_net_ids, hnsid, as_id FROM devices ORDER BY dev_eui LIMIT ?",
    "list devices"};
inline constexpr sql::Sql list_devices_after{
    "SELECT dev_eui, join_eui, mac_version, app_key, nwk_key, part_number, serial, "
    "home_net_id, allowed_net_ids, hnsid, as_id FROM devices WHERE dev_eui > ? "
    "ORDER BY dev_eui LIMIT ?",
    "list devices"};
inline constexpr sql::Sql insert_device{
    "INSERT INTO devices (dev_eui, join_eui, mac_version, app_key, nwk_key, part_number, "
    "serial, home_net_id, allowed_net_ids, hnsid, as_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dev_eui) DO NOTHING",
    "add device"};
inline constexpr sql::Sql insert_nonces{"INSERT INTO nonces (dev_eui) VALUES (?)",
                                        "add device nonce state"};
inline constexpr sql::Sql delete_device{"DELETE FROM devices WHERE dev_eui = ?", "delete device"};
inline constexpr sql::Sql count_devices{"SELECT count(*) FROM devices", "count devices"};

// ---- nonces: columns 0..4 ----
inline constexpr sql::Sql find_nonces{
    "SELECT generation, join_nonce_last, dev_nonce_last, dev_nonce_history, rj_count1_last "
    "FROM nonces WHERE dev_eui = ?",
    "read nonce state"};
// Parameters 0..4 the state, 5 the DevEUI.
inline constexpr sql::Sql update_nonces{
    "UPDATE nonces SET generation = ?, join_nonce_last = ?, dev_nonce_last = ?, "
    "dev_nonce_history = ?, rj_count1_last = ? WHERE dev_eui = ?",
    "update nonce state"};
inline constexpr sql::Sql reset_nonces{
    "UPDATE nonces SET generation = generation + 1, dev_nonce_last = NULL, "
    "dev_nonce_history = x'', rj_count1_last = NULL WHERE dev_eui = ?",
    "reset nonces"};

// ---- sessions: columns and parameters 0..9 ----
inline constexpr sql::Sql insert_session{
    "INSERT INTO sessions (session_key_id, dev_eui, seq, stored_app_s_key, net_id, created_unix, "
    "as_kek_label, as_app_s_key, origin_request, origin_join_nonce, origin_dl_settings) "
    "VALUES (?1, ?2, (SELECT coalesce(max(seq), 0) + 1 FROM sessions WHERE dev_eui = ?2), "
    "?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
    "ON CONFLICT DO NOTHING",
    "store session"};
// Parameters: the DevEUI, then how many to keep.
inline constexpr sql::Sql trim_sessions{
    "DELETE FROM sessions WHERE dev_eui = ?1 AND session_key_id IN (SELECT session_key_id "
    "FROM sessions WHERE dev_eui = ?1 ORDER BY created_unix DESC, seq DESC LIMIT -1 OFFSET ?2)",
    "drop old sessions"};
// Parameters: the KEK label, the wrap, the DevEUI, the SessionKeyID.
inline constexpr sql::Sql replace_as_envelope{
    "UPDATE sessions SET as_kek_label = ?, as_app_s_key = ? WHERE dev_eui = ? AND "
    "session_key_id = ? AND length(as_app_s_key) > 0",
    "replace the AS's AppSKey envelope"};
inline constexpr sql::Sql find_session{
    "SELECT session_key_id, dev_eui, stored_app_s_key, net_id, created_unix, as_kek_label, "
    "as_app_s_key, origin_request, origin_join_nonce, origin_dl_settings FROM sessions "
    "WHERE dev_eui = ? AND session_key_id = ?",
    "find session"};
inline constexpr sql::Sql list_sessions{
    "SELECT session_key_id, dev_eui, stored_app_s_key, net_id, created_unix, as_kek_label, "
    "as_app_s_key, origin_request, origin_join_nonce, origin_dl_settings FROM sessions "
    "WHERE dev_eui = ? ORDER BY created_unix DESC, seq DESC",
    "list sessions"};

// ---- peers: columns and parameters 0..3 ----
inline constexpr sql::Sql put_peer{
    "INSERT INTO peers (kind, id, kek_label, plaintext_keys) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (kind, id) DO UPDATE SET kek_label = excluded.kek_label, "
    "plaintext_keys = excluded.plaintext_keys",
    "put peer"};
inline constexpr sql::Sql find_peer{
    "SELECT kind, id, kek_label, plaintext_keys FROM peers WHERE kind = ? AND id = ?", "find peer"};
inline constexpr sql::Sql list_peers{
    "SELECT kind, id, kek_label, plaintext_keys FROM peers ORDER BY kind DESC, id", "list peers"};
inline constexpr sql::Sql remove_peer{"DELETE FROM peers WHERE kind = ? AND id = ?", "remove peer"};

// ---- audit: columns and parameters 0..4 ----
inline constexpr sql::Sql append_audit{
    "INSERT INTO audit (time_unix, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
    "append to the audit trail"};
inline constexpr sql::Sql read_audit{
    "SELECT time_unix, actor, action, subject, detail FROM audit ORDER BY seq DESC LIMIT ?",
    "read the audit trail"};

/// Status::malformed when the device breaks a rule of registry.hpp (key sizes, serial length).
std::optional<Failure> check(const Device& device);

void bind(sql::Query& q, const Device& device);
Device read_device(const sql::Query& q);

/// Parameters 0..4 (generation to rj_count1_last).
void bind(sql::Query& q, const NonceState& state);
NonceState read_nonce_state(const sql::Query& q);

void bind(sql::Query& q, const lorawan::DevEui& dev_eui, const Session& session);
Session read_session(const sql::Query& q);

std::string_view kind_code(PeerKind kind) noexcept;
void bind(sql::Query& q, const Peer& peer);
Peer read_peer(const sql::Query& q);

void bind(sql::Query& q, const AuditRecord& record);
AuditRecord read_audit_record(const sql::Query& q);

/// A count or limit as an SQL integer (saturating).
std::int64_t sql_count(std::size_t n) noexcept;

}  // namespace lorakeep::host::registry::rows
