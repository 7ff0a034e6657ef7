// Peers that stall, dribble, flood or never speak TLS, against the real
// daemon: every case of the shared stalled-connections.md. Deadlines are
// short so that the binary stays quick: H (handshake) 2 s, R (read) 2 s.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pqxx/pqxx>
#include <regex>
#include <thread>

#include "tests/e2e/daemon_fixture.hpp"
#include "tests/e2e/raw_socket.hpp"
#include "tests/e2e/tls_client.hpp"
#include "tests/support/pg_cluster.hpp"

namespace locomov::test {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

constexpr auto handshake_timeout = 2s;
constexpr auto read_timeout = 2s;
constexpr auto keepalive_idle = 30s;

// A valid TLS 1.2 ClientHello (H2 of the shared tls-clients.md).
constexpr std::string_view client_hello =
    "160301003d0100003903030000000000000000000000000000000000000000000000000000000000000000"
    "000006c02fc02700350100000a000d0006000404010201";

std::chrono::milliseconds since(clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t);
}

class StalledPeers : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    conninfo_ = new std::string(pg_cluster::shared().fresh_database());
    daemon_ = new daemon({"--db", *conninfo_, "--handshake-timeout",
                          std::to_string(handshake_timeout.count()), "--read-timeout",
                          std::to_string(read_timeout.count()), "--keepalive-idle",
                          std::to_string(keepalive_idle.count())});
    pqxx::connection conn{*conninfo_};
    pqxx::work tx{conn};
    tx.exec0("INSERT INTO pub (pub_id, hash) VALUES (1, 1001)");
    tx.commit();
  }

  static void TearDownTestSuite() {
    EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
    delete daemon_;
    delete conninfo_;
  }

  static tls_client client() {
    tls_client::options o;
    o.port = daemon_->packet_port();
    o.ca = daemon_->ca_file();
    return tls_client(o);
  }

  static long count(const std::string& sql) {
    pqxx::connection conn{*conninfo_};
    pqxx::work tx{conn};
    return tx.exec1(sql)[0].as<long>();
  }

  static std::string* conninfo_;
  static daemon* daemon_;
};

std::string* StalledPeers::conninfo_ = nullptr;
daemon* StalledPeers::daemon_ = nullptr;

// S1: scanners open the port and send nothing.
TEST_F(StalledPeers, SilentTcpIsClosedAtTheHandshakeDeadline) {
  const auto accepted = clock::now();
  raw_socket s(daemon_->packet_port());

  ASSERT_TRUE(s.closed_by_server(handshake_timeout + 3s));

  EXPECT_GE(since(accepted), handshake_timeout - 300ms);
  EXPECT_LE(since(accepted), handshake_timeout + 2s);
}

// S2: the handshake deadline is total, not renewed by each byte.
TEST_F(StalledPeers, DribbledClientHelloIsClosedAtTheHandshakeDeadline) {
  const auto accepted = clock::now();
  raw_socket s(daemon_->packet_port());
  const auto hello = from_hex(client_hello);

  bool closed = false;
  for (std::size_t i = 0; i < hello.size() && !closed && since(accepted) < 10s; ++i) {
    s.send(hello.substr(i, 1));
    closed = s.closed_by_server(500ms);
  }

  ASSERT_TRUE(closed);
  EXPECT_GE(since(accepted), handshake_timeout - 300ms);
  EXPECT_LE(since(accepted), handshake_timeout + 2s);
}

// S3
TEST_F(StalledPeers, SilentTlsSessionIsClosedAtTheReadDeadline) {
  auto c = client();
  const auto established = clock::now();

  ASSERT_TRUE(c.closed_by_server(read_timeout + 3s));

  EXPECT_GE(since(established), read_timeout - 300ms);
  EXPECT_LE(since(established), read_timeout + 2s);
}

// S4
TEST_F(StalledPeers, HalfAPacketIsClosedAtTheReadDeadlineAndNotStored) {
  auto c = client();
  c.write(R"({"Id":1,)");
  const auto stalled = clock::now();

  ASSERT_TRUE(c.closed_by_server(read_timeout + 3s));

  EXPECT_GE(since(stalled), read_timeout - 300ms);
  EXPECT_LE(since(stalled), read_timeout + 2s);
  EXPECT_EQ(count("SELECT count(*) FROM packet WHERE pub_id = 1"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM quarantine WHERE pub_id = 1"), 0);
}

// S5
TEST_F(StalledPeers, PlaintextOnTheTlsPortIsClosedWithOneLogLine) {
  raw_socket s(daemon_->packet_port());
  const std::string peer = "peer=127.0.0.1:" + std::to_string(s.local_port()) + " ";
  s.send(R"({"Id":7,"timestamp":1558137600,"status":true,"voltage":231.5,"freq":50.0})");

  ASSERT_TRUE(s.closed_by_server(2s));

  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(daemon_->log_lines_with({"peer did not speak TLS", peer}), 1) << daemon_->log();
}

TEST_F(StalledPeers, AcceptedSocketsHaveTheConfiguredKeepalive) {
  auto c = client();

  // The daemon's end of the connection is the one whose source port is the
  // packet port; ss shows its keepalive timer counting down from the idle
  // time, once no other timer runs (a retransmission timer shows while the
  // client delays its ACK of the last bytes sent).
  const std::regex keepalive_timer(R"(timer:\(keepalive,(\d+)sec)");
  command_result ss;
  std::smatch m;
  for (int attempt = 0; attempt < 20; ++attempt) {
    ss = run_command({"ss", "-tnoH", "state", "established",
                      "( sport = :" + std::to_string(daemon_->packet_port()) + " )"});
    ASSERT_EQ(ss.status, 0) << ss.output;
    if (std::regex_search(ss.output, m, keepalive_timer)) {
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_FALSE(m.empty()) << ss.output;
  const int left = std::stoi(m[1]);
  EXPECT_LE(left, keepalive_idle.count());
  EXPECT_GT(left, keepalive_idle.count() - 10);
}

TEST(ListenerStart, PortInUseStopsTheDaemonWithTheReason) {
  const int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(taken, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(taken, 1), 0);
  socklen_t len = sizeof(addr);
  getsockname(taken, reinterpret_cast<sockaddr*>(&addr), &len);
  const auto port = std::to_string(ntohs(addr.sin_port));
  char dir[] = "/tmp/locomov-e2e-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);

  auto result = run_command({locomov_binary(), "--state-dir", dir, "--db",
                             pg_cluster::shared().fresh_database(), "--packet-listen",
                             "127.0.0.1", "--packet-port", port, "--confo-port", "0"});

  ::close(taken);
  std::filesystem::remove_all(dir);
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("cannot listen on 127.0.0.1:" + port +
                               " for the packet port: Address already in use"),
            std::string::npos)
      << result.output;
}

}  // namespace
}  // namespace locomov::test
