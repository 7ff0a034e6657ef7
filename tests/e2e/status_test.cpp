// The operators' status endpoint against a real daemon: /metrics counts
// exactly the traffic sent and passes promtool, /healthz and /readyz answer,
// and `locomovctl stats` shows what /stats holds.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <thread>

#include "tests/e2e/daemon_fixture.hpp"
#include "tests/e2e/http_get.hpp"
#include "tests/e2e/raw_socket.hpp"
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

  std::string url() const { return "http://127.0.0.1:" + std::to_string(daemon_->status_port()); }

  std::string conninfo_;
  std::unique_ptr<daemon> daemon_;
};

/// The series of a /stats document by name and labels, each whole (value,
/// or count, sum and buckets), less those that move by themselves.
std::map<std::string, nlohmann::json> stats_series(const std::string& body) {
  std::map<std::string, nlohmann::json> series;
  const auto doc = nlohmann::json::parse(body);
  for (const auto& s : doc.at("metrics")) {
    const auto name = s.at("name").get<std::string>();
    if (name.rfind("process_", 0) == 0 || name == "locomov_uptime_seconds") {
      continue;
    }
    series[name + s.at("labels").dump()] = s;
  }
  return series;
}

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
  EXPECT_EQ(
      moved(before, after, R"(locomov_tls_handshakes_total{listener="packet",outcome="not_tls"})"),
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

// Probes must not wait behind a client that holds its connection open,
// silent or kept alive after a scrape.
TEST_F(StatusEndpoint, ProbesAreAnsweredWhileOtherClientsHoldConnections) {
  std::vector<raw_socket> silent;
  for (int i = 0; i < 8; ++i) {
    silent.emplace_back(daemon_->status_port());
  }
  raw_socket scraper(daemon_->status_port());
  ASSERT_TRUE(scraper.send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"));
  EXPECT_NE(scraper.receive(65536, 2s).find("200 OK"), std::string::npos);

  for (const char* path : {"/healthz", "/readyz"}) {
    const auto asked = std::chrono::steady_clock::now();
    EXPECT_EQ(http_get(daemon_->status_port(), path).status, 200) << path;
    EXPECT_LT(std::chrono::steady_clock::now() - asked, 1s) << path;
  }
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

TEST_F(StatusEndpoint, CtlStatsJsonGivesTheNumbersOfTheEndpoint) {
  {
    auto c = device();
    c.write(packet(0) + packet(1));
    ASSERT_EQ(c.read_line(20s), "Thank you.\n");
    ASSERT_EQ(c.read_line(20s), "Thank you.\n");
  }

  // Series equal in the GETs around locomovctl's did not move meanwhile, so
  // locomovctl must have printed exactly them.
  const auto before = http_get(daemon_->status_port(), "/stats");
  const auto ctl = run_command({locomovctl_binary(), "stats", "--json", "--url", url()});
  const auto after = http_get(daemon_->status_port(), "/stats");
  ASSERT_EQ(ctl.status, 0) << ctl.output;
  ASSERT_EQ(before.status, 200);
  ASSERT_EQ(after.status, 200);

  const auto printed = stats_series(ctl.output);
  const auto still = stats_series(after.body);
  int compared = 0;
  for (const auto& [key, series] : stats_series(before.body)) {
    const auto later = still.find(key);
    if (later == still.end() || later->second != series) {
      continue;
    }
    ++compared;
    const auto shown = printed.find(key);
    ASSERT_NE(shown, printed.end()) << key << " missing from\n" << ctl.output;
    EXPECT_EQ(shown->second, series) << key;
  }
  EXPECT_GT(compared, 10);
  const auto committed = printed.find(R"(locomov_writer_packets_total{"outcome":"committed"})");
  ASSERT_NE(committed, printed.end()) << ctl.output;
  EXPECT_EQ(committed->second.at("value"), 2);
  const auto accepted = printed.find(R"(locomov_connections_accepted_total{"listener":"packet"})");
  ASSERT_NE(accepted, printed.end()) << ctl.output;
  EXPECT_EQ(accepted->second.at("value"), 1);
}

TEST_F(StatusEndpoint, CtlStatsLiveWithoutATtyPrintsOneBlockPerRefresh) {
  const auto ctl = run_command(
      {locomovctl_binary(), "stats", "--count", "2", "--interval", "200ms", "--url", url()});
  ASSERT_EQ(ctl.status, 0) << ctl.output;

  const auto gap = ctl.output.find("\n\n");
  ASSERT_NE(gap, std::string::npos) << ctl.output;
  const auto first = ctl.output.substr(0, gap + 1);
  const auto second = ctl.output.substr(gap + 2);
  EXPECT_EQ(second.find("\n\n"), std::string::npos) << ctl.output;
  EXPECT_EQ(ctl.output.find("\x1b"), std::string::npos) << "no terminal codes into a file";

  const auto title = "locomov at " + url() + "/stats, ";
  EXPECT_EQ(first.rfind(title + "first poll", 0), 0u) << first;
  EXPECT_EQ(second.rfind(title + "rates over the last", 0), 0u) << second;
  for (const auto& block : {first, second}) {
    EXPECT_NE(block.find("\nConnections  open "), std::string::npos) << block;
    EXPECT_NE(block.find("\n  packet "), std::string::npos) << block;
  }
}

TEST_F(StatusEndpoint, CtlStatsLiveOnATtyRedrawsTheScreen) {
  // script(1) (util-linux, in every Debian) gives locomovctl a terminal.
  const auto command = locomovctl_binary() + " stats --count 2 --interval 200ms --url " + url();
  const auto ctl = run_command({"script", "-q", "-e", "-c", command, "/dev/null"});
  ASSERT_EQ(ctl.status, 0) << ctl.output;

  const std::string clear = "\x1b[H\x1b[2J";
  const auto first = ctl.output.find(clear);
  ASSERT_EQ(first, 0u) << ctl.output;
  const auto second = ctl.output.find(clear, first + clear.size());
  ASSERT_NE(second, std::string::npos) << ctl.output;
  EXPECT_EQ(ctl.output.find(clear, second + clear.size()), std::string::npos) << ctl.output;
  EXPECT_NE(ctl.output.find("rates over the last", second), std::string::npos) << ctl.output;
  EXPECT_NE(ctl.output.find("Connections  open ", second), std::string::npos) << ctl.output;
}

TEST_F(StatusEndpoint, CtlStatsLiveEndsAtCtrlCWithStatusZero) {
  process ctl({locomovctl_binary(), "stats", "--interval", "200ms", "--url", url()},
              daemon_->state_dir() / "locomovctl-stats.log");
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (ctl.output().find("rates over the last") == std::string::npos &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_NE(ctl.output().find("rates over the last"), std::string::npos) << ctl.output();

  ctl.signal(SIGINT);
  EXPECT_EQ(ctl.wait(5s), 0) << ctl.output();
}

TEST(CtlStats, UnreachableEndpointFailsNamingTheUrlAndWhy) {
  // Bound but not listening: a connection to it is refused at once.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const auto url = "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port));

  const auto json = run_command({locomovctl_binary(), "stats", "--json", "--url", url});
  const auto live = run_command({locomovctl_binary(), "stats", "--count", "1", "--url", url});
  close(fd);

  for (const auto& r : {json, live}) {
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find(url + "/stats: cannot connect"), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace locomov::test
