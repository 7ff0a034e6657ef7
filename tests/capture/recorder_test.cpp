#include "capture/recorder.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "tests/support/scratch_dir.hpp"

namespace locomov::capture {
namespace {

namespace fs = std::filesystem;

/// Sets the process umask to the usual 022 for one test, so that a mode the
/// recorder did not set shows as 0755 or 0644 whatever the caller's umask.
class usual_umask {
 public:
  usual_umask() : saved_(::umask(022)) {}
  ~usual_umask() { ::umask(saved_); }

 private:
  mode_t saved_;
};

mode_t mode_of(const fs::path& path) {
  struct stat st{};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST(Recorder, KeepsWhatMetersSentToItsOwner) {
  const usual_umask umask;
  test::scratch_dir dir;
  recorder_settings settings;
  settings.dir = dir.path() / "capture";
  {
    recorder r(settings);
  }
  EXPECT_EQ(mode_of(settings.dir), 0700u);
  EXPECT_EQ(mode_of(settings.dir / "capture.jsonl"), 0600u);
}

TEST(Recorder, LeavesTheModeOfAFolderTheOperatorMade) {
  const usual_umask umask;
  test::scratch_dir dir;
  recorder_settings settings;
  settings.dir = dir.path() / "shared";
  fs::create_directories(settings.dir);
  fs::permissions(settings.dir, fs::perms(0750));
  {
    recorder r(settings);
  }
  EXPECT_EQ(mode_of(settings.dir), 0750u);
  EXPECT_EQ(mode_of(settings.dir / "capture.jsonl"), 0600u);
}

}  // namespace
}  // namespace locomov::capture
