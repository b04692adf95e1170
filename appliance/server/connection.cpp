#include "appliance/server/connection.hpp"

#include <array>
#include <vector>

#include "pkcs11/secret.hpp"
#include "schemas/frame.hpp"

namespace lorakeep::appliance::server {
namespace {

/// Wipes a buffer that held a request or an answer (plaintext keys may pass through).
struct Wiped {
  std::vector<std::uint8_t> bytes;
  ~Wiped() { pkcs11::secure_zero(bytes.data(), bytes.size()); }
};

}  // namespace

std::string_view end_name(ConnectionEnd end) noexcept {
  switch (end) {
    case ConnectionEnd::peer_closed:
      return "peer_closed";
    case ConnectionEnd::bad_header:
      return "bad_header";
    case ConnectionEnd::stalled:
      return "stalled";
    case ConnectionEnd::handshake_failed:
      return "handshake_failed";
    case ConnectionEnd::io_error:
      return "io_error";
    case ConnectionEnd::stopped:
      return "stopped";
  }
  return "unknown";
}

ConnectionEnd serve_connection(Stream& stream, const std::string& peer, Dispatcher& dispatcher,
                               const ConnectionSettings& settings,
                               const std::atomic<bool>& stopping, int stop_fd) {
  using Io = Stream::Io;
  const auto far = Clock::now() + std::chrono::hours(24 * 365);
  if (stream.handshake(Clock::now() + settings.handshake_timeout, stop_fd) != Io::ok) {
    return ConnectionEnd::handshake_failed;
  }
  // Set once the server stops: requests are taken until then, each answered SHUTTING_DOWN.
  std::optional<Clock::time_point> drain_until;

  const auto send = [&](const std::vector<std::uint8_t>& answer) {
    auto framed = frame::encode(answer);
    if (!framed) {
      framed = frame::encode(Dispatcher::bad_frame("the answer is too large for one frame"));
    }
    if (!framed) return false;
    const Wiped wiped{std::move(*framed)};
    return stream.write_all(wiped.bytes, Clock::now() + settings.idle_timeout) == Io::ok;
  };

  /// Fills `buffer` completely. The first byte may wait for ever (until the server stops,
  /// then until the drain ends) when `first_may_wait`; once bytes came, each next one must
  /// come within the idle timeout.
  const auto read_exact = [&](std::span<std::uint8_t> buffer, bool first_may_wait) -> Io {
    std::size_t have = 0;
    while (have < buffer.size()) {
      Clock::time_point deadline = Clock::now() + settings.idle_timeout;
      int wake = -1;
      if (have == 0 && first_may_wait) {
        if (!drain_until && stopping.load()) drain_until = Clock::now() + settings.drain;
        deadline = drain_until ? *drain_until : far;
        wake = drain_until ? -1 : stop_fd;
      }
      std::size_t got = 0;
      const Io io = stream.read_some(buffer.subspan(have), got, deadline, wake);
      if (io == Io::woken) {
        drain_until = Clock::now() + settings.drain;
        continue;
      }
      if (io != Io::ok) return io;
      have += got;
    }
    return Io::ok;
  };

  for (;;) {
    std::array<std::uint8_t, frame::header_size> header{};
    Io io = read_exact(header, true);
    if (io == Io::timeout && drain_until) return ConnectionEnd::stopped;
    if (io == Io::timeout) return ConnectionEnd::stalled;
    if (io == Io::eof) return ConnectionEnd::peer_closed;
    if (io != Io::ok) return ConnectionEnd::io_error;

    const auto length = frame::parse_header(header);
    if (!length) {
      (void)send(Dispatcher::bad_frame(length.failure().message));
      return ConnectionEnd::bad_header;
    }
    Wiped payload{std::vector<std::uint8_t>(*length)};
    io = read_exact(payload.bytes, false);
    if (io == Io::timeout) return ConnectionEnd::stalled;
    if (io == Io::eof) return ConnectionEnd::peer_closed;
    if (io != Io::ok) return ConnectionEnd::io_error;

    const auto received = Clock::now();
    const Wiped answer{dispatcher.handle(payload.bytes, peer, stopping.load(), received)};
    if (answer.bytes.empty() || !send(answer.bytes)) return ConnectionEnd::io_error;
  }
}

}  // namespace lorakeep::appliance::server
