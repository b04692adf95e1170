#include "appliance/server/server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <system_error>

#include "appliance/server/listener.hpp"
#include "appliance/server/log.hpp"

namespace lorakeep::appliance::server {

Server::Server(int listen_fd, const TlsServer* tls, Dispatcher& dispatcher, SharedStats& stats,
               std::size_t worker_slot, ServerSettings settings)
    : listen_fd_(listen_fd),
      tls_(tls),
      dispatcher_(dispatcher),
      stats_(stats),
      worker_slot_(worker_slot),
      settings_(settings) {
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  // Several workers poll one listening socket; the one that loses the race to accept()
  // must not block in it.
  const int flags = ::fcntl(listen_fd_, F_GETFL, 0);
  if (flags < 0 || ::fcntl(listen_fd_, F_SETFL, flags | O_NONBLOCK) != 0) {
    const int e = errno;
    ::close(stop_fd_);
    throw std::system_error(e, std::generic_category(), "making the listening socket non-blocking");
  }
}

Server::~Server() {
  stop();
  reap(true);
  ::close(stop_fd_);
}

void Server::stop() noexcept {
  stopping_.store(true);
  const std::uint64_t one = 1;
  // Never read: the eventfd stays readable, so every poll on it wakes from now on.
  (void)!::write(stop_fd_, &one, sizeof(one));
}

void Server::reap(bool all) {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if (all || (*it)->done.load()) {
      if ((*it)->thread.joinable()) (*it)->thread.join();
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

void Server::accept_one() {
  const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) {
    // EAGAIN: another worker took it. EMFILE and the like: logged, the loop goes on.
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
      log_warn("accept_failed", {{"error", std::strerror(errno)}});
    }
    return;
  }
  if (active_.load() >= settings_.max_connections) {
    stats_.connection_refused();  // counted first: the peer may ask for statistics at once
    ::close(fd);
    log_warn("connection_refused",
             {{"reason", "max_connections"}, {"max_connections", settings_.max_connections}});
    return;
  }
  const bool tls = tls_ != nullptr;
  if (tls) {
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
  }
  SSL* ssl = tls ? tls_->accept_on(fd) : nullptr;
  if (tls && ssl == nullptr) {
    ::close(fd);
    log_warn("connection_refused", {{"reason", "cannot create a TLS object"}});
    return;
  }
  auto connection = std::make_unique<Connection>();
  Connection* c = connection.get();
  ++active_;
  stats_.worker(worker_slot_).connections_open.fetch_add(1);
  try {
    c->thread = std::thread([this, c, fd, ssl, tls] {
      try {
        Stream stream(fd, ssl);
        const std::string peer = peer_name(fd, !tls);
        const auto end =
            serve_connection(stream, peer, dispatcher_, settings_.connection, stopping_, stop_fd_);
        if (end == ConnectionEnd::handshake_failed) {
          stats_.connection_refused();
          log_warn("connection_refused", {{"reason", "TLS handshake failed"}, {"peer", peer}});
        } else if (end == ConnectionEnd::bad_header || end == ConnectionEnd::stalled) {
          log_warn("connection_closed", {{"reason", end_name(end)}, {"peer", peer}});
        }
      } catch (...) {
        log_error("connection_failed", {{"reason", "unexpected exception"}});
      }
      stats_.worker(worker_slot_).connections_open.fetch_sub(1);
      --active_;
      c->done.store(true);
    });
  } catch (const std::system_error& e) {
    // No thread: the connection is closed unserved.
    stats_.worker(worker_slot_).connections_open.fetch_sub(1);
    --active_;
    if (ssl != nullptr) {
      Stream closing(fd, ssl);
    } else {
      ::close(fd);
    }
    stats_.connection_refused();
    log_warn("connection_refused", {{"reason", std::string("no thread: ") + e.what()}});
    return;
  }
  connections_.push_back(std::move(connection));
}

void Server::run(int wake_fd) {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, nullptr);

  while (!stopping_.load()) {
    std::array<pollfd, 3> fds{pollfd{listen_fd_, POLLIN, 0}, pollfd{stop_fd_, POLLIN, 0},
                              pollfd{wake_fd, POLLIN, 0}};
    const nfds_t n = wake_fd >= 0 ? 3 : 2;
    const int rc = ::poll(fds.data(), n, 1000);
    if (rc < 0 && errno != EINTR) {
      log_error("poll_failed", {{"error", std::strerror(errno)}});
      break;
    }
    reap(false);
    if (rc <= 0) continue;
    if ((fds[1].revents & POLLIN) != 0) break;
    if (n == 3 && (fds[2].revents & POLLIN) != 0) break;
    if ((fds[0].revents & POLLIN) != 0) accept_one();
  }
  stop();
  reap(true);
}

}  // namespace lorakeep::appliance::server
