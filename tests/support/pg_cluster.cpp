#include "tests/support/pg_cluster.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/transaction>
#include <stdexcept>
#include <system_error>
#include <vector>

extern char** environ;

namespace locomov::test {

namespace {

namespace fs = std::filesystem;

/// Waits for EOF on stdin, which comes when the test binary has closed the
/// pipe or died, then shuts down a server still running on $1/data
/// (SIGQUIT: immediate shutdown; the data is thrown away anyway) and
/// removes $1. Run in its own session so a Ctrl-C to the test's process
/// group does not kill it before it has cleaned up.
constexpr const char* watcher_script = R"sh(
cat >/dev/null
pid_file="$1/data/postmaster.pid"
if [ -f "$pid_file" ]; then
  pid=$(head -n 1 "$pid_file")
  if [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null; then
    tries=0
    while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt 100 ]; do
      sleep 0.1
      tries=$((tries + 1))
    done
    kill -KILL "$pid" 2>/dev/null
  fi
fi
rm -rf -- "$1"
)sh";

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

fs::path make_temp_dir() {
  std::string pattern = "/tmp/locomov-pg-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw_errno("mkdtemp " + pattern);
  }
  return pattern;
}

}  // namespace

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno("socket");
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    throw_errno("bind 127.0.0.1:0");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

pg_cluster::pg_cluster() : dir_(make_temp_dir()) {
  try {
    port_ = free_port();
    start_watcher();
    storage::embedded_cluster::options opts;
    opts.dir = dir_;
    opts.port = port_;
    cluster_ = std::make_unique<storage::embedded_cluster>(opts);
    cluster_->start();
  } catch (...) {
    cluster_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
    stop_watcher();
    throw;
  }
}

pg_cluster::~pg_cluster() {
  try {
    // The folder is deleted next, so the shutdown checkpoint would be wasted
    // work; it takes seconds on a busy disk.
    cluster_->stop(storage::embedded_cluster::stop_mode::immediate);
  } catch (...) {
    // The watcher still kills a server that refused to stop.
  }
  cluster_.reset();
  std::error_code ec;
  fs::remove_all(dir_, ec);
  stop_watcher();
}

pg_cluster& pg_cluster::shared() {
  static pg_cluster instance;
  return instance;
}

void pg_cluster::start_watcher() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw_errno("pipe2");
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[0], 0);
  // No output, and no descriptor but the pipe: a test runner waiting for
  // EOF on the test's output must not wait for the watcher too.
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawn_file_actions_addchdir_np(&actions, "/");
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);

  const std::string dir = dir_.string();
  std::vector<char*> argv{const_cast<char*>("sh"), const_cast<char*>("-c"),
                          const_cast<char*>(watcher_script),
                          const_cast<char*>("locomov-pg-watcher"), const_cast<char*>(dir.c_str()),
                          nullptr};
  const int rc = ::posix_spawn(&watcher_pid_, "/bin/sh", &actions, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[0]);
  if (rc != 0) {
    ::close(fds[1]);
    watcher_pid_ = -1;
    throw std::system_error(rc, std::generic_category(), "cannot start the cleanup watcher");
  }
  watcher_fd_ = fds[1];
}

void pg_cluster::stop_watcher() {
  if (watcher_fd_ >= 0) {
    ::close(watcher_fd_);
    watcher_fd_ = -1;
  }
  if (watcher_pid_ > 0) {
    while (::waitpid(watcher_pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    watcher_pid_ = -1;
  }
}

std::string pg_cluster::conninfo() const {
  return cluster_->conninfo();
}

std::string pg_cluster::conninfo(const std::string& dbname) const {
  storage::embedded_cluster::options opts = cluster_->settings();
  opts.database = dbname;
  return storage::embedded_cluster(opts).conninfo();
}

std::string pg_cluster::fresh_database_name() {
  const std::string name = "test_" + std::to_string(++databases_created_);
  pqxx::connection conn(conninfo("postgres"));
  pqxx::nontransaction tx(conn);
  tx.exec("CREATE DATABASE " + tx.quote_name(name));
  return name;
}

std::string pg_cluster::fresh_database() {
  return conninfo(fresh_database_name());
}

long query_number(const std::string& conninfo, const std::string& sql) {
  pqxx::connection conn{conninfo};
  pqxx::work tx{conn};
  return tx.exec1(sql)[0].as<long>();
}

}  // namespace locomov::test
