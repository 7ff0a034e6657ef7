// The test harness's TCP proxy in front of a test cluster: it forwards, and
// as a black hole it swallows a query without an answer or a reset.

#include "tests/support/tcp_proxy.hpp"

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <pqxx/pqxx>

#include "tests/support/pg_cluster.hpp"

namespace locomov::test {
namespace {

TEST(TcpProxy, ForwardsToTheClusterAndBlackHolesOnRequest) {
  auto& pg = pg_cluster::shared();
  tcp_proxy proxy(pg_socket(pg.dir() / "socket", pg.port()));
  const std::string via_proxy =
      "host=127.0.0.1 port=" + std::to_string(proxy.port()) + " user=locomov dbname=locomov";
  pqxx::connection conn(via_proxy);
  {
    pqxx::nontransaction tx(conn);
    EXPECT_EQ(tx.exec1("SELECT 41 + 1")[0].as<int>(), 42);
  }

  proxy.set_black_hole(true);
  // A simple-query message for "SELECT 1" leaves; no answer and no reset come back.
  const char query[] = "Q\0\0\0\15SELECT 1";
  ASSERT_EQ(::send(conn.sock(), query, sizeof query, MSG_NOSIGNAL),
            static_cast<ssize_t>(sizeof query));
  pollfd pfd{conn.sock(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 1000), 0);

  // A new connection is accepted and then hears nothing either.
  EXPECT_THROW(pqxx::connection(via_proxy + " connect_timeout=2"), pqxx::broken_connection);
}

}  // namespace
}  // namespace locomov::test
