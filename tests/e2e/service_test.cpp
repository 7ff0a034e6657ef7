// locomov under a service manager: the notifications a Type=notify systemd
// unit relies on, received on a socket of the test's own as systemd would.

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include "tests/e2e/daemon_fixture.hpp"
#include "tests/e2e/http_get.hpp"
#include "tests/e2e/process.hpp"
#include "tests/support/pg_cluster.hpp"

namespace locomov::test {
namespace {

using namespace std::chrono_literals;

/// A unix datagram socket standing in for systemd's notification socket.
class notify_socket {
 public:
  notify_socket() {
    char dir[] = "/tmp/locomov-notify-XXXXXX";
    if (mkdtemp(dir) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    dir_ = dir;
    path_ = dir_ / "notify.sock";
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      throw std::runtime_error("cannot bind " + path_.string());
    }
  }
  ~notify_socket() {
    close(fd_);
    std::filesystem::remove_all(dir_);
  }

  const std::filesystem::path& path() const { return path_; }

  /// The next notification, or nothing within `limit`.
  std::optional<std::string> next(std::chrono::milliseconds limit) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(limit.count())) != 1) {
      return std::nullopt;
    }
    char buf[512];
    const auto n = recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::optional<std::string>(std::string(buf, static_cast<std::size_t>(n)))
                 : std::nullopt;
  }

  /// Waits for a notification that starts with `prefix`, skipping others.
  std::optional<std::string> wait_for(const std::string& prefix, std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      auto m = next(left);
      if (m && m->rfind(prefix, 0) == 0) {
        return m;
      }
    }
    return std::nullopt;
  }

 private:
  std::filesystem::path dir_;
  std::filesystem::path path_;
  int fd_ = -1;
};

TEST(ServiceManager, NotifiesReadyPingsTheWatchdogAndNotifiesStopping) {
  notify_socket systemd;
  // What systemd sets for a Type=notify unit with WatchdogSec=1.
  setenv("NOTIFY_SOCKET", systemd.path().c_str(), 1);
  setenv("WATCHDOG_USEC", "1000000", 1);
  daemon d({"--db", pg_cluster::shared().fresh_database()});
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");

  const auto ready = systemd.wait_for("READY=1", 10s);
  ASSERT_TRUE(ready) << d.log();
  EXPECT_NE(ready->find("STATUS=accepting connections"), std::string::npos) << *ready;

  // Pings at half the interval: two within 1.5 s.
  EXPECT_TRUE(systemd.wait_for("WATCHDOG=1", 1500ms)) << d.log();
  EXPECT_TRUE(systemd.wait_for("WATCHDOG=1", 1500ms)) << d.log();

  d.proc().signal(SIGTERM);
  EXPECT_TRUE(systemd.wait_for("STOPPING=1", 10s)) << d.log();
  EXPECT_EQ(d.proc().wait(30s), 0) << d.log();
}

// `systemctl reload` sends SIGHUP and shows the unit reloading until READY=1.
TEST(ServiceManager, NotifiesReloadingThenReadyAroundSighup) {
  notify_socket systemd;
  setenv("NOTIFY_SOCKET", systemd.path().c_str(), 1);
  daemon d({"--db", pg_cluster::shared().fresh_database()});
  unsetenv("NOTIFY_SOCKET");
  ASSERT_TRUE(systemd.wait_for("READY=1", 10s)) << d.log();

  d.proc().signal(SIGHUP);

  const auto reloading = systemd.wait_for("RELOADING=1", 10s);
  ASSERT_TRUE(reloading) << d.log();
  EXPECT_NE(reloading->find("STATUS=reloading configuration"), std::string::npos) << *reloading;
  EXPECT_TRUE(systemd.wait_for("READY=1", 10s)) << d.log();
  EXPECT_EQ(d.log_lines_with({"configuration reloaded", "needs_restart=none"}), 1) << d.log();
  EXPECT_EQ(d.stop(), 0) << d.log();
}

// Service files written for the old Go server pass glog's flag.
TEST(ServiceManager, GlogStderrThresholdSetsTheConsoleLevel) {
  char dir[] = "/tmp/locomov-e2e-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::filesystem::path state = dir;
  const int status_port = free_port();
  {
    process p({locomov_binary(), "-stderrthreshold=WARNING", "--state-dir", state.string(),
               "--db", pg_cluster::shared().fresh_database(), "--packet-listen", "127.0.0.1",
               "--packet-port", std::to_string(free_port()), "--confo-port", "0",
               "--status-port", std::to_string(status_port)},
              state / "locomov.log");
    // Ready once the status endpoint answers; "locomov ready" is an info line.
    bool up = false;
    for (int i = 0; i < 100 && !up; ++i) {
      std::this_thread::sleep_for(100ms);
      try {
        up = http_get(status_port, "/healthz").status == 200;
      } catch (const std::exception&) {
      }
    }
    ASSERT_TRUE(up) << p.output();
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(30s), 0) << p.output();
    const auto log = p.output();
    EXPECT_EQ(log.find("] info ["), std::string::npos) << log;
    EXPECT_EQ(log.find(" info ["), std::string::npos) << log;
  }
  std::filesystem::remove_all(state);
}

}  // namespace
}  // namespace locomov::test
