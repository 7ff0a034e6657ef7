// What each kind of database failure means for a retry, from errors a real
// PostgreSQL raises.

#include "storage/retry_policy.hpp"

#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <stdexcept>

#include "tests/support/pg_cluster.hpp"

namespace locomov::storage {
namespace {

class RetryPolicy : public ::testing::Test {
 protected:
  void SetUp() override { conninfo_ = test::pg_cluster::shared().fresh_database(); }

  /// The classification of what running `sql` on a fresh connection throws.
  db_failure failure_of(const std::string& sql) {
    pqxx::connection conn(conninfo_);
    pqxx::nontransaction tx(conn);
    try {
      tx.exec(sql);
    } catch (const std::exception& e) {
      return classify(e);
    }
    ADD_FAILURE() << "no error from: " << sql;
    return db_failure::transient;
  }

  std::string conninfo_;
};

TEST_F(RetryPolicy, ConstraintViolationIsRefused) {
  EXPECT_EQ(failure_of("CREATE TABLE t (k int PRIMARY KEY); INSERT INTO t VALUES (1), (1)"),
            db_failure::refused);
  EXPECT_EQ(failure_of("CREATE TABLE u (k int NOT NULL); INSERT INTO u VALUES (NULL)"),
            db_failure::refused);
}

TEST_F(RetryPolicy, BadValueIsRefused) {
  EXPECT_EQ(failure_of("SELECT '1e-46'::real"), db_failure::refused);
  EXPECT_EQ(failure_of("SELECT 'x'::int"), db_failure::refused);
}

TEST_F(RetryPolicy, TerminatedBackendIsTransient) {
  EXPECT_EQ(failure_of("SELECT pg_terminate_backend(pg_backend_pid())"), db_failure::transient);
}

TEST_F(RetryPolicy, DeadlockAndLockTimeoutAreTransient) {
  EXPECT_EQ(failure_of("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40P01'; END $$"),
            db_failure::transient);
  EXPECT_EQ(failure_of("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001'; END $$"),
            db_failure::transient);
  EXPECT_EQ(failure_of("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '55P03'; END $$"),
            db_failure::transient);
}

TEST_F(RetryPolicy, UnreachableDatabaseIsTransient) {
  try {
    pqxx::connection conn("host=/nonexistent port=1 connect_timeout=1");
    FAIL() << "connected to nothing";
  } catch (const std::exception& e) {
    EXPECT_EQ(classify(e), db_failure::transient);
  }
}

TEST_F(RetryPolicy, ErrorsFromOutsideLibpqxxAreTransient) {
  EXPECT_EQ(classify(std::runtime_error("no free pub_id")), db_failure::transient);
}

}  // namespace
}  // namespace locomov::storage
