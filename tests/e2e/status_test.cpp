// The operators' status endpoint against a real daemon: /metrics counts
// exactly the traffic sent and passes promtool, /healthz and /readyz answer.

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <pqxx/pqxx>
#include <string>
#include <thread>

#include "tests/e2e/daemon_fixture.hpp"
#include "tests/e2e/http_get.hpp"
#include "tests/e2e/tls_client.hpp"
#include "tests/support/pg_cluster.hpp"

namespace locomov::test {
namespace {

using namespace std::chrono_literals;

std::string packet(int n) {
  return R"({"Id":1,"timestamp":)" + std::to_string(1'600'000'000 + n) +
         R"(,"status":true,"voltage":230.5})" + "\n";
}

class StatusEndpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    conninfo_ = pg_cluster::shared().fresh_database();
    daemon_ = std::make_unique<daemon>(std::vector<std::string>{"--db", conninfo_});
    pqxx::connection conn{conninfo_};
    pqxx::work tx{conn};
    tx.exec0("INSERT INTO pub (pub_id, hash) VALUES (1, 1001)");
    tx.commit();
  }

  void TearDown() override { EXPECT_EQ(daemon_->stop(), 0) << daemon_->log(); }

  tls_client device() {
    tls_client::options o;
    o.port = daemon_->packet_port();
    o.ca = daemon_->ca_file();
    return tls_client(o);
  }

  std::string conninfo_;
  std::unique_ptr<daemon> daemon_;
};

TEST_F(StatusEndpoint, CountersMoveByExactlyTheTrafficSent) {
  const auto before = scrape_metrics(daemon_->status_port());

  // Four TLS connections: five packets on one, one on each of two others,
  // one packet that is not a valid reading; then plaintext on the TLS port.
  {
    auto c = device();
    std::string five;
    for (int n = 0; n < 5; ++n) {
      five += packet(n);
    }
    c.write(five);
    for (int n = 0; n < 5; ++n) {
      ASSERT_EQ(c.read_line(20s), "Thank you.\n");
    }
  }
  for (int n = 5; n < 7; ++n) {
    auto c = device();
    c.write(packet(n));
    ASSERT_EQ(c.read_line(20s), "Thank you.\n");
  }
  {
    auto c = device();
    c.write(R"({"Id":0})" "\n");
    ASSERT_EQ(c.read_line(20s), "!OK id is not a positive integer\n");
  }

  {
    tls_client::options plain;  // no CA: plaintext on the TLS port
    plain.port = daemon_->packet_port();
    tls_client c(plain);
    c.write(packet(7));
    ASSERT_TRUE(c.closed_by_server(10s));
  }

  const auto after = scrape_metrics(daemon_->status_port());
  EXPECT_EQ(moved(before, after, R"(locomov_writer_packets_total{outcome="committed"})"), 7);
  EXPECT_EQ(moved(before, after, R"(locomov_connections_accepted_total{listener="packet"})"), 5);
  EXPECT_EQ(moved(before, after, R"(locomov_frames_accepted_total{listener="packet"})"), 7);
  EXPECT_EQ(moved(before, after, "locomov_packets_quarantined_total"), 0);
  EXPECT_EQ(moved(before, after, R"(locomov_writer_packets_total{outcome="duplicate"})"), 0);
  EXPECT_EQ(moved(before, after, R"(locomov_tls_handshakes_total{listener="packet",outcome="full"})"),
            4);
  EXPECT_EQ(moved(before, after,
                  R"(locomov_frames_refused_total{listener="packet",reason="invalid"})"),
            1);
  EXPECT_EQ(moved(before, after,
                  R"(locomov_frames_refused_total{listener="packet",reason="undecodable"})"),
            0);
  EXPECT_EQ(moved(before, after,
                  R"(locomov_tls_handshakes_total{listener="packet",outcome="not_tls"})"),
            1);
  EXPECT_GT(after.at("process_resident_memory_bytes"), 0);
  EXPECT_GT(after.at("process_open_fds"), 0);
}

TEST_F(StatusEndpoint, ActorAndWriterFiguresFollowTheTraffic) {
  const auto before = scrape_metrics(daemon_->status_port());

  for (int conn = 0; conn < 2; ++conn) {
    auto c = device();
    for (int n = 0; n < 3; ++n) {
      c.write(packet(conn * 3 + n));
      ASSERT_EQ(c.read_line(20s), "Thank you.\n");
    }
  }
  {
    auto c = device();
    c.write(R"({"Id":99,"timestamp":1600000100,"status":true})" "\n");  // no such pub
    ASSERT_EQ(c.read_line(20s), "Thank you.\n");
  }
  // The connection actors end once their sockets are closed.
  auto after = scrape_metrics(daemon_->status_port());
  for (int i = 0; i < 100 && after.at(R"(locomov_actors_alive{kind="connection"})") != 0; ++i) {
    std::this_thread::sleep_for(50ms);
    after = scrape_metrics(daemon_->status_port());
  }

  EXPECT_EQ(after.at(R"(locomov_actors_alive{kind="connection"})"), 0);
  EXPECT_EQ(after.at(R"(locomov_actors_alive{kind="listener"})"), 3);  // packet, plain, confo
  EXPECT_EQ(after.at(R"(locomov_actors_alive{kind="writer"})"), 2);
  EXPECT_EQ(after.at(R"(locomov_actors_alive{kind="pub"})"), 2);  // device ids 1 and 99
  // Every packet is a message to its pub actor and to a writer.
  EXPECT_GE(moved(before, after, R"(locomov_actor_messages_total{kind="pub"})"), 7);
  EXPECT_GE(moved(before, after, R"(locomov_actor_message_seconds_count{kind="writer"})"), 7);
  EXPECT_EQ(moved(before, after, R"(locomov_actor_messages_total{kind="writer"})"),
            moved(before, after, R"(locomov_actor_message_seconds_count{kind="writer"})"));
  // Each packet was committed in some batch, and each batch's commit timed.
  EXPECT_EQ(moved(before, after, "locomov_writer_batch_rows_sum"), 7);
  EXPECT_EQ(moved(before, after, "locomov_packets_quarantined_total"), 1);
  const auto batches = moved(before, after, "locomov_writer_batch_rows_count");
  EXPECT_GE(batches, 1);
  EXPECT_LE(batches, 7);
  EXPECT_EQ(moved(before, after, "locomov_writer_commit_seconds_count"), batches);
  EXPECT_EQ(after.at(R"(locomov_writer_commit_seconds_bucket{le="+Inf"})"),
            after.at("locomov_writer_commit_seconds_count"));

  const auto stats = http_get(daemon_->status_port(), "/stats");
  ASSERT_EQ(stats.status, 200);
  EXPECT_NE(stats.body.find(R"("name": "locomov_writer_commit_seconds")"), std::string::npos);
  EXPECT_NE(stats.body.find(R"("le": "+Inf")"), std::string::npos) << stats.body;
}

TEST_F(StatusEndpoint, MetricsPassPromtool) {
  auto c = device();
  c.write(packet(0));
  ASSERT_EQ(c.read_line(20s), "Thank you.\n");

  const auto r = http_get(daemon_->status_port(), "/metrics");
  ASSERT_EQ(r.status, 200);
  const auto file = daemon_->state_dir() / "scrape.txt";
  std::ofstream(file) << r.body;
  // scripts/test installs promtool (Debian's prometheus package).
  const auto check = run_command({"sh", "-c", "promtool check metrics < " + file.string()});
  EXPECT_EQ(check.status, 0) << check.output << "\n" << r.body;
}

TEST_F(StatusEndpoint, HealthAndReadinessAnswer) {
  const auto health = http_get(daemon_->status_port(), "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");
  const auto ready = http_get(daemon_->status_port(), "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "ready\n");
  EXPECT_EQ(http_get(daemon_->status_port(), "/nowhere").status, 404);

  const auto stats = http_get(daemon_->status_port(), "/stats");
  EXPECT_EQ(stats.status, 200);
  EXPECT_NE(stats.body.find(R"("name": "locomov_connections_open")"), std::string::npos)
      << stats.body;
}

}  // namespace
}  // namespace locomov::test
