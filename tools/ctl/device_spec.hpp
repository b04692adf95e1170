// A device as the operator describes it (command-line options or an import row), checked
// field by field into a registry Device whose plaintext root keys wait to be wrapped by
// lorakeep-cs; and the wrap itself.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "host/appliance_client.hpp"
#include "host/registry/registry.hpp"
#include "pkcs11/secret.hpp"
#include "schemas/result.hpp"

namespace lorakeep::ctl {

/// A string wiped when dropped: field text that may be key material. Its capacity is
/// reserved up front, so appending within it never leaves a stale copy behind.
class WipedString {
 public:
  explicit WipedString(std::size_t capacity = 0) { s_.reserve(capacity); }
  ~WipedString() { wipe(); }
  WipedString(WipedString&& other) noexcept : s_(std::move(other.s_)) { other.s_.clear(); }
  WipedString& operator=(WipedString&& other) noexcept {
    if (this != &other) {
      wipe();
      s_ = std::move(other.s_);
      other.s_.clear();
    }
    return *this;
  }
  WipedString(const WipedString&) = delete;
  WipedString& operator=(const WipedString&) = delete;

  std::string& str() noexcept { return s_; }
  [[nodiscard]] std::string_view view() const noexcept { return s_; }

 private:
  void wipe() noexcept { pkcs11::secure_zero(s_.data(), s_.capacity()); }
  std::string s_;
};

/// The fields of one device by name (dev_eui, join_eui, mac_version, app_key, nwk_key,
/// part_number, serial, home_net_id, hnsid, as_id, allowed_net_ids), as text.
using Fields = std::vector<std::pair<std::string, WipedString>>;

/// The field names an import row may have, in the documented column order.
const std::vector<std::string>& field_names();

struct DeviceSpec {
  /// root_keys holds PartRootKeys, or WrappedRootKeys still empty until wrap_keys().
  host::registry::Device device;
  std::optional<pkcs11::SecretBytes> app_key;
  std::optional<pkcs11::SecretBytes> nwk_key;

  [[nodiscard]] bool needs_wrap() const noexcept { return app_key.has_value(); }
};

/// Checks every field (empty text counts as absent). Failures are Status::malformed naming
/// the field ("home_net_id: …"); key text is never quoted.
Result<DeviceSpec> make_device(const Fields& fields);

/// Wraps the spec's plaintext keys under the storage key through lorakeep-cs (one
/// ImportRootKeyOp each), fills WrappedRootKeys and wipes the plaintext. Failures keep the
/// appliance's code: malformed (a key it refused), token_unavailable (no answer, token
/// gone, shutting down), unknown_key (no storage key), key_policy, internal.
Result<Ok> wrap_keys(host::ApplianceClient& client, const std::string& caller,
                     std::chrono::milliseconds deadline, DeviceSpec& spec);

/// Asks lorakeep-cs for its Info within `deadline`: fails with token_unavailable when no
/// appliance answers (so that an import stops at once, not after a request deadline per
/// device), or with key_policy when the appliance's self-test did not pass.
Result<Ok> appliance_ready(host::ApplianceClient& client, const std::string& caller,
                           std::chrono::milliseconds deadline);

/// A device for --json output (never key material: wrapped keys appear as present or not).
nlohmann::json device_json(const host::registry::Device& d);
/// "wrapped AppKey+NwkKey" / "part ATECC608A serial 0102…".
std::string describe_keys(const host::registry::Device& d);

/// An AS-ID: 1 to 255 printable ASCII characters without blanks.
Result<std::string> check_as_id(std::string_view text, std::string_view what);
/// A token key label (KEK label, part number): 1 to 64 of A-Z a-z 0-9 - _ . : /.
Result<std::string> check_label(std::string_view text, std::string_view what);

}  // namespace lorakeep::ctl
