#include "local_server.hpp"

#include <string>

namespace lorakeep::test {

LocalServer::LocalServer(const pkcs11::Module& module, const TestToken& token,
                         LocalServerOptions options)
    : audit_path_(dir_.path() / "audit.log"),
      pool_(module, token.selector(), token.user_pin().clone(), options.sessions),
      keys_(options.policy),
      audit_(audit_path_),
      secret_(options.cluster_secret) {
  srv::ListenAddress address;
  if (options.cluster_secret) {
    address.kind = srv::ListenAddress::Kind::tcp;
    address.host = "127.0.0.1";
    address.port = 0;
  } else {
    address.path = socket_path();
  }
  listener_ = std::make_unique<srv::Listener>(address, std::nullopt);
  if (options.cluster_secret) {
    const auto bound = listener_->address();
    port_ = static_cast<std::uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
    tls_ = std::make_unique<srv::TlsServer>(
        srv::cluster_psk(pkcs11::SecretBytes(*options.cluster_secret)));
  }
  const auto token_info = module.token_info(pool_.slot());
  srv::ServiceInfo info{1,
                        static_cast<std::uint32_t>(options.sessions),
                        true,
                        token_info.label,
                        token_info.model,
                        token_info.manufacturer};
  dispatcher_ = std::make_unique<srv::Dispatcher>(
      srv::DispatchContext{pool_, keys_, stats_, 0, audit_, info, options.default_deadline, 0, {}});
  server_ = std::make_unique<srv::Server>(listener_->fd(), tls_.get(), *dispatcher_, stats_, 0,
                                          options.settings);
  thread_ = std::thread([this] { server_->run(); });
}

LocalServer::~LocalServer() {
  stop();
}

void LocalServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

TestClient LocalServer::connect() const {
  if (secret_) return TestClient::tls("127.0.0.1", port_, *secret_);
  return TestClient::unix_socket(socket_path());
}

}  // namespace lorakeep::test
