#include "tools/nsim/https_client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <utility>

namespace lorakeep::nsim {
namespace {

constexpr std::size_t max_header_bytes = std::size_t{16} * 1024;
constexpr std::size_t max_body_bytes = std::size_t{4} * 1024 * 1024;

std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no OpenSSL error queued";
  std::array<char, 256> text{};
  ERR_error_string_n(e, text.data(), text.size());
  return text.data();
}

bool is_ip_literal(const std::string& host) {
  std::array<unsigned char, sizeof(in6_addr)> buf{};
  return ::inet_pton(AF_INET, host.c_str(), buf.data()) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf.data()) == 1;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

/// Connects with a deadline; -1 and `error` set on failure.
int tcp_connect(const Url& url, std::chrono::milliseconds timeout, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(url.host.c_str(), url.port.c_str(), &hints, &found); rc != 0) {
    error = "cannot resolve " + url.host + ": " + ::gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      error = "connect to " + url.host + ":" + url.port + ": " + std::strerror(errno);
      ::close(fd);
      fd = -1;
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (ready == 1) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
    if (ready != 1 || so_error != 0) {
      error = "connect to " + url.host + ":" + url.port + ": " +
              (ready == 1 ? std::strerror(so_error) : "timed out");
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) return -1;
  // Blocking from here on, every read and write bounded by the timeout.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

}  // namespace

// ---- Url ----

Result<Url> Url::parse(std::string_view text) {
  constexpr std::string_view scheme = "https://";
  if (text.substr(0, scheme.size()) != scheme) {
    return fail(Status::malformed, "the URL must start with https://");
  }
  std::string_view rest = text.substr(scheme.size());
  Url url;
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) url.path = std::string(rest.substr(slash));
  if (authority.empty()) return fail(Status::malformed, "the URL has no host");
  if (authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail(Status::malformed, "the URL's [IPv6] is open");
    url.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (!authority.empty()) {
      if (authority.front() != ':') return fail(Status::malformed, "junk after the URL's ]");
      url.port = std::string(authority.substr(1));
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) url.port = std::string(authority.substr(colon + 1));
  }
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(url.port.data(), url.port.data() + url.port.size(), port);
  if (url.host.empty() || ec != std::errc() || end != url.port.data() + url.port.size() ||
      port == 0 || port > 65535) {
    return fail(Status::malformed, "the URL needs a host and a port from 1 to 65535");
  }
  return url;
}

// ---- TlsContext ----

Result<std::shared_ptr<TlsContext>> TlsContext::create(const TlsFiles& files) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return fail(Status::internal, "OpenSSL: " + openssl_error());
  std::shared_ptr<TlsContext> out(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_read_ahead(ctx, 1);  // whole records in one read, not header then body
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx, files.ca.c_str(), nullptr) != 1) {
    return fail(Status::malformed, "--ca " + files.ca.string() + ": " + openssl_error());
  }
  if (!files.certificate.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, files.certificate.c_str()) != 1) {
      return fail(Status::malformed,
                  "--cert " + files.certificate.string() + ": " + openssl_error());
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, files.private_key.c_str(), SSL_FILETYPE_PEM) != 1) {
      return fail(Status::malformed,
                  "--cert-key-file " + files.private_key.string() + ": " + openssl_error());
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      return fail(Status::malformed, "--cert-key-file " + files.private_key.string() +
                                         " is not the key of --cert " + files.certificate.string());
    }
  }
  return out;
}

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
}

// ---- HttpsClient ----

HttpsClient::HttpsClient(std::shared_ptr<TlsContext> tls, Url url,
                         std::chrono::milliseconds timeout)
    : tls_(std::move(tls)), url_(std::move(url)), timeout_(timeout) {}

HttpsClient::~HttpsClient() {
  close();
}

void HttpsClient::close() noexcept {
  if (ssl_ != nullptr) {
    SSL_shutdown(ssl_);  // best effort close_notify; the answer is not awaited
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  reused_ = false;
  pending_.clear();
  ERR_clear_error();
}

Result<Ok> HttpsClient::connect() {
  if (ssl_ != nullptr) return Ok{};
  std::string error;
  fd_ = tcp_connect(url_, timeout_, error);
  if (fd_ < 0) return fail(Status::token_unavailable, error);
  ssl_ = SSL_new(tls_->get());
  if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1) {
    close();
    return fail(Status::internal, "OpenSSL: " + openssl_error());
  }
  if (is_ip_literal(url_.host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), url_.host.c_str());
  } else {
    // SSL_set_tlsext_host_name() without its C cast.
    SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(url_.host.c_str()));
    SSL_set1_host(ssl_, url_.host.c_str());
  }
  if (SSL_connect(ssl_) != 1) {
    const long verify = SSL_get_verify_result(ssl_);
    std::string why = openssl_error();
    if (verify != X509_V_OK) why += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
    close();
    return fail(Status::token_unavailable,
                "TLS handshake with " + url_.host + ":" + url_.port + " failed: " + why);
  }
  ++counters_.connects;
  return Ok{};
}

bool HttpsClient::read_more(std::string& buffer, std::chrono::steady_clock::time_point deadline,
                            std::string& error) {
  std::array<char, std::size_t{16} * 1024> chunk{};
  for (;;) {
    errno = 0;
    const int n = SSL_read(ssl_, chunk.data(), static_cast<int>(chunk.size()));
    if (n > 0) {
      buffer.append(chunk.data(), static_cast<std::size_t>(n));
      return true;
    }
    const int e = SSL_get_error(ssl_, n);
    const bool timed_out = e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE || timed_out) {
      // The socket's receive timeout woke the read: wait out the rest of the deadline.
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, static_cast<short>(e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
      if (left.count() > 0 && ::poll(&p, 1, static_cast<int>(left.count())) == 1) continue;
      error = "no answer within " + std::to_string(timeout_.count()) + " ms";
      return false;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
      error = "the server closed the connection";
    } else if (e == SSL_ERROR_SYSCALL) {
      error = errno == 0 ? "the server closed the connection"
                         : std::string("connection lost: ") + std::strerror(errno);
    } else {
      error = "TLS: " + openssl_error();
    }
    return false;
  }
}

HttpsClient::Sent HttpsClient::exchange(const std::string& request, HttpResponse& response,
                                        std::string& error) {
  errno = 0;
  std::size_t written = 0;
  while (written < request.size()) {
    const int n =
        SSL_write(ssl_, request.data() + written, static_cast<int>(request.size() - written));
    if (n <= 0) {
      error = "sending the request failed: " + openssl_error();
      return reused_ ? Sent::closed_before_answer : Sent::failed;
    }
    written += static_cast<std::size_t>(n);
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  std::string buffer = std::move(pending_);
  pending_.clear();
  std::size_t header_end = std::string::npos;
  while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
    if (buffer.size() > max_header_bytes) {
      error = "the answer's header is over " + std::to_string(max_header_bytes) + " bytes";
      return Sent::failed;
    }
    errno = 0;
    if (!read_more(buffer, deadline, error)) {
      return buffer.empty() && reused_ ? Sent::closed_before_answer : Sent::failed;
    }
  }
  const std::string_view head(buffer.data(), header_end);
  const std::size_t line_end = head.find("\r\n");
  const std::string_view status_line = head.substr(0, line_end);
  if (status_line.substr(0, 9) != "HTTP/1.1 " || status_line.size() < 12) {
    error = "the answer is not HTTP/1.1";
    return Sent::failed;
  }
  int status = 0;
  const auto code_text = status_line.substr(9, 3);
  if (std::from_chars(code_text.data(), code_text.data() + 3, status).ec != std::errc()) {
    error = "the answer's status line has no status code";
    return Sent::failed;
  }
  std::optional<std::size_t> content_length;
  bool close_after = false;
  std::size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    std::size_t eol = head.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = head.size();
    const std::string_view line = head.substr(pos, eol - pos);
    pos = eol + 2;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string name = lower(trim(line.substr(0, colon)));
    const std::string_view value = trim(line.substr(colon + 1));
    if (name == "content-length") {
      std::size_t n = 0;
      if (std::from_chars(value.data(), value.data() + value.size(), n).ec != std::errc() ||
          n > max_body_bytes) {
        error = "the answer's Content-Length is not a number up to 4 MiB";
        return Sent::failed;
      }
      content_length = n;
    } else if (name == "connection" && lower(value).find("close") != std::string::npos) {
      close_after = true;
    } else if (name == "transfer-encoding") {
      error = "the answer uses Transfer-Encoding; only Content-Length bodies are read";
      return Sent::failed;
    }
  }
  if (!content_length) {
    error = "the answer has no Content-Length";
    return Sent::failed;
  }
  const std::size_t body_start = header_end + 4;
  while (buffer.size() < body_start + *content_length) {
    errno = 0;
    if (!read_more(buffer, deadline, error)) return Sent::failed;
  }
  response.status = status;
  response.body = buffer.substr(body_start, *content_length);
  pending_ = buffer.substr(body_start + *content_length);
  if (close_after) {
    close();
  } else {
    reused_ = true;
  }
  return Sent::answered;
}

Result<HttpResponse> HttpsClient::post(std::string_view body) {
  std::string request;
  request.reserve(body.size() + 160);
  request.append("POST ").append(url_.path).append(" HTTP/1.1\r\nHost: ");
  request.append(url_.host.find(':') != std::string::npos ? "[" + url_.host + "]" : url_.host);
  request.append(":").append(url_.port);
  request.append("\r\nContent-Type: application/json\r\nContent-Length: ");
  request.append(std::to_string(body.size())).append("\r\n\r\n").append(body);

  for (int attempt = 0; attempt < 2; ++attempt) {
    if (auto ok = connect(); !ok) return ok.failure();
    HttpResponse response;
    std::string error;
    const Sent sent = exchange(request, response, error);
    if (sent == Sent::answered) return response;
    close();
    if (sent == Sent::failed) return fail(Status::token_unavailable, error);
    ++counters_.reconnects;  // closed while idle: the server never saw the request
  }
  return fail(Status::token_unavailable, "the server closed two connections in a row");
}

}  // namespace lorakeep::nsim
