// Two locomov processes share one database and decide confos for the same
// new hash from different registered subs at the same moment.

#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <thread>

#include "tests/e2e/daemon_fixture.hpp"
#include "tests/e2e/tls_client.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/rendezvous.hpp"

namespace locomov::test {
namespace {

TEST(ConfoRace, TwoProcessesMakeExactlyOneCreatorPerHash) {
  constexpr int rounds = 30;
  const auto conninfo = pg_cluster::shared().fresh_database();
  daemon first({"--db", conninfo});
  daemon second({"--db", conninfo});
  {
    pqxx::connection conn{conninfo};
    pqxx::work tx{conn};
    tx.exec0("INSERT INTO sub (email) VALUES ('ravi@example.com'), ('asha@example.com')");
    tx.commit();
  }

  rendezvous start;
  auto post_all = [&](daemon& d, const std::string& email, std::vector<std::string>& replies) {
    tls_client::options o;
    o.port = d.confo_port();
    o.ca = d.ca_file();
    tls_client c(o);
    for (int i = 0; i < rounds; ++i) {
      start.arrive();
      c.write(R"({"deviceName":"meter-)" + std::to_string(i) + R"(","ssid":"s","hash":)" +
              std::to_string(7000 + i) + R"(,"email":")" + email + "\"}\n");
      replies.push_back(c.read_line().value_or("(none)"));
    }
  };
  std::vector<std::string> ravi;
  std::vector<std::string> asha;
  std::thread t([&] { post_all(second, "asha@example.com", asha); });
  post_all(first, "ravi@example.com", ravi);
  t.join();

  for (int i = 0; i < rounds; ++i) {
    EXPECT_EQ(ravi[i], "OK.\n") << i;
    EXPECT_EQ(asha[i], "OK.\n") << i;
  }
  pqxx::connection conn{conninfo};
  pqxx::work tx{conn};
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM pub WHERE creator IS NOT NULL")[0].as<int>(), rounds);
  EXPECT_EQ(tx.exec1("SELECT count(DISTINCT hash) FROM pub")[0].as<int>(), rounds);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM subpub")[0].as<int>(), rounds);
  // Per hash: the creator's confo in confo, the other sub's in cconfo.
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM pub p JOIN confo c ON c.hash = p.hash AND "
                     "c.email = p.creator JOIN cconfo x ON x.hash = p.hash AND "
                     "x.email <> p.creator")[0]
                .as<int>(),
            rounds);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM confo")[0].as<int>(), rounds);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM cconfo")[0].as<int>(), rounds);
}

}  // namespace
}  // namespace locomov::test
