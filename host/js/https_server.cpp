#include "host/js/https_server.hpp"

#include <civetweb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <array>
#include <mutex>
#include <vector>

namespace lorakeep::host::js {
namespace {

// TLS 1.2 suites with AEAD only (TLS 1.3's are all AEAD). Forward secrecy throughout.
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/// Every client certificate is accepted at the handshake: whether it vouches for the
/// request's SenderID is decided per request against the sender CA map of that moment.
int accept_any_certificate(int /*preverify_ok*/, X509_STORE_CTX* /*ctx*/) {
  return 1;
}

int quiet_log(const mg_connection* /*conn*/, const char* /*message*/) {
  return 1;  // CivetWeb's own messages are not JSON; failures surface as HTTP answers.
}

std::once_flag library_once;

}  // namespace
}  // namespace lorakeep::host::js

extern "C" int lorakeep_civetweb_openssl3_names();

namespace lorakeep::host::js {
namespace {}  // namespace

int HttpsServer::init_ssl(void* ssl_ctx, void* self) noexcept {
  auto* server = static_cast<HttpsServer*>(self);
  auto* ctx = static_cast<SSL_CTX*>(ssl_ctx);
  try {
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(
        ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) {
      server->init_error_ = "no AEAD cipher available";
      return -1;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, server->options_.certificate.c_str()) != 1) {
      server->init_error_ = server->options_.certificate.string() + ": not a PEM certificate chain";
      return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, server->options_.private_key.c_str(), SSL_FILETYPE_PEM) !=
            1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      server->init_error_ = server->options_.private_key.string() +
                            ": not a PEM private key matching the certificate";
      return -1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, accept_any_certificate);
    ERR_clear_error();
    return 1;
  } catch (...) {
    return -1;
  }
}

Result<std::unique_ptr<HttpsServer>> HttpsServer::start(const HttpsOptions& options,
                                                        std::map<std::string, Handler> routes) {
  // The shim must be loaded before CivetWeb looks for OpenSSL (civetweb_tls/).
  if (lorakeep_civetweb_openssl3_names() != 1) {
    return fail(Status::internal, "CivetWeb's OpenSSL 3 shim is not loaded");
  }
  std::call_once(library_once, [] { mg_init_library(MG_FEATURES_TLS); });
  std::unique_ptr<HttpsServer> server(new HttpsServer());
  server->options_ = options;
  server->routes_ = std::move(routes);

  const bool v6 = options.host.find(':') != std::string::npos;
  const std::string host =
      v6 && !options.host.starts_with('[') ? "[" + options.host + "]" : options.host;
  const std::string listening = host + ":" + std::to_string(options.port) + "s";
  const std::string threads = std::to_string(options.threads);
  const std::string request_timeout = std::to_string(options.request_timeout.count());
  const std::string keep_alive = std::to_string(options.keep_alive_timeout.count());
  std::array<const char*, 25> settings = {
      "listening_ports", listening.c_str(), "num_threads", threads.c_str(), "enable_keep_alive",
      "yes", "keep_alive_timeout_ms", keep_alive.c_str(), "request_timeout_ms",
      request_timeout.c_str(), "linger_timeout_ms", "1000", "enable_directory_listing", "no",
      "ssl_protocol_version",
      "4",  // TLS 1.2 and later
      "ssl_verify_peer",
      "no",  // init_ssl asks for a certificate and accepts any
      "access_control_allow_origin", "", "ssl_cache_timeout", "-1",
      // Headers and body leave in two writes: with Nagle
      // the body waits for the client's delayed ACK (40 ms
      // on Linux) on every keep-alive request.
      "tcp_nodelay", "1", nullptr};
  mg_callbacks callbacks{};
  callbacks.init_ssl = &HttpsServer::init_ssl;
  callbacks.log_message = &quiet_log;
  mg_init_data init{};
  init.callbacks = &callbacks;
  init.user_data = server.get();
  init.configuration_options = settings.data();
  mg_error_data error{};
  std::array<char, 256> error_text{};
  error.text = error_text.data();
  error.text_buffer_size = error_text.size();
  server->ctx_ = mg_start2(&init, &error);
  if (server->ctx_ == nullptr) {
    std::string why = !server->init_error_.empty() ? server->init_error_ : error_text.data();
    return fail(Status::malformed,
                "cannot serve HTTPS on " + listening.substr(0, listening.size() - 1) + ": " + why);
  }
  std::array<mg_server_port, 4> ports{};
  if (mg_get_server_ports(server->ctx_, static_cast<int>(ports.size()), ports.data()) < 1) {
    return fail(Status::internal, "HTTPS server started without a port");
  }
  server->port_ = static_cast<std::uint16_t>(ports[0].port);
  mg_set_request_handler(server->ctx_, "/", &HttpsServer::dispatch, server.get());
  return server;
}

HttpsServer::~HttpsServer() {
  if (ctx_ != nullptr) mg_stop(ctx_);
}

HttpResponse HttpsServer::serve(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  HttpRequest request;
  request.method = ri->request_method != nullptr ? ri->request_method : "";
  request.path = ri->local_uri != nullptr ? ri->local_uri : "";
  request.remote = std::string(ri->remote_addr) + ":" + std::to_string(ri->remote_port);
  if (ri->client_cert != nullptr)
    request.client_cert = static_cast<X509*>(ri->client_cert->peer_cert);

  const std::string key = request.method + " " + request.path;
  auto route = routes_.find(key);
  if (route == routes_.end()) {
    bool other_method = false;
    for (const auto& [name, handler] : routes_)
      other_method = other_method || name.substr(name.find(' ') + 1) == request.path;
    if (other_method) return {405, "text/plain", "method not allowed\n"};
    return {404, "text/plain", "not found\n"};
  }

  const std::size_t max = options_.max_body_bytes;
  if (ri->content_length > static_cast<long long>(max)) {
    return {413, "text/plain", "body over " + std::to_string(max) + " bytes\n"};
  }
  std::vector<char> buffer(max + 1);
  std::size_t got = 0;
  while (got <= max) {
    const int n = mg_read(conn, buffer.data() + got, max + 1 - got);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > max) return {413, "text/plain", "body over " + std::to_string(max) + " bytes\n"};
  request.body.assign(buffer.data(), got);
  return route->second(request);
}

int HttpsServer::dispatch(mg_connection* conn, void* self) noexcept {
  auto* server = static_cast<HttpsServer*>(self);
  HttpResponse response;
  try {
    response = server->serve(conn);
  } catch (...) {
    response = {500, "text/plain", "internal error\n"};
  }
  try {
    if (response.status == 413) {
      // CivetWeb's header API, which makes it close the connection: the unread body must
      // not be taken for the next request.
      mg_response_header_start(conn, response.status);
      mg_response_header_add(conn, "Content-Type", response.content_type.c_str(), -1);
      const std::string length = std::to_string(response.body.size());
      mg_response_header_add(conn, "Content-Length", length.c_str(), -1);
      mg_response_header_add(conn, "Cache-Control", "no-store", -1);
      mg_response_header_add(conn, "Connection", "close", -1);
      mg_response_header_send(conn);
      mg_write(conn, response.body.data(), response.body.size());
    } else {
      // One write, so one TLS record and one TCP segment: the header API writes every header
      // line on its own (a record, a syscall and a packet each).
      std::string wire = "HTTP/1.1 " + std::to_string(response.status) + " " +
                         mg_get_response_code_text(conn, response.status) +
                         "\r\nContent-Type: " + response.content_type +
                         "\r\nContent-Length: " + std::to_string(response.body.size()) +
                         "\r\nCache-Control: no-store\r\n\r\n";
      wire += response.body;
      mg_write(conn, wire.data(), wire.size());
    }
  } catch (...) {
    // Nothing left to tell the client.
  }
  return response.status;
}

}  // namespace lorakeep::host::js
