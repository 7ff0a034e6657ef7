// Capture and replay end to end: a daemon records real TLS traffic, and
// `locomovctl replay` feeds the file into the actors of a fresh database.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <fstream>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "capture/record.hpp"
#include "storage/schema.hpp"
#include "tests/e2e/daemon_fixture.hpp"
#include "tests/e2e/process.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/scratch_dir.hpp"

namespace locomov::test {
namespace {

/// Every stored column but the ones a replay cannot reproduce (the serial
/// id and saved_at, the time of the commit), in a fixed order.
const std::string packet_rows =
    "SELECT pub_id, created_at, voltage, frequency, protected, current, active_power, "
    "power_factor, latitude, longitude FROM packet ORDER BY 1, 2, 3";
const std::string quarantine_rows =
    "SELECT pub_id, created_at, voltage, protected FROM quarantine ORDER BY 1, 2, 3";
const std::string pub_rows = "SELECT pub_id, hash, creator FROM pub ORDER BY 2";
const std::string confo_rows = "SELECT device_name, ssid, hash FROM confo ORDER BY 1, 2, 3";

std::vector<std::string> rows(const std::string& conninfo, const std::string& sql) {
  pqxx::connection conn{conninfo};
  pqxx::nontransaction tx{conn};
  std::vector<std::string> out;
  for (const auto& row : tx.exec(sql)) {
    std::string line;
    for (const auto& field : row) {
      line += (field.is_null() ? std::string("NULL") : field.c_str()) + std::string("|");
    }
    out.push_back(line);
  }
  return out;
}

/// What a database holds that traffic wrote, table by table.
std::vector<std::vector<std::string>> contents(const std::string& conninfo) {
  return {rows(conninfo, packet_rows), rows(conninfo, quarantine_rows), rows(conninfo, pub_rows),
          rows(conninfo, confo_rows)};
}

/// A database with the fleet's pubs and the app user's sub, as the
/// captured run had before its traffic.
std::string seeded_database() {
  auto conninfo = pg_cluster::shared().fresh_database();
  pqxx::connection conn{conninfo};
  storage::migrate(conn);
  pqxx::work tx{conn};
  tx.exec0("INSERT INTO pub (pub_id, hash) SELECT g, 1000 + g FROM generate_series(1, 5) g");
  tx.exec("SELECT setval('pub_pub_id_seq', 5)");
  tx.exec0("INSERT INTO sub (email) VALUES ('owner@example.com')");
  tx.commit();
  return conninfo;
}

class Capture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    live_db_ = new std::string(seeded_database());
    dir_ = new scratch_dir();
    {
      daemon d({"--db", *live_db_, "--capture", "--capture-dir", (dir_->path() / "cap").string()});
      const auto port = std::to_string(d.packet_port());
      const auto ca = d.ca_file().string();
      // locomovctl send exits 1 when a packet is refused.
      auto send = [&](int status, const std::vector<std::string>& args,
                      const std::string& input = {}) {
        std::vector<std::string> argv{locomovctl_binary(), "send", "--port", port, "--ca", ca,
                                      "--servername", "localhost"};
        argv.insert(argv.end(), args.begin(), args.end());
        auto result = run_command(argv, input);
        ASSERT_EQ(result.status, status) << result.output;
      };
      // Many packets on one connection, timed and untimed, newer readings,
      // an unknown pub, readings that are refused.
      send(1, {"--stdin"},
           R"({"Id":1,"timestamp":1764806400,"status":true,"voltage":230.5,"freq":50.01}
{"id":2,"timestr":"2025-12-04T01:00:00Z","status":false,"voltage":229,"current":1.5,"activePower":300}
{"ID":3,"status":true,"voltage":231}{"id":3,"status":true,"voltage":231}
{"id":77,"timestamp":1764806400,"status":true}
{"id":4,"timestamp":1764806400,"status":"yes"}
{"id":5,"timestamp":1764806400,"status":true,"lat":46.05,"lng":14.5}
)");
      // One packet per connection, from several meters at once.
      send(0, {"--connections", "4", "--repeat", "3", "--id", "2", "--status", "true",
            "--voltage", "228.5"});
      // A confo for a new device, and the app's query for it.
      auto confo = run_command({locomovctl_binary(), "confo", "--port",
                                std::to_string(d.confo_port()), "--ca", ca, "--servername",
                                "localhost", "--device-name", "meter-9", "--ssid", "home",
                                "--email", "owner@example.com", "--hash", "4242",
                                "--timestamp", "1764806400"});
      ASSERT_EQ(confo.status, 0) << confo.output;
      auto query = run_command({locomovctl_binary(), "query", "--port",
                                std::to_string(d.confo_port()), "--ca", ca, "--servername",
                                "localhost", "meter-9", "home"});
      ASSERT_EQ(query.status, 0) << query.output;
      ASSERT_EQ(d.stop(), 0) << d.log();
    }
    capture_ = new std::filesystem::path(dir_->path() / "cap" / "capture.jsonl");
  }

  static void TearDownTestSuite() {
    delete capture_;
    delete dir_;
    delete live_db_;
  }

  static command_result replay(const std::string& conninfo,
                               const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{locomovctl_binary(), "replay", capture_->string(), "--db",
                                  conninfo};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv, {}, std::chrono::seconds(60));
  }

  static std::string* live_db_;
  static scratch_dir* dir_;
  static std::filesystem::path* capture_;
};

std::string* Capture::live_db_ = nullptr;
scratch_dir* Capture::dir_ = nullptr;
std::filesystem::path* Capture::capture_ = nullptr;

TEST_F(Capture, RecordsEveryConnectionOfTheLiveRun) {
  const auto records = capture::read_files({*capture_});
  std::size_t opens = 0;
  std::size_t thanks = 0;
  std::size_t refusals = 0;
  bool saw_query = false;
  for (const auto& r : records) {
    opens += r.ev == capture::event::open ? 1 : 0;
    if (r.ev == capture::event::out) {
      for (std::size_t at = r.data.find("Thank you.\n"); at != std::string::npos;
           at = r.data.find("Thank you.\n", at + 1)) {
        ++thanks;
      }
      refusals += r.data.rfind("!OK wrong type for status", 0) == 0 ? 1 : 0;
      // The app's query is answered with the hash as the body.
      saw_query = saw_query || (r.data.rfind("HTTP/1.1 200", 0) == 0 &&
                                r.data.size() >= 4 && r.data.substr(r.data.size() - 4) == "4242");
    }
  }
  // 1 + 12 packet connections, the confo and the query.
  EXPECT_EQ(opens, 15u);
  // 6 accepted on the first connection (the unknown pub included), 12 alone.
  EXPECT_EQ(thanks, 18u);
  EXPECT_EQ(refusals, 1u);
  EXPECT_TRUE(saw_query);
}

TEST_F(Capture, ReplayIntoAFreshDatabaseGivesTheRecordedRepliesAndRows) {
  const auto fresh = seeded_database();
  const auto result = replay(fresh);
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("differing 0, missing 0, extra 0"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("packet +"), std::string::npos) << result.output;
  EXPECT_EQ(contents(fresh), contents(*live_db_));
  // Untimed packets take the recorded receipt time: the two identical ones
  // read together are two rows, as they were live.
  EXPECT_EQ(query_number(fresh, "SELECT count(*) FROM packet WHERE pub_id = 3"), 2);
}

TEST_F(Capture, ReplayingTwiceGivesTheSameResult) {
  const auto first = seeded_database();
  const auto second = seeded_database();
  const auto a = replay(first, {"--json"});
  const auto b = replay(second, {"--json"});
  ASSERT_EQ(a.status, 0) << a.output;
  ASSERT_EQ(b.status, 0) << b.output;
  EXPECT_EQ(contents(first), contents(second));
  auto report = [](const std::string& output) {
    auto doc = nlohmann::json::parse(output.substr(output.find('{')));
    doc.erase("seconds");
    doc.erase("packets_per_second");
    return doc;
  };
  EXPECT_EQ(report(a.output), report(b.output));
}

TEST_F(Capture, RemappedIdsAndShiftedTimesLoadTheSameDatabaseAgain) {
  const auto db = seeded_database();
  ASSERT_EQ(replay(db).status, 0);
  const auto before = query_number(db, "SELECT count(*) FROM packet");
  // The same traffic a day later is new; ids 1..5 become 2..6 (6 is the pub
  // the confo made) and the unknown 77 becomes 78. The confo itself now
  // finds its device taken, so its reply may differ: no status expected.
  const auto result = replay(db, {"--time-shift", "86400", "--id-offset", "1"});
  EXPECT_NE(result.output.find("packet +"), std::string::npos) << result.output;
  EXPECT_GT(query_number(db, "SELECT count(*) FROM packet"), before);
  EXPECT_EQ(query_number(db, "SELECT count(*) FROM quarantine WHERE pub_id = 78"), 1);
  EXPECT_EQ(query_number(db, "SELECT count(*) FROM packet WHERE pub_id = 6 AND latitude = 46.05"),
            1);
  EXPECT_EQ(query_number(db, "SELECT count(*) FROM packet WHERE pub_id = 3 AND "
                             "created_at = timestamptz '2025-12-05T01:00:00Z'"),
            1);
}

TEST_F(Capture, LiveReplayToAnotherDaemonGivesTheRecordedRepliesAndRows) {
  const auto fresh = seeded_database();
  daemon target({"--db", fresh});
  const auto result = run_command(
      {locomovctl_binary(), "replay", capture_->string(), "--live", "--port",
       std::to_string(target.packet_port()), "--confo-port", std::to_string(target.confo_port()),
       "--plain-port", std::to_string(target.plain_port()), "--ca", target.ca_file().string(),
       "--servername", "localhost", "--db", fresh},
      {}, std::chrono::seconds(60));
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("differing 0, missing 0, extra 0"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("connections   0 failed"), std::string::npos) << result.output;
  // Over the network, untimed packets are stored at their new receipt time:
  // every other row is the live run's.
  const std::string timed = " WHERE created_at < timestamptz '2026-01-01'";
  EXPECT_EQ(rows(fresh, "SELECT pub_id, created_at, voltage FROM packet" + timed + " ORDER BY 1, 2"),
            rows(*live_db_, "SELECT pub_id, created_at, voltage FROM packet" + timed + " ORDER BY 1, 2"));
  EXPECT_EQ(rows(fresh, "SELECT count(*) FROM packet"), rows(*live_db_, "SELECT count(*) FROM packet"));
  EXPECT_EQ(rows(fresh, pub_rows), rows(*live_db_, pub_rows));
  EXPECT_EQ(rows(fresh, confo_rows), rows(*live_db_, confo_rows));
  EXPECT_EQ(target.stop(), 0) << target.log();
}

// A user's own recording of the plaintext listener, by tcpdump, made into a
// capture and replayed into a fresh database.
TEST(CaptureImport, PcapOfThePlaintextListenerReplaysAsItWent) {
  const auto live = seeded_database();
  scratch_dir dir;
  const auto pcap = dir.path() / "plain.pcap";
  daemon d({"--db", live});
  const auto port = std::to_string(d.plain_port());
  // --immediate-mode: packets reach the file as they come, not when a
  // kernel buffer block fills, so stopping tcpdump loses none.
  // -Z root: tcpdump would otherwise become its own user before it creates
  // the file, in a folder only root may write.
  process tcpdump({"tcpdump", "-i", "lo", "-Z", "root", "-U", "--immediate-mode", "-n", "-w",
                   pcap.string(),
                   "tcp", "port", port},
                  dir.path() / "tcpdump.log");
  for (int i = 0; i < 100 && tcpdump.output().find("listening on") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_NE(tcpdump.output().find("listening on"), std::string::npos) << tcpdump.output();
  auto many = run_command({locomovctl_binary(), "send", "--plain", "--port", port, "--stdin",
                           "--pipeline"},
                          R"({"id":1,"timestamp":1764806400,"status":true,"voltage":230.1}
{"id":2,"timestamp":1764806401,"status":"on"}
{"id":3,"status":true,"voltage":229.9}
)");
  EXPECT_EQ(many.status, 1) << many.output;  // one packet is refused
  auto single = run_command({locomovctl_binary(), "send", "--plain", "--port", port, "--id", "4",
                             "--timestamp", "1764806500", "--connections", "3"});
  EXPECT_EQ(single.status, 0) << single.output;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  tcpdump.signal(SIGTERM);
  EXPECT_EQ(tcpdump.wait(std::chrono::seconds(10)), 0) << tcpdump.output();
  ASSERT_EQ(d.stop(), 0) << d.log();

  const auto capture_file = dir.path() / "plain.jsonl";
  auto imported = run_command({locomovctl_binary(), "capture", "import-pcap", pcap.string(),
                               "--port", port, "-o", capture_file.string()});
  ASSERT_EQ(imported.status, 0) << imported.output;
  EXPECT_NE(imported.output.find("4 connections"), std::string::npos) << imported.output;

  const auto fresh = seeded_database();
  auto replayed = run_command(
      {locomovctl_binary(), "replay", capture_file.string(), "--db", fresh}, {},
      std::chrono::seconds(60));
  ASSERT_EQ(replayed.status, 0) << replayed.output;
  EXPECT_NE(replayed.output.find("recorded 6, matching 6, differing 0, missing 0, extra 0"),
            std::string::npos)
      << replayed.output;
  // The untimed packet was stored at its receipt time: the replay takes the
  // time of the segment that carried it, a few microseconds from locomov's.
  const std::string timed = "SELECT pub_id, created_at, voltage FROM packet WHERE pub_id <> 3 "
                            "ORDER BY 1, 2";
  EXPECT_EQ(rows(fresh, timed), rows(live, timed));
  // Pubs 1 and 3, and 4 once: its three packets are one packet sent thrice.
  EXPECT_EQ(query_number(fresh, "SELECT count(*) FROM packet"), 3);
}

TEST(CaptureImport, FileOfPacketsReplaysOnePerConnection) {
  scratch_dir dir;
  const auto packets = dir.path() / "packets.json";
  std::ofstream(packets) << R"({"id":1,"timestamp":1764806400,"status":true}
{"id":2,"timestamp":1764806400,"status":true}{"id":99,"timestamp":1764806400,"status":true}
{"id":1,"timestamp":"soon","status":true})";
  const auto capture_file = dir.path() / "packets.jsonl";
  auto imported = run_command({locomovctl_binary(), "capture", "import-packets",
                               packets.string(), "--one-per-connection", "-o",
                               capture_file.string()});
  ASSERT_EQ(imported.status, 0) << imported.output;
  EXPECT_NE(imported.output.find("4 connections"), std::string::npos) << imported.output;
  const auto db = seeded_database();
  auto replayed = run_command({locomovctl_binary(), "replay", capture_file.string(), "--db", db},
                              {}, std::chrono::seconds(60));
  // Nothing was recorded to compare with: every reply is extra, which fails
  // nothing.
  ASSERT_EQ(replayed.status, 0) << replayed.output;
  EXPECT_NE(replayed.output.find("recorded 0, matching 0, differing 0, missing 0, extra 4"),
            std::string::npos)
      << replayed.output;
  EXPECT_NE(replayed.output.find("packet +2, quarantine +1"), std::string::npos)
      << replayed.output;
  EXPECT_NE(replayed.output.find("3 packets acknowledged"), std::string::npos) << replayed.output;
}

}  // namespace
}  // namespace locomov::test
