// The Join Server's registry (DESIGN.md §3): devices, their nonce state, the sessions a
// join created (SessionKeyID → AppSKey wrapped under the storage key), peers and an audit
// trail of operator actions. SQLite by default (registry/sqlite.hpp); the interface lets
// several lorakeep-js instances share another database.
//
// Nothing here holds a plaintext key: root keys and stored AppSKeys are RFC 3394 wraps
// under the appliance's storage key, opaque bytes to the registry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "schemas/lorawan/types.hpp"
#include "schemas/result.hpp"

namespace lorakeep::host::registry {

using Bytes = std::vector<std::uint8_t>;

/// Root keys wrapped under the storage key (24 bytes each); `nwk_key` only for 1.1.
struct WrappedRootKeys {
  Bytes app_key;
  Bytes nwk_key;
  friend bool operator==(const WrappedRootKeys&, const WrappedRootKeys&) = default;
};

/// A secure-element device: its root keys are derived in the token from the part key.
struct PartRootKeys {
  std::string part_number;
  Bytes serial;  // 1 to 12 bytes
  friend bool operator==(const PartRootKeys&, const PartRootKeys&) = default;
};

struct Device {
  lorawan::JoinEui join_eui;
  lorawan::DevEui dev_eui;
  lorawan::MacVersion mac_version = lorawan::MacVersion::v1_0_2;
  std::variant<WrappedRootKeys, PartRootKeys> root_keys;
  lorawan::NetId home_net_id;
  std::optional<lorawan::NsId> hnsid;
  /// NetIDs besides the home NetID that may activate the device.
  std::vector<lorawan::NetId> allowed_net_ids;
  /// The Application Server that may fetch its AppSKey (and gets it in a JoinAns).
  std::optional<std::string> as_id;
  friend bool operator==(const Device&, const Device&) = default;
};

/// What the join flow reads before asking the appliance, and re-checks when it commits.
struct NonceState {
  /// Bumped by every change of this state (a join or rejoin committed, a nonce reset):
  /// the compare-and-swap token of commit().
  std::uint64_t generation = 0;
  /// The last JoinNonce handed out; 0 when none has been (the first is 1). Never goes
  /// down, not even on a nonce reset.
  std::uint32_t join_nonce_last = 0;
  /// Counter devices (1.0.4, 1.1): the highest DevNonce accepted.
  std::optional<std::uint16_t> dev_nonce_last;
  /// Random-DevNonce devices (1.0.0 to 1.0.3): DevNonces accepted, oldest first, at most
  /// Options::dev_nonce_history of them.
  std::vector<std::uint16_t> dev_nonce_history;
  /// 1.1 rejoin type 1: the last RJcount1 accepted (LoRaWAN 1.1 §6.2.4.2).
  std::optional<std::uint32_t> rj_count1_last;
  friend bool operator==(const NonceState&, const NonceState&) = default;
};

enum class DevNonceVerdict { fresh, replayed, not_increasing };

/// The DevNonce rule of DESIGN.md §3: a counter device needs a DevNonce above the last one
/// accepted (replayed when equal, not_increasing when below); a random device needs one
/// not in its history.
DevNonceVerdict check_dev_nonce(const NonceState& state, lorawan::DevNonce nonce, bool counter);

/// What a session's keys were derived from, beyond the device record (which does not change
/// while the session exists: a device is added or deleted whole), kept so that the token can
/// derive its AppSKey again for an AS whose KEK changed after the JoinAns: the request as
/// received (its MIC is verified again, under the device's root key) and the accept's
/// JoinNonce and DLSettings. No key is kept for it. `request` is empty in sessions from
/// before schema version 3.
struct SessionOrigin {
  Bytes request;  // the join- or rejoin-request's PHYPayload
  std::uint32_t join_nonce = 0;
  std::uint8_t dl_settings = 0;  // bit 7: OptNeg
  friend bool operator==(const SessionOrigin&, const SessionOrigin&) = default;
};

/// A session a join or rejoin created.
struct Session {
  Bytes session_key_id;  // 1 to 64 bytes; unique per device
  lorawan::DevEui dev_eui;
  Bytes stored_app_s_key;  // AppSKey under the storage key; empty when none was stored
  lorawan::NetId net_id;   // who activated it
  std::int64_t created_unix = 0;
  // The AppSKey as the JoinAns delivered it to the AS: under the KEK of this label.
  // Empty when the JoinAns carried none, or the configuration keeps none.
  std::string as_kek_label{};
  Bytes as_app_s_key{};
  SessionOrigin origin{};
  friend bool operator==(const Session&, const Session&) = default;
};

/// A join or rejoin the appliance answered, to be made durable before the JoinAns goes out.
struct Commit {
  lorawan::DevEui dev_eui;
  /// NonceState::generation as read before the appliance was asked.
  std::uint64_t expected_generation = 0;
  /// The JoinNonce in the accept; above the state's join_nonce_last.
  std::uint32_t join_nonce = 0;
  /// A join-request's DevNonce: becomes dev_nonce_last (counter) or joins the history
  /// (random, oldest dropped beyond Options::dev_nonce_history).
  std::optional<std::uint16_t> dev_nonce;
  bool dev_nonce_is_counter = false;
  /// A rejoin type 1's RJcount1: becomes rj_count1_last.
  std::optional<std::uint32_t> rj_count1;
  /// Stored, and the device's sessions beyond Options::sessions_kept dropped, oldest first.
  Session session;
};

enum class CommitOutcome {
  committed,       // durable (fsync'd) when commit() returns
  conflict,        // the generation moved: another join got there first; nothing written
  unknown_device,  // the device was deleted meanwhile; nothing written
};

enum class PeerKind { network_server, application_server };

/// Who may call, and how its session keys are delivered. (Which CA vouches for it is the
/// sender CA map's business, not the registry's.)
struct Peer {
  PeerKind kind = PeerKind::network_server;
  std::string id;  // NetID as 6 upper-case hex digits, or the AS-ID as given
  std::optional<std::string> kek_label;
  bool plaintext_keys = false;  // deliver keys in plaintext when no KEK label is set
  friend bool operator==(const Peer&, const Peer&) = default;
};

struct AuditRecord {
  std::int64_t time_unix = 0;
  std::string actor;    // e.g. "lorakeepctl:root"
  std::string action;   // e.g. "device.reset-nonces"
  std::string subject;  // e.g. a DevEUI in hex
  std::string detail;   // free text; never key material
};

enum class AddOutcome { added, already_present };

/// Every operation is thread-safe. Failures are Status::internal with a message that
/// starts "registry: " and says what failed (never key material); Status::malformed for
/// an argument that breaks a documented rule (e.g. a JoinNonce that does not increase).
class Registry {
 public:
  virtual ~Registry() = default;
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  Registry(Registry&&) = delete;
  Registry& operator=(Registry&&) = delete;

  // ---- devices ----
  virtual Result<std::optional<Device>> find_device(const lorawan::DevEui& dev_eui) = 0;
  /// Adds the device with a fresh NonceState; a device with that DevEUI already there is
  /// left as it is (already_present), whatever its other fields.
  virtual Result<AddOutcome> add_device(const Device& device) = 0;
  /// The same for many, in as few transactions as is fast (one per call at most 10,000
  /// devices); outcomes in the order given.
  virtual Result<std::vector<AddOutcome>> add_devices(const std::vector<Device>& devices) = 0;
  /// Removes the device, its nonce state and its sessions. false when it was not there.
  virtual Result<bool> delete_device(const lorawan::DevEui& dev_eui) = 0;
  /// Devices in DevEUI order, starting after `after` (all when absent), at most `limit`.
  virtual Result<std::vector<Device>> list_devices(std::optional<lorawan::DevEui> after,
                                                   std::size_t limit) = 0;
  virtual Result<std::uint64_t> count_devices() = 0;

  // ---- nonces and sessions ----
  /// The device's state; std::nullopt when the device is not there.
  virtual Result<std::optional<NonceState>> nonce_state(const lorawan::DevEui& dev_eui) = 0;
  /// Makes a join or rejoin durable, atomically: the JoinNonce, the DevNonce or RJcount1,
  /// and the session, or nothing. Concurrent commits are grouped into one transaction
  /// (one fsync) so that durability does not cap throughput at one fsync per join; each
  /// caller returns when its commit is durable. A JoinNonce not above join_nonce_last is
  /// Status::malformed (nothing written).
  virtual Result<CommitOutcome> commit(const Commit& commit) = 0;
  /// Forgets the DevNonce history/last DevNonce and RJcount1 (an operator's reset); the
  /// JoinNonce stays. Bumps the generation. false when the device is not there.
  virtual Result<bool> reset_nonces(const lorawan::DevEui& dev_eui) = 0;
  virtual Result<std::optional<Session>> find_session(const lorawan::DevEui& dev_eui,
                                                      const Bytes& session_key_id) = 0;
  /// The device's sessions, newest first.
  virtual Result<std::vector<Session>> sessions(const lorawan::DevEui& dev_eui) = 0;
  /// A session's AppSKey as delivered to its AS, replaced by `wrapped` under `kek_label`: the
  /// key derived again for an AS whose KEK changed, kept so that the next AppSKeyReq needs no
  /// token call. Only a session that keeps such an envelope (not one under the storage key)
  /// changes. false when there is none (the session was dropped meanwhile); Status::malformed
  /// for an empty label or a wrap that is not 24 bytes (nothing written).
  virtual Result<bool> replace_as_envelope(const lorawan::DevEui& dev_eui,
                                           const Bytes& session_key_id,
                                           const std::string& kek_label, const Bytes& wrapped) = 0;

  // ---- peers ----
  /// Adds or replaces the peer with that kind and id.
  virtual Result<Ok> put_peer(const Peer& peer) = 0;
  virtual Result<std::optional<Peer>> find_peer(PeerKind kind, const std::string& id) = 0;
  virtual Result<std::vector<Peer>> list_peers() = 0;
  virtual Result<bool> remove_peer(PeerKind kind, const std::string& id) = 0;

  // ---- operations ----
  virtual Result<Ok> audit(const AuditRecord& record) = 0;
  virtual Result<std::vector<AuditRecord>> audit_log(std::size_t limit) = 0;
  /// Cheap round trip for /readyz.
  virtual Result<Ok> ping() = 0;
};

struct Options {
  std::size_t dev_nonce_history = 128;  // 1 to 65536
  std::size_t sessions_kept = 4;        // 1 to 1024
  std::size_t max_batch = 512;          // commits per group transaction, 1 to 100,000
};

}  // namespace lorakeep::host::registry
