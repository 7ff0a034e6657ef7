// The database goes away under a running daemon: nothing is acknowledged that
// was not committed, and the devices' connections are closed, not left hanging.

#include <gtest/gtest.h>
#include <unistd.h>

#include "tests/e2e/daemon_fixture.hpp"
#include "tests/e2e/http_get.hpp"
#include "tests/e2e/tls_client.hpp"

namespace locomov::test {
namespace {

using namespace std::chrono_literals;

/// Stops the daemon's embedded cluster behind its back, as a crash or an
/// operator would.
void stop_embedded_cluster(const daemon& d) {
  std::vector<std::string> argv;
  if (geteuid() == 0) {
    argv = {"runuser", "-u", "postgres", "--"};
  }
  for (const char* arg : {"/usr/lib/postgresql/15/bin/pg_ctl", "-D"}) {
    argv.emplace_back(arg);
  }
  argv.push_back((d.state_dir() / "postgresql" / "data").string());
  for (const char* arg : {"stop", "-m", "immediate", "-w"}) {
    argv.emplace_back(arg);
  }
  auto result = run_command(argv);
  ASSERT_EQ(result.status, 0) << result.output;
}

command_result send(const daemon& d, int id) {
  return run_command({locomovctl_binary(), "send", "--port", std::to_string(d.packet_port()),
                      "--ca", d.ca_file().string(), "--timeout", "20", "--json",
                      R"({"Id":)" + std::to_string(id) + R"(,"status":true,"voltage":230})"},
                     {}, 40s);
}

// Without a spool there is nowhere durable to put a packet the database does
// not take: it is not acknowledged.
TEST(DatabaseOutage, WithoutSpoolPacketsAreNotAcknowledgedAndConnectionsClose) {
  daemon d({"--write-retry-for", "2", "--spool-max-mb", "0"});
  // Device 7's actor is loaded (its pub is unknown: quarantine) while the
  // database is up; device 8 first shows up during the outage.
  auto before = send(d, 7);
  ASSERT_NE(before.output.find("Thank you."), std::string::npos) << before.output;
  stop_embedded_cluster(d);

  auto loaded = send(d, 7);
  EXPECT_EQ(loaded.output.find("Thank you."), std::string::npos) << loaded.output;
  EXPECT_NE(loaded.status, 0) << loaded.output;
  auto fresh = send(d, 8);
  EXPECT_EQ(fresh.output.find("Thank you."), std::string::npos) << fresh.output;
  EXPECT_NE(fresh.status, 0) << fresh.output;

  // A confo is decided only when committed: the device is told !OK.
  auto confo = run_command({locomovctl_binary(), "confo", "--port", std::to_string(d.confo_port()),
                            "--ca", d.ca_file().string(), "--timeout", "20", "--device-name", "m",
                            "--ssid", "s", "--hash", "9"},
                           {}, 40s);
  EXPECT_EQ(confo.output, "!OK\n") << confo.output;

  auto log = d.log();
  EXPECT_NE(log.find("batch not stored, packets not acknowledged"), std::string::npos) << log;
  EXPECT_NE(log.find("pub lookups failing, packets go unresolved id=8"), std::string::npos)
      << log;
  EXPECT_NE(log.find("packet could not be stored, closing"), std::string::npos) << log;
  EXPECT_NE(log.find("giving up on confo"), std::string::npos) << log;
  // The cluster it started is already gone; shutting down is still clean.
  EXPECT_EQ(d.stop(), 0) << d.log();
}

// While a packet waits for the database, the silence is locomov's: neither
// the read nor the idle deadline may close the connection, only giving up
// on the batch may (without a spool, which would answer at once).
TEST(DatabaseOutage, NoDeadlineRunsWhileAReplyIsOwed) {
  daemon d({"--write-retry-for", "5", "--read-timeout", "1", "--idle-timeout", "1",
            "--spool-max-mb", "0"});
  auto before = send(d, 7);
  ASSERT_NE(before.output.find("Thank you."), std::string::npos) << before.output;
  stop_embedded_cluster(d);
  tls_client::options o;
  o.port = d.packet_port();
  o.ca = d.ca_file();
  tls_client c(o);

  c.write(R"({"Id":7,"status":true,"voltage":230})");

  EXPECT_FALSE(c.closed_by_server(3s)) << d.log();
  EXPECT_TRUE(c.closed_by_server(10s)) << d.log();
  EXPECT_EQ(d.log_lines_with({"read timed out"}), 0) << d.log();
  EXPECT_EQ(d.log_lines_with({"idle timed out"}), 0) << d.log();
  EXPECT_NE(d.log().find("packet could not be stored, closing"), std::string::npos) << d.log();
}

// /readyz is what a load balancer asks: ready while the database takes
// connections, 503 with the reason once it is gone; /healthz still answers.
TEST(DatabaseOutage, ReadyzTurnsNotReadyWhileTheDatabaseIsDown) {
  daemon d({});
  const auto up = http_get(d.status_port(), "/readyz");
  EXPECT_EQ(up.status, 200);
  EXPECT_EQ(up.body, "ready\n");

  stop_embedded_cluster(d);

  const auto down = http_get(d.status_port(), "/readyz");
  EXPECT_EQ(down.status, 503);
  EXPECT_EQ(down.body, "database not reachable\n");
  EXPECT_EQ(http_get(d.status_port(), "/healthz").status, 200);
  EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
}  // namespace locomov::test
