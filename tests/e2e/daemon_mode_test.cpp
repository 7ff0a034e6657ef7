// locomov --daemon --pidfile as an init script runs it: the command returns
// once the daemon serves, the pidfile names it, SIGTERM ends it and removes
// the pidfile; a failed start is the command's failure.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/daemon_fixture.hpp"
#include "tests/e2e/process.hpp"
#include "tests/support/scratch_dir.hpp"
#include "tests/e2e/tls_client.hpp"
#include "tests/support/pg_cluster.hpp"

namespace locomov::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

/// The pid a pidfile names, or 0.
pid_t pid_in(const fs::path& pidfile) {
  std::ifstream in(pidfile);
  long pid = 0;
  in >> pid;
  return static_cast<pid_t>(pid);
}

/// Exit status of `pid`, which must have been reparented to this process
/// (a child subreaper), or -1 when it still runs after `limit`.
int wait_orphan(pid_t pid, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    int raw = 0;
    if (::waitpid(pid, &raw, WNOHANG) == pid) {
      return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
    }
    std::this_thread::sleep_for(20ms);
  }
  return -1;
}

class DaemonMode : public ::testing::Test {
 protected:
  void SetUp() override {
    // The daemon's parent exits at once; as a subreaper, this test becomes
    // the daemon's parent and can wait for its exit status.
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    packet_port_ = free_port();
  }

  void TearDown() override {
    // A daemon outlives the test that started it unless it is ended here.
    if (started_ > 0 && ::kill(started_, 0) == 0) {
      ::kill(started_, SIGKILL);
      wait_orphan(started_, 10s);
    }
  }

  std::vector<std::string> argv(const std::string& log_name = "locomov.log") const {
    return {locomov_binary(),
            "--daemon",
            "--pidfile", pidfile_.string(),
            "--log-file", (dir_ / log_name).string(),
            "--state-dir", (dir_ / "state").string(),
            "--db", db_,
            "--packet-listen", "127.0.0.1",
            "--packet-port", std::to_string(packet_port_),
            "--confo-port", "0",
            "--status-port", "0"};
  }

  /// Starts `locomov --daemon` and remembers the pid it wrote.
  command_result start(const std::vector<std::string>& args) {
    auto r = run_command(args, {}, 60s);
    if (r.status == 0) {
      started_ = pid_in(pidfile_);
    }
    return r;
  }

  std::string log() const {
    std::ifstream in(dir_ / "locomov.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  scratch_dir dir_;
  fs::path pidfile_ = dir_ / "locomov.pid";
  std::string db_ = pg_cluster::shared().fresh_database();
  int packet_port_ = 0;
  pid_t started_ = 0;
};

TEST_F(DaemonMode, CommandReturnsOnceServingAndSigtermEndsItAndRemovesThePidfile) {
  const auto r = start(argv());
  ASSERT_EQ(r.status, 0) << r.output << log();

  // Serving the moment the command returned, as a process of its own.
  ASSERT_GT(started_, 0) << "pidfile holds no pid";
  EXPECT_NE(started_, ::getpid());
  EXPECT_EQ(::kill(started_, 0), 0);
  EXPECT_EQ(::getsid(started_), started_) << "not a session leader";
  tls_client::options o;
  o.port = packet_port_;
  o.ca = dir_ / "state" / "tls" / "ca.crt";
  tls_client c(o);
  c.write(R"({"Id":7,"status":true,"voltage":230})");
  EXPECT_EQ(c.read_line(), "Thank you.\n") << log();
  EXPECT_NE(log().find("locomov ready"), std::string::npos) << log();

  ::kill(started_, SIGTERM);
  EXPECT_EQ(wait_orphan(started_, 30s), 0) << log();
  EXPECT_FALSE(fs::exists(pidfile_));
  EXPECT_NE(log().find("locomov stopped"), std::string::npos) << log();
}

// The daemon works from /: a config file named relative to where it was
// started must still be the one a SIGHUP reads.
TEST_F(DaemonMode, SighupRereadsAConfigFileNamedByARelativePath) {
  // In the test's working folder, named without "..", which from / would
  // still lead back up to it.
  const fs::path config = "daemon-mode-" + std::to_string(::getpid()) + ".conf";
  std::ofstream(config) << "log-level = info\n";
  // A relative pidfile as well: reread from /, it would look changed.
  pidfile_ = "daemon-mode-" + std::to_string(::getpid()) + ".pid";
  auto args = argv();
  args.push_back("--config");
  args.push_back(config.string());
  ASSERT_EQ(start(args).status, 0) << log();

  std::ofstream(config) << "log-level = debug\n";
  ::kill(started_, SIGHUP);
  bool reloaded = false;
  for (int i = 0; i < 100 && !reloaded; ++i) {
    std::this_thread::sleep_for(50ms);
    reloaded = log().find("configuration reloaded changed=log-level") != std::string::npos;
  }
  EXPECT_TRUE(reloaded) << log();
  EXPECT_NE(log().find("configuration reloaded changed=log-level needs_restart=none"),
            std::string::npos)
      << log();

  ::kill(started_, SIGTERM);
  EXPECT_EQ(wait_orphan(started_, 30s), 0) << log();
  fs::remove(config);
}

TEST_F(DaemonMode, SecondStartWithTheSamePidfileFailsNamingTheRunningOne) {
  ASSERT_EQ(start(argv()).status, 0) << log();

  auto again = argv("second.log");
  // On a port of its own, so that only the pidfile stands in its way.
  *(std::find(again.begin(), again.end(), "--packet-port") + 1) = std::to_string(free_port());
  const auto r = run_command(again, {}, 60s);

  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("pidfile " + pidfile_.string() + " is held by a running locomov pid=" +
                          std::to_string(started_)),
            std::string::npos)
      << r.output;
  // The running daemon keeps its pidfile and goes on serving.
  EXPECT_EQ(pid_in(pidfile_), started_);
  EXPECT_EQ(::kill(started_, 0), 0);
}

TEST_F(DaemonMode, PidfileLeftByAKilledDaemonDoesNotBlockTheNextStart) {
  ASSERT_EQ(start(argv()).status, 0) << log();
  const pid_t first = started_;
  ::kill(first, SIGKILL);
  ASSERT_NE(wait_orphan(first, 10s), -1);
  ASSERT_TRUE(fs::exists(pidfile_));

  const auto r = start(argv("second.log"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(started_, first);
  EXPECT_EQ(::kill(started_, 0), 0);
}

TEST_F(DaemonMode, StartFailureInTheDaemonIsTheCommandsFailureWithTheReason) {
  // The packet port taken by a listener without SO_REUSEPORT.
  const int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(packet_port_));
  ASSERT_EQ(::bind(taken, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(taken, 1), 0);

  const auto r = run_command(argv(), {}, 60s);
  ::close(taken);

  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("locomov: cannot start: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Address already in use"), std::string::npos) << r.output;
  EXPECT_NE(log().find("cannot start"), std::string::npos) << log();
  EXPECT_FALSE(fs::exists(pidfile_));
}

TEST_F(DaemonMode, RefusedWithoutALogFile) {
  const auto r = run_command({locomov_binary(), "--daemon", "--state-dir",
                              (dir_ / "state").string()});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--daemon needs --log-file"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace locomov::test
