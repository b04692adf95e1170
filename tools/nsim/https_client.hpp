// A Network Server's HTTPS client: HTTP/1.1 POSTs over one keep-alive TLS connection with a
// client certificate, Content-Length bodies only, a new connection when the server closed
// the old one. One client is one connection and is used by one thread at a time.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "schemas/result.hpp"

namespace lorakeep::nsim {

/// https://HOST[:PORT][/PATH]; HOST may be a name, an IPv4 address or [IPv6].
struct Url {
  std::string host;
  std::string port = "443";
  std::string path = "/";
  static Result<Url> parse(std::string_view text);
};

/// What the client trusts and presents: the server's CA, and its own certificate and key.
struct TlsFiles {
  std::filesystem::path ca;
  std::filesystem::path certificate;  // empty: no client certificate
  std::filesystem::path private_key;
};

/// A TLS client context (TLS 1.2 or later, the server verified against `ca` and by name or
/// address), shared by many connections.
class TlsContext {
 public:
  /// Failures are Status::malformed naming the file that would not load.
  static Result<std::shared_ptr<TlsContext>> create(const TlsFiles& files);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  TlsContext(TlsContext&&) = delete;
  TlsContext& operator=(TlsContext&&) = delete;

  [[nodiscard]] SSL_CTX* get() const noexcept { return ctx_; }

 private:
  explicit TlsContext(SSL_CTX* ctx) noexcept : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

struct HttpResponse {
  int status = 0;
  std::string body;
};

struct ClientCounters {
  std::uint64_t connects = 0;    // TLS connections established
  std::uint64_t reconnects = 0;  // a request sent again on a new connection
};

class HttpsClient {
 public:
  HttpsClient(std::shared_ptr<TlsContext> tls, Url url, std::chrono::milliseconds timeout);
  ~HttpsClient();
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;
  HttpsClient(HttpsClient&&) = delete;
  HttpsClient& operator=(HttpsClient&&) = delete;

  /// Connects now (otherwise the first post() does).
  Result<Ok> connect();

  /// POSTs `body` (application/json) to the URL's path and reads the answer. When a kept-alive
  /// connection turns out closed before any byte of the answer arrived (the server's idle
  /// timeout crossed the request), the request is sent once more on a new connection — the
  /// usual keep-alive race, in which the server never saw it. Failures are
  /// Status::token_unavailable (connect, TLS, timeout, connection lost) or Status::malformed
  /// (an answer that is not HTTP/1.1 with a Content-Length).
  Result<HttpResponse> post(std::string_view body);

  void close() noexcept;
  [[nodiscard]] const ClientCounters& counters() const noexcept { return counters_; }

 private:
  enum class Sent { answered, closed_before_answer, failed };
  Sent exchange(const std::string& request, HttpResponse& response, std::string& error);
  bool read_more(std::string& buffer, std::chrono::steady_clock::time_point deadline,
                 std::string& error);

  std::shared_ptr<TlsContext> tls_;
  Url url_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool reused_ = false;  // the connection already carried an exchange
  std::string pending_;  // bytes read past the last answer (none expected)
  ClientCounters counters_;
};

}  // namespace lorakeep::nsim
