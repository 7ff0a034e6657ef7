#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/accounts.hpp"

namespace locomov::app {

/// The account locomov is to serve as once its ports are bound: `user`
/// (with `group` as its primary group, when given) when started as root;
/// nothing when `user` is empty, is root, or is already the process's own.
/// Throws std::runtime_error when the user or group does not exist, when
/// `group` comes without `user`, or when another user is asked for by a
/// process that is not root.
std::optional<accounts::account> service_account(const std::string& user, const std::string& group);

/// For a folder that locomov uses once it has switched to `acct`: makes it
/// (and missing parents) owned by `acct` when it does not exist, and throws
/// std::runtime_error, naming the folder and what to change, when `acct`
/// cannot reach it or, with `writable`, cannot create files in it. A no-op
/// without an account.
void prepare_folder(const std::optional<accounts::account>& acct, const std::filesystem::path& dir,
                    bool writable);

/// Switches the whole process, every thread, to `acct` (glibc applies
/// setgroups, setgid and setuid to all threads), after handing it what
/// locomov made as root that it still writes to: each of `hand_over` that
/// exists, with everything below it. Call once the listening sockets are
/// bound. Throws std::runtime_error when a step fails, or when root can be
/// regained afterwards. Without an account, a process running as root logs
/// a warning that it stays root.
void drop_privileges(const std::optional<accounts::account>& acct,
                     const std::vector<std::filesystem::path>& hand_over);

}  // namespace locomov::app
