// Whether an account may reach and write a folder, judged from mode bits as
// root sees them (the check locomov makes before it gives up root).

#include "common/accounts.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "tests/support/scratch_dir.hpp"

namespace locomov::accounts {
namespace {

namespace fs = std::filesystem;

class AccountAccess : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directory(dir_ / "inner");
    // Nobody's ids: neither the owner of the scratch folder nor in its group.
    stranger_ = account{"stranger", 4000001, 4000001, {4000001}};
  }
  test::scratch_dir dir_;  // mode 0755
  account stranger_;
};

TEST_F(AccountAccess, OthersBitsDecideForAStranger) {
  fs::permissions(dir_ / "inner", fs::perms(0755));
  EXPECT_NO_THROW(require_traversable(stranger_, dir_ / "inner"));
  try {
    require_writable(stranger_, dir_ / "inner");
    FAIL() << "a stranger may not write in a 0755 folder of another owner";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("user 'stranger' cannot write in " + (dir_ / "inner").string()),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("mode 755"), std::string::npos) << what;
  }
}

TEST_F(AccountAccess, AFolderOnTheWayThatCannotBeEnteredIsNamed) {
  fs::permissions(dir_.path(), fs::perms(0700));
  try {
    require_traversable(stranger_, dir_ / "inner");
    FAIL() << "a 0700 parent must stop a stranger";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot traverse " + dir_.path().string() + " (mode 700)"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(AccountAccess, GroupBitsDecideForAMemberOfTheFoldersGroup) {
  fs::permissions(dir_ / "inner", fs::perms(0770));
  account member = stranger_;
  member.groups.push_back(::getegid());
  EXPECT_NO_THROW(require_writable(member, dir_ / "inner"));
  EXPECT_THROW(require_writable(stranger_, dir_ / "inner"), std::runtime_error);
}

TEST(AccountLookup, UnknownUserIsNamed) {
  try {
    lookup("locomov-no-such-user");
    FAIL() << "lookup found a user that does not exist";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "there is no user 'locomov-no-such-user'");
  }
}

TEST(AccountLookup, GroupReplacesThePrimaryGroup) {
  const auto acct = lookup("root", "nogroup");
  EXPECT_EQ(acct.uid, 0u);
  EXPECT_NE(acct.gid, 0u);
  EXPECT_NE(std::find(acct.groups.begin(), acct.groups.end(), acct.gid), acct.groups.end());
}

}  // namespace
}  // namespace locomov::accounts
