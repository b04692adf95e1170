#include "appliance/server/audit.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <system_error>

#include "appliance/server/log.hpp"

namespace lorakeep::appliance::server {
namespace {

std::string rfc3339_now() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  const std::time_t seconds = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  std::array<char, 40> buffer{};
  const std::size_t n = std::strftime(buffer.data(), buffer.size(), "%Y-%m-%dT%H:%M:%S", &tm);
  std::array<char, 8> millis{};
  std::snprintf(millis.data(), millis.size(), ".%03dZ", static_cast<int>(ms.count() % 1000));
  return std::string(buffer.data(), n) + millis.data();
}

}  // namespace

std::string audit_line(const AuditRecord& r) {
  nlohmann::json line = nlohmann::json::object();
  line["time"] = rfc3339_now();
  line["worker"] = ::getpid();
  line["operation"] = r.operation;
  line["caller"] = r.caller;
  line["peer"] = r.peer;
  if (r.dev_eui) line["dev_eui"] = *r.dev_eui;
  if (r.key_label) line["key_label"] = *r.key_label;
  if (!r.keks.empty()) line["keks"] = r.keks;
  line["result"] = r.result;
  line["request_id"] = r.request_id;
  if (r.plaintext) line["plaintext"] = true;
  if (r.plaintext_input) line["plaintext_input"] = true;
  return to_json_text(line);
}

AuditLog::AuditLog(const std::filesystem::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd_ < 0) {
    throw std::system_error(errno, std::generic_category(),
                            "cannot open the audit log " + path.string());
  }
}

AuditLog::~AuditLog() {
  if (fd_ >= 0) ::close(fd_);
}

void AuditLog::write(const AuditRecord& record) noexcept {
  try {
    const std::string line = audit_line(record) + "\n";
    // O_APPEND makes each write() land whole at the end; a short write would split a line,
    // so it is reported rather than completed by a second write.
    ssize_t n = -1;
    do {
      n = ::write(fd_, line.data(), line.size());
    } while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(line.size())) {
      log_error("audit_write_failed", {{"path", path_.string()},
                                       {"error", n < 0 ? std::strerror(errno) : "short write"}});
    }
  } catch (...) {
    log_error("audit_write_failed", {{"path", path_.string()}});
  }
}

}  // namespace lorakeep::appliance::server
