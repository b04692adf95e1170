// tools/nsim's HTTPS client against a small TLS server in the test: keep-alive, a client
// certificate, the server closing an idle connection (the request goes again on a new one),
// "Connection: close", a server it must not trust, and a server that never answers.
#include <doctest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "token_fixture.hpp"
#include "tools/nsim/https_client.hpp"

using namespace lorakeep;
using namespace lorakeep::nsim;
using namespace std::chrono_literals;

namespace {

/// A self-signed certificate for 127.0.0.1 (server, client and trust anchor at once).
struct SelfSigned {
  std::filesystem::path cert;
  std::filesystem::path key;

  SelfSigned(const std::filesystem::path& dir, const std::string& name) {
    EVP_PKEY* pkey = EVP_EC_gen("P-256");
    REQUIRE(pkey != nullptr);
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pkey);
    X509_NAME* n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
    REQUIRE(san != nullptr);
    X509_add_ext(x, san, -1);
    X509_EXTENSION_free(san);
    REQUIRE(X509_sign(x, pkey, EVP_sha256()) > 0);
    cert = dir / (name + ".pem");
    key = dir / (name + ".key");
    FILE* f = std::fopen(cert.c_str(), "w");
    PEM_write_X509(f, x);
    std::fclose(f);
    f = std::fopen(key.c_str(), "w");
    PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
  }
};

enum class Mode { keep_alive, close_after_answer, connection_close_header, silent };

/// Serves one connection at a time: echoes each POST body with 200.
class Server {
 public:
  Server(const SelfSigned& id, Mode mode) : mode_(mode) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    REQUIRE(SSL_CTX_use_certificate_file(ctx_, id.cert.c_str(), SSL_FILETYPE_PEM) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(ctx_, id.key.c_str(), SSL_FILETYPE_PEM) == 1);
    REQUIRE(SSL_CTX_load_verify_locations(ctx_, id.cert.c_str(), nullptr) == 1);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 8) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~Server() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
    SSL_CTX_free(ctx_);
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  Server(Server&&) = delete;
  Server& operator=(Server&&) = delete;

  [[nodiscard]] std::string url() const {
    return "https://127.0.0.1:" + std::to_string(port_) + "/";
  }
  std::atomic<int> connections{0};
  std::atomic<int> requests{0};
  std::atomic<int> client_certificates{0};

 private:
  void run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      timeval tv{2, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, c);
      if (SSL_accept(ssl) == 1) {
        ++connections;
        if (X509* peer = SSL_get1_peer_certificate(ssl)) {
          ++client_certificates;
          X509_free(peer);
        }
        serve(ssl);
      }
      SSL_shutdown(ssl);
      SSL_free(ssl);
      ::close(c);
      ERR_clear_error();
    }
  }

  void serve(SSL* ssl) {
    std::string buffer;
    std::array<char, 4096> chunk{};
    for (;;) {
      std::size_t end = 0;
      while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
        const int n = SSL_read(ssl, chunk.data(), static_cast<int>(chunk.size()));
        if (n <= 0) return;
        buffer.append(chunk.data(), static_cast<std::size_t>(n));
      }
      const std::size_t cl = buffer.find("Content-Length: ");
      const std::size_t length = cl == std::string::npos ? 0 : std::stoul(buffer.substr(cl + 16));
      while (buffer.size() < end + 4 + length) {
        const int n = SSL_read(ssl, chunk.data(), static_cast<int>(chunk.size()));
        if (n <= 0) return;
        buffer.append(chunk.data(), static_cast<std::size_t>(n));
      }
      const std::string body = buffer.substr(end + 4, length);
      buffer.erase(0, end + 4 + length);
      ++requests;
      if (mode_ == Mode::silent) {
        while (!stop_)
          std::this_thread::sleep_for(10ms);
        return;
      }
      std::string answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";
      if (mode_ == Mode::connection_close_header) answer += "Connection: close\r\n";
      answer += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      SSL_write(ssl, answer.data(), static_cast<int>(answer.size()));
      if (mode_ != Mode::keep_alive) return;
    }
  }

  Mode mode_;
  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct Fixture {
  test::TempDir dir;
  SelfSigned server_id{dir.path(), "server"};
  SelfSigned client_id{dir.path(), "client"};
  Fixture() { std::signal(SIGPIPE, SIG_IGN); }

  std::shared_ptr<TlsContext> tls(const SelfSigned& trusted) {
    auto t = TlsContext::create({trusted.cert, server_id.cert, server_id.key});
    REQUIRE(t.ok());
    return *t;
  }
};

}  // namespace

TEST_CASE("URLs") {
  auto u = Url::parse("https://127.0.0.1:8443/");
  REQUIRE(u.ok());
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == "8443");
  CHECK(u->path == "/");
  u = Url::parse("https://js.example.com/bi/join");
  REQUIRE(u.ok());
  CHECK(u->port == "443");
  CHECK(u->path == "/bi/join");
  u = Url::parse("https://[::1]:9000");
  REQUIRE(u.ok());
  CHECK(u->host == "::1");
  CHECK(u->path == "/");
  CHECK_FALSE(Url::parse("http://127.0.0.1:8443/").ok());
  CHECK_FALSE(Url::parse("https://:8443/").ok());
  CHECK_FALSE(Url::parse("https://host:0/").ok());
  CHECK_FALSE(Url::parse("https://host:99999/").ok());
  CHECK_FALSE(Url::parse("https://[::1/").ok());
}

TEST_CASE("keep-alive: many requests on one connection, with the client certificate") {
  Fixture f;
  Server server(f.server_id, Mode::keep_alive);
  HttpsClient client(f.tls(f.server_id), *Url::parse(server.url()), 5000ms);
  for (int i = 0; i < 5; ++i) {
    const std::string body = R"({"n":)" + std::to_string(i) + "}";
    auto r = client.post(body);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.failure().message));
    CHECK(r->status == 200);
    CHECK(r->body == body);
  }
  CHECK(server.connections == 1);
  CHECK(server.client_certificates == 1);
  CHECK(client.counters().connects == 1);
  CHECK(client.counters().reconnects == 0);
}

TEST_CASE("a connection the server closed while idle: the request goes again on a new one") {
  Fixture f;
  Server server(f.server_id, Mode::close_after_answer);
  HttpsClient client(f.tls(f.server_id), *Url::parse(server.url()), 5000ms);
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(20ms);  // let the close arrive
    auto r = client.post("{}");
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.failure().message));
    CHECK(r->body == "{}");
  }
  CHECK(server.requests == 4);
  CHECK(client.counters().connects == 4);
}

TEST_CASE("Connection: close is honoured") {
  Fixture f;
  Server server(f.server_id, Mode::connection_close_header);
  HttpsClient client(f.tls(f.server_id), *Url::parse(server.url()), 5000ms);
  for (int i = 0; i < 3; ++i)
    REQUIRE(client.post("{}").ok());
  CHECK(client.counters().connects == 3);
  CHECK(client.counters().reconnects == 0);
  CHECK(server.requests == 3);
}

TEST_CASE("a server the CA does not vouch for is refused") {
  Fixture f;
  Server server(f.server_id, Mode::keep_alive);
  HttpsClient client(f.tls(f.client_id), *Url::parse(server.url()), 5000ms);
  auto r = client.post("{}");
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().status == Status::token_unavailable);
  CHECK(r.failure().message.find("TLS handshake") != std::string::npos);
  CHECK(server.requests == 0);
}

TEST_CASE("a server that never answers: the request fails after the timeout") {
  Fixture f;
  Server server(f.server_id, Mode::silent);
  HttpsClient client(f.tls(f.server_id), *Url::parse(server.url()), 300ms);
  auto r = client.post("{}");
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().message.find("no answer within 300 ms") != std::string::npos);
}

TEST_CASE("files that do not load are named") {
  Fixture f;
  auto t = TlsContext::create({f.dir.path() / "missing.pem", {}, {}});
  REQUIRE_FALSE(t.ok());
  CHECK(t.failure().message.find("missing.pem") != std::string::npos);
  t = TlsContext::create({f.server_id.cert, f.server_id.cert, f.client_id.key});
  REQUIRE_FALSE(t.ok());
  CHECK(t.failure().message.find("--cert-key-file " + f.client_id.key.string()) !=
        std::string::npos);
}
