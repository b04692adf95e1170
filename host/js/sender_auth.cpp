#include "host/js/sender_auth.hpp"

#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <memory>

#include "schemas/config/yaml_reader.hpp"
#include "schemas/lorawan/types.hpp"

namespace lorakeep::host::js {
namespace {

namespace fs = std::filesystem;

struct BioFree {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const noexcept { X509_STORE_CTX_free(c); }
};
struct InfoStackFree {
  void operator()(STACK_OF(X509_INFO) * s) const noexcept {
    sk_X509_INFO_pop_free(s, X509_INFO_free);
  }
};

/// Adds every certificate of a PEM file to `store`; the count added.
Result<int> add_pem(X509_STORE* store, const fs::path& file) {
  const std::unique_ptr<BIO, BioFree> bio(BIO_new_file(file.c_str(), "r"));
  if (!bio) return fail(Status::malformed, file.string() + ": cannot be read");
  const std::unique_ptr<STACK_OF(X509_INFO), InfoStackFree> infos(
      PEM_X509_INFO_read_bio(bio.get(), nullptr, nullptr, nullptr));
  if (!infos) return fail(Status::malformed, file.string() + ": not PEM certificates");
  int added = 0;
  for (int i = 0; i < sk_X509_INFO_num(infos.get()); ++i) {
    X509_INFO* info = sk_X509_INFO_value(infos.get(), i);
    if (info->x509 != nullptr && X509_STORE_add_cert(store, info->x509) == 1) ++added;
  }
  if (added == 0) return fail(Status::malformed, file.string() + ": holds no certificate");
  return added;
}

}  // namespace

std::string SenderCaMap::normalize(const std::string& sender_id) {
  if (auto net_id = lorawan::NetId::from_hex(sender_id)) return net_id->hex();
  return sender_id;
}

Result<std::shared_ptr<const SenderCaMap>> SenderCaMap::load(const fs::path& file) {
  try {
    const YAML::Node root = config::load_yaml(config::read_file(file), file.string());
    const fs::path base = file.parent_path().empty() ? fs::path(".") : file.parent_path();
    const config::Reader r(file.string(), base);
    std::shared_ptr<SenderCaMap> map(new SenderCaMap());
    if (root.IsNull()) return std::shared_ptr<const SenderCaMap>(std::move(map));
    for (const auto& [sender, node] : r.mapping(root, "sender", {})) {
      const fs::path ca = r.path(node, "sender " + sender);
      const std::string key = normalize(sender);
      if (map->stores_.contains(key)) {
        r.error(node, "sender " + sender, "given twice (NetIDs compare without case)");
      }
      X509_STORE* store = X509_STORE_new();
      if (store == nullptr) return fail(Status::internal, "out of memory for a certificate store");
      map->stores_.emplace(key, store);
      auto added = add_pem(store, ca);
      if (!added)
        return fail(Status::malformed, "sender " + sender + ": " + added.failure().message);
      X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
      X509_STORE_set_purpose(store, X509_PURPOSE_SSL_CLIENT);
    }
    return std::shared_ptr<const SenderCaMap>(std::move(map));
  } catch (const config::ConfigError& e) {
    return fail(Status::malformed, e.what());
  } catch (const std::exception& e) {
    return fail(Status::malformed, file.string() + ": " + e.what());
  }
}

SenderCaMap::~SenderCaMap() {
  for (auto& [sender, store] : stores_)
    X509_STORE_free(store);
}

bool SenderCaMap::verify(const std::string& sender_id, X509* client_cert) const {
  if (client_cert == nullptr) return false;
  const auto it = stores_.find(normalize(sender_id));
  if (it == stores_.end()) return false;
  const std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), it->second, client_cert, nullptr) != 1) return false;
  return X509_verify_cert(ctx.get()) == 1;
}

}  // namespace lorakeep::host::js
