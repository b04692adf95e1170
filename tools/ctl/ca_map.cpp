#include "tools/ctl/ca_map.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "host/js/sender_auth.hpp"
#include "schemas/config/yaml_reader.hpp"
#include "tools/ctl/app.hpp"

namespace lorakeep::ctl {
namespace fs = std::filesystem;

namespace {

std::string errno_text() {
  return std::generic_category().message(errno);
}

/// A YAML double-quoted scalar.
std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7F) {
      std::array<char, 8> buf{};
      std::snprintf(buf.data(), buf.size(), "\\x%02X", static_cast<unsigned>(u));
      out += buf.data();
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void write_all(int fd, const std::string& bytes, const fs::path& file) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw CtlError(Exit::failure, "cannot write " + file.string() + ": " + errno_text());
    }
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

void write_file_atomically(const fs::path& file, const std::string& bytes, unsigned mode) {
  const fs::path folder = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  std::string tmpl = (folder / ("." + file.filename().string() + ".tmp-XXXXXX")).string();
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) {
    throw CtlError(Exit::failure,
                   "cannot create a file in " + folder.string() + ": " + errno_text());
  }
  try {
    write_all(fd, bytes, file);
    if (::fchmod(fd, static_cast<mode_t>(mode)) != 0 || ::fsync(fd) != 0) {
      throw CtlError(Exit::failure, "cannot write " + file.string() + ": " + errno_text());
    }
    if (::close(fd) != 0) {
      throw CtlError(Exit::failure, "cannot write " + file.string() + ": " + errno_text());
    }
  } catch (...) {
    ::close(fd);
    ::unlink(tmpl.c_str());
    throw;
  }
  if (::rename(tmpl.c_str(), file.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(tmpl.c_str());
    throw CtlError(Exit::failure, "cannot replace " + file.string() + ": " + why);
  }
  const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    (void)::fsync(dir);
    ::close(dir);
  }
}

CaMap CaMap::load(const fs::path& file) {
  CaMap m;
  m.file_ = file;
  std::error_code ec;
  if (!fs::exists(file, ec)) return m;
  try {
    m.original_ = config::read_file(file);
    const YAML::Node root = config::load_yaml(*m.original_, file.string());
    if (root.IsNull()) return m;
    if (!root.IsMap()) {
      throw CtlError(Exit::usage, file.string() + ": the sender CA map is not a mapping");
    }
    for (const auto& item : root) {
      if (!item.first.IsScalar() || !item.second.IsScalar()) {
        throw CtlError(Exit::usage, file.string() + ":" +
                                        std::to_string(item.first.Mark().line + 1) +
                                        ": expected <sender-id>: <ca.pem>");
      }
      m.entries_.emplace_back(item.first.Scalar(), item.second.Scalar());
    }
  } catch (const config::ConfigError& e) {
    throw CtlError(Exit::usage, e.what());
  } catch (const YAML::Exception& e) {
    throw CtlError(Exit::usage, file.string() + ": " + e.what());
  }
  return m;
}

fs::path CaMap::folder() const {
  return file_.parent_path().empty() ? fs::path(".") : file_.parent_path();
}

std::optional<std::string> CaMap::find(const std::string& sender) const {
  const std::string key = host::js::SenderCaMap::normalize(sender);
  for (const auto& [k, v] : entries_) {
    if (host::js::SenderCaMap::normalize(k) == key) return v;
  }
  return std::nullopt;
}

fs::path CaMap::resolve(const std::string& ca) const {
  const fs::path p(ca);
  return p.is_absolute() ? p : folder() / p;
}

void CaMap::put(const std::string& sender, const std::string& ca) {
  const std::string key = host::js::SenderCaMap::normalize(sender);
  for (auto& [k, v] : entries_) {
    if (host::js::SenderCaMap::normalize(k) == key) {
      k = key;
      v = ca;
      return;
    }
  }
  entries_.emplace_back(key, ca);
}

bool CaMap::remove(const std::string& sender) {
  const std::string key = host::js::SenderCaMap::normalize(sender);
  const auto before = entries_.size();
  std::erase_if(entries_,
                [&key](const auto& e) { return host::js::SenderCaMap::normalize(e.first) == key; });
  return entries_.size() != before;
}

void CaMap::save() const {
  std::string text =
      "# The sender CA map of lorakeep-js: <sender-id>: <CA file>, paths relative to this "
      "folder.\n# Maintained with 'lorakeepctl peer add/remove' (which rewrites this file).\n";
  if (entries_.empty()) text += "{}\n";
  for (const auto& [k, v] : entries_)
    text += quoted(k) + ": " + quoted(v) + "\n";
  unsigned mode = 0644;
  struct stat st {};
  if (::stat(file_.c_str(), &st) == 0) mode = st.st_mode & 07777;
  write_file_atomically(file_, text, mode);
}

void CaMap::restore() const noexcept {
  try {
    if (original_) {
      unsigned mode = 0644;
      struct stat st {};
      if (::stat(file_.c_str(), &st) == 0) mode = st.st_mode & 07777;
      write_file_atomically(file_, *original_, mode);
    } else {
      ::unlink(file_.c_str());
    }
  } catch (...) {  // NOLINT(bugprone-empty-catch): the caller reports the first failure
  }
}

std::string CaMap::managed_name(const std::string& sender) {
  std::string name = "ca-";
  for (const char c : host::js::SenderCaMap::normalize(sender)) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    name += ok ? c : '_';
  }
  return name + ".pem";
}

}  // namespace lorakeep::ctl
