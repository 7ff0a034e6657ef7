#include "storage/embedded_cluster.hpp"

#include <fcntl.h>
#include <locale.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "common/accounts.hpp"

extern char** environ;

namespace locomov::storage {

namespace {

namespace fs = std::filesystem;

constexpr const char* runuser_candidates[] = {"/usr/sbin/runuser", "/sbin/runuser"};
constexpr std::size_t log_tail_lines = 30;

struct run_result {
  int exit_code = -1;
  std::string output;  ///< stdout and stderr, interleaved
};

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

/// Hands the folders the server writes to its account: the cluster folder
/// itself (pg_ctl creates the log there), data/ and socket/.
void chown_tree(const accounts::account& acct, const fs::path& dir) {
  if (::lchown(dir.c_str(), acct.uid, acct.gid) != 0) {
    throw_errno("cannot chown " + dir.string());
  }
  for (const char* sub : {"data", "socket", "server.log"}) {
    const fs::path p = dir / sub;
    if (fs::exists(fs::symlink_status(p))) {
      accounts::give(acct, p);
    }
  }
}

/// pg_ctl hands -D, -l and -o to /bin/sh, and postgres splits
/// unix_socket_directories at commas; refuse paths that would be reread.
void require_plain_path(const fs::path& dir) {
  for (const char c : dir.string()) {
    const bool control = static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    if (control || std::strchr("\"'\\$`,", c) != nullptr) {
      throw std::runtime_error("cluster folder " + dir.string() +
                               " contains a character PostgreSQL's tools would reinterpret "
                               "(quote, backslash, $, backtick, comma or control character)");
    }
  }
}

std::string tail_lines(const std::string& text, std::size_t lines) {
  std::size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') {
    --pos;
  }
  for (std::size_t n = 0; n < lines && pos > 0; ++n) {
    const std::size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) {
      return text;
    }
    pos = nl;
  }
  return pos == 0 ? text : text.substr(pos + 1);
}

std::string read_file_tail(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return "(no server log at " + file.string() + ")";
  }
  std::ostringstream all;
  all << in.rdbuf();
  return tail_lines(all.str(), log_tail_lines);
}

/// Runs argv[0] (an absolute path) in `cwd`, without a shell, and collects
/// its output. The pipe is close-on-exec on our side so a server started by
/// the child never holds it open.
run_result run(const std::vector<std::string>& argv, const fs::path& cwd) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw_errno("pipe2");
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  // The server must not keep descriptors of ours (sockets, a test runner's
  // pipes) that were opened without O_CLOEXEC.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);

  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);

  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw std::system_error(rc, std::generic_category(), "cannot run " + argv[0]);
  }

  run_result result;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      result.output.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      throw_errno("waitpid for " + argv[0]);
    }
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string join_argv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    out += out.empty() ? "" : " ";
    out += a;
  }
  return out;
}

/// A libpq conninfo value: bare when safe, else single-quoted.
std::string conninfo_value(const std::string& v) {
  const bool plain = !v.empty() && v.find_first_of(" \t\n'\\=") == std::string::npos;
  if (plain) {
    return v;
  }
  std::string out = "'";
  for (const char c : v) {
    if (c == '\'' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out + "'";
}

/// A shell word for the banner: bare when safe, else single-quoted.
std::string shell_word(const std::string& v) {
  const bool plain = !v.empty() && v.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                       "0123456789_-./=:,@+%") == std::string::npos;
  if (plain) {
    return v;
  }
  std::string out = "'";
  for (const char c : v) {
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return out + "'";
}

bool locale_available(const char* name) {
  const locale_t loc = ::newlocale(LC_ALL_MASK, name, static_cast<locale_t>(nullptr));
  if (loc == static_cast<locale_t>(nullptr)) {
    return false;
  }
  ::freelocale(loc);
  return true;
}

fs::path find_runuser() {
  for (const char* candidate : runuser_candidates) {
    if (::access(candidate, X_OK) == 0) {
      return candidate;
    }
  }
  throw std::runtime_error("running as root, but runuser (util-linux) is not installed");
}

}  // namespace

embedded_cluster::embedded_cluster(options opts) : opts_(std::move(opts)) {
  opts_.dir = fs::absolute(opts_.dir).lexically_normal();
  if (!opts_.dir.has_filename() && opts_.dir.has_parent_path()) {
    opts_.dir = opts_.dir.parent_path();
  }
}

embedded_cluster::~embedded_cluster() {
  if (!running_) {
    return;
  }
  try {
    stop();
  } catch (...) {
    // A destructor must not throw; the server log tells what went wrong.
  }
}

fs::path embedded_cluster::data_dir() const {
  return opts_.dir / "data";
}

fs::path embedded_cluster::socket_dir() const {
  return opts_.dir / "socket";
}

fs::path embedded_cluster::log_file() const {
  return opts_.dir / "server.log";
}

std::vector<std::string> embedded_cluster::command(const std::string& tool) const {
  std::vector<std::string> argv;
  // Once locomov itself has switched to the service user (its `user`
  // option), it runs the tools as it is: runuser needs root.
  if (as_service_user_ && ::geteuid() == 0) {
    argv = {find_runuser().string(), "-u", opts_.service_user, "--"};
  }
  argv.push_back((opts_.bin_dir / tool).string());
  return argv;
}

void embedded_cluster::run_checked(const std::vector<std::string>& argv,
                                   const std::string& what) const {
  const run_result r = run(argv, opts_.dir);
  if (r.exit_code != 0) {
    throw std::runtime_error(what + " failed (exit " + std::to_string(r.exit_code) +
                             "): " + join_argv(argv) + "\n" +
                             tail_lines(r.output, log_tail_lines) + "\n--- " +
                             log_file().string() + " ---\n" + read_file_tail(log_file()));
  }
}

void embedded_cluster::prepare_folders() {
  require_plain_path(opts_.dir);
  const std::string socket_file =
      (socket_dir() / (".s.PGSQL." + std::to_string(opts_.port))).string();
  if (socket_file.size() >= sizeof(sockaddr_un{}.sun_path)) {
    throw std::runtime_error("socket path " + socket_file + " is longer than " +
                             std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                             " bytes; choose a shorter cluster folder");
  }

  // The socket folder's mode is what keeps other local users out; trust
  // authentication lets anyone who reaches the socket in.
  if (fs::create_directories(opts_.dir)) {
    fs::permissions(opts_.dir, fs::perms::owner_all);
  }
  fs::create_directories(socket_dir());
  fs::permissions(socket_dir(), fs::perms::owner_all);

  as_service_user_ = ::geteuid() == 0;
  if (as_service_user_) {
    const auto acct = [&] {
      try {
        return accounts::lookup(opts_.service_user);
      } catch (const std::runtime_error& e) {
        throw std::runtime_error(
            std::string("running as root, PostgreSQL needs a user to run as: ") + e.what());
      }
    }();
    // postgres must reach its data folder through every parent; root
    // reaches anything, so without this check the failure would only show
    // as an obscure initdb or pg_ctl error.
    accounts::require_traversable(acct, opts_.dir.parent_path());
    chown_tree(acct, opts_.dir);
  }
}

void embedded_cluster::init_if_missing() {
  if (fs::exists(data_dir() / "PG_VERSION")) {
    return;
  }
  if (fs::exists(data_dir())) {
    // A previous initdb died half-way; it would refuse a non-empty folder.
    fs::remove_all(data_dir());
  }
  std::vector<std::string> argv = command("initdb");
  const char* locale = locale_available("C.UTF-8") ? "--locale=C.UTF-8" : "--locale=C";
  argv.insert(argv.end(), {"-D", data_dir().string(), "-U", opts_.superuser, "--auth=trust",
                           "-E", "UTF8", locale});
  run_checked(argv, "initdb");
}

void embedded_cluster::create_database_if_missing() {
  pqxx::connection conn("host=" + conninfo_value(socket_dir().string()) +
                        " port=" + std::to_string(opts_.port) +
                        " user=" + conninfo_value(opts_.superuser) + " dbname=postgres");
  pqxx::nontransaction tx(conn);
  const auto found =
      tx.exec_params("SELECT 1 FROM pg_database WHERE datname = $1", opts_.database);
  if (found.empty()) {
    tx.exec("CREATE DATABASE " + tx.quote_name(opts_.database));
  }
}

void embedded_cluster::start() {
  if (running_) {
    return;
  }
  prepare_folders();
  init_if_missing();

  const std::string server_options =
      "-c listen_addresses='' -c unix_socket_directories='" + socket_dir().string() +
      "' -c port=" + std::to_string(opts_.port) +
      " -c unix_socket_permissions=0700 -c fsync=on";
  std::vector<std::string> argv = command("pg_ctl");
  argv.insert(argv.end(), {"start", "-w", "-t", "60", "-D", data_dir().string(), "-l",
                           log_file().string(), "-o", server_options});
  run_checked(argv, "pg_ctl start");
  running_ = true;

  try {
    create_database_if_missing();
  } catch (const std::exception& e) {
    try {
      stop();
    } catch (...) {
      // Report the first failure; the log holds the rest.
    }
    throw std::runtime_error("cannot create database " + opts_.database + ": " + e.what());
  }
}

void embedded_cluster::stop(stop_mode mode) {
  if (!running_) {
    return;
  }
  std::vector<std::string> argv = command("pg_ctl");
  argv.insert(argv.end(), {"stop", "-m", mode == stop_mode::immediate ? "immediate" : "fast",
                           "-w", "-t", "60", "-D", data_dir().string()});
  running_ = false;
  run_checked(argv, "pg_ctl stop");
}

std::string embedded_cluster::conninfo() const {
  return "host=" + conninfo_value(socket_dir().string()) + " port=" +
         std::to_string(opts_.port) + " user=" + conninfo_value(opts_.superuser) +
         " dbname=" + conninfo_value(opts_.database);
}

std::string embedded_cluster::psql_command() const {
  return "psql -h " + shell_word(socket_dir().string()) + " -p " + std::to_string(opts_.port) +
         " -U " + shell_word(opts_.superuser) + " " + shell_word(opts_.database);
}

}  // namespace locomov::storage
