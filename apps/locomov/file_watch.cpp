#include "apps/locomov/file_watch.hpp"

#include <sys/stat.h>

#include <fmt/format.h>

namespace locomov::app {

file_watch::file_watch(std::vector<std::filesystem::path> files)
    : files_(std::move(files)), seen_(signature()) {}

std::string file_watch::signature() const {
  std::string out;
  for (const auto& f : files_) {
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) {
      out += "missing;";  // being replaced, or gone: not a pair to load
      continue;
    }
    out += fmt::format("{}:{}:{}:{}.{};", st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec,
                       st.st_mtim.tv_nsec);
  }
  return out;
}

bool file_watch::changed() {
  const auto now = signature();
  if (now == seen_) {
    pending_.clear();
    return false;
  }
  if (now != pending_) {
    pending_ = now;
    return false;
  }
  seen_ = now;
  pending_.clear();
  return true;
}

}  // namespace locomov::app
