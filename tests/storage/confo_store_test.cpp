// The confo-arbiter's decision tree against a real PostgreSQL: every branch
// from a known state to the exact rows it leaves, and two deciders racing.

#include "storage/confo_store.hpp"

#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "storage/schema.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/rendezvous.hpp"

namespace locomov::storage {
namespace {

constexpr std::int64_t received_us = 1'764'547'200'000'000;  // 2025-12-01T00:00:00Z
constexpr std::int64_t device_us = 1'700'000'000'000'000;    // 2023-11-14T22:13:20Z

protocol::confo make_confo(const std::string& email, std::int32_t hash,
                           const std::string& device_name = "meter",
                           const std::string& ssid = "home") {
  protocol::confo c;
  c.device_name = device_name;
  c.ssid = ssid;
  c.email = email;
  c.hash = hash;
  c.longitude = 77.59;
  c.latitude = 12.97;
  c.device_time_us = device_us;
  c.received_at_us = received_us;
  return c;
}

class ConfoStore : public ::testing::Test {
 protected:
  void SetUp() override {
    conninfo_ = test::pg_cluster::shared().fresh_database();
    check_ = std::make_unique<pqxx::connection>(conninfo_);
    migrate(*check_);
    exec("INSERT INTO sub (sub_id, email) VALUES (1, 'ravi@example.com'), "
         "(2, 'asha@example.com')");
    store_ = std::make_unique<confo_store>(conninfo_);
  }

  void exec(const std::string& sql) {
    pqxx::nontransaction tx(*check_);
    tx.exec(sql);
  }

  /// Every row of `sql`, fields joined by '|', rows by ';' (NULL as "-").
  std::string rows(const std::string& sql) {
    pqxx::nontransaction tx(*check_);
    std::string out;
    for (const auto& row : tx.exec(sql)) {
      if (!out.empty()) {
        out += ';';
      }
      for (pqxx::row::size_type i = 0; i < row.size(); ++i) {
        out += (i == 0 ? "" : "|") + std::string(row[i].is_null() ? "-" : row[i].c_str());
      }
    }
    return out;
  }

  std::string pubs() { return rows("SELECT hash, coalesce(creator, '-') FROM pub ORDER BY hash"); }
  std::string confos(const std::string& table) {
    return rows("SELECT device_name, ssid, hash, coalesce(email, '-') FROM " + table +
                " ORDER BY id");
  }

  std::string conninfo_;
  std::unique_ptr<pqxx::connection> check_;
  std::unique_ptr<confo_store> store_;
};

struct tree_case {
  const char* name;
  const char* setup;  ///< SQL run before the decision (subs 1 and 2 exist)
  const char* email;
  std::int32_t hash;
  confo_branch branch;
  const char* pubs;    ///< hash|creator after
  const char* confo;   ///< rows of confo after
  const char* cconfo;  ///< rows of cconfo after
  const char* csub;    ///< emails in csub after
  bool pub_created;
  bool creator_changed;
};

// gtest would print each case as a hex dump of its bytes in every test name.
void PrintTo(const tree_case& c, std::ostream* os) { *os << c.name; }

const tree_case tree_cases[] = {
    {"OwnPub", "INSERT INTO pub (hash, creator) VALUES (100, 'ravi@example.com')",
     "ravi@example.com", 100, confo_branch::sub_pub_own, "100|ravi@example.com",
     "meter|home|100|ravi@example.com", "", "", false, false},
    {"OtherSubsPubIsAConflict",
     "INSERT INTO pub (hash, creator) VALUES (100, 'asha@example.com')", "ravi@example.com",
     100, confo_branch::sub_pub_conflict, "100|asha@example.com", "",
     "meter|home|100|ravi@example.com", "", false, false},
    {"PubWithoutCreatorIsClaimed", "INSERT INTO pub (hash) VALUES (100)", "ravi@example.com",
     100, confo_branch::sub_pub_claimed, "100|ravi@example.com",
     "meter|home|100|ravi@example.com", "", "", false, true},
    {"PubWithEmptyCreatorIsClaimed", "INSERT INTO pub (hash, creator) VALUES (100, '')",
     "ravi@example.com", 100, confo_branch::sub_pub_claimed, "100|ravi@example.com",
     "meter|home|100|ravi@example.com", "", "", false, true},
    {"NewHashCreatesPub", "", "ravi@example.com", 100, confo_branch::sub_new_pub,
     "100|ravi@example.com", "meter|home|100|ravi@example.com", "", "", true, false},
    {"HashZeroCreatesNoPub", "", "ravi@example.com", 0, confo_branch::sub_no_hash, "",
     "meter|home|0|ravi@example.com", "", "", false, false},
    {"UnregisteredEmailOnPub", "INSERT INTO pub (hash, creator) VALUES (100, 'asha@example.com')",
     "new@example.com", 100, confo_branch::csub_pub, "100|asha@example.com",
     "meter|home|100|new@example.com", "", "new@example.com", false, false},
    {"DanglingCreatorIsCleared", "INSERT INTO pub (hash, creator) VALUES (100, 'gone@example.com')",
     "new@example.com", 100, confo_branch::csub_pub, "100|-", "meter|home|100|new@example.com",
     "", "new@example.com", false, true},
    {"EmptyCreatorStaysEmpty", "INSERT INTO pub (hash) VALUES (100)", "new@example.com", 100,
     confo_branch::csub_pub, "100|-", "meter|home|100|new@example.com", "", "new@example.com",
     false, false},
    {"UnregisteredEmailCreatesNoPub", "", "new@example.com", 100, confo_branch::csub_no_pub, "",
     "meter|home|100|new@example.com", "", "new@example.com", false, false},
    {"NoEmailIsNoCandidate", "", "", 100, confo_branch::csub_no_pub, "", "meter|home|100|-", "",
     "", false, false},
};

class ConfoTree : public ConfoStore, public ::testing::WithParamInterface<tree_case> {};

TEST_P(ConfoTree, LeavesExactlyTheExpectedRows) {
  const auto& t = GetParam();
  if (*t.setup != '\0') {
    exec(t.setup);
  }
  const auto d = store_->decide(make_confo(t.email, t.hash));
  EXPECT_EQ(d.branch, t.branch) << branch_name(d.branch);
  EXPECT_EQ(d.conflict, t.branch == confo_branch::sub_pub_conflict);
  EXPECT_EQ(d.pub_created, t.pub_created);
  EXPECT_EQ(d.creator_changed, t.creator_changed);
  EXPECT_GT(d.confo_id, 0);
  EXPECT_EQ(pubs(), t.pubs);
  EXPECT_EQ(confos("confo"), t.confo);
  EXPECT_EQ(confos("cconfo"), t.cconfo);
  EXPECT_EQ(rows("SELECT email FROM csub ORDER BY email"), t.csub);
  if (t.pub_created) {
    EXPECT_EQ(d.pub_id, std::stoi(rows("SELECT pub_id FROM pub WHERE hash = 100")));
    EXPECT_EQ(rows("SELECT sub_id FROM subpub WHERE pub_id = " + std::to_string(d.pub_id)), "1");
    EXPECT_EQ(rows("SELECT longitude, latitude, extract(epoch FROM created_at)::bigint "
                   "FROM pub WHERE hash = 100"),
              "77.59|12.97|1700000000");
  } else {
    EXPECT_EQ(rows("SELECT count(*) FROM subpub"), "0");
  }
}

INSTANTIATE_TEST_SUITE_P(EveryBranch, ConfoTree, ::testing::ValuesIn(tree_cases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(ConfoStore, KeepsEverythingTheDeviceSent) {
  auto c = make_confo("ravi@example.com", 7, "my meter", "Ravi\xE2\x80\x99s x'; DROP TABLE pub;--");
  store_->decide(c);
  EXPECT_EQ(rows("SELECT device_name, ssid, hash, email, longitude, latitude, "
                 "(extract(epoch FROM device_time) * 1000000)::bigint, "
                 "(extract(epoch FROM received_at) * 1000000)::bigint FROM confo"),
            "my meter|Ravi\xE2\x80\x99s x'; DROP TABLE pub;--|7|ravi@example.com|77.59|12.97|" +
                std::to_string(device_us) + "|" + std::to_string(received_us));
}

TEST_F(ConfoStore, RecordsACandidateEmailOnceByteExact) {
  store_->decide(make_confo("New@Example.com", 1));
  store_->decide(make_confo("New@Example.com", 2));
  store_->decide(make_confo("new@example.com", 3));
  EXPECT_EQ(rows("SELECT email FROM csub ORDER BY email"), "New@Example.com;new@example.com");
}

TEST_F(ConfoStore, LastHashFollowsCommitOrderNotDeviceClock) {
  EXPECT_FALSE(store_->last_hash("meter", "home"));
  auto first = make_confo("", 11);
  auto second = make_confo("", 12);
  second.device_time_us = 1'356'998'400'000'000;  // a clock reset to 2013
  store_->decide(first);
  store_->decide(second);
  EXPECT_EQ(store_->last_hash("meter", "home"), 12);
  EXPECT_FALSE(store_->last_hash("meter", "Home"));
  store_->decide(make_confo("asha@example.com", 13, "meter", "elsewhere"));
  EXPECT_EQ(store_->last_hash("meter", "home"), 12);
  EXPECT_EQ(store_->last_hash("meter", "elsewhere"), 13);
}

TEST_F(ConfoStore, ConflictsAreNotAnsweredByTheQuery) {
  store_->decide(make_confo("ravi@example.com", 21));
  store_->decide(make_confo("asha@example.com", 21));
  EXPECT_EQ(confos("cconfo"), "meter|home|21|asha@example.com");
  EXPECT_EQ(store_->last_hash("meter", "home"), 21);
}

// Operators insert pubs with explicit ids (the README's tour does), which
// leaves pub_id's sequence behind; a new pub takes the next free id at once.
TEST_F(ConfoStore, NewPubSkipsIdsInsertedByHand) {
  exec("INSERT INTO pub (pub_id, hash) SELECT g, 100 + g FROM generate_series(1, 50) g");
  const auto d = store_->decide(make_confo("ravi@example.com", 7));
  EXPECT_EQ(d.branch, confo_branch::sub_new_pub);
  EXPECT_TRUE(d.pub_created);
  EXPECT_EQ(d.pub_id, 51);
  EXPECT_EQ(store_->decide(make_confo("ravi@example.com", 8)).pub_id, 52);
  EXPECT_EQ(rows("SELECT pub_id, creator FROM pub WHERE hash IN (7, 8) ORDER BY pub_id"),
            "51|ravi@example.com;52|ravi@example.com");
  EXPECT_EQ(rows("SELECT sub_id, pub_id FROM subpub ORDER BY pub_id"), "1|51;1|52");
}

// Two processes share the database and decide confos for the same new hash
// from different registered subs: one creates the pub, the other conflicts.
TEST_F(ConfoStore, RacingDecidersMakeExactlyOneCreator) {
  constexpr int rounds = 40;
  confo_store other(conninfo_);
  // Both threads meet before each round, so the two decisions really overlap.
  test::rendezvous barrier;
  std::vector<confo_decision> a(rounds);
  std::vector<confo_decision> b(rounds);
  std::thread t([&] {
    for (int i = 0; i < rounds; ++i) {
      barrier.arrive();
      b[i] = other.decide(make_confo("asha@example.com", 1000 + i, "meter-b", "s"));
    }
  });
  for (int i = 0; i < rounds; ++i) {
    barrier.arrive();
    a[i] = store_->decide(make_confo("ravi@example.com", 1000 + i, "meter-a", "s"));
  }
  t.join();

  for (int i = 0; i < rounds; ++i) {
    EXPECT_NE(a[i].pub_created, b[i].pub_created) << "round " << i;
    EXPECT_NE(a[i].conflict, b[i].conflict) << "round " << i;
  }
  EXPECT_EQ(rows("SELECT count(*), count(DISTINCT hash) FROM pub"), "40|40");
  EXPECT_EQ(rows("SELECT count(*) FROM pub p WHERE creator IN ('ravi@example.com', "
                 "'asha@example.com') AND EXISTS (SELECT 1 FROM subpub s WHERE s.pub_id = "
                 "p.pub_id)"),
            "40");
  EXPECT_EQ(rows("SELECT count(*), count(DISTINCT hash) FROM confo"), "40|40");
  EXPECT_EQ(rows("SELECT count(*), count(DISTINCT hash) FROM cconfo"), "40|40");
  EXPECT_EQ(rows("SELECT count(*) FROM confo c JOIN cconfo x USING (hash) "
                 "WHERE c.email = x.email"),
            "0");
}

}  // namespace
}  // namespace locomov::storage
