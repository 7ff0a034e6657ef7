#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace locomov::test {

/// A fresh folder under /tmp that others may enter (mode 0755, so that a
/// daemon that dropped to another user reaches what lies below it),
/// removed with everything in it at the end of the test.
class scratch_dir {
 public:
  scratch_dir() {
    char dir[] = "/tmp/locomov-test-XXXXXX";
    if (mkdtemp(dir) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    path_ = dir;
    std::filesystem::permissions(path_, std::filesystem::perms(0755));
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace locomov::test
