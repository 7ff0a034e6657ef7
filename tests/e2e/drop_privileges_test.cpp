// Started as root with --user, locomov binds its ports and then serves as
// that user: every thread, its embedded cluster, its log and its spool.

#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "tests/e2e/daemon_fixture.hpp"
#include "tests/e2e/process.hpp"
#include "tests/e2e/raw_socket.hpp"
#include "tests/support/scratch_dir.hpp"
#include "tests/e2e/tls_client.hpp"
#include "tests/support/pg_cluster.hpp"

namespace locomov::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* user = "nobody";

uid_t owner_of(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? st.st_uid : static_cast<uid_t>(-1);
}

class DropPrivileges : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "switching users needs root; these tests run as uid " << ::geteuid();
    }
    const passwd* pw = ::getpwnam(user);
    ASSERT_NE(pw, nullptr) << "no user " << user;
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
  }

  /// Options for a daemon that serves as `user`, logging into a folder it
  /// has to make (and own) itself.
  std::vector<std::string> as_user() const {
    return {"--user", user, "--log-file", log_file().string(), "--log-file-max-mb", "0.02",
            "--log-file-count", "2"};
  }
  fs::path log_file() const { return logs_ / "by-locomov" / "locomov.log"; }

  /// What /proc says of the ids of `pid`: real, effective, saved, filesystem.
  std::string all_four(unsigned id) const {
    const auto s = std::to_string(id);
    return s + "\t" + s + "\t" + s + "\t" + s;
  }

  scratch_dir logs_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
};

TEST_F(DropPrivileges, ServesAsTheUserWritesItsLogAndStopsItsClusterAtExit) {
  daemon d(as_user());
  const pid_t pid = d.proc().pid();

  // Every thread, not only the main one: CAF's workers, the accept and
  // status threads were started before the switch.
  int threads = 0;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    const auto tid = static_cast<pid_t>(std::stol(task.path().filename().string()));
    EXPECT_EQ(proc_status(tid, "Uid"), all_four(uid_)) << "thread " << tid;
    EXPECT_EQ(proc_status(tid, "Gid"), all_four(gid_)) << "thread " << tid;
    ++threads;
  }
  EXPECT_GT(threads, 3);
  tls_client::options o;
  o.port = d.packet_port();
  o.ca = d.ca_file();
  tls_client c(o);
  c.write(R"({"Id":7,"status":true,"voltage":230})");
  EXPECT_EQ(c.read_line(), "Thank you.\n") << d.log();
  EXPECT_NE(d.log().find("serving as user=nobody"), std::string::npos) << d.log();

  // What it writes to after the switch is the user's.
  EXPECT_EQ(owner_of(log_file().parent_path()), uid_);
  EXPECT_EQ(owner_of(d.state_dir() / "spool"), uid_);
  EXPECT_EQ(owner_of(d.state_dir() / "tls"), uid_);
  EXPECT_EQ(owner_of(d.state_dir() / "postgresql" / "data"), uid_);

  // A rotation makes a new log file, as the user, in the folder it owns.
  for (int i = 0; i < 3000 && !fs::exists(log_file().parent_path() / "locomov.1.log"); ++i) {
    raw_socket s(d.plain_port());
    s.send(R"({"Id":7,"status":true,"voltage":)" + std::to_string(200 + i) + "}");
    s.receive(11, 10s);
  }
  ASSERT_TRUE(fs::exists(log_file().parent_path() / "locomov.1.log")) << d.log();
  EXPECT_EQ(owner_of(log_file()), uid_);
  EXPECT_EQ(proc_status(pid, "Uid"), all_four(uid_));

  // pg_ctl stop, as the user, without runuser.
  EXPECT_EQ(d.stop(), 0) << d.log();
  EXPECT_NE(d.log().find("embedded PostgreSQL stopped"), std::string::npos) << d.log();
}

TEST_F(DropPrivileges, SpoolTakesPacketsAsTheUserWhileTheDatabaseIsDown) {
  daemon d(as_user());
  tls_client::options o;
  o.port = d.packet_port();
  o.ca = d.ca_file();
  {
    tls_client c(o);
    c.write(R"({"Id":7,"status":true,"voltage":230})");
    ASSERT_EQ(c.read_line(), "Thank you.\n") << d.log();
  }
  // The cluster runs as the user: stopped behind locomov's back as it.
  const auto stop = run_command({"runuser", "-u", user, "--",
                                 "/usr/lib/postgresql/15/bin/pg_ctl", "-D",
                                 (d.state_dir() / "postgresql" / "data").string(), "stop", "-m",
                                 "immediate", "-w"});
  ASSERT_EQ(stop.status, 0) << stop.output;

  tls_client c(o);
  c.write(R"({"Id":7,"status":true,"voltage":231})");
  EXPECT_EQ(c.read_line(30s), "Thank you.\n") << d.log();
  EXPECT_NE(d.log().find("batches go to the spool"), std::string::npos) << d.log();
  bool segment = false;
  for (const auto& entry : fs::directory_iterator(d.state_dir() / "spool")) {
    segment = segment || (entry.is_regular_file() && owner_of(entry.path()) == uid_);
  }
  EXPECT_TRUE(segment) << "no spool file of " << user;
  EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST_F(DropPrivileges, LogFolderTheUserCannotWriteStopsTheStart) {
  // logs_ is root's (mode 0755): the user could not rotate the log in it.
  const auto r = run_command({locomov_binary(), "--user", user, "--state-dir",
                              (logs_ / "state").string(), "--log-file",
                              (logs_ / "locomov.log").string()});
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("user 'nobody' cannot write in " + logs_.path().string()),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(logs_ / "locomov.log"));
}

TEST_F(DropPrivileges, UnknownUserStopsTheStart) {
  const auto r = run_command({locomov_binary(), "--user", "locomov-no-such-user", "--state-dir",
                              (logs_ / "state").string()});
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("there is no user 'locomov-no-such-user'"), std::string::npos)
      << r.output;
}

TEST_F(DropPrivileges, AsRootWithoutUserItWarnsOnceThatItStaysRoot) {
  daemon d({"--db", pg_cluster::shared().fresh_database()});
  EXPECT_EQ(proc_status(d.proc().pid(), "Uid"), all_four(0));
  EXPECT_EQ(d.log_lines_with({"warning [app] running as root; set user"}), 1) << d.log();
}

}  // namespace
}  // namespace locomov::test
