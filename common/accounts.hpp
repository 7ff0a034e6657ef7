#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace locomov::accounts {

/// A local user as the password and group databases describe it: what a
/// process that switches to it (setgroups, setgid, setuid) becomes.
struct account {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  ///< supplementary groups, `gid` among them
};

/// Looks `user` up, with `group`, when not empty, as its primary group in
/// place of its own. Throws std::runtime_error naming a user or group that
/// does not exist.
account lookup(const std::string& user, const std::string& group = {});

/// Throws std::runtime_error, saying what to change, unless `acct` may
/// enter `dir` through every folder from / down to and including `dir`.
/// Judged by mode bits, as root sees them: ACLs are not consulted.
void require_traversable(const account& acct, const std::filesystem::path& dir);

/// Throws std::runtime_error unless `acct` may enter the folder `dir` and
/// create and remove files in it (mode bits only, as above).
void require_writable(const account& acct, const std::filesystem::path& dir);

/// Makes `acct` the owner of `path`, and of everything below it when it is
/// a folder; symbolic links themselves, never what they point to. Throws
/// std::system_error naming the path that failed.
void give(const account& acct, const std::filesystem::path& path);

}  // namespace locomov::accounts
