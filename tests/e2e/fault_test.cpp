// The delivery guarantee under the faults one machine can produce: backends
// terminated, PostgreSQL stopped and started, the packet table locked for a
// minute, the database black-holed, locomov killed with SIGKILL or asked to
// stop. Whatever a device saw acknowledged must be in the database once.

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/daemon_fixture.hpp"
#include "tests/e2e/tls_client.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/tcp_proxy.hpp"

namespace locomov::test {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

/// Packet times start here; a device's n-th packet is stamped n seconds later,
/// so (pub_id, created_at) names one packet.
constexpr std::int64_t first_timestamp = 1'600'000'000;

std::string packet(int pub_id, std::int64_t n) {
  return R"({"id":)" + std::to_string(pub_id) + R"(,"timestamp":)" +
         std::to_string(first_timestamp + n) + R"(,"status":true,"voltage":230.5,"freq":50})";
}

tls_client::options tls_to(int port, const std::filesystem::path& ca) {
  tls_client::options o;
  o.port = port;
  o.ca = ca;
  return o;
}

/// Creates pubs 1..count (pub_id is serial, so a fresh database numbers them so).
void create_pubs(const std::string& conninfo, int count) {
  pqxx::connection conn{conninfo};
  pqxx::work tx{conn};
  tx.exec("INSERT INTO pub (hash) SELECT g FROM generate_series(1, " + std::to_string(count) +
          ") AS g");
  tx.commit();
}

/// Resident and peak resident memory of a process, in kB.
struct memory {
  long rss_kb = 0;
  long peak_kb = 0;
};

memory memory_of(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  memory m;
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      status >> m.rss_kb;
    } else if (key == "VmHWM:") {
      status >> m.peak_kb;
    }
  }
  return m;
}

/// Devices as the fleet's firmware behaves: one packet at a time on a
/// persistent connection, each waiting for its `Thank you.`; without one
/// (closed, no answer in time) the device reconnects and sends the same
/// packet again. Each device is a pub of its own and records what was
/// acknowledged.
class fleet {
 public:
  fleet(int port, std::filesystem::path ca) : port_(port), ca_(std::move(ca)) {}
  ~fleet() { stop(); }

  /// Starts devices `first_pub`..`first_pub + count - 1`, each sending until
  /// stop(), or `packets_each` packets when that is not 0.
  void start(int first_pub, int count, std::int64_t packets_each = 0) {
    for (int i = 0; i < count; ++i) {
      threads_.emplace_back([this, pub = first_pub + i, packets_each] { run(pub, packets_each); });
    }
  }

  void stop() {
    stopping_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) {
        t.join();
      }
    }
    threads_.clear();
  }

  /// Waits until every device given a packet count has sent it, or `limit`.
  bool wait_finished(int devices, std::chrono::milliseconds limit) {
    const auto until = clock::now() + limit;
    while (finished_ < devices && clock::now() < until) {
      std::this_thread::sleep_for(50ms);
    }
    return finished_ >= devices;
  }

  std::int64_t acknowledged() const { return acknowledged_; }
  std::int64_t resent() const { return resent_; }
  std::int64_t refused() const { return refused_; }

  /// (pub_id, n) of every acknowledged packet.
  std::set<std::pair<int, std::int64_t>> acknowledged_packets() {
    std::lock_guard lock(mutex_);
    return acked_;
  }

 private:
  void run(int pub, std::int64_t packets_each) {
    std::unique_ptr<tls_client> conn;
    std::int64_t n = 0;
    bool resend = false;
    while (!stopping_ && (packets_each == 0 || n < packets_each)) {
      if (!conn) {
        try {
          conn = std::make_unique<tls_client>(tls_to(port_, ca_));
        } catch (const std::exception&) {
          std::this_thread::sleep_for(100ms);  // locomov is restarting
          continue;
        }
      }
      if (resend) {
        ++resent_;
      }
      std::optional<std::string> answer;
      try {
        conn->write(packet(pub, n) + "\n");
        answer = conn->read_line(90s);
      } catch (const std::exception&) {
      }
      if (answer == "Thank you.\n") {
        {
          std::lock_guard lock(mutex_);
          acked_.emplace(pub, n);
        }
        ++acknowledged_;
        ++n;
        resend = false;
        continue;
      }
      if (answer) {
        ++refused_;  // a well-formed packet is never refused
      }
      conn.reset();
      resend = true;
    }
    ++finished_;
  }

  int port_;
  std::filesystem::path ca_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> finished_{0};
  std::atomic<std::int64_t> acknowledged_{0};
  std::atomic<std::int64_t> resent_{0};
  std::atomic<std::int64_t> refused_{0};
  std::mutex mutex_;
  std::set<std::pair<int, std::int64_t>> acked_;
  std::vector<std::thread> threads_;
};

/// What the database holds against what the devices saw acknowledged.
struct tally {
  std::size_t acknowledged = 0;
  std::size_t stored = 0;      ///< rows of the devices' pubs
  std::size_t missing = 0;     ///< acknowledged, not stored
  std::size_t duplicated = 0;  ///< rows beyond the first of a (pub_id, created_at)
};

tally compare(const std::string& conninfo, const std::set<std::pair<int, std::int64_t>>& acked) {
  pqxx::connection conn{conninfo};
  pqxx::work tx{conn};
  std::map<std::pair<int, std::int64_t>, int> rows;
  for (const auto& row :
       tx.exec("SELECT pub_id, extract(epoch FROM created_at)::bigint, count(*) FROM packet "
               "GROUP BY 1, 2")) {
    rows[{row[0].as<int>(), row[1].as<std::int64_t>() - first_timestamp}] = row[2].as<int>();
  }
  tally t;
  t.acknowledged = acked.size();
  for (const auto& [key, count] : rows) {
    t.stored += count;
    t.duplicated += count - 1;
  }
  for (const auto& key : acked) {
    t.missing += rows.count(key) == 0 ? 1 : 0;
  }
  return t;
}

/// Until `done` holds or `limit` passes; whether it held.
template <typename Done>
bool wait_for(Done done, std::chrono::milliseconds limit) {
  const auto until = clock::now() + limit;
  while (!done()) {
    if (clock::now() >= until) {
      return false;
    }
    std::this_thread::sleep_for(100ms);
  }
  return true;
}

bool spool_drained(daemon& d) {
  // Each restart writes a log of its own; the newest tells.
  const auto log = d.log();
  const auto drained = log.rfind("spool drained");
  const auto spooling = log.rfind("batches go to the spool");
  const auto draining = log.rfind("draining spool");
  return drained != std::string::npos &&
         (spooling == std::string::npos || spooling < drained) &&
         (draining == std::string::npos || draining < drained);
}

std::int64_t count_packets(const std::string& conninfo) {
  return query_number(conninfo, "SELECT count(*) FROM packet");
}

void terminate_backends(const std::string& conninfo) {
  pqxx::connection conn{conninfo};
  pqxx::work tx{conn};
  tx.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
          "WHERE datname = current_database() AND pid <> pg_backend_pid()");
  tx.commit();
}

// The fault test: steady load from 32 devices while the database's backends
// are terminated, PostgreSQL is stopped (packets go to the spool) and locomov
// is killed before the spool drained, the packet table is locked for 60 s
// while 500 more devices send a packet each, and locomov is killed under
// load. Then every acknowledged packet must be stored exactly once.
TEST(FaultTest, EveryAcknowledgedPacketIsStoredExactlyOnce) {
  constexpr int steady_devices = 32;
  constexpr int lock_devices = 500;
  auto& cluster = pg_cluster::shared();
  const auto conninfo = cluster.fresh_database();
  daemon d({"--db", conninfo, "--log-level", "info"});
  create_pubs(conninfo, steady_devices + lock_devices + 1);
  fleet steady(d.packet_port(), d.ca_file());
  steady.start(1, steady_devices);
  const auto started = clock::now();
  ASSERT_TRUE(wait_for([&] { return steady.acknowledged() > 500; }, 20s)) << d.log();

  // D1: the reconnect is invisible to the devices.
  terminate_backends(conninfo);
  const auto before_d1 = steady.acknowledged();
  ASSERT_TRUE(wait_for([&] { return steady.acknowledged() > before_d1 + 500; }, 20s)) << d.log();

  // D2, and the spool outliving locomov: while PostgreSQL is stopped the
  // packets are acknowledged from the spool; locomov dies before it drained.
  cluster.cluster().stop();
  const auto before_d2 = steady.acknowledged();
  ASSERT_TRUE(wait_for([&] { return steady.acknowledged() > before_d2 + 500; }, 30s)) << d.log();
  d.kill();
  const auto spooled_at_kill = steady.acknowledged() - before_d2;
  cluster.cluster().start();
  const auto restarted = clock::now();
  d.restart();
  ASSERT_TRUE(wait_for([&] { return spool_drained(d); }, 60s)) << d.log();
  const auto spool_drain_time = clock::now() - restarted;
  const auto before_d3 = steady.acknowledged();
  ASSERT_TRUE(wait_for([&] { return steady.acknowledged() > before_d3 + 500; }, 20s)) << d.log();

  // D3: a 60 s lock while 500 more devices each send one packet.
  const auto rss_before_lock = memory_of(d.proc().pid()).rss_kb;
  long rss_during_lock = rss_before_lock;
  std::int64_t acked_after_commit = 0;
  clock::duration first_ack_after_commit{};
  {
    pqxx::connection locker{conninfo};
    pqxx::work lock_tx{locker};
    lock_tx.exec("LOCK TABLE packet IN ACCESS EXCLUSIVE MODE");
    fleet one_shot(d.packet_port(), d.ca_file());
    one_shot.start(steady_devices + 1, lock_devices, 1);
    const auto lock_until = clock::now() + 60s;
    while (clock::now() < lock_until) {
      rss_during_lock = std::max(rss_during_lock, memory_of(d.proc().pid()).rss_kb);
      std::this_thread::sleep_for(100ms);
    }
    lock_tx.commit();
    const auto committed = clock::now();
    fleet late(d.packet_port(), d.ca_file());
    late.start(steady_devices + lock_devices + 1, 1, 1);
    EXPECT_TRUE(late.wait_finished(1, 5s)) << "no packet accepted within 5 s of the commit";
    first_ack_after_commit = clock::now() - committed;
    EXPECT_TRUE(one_shot.wait_finished(lock_devices, 120s)) << d.log();
    one_shot.stop();
    late.stop();
    acked_after_commit = one_shot.acknowledged() + late.acknowledged();
    // Packets acknowledged from the spool during the lock reach the table
    // as the drainer catches up.
    const auto lock_acked = one_shot.acknowledged_packets();
    EXPECT_TRUE(wait_for([&] { return compare(conninfo, lock_acked).missing == 0; }, 60s))
        << compare(conninfo, lock_acked).missing << " acknowledged in the lock, not stored";
    EXPECT_EQ(one_shot.refused(), 0);
  }
  const long lock_growth_kb = rss_during_lock - rss_before_lock;
#ifndef __SANITIZE_ADDRESS__
  // AddressSanitizer holds freed memory back (its quarantine, 256 MB), so
  // the bound speaks of the real build only.
  EXPECT_LT(lock_growth_kb, 64 * 1024);
#endif

  // kill -9 under load, and a restart.
  const auto before_kill = steady.acknowledged();
  ASSERT_TRUE(wait_for([&] { return steady.acknowledged() > before_kill + 500; }, 60s)) << d.log();
  d.kill();
  d.restart();
  const auto before_end = steady.acknowledged();
  ASSERT_TRUE(wait_for([&] { return steady.acknowledged() > before_end + 500; }, 30s)) << d.log();
  steady.stop();
  const auto acked = steady.acknowledged_packets();
  EXPECT_TRUE(wait_for([&] { return compare(conninfo, acked).missing == 0; }, 60s));
  const auto peak = memory_of(d.proc().pid());
  EXPECT_EQ(d.stop(), 0) << d.log();

  const auto t = compare(conninfo, acked);
  std::printf("fault test: ran=%llds acknowledged=%zu (+%lld in the lock) stored=%zu "
              "missing=%zu duplicated=%zu resent=%lld spooled_before_kill=%lld "
              "rss_before_lock=%ldkB lock_growth=%ldkB peak_rss=%ldkB "
              "first_ack_after_commit=%lldms spool_drain_after_restart=%lldms\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::seconds>(clock::now() - started)
                      .count()),
              t.acknowledged, static_cast<long long>(acked_after_commit), t.stored, t.missing,
              t.duplicated, static_cast<long long>(steady.resent()),
              static_cast<long long>(spooled_at_kill), rss_before_lock, lock_growth_kb,
              peak.peak_kb,
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(first_ack_after_commit)
                      .count()),
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(spool_drain_time)
                      .count()));
  EXPECT_EQ(t.missing, 0u);
  EXPECT_EQ(t.duplicated, 0u);
  EXPECT_EQ(steady.refused(), 0);
  EXPECT_GE(t.stored, t.acknowledged);
}

// SIGTERM: no new connection is taken, the packets already read are still
// answered once the database takes them, and locomov exits 0.
TEST(GracefulShutdown, SigtermAnswersThePacketsAlreadyReadAndExitsZero) {
  const auto conninfo = pg_cluster::shared().fresh_database();
  daemon d({"--db", conninfo});
  create_pubs(conninfo, 1);
  pqxx::connection locker{conninfo};
  pqxx::work lock_tx{locker};
  lock_tx.exec("LOCK TABLE packet IN ACCESS EXCLUSIVE MODE");
  tls_client device(tls_to(d.packet_port(), d.ca_file()));
  std::string packets;
  for (int n = 0; n < 5; ++n) {
    packets += packet(1, n) + "\n";
  }
  device.write(packets);
  std::this_thread::sleep_for(500ms);  // read by locomov, held by the lock

  d.proc().signal(SIGTERM);
  ASSERT_TRUE(wait_for([&] { return d.log().find("stopped accepting listener=packet") !=
                                    std::string::npos; },
                       10s))
      << d.log();
  EXPECT_THROW(tls_client(tls_to(d.packet_port(), d.ca_file())), std::runtime_error);
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(d.proc().running()) << "exited while replies were owed\n" << d.log();

  lock_tx.commit();
  for (int n = 0; n < 5; ++n) {
    EXPECT_EQ(device.read_line(20s), "Thank you.\n") << "packet " << n << "\n" << d.log();
  }
  EXPECT_TRUE(device.closed_by_server(10s));
  EXPECT_EQ(d.proc().wait(20s), 0) << d.log();
  EXPECT_EQ(count_packets(conninfo), 5);
}

// The wait for owed replies is bounded: with the table still locked,
// shutdown-timeout closes the connections and locomov still exits 0, after
// the writer gave up on its batch (write-timeout) and spooled it.
TEST(GracefulShutdown, ShutdownTimeoutBoundsTheWaitForOwedReplies) {
  const auto conninfo = pg_cluster::shared().fresh_database();
  daemon d({"--db", conninfo, "--shutdown-timeout", "1", "--write-timeout", "3"});
  create_pubs(conninfo, 1);
  pqxx::connection locker{conninfo};
  pqxx::work lock_tx{locker};
  lock_tx.exec("LOCK TABLE packet IN ACCESS EXCLUSIVE MODE");
  tls_client device(tls_to(d.packet_port(), d.ca_file()));
  device.write(packet(1, 0) + "\n");
  std::this_thread::sleep_for(500ms);

  const auto signalled = clock::now();
  d.proc().signal(SIGTERM);
  EXPECT_EQ(d.proc().wait(20s), 0) << d.log();
  EXPECT_LT(clock::now() - signalled, 1s + 3s + 3s) << d.log();
  EXPECT_NE(d.log().find("shutdown-timeout reached"), std::string::npos) << d.log();
  lock_tx.commit();
}

// D4: the database silently drops packets (no reset): the write gives up
// within write-timeout, the packet is acknowledged from the spool, and it
// reaches the database once the path is back.
TEST(BlackHoledDatabase, WriteGivesUpWithinWriteTimeoutAndSpools) {
  auto& cluster = pg_cluster::shared();
  const auto dbname = cluster.fresh_database_name();
  tcp_proxy proxy(pg_socket(cluster.dir() / "socket", cluster.port()));
  const auto via_proxy = "host=127.0.0.1 port=" + std::to_string(proxy.port()) +
                         " user=locomov dbname=" + dbname;
  daemon d({"--db", via_proxy, "--write-timeout", "3"});
  create_pubs(cluster.conninfo(dbname), 1);
  tls_client device(tls_to(d.packet_port(), d.ca_file()));
  device.write(packet(1, 0) + "\n");
  ASSERT_EQ(device.read_line(20s), "Thank you.\n") << d.log();

  proxy.set_black_hole(true);
  const auto sent = clock::now();
  device.write(packet(1, 1) + "\n");
  EXPECT_EQ(device.read_line(20s), "Thank you.\n") << d.log();
  const auto waited = clock::now() - sent;
  EXPECT_LT(waited, 3s + 3s) << d.log();
  EXPECT_GE(waited, 2s) << "answered before the write could have given up\n" << d.log();

  proxy.set_black_hole(false);
  EXPECT_TRUE(wait_for([&] { return count_packets(cluster.conninfo(dbname)) == 2; }, 60s))
      << d.log();
  EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
}  // namespace locomov::test
