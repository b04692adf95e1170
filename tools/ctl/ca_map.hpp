// Editing the sender CA map (join_server.sender_ca_map, `<sender-id>: <ca.pem>`): entries are
// matched as lorakeep-js matches them (NetIDs without case), the file is rewritten
// atomically (temporary file, fsync, rename), and CA files lorakeepctl copies live next to
// it as ca-<id>.pem.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lorakeep::ctl {

class CaMap {
 public:
  /// Reads the map; a missing file is an empty map. Throws CtlError (usage) when the file is
  /// not a YAML mapping of scalars.
  static CaMap load(const std::filesystem::path& file);

  [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }
  [[nodiscard]] std::filesystem::path folder() const;
  /// The entries as written: (sender key, CA path).
  [[nodiscard]] const std::vector<std::pair<std::string, std::string>>& entries() const noexcept {
    return entries_;
  }
  /// The CA path of `sender` (NetIDs compared without case or 0x), as written in the map.
  [[nodiscard]] std::optional<std::string> find(const std::string& sender) const;
  /// The CA path resolved against the map's folder.
  [[nodiscard]] std::filesystem::path resolve(const std::string& ca) const;

  /// Adds or replaces the entry of `sender`.
  void put(const std::string& sender, const std::string& ca);
  /// Removes the entry of `sender`; false when there was none.
  bool remove(const std::string& sender);

  /// Writes the map atomically (mode of the old file, else 0644). Throws CtlError.
  void save() const;
  /// Puts the file back as it was when loaded (or removes it if it did not exist).
  void restore() const noexcept;

  /// The file name lorakeepctl gives the copied CA of `sender`: ca-<sender>.pem, characters
  /// other than A-Z a-z 0-9 . _ - replaced by '_'.
  static std::string managed_name(const std::string& sender);

 private:
  std::filesystem::path file_;
  std::vector<std::pair<std::string, std::string>> entries_;
  std::optional<std::string> original_;  // the file's bytes when loaded; none: did not exist
};

/// Writes `bytes` to `file` atomically with `mode`: a temporary file in the same folder,
/// fsync, rename, fsync of the folder. Throws CtlError (failure).
void write_file_atomically(const std::filesystem::path& file, const std::string& bytes,
                           unsigned mode);

}  // namespace lorakeep::ctl
