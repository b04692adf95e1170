#include "client.hpp"

#include <netdb.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace lorakeep::test {
namespace {

struct PskConfig {
  std::vector<std::uint8_t> psk;
  std::string identity;
};

int psk_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int use_psk(SSL* ssl, const EVP_MD* /*md*/, const unsigned char** id, std::size_t* idlen,
            SSL_SESSION** session) {
  const auto* config =
      static_cast<const PskConfig*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), psk_index()));
  const unsigned char suite[2] = {0x13, 0x01};
  const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, suite);
  SSL_SESSION* s = SSL_SESSION_new();
  if (config == nullptr || cipher == nullptr || s == nullptr) return 0;
  SSL_SESSION_set1_master_key(s, config->psk.data(), config->psk.size());
  SSL_SESSION_set_cipher(s, cipher);
  SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION);
  *session = s;
  *id = reinterpret_cast<const unsigned char*>(config->identity.data());
  *idlen = config->identity.size();
  return 1;
}

int connect_tcp(const std::string& host, std::uint16_t port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) {
    throw std::runtime_error("cannot resolve " + host);
  }
  int fd = -1;
  for (addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd >= 0 && ::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) throw std::runtime_error("cannot connect to " + host + ":" + std::to_string(port));
  return fd;
}

}  // namespace

std::vector<std::uint8_t> expected_psk(const std::vector<std::uint8_t>& secret) {
  const std::string label = "lorakeep cluster psk v1";
  std::vector<std::uint8_t> input(label.begin(), label.end());
  input.insert(input.end(), secret.begin(), secret.end());
  std::vector<std::uint8_t> out(32);
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

v1::Request request(std::uint64_t id) {
  v1::Request r;
  r.set_protocol_version(1);
  r.set_request_id(id);
  r.set_caller("test");
  return r;
}

TestClient TestClient::unix_socket(const std::filesystem::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot connect to " + path.string() + ": " + why);
  }
  TestClient c(fd, nullptr, nullptr);
  c.set_timeout(std::chrono::seconds(20));
  return c;
}

TestClient TestClient::tcp(const std::string& host, std::uint16_t port) {
  TestClient c(connect_tcp(host, port), nullptr, nullptr);
  c.set_timeout(std::chrono::seconds(20));
  return c;
}

TestClient TestClient::tls(const std::string& host, std::uint16_t port,
                           const std::vector<std::uint8_t>& cluster_secret,
                           const std::string& identity) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256");
  SSL_CTX_set_ex_data(ctx, psk_index(), new PskConfig{expected_psk(cluster_secret), identity});
  SSL_CTX_set_psk_use_session_callback(ctx, use_psk);
  const int fd = connect_tcp(host, port);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  TestClient c(fd, ctx, ssl);
  c.set_timeout(std::chrono::seconds(20));
  if (SSL_connect(ssl) != 1) throw std::runtime_error("TLS handshake failed");
  return c;
}

TestClient::~TestClient() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (ctx_ != nullptr) {
    delete static_cast<PskConfig*>(SSL_CTX_get_ex_data(ctx_, psk_index()));
    SSL_CTX_set_ex_data(ctx_, psk_index(), nullptr);
    SSL_CTX_free(ctx_);
  }
  if (fd_ >= 0) ::close(fd_);
}

TestClient::TestClient(TestClient&& other) noexcept
    : fd_(other.fd_), ctx_(other.ctx_), ssl_(other.ssl_) {
  other.fd_ = -1;
  other.ctx_ = nullptr;
  other.ssl_ = nullptr;
}

void TestClient::set_timeout(std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

void TestClient::write_all(std::span<const std::uint8_t> bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    if (ssl_ != nullptr) {
      std::size_t n = 0;
      if (SSL_write_ex(ssl_, bytes.data() + done, bytes.size() - done, &n) != 1) {
        throw std::runtime_error("TLS write failed");
      }
      done += n;
      continue;
    }
    const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(std::string("write failed: ") + std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
}

bool TestClient::read_exact(std::uint8_t* out, std::size_t n) {
  std::size_t done = 0;
  while (done < n) {
    if (ssl_ != nullptr) {
      std::size_t got = 0;
      if (SSL_read_ex(ssl_, out + done, n - done, &got) != 1) return false;
      done += got;
      continue;
    }
    const ssize_t got = ::recv(fd_, out + done, n - done, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    done += static_cast<std::size_t>(got);
  }
  return true;
}

void TestClient::send_raw(std::span<const std::uint8_t> bytes) {
  write_all(bytes);
}

void TestClient::send(const v1::Request& request) {
  const std::string payload = request.SerializeAsString();
  std::vector<std::uint8_t> frame(4 + payload.size());
  const auto n = static_cast<std::uint32_t>(payload.size());
  frame[0] = static_cast<std::uint8_t>(n >> 24);
  frame[1] = static_cast<std::uint8_t>(n >> 16);
  frame[2] = static_cast<std::uint8_t>(n >> 8);
  frame[3] = static_cast<std::uint8_t>(n);
  std::memcpy(frame.data() + 4, payload.data(), payload.size());
  write_all(frame);
}

std::optional<v1::Response> TestClient::receive(std::chrono::milliseconds timeout) {
  set_timeout(timeout);
  std::array<std::uint8_t, 4> header{};
  if (!read_exact(header.data(), header.size())) return std::nullopt;
  const std::uint32_t n = static_cast<std::uint32_t>(header[0]) << 24 |
                          static_cast<std::uint32_t>(header[1]) << 16 |
                          static_cast<std::uint32_t>(header[2]) << 8 | header[3];
  if (n == 0 || n > 64 * 1024) throw std::runtime_error("the server sent a bad frame header");
  std::vector<std::uint8_t> payload(n);
  if (!read_exact(payload.data(), n)) return std::nullopt;
  v1::Response response;
  if (!response.ParseFromArray(payload.data(), static_cast<int>(n))) {
    throw std::runtime_error("the server sent an answer that does not parse");
  }
  return response;
}

v1::Response TestClient::call(const v1::Request& request) {
  send(request);
  auto response = receive();
  if (!response) throw std::runtime_error("the connection ended before the answer");
  return *response;
}

bool TestClient::closed_by_peer(std::chrono::milliseconds timeout) {
  set_timeout(timeout);
  std::uint8_t byte = 0;
  if (ssl_ != nullptr) {
    std::size_t got = 0;
    const int rc = SSL_read_ex(ssl_, &byte, 1, &got);
    if (rc == 1) return false;
    const int e = SSL_get_error(ssl_, rc);
    if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    return e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL;
  }
  const ssize_t got = ::recv(fd_, &byte, 1, 0);
  return got == 0 || (got < 0 && errno == ECONNRESET);
}

}  // namespace lorakeep::test
