// Peers that stall, dribble, flood or never speak TLS, against the real
// daemon: every case of the shared stalled-connections.md (S1-S5 in
// StalledPeers, S6 in DescriptorFlood), the connection limits, keepalive,
// and start-up with a port in use. Deadlines are short so that the binary
// stays quick.

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
constexpr auto idle_timeout = 4s;
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
                          std::to_string(read_timeout.count()), "--idle-timeout",
                          std::to_string(idle_timeout.count()), "--keepalive-idle",
                          std::to_string(keepalive_idle.count())});
    pqxx::connection conn{*conninfo_};
    pqxx::work tx{conn};
    tx.exec0("INSERT INTO pub (pub_id, hash) VALUES (1, 1001)");
    tx.commit();
  }

  static void TearDownTestSuite() {
    // A daemon that failed to start has already failed the suite.
    if (daemon_ != nullptr) {
      EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
    }
    delete daemon_;
    delete conninfo_;
  }

  static tls_client client() {
    tls_client::options o;
    o.port = daemon_->packet_port();
    o.ca = daemon_->ca_file();
    return tls_client(o);
  }

  static long count(const std::string& sql) { return query_number(*conninfo_, sql); }

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

TEST_F(StalledPeers, AnsweredConnectionIsClosedAtTheIdleDeadline) {
  auto c = client();
  c.write(R"({"Id":2,"status":true,"voltage":230})");
  ASSERT_EQ(c.read_line(), "Thank you.\n");
  const auto answered = clock::now();

  EXPECT_FALSE(c.closed_by_server(read_timeout + 1s)) << "closed at the read deadline";
  ASSERT_TRUE(c.closed_by_server(idle_timeout + 2s - since(answered)));

  EXPECT_GE(since(answered), idle_timeout - 300ms);
  EXPECT_GE(daemon_->log_lines_with({"idle timed out", "limit=4000ms"}), 1) << daemon_->log();
}

TEST_F(StalledPeers, HalfAPacketAfterAnAnsweredOneIsClosedAtTheReadDeadline) {
  auto c = client();
  c.write(R"({"Id":2,"status":true,"voltage":230})");
  ASSERT_EQ(c.read_line(), "Thank you.\n");
  c.write(R"({"Id":2,)");
  const auto stalled = clock::now();

  ASSERT_TRUE(c.closed_by_server(read_timeout + 3s));

  EXPECT_GE(since(stalled), read_timeout - 300ms);
  EXPECT_LE(since(stalled), read_timeout + 2s);
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

/// Waits until the daemon holds no more than `baseline` + `slack`
/// descriptors; false if that takes longer than `limit`.
bool descriptors_settle(daemon& d, std::size_t baseline, std::size_t slack,
                        std::chrono::milliseconds limit) {
  const auto until = clock::now() + limit;
  while (d.proc().open_descriptors() > baseline + slack) {
    if (clock::now() >= until) {
      return false;
    }
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

const std::string valid_packet =
    R"({"Id":7,"timestamp":1558137600,"status":true,"voltage":231.5,"freq":50.0})";

/// The daemon's descriptor count at rest, once packets have been stored
/// (writers open their database connections on first use; a device's pub
/// actor hands its packets to the writers in turn).
std::size_t idle_descriptors(daemon& d) {
  tls_client::options o;
  o.port = d.packet_port();
  o.ca = d.ca_file();
  {
    tls_client warm_up(o);
    for (int i = 0; i < 4; ++i) {
      warm_up.write(valid_packet);
      EXPECT_EQ(warm_up.read_line(), "Thank you.\n");
    }
  }
  std::size_t seen = d.proc().open_descriptors();
  for (int still = 0; still < 5;) {
    std::this_thread::sleep_for(100ms);
    const auto now = d.proc().open_descriptors();
    still = now == seen ? still + 1 : 0;
    seen = now;
  }
  return seen;
}

/// Six places in all, three per address. Tests stand for several peers by
/// connecting from several loopback addresses (127.0.0.0/8).
class ConnectionLimits : public ::testing::Test {
 protected:
  static constexpr int max_connections = 6;
  static constexpr int per_address = 3;

  static void SetUpTestSuite() {
    daemon_ = new daemon({"--db", pg_cluster::shared().fresh_database(), "--max-connections",
                          std::to_string(max_connections), "--max-connections-per-address",
                          std::to_string(per_address), "--handshake-timeout", "10",
                          "--read-timeout", "10"});
    baseline_ = idle_descriptors(*daemon_);
  }

  static void TearDownTestSuite() {
    // A daemon that failed to start has already failed the suite.
    if (daemon_ != nullptr) {
      EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
    }
    delete daemon_;
  }

  // Every test starts with all places free: the daemon has seen the
  // previous test's clients go.
  void SetUp() override {
    ASSERT_TRUE(descriptors_settle(*daemon_, baseline_, 0, 5s))
        << daemon_->proc().open_descriptors() << " descriptors, idle " << baseline_;
  }

  static std::string peer_of(const raw_socket& s, const std::string& address) {
    return "peer=" + address + ":" + std::to_string(s.local_port()) + " ";
  }

  /// A TLS client from `source` that has had a packet answered, so its
  /// handshake is known to be over on the daemon's side too.
  static std::unique_ptr<tls_client> established_client(const std::string& source) {
    tls_client::options o;
    o.port = daemon_->packet_port();
    o.ca = daemon_->ca_file();
    o.source = source;
    auto c = std::make_unique<tls_client>(o);
    c->write(valid_packet);
    EXPECT_EQ(c->read_line(), "Thank you.\n");
    return c;
  }

  static daemon* daemon_;
  static std::size_t baseline_;
};

daemon* ConnectionLimits::daemon_ = nullptr;
std::size_t ConnectionLimits::baseline_ = 0;

TEST_F(ConnectionLimits, AddressOverItsShareIsRefusedAndLogged) {
  std::vector<raw_socket> held;
  for (int i = 0; i < per_address; ++i) {
    held.emplace_back(daemon_->packet_port(), "127.0.0.2");
  }
  raw_socket over(daemon_->packet_port(), "127.0.0.2");
  raw_socket other_address(daemon_->packet_port(), "127.0.0.3");

  EXPECT_TRUE(over.closed_by_server(1s));
  EXPECT_FALSE(other_address.closed_by_server(300ms));
  for (auto& s : held) {
    EXPECT_FALSE(s.closed_by_server(10ms));
  }
  EXPECT_EQ(daemon_->log_lines_with(
                {"connection refused", "reason=per_address_limit", peer_of(over, "127.0.0.2")}),
            1)
      << daemon_->log();
}

TEST_F(ConnectionLimits, FullServerClosesTheOldestHandshakeToMakeRoom) {
  std::vector<raw_socket> stalled;
  for (int i = 1; i <= max_connections; ++i) {
    stalled.emplace_back(daemon_->packet_port(), "127.0.1." + std::to_string(i));
    std::this_thread::sleep_for(20ms);  // accepted in this order
  }

  auto device = established_client("127.0.0.1");

  EXPECT_TRUE(stalled.front().closed_by_server(1s));
  for (std::size_t i = 1; i < stalled.size(); ++i) {
    EXPECT_FALSE(stalled[i].closed_by_server(10ms)) << "stalled connection " << i;
  }
  EXPECT_EQ(daemon_->log_lines_with({"connection closed to make room", "reason=handshake_pending",
                                     peer_of(stalled.front(), "127.0.1.1")}),
            1)
      << daemon_->log();
}

// A burst that reaches the daemon all at once: the accept thread hands the
// broker every connection in one go, so the ones evicted to make room were
// added moments before, in the same turn of CAF's multiplexer. Their
// descriptors must come back all the same.
TEST_F(ConnectionLimits, HandshakesEvictedInOneBurstGiveBackTheirDescriptors) {
  constexpr int burst = max_connections + 4;
  std::vector<raw_socket> stalled;
  daemon_->proc().signal(SIGSTOP);
  for (int i = 1; i <= burst; ++i) {
    // The kernel completes these handshakes while the daemon is stopped.
    stalled.emplace_back(daemon_->packet_port(), "127.0.3." + std::to_string(i));
  }
  daemon_->proc().signal(SIGCONT);

  for (int i = 0; i < burst - max_connections; ++i) {
    EXPECT_TRUE(stalled[i].closed_by_server(2s)) << "evicted connection " << i;
  }
  EXPECT_TRUE(descriptors_settle(*daemon_, baseline_ + max_connections, 0, 2s))
      << daemon_->proc().open_descriptors() << " descriptors, idle " << baseline_ << " + "
      << max_connections << " handshakes";
}

TEST_F(ConnectionLimits, ServerFullOfDevicesRefusesTheNextConnection) {
  std::vector<std::unique_ptr<tls_client>> devices;
  for (int i = 1; i <= max_connections; ++i) {
    devices.push_back(established_client("127.0.2." + std::to_string(i)));
  }

  raw_socket late(daemon_->packet_port(), "127.0.2.100");

  EXPECT_TRUE(late.closed_by_server(1s));
  EXPECT_EQ(daemon_->log_lines_with(
                {"connection refused", "reason=overall_limit", peer_of(late, "127.0.2.100")}),
            1)
      << daemon_->log();
  devices.front()->write(valid_packet);
  EXPECT_EQ(devices.front()->read_line(), "Thank you.\n");
}

// S6: a flood of silent connections against a daemon whose descriptor limit
// is 1024, from one address, so the per-address limit is off. The flood's
// local ports lie below the kernel's ephemeral range, so that it cannot take
// a port another daemon was just handed by free_port() and is about to
// listen on (in this binary, or in a suite running beside it).
TEST(DescriptorFlood, RealDeviceIsServedAndDescriptorsComeBack) {
  constexpr std::size_t flood = 2000;
  constexpr auto h = 2s;
  constexpr auto r = 3s;
  daemon d({"--db", pg_cluster::shared().fresh_database(), "--handshake-timeout",
            std::to_string(h.count()), "--read-timeout", std::to_string(r.count()),
            "--max-connections-per-address", "0"},
           1024);
  const auto baseline = idle_descriptors(d);

  std::vector<raw_socket> scanners;
  scanners.reserve(flood);
  for (int source_port = 20000; scanners.size() < flood; ++source_port) {
    try {
      scanners.emplace_back(d.packet_port(), "127.0.0.1", source_port);
    } catch (const std::runtime_error&) {
      ASSERT_LT(source_port, 30000) << "no free local ports for the flood";
    }
  }
  const auto flood_over = clock::now();

  tls_client::options o;
  o.port = d.packet_port();
  o.ca = d.ca_file();
  const auto connect = clock::now();
  tls_client device(o);
  device.write(valid_packet);
  EXPECT_EQ(device.read_line(h + 5s), "Thank you.\n");
  EXPECT_LE(since(connect), h + 5s);

  // The scanners keep their sockets open; the daemon must let go of its ends.
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(h + r) - since(flood_over);
  EXPECT_TRUE(descriptors_settle(d, baseline, 5, left))
      << "descriptors: " << d.proc().open_descriptors() << " idle: " << baseline;
  const auto log = d.log();
  EXPECT_TRUE(log.find("errno=EMFILE") != std::string::npos ||
              log.find("connection closed to make room") != std::string::npos);
  EXPECT_NE(log.find("connection limits max_connections=960 source=open_files_limit"),
            std::string::npos);
  EXPECT_TRUE(d.proc().running());
  scanners.clear();
  // The flood's lines fill the start of the log; why it failed is at the end.
  const auto status = d.stop();
  const auto full = d.log();
  EXPECT_EQ(status, 0) << full.substr(full.size() - std::min<std::size_t>(full.size(), 20000));
}

TEST(ListenerStop, ShutdownStopsAcceptingBeforeTheActorsStop) {
  daemon d({"--db", pg_cluster::shared().fresh_database()});

  ASSERT_EQ(d.stop(), 0) << d.log();

  const auto log = d.log();
  const auto stopped_accepting = log.find("stopped accepting listener=packet");
  ASSERT_NE(stopped_accepting, std::string::npos) << log;
  EXPECT_LT(stopped_accepting, log.find("actors stopped")) << log;
}

/// A port on 127.0.0.1 held by a listening socket of the test's own.
class taken_port {
 public:
  taken_port() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_, 1) != 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("cannot hold a port");
    }
    port_ = std::to_string(ntohs(addr.sin_port));
  }
  ~taken_port() { ::close(fd_); }

  const std::string& port() const { return port_; }

 private:
  int fd_;
  std::string port_;
};

/// locomov's exit status and output, started on a fresh state folder with
/// `extra` options.
command_result start_and_fail(const std::vector<std::string>& extra) {
  char dir[] = "/tmp/locomov-e2e-XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  std::vector<std::string> argv{locomov_binary(), "--state-dir", dir, "--db",
                                pg_cluster::shared().fresh_database()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto result = run_command(argv);
  std::filesystem::remove_all(dir);
  return result;
}

TEST(ListenerStart, PortInUseStopsTheDaemonWithTheReason) {
  taken_port taken;

  auto result = start_and_fail(
      {"--packet-listen", "127.0.0.1", "--packet-port", taken.port(), "--confo-port", "0"});

  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("cannot listen on 127.0.0.1:" + taken.port() +
                               " for the packet port: Address already in use"),
            std::string::npos)
      << result.output;
}

// Once the packet port listens, its broker runs: a later failure must stop
// it, or the actor system waits for it forever.
TEST(ListenerStart, PortInUseForALaterListenerStopsTheDaemonToo) {
  taken_port taken;

  auto result = start_and_fail({"--packet-listen", "127.0.0.1", "--packet-port", "0",
                                "--confo-listen", "127.0.0.1", "--confo-port", taken.port()});

  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("cannot listen on 127.0.0.1:" + taken.port() +
                               " for the confo port: Address already in use"),
            std::string::npos)
      << result.output;
}

}  // namespace
}  // namespace locomov::test
