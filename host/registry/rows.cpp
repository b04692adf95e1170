#include "host/registry/rows.hpp"

#include <sqlite3.h>

#include <limits>
#include <span>
#include <string>
#include <type_traits>

namespace lorakeep::host::registry::rows {
namespace {

constexpr std::size_t wrapped_key_size = 24;  // RFC 3394 wrap of a 16-byte key
constexpr std::size_t max_serial_size = 12;

[[noreturn]] void corrupt(std::string_view table, std::string_view what) {
  throw sql::Error(SQLITE_CORRUPT,
                   "registry: corrupt " + std::string(table) + " row: " + std::string(what));
}

template <class Id>
Id read_id(const sql::Query& q, int column, std::string_view table, std::string_view what) {
  const auto b = q.blob(column);
  if (b.size() != Id::size) corrupt(table, std::string(what) + " of the wrong length");
  return Id::from_bytes(std::span<const std::uint8_t, Id::size>(b.data(), Id::size));
}

template <class T>
T read_uint(const sql::Query& q, int column, std::string_view table, std::string_view what) {
  static_assert(std::is_unsigned_v<T>);
  const auto v = q.integer(column);
  if (v < 0 || static_cast<std::uint64_t>(v) > std::numeric_limits<T>::max()) {
    corrupt(table, std::string(what) + " out of range");
  }
  return static_cast<T>(v);
}

template <class T>
std::optional<T> read_optional_uint(const sql::Query& q, int column, std::string_view table,
                                    std::string_view what) {
  if (q.is_null(column)) return std::nullopt;
  return read_uint<T>(q, column, table, what);
}

Failure bad_device(const Device& d, const std::string& what) {
  return fail(Status::malformed, "registry: device " + d.dev_eui.hex() + ": " + what);
}

}  // namespace

std::int64_t sql_count(std::size_t n) noexcept {
  constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  return n > max ? std::numeric_limits<std::int64_t>::max() : static_cast<std::int64_t>(n);
}

std::optional<Failure> check(const Device& d) {
  if (const auto* w = std::get_if<WrappedRootKeys>(&d.root_keys)) {
    if (w->app_key.size() != wrapped_key_size) {
      return bad_device(
          d, "the wrapped AppKey is " + std::to_string(w->app_key.size()) + " bytes, not 24");
    }
    const std::size_t nwk_wanted = lorawan::is_1_1(d.mac_version) ? wrapped_key_size : 0;
    if (w->nwk_key.size() != nwk_wanted) {
      return bad_device(d, "the wrapped NwkKey is " + std::to_string(w->nwk_key.size()) +
                               " bytes; LoRaWAN " +
                               std::string(lorawan::mac_version_name(d.mac_version)) + " needs " +
                               std::to_string(nwk_wanted));
    }
  } else {
    const auto& p = std::get<PartRootKeys>(d.root_keys);
    if (p.part_number.empty()) return bad_device(d, "empty part number");
    if (p.serial.empty() || p.serial.size() > max_serial_size) {
      return bad_device(
          d, "a serial of " + std::to_string(p.serial.size()) + " bytes (1 to 12 allowed)");
    }
  }
  if (d.as_id && d.as_id->empty()) return bad_device(d, "an empty AS-ID");
  return std::nullopt;
}

// ---- devices ----

void bind(sql::Query& q, const Device& d) {
  q.bind_blob(0, d.dev_eui.bytes());
  q.bind_blob(1, d.join_eui.bytes());
  q.bind_text(2, lorawan::mac_version_name(d.mac_version));
  if (const auto* w = std::get_if<WrappedRootKeys>(&d.root_keys)) {
    q.bind_blob(3, w->app_key).bind_blob(4, w->nwk_key).bind_null(5).bind_null(6);
  } else {
    const auto& p = std::get<PartRootKeys>(d.root_keys);
    q.bind_null(3).bind_null(4).bind_text(5, p.part_number).bind_blob(6, p.serial);
  }
  q.bind_blob(7, d.home_net_id.bytes());
  Bytes allowed;
  allowed.reserve(d.allowed_net_ids.size() * lorawan::NetId::size);
  for (const auto& n : d.allowed_net_ids)
    allowed.insert(allowed.end(), n.bytes().begin(), n.bytes().end());
  q.bind_blob(8, allowed);
  if (d.hnsid) {
    q.bind_blob(9, d.hnsid->bytes());
  } else {
    q.bind_null(9);
  }
  if (d.as_id) {
    q.bind_text(10, *d.as_id);
  } else {
    q.bind_null(10);
  }
}

Device read_device(const sql::Query& q) {
  constexpr std::string_view table = "devices";
  Device d;
  d.dev_eui = read_id<lorawan::DevEui>(q, 0, table, "DevEUI");
  d.join_eui = read_id<lorawan::JoinEui>(q, 1, table, "JoinEUI");
  auto version = lorawan::parse_mac_version(q.text(2));
  if (!version) corrupt(table, "unknown MAC version");
  d.mac_version = *version;
  if (!q.is_null(5)) {
    d.root_keys = PartRootKeys{q.text(5), q.blob(6)};
  } else {
    d.root_keys = WrappedRootKeys{q.blob(3), q.blob(4)};
  }
  d.home_net_id = read_id<lorawan::NetId>(q, 7, table, "home NetID");
  const auto allowed = q.blob(8);
  if (allowed.size() % lorawan::NetId::size != 0) corrupt(table, "allowed NetIDs");
  d.allowed_net_ids.reserve(allowed.size() / lorawan::NetId::size);
  for (std::size_t i = 0; i < allowed.size(); i += lorawan::NetId::size) {
    d.allowed_net_ids.push_back(
        lorawan::NetId::from_bytes(std::span<const std::uint8_t, lorawan::NetId::size>(
            allowed.data() + i, lorawan::NetId::size)));
  }
  if (!q.is_null(9)) d.hnsid = read_id<lorawan::NsId>(q, 9, table, "HNSID");
  if (!q.is_null(10)) d.as_id = q.text(10);
  return d;
}

// ---- nonces ----

void bind(sql::Query& q, const NonceState& s) {
  q.bind_int(0, static_cast<std::int64_t>(s.generation));
  q.bind_int(1, s.join_nonce_last);
  if (s.dev_nonce_last) {
    q.bind_int(2, *s.dev_nonce_last);
  } else {
    q.bind_null(2);
  }
  Bytes history;
  history.reserve(s.dev_nonce_history.size() * 2);
  for (const auto n : s.dev_nonce_history) {
    history.push_back(static_cast<std::uint8_t>(n >> 8));
    history.push_back(static_cast<std::uint8_t>(n & 0xFF));
  }
  q.bind_blob(3, history);
  if (s.rj_count1_last) {
    q.bind_int(4, *s.rj_count1_last);
  } else {
    q.bind_null(4);
  }
}

NonceState read_nonce_state(const sql::Query& q) {
  constexpr std::string_view table = "nonces";
  NonceState s;
  s.generation = read_uint<std::uint64_t>(q, 0, table, "generation");
  s.join_nonce_last = read_uint<std::uint32_t>(q, 1, table, "join_nonce_last");
  if (s.join_nonce_last > lorawan::JoinNonce::max) corrupt(table, "join_nonce_last out of range");
  s.dev_nonce_last = read_optional_uint<std::uint16_t>(q, 2, table, "dev_nonce_last");
  const auto history = q.blob(3);
  if (history.size() % 2 != 0) corrupt(table, "DevNonce history");
  s.dev_nonce_history.reserve(history.size() / 2);
  for (std::size_t i = 0; i < history.size(); i += 2) {
    s.dev_nonce_history.push_back(static_cast<std::uint16_t>((history[i] << 8) | history[i + 1]));
  }
  s.rj_count1_last = read_optional_uint<std::uint32_t>(q, 4, table, "rj_count1_last");
  return s;
}

// ---- sessions ----

void bind(sql::Query& q, const lorawan::DevEui& dev_eui, const Session& s) {
  q.bind_blob(0, s.session_key_id);
  q.bind_blob(1, dev_eui.bytes());
  q.bind_blob(2, s.stored_app_s_key);
  q.bind_blob(3, s.net_id.bytes());
  q.bind_int(4, s.created_unix);
  q.bind_text(5, s.as_kek_label);
  q.bind_blob(6, s.as_app_s_key);
  q.bind_blob(7, s.origin.request);
  q.bind_int(8, s.origin.join_nonce);
  q.bind_int(9, s.origin.dl_settings);
}

Session read_session(const sql::Query& q) {
  constexpr std::string_view table = "sessions";
  Session s;
  s.session_key_id = q.blob(0);
  s.dev_eui = read_id<lorawan::DevEui>(q, 1, table, "DevEUI");
  s.stored_app_s_key = q.blob(2);
  s.net_id = read_id<lorawan::NetId>(q, 3, table, "NetID");
  s.created_unix = q.integer(4);
  s.as_kek_label = q.text(5);
  s.as_app_s_key = q.blob(6);
  s.origin.request = q.blob(7);
  s.origin.join_nonce = read_uint<std::uint32_t>(q, 8, table, "origin JoinNonce");
  s.origin.dl_settings = read_uint<std::uint8_t>(q, 9, table, "origin DLSettings");
  return s;
}

// ---- peers ----

std::string_view kind_code(PeerKind kind) noexcept {
  return kind == PeerKind::network_server ? "ns" : "as";
}

void bind(sql::Query& q, const Peer& p) {
  q.bind_text(0, kind_code(p.kind)).bind_text(1, p.id);
  if (p.kek_label) {
    q.bind_text(2, *p.kek_label);
  } else {
    q.bind_null(2);
  }
  q.bind_int(3, p.plaintext_keys ? 1 : 0);
}

Peer read_peer(const sql::Query& q) {
  Peer p;
  const auto kind = q.text(0);
  if (kind == "ns") {
    p.kind = PeerKind::network_server;
  } else if (kind == "as") {
    p.kind = PeerKind::application_server;
  } else {
    corrupt("peers", "unknown kind");
  }
  p.id = q.text(1);
  if (!q.is_null(2)) p.kek_label = q.text(2);
  p.plaintext_keys = q.integer(3) != 0;
  return p;
}

// ---- audit ----

void bind(sql::Query& q, const AuditRecord& r) {
  q.bind_int(0, r.time_unix)
      .bind_text(1, r.actor)
      .bind_text(2, r.action)
      .bind_text(3, r.subject)
      .bind_text(4, r.detail);
}

AuditRecord read_audit_record(const sql::Query& q) {
  return AuditRecord{q.integer(0), q.text(1), q.text(2), q.text(3), q.text(4)};
}

}  // namespace lorakeep::host::registry::rows
