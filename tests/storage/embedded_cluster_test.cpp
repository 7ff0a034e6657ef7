#include "storage/embedded_cluster.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <stdexcept>
#include <string>

#include "tests/support/pg_cluster.hpp"
#include "tests/support/scratch_dir.hpp"

namespace locomov::storage {
namespace {

using test::scratch_dir;

namespace fs = std::filesystem;

std::string message_of(embedded_cluster& cluster) {
  try {
    cluster.start();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(start did not throw)";
}

TEST(EmbeddedCluster, ConninfoNamesSocketFolderPortUserAndDatabase) {
  embedded_cluster::options opts;
  opts.dir = "/var/lib/locomov/pg/";
  opts.port = 6543;
  opts.superuser = "meter";
  opts.database = "readings";
  const embedded_cluster cluster(opts);

  EXPECT_EQ(cluster.conninfo(),
            "host=/var/lib/locomov/pg/socket port=6543 user=meter dbname=readings");
  EXPECT_EQ(cluster.psql_command(), "psql -h /var/lib/locomov/pg/socket -p 6543 -U meter readings");
  EXPECT_FALSE(cluster.running());
}

TEST(EmbeddedCluster, QuotesConninfoValuesWithSpaces) {
  embedded_cluster::options opts;
  opts.dir = "/tmp/with space";
  opts.database = "it's";
  const embedded_cluster cluster(opts);

  EXPECT_EQ(cluster.conninfo(), "host='/tmp/with space/socket' port=5432 user=locomov "
                                "dbname='it\\'s'");
  EXPECT_EQ(cluster.psql_command(), "psql -h '/tmp/with space/socket' -p 5432 -U locomov "
                                    "'it'\\''s'");
}

TEST(EmbeddedCluster, RefusesFolderThatPgCtlWouldPassToTheShellAltered) {
  const scratch_dir scratch;
  embedded_cluster::options opts;
  opts.dir = scratch.path() / "a$b";
  embedded_cluster cluster(opts);

  EXPECT_NE(message_of(cluster).find("contains a character"), std::string::npos);
  EXPECT_FALSE(fs::exists(opts.dir));
}

TEST(EmbeddedCluster, ExplainsAParentThePostgresUserCannotEnter) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "only root hands the cluster to the postgres user";
  }
  const scratch_dir scratch;
  fs::create_directory(scratch.path() / "private");
  ::chmod((scratch.path() / "private").c_str(), 0700);
  embedded_cluster::options opts;
  opts.dir = scratch.path() / "private" / "cluster";
  embedded_cluster cluster(opts);

  const std::string message = message_of(cluster);
  EXPECT_NE(message.find("cannot traverse " + (scratch.path() / "private").string()),
            std::string::npos)
      << message;
  EXPECT_FALSE(cluster.running());
}

/// A cluster of its own (the shared one must keep running): initdb once,
/// then a restart reuses the data folder and the database.
TEST(EmbeddedCluster, RestartsOnExistingDataAndStopsInDestructor) {
  const scratch_dir scratch;
  embedded_cluster::options opts;
  opts.dir = scratch.path() / "cluster";
  opts.port = test::free_port();
  opts.database = "restart_check";
  const fs::path pid_file = opts.dir / "data" / "postmaster.pid";
  {
    embedded_cluster cluster(opts);
    cluster.start();
    ASSERT_TRUE(cluster.running());
    pqxx::connection conn(cluster.conninfo());
    pqxx::nontransaction(conn).exec("CREATE TABLE survives_restart (x integer)");
    cluster.stop();
    EXPECT_FALSE(cluster.running());
    EXPECT_FALSE(fs::exists(pid_file));
  }
  {
    embedded_cluster cluster(opts);
    cluster.start();
    pqxx::connection conn(cluster.conninfo());
    const auto found =
        pqxx::nontransaction(conn).exec("SELECT to_regclass('survives_restart') IS NOT NULL");
    EXPECT_TRUE(found[0][0].as<bool>());
    if (::geteuid() == 0) {
      struct stat st {};
      ASSERT_EQ(::stat((opts.dir / "data").c_str(), &st), 0);
      EXPECT_NE(st.st_uid, 0u) << "data folder must belong to the postgres user";
    }
    EXPECT_TRUE(fs::exists(pid_file));
  }
  EXPECT_FALSE(fs::exists(pid_file));
}

TEST(PgCluster, FreshDatabasesAreDistinctAndEmpty) {
  auto& shared = test::pg_cluster::shared();
  const std::string a = shared.fresh_database_name();
  const std::string b = shared.fresh_database_name();
  EXPECT_NE(a, b);

  pqxx::connection conn(shared.conninfo(b));
  const auto tables = pqxx::nontransaction(conn).exec(
      "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'");
  EXPECT_EQ(tables[0][0].as<int>(), 0);
  EXPECT_EQ(conn.dbname(), b);
}

}  // namespace
}  // namespace locomov::storage
