// Component loggers: levels as start-up and SIGHUP set them, one-line
// reasons, and the log file's rotated files pruned in a scratch folder.

#include "common/logging.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <stdexcept>

#include "tests/support/scratch_dir.hpp"

namespace locomov::logs {
namespace {

TEST(Logging, SetLevelAppliesToEveryComponent) {
  set_level(spdlog::level::debug);

  for (auto* logger : {&net(), &protocol(), &storage(), &actors(), &app()}) {
    EXPECT_TRUE(logger->should_log(spdlog::level::debug)) << logger->name();
  }

  set_level(spdlog::level::warn);

  for (auto* logger : {&net(), &protocol(), &storage(), &actors(), &app()}) {
    EXPECT_FALSE(logger->should_log(spdlog::level::info)) << logger->name();
    EXPECT_TRUE(logger->should_log(spdlog::level::warn)) << logger->name();
  }
}

TEST(Logging, ParseLevelRejectsAnUnknownName) {
  EXPECT_EQ(parse_level("debug"), spdlog::level::debug);
  EXPECT_EQ(parse_level("off"), spdlog::level::off);
  EXPECT_THROW(parse_level("verbose"), std::invalid_argument);
}

TEST(Logging, OneLineFitsLibpqsMessageIntoAQuotedField) {
  // What libpq says when the embedded cluster's socket is gone.
  const char* libpq =
      "connection to server on socket \"/var/lib/locomov/postgresql/socket/.s.PGSQL.5432\" "
      "failed: No such file or directory\n\tIs the server running locally and accepting "
      "connections on that socket?\n";

  EXPECT_EQ(one_line(libpq),
            "connection to server on socket '/var/lib/locomov/postgresql/socket/.s.PGSQL.5432' "
            "failed: No such file or directory Is the server running locally and accepting "
            "connections on that socket?");
}

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class LogFilePruning : public ::testing::Test {
 protected:
  void SetUp() override {
    settings_.path = dir_ / "locomov.log";
    settings_.keep = 2;
  }

  /// A file under the scratch folder, last written `age` ago.
  fs::path make(const std::string& name, fs::file_time_type::duration age = 0s) {
    const auto p = dir_ / name;
    std::ofstream(p) << "line\n";
    fs::last_write_time(p, now_ - age);
    return p;
  }

  test::scratch_dir dir_;
  file_settings settings_;
  const fs::file_time_type now_ = fs::file_time_type::clock::now();
};

TEST_F(LogFilePruning, RemovesRotatedFilesBeyondTheCountAndKeepsTheRest) {
  make("locomov.log");
  make("locomov.1.log");
  make("locomov.2.log");
  make("locomov.3.log");
  make("locomov.12.log");

  const auto removed = prune_rotated(settings_, now_);

  EXPECT_EQ(removed.size(), 2u);
  EXPECT_TRUE(fs::exists(dir_ / "locomov.log"));
  EXPECT_TRUE(fs::exists(dir_ / "locomov.1.log"));
  EXPECT_TRUE(fs::exists(dir_ / "locomov.2.log"));
  EXPECT_FALSE(fs::exists(dir_ / "locomov.3.log"));
  EXPECT_FALSE(fs::exists(dir_ / "locomov.12.log"));
}

TEST_F(LogFilePruning, RemovesRotatedFilesPastTheAgeButNeverTheCurrentFile) {
  settings_.max_age = 24h;
  make("locomov.log", 72h);
  make("locomov.1.log", 1h);
  make("locomov.2.log", 48h);

  const auto removed = prune_rotated(settings_, now_);

  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], dir_ / "locomov.2.log");
  EXPECT_TRUE(fs::exists(dir_ / "locomov.log"));
  EXPECT_TRUE(fs::exists(dir_ / "locomov.1.log"));
}

TEST_F(LogFilePruning, LeavesFilesThatAreNotRotationsOfTheLog) {
  settings_.keep = 0;
  settings_.max_age = 1h;
  for (const char* name : {"locomov.x.log", "locomov.1.txt", "other.1.log", "locomov..log",
                           "locomov.1.log.gz", "locomov.-1.log"}) {
    make(name, 48h);
  }

  EXPECT_TRUE(prune_rotated(settings_, now_).empty());
}

TEST_F(LogFilePruning, NamesWithoutAnExtensionRotateAsNameDotIndex) {
  settings_.path = dir_ / "locomov";
  settings_.keep = 1;
  make("locomov");
  make("locomov.1");
  make("locomov.2");

  const auto removed = prune_rotated(settings_, now_);

  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], dir_ / "locomov.2");
}

TEST(LogFile, UnopenableFileFailsInitWithThePathAndTheReason) {
  file_settings file;
  file.path = "/proc/locomov-no-such-folder/locomov.log";
  try {
    init("info", file);
    FAIL() << "init accepted " << file.path;
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("/proc/locomov-no-such-folder"), std::string::npos) << what;
    EXPECT_NE(what.find("No such file or directory"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace locomov::logs
