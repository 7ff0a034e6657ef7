// The confirmation port end to end: devices' confos over TLS decided by the
// arbiter into a real PostgreSQL, and the app's HTTPS query on the same port.

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "tests/e2e/daemon_fixture.hpp"
#include "tests/e2e/http_get.hpp"
#include "tests/e2e/tls_client.hpp"
#include "tests/support/pg_cluster.hpp"

namespace locomov::test {
namespace {

using namespace std::chrono_literals;

class ConfoPort : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    conninfo_ = new std::string(pg_cluster::shared().fresh_database());
    // Later firmware names its pub by hash in packets: the arbiter's new pubs
    // are then reachable by a known id. s_client -quiet waits for the server
    // to close, which short read and idle timeouts make quick.
    daemon_ = new daemon(
        {"--db", *conninfo_, "--pub-key", "hash", "--read-timeout", "3", "--idle-timeout", "3"});
    pqxx::connection conn{*conninfo_};
    pqxx::work tx{conn};
    tx.exec0("INSERT INTO sub (email) VALUES ('ravi@example.com'), ('asha@example.com')");
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
    o.port = daemon_->confo_port();
    o.ca = daemon_->ca_file();
    return tls_client(o);
  }

  static long count(const std::string& sql) { return query_number(*conninfo_, sql); }

  static std::string text(const std::string& sql) {
    pqxx::connection conn{*conninfo_};
    pqxx::work tx{conn};
    return tx.exec1(sql)[0].c_str();
  }

  /// The app's query with curl, verifying the certificate: "status body".
  static std::string query(const std::string& path) {
    auto result = run_command({"curl", "-sS", "--cacert", daemon_->ca_file().string(), "-w",
                               " %{http_code}", "https://localhost:" +
                                   std::to_string(daemon_->confo_port()) + path});
    EXPECT_EQ(result.status, 0) << result.output;
    return result.output;
  }

  static std::string* conninfo_;
  static daemon* daemon_;
};

std::string* ConfoPort::conninfo_ = nullptr;
daemon* ConfoPort::daemon_ = nullptr;

TEST_F(ConfoPort, OpensslDeviceConfoIsDecidedAndAnsweredOk) {
  auto result = run_command(
      {"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(daemon_->confo_port()),
       "-CAfile", daemon_->ca_file().string(), "-verify_return_error", "-tls1_2", "-cipher",
       "AES256-SHA", "-quiet"},
      R"({"deviceName":"meter-1","ssid":"home","timestamp":1700000000,"hash":5001,)"
      R"("email":"ravi@example.com","coords":"77.61/12.93"})"
      "\n",
      20s);
  EXPECT_NE(result.output.find("OK."), std::string::npos) << result.output;
  EXPECT_EQ(count("SELECT count(*) FROM pub WHERE hash = 5001 AND creator = 'ravi@example.com' "
                  "AND longitude = 77.61 AND latitude = 12.93"),
            1);
  EXPECT_EQ(count("SELECT count(*) FROM subpub JOIN pub USING (pub_id) WHERE hash = 5001"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM confo WHERE device_name = 'meter-1' AND ssid = 'home' "
                  "AND hash = 5001"),
            1);
  EXPECT_NE(daemon_->log().find("branch=sub_new_pub"), std::string::npos) << daemon_->log();
}

TEST_F(ConfoPort, InvalidConfosGetNotOkAndTheConnectionStaysUsable) {
  auto c = client();
  c.write(R"({"ssid":"home","hash":1})" "\n");
  EXPECT_EQ(c.read_line(), "!OK\n");
  c.write(R"({"deviceName":"","ssid":"home"})" "\n");
  EXPECT_EQ(c.read_line(), "!OK\n");
  c.write(R"({"deviceName":"m\u0000","ssid":"home"})" "\n");
  EXPECT_EQ(c.read_line(), "!OK\n");
  c.write(R"({"DeviceName":"meter-2","SSID":"work","hash":5002})" "\n");
  EXPECT_EQ(c.read_line(), "OK.\n");
  EXPECT_EQ(count("SELECT count(*) FROM confo WHERE device_name = 'meter-2'"), 1);
}

TEST_F(ConfoPort, ConflictingCreatorLandsInCconfo) {
  const auto before = scrape_metrics(daemon_->status_port());
  auto c = client();
  c.write(R"({"deviceName":"meter-3","ssid":"a","hash":5003,"email":"ravi@example.com"})"
          R"({"deviceName":"meter-3b","ssid":"b","hash":5003,"email":"asha@example.com"})");
  EXPECT_EQ(c.read_line(), "OK.\n");
  EXPECT_EQ(c.read_line(), "OK.\n");
  const auto after = scrape_metrics(daemon_->status_port());
  EXPECT_EQ(moved(before, after, R"(locomov_confo_decisions_total{branch="sub_new_pub"})"), 1);
  EXPECT_EQ(moved(before, after, R"(locomov_confo_decisions_total{branch="sub_pub_conflict"})"),
            1);
  EXPECT_EQ(moved(before, after, R"(locomov_confo_decisions_total{branch="sub_pub_own"})"), 0);
  EXPECT_EQ(text("SELECT creator FROM pub WHERE hash = 5003"), "ravi@example.com");
  EXPECT_EQ(count("SELECT count(*) FROM cconfo WHERE hash = 5003 AND email = 'asha@example.com'"),
            1);
}

TEST_F(ConfoPort, AppQueryReturnsHashOfLastConfo) {
  auto c = client();
  c.write(R"({"deviceName":"meter-4","ssid":"home","hash":5004})" "\n");
  EXPECT_EQ(c.read_line(), "OK.\n");
  c.write(R"({"deviceName":"meter-4","ssid":"home","hash":5005,"timestamp":1356998400})" "\n");
  EXPECT_EQ(c.read_line(), "OK.\n");
  // The second is the last received, although its device clock is older.
  EXPECT_EQ(query("/api/confo/meter-4/home"), "5005 200");
  EXPECT_EQ(query("/confo/meter-4/home"), "5005 200");
  EXPECT_EQ(query("/api/confo/meter-4/elsewhere"), "Not found 404");
  EXPECT_EQ(query("/unknown"), "Not found 404");
}

TEST_F(ConfoPort, NamesRoundTripByteExact) {
  const std::string ssid = "Ravi\xE2\x80\x99s home x'; DROP TABLE pub;--";
  auto c = client();
  c.write(R"({"deviceName":"my meter","ssid":")" + ssid + R"(","hash":5006})" "\n");
  EXPECT_EQ(c.read_line(), "OK.\n");
  EXPECT_EQ(text("SELECT ssid FROM confo WHERE hash = 5006"), ssid);
  EXPECT_EQ(query("/api/confo/my%20meter/Ravi%E2%80%99s%20home%20x%27%3B%20DROP%20TABLE%20pub%3B--"),
            "5006 200");
}

TEST_F(ConfoPort, PubCreatedByArbiterTakesPacketsAtOnce) {
  // The device's pub actor first finds no pub: its packet waits in quarantine.
  tls_client::options o;
  o.port = daemon_->packet_port();
  o.ca = daemon_->ca_file();
  tls_client meter(o);
  meter.write(R"({"Id":6001,"status":true,"voltage":230})");
  EXPECT_EQ(meter.read_line(), "Thank you.\n");
  EXPECT_EQ(count("SELECT count(*) FROM quarantine WHERE pub_id = 6001"), 1);

  auto c = client();
  c.write(R"({"deviceName":"meter-6","ssid":"s","hash":6001,"email":"asha@example.com"})");
  EXPECT_EQ(c.read_line(), "OK.\n");

  meter.write(R"({"Id":6001,"status":true,"voltage":231})");
  EXPECT_EQ(meter.read_line(), "Thank you.\n");
  EXPECT_EQ(count("SELECT count(*) FROM packet JOIN pub USING (pub_id) WHERE hash = 6001"), 1);
}

TEST_F(ConfoPort, LocomovctlPostsAndQueriesAsDeviceAndApp) {
  const auto port = std::to_string(daemon_->confo_port());
  const auto ca = daemon_->ca_file().string();
  auto posted = run_command({locomovctl_binary(), "confo", "--port", port, "--ca", ca,
                             "--device-name", "meter 7", "--ssid", "Ravi\xE2\x80\x99s/5G",
                             "--hash", "5007", "--email", "ravi@example.com", "--coords",
                             "77.1/13.2"});
  EXPECT_EQ(posted.status, 0) << posted.output;
  EXPECT_EQ(posted.output, "OK.\n");
  EXPECT_EQ(count("SELECT count(*) FROM pub WHERE hash = 5007 AND longitude = 77.1"), 1);

  auto found = run_command({locomovctl_binary(), "query", "--port", port, "--ca", ca,
                            "--servername", "localhost", "meter 7", "Ravi\xE2\x80\x99s/5G"});
  EXPECT_EQ(found.status, 0) << found.output;
  EXPECT_EQ(found.output, "5007\n");
  auto missing = run_command({locomovctl_binary(), "query", "--port", port, "--ca", ca,
                              "--path-prefix", "/confo", "meter 7", "other"});
  EXPECT_EQ(missing.status, 3) << missing.output;

  auto refused = run_command({locomovctl_binary(), "confo", "--port", port, "--ca", ca,
                              "--json", R"({"ssid":"no name"})"});
  EXPECT_EQ(refused.status, 1) << refused.output;
  EXPECT_EQ(refused.output, "!OK\n");
}

TEST_F(ConfoPort, HttpErrorsAreProperResponses) {
  auto result = run_command({"curl", "-sS", "--cacert", daemon_->ca_file().string(), "-X", "POST",
                             "-o", "/dev/null", "-w", "%{http_code}",
                             "https://localhost:" + std::to_string(daemon_->confo_port()) +
                                 "/api/confo/a/b"});
  EXPECT_EQ(result.output, "405");

  // A name no PostgreSQL text can hold is a bad request, not a database error.
  result = run_command({"curl", "-sS", "--cacert", daemon_->ca_file().string(), "-o", "/dev/null",
                        "-w", "%{http_code}",
                        "https://localhost:" + std::to_string(daemon_->confo_port()) +
                            "/api/confo/%ff/x"});
  EXPECT_EQ(result.output, "400");
  EXPECT_EQ(daemon_->log().find("confo query failed"), std::string::npos) << daemon_->log();
}

}  // namespace
}  // namespace locomov::test
