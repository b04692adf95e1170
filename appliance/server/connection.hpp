// One connection's life: frames in, answers out, in order, until the peer leaves, a frame
// header is invalid, a partial frame stalls past the idle timeout, or the server stops.
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "appliance/server/dispatch.hpp"
#include "appliance/server/stream.hpp"

namespace lorakeep::appliance::server {

struct ConnectionSettings {
  std::chrono::milliseconds idle_timeout{30000};  // a partial frame that stalls this long
  std::chrono::milliseconds handshake_timeout{5000};
  /// After the server stops: how long an open connection still takes requests (each
  /// answered SHUTTING_DOWN) before it is closed.
  std::chrono::milliseconds drain{250};
};

/// Why a connection ended (for the log).
enum class ConnectionEnd { peer_closed, bad_header, stalled, handshake_failed, io_error, stopped };
[[nodiscard]] std::string_view end_name(ConnectionEnd end) noexcept;

/// Serves `stream` until it ends. `stop_fd` becomes readable (and `stopping` true) when the
/// server stops: requests in flight are finished, later ones answered SHUTTING_DOWN.
ConnectionEnd serve_connection(Stream& stream, const std::string& peer, Dispatcher& dispatcher,
                               const ConnectionSettings& settings,
                               const std::atomic<bool>& stopping, int stop_fd);

}  // namespace lorakeep::appliance::server
