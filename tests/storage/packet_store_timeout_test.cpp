// A database that stops answering without closing the connection: a write
// gives up within the store's timeout, on a unix socket and over TCP, and
// classify() sends the writer to reconnect.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/transaction>
#include <string>
#include <vector>

#include "storage/packet_store.hpp"
#include "storage/retry_policy.hpp"
#include "storage/schema.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/tcp_proxy.hpp"

namespace locomov::storage {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

constexpr auto timeout = 2s;

/// Resumes a process it stopped, however the test ends.
class stopped_process {
 public:
  explicit stopped_process(pid_t pid) : pid_(pid) { EXPECT_EQ(::kill(pid_, SIGSTOP), 0); }
  ~stopped_process() { resume(); }
  stopped_process(const stopped_process&) = delete;
  stopped_process& operator=(const stopped_process&) = delete;

  void resume() {
    if (pid_ > 0) {
      ::kill(pid_, SIGCONT);
      pid_ = -1;
    }
  }

 private:
  pid_t pid_;
};

class PacketStoreTimeout : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& cluster = test::pg_cluster::shared();
    dbname_ = cluster.fresh_database_name();
    conninfo_ = cluster.conninfo(dbname_);
    check_ = std::make_unique<pqxx::connection>(conninfo_);
    migrate(*check_);
    pub_ = pqxx::nontransaction(*check_)
               .exec1("INSERT INTO pub (hash) VALUES (1) RETURNING pub_id")[0]
               .as<std::int32_t>();
  }

  std::vector<stored_packet> batch(std::int64_t created_at_us = 1'558'137'600'000'000) const {
    protocol::reading r;
    r.id = pub_;
    r.created_at_us = created_at_us;
    r.set(protocol::field::voltage, 230);
    return {stored_packet{r, pub_, false}};
  }

  long packets() {
    return pqxx::nontransaction(*check_).exec1("SELECT count(*) FROM packet")[0].as<long>();
  }

  /// Runs a write expected to give up; checks how and how soon.
  void expect_gives_up(packet_store& store) {
    const auto start = clock::now();
    try {
      store.write(batch());
      ADD_FAILURE() << "the write returned";
    } catch (const pqxx::broken_connection& e) {
      EXPECT_EQ(classify(e), db_failure::transient);
      EXPECT_NE(std::string(e.what()).find("no answer from the database within 2000 ms"),
                std::string::npos)
          << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "unexpected " << e.what();
    }
    const auto took = clock::now() - start;
    EXPECT_GE(took, timeout);
    EXPECT_LT(took, timeout + 1s);
    EXPECT_FALSE(store.connected());
  }

  std::string dbname_;
  std::string conninfo_;
  std::unique_ptr<pqxx::connection> check_;
  std::int32_t pub_ = 0;
};

TEST_F(PacketStoreTimeout, WriteBlockedByATableLockGivesUp) {
  packet_store store(conninfo_, timeout);
  pqxx::connection locker(conninfo_);
  pqxx::work lock(locker);
  lock.exec0("LOCK TABLE packet IN ACCESS EXCLUSIVE MODE");

  expect_gives_up(store);

  lock.commit();
  EXPECT_EQ(packets(), 0);
  packet_store next(conninfo_, timeout);
  EXPECT_EQ(next.write(batch()).packets, 1u);
}

TEST_F(PacketStoreTimeout, WriteToAStoppedBackendGivesUpAndANewStoreSucceeds) {
  packet_store store(conninfo_, timeout);
  stopped_process backend(store.backend_pid());

  expect_gives_up(store);

  backend.resume();
  packet_store next(conninfo_, timeout);
  EXPECT_EQ(next.write(batch()).packets, 1u);
  EXPECT_EQ(packets(), 1);
}

TEST_F(PacketStoreTimeout, FindPubOnAStoppedBackendGivesUp) {
  packet_store store(conninfo_, timeout);
  stopped_process backend(store.backend_pid());

  const auto start = clock::now();
  EXPECT_THROW(store.find_pub(pub_key::pub_id, pub_), pqxx::broken_connection);
  EXPECT_LT(clock::now() - start, timeout + 1s);
}

TEST_F(PacketStoreTimeout, WriteOverABlackHoledTcpConnectionGivesUp) {
  auto& cluster = test::pg_cluster::shared();
  test::tcp_proxy proxy(test::pg_socket(cluster.dir() / "socket", cluster.port()));
  const std::string tcp_conninfo = "host=127.0.0.1 port=" + std::to_string(proxy.port()) +
                                   " user=locomov dbname=" + dbname_;
  packet_store store(tcp_conninfo, timeout);
  EXPECT_EQ(store.write(batch()).packets, 1u);
  proxy.set_black_hole(true);

  const auto start = clock::now();
  EXPECT_THROW(store.write(batch(1'558'137'600'000'001)), pqxx::broken_connection);
  EXPECT_LT(clock::now() - start, timeout + 1s);
  EXPECT_EQ(packets(), 1);
}

TEST_F(PacketStoreTimeout, ConnectingToAServerThatNeverAnswersGivesUp) {
  auto& cluster = test::pg_cluster::shared();
  test::tcp_proxy proxy(test::pg_socket(cluster.dir() / "socket", cluster.port()));
  proxy.set_black_hole(true);

  const auto start = clock::now();
  EXPECT_THROW(packet_store("host=127.0.0.1 port=" + std::to_string(proxy.port()) +
                                " user=locomov dbname=" + dbname_,
                            timeout),
               pqxx::broken_connection);
  EXPECT_LT(clock::now() - start, timeout + 1s);
}

}  // namespace
}  // namespace locomov::storage
