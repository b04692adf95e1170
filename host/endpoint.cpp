#include "host/endpoint.hpp"

#include <sys/un.h>

#include <charconv>

namespace lorakeep::host {

namespace {

constexpr std::string_view unix_prefix = "unix:";

Failure bad(std::string_view address, std::string_view why) {
  return fail(Status::malformed,
              "appliance address '" + std::string(address) + "': " + std::string(why));
}

}  // namespace

Result<Endpoint> Endpoint::parse(std::string_view address) {
  Endpoint ep;
  ep.text = std::string(address);
  if (address.starts_with(unix_prefix)) {
    ep.kind = Kind::unix_socket;
    ep.path = std::string(address.substr(unix_prefix.size()));
    if (ep.path.empty()) return bad(address, "the socket path is empty");
    if (ep.path.size() >= sizeof(sockaddr_un::sun_path)) {
      return bad(address, "the socket path is longer than " +
                              std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
    }
    if (ep.path.find('\0') != std::string::npos) return bad(address, "the path holds a NUL");
    return ep;
  }
  ep.kind = Kind::tcp;
  const auto colon = address.rfind(':');
  if (colon == std::string_view::npos) {
    return bad(address, "expected unix:/path or host:port");
  }
  std::string_view host = address.substr(0, colon);
  const std::string_view port = address.substr(colon + 1);
  if (host.starts_with('[')) {
    if (!host.ends_with(']')) return bad(address, "an IPv6 literal needs a closing ']'");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad(address, "write an IPv6 literal in brackets: [::1]:port");
  }
  if (host.empty()) return bad(address, "the host is empty");
  unsigned value = 0;
  const auto* end = port.data() + port.size();
  const auto [ptr, ec] = std::from_chars(port.data(), end, value);
  if (port.empty() || ec != std::errc{} || ptr != end || value == 0 || value > 65535) {
    return bad(address, "the port must be a number from 1 to 65535");
  }
  ep.host = std::string(host);
  ep.port = static_cast<std::uint16_t>(value);
  return ep;
}

}  // namespace lorakeep::host
