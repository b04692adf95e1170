// Who is calling (DESIGN.md §3 step 1): the sender CA map — `<sender-id>: <ca.pem>` in the
// format operators keep for The Things Stack (config.yml), paths relative to the map, a file
// holding one or more CA certificates — and the check that a client certificate chains to a
// CA configured for the request's SenderID.
#pragma once

#include <openssl/x509.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "schemas/result.hpp"

namespace lorakeep::host::js {

/// The map as loaded: one certificate store per sender. Immutable once built.
class SenderCaMap {
 public:
  /// Reads the map and every CA file it names. A NetID key (6 hex digits, any case,
  /// optional 0x) is stored as upper-case hex; any other key is an AS-ID taken as written.
  /// Fails (malformed) naming the file and what is wrong: not YAML, not a mapping, a value
  /// that is not a path, a CA file that cannot be read or holds no certificate.
  static Result<std::shared_ptr<const SenderCaMap>> load(const std::filesystem::path& file);

  ~SenderCaMap();
  SenderCaMap(const SenderCaMap&) = delete;
  SenderCaMap& operator=(const SenderCaMap&) = delete;
  SenderCaMap(SenderCaMap&&) = delete;
  SenderCaMap& operator=(SenderCaMap&&) = delete;

  /// True when `client_cert` chains (within its validity period, for TLS client use) to a
  /// CA configured for `sender_id`. A CA file's intermediate certificates count as anchors.
  [[nodiscard]] bool verify(const std::string& sender_id, X509* client_cert) const;
  [[nodiscard]] std::size_t senders() const noexcept { return stores_.size(); }

  /// The key under which a SenderID is looked up: NetIDs normalized to upper-case hex.
  static std::string normalize(const std::string& sender_id);

 private:
  SenderCaMap() = default;
  std::map<std::string, X509_STORE*> stores_;
};

}  // namespace lorakeep::host::js
