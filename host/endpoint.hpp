// Addresses of lorakeep-cs instances, as configured: "unix:/run/lorakeep/cs.sock" or
// "host:port" ("[::1]:7443" for an IPv6 literal). TCP always means TLS 1.3 with the cluster
// PSK; a Unix socket relies on file permissions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "schemas/result.hpp"

namespace lorakeep::host {

struct Endpoint {
  enum class Kind : std::uint8_t { unix_socket, tcp };
  Kind kind = Kind::unix_socket;
  std::string path;  // unix_socket: the socket file
  std::string host;  // tcp: a name or an IP literal (without brackets)
  std::uint16_t port = 0;
  std::string text;  // as configured, for messages

  /// Parses and checks an address; malformed, with a message naming it, when the Unix path
  /// is empty or too long for sockaddr_un, the port is not 1..65535, or the host is empty.
  static Result<Endpoint> parse(std::string_view address);
};

}  // namespace lorakeep::host
