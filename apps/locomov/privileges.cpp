#include "apps/locomov/privileges.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <grp.h>
#include <unistd.h>

#include "common/logging.hpp"

namespace locomov::app {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

}  // namespace

std::optional<accounts::account> service_account(const std::string& user,
                                                 const std::string& group) {
  if (user.empty()) {
    if (!group.empty()) {
      throw std::runtime_error("group=" + group + " needs user as well");
    }
    return std::nullopt;
  }
  auto acct = accounts::lookup(user, group);
  if (::geteuid() != 0) {
    if (acct.uid == ::geteuid() && (group.empty() || acct.gid == ::getegid())) {
      return std::nullopt;
    }
    throw std::runtime_error("user=" + user + " needs locomov to start as root (it runs as uid " +
                             std::to_string(::geteuid()) +
                             "); start it as root, or leave user unset");
  }
  if (acct.uid == 0) {
    return std::nullopt;
  }
  return acct;
}

void prepare_folder(const std::optional<accounts::account>& acct, const fs::path& dir,
                    bool writable) {
  if (!acct || dir.empty()) {
    return;
  }
  // Made one level at a time, so that each folder made here is the
  // account's, not only the last.
  fs::path made;
  for (const auto& part : fs::absolute(dir)) {
    made /= part;
    std::error_code ec;
    if (fs::create_directory(made, ec)) {
      accounts::give(*acct, made);
    } else if (ec) {
      throw std::runtime_error("cannot create folder " + made.string() + ": " + ec.message());
    }
  }
  if (writable) {
    accounts::require_writable(*acct, dir);
  } else {
    accounts::require_traversable(*acct, dir);
  }
}

void drop_privileges(const std::optional<accounts::account>& acct,
                     const std::vector<fs::path>& hand_over) {
  if (!acct) {
    if (::geteuid() == 0) {
      logs::app().warn("running as root; set user to drop root once the ports are bound");
    }
    return;
  }
  for (const auto& p : hand_over) {
    std::error_code ec;
    if (!p.empty() && fs::exists(fs::symlink_status(p, ec))) {
      accounts::give(*acct, p);
    }
  }
  // Groups first: once the uid is gone, the groups can no longer be changed.
  if (::setgroups(acct->groups.size(), acct->groups.data()) != 0) {
    throw_errno("cannot set the groups of user " + acct->name);
  }
  if (::setgid(acct->gid) != 0) {
    throw_errno("cannot switch to gid " + std::to_string(acct->gid));
  }
  if (::setuid(acct->uid) != 0) {
    throw_errno("cannot switch to user " + acct->name);
  }
  if (::setuid(0) == 0 || ::seteuid(0) == 0) {
    throw std::runtime_error("switched to user " + acct->name + " but could become root again");
  }
  logs::app().info("serving as user={} uid={} gid={}", acct->name, acct->uid, acct->gid);
}

}  // namespace locomov::app
