#include "fake_appliance.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "host/tls_psk.hpp"
#include "schemas/frame.hpp"

namespace lorakeep::test {

namespace {

int server_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// The server half of the cluster PSK spec: the one identity, the one PSK.
int find_psk(SSL* ssl, const unsigned char* identity, std::size_t identity_len,
             SSL_SESSION** sess) noexcept {
  *sess = nullptr;
  const auto* psk = static_cast<const host::SecretBuffer*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), server_index()));
  const std::string_view id(reinterpret_cast<const char*>(identity), identity_len);
  if (psk == nullptr || id != host::tls::psk_identity) return 1;  // unknown: no PSK
  *sess = host::tls::make_psk_session(ssl, psk->reveal());
  return *sess != nullptr ? 1 : 0;
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

struct Io {
  int fd = -1;
  SSL* ssl = nullptr;
  const std::atomic<bool>* stop = nullptr;

  // Waits for `events` in slices, giving up when the appliance stops.
  [[nodiscard]] bool wait(short events) const {
    while (!stop->load()) {
      pollfd p{fd, events, 0};
      const int r = ::poll(&p, 1, 20);
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) return false;
    }
    return false;
  }

  [[nodiscard]] bool read_exact(std::uint8_t* out, std::size_t n) const {
    std::size_t done = 0;
    while (done < n) {
      if (ssl != nullptr) {
        std::size_t got = 0;
        ERR_clear_error();
        const int r = SSL_read_ex(ssl, out + done, n - done, &got);
        if (r == 1) {
          done += got;
          continue;
        }
        const int e = SSL_get_error(ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return false;
        if (!wait(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT)) return false;
        continue;
      }
      const ssize_t r = ::recv(fd, out + done, n - done, 0);
      if (r > 0) {
        done += static_cast<std::size_t>(r);
        continue;
      }
      const bool again = r < 0 && (errno == EAGAIN || errno == EINTR);
      if (!again || !wait(POLLIN)) return false;
    }
    return true;
  }

  [[nodiscard]] bool write_all(const std::vector<std::uint8_t>& bytes) const {
    if (ssl != nullptr) {
      for (;;) {
        std::size_t written = 0;
        ERR_clear_error();
        const int r = SSL_write_ex(ssl, bytes.data(), bytes.size(), &written);
        if (r == 1) return true;
        const int e = SSL_get_error(ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return false;
        if (!wait(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT)) return false;
      }
    }
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t r = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (r >= 0) {
        done += static_cast<std::size_t>(r);
        continue;
      }
      const bool again = errno == EAGAIN || errno == EINTR;
      if (!again || !wait(POLLOUT)) return false;
    }
    return true;
  }
};

std::vector<std::uint8_t> framed(const crypto::v1::Response& r) {
  std::string wire;
  r.SerializeToString(&wire);
  return *frame::encode(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(wire.data()), wire.size()));
}

}  // namespace

std::unique_ptr<FakeAppliance> FakeAppliance::unix_socket(Behaviour behaviour,
                                                          const std::string& at) {
  std::unique_ptr<FakeAppliance> f(new FakeAppliance);
  f->behaviour_ = behaviour;
  std::string path = at;
  if (path.empty()) {
    std::string dir = (std::filesystem::temp_directory_path() / "lorakeep-fake-XXXXXX").string();
    if (::mkdtemp(dir.data()) == nullptr) throw_errno("mkdtemp");
    f->dir_ = dir;
    path = dir + "/cs.sock";
  }
  f->socket_path_ = path;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::copy(path.begin(), path.end(), std::begin(addr.sun_path));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) throw_errno("bind");
  if (::listen(fd, 64) != 0) throw_errno("listen");
  f->address_ = "unix:" + path;
  f->start(fd);
  return f;
}

std::unique_ptr<FakeAppliance> FakeAppliance::tls(Behaviour behaviour, const std::string& secret) {
  std::unique_ptr<FakeAppliance> f(new FakeAppliance);
  f->behaviour_ = behaviour;
  const host::SecretBuffer s(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(secret.data()), secret.size()));
  f->psk_ = std::move(host::tls::derive_cluster_psk(s.reveal())).value();
  f->tls_ = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_min_proto_version(f->tls_, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(f->tls_, TLS1_3_VERSION);
  SSL_CTX_set_ciphersuites(f->tls_, std::string(host::tls::ciphersuite).c_str());
  SSL_CTX_set_ex_data(f->tls_, server_index(), &*f->psk_);
  SSL_CTX_set_psk_find_session_callback(f->tls_, find_psk);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) throw_errno("bind");
  if (::listen(fd, 64) != 0) throw_errno("listen");
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  f->address_ = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  f->start(fd);
  return f;
}

void FakeAppliance::start(int listen_fd) {
  listen_fd_ = listen_fd;
  set_nonblocking(listen_fd_);
  acceptor_ = std::thread([this] { accept_loop(); });
}

FakeAppliance::~FakeAppliance() {
  stop();
  SSL_CTX_free(tls_);
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

void FakeAppliance::stop() {
  stop_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> threads;
  {
    const std::lock_guard lock(mutex_);
    threads.swap(threads_);
  }
  for (auto& t : threads)
    t.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  if (!socket_path_.empty()) {
    std::error_code ignored;
    std::filesystem::remove(socket_path_, ignored);
  }
}

std::vector<crypto::v1::Request> FakeAppliance::requests() const {
  const std::lock_guard lock(mutex_);
  return requests_;
}

void FakeAppliance::accept_loop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    ++accepted_;
    const std::lock_guard lock(mutex_);
    threads_.emplace_back([this, fd] { serve(fd); });
  }
}

void FakeAppliance::serve(int fd) {
  // The client may close first; a TLS write then raises SIGPIPE in this thread only.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);

  Io io{fd, nullptr, &stop_};
  bool ok = behaviour_ != Behaviour::close_on_accept;
  if (ok && tls_ != nullptr) {
    io.ssl = SSL_new(tls_);
    SSL_set_fd(io.ssl, fd);
    SSL_set_accept_state(io.ssl);
    for (;;) {
      ERR_clear_error();
      const int r = SSL_accept(io.ssl);
      if (r == 1) break;
      const int e = SSL_get_error(io.ssl, r);
      if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
          !io.wait(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT)) {
        ++handshakes_failed_;
        ok = false;
        break;
      }
    }
  }
  while (ok && !stop_) {
    std::array<std::uint8_t, frame::header_size> header{};
    if (!io.read_exact(header.data(), header.size())) break;
    auto length = frame::parse_header(header);
    if (!length) break;
    std::vector<std::uint8_t> payload(*length);
    if (!io.read_exact(payload.data(), payload.size())) break;
    crypto::v1::Request request;
    if (!request.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) break;
    {
      const std::lock_guard lock(mutex_);
      requests_.push_back(request);
    }
    const std::size_t now = ++concurrent_;
    std::size_t seen = max_concurrent_;
    while (now > seen && !max_concurrent_.compare_exchange_weak(seen, now)) {
    }
    // Counted until the answer is out (or the request abandoned).
    struct Done {
      std::atomic<std::size_t>& n;
      ~Done() { --n; }
    } const done{concurrent_};
    const long delay = delay_ms_;
    for (long waited = 0; waited < delay && !stop_; waited += 5) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    crypto::v1::Response response;
    response.set_request_id(request.request_id());
    response.set_code(crypto::v1::OK);
    response.mutable_info()->set_release("fake");
    std::vector<std::uint8_t> out;
    switch (behaviour_.load()) {
      case Behaviour::answer:
      case Behaviour::close_after_answer:
      case Behaviour::close_on_accept:
        out = framed(response);
        break;
      case Behaviour::silent:
        continue;
      case Behaviour::wrong_id:
        response.set_request_id(request.request_id() + 1);
        out = framed(response);
        break;
      case Behaviour::oversized_header:
        out = {0xFF, 0xFF, 0xFF, 0xFF, 0x01};
        break;
      case Behaviour::garbage:
        out = {0x00, 0x00, 0x00, 0x02, 0x07, 0x07};  // field 0, wire type 7: no protobuf
        break;
      case Behaviour::shutting_down:
        response.set_code(crypto::v1::SHUTTING_DOWN);
        response.clear_info();
        out = framed(response);
        break;
    }
    if (!io.write_all(out)) break;
    if (behaviour_ == Behaviour::close_after_answer) break;
  }
  if (io.ssl != nullptr) SSL_free(io.ssl);
  ::close(fd);
}

}  // namespace lorakeep::test
