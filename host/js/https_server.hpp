// The HTTPS front door (CivetWeb): TLS 1.2+ with AEAD ciphers only, a client certificate
// asked of every peer (checked per SenderID by the handler, not here: the CA map can change
// while the server runs), keep-alive, a hard cap on body size and on slow clients, and no
// file serving. Handlers are plain functions of a request; every exception stops at the
// C callback.
#pragma once

#include <openssl/x509.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "schemas/result.hpp"

struct mg_context;
struct mg_connection;

namespace lorakeep::host::js {

struct HttpRequest {
  std::string method;
  std::string path;
  std::string body;
  /// The client's certificate, borrowed for the duration of the handler; nullptr when the
  /// client presented none.
  X509* client_cert = nullptr;
  std::string remote;  // address:port
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

using Handler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpsOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;             // 0: any free port (see HttpsServer::port)
  std::filesystem::path certificate;  // PEM chain
  std::filesystem::path private_key;  // PEM
  std::size_t threads = 32;
  std::size_t max_body_bytes = 65536;
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds keep_alive_timeout{30000};
};

class HttpsServer {
 public:
  /// Starts listening. `routes` maps exact paths to handlers; any other path is 404, a
  /// body over max_body_bytes is 413 (not read), a method other than the route's is 405.
  /// POST routes are those whose key starts with "POST "; others are GET ("GET /metrics").
  /// Fails (malformed) when the certificate or key cannot be loaded or the port not bound.
  static Result<std::unique_ptr<HttpsServer>> start(const HttpsOptions& options,
                                                    std::map<std::string, Handler> routes);
  /// Stops: waits for the handlers that are running, closes every connection.
  ~HttpsServer();
  HttpsServer(const HttpsServer&) = delete;
  HttpsServer& operator=(const HttpsServer&) = delete;
  HttpsServer(HttpsServer&&) = delete;
  HttpsServer& operator=(HttpsServer&&) = delete;

  /// The bound port (the chosen one when options.port was 0).
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

 private:
  HttpsServer() = default;
  static int dispatch(mg_connection* conn, void* self) noexcept;
  static int init_ssl(void* ssl_ctx, void* self) noexcept;
  HttpResponse serve(mg_connection* conn);

  HttpsOptions options_;
  std::map<std::string, Handler> routes_;
  mg_context* ctx_ = nullptr;
  std::uint16_t port_ = 0;
  std::string init_error_;
};

}  // namespace lorakeep::host::js
