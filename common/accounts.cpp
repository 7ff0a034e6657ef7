#include "common/accounts.hpp"

#include <algorithm>
#include <cerrno>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace locomov::accounts {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

/// Whether `acct` has `user_bit` (S_IXUSR or S_IWUSR) on `st`, looking at
/// the owner, group or other bits as the kernel would.
bool allowed(const account& acct, const struct stat& st, mode_t user_bit) {
  if (st.st_uid == acct.uid) {
    return (st.st_mode & user_bit) != 0;
  }
  if (std::find(acct.groups.begin(), acct.groups.end(), st.st_gid) != acct.groups.end()) {
    return (st.st_mode & (user_bit >> 3)) != 0;
  }
  return (st.st_mode & (user_bit >> 6)) != 0;
}

std::string mode_of(const struct stat& st) {
  std::ostringstream mode;
  mode << std::oct << (st.st_mode & 07777);
  return mode.str();
}

struct stat stat_of(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) {
    throw_errno("cannot stat " + p.string());
  }
  return st;
}

}  // namespace

account lookup(const std::string& user, const std::string& group) {
  const passwd* pw = ::getpwnam(user.c_str());
  if (pw == nullptr) {
    throw std::runtime_error("there is no user '" + user + "'");
  }
  account acct;
  acct.name = user;
  acct.uid = pw->pw_uid;
  acct.gid = pw->pw_gid;
  if (!group.empty()) {
    const struct group* gr = ::getgrnam(group.c_str());
    if (gr == nullptr) {
      throw std::runtime_error("there is no group '" + group + "'");
    }
    acct.gid = gr->gr_gid;
  }
  int count = 32;
  acct.groups.resize(static_cast<std::size_t>(count));
  while (::getgrouplist(user.c_str(), acct.gid, acct.groups.data(), &count) < 0) {
    acct.groups.resize(static_cast<std::size_t>(count));
  }
  acct.groups.resize(static_cast<std::size_t>(count));
  return acct;
}

void require_traversable(const account& acct, const fs::path& dir) {
  fs::path prefix;
  for (const auto& part : dir) {
    prefix /= part;
    const auto st = stat_of(prefix);
    if (!allowed(acct, st, S_IXUSR)) {
      throw std::runtime_error("user '" + acct.name + "' cannot traverse " + prefix.string() +
                               " (mode " + mode_of(st) + "), so it cannot reach " + dir.string() +
                               "; choose a folder whose parents it may enter, or chmod o+x " +
                               prefix.string());
    }
  }
}

void require_writable(const account& acct, const fs::path& dir) {
  require_traversable(acct, dir);
  const auto st = stat_of(dir);
  if (!allowed(acct, st, S_IWUSR)) {
    throw std::runtime_error("user '" + acct.name + "' cannot write in " + dir.string() +
                             " (mode " + mode_of(st) + "); chown it to " + acct.name +
                             " or choose another folder");
  }
}

void give(const account& acct, const fs::path& path) {
  const auto one = [&](const fs::path& p) {
    if (::lchown(p.c_str(), acct.uid, acct.gid) != 0) {
      throw_errno("cannot chown " + p.string() + " to " + acct.name);
    }
  };
  one(path);
  if (fs::is_directory(fs::symlink_status(path))) {
    for (const auto& entry : fs::recursive_directory_iterator(path)) {
      one(entry.path());
    }
  }
}

}  // namespace locomov::accounts
