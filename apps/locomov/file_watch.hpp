#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace locomov::app {

/// Notices when any of a few files is replaced or rewritten: certbot and
/// lego renew by swapping a symlink, others by renaming a new file over the
/// old one or writing it in place. Each check compares what stat(2) says of
/// each file, through symlinks (device, inode, size, modification time).
/// A change counts once it has held still for one check, so that a pair
/// of files written one after the other is taken when both are there.
/// Not thread-safe: its owner checks it.
class file_watch {
 public:
  explicit file_watch(std::vector<std::filesystem::path> files);

  /// Whether the files changed, and settled, since the last time this
  /// returned true (or since construction).
  bool changed();

  const std::vector<std::filesystem::path>& files() const { return files_; }

 private:
  std::string signature() const;

  std::vector<std::filesystem::path> files_;
  std::string seen_;     // what was taken last
  std::string pending_;  // a change not settled yet
};

}  // namespace locomov::app
