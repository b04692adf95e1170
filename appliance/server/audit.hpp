// The audit log of key use: append-only JSON lines, one write() each, so lines from several
// worker processes sharing the file never interleave. It names devices, key labels and
// results; it never holds key material, PINs or secrets.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace lorakeep::appliance::server {

struct AuditRecord {
  std::string operation;                 // Operation name: "join_1_0", "rewrap_app_s_key", …
  std::string caller;                    // Request.caller, as the host sent it
  std::string peer;                      // "unix:uid=0,pid=123" or "tcp:127.0.0.1:5555"
  std::optional<std::string> dev_eui;    // upper-case hex
  std::optional<std::string> key_label;  // a part number or transport KEK, when one is used
  std::vector<std::string> keks;         // KEK labels the answer is wrapped under
  std::string result;                    // Code name
  std::uint64_t request_id = 0;
  bool plaintext = false;        // a session key was delivered in the clear
  bool plaintext_input = false;  // a root key arrived in the clear (ImportRootKeyOp.plaintext)
};

/// The line written for `record` (no newline), with "time" in RFC 3339 UTC, milliseconds,
/// and "worker" the writing process id.
std::string audit_line(const AuditRecord& record);

class AuditLog {
 public:
  /// Opens (creates, mode 0640) `path` for appending. Throws std::system_error naming it.
  explicit AuditLog(const std::filesystem::path& path);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  /// Appends one line with one write(). A failed write is logged, never thrown.
  void write(const AuditRecord& record) noexcept;
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

}  // namespace lorakeep::appliance::server
