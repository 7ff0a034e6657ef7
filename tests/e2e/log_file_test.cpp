// The daemon's log in a file of its own: rotated by size, a bounded number of
// files kept, old files deleted, every component in the same file.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "tests/e2e/daemon_fixture.hpp"
#include "tests/e2e/raw_socket.hpp"
#include "tests/support/scratch_dir.hpp"
#include "tests/support/pg_cluster.hpp"

namespace locomov::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// 0.02 MiB, the smallest size that still holds the start-up lines whole.
constexpr const char* max_mb = "0.02";
constexpr std::uintmax_t max_bytes = static_cast<std::uintmax_t>(0.02 * (1 << 20));

std::string read_all(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// One packet over the plaintext port and the first `reply_bytes` of its
/// answer: each such connection adds a few debug lines to the log.
std::string send_plain(const daemon& d, const std::string& json,
                       std::size_t reply_bytes = std::string("Thank you.\n").size()) {
  raw_socket s(d.plain_port());
  s.send(json);
  return s.receive(reply_bytes, 10s);
}

/// Sends packets until `done` holds, at most `limit` of them.
template <class Done>
bool send_until(const daemon& d, int limit, Done done) {
  for (int i = 0; i < limit; ++i) {
    if (done()) {
      return true;
    }
    send_plain(d, R"({"Id":7,"status":true,"voltage":)" + std::to_string(200 + i) + "}");
  }
  return done();
}

void make_file(const fs::path& p, const std::string& text, std::chrono::hours age) {
  std::ofstream(p) << text;
  fs::last_write_time(p, fs::file_time_type::clock::now() - age);
}

TEST(LogFile, RotatesBySizeKeepsTheCountAndWritesWholeLines) {
  scratch_dir logs;
  const auto file = logs / "locomov.log";
  daemon d({"--db", pg_cluster::shared().fresh_database(), "--log-file", file.string(),
            "--log-file-max-mb", max_mb, "--log-file-count", "2"});
  // Every component writes to the one file: start-up (app, storage, net),
  // an unknown pub (actors), a reading refused (protocol).
  EXPECT_EQ(send_plain(d, R"({"Id":7,"status":true,"voltage":230})"), "Thank you.\n");
  EXPECT_EQ(send_plain(d, R"({"status":true,"voltage":230})", 3), "!OK");
  const auto first = d.log();
  for (const char* component : {"[app]", "[storage]", "[net]", "[actors]", "[protocol]"}) {
    EXPECT_NE(first.find(component), std::string::npos) << component << "\n" << first;
  }
  EXPECT_EQ(d.proc().output().find("[net]"), std::string::npos) << "stderr has log lines";

  // Past the second rotation, and on until the oldest file has been dropped
  // at least once more.
  ASSERT_TRUE(send_until(d, 3000, [&] { return fs::exists(logs / "locomov.2.log"); }));
  const auto oldest = read_all(logs / "locomov.2.log");
  ASSERT_TRUE(send_until(d, 3000, [&] { return read_all(logs / "locomov.2.log") != oldest; }));

  const std::regex line(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d )"
                        R"((trace|debug|info|warning|error|critical) )"
                        R"(\[(app|storage|net|actors|protocol)\] \S.*)");
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(logs.path())) {
    names.insert(entry.path().filename().string());
    EXPECT_LE(entry.file_size(), max_bytes) << entry.path();
    const auto text = read_all(entry.path());
    ASSERT_FALSE(text.empty()) << entry.path();
    EXPECT_EQ(text.back(), '\n') << entry.path();
    std::istringstream lines(text);
    for (std::string l; std::getline(lines, l);) {
      EXPECT_TRUE(std::regex_match(l, line)) << entry.path() << ": " << l;
    }
  }
  EXPECT_EQ(names, (std::set<std::string>{"locomov.log", "locomov.1.log", "locomov.2.log"}));
  EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(LogFile, OldRotatedFilesAreDeletedAtStartAndAtRotation) {
  scratch_dir logs;
  const auto file = logs / "locomov.log";
  make_file(logs / "locomov.1.log", "from ten days ago\n", 240h);
  make_file(logs / "locomov.7.log", "beyond the count\n", 1h);
  make_file(logs / "other.1.log", "not ours\n", 240h);
  daemon d({"--db", pg_cluster::shared().fresh_database(), "--log-file", file.string(),
            "--log-file-max-mb", max_mb, "--log-file-count", "2", "--log-file-max-age", "1"});
  EXPECT_FALSE(fs::exists(logs / "locomov.1.log"));
  EXPECT_FALSE(fs::exists(logs / "locomov.7.log"));
  EXPECT_TRUE(fs::exists(logs / "other.1.log"));

  // A file that ages past the limit while locomov runs goes at the next
  // rotation (which leaves locomov.2.log alone while there is no .1 yet).
  make_file(logs / "locomov.2.log", "aged while running\n", 48h);
  ASSERT_TRUE(send_until(d, 3000, [&] { return fs::exists(logs / "locomov.1.log"); }));
  EXPECT_FALSE(fs::exists(logs / "locomov.2.log"));
  EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(LogFile, UnusableFolderStopsTheStartNamingThePathAndTheReason) {
  scratch_dir dir;
  std::ofstream(dir / "not-a-folder") << "a file\n";
  const auto file = dir / "not-a-folder" / "locomov.log";
  auto r = run_command({locomov_binary(), "--state-dir", (dir / "state").string(), "--log-file",
                        file.string()});
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("cannot create log folder " + (dir / "not-a-folder").string()),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("Not a directory"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace locomov::test
